//! Test harness for enroll-authenticator: the handler over the in-memory table or DynamoDB Local.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use enroll_authenticator::EnrollAuthenticator;
use serde_json::{Value, json};
use shared::adapters::aws::{CallRecorder, DynamoRateLimiter};
use shared::adapters::dynamo_table::DynamoTable;
use shared::adapters::memory::{MemoryRateLimiter, MemorySmsOutbox, MemoryTable};
use shared::backends::Backends;
use shared::config::Config;
use shared::domain::otp::Totp;
use shared::domain::user::{InterfaceType, UserState};
use shared::http::{ApiRequest, Claims, Reply};
use shared::ports::{ManualClock, RateLimiter};
use shared::secret::Secret;
use shared::storage::item::Item;
use shared::storage::seed::{Seed, load_seed};
use shared::storage::table::Table;
use shared::storage::users::load_user;

/// 2023-11-14T22:13:20Z.
pub const NOW: i64 = 1_700_000_000;
pub const TOKEN: &str = "5f0a9c1e2b3d4f5061728394a5b6c7d8e9f00112233445566778899aabbccddee";

pub struct Env {
    pub table: Arc<dyn Table>,
    pub handler: Arc<EnrollAuthenticator>,
    pub accept: Arc<accept_invite::AcceptInvite>,
    pub clock: ManualClock,
    pub config: Arc<Config>,
    pub recorder: Option<CallRecorder>,
    pub outbox: Arc<MemorySmsOutbox>,
}

pub fn config_with(f: impl FnOnce(&mut Config)) -> Config {
    let mut c = Config::for_local("unused", "unused");
    f(&mut c);
    c
}

pub async fn memory_env(config: Config) -> Env {
    build(Arc::new(MemoryTable::default()), Arc::new(MemoryRateLimiter::default()), None, config)
}

pub async fn dynamo_env(test: &str, config: Config) -> Option<Env> {
    let aws = shared::testing::aws_env(test).await?;
    let table = Arc::new(DynamoTable::new(aws.clients.dynamodb.clone(), &aws.table));
    let limiter = Arc::new(DynamoRateLimiter::new(aws.clients.dynamodb.clone(), &aws.table));
    Some(build(table, limiter, Some(aws.recorder), config))
}

fn build(
    table: Arc<dyn Table>,
    limiter: Arc<dyn RateLimiter>,
    recorder: Option<CallRecorder>,
    config: Config,
) -> Env {
    let clock = ManualClock::at_secs(NOW);
    let config = Arc::new(config);
    let outbox = Arc::new(MemorySmsOutbox::default());
    let backends = Backends::new(table.clone(), limiter).with_clock(Arc::new(clock.clone()));
    let handler = Arc::new(EnrollAuthenticator::build(config.clone(), &backends, outbox.clone()).unwrap());
    let accept = Arc::new(accept_invite::AcceptInvite::build(config.clone(), &backends));
    Env { table, handler, accept, clock, config, recorder, outbox }
}

pub fn claims(sub: &str) -> Claims {
    Claims {
        sub: sub.into(),
        email: Some("admin@localhost".into()),
        email_verified: true,
        auth_time: Some(NOW - 60),
        superuser: false,
    }
}

pub fn request(method: &str, user: &str, interface: &str, caller: Option<Claims>, body: Value) -> ApiRequest {
    let mut path_params = BTreeMap::new();
    path_params.insert("user_id".to_owned(), user.to_owned());
    path_params.insert("interface_id".to_owned(), interface.to_owned());
    ApiRequest {
        method: method.into(),
        path: format!("/api/0/users/{user}/authenticators/{interface}/enroll/"),
        path_params,
        headers: vec![("content-type".into(), "application/json".into())],
        body: if body.is_null() { Vec::new() } else { body.to_string().into_bytes() },
        claims: caller,
        source_ip: Some("127.0.0.1".into()),
        user_agent: Some("pytest/1.0".into()),
        ..Default::default()
    }
}

impl Env {
    pub async fn get(&self, user: &str, interface: &str, caller: Option<Claims>) -> Reply {
        self.handler.handle_api(&request("GET", user, interface, caller, Value::Null)).await
    }

    pub async fn post(&self, user: &str, interface: &str, caller: Option<Claims>, body: Value) -> Reply {
        self.handler.handle_api(&request("POST", user, interface, caller, body)).await
    }

    pub async fn post_with_cookie(&self, caller: Claims, body: Value, cookie: &str) -> Reply {
        self.post_to_with_cookie("totp", caller, body, Some(cookie)).await
    }

    pub async fn post_to_with_cookie(
        &self,
        interface: &str,
        caller: Claims,
        body: Value,
        cookie: Option<&str>,
    ) -> Reply {
        let mut req = request("POST", "me", interface, Some(caller), body);
        if let Some(cookie) = cookie {
            req.cookies.insert("postflow-invite".into(), cookie.into());
        }
        self.handler.handle_api(&req).await
    }

    /// The code in the last text sent to `e164`.
    pub fn texted_code(&self, e164: &str) -> String {
        let sent = self.outbox.sent_to(e164);
        let last = sent.last().expect("a text was sent");
        last.text.expose().split(' ').next().unwrap().to_owned()
    }

    /// A complete enrollment in `interface` (totp, sms or u2f) as a client does it, with the invite
    /// cookie when given; the body carries Sentry's frontend extras (`memberId`, `token`).
    pub async fn enroll_via(&self, interface: &str, caller: &Claims, cookie: Option<&str>) -> Reply {
        let extras = json!({"memberId": 20, "token": TOKEN});
        let mut body = match interface {
            "totp" => {
                let secret = self.issue_secret(caller).await;
                json!({"secret": secret, "otp": self.code(&secret)})
            }
            "sms" => {
                let r = self.get("me", "sms", Some(caller.clone())).await;
                assert_eq!(r.status, 200, "{:?}", r.body);
                let secret = r.json_body()["secret"].as_str().unwrap().to_owned();
                let send = json!({"secret": secret, "phone": PHONE});
                let r = self.post_to_with_cookie("sms", caller.clone(), send, cookie).await;
                assert_eq!(r.status, 204, "{:?}", r.body);
                json!({"secret": secret, "phone": PHONE, "otp": self.texted_code(PHONE_E164)})
            }
            "u2f" => {
                let r = self.get("me", "u2f", Some(caller.clone())).await;
                assert_eq!(r.status, 200, "{:?}", r.body);
                let response = soft_token_register(&r.json_body()["challenge"], "https://localhost");
                json!({"deviceName": "device name", "challenge": "challenge", "response": response})
            }
            other => panic!("no enrollment for {other}"),
        };
        body.as_object_mut().unwrap().extend(extras.as_object().unwrap().clone());
        self.post_to_with_cookie(interface, caller.clone(), body, cookie).await
    }

    pub async fn user(&self, id: &str) -> UserState {
        load_user(self.table.as_ref(), id).await.unwrap()
    }

    pub async fn activities(&self, id: &str) -> Vec<Item> {
        self.table.query(&format!("USERSEC#{id}"), None).await.unwrap()
    }

    pub async fn seed(&self, v: Value) {
        let seed: Seed = serde_json::from_value(v).unwrap();
        load_seed(self.table.as_ref(), &seed, NOW * 1000).await.unwrap();
    }

    /// GET the TOTP interface and return the issued secret.
    pub async fn issue_secret(&self, caller: &Claims) -> String {
        let r = self.get("me", "totp", Some(caller.clone())).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.json_body()["secret"].as_str().unwrap().to_owned()
    }

    pub fn code(&self, secret: &str) -> String {
        code_at(secret, self.clock_now())
    }

    pub fn clock_now(&self) -> i64 {
        use shared::ports::Clock;
        self.clock.now_secs()
    }

    /// GET + POST with a valid code: a complete TOTP enrollment.
    pub async fn enroll_totp(&self, caller: &Claims) -> Reply {
        let secret = self.issue_secret(caller).await;
        let code = self.code(&secret);
        self.post("me", "totp", Some(caller.clone()), json!({"secret": secret, "otp": code})).await
    }
}

/// The phone number the SMS tests use, as posted and as E.164.
pub const PHONE: &str = "2345678900";
pub const PHONE_E164: &str = "+12345678900";

/// Registers a new software security key (webauthn-authenticator-rs's soft token) for the `challenge`
/// object a GET returned, as a browser at `origin` would; returns the `response` JSON to POST.
pub fn soft_token_register(challenge: &Value, origin: &str) -> String {
    use webauthn_authenticator_rs::WebauthnAuthenticator;
    let (mut token, _ca) = webauthn_authenticator_rs::softtoken::SoftToken::new(true).unwrap();
    let options: webauthn_rs::prelude::CreationChallengeResponse =
        serde_json::from_value(json!({"publicKey": challenge["publicKey"]})).unwrap();
    let credential =
        token.do_registration(webauthn_rs::prelude::Url::parse(origin).unwrap(), options).unwrap();
    serde_json::to_string(&credential).unwrap()
}

pub fn code_at(secret: &str, ts: i64) -> String {
    let t = Totp::authenticator_app(&Secret::new(secret)).unwrap();
    t.code_at_counter(t.counter_at(ts) as u64)
}

pub fn has(u: &UserState, kind: InterfaceType) -> bool {
    u.authenticator(kind).is_some()
}

/// Runs a scenario against the in-memory adapters and against DynamoDB Local.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $config:expr, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test]
            async fn memory() {
                let env = common::memory_env($config).await;
                ($body)(env).await;
            }
            #[tokio::test]
            async fn dynamodb() {
                let Some(env) = common::dynamo_env(stringify!($name), $config).await else { return };
                ($body)(env).await;
            }
        }
    };
}
