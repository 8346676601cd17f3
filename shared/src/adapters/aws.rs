//! AWS adapters: SDK client construction, error mapping, the DynamoDB rate limiter, the Kinesis sink
//! ([`super::kinesis`], re-exported here), and a call recorder (an SDK interceptor) used by tests and benchmarks to count sequential round trips.
//!
//! Clients are built once per cold start by [`AwsClients::load`]. Endpoints come from the SDK's standard
//! configuration chain, so `AWS_ENDPOINT_URL_DYNAMODB` / `AWS_ENDPOINT_URL_KINESIS` point them at local
//! emulators without any code change.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::error::StoreError;
use crate::ports::{RateDecision, RateLimiter, bucket};
use crate::storage::{attr, rate_limit_key};

// The Kinesis half (`stream` feature), under the paths it always had.
#[cfg(feature = "stream")]
pub use super::kinesis::*;

/// The shared SDK configuration (region, credentials, endpoint overrides) with Lambda-friendly timeouts.
pub async fn sdk_config() -> aws_config::SdkConfig {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(3))
        .operation_timeout(Duration::from_secs(8))
        .build();
    config_loader().timeout_config(timeouts).load().await
}

/// `aws_config::defaults` with the HTTPS client every client of ours uses: hyper + rustls over ring
/// (the SDK's default is aws-lc, a C library built with cmake: slower to build, larger binaries).
pub fn config_loader() -> aws_config::ConfigLoader {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    let https =
        aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https)
}

/// A DynamoDB client. Functions that need only DynamoDB build only this one, so the Kinesis client
/// is not linked into their binaries.
pub fn dynamodb_client(
    sdk: &aws_config::SdkConfig,
    recorder: Option<CallRecorder>,
) -> aws_sdk_dynamodb::Client {
    let mut b = aws_sdk_dynamodb::config::Builder::from(sdk);
    if let Some(r) = recorder {
        b = b.interceptor(r);
    }
    aws_sdk_dynamodb::Client::from_conf(b.build())
}

/// Maps an SDK error to a [`StoreError`]: throttling codes → `Throttled`, timeouts, connection failures
/// and 5xx → `Unavailable`, anything else → `Other`.
pub fn sdk_err<E>(service: &'static str, err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    const THROTTLING: &[&str] = &[
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "TooManyRequestsException",
    ];
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Unavailable { service, message: format!("{err:?}").chars().take(300).collect() }
        }
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or_default();
            if THROTTLING.contains(&code) {
                StoreError::Throttled { service }
            } else if se.raw().status().is_server_error()
                || code == "InternalServerError"
                || code == "InternalFailure"
            {
                StoreError::Unavailable { service, message: code.to_owned() }
            } else {
                StoreError::Other {
                    service,
                    message: format!("{code}: {}", se.err().message().unwrap_or_default()),
                }
            }
        }
        _ => StoreError::Other { service, message: err.to_string() },
    }
}

pub fn ddb_err<E>(err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    sdk_err("dynamodb", err)
}

/// The fixed-window limiter on DynamoDB: one `UpdateItem` (`ADD count :one`, TTL set on creation) per
/// call; the counter's new value decides. Atomic under concurrency by construction.
#[derive(Clone, Debug)]
pub struct DynamoRateLimiter {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoRateLimiter {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }
}

#[async_trait]
impl RateLimiter for DynamoRateLimiter {
    async fn hit_n(
        &self,
        key: &str,
        n: u64,
        limit: u64,
        window_secs: u64,
        now_secs: i64,
    ) -> Result<RateDecision, StoreError> {
        let (b, left) = bucket(now_secs, window_secs);
        let (pk, sk) = rate_limit_key(key, window_secs, b);
        // Keep the item a minute past its bucket so clock skew between Lambdas cannot resurrect a count.
        let ttl = now_secs + left as i64 + 60;
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(attr::PK, AttributeValue::S(pk))
            .key(attr::SK, AttributeValue::S(sk))
            .update_expression("ADD #c :one SET #ttl = if_not_exists(#ttl, :ttl)")
            .expression_attribute_names("#c", "count")
            .expression_attribute_names("#ttl", attr::TTL)
            .expression_attribute_values(":one", AttributeValue::N(n.to_string()))
            .expression_attribute_values(":ttl", AttributeValue::N(ttl.to_string()))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(ddb_err)?;
        let count = out
            .attributes()
            .and_then(|a| a.get("count"))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| StoreError::corrupt("rate-limit counter without a numeric count"))?;
        Ok(if count > limit {
            RateDecision::Limited { count, retry_after_secs: left }
        } else {
            RateDecision::Allowed { count }
        })
    }
}

/// One recorded SDK call.
#[derive(Clone, Debug)]
pub struct RecordedCall {
    pub service: String,
    pub operation: String,
    pub start: Instant,
    pub end: Option<Instant>,
}

/// An SDK interceptor that records every operation (service, name, start, end). Attach it with
/// [`AwsClients::load`]; read [`CallRecorder::sequential_round_trips`] after a request.
#[derive(Clone, Debug, Default)]
pub struct CallRecorder(Arc<Mutex<Vec<RecordedCall>>>);

impl CallRecorder {
    pub fn calls(&self) -> Vec<RecordedCall> {
        self.0.lock().map(|c| c.clone()).unwrap_or_default()
    }

    pub fn reset(&self) {
        if let Ok(mut c) = self.0.lock() {
            c.clear();
        }
    }

    pub fn operations(&self) -> Vec<String> {
        self.calls().into_iter().map(|c| c.operation).collect()
    }

    /// The length of the longest chain of calls where each starts after the previous one ended: the
    /// number of sequential round trips (concurrent calls count once).
    pub fn sequential_round_trips(&self) -> usize {
        longest_chain(&self.calls())
    }
}

fn longest_chain(calls: &[RecordedCall]) -> usize {
    let mut calls: Vec<(Instant, Instant)> =
        calls.iter().map(|c| (c.start, c.end.unwrap_or(c.start))).collect();
    calls.sort();
    let mut depth = vec![1usize; calls.len()];
    for i in 0..calls.len() {
        for j in 0..i {
            if calls[j].1 <= calls[i].0 {
                depth[i] = depth[i].max(depth[j] + 1);
            }
        }
    }
    depth.into_iter().max().unwrap_or(0)
}

impl Intercept for CallRecorder {
    fn name(&self) -> &'static str {
        "postflow-call-recorder"
    }

    // `read_before_serialization`, not `read_before_execution`: client-level interceptors see the
    // execution hook before the operation's configuration (which carries its name) is applied.
    fn read_before_serialization(
        &self,
        _ctx: &BeforeSerializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let (service, operation) =
            cfg.load::<Metadata>().map(|m| (m.service().to_owned(), m.name().to_owned())).unwrap_or_default();
        if let Ok(mut c) = self.0.lock() {
            c.push(RecordedCall { service, operation, start: Instant::now(), end: None });
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        _ctx: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let op = cfg.load::<Metadata>().map(|m| m.name().to_owned()).unwrap_or_default();
        if let Ok(mut c) = self.0.lock()
            && let Some(call) = c.iter_mut().rev().find(|c| c.end.is_none() && c.operation == op)
        {
            call.end = Some(Instant::now());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_chain_counts_concurrent_calls_once() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let call = |s, e| RecordedCall {
            service: "s".into(),
            operation: "o".into(),
            start: ms(s),
            end: Some(ms(e)),
        };
        assert_eq!(longest_chain(&[]), 0);
        // two concurrent reads, then a write: 2 round trips
        assert_eq!(longest_chain(&[call(0, 10), call(1, 12), call(13, 20)]), 2);
        // three sequential
        assert_eq!(longest_chain(&[call(0, 1), call(2, 3), call(4, 5)]), 3);
    }
}
