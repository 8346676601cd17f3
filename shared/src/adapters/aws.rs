//! AWS adapters: SDK client construction, error mapping, the DynamoDB rate limiter, the Kinesis sink
//! ([`super::kinesis`], re-exported here), and a call recorder (an SDK interceptor) used by tests and
//! benchmarks to count sequential round trips.
//!
//! Clients are built once per cold start: in the Lambdas over [`lambda_sdk_config`] (the environment
//! Lambda sets), in the local CLI and the tests over [`sdk_config`] (the SDK's default chain). Both
//! honour `AWS_ENDPOINT_URL_DYNAMODB` / `AWS_ENDPOINT_URL_KINESIS` / `AWS_ENDPOINT_URL`, which point
//! them at local emulators without any code change.

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

/// Lambda-friendly timeouts: a function answers within seconds or the caller retries.
fn timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(3))
        .operation_timeout(Duration::from_secs(8))
        .build()
}

use super::http_client::https_client;

/// The SDK configuration of the local CLI and the tests: the SDK's whole default chain (profiles,
/// SSO, web identity, IMDS, the endpoint variables), so a developer's usual AWS setup works.
pub async fn sdk_config() -> aws_config::SdkConfig {
    config_loader().timeout_config(timeouts()).load().await
}

/// `aws_config::defaults` with our HTTPS client.
pub fn config_loader() -> aws_config::ConfigLoader {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https_client())
}

/// The SDK configuration of a Lambda function, from what Lambda puts in the environment and nothing
/// else: `AWS_REGION` (or `AWS_DEFAULT_REGION`), the execution role's `AWS_ACCESS_KEY_ID` /
/// `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, and the endpoint variables (`AWS_ENDPOINT_URL`,
/// `AWS_ENDPOINT_URL_<SERVICE>`, `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`) that point the functions at
/// emulators. The SDK's default chain (`aws_config::load`) also reads profile files and can ask IMDS,
/// ECS, SSO and STS: none of which a Lambda uses, and which were 1.0–1.5 MB of each binary and work at
/// each cold start (BENCHMARKS §11). Standard retries (3 attempts) and [`timeouts`], as the chain
/// would set. Fails when the credentials are missing, naming the variables.
pub fn lambda_sdk_config() -> Result<aws_config::SdkConfig, String> {
    lambda_sdk_config_from(std::env::vars())
}

/// [`lambda_sdk_config`] over given variables (tests).
pub fn lambda_sdk_config_from(
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<aws_config::SdkConfig, String> {
    use aws_config::environment::EnvironmentVariableCredentialsProvider;
    use aws_credential_types::provider::SharedCredentialsProvider;
    let vars: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(k, v)| k.starts_with("AWS_") && !v.trim().is_empty())
        .map(|(k, v)| (k, v.trim().to_owned()))
        .collect();
    let get = |name: &str| var(&vars, name).map(str::to_owned);
    if get("AWS_ACCESS_KEY_ID").is_none() || get("AWS_SECRET_ACCESS_KEY").is_none() {
        return Err("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set (Lambda sets them from the \
                    execution role)"
            .into());
    }
    let region = get("AWS_REGION").or_else(|| get("AWS_DEFAULT_REGION")).map(aws_config::Region::new);
    let ignore_endpoints =
        get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let endpoints = EnvEndpoints(if ignore_endpoints {
        Vec::new()
    } else {
        vars.iter().filter(|(k, _)| k.starts_with("AWS_ENDPOINT_URL")).cloned().collect()
    });
    Ok(aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(region)
        .credentials_provider(SharedCredentialsProvider::new(EnvironmentVariableCredentialsProvider::new()))
        .retry_config(aws_config::retry::RetryConfig::standard())
        .timeout_config(timeouts())
        .http_client(https_client())
        .service_config(endpoints)
        .build())
}

/// The endpoint variables, read once at cold start. A client asks for its service's endpoint with the
/// global variable's name and its service id; as in the SDK's own loader, `AWS_ENDPOINT_URL_<ID>`
/// (the id upper-cased, spaces as `_`: `AWS_ENDPOINT_URL_DYNAMODB`) wins over `AWS_ENDPOINT_URL`.
#[derive(Debug)]
struct EnvEndpoints(Vec<(String, String)>);

impl aws_types::service_config::LoadServiceConfig for EnvEndpoints {
    fn load_config(&self, key: aws_types::service_config::ServiceConfigKey<'_>) -> Option<String> {
        let service = format!("{}_{}", key.env(), key.service_id().to_uppercase().replace(' ', "_"));
        var(&self.0, &service).or_else(|| var(&self.0, key.env())).map(str::to_owned)
    }
}

/// The value of variable `name` among `vars`.
fn var<'a>(vars: &'a [(String, String)], name: &str) -> Option<&'a str> {
    vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
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

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn lambda_config_reads_region_credentials_and_endpoints_from_the_environment() {
        use aws_types::service_config::ServiceConfigKey;
        let env = [
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
            ("HOME", "/root"),
        ];
        let sdk = lambda_sdk_config_from(vars(&env)).unwrap();
        assert_eq!(sdk.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert!(sdk.credentials_provider().is_some());
        assert_eq!(sdk.retry_config().map(|r| r.max_attempts()), Some(3));
        // What the generated clients ask (`service_config_key(id, "AWS_ENDPOINT_URL", "endpoint_url")`).
        let key = |id| {
            ServiceConfigKey::builder().service_id(id).env("AWS_ENDPOINT_URL").profile("endpoint_url").build()
        };
        let svc = sdk.service_config().unwrap();
        assert_eq!(svc.load_config(key("DynamoDB").unwrap()).as_deref(), Some("http://127.0.0.1:8000"));
        assert_eq!(svc.load_config(key("Kinesis").unwrap()).as_deref(), Some("http://127.0.0.1:4566"));
        // The clients take them as the default chain's configuration would give them.
        let ddb = aws_sdk_dynamodb::config::Config::from(&sdk);
        assert_eq!(ddb.region().map(|r| r.as_ref()), Some("eu-west-1"));

        let mut ignored = env.to_vec();
        ignored.push(("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"));
        let sdk = lambda_sdk_config_from(vars(&ignored)).unwrap();
        assert_eq!(sdk.service_config().unwrap().load_config(key("DynamoDB").unwrap()), None);

        let fallback =
            [("AWS_ACCESS_KEY_ID", "a"), ("AWS_SECRET_ACCESS_KEY", "b"), ("AWS_DEFAULT_REGION", "us-west-2")];
        let sdk = lambda_sdk_config_from(vars(&fallback)).unwrap();
        assert_eq!(sdk.region().map(|r| r.as_ref()), Some("us-west-2"));
        assert_eq!(sdk.service_config().unwrap().load_config(key("DynamoDB").unwrap()), None);
        let err = lambda_sdk_config_from(vars(&[("AWS_REGION", "us-east-1")])).unwrap_err();
        assert!(err.contains("AWS_ACCESS_KEY_ID"), "{err}");
    }

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
