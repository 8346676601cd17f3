//! Fault injection for tests (feature `testing`): an SDK interceptor that makes chosen DynamoDB/Kinesis
//! calls fail the way AWS fails, so tests can check that every function answers a correct 503 +
//! `Retry-After` or retries transparently, never leaves half-written state, and converges when the
//! client retries.
//!
//! Calls are numbered in the order the operations start (`read_before_serialization` runs once per
//! operation, before the SDK's retry loop). A [`FaultRule`] picks a call by number (or every call of
//! an operation) and fails its first `attempts` attempts with a [`Fault`]:
//!
//! - [`Fault::Throttle`] / [`Fault::ServerError`]: the request never reaches the server (its
//!   `X-Amz-Target` is rewritten to an operation that does not exist, so the emulator changes nothing),
//!   and the client sees a throttling error / an HTTP 500 instead of that answer;
//! - [`Fault::LostAfterCommit`]: the server **does** process the request, then the answer is replaced
//!   by an HTTP 500 — the ambiguous failure (a write that happened, reported as failed) that idempotency
//!   tokens and conditional writes must absorb.
//!
//! With `attempts` below the SDK's attempt limit the SDK retries and the caller sees success; with
//! `attempts` at or above it the call fails and the function must answer 503.

use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextMut, BeforeSerializationInterceptorContextRef,
    BeforeTransmitInterceptorContextMut,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Throttle,
    ServerError,
    LostAfterCommit,
}

impl Fault {
    pub const ALL: [Fault; 3] = [Fault::Throttle, Fault::ServerError, Fault::LostAfterCommit];
}

/// Which call to fail, how, and for how many attempts.
#[derive(Clone, Debug)]
pub struct FaultRule {
    /// 1-based number of the call among all calls since the last [`FaultInjector::reset`]; `None`:
    /// every call of `operation`.
    pub call: Option<usize>,
    /// Operation name (`TransactWriteItems`, `PutRecords`, …); `None`: any.
    pub operation: Option<String>,
    pub fault: Fault,
    /// Attempts of the chosen call that fail (the SDK makes up to its `max_attempts`).
    pub attempts: usize,
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<FaultRule>,
    calls: Vec<String>,
    injected: Vec<(usize, String, Fault)>,
}

/// The interceptor; clone it into the SDK client configs and keep a handle to steer it.
#[derive(Clone, Debug, Default)]
pub struct FaultInjector(Arc<Mutex<State>>);

/// Per operation invocation: the fault and how many attempts are still to fail.
#[derive(Clone, Debug)]
struct CallFault {
    call: usize,
    fault: Fault,
    remaining: usize,
}

impl Storable for CallFault {
    type Storer = StoreReplace<Self>;
}

/// Per attempt: the fault to put in place of the answer.
#[derive(Clone, Debug)]
struct AttemptFault(Option<Fault>);

impl Storable for AttemptFault {
    type Storer = StoreReplace<Self>;
}

impl FaultInjector {
    /// Replaces the rules and forgets the calls seen so far.
    pub fn set(&self, rules: Vec<FaultRule>) {
        if let Ok(mut s) = self.0.lock() {
            *s = State { rules, ..State::default() };
        }
    }

    pub fn reset(&self) {
        self.set(Vec::new());
    }

    /// Operation names of the calls since the last reset, in order.
    pub fn calls(&self) -> Vec<String> {
        self.0.lock().map(|s| s.calls.clone()).unwrap_or_default()
    }

    /// The faults injected since the last reset: (call number, operation, fault), one per attempt.
    pub fn injected(&self) -> Vec<(usize, String, Fault)> {
        self.0.lock().map(|s| s.injected.clone()).unwrap_or_default()
    }
}

fn operation(cfg: &ConfigBag) -> String {
    cfg.load::<Metadata>().map(|m| m.name().to_owned()).unwrap_or_default()
}

impl Intercept for FaultInjector {
    fn name(&self) -> &'static str {
        "postflow-fault-injector"
    }

    fn read_before_serialization(
        &self,
        _ctx: &BeforeSerializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = operation(cfg);
        let Ok(mut s) = self.0.lock() else { return Ok(()) };
        s.calls.push(op.clone());
        let n = s.calls.len();
        let rule = s
            .rules
            .iter()
            .find(|r| r.call.is_none_or(|c| c == n) && r.operation.as_deref().is_none_or(|o| o == op));
        let fault = rule.map(|r| CallFault { call: n, fault: r.fault, remaining: r.attempts });
        drop(s);
        if let Some(f) = fault {
            cfg.interceptor_state().store_put(f);
        }
        Ok(())
    }

    fn modify_before_transmit(
        &self,
        ctx: &mut BeforeTransmitInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(mut call) = cfg.load::<CallFault>().cloned().filter(|c| c.remaining > 0) else {
            cfg.interceptor_state().store_put(AttemptFault(None));
            return Ok(());
        };
        call.remaining -= 1;
        if call.fault != Fault::LostAfterCommit {
            // The server must not act on it: send it to an operation that does not exist.
            let req = ctx.request_mut();
            if let Some(target) = req.headers().get("x-amz-target").map(str::to_owned) {
                let service = target.split('.').next().unwrap_or_default().to_owned();
                req.headers_mut().insert("x-amz-target", format!("{service}.PostflowInjectedFault"));
            }
        }
        if let Ok(mut s) = self.0.lock() {
            s.injected.push((call.call, operation(cfg), call.fault));
        }
        cfg.interceptor_state().store_put(AttemptFault(Some(call.fault)));
        cfg.interceptor_state().store_put(call);
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        ctx: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(AttemptFault(Some(fault))) = cfg.load::<AttemptFault>().cloned() else { return Ok(()) };
        let (status, kind) = match fault {
            Fault::Throttle => (400, "ThrottlingException"),
            Fault::ServerError | Fault::LostAfterCommit => (500, "InternalServerError"),
        };
        let body = format!(r#"{{"__type":"{kind}","message":"injected by the test"}}"#);
        let mut resp =
            HttpResponse::new(status.try_into().map_err(|e| format!("status: {e:?}"))?, SdkBody::from(body));
        resp.headers_mut().insert("content-type", "application/x-amz-json-1.0");
        *ctx.response_mut() = resp;
        cfg.interceptor_state().store_put(AttemptFault(None));
        Ok(())
    }
}
