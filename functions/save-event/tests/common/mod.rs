//! Test harness for save-event: the handler over the in-memory table and stream, or DynamoDB Local and
//! ministack's Kinesis; request builders from captured SDK traffic and from event JSON.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use base64::Engine;
use save_event::SaveEvent;
use serde_json::{Value, json};
use shared::adapters::aws::{CallRecorder, DynamoRateLimiter, KinesisFeed, kinesis_stream, read_all_records};
use shared::adapters::dynamo_table::DynamoTable;
use shared::adapters::memory::{MemoryRateLimiter, MemoryStream, MemoryTable, memory_stream};
use shared::backends::Backends;
use shared::config::Config;
use shared::http::{ApiRequest, Reply};
use shared::ports::{Clock, EventStream, ManualClock, OsRandom, RateLimiter, StoredRecord};
use shared::save::aggregate::{GroupView, MemoryFeed, Pump, StreamFeed, group_view};
use shared::storage::seed::{Seed, load_seed};
use shared::storage::table::Table;

pub const KEY: &str = "c0ffee0c0ffee0c0ffee0c0ffee0c0ff";
/// 2026-11-26T07:13:00Z: "now" for the handler, just after the fixtures were captured (07:12).
pub const NOW: i64 = 1_795_677_180;

pub enum StreamSide {
    Memory(Arc<MemoryStream>),
    Kinesis(aws_sdk_kinesis::Client, String),
}

pub struct Env {
    pub table: Arc<dyn Table>,
    pub side: StreamSide,
    pub handler: Arc<SaveEvent>,
    pub clock: ManualClock,
    pub recorder: Option<CallRecorder>,
    /// The aggregation (`aggregate-events` on AWS), run after every [`Env::send`].
    pub pump: Pump,
}

/// The DSN key of project 44, whose grouping settings carry stack-trace and fingerprinting rules.
pub const RULES_KEY: &str = "44444444444444444444444444444444";

pub fn seed_json() -> Value {
    json!({
        "organizations": [{"id": 1, "slug": "acme", "name": "Acme"}],
        "projects": [
            {"id": 42, "organization_id": 1, "slug": "backend", "platform": "python"},
            {"id": 43, "organization_id": 1, "slug": "other"},
            {"id": 44, "organization_id": 1, "slug": "rules", "platform": "python",
             "grouping_enhancements": "# helpers are noise\nstack.function:helper_* -group\nstack.module:vendored.* -app",
             "fingerprinting_rules": "error.type:DatabaseUnavailable -> system-down title=\"Database down: {{ transaction }}\""}
        ],
        "keys": [
            {"public_key": KEY, "project_id": 42, "id": 7},
            {"public_key": "0123456789abcdef0123456789abcdef", "project_id": 43, "id": 8},
            {"public_key": "disabled0disabled0disabled0disab", "project_id": 42, "id": 9, "active": false},
            {"public_key": RULES_KEY, "project_id": 44, "id": 10}
        ]
    })
}

fn build(
    table: Arc<dyn Table>,
    stream: Arc<dyn EventStream>,
    side: StreamSide,
    limiter: Arc<dyn RateLimiter>,
    recorder: Option<CallRecorder>,
    config: Config,
) -> Env {
    let clock = ManualClock::at_secs(NOW);
    let feed: Arc<dyn StreamFeed> = match &side {
        StreamSide::Memory(m) => {
            let m = m.clone();
            Arc::new(MemoryFeed::new(move |i| m.sink().records_since(i), |_| 0))
        }
        StreamSide::Kinesis(c, name) => Arc::new(KinesisFeed::new(c.clone(), name)),
    };
    let pump = Pump::new(table.clone(), feed);
    let handler = Arc::new(SaveEvent::build(
        Arc::new(config),
        &Backends::new(table.clone(), limiter).with_clock(Arc::new(clock.clone())),
        stream,
    ));
    Env { table, side, handler, clock, recorder, pump }
}

pub async fn memory_env_with(config: Config) -> Env {
    memory_env_on_with(Arc::new(MemoryTable::default()), config).await
}

/// The in-memory stream over `table` (e.g. a call-counting wrapper of a memory table), seeded.
pub async fn memory_env_on(table: Arc<dyn Table>) -> Env {
    memory_env_on_with(table, Config::for_local("t", "s")).await
}

pub async fn memory_env_on_with(table: Arc<dyn Table>, config: Config) -> Env {
    let stream = Arc::new(memory_stream(3));
    let env = build(
        table,
        stream.clone(),
        StreamSide::Memory(stream),
        Arc::new(MemoryRateLimiter::default()),
        None,
        config,
    );
    env.seed().await;
    env
}

/// An event of about `bytes` bytes of JSON, almost all of it `extra.a`, an array of zeros: the
/// shape that costs the most memory once parsed (about 40 bytes of tree per byte of JSON).
pub fn zeros_event(bytes: usize) -> Value {
    let mut e = make_event(json!({"message": "zeros"}));
    let base = e.to_string().len() + r#","extra":{"a":[]}"#.len();
    let n = bytes.saturating_sub(base) / 2;
    e["extra"] = json!({ "a": vec![0u8; n] });
    e
}

/// An event of about `bytes` of JSON whose `extra` holds strings of 10,000 characters (each a bag
/// Relay keeps whole): large once parsed and stored, unlike [`zeros_event`], which is trimmed.
pub fn strings_event(bytes: usize) -> Value {
    let mut e = make_event(json!({"message": "strings"}));
    let base = e.to_string().len() + r#","extra":{}"#.len();
    let mut left = bytes.saturating_sub(base);
    let mut extra = serde_json::Map::new();
    while left > 0 {
        let key = format!("k{:04}", extra.len());
        let overhead = key.len() + 6; // "key":"…",
        let len = left.saturating_sub(overhead).min(10_000);
        left = left.saturating_sub(overhead + len);
        extra.insert(key, Value::from("s".repeat(len)));
    }
    e["extra"] = Value::Object(extra);
    e
}

/// Android's ANR event of Sentry's grouping corpus (every thread's stack: the densest real event
/// there, ~6 bytes of tree per byte) with its threads repeated up to `bytes`.
pub fn android_anr_event(bytes: usize) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/sentry-grouping-corpus/inputs/android-anr.json");
    let mut e: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let fresh = make_event(json!({}));
    e["event_id"] = fresh["event_id"].clone();
    e["timestamp"] = fresh["timestamp"].clone();
    let threads = e["threads"]["values"].as_array().unwrap().clone();
    let mut i = 0;
    while e.to_string().len() < bytes {
        let mut t = threads[i % threads.len()].clone();
        t["id"] = Value::from(1000 + i);
        e["threads"]["values"].as_array_mut().unwrap().push(t);
        i += 1;
    }
    e
}

/// A raw envelope body: a header (`dsn` when given) and one item per payload.
pub fn envelope_body(dsn: Option<&str>, items: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut body = match dsn {
        Some(dsn) => json!({ "dsn": dsn }).to_string().into_bytes(),
        None => b"{}".to_vec(),
    };
    for (ty, payload) in items {
        body.push(b'\n');
        body.extend_from_slice(json!({"type": ty, "length": payload.len()}).to_string().as_bytes());
        body.push(b'\n');
        body.extend_from_slice(payload);
    }
    body.push(b'\n');
    body
}

pub async fn memory_env() -> Env {
    memory_env_with(Config::for_local("t", "s")).await
}

/// DynamoDB Local + Kinesis on ministack.
pub async fn aws_env(test: &str) -> Option<Env> {
    let aws = shared::testing::aws_env(test).await?;
    let table = Arc::new(DynamoTable::new(aws.clients.dynamodb.clone(), &aws.table));
    let stream = Arc::new(kinesis_stream(aws.clients.kinesis.clone(), &aws.stream, 5));
    let limiter = Arc::new(DynamoRateLimiter::new(aws.clients.dynamodb.clone(), &aws.table));
    let env = build(
        table,
        stream,
        StreamSide::Kinesis(aws.clients.kinesis.clone(), aws.stream.clone()),
        limiter,
        Some(aws.recorder),
        Config::for_local("t", "s"),
    );
    env.seed().await;
    Some(env)
}

/// DynamoDB Local with the in-memory stream (whose faults can be injected).
pub async fn dynamo_with_memory_stream(test: &str) -> Option<Env> {
    let aws = shared::testing::aws_env(test).await?;
    let table = Arc::new(DynamoTable::new(aws.clients.dynamodb.clone(), &aws.table));
    let stream = Arc::new(memory_stream(3));
    let env = build(
        table,
        stream.clone(),
        StreamSide::Memory(stream),
        Arc::new(MemoryRateLimiter::default()),
        Some(aws.recorder),
        Config::for_local("t", "s"),
    );
    env.seed().await;
    Some(env)
}

impl Env {
    async fn seed(&self) {
        let seed: Seed = serde_json::from_value(seed_json()).unwrap();
        load_seed(self.table.as_ref(), &seed, NOW * 1000).await.unwrap();
    }

    /// The request, then the aggregation of what it streamed.
    pub async fn send(&self, req: &ApiRequest) -> Reply {
        let r = self.handler.handle_api(req).await;
        self.aggregate().await;
        r
    }

    /// Counts what is on the stream (what `aggregate-events` does on AWS after its batching window).
    pub async fn aggregate(&self) {
        self.pump.drain(self.clock.now_secs()).await.unwrap();
    }

    /// The group as a reader sees it (its row and the aggregated counts).
    pub async fn group(&self, id: u64) -> GroupView {
        group_view(self.table.as_ref(), id).await.unwrap().expect("group")
    }

    pub async fn records(&self) -> Vec<StoredRecord> {
        match &self.side {
            StreamSide::Memory(s) => s.sink().records(),
            StreamSide::Kinesis(c, name) => read_all_records(c, name).await.unwrap(),
        }
    }

    /// The eventstream messages, parsed.
    pub async fn messages(&self) -> Vec<Value> {
        self.records().await.iter().map(|r| serde_json::from_slice(&r.data).unwrap()).collect()
    }

    pub fn memory_stream(&self) -> &MemoryStream {
        match &self.side {
            StreamSide::Memory(s) => s,
            StreamSide::Kinesis(..) => panic!("not a memory stream"),
        }
    }

    /// Every item of the table's event-related partitions (to prove nothing was written).
    pub async fn event_items(&self) -> usize {
        let mut n = 0;
        for pk in ["PROJECT#42", "ORG#1"] {
            n += self
                .table
                .query(pk, None)
                .await
                .unwrap()
                .iter()
                .filter(|i| {
                    let sk = i.get("sk").map(|v| format!("{v:?}")).unwrap_or_default();
                    !sk.contains("\"PROJECT\"") && !sk.contains("\"ORG\"")
                })
                .count();
        }
        n
    }
}

/// A request as captured from a real SDK (`tests/fixtures/sdk/<sdk>/<name>.request.json`).
pub fn fixture(sdk: &str, name: &str) -> ApiRequest {
    let path = format!("{}/../../tests/fixtures/sdk/{sdk}/{name}.request.json", env!("CARGO_MANIFEST_DIR"));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut req = ApiRequest {
        method: "POST".into(),
        path: v["path"].as_str().unwrap().into(),
        raw_query: v["query"].as_str().unwrap_or_default().into(),
        headers: v["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str().unwrap().to_owned()))
            .collect(),
        body: base64::engine::general_purpose::STANDARD.decode(v["body_base64"].as_str().unwrap()).unwrap(),
        source_ip: Some("203.0.113.20".into()),
        ..Default::default()
    };
    req.path_params =
        BTreeMap::from([("project_id".to_owned(), req.path.split('/').nth(2).unwrap().to_owned())]);
    req
}

/// An envelope request with one item of `item_type` carrying `payload`, authenticated by `key`.
pub fn envelope(project: u64, key: &str, item_type: &str, payload: &Value) -> ApiRequest {
    let body = payload.to_string();
    let raw = format!(
        "{{\"event_id\":\"{}\"}}\n{{\"type\":\"{item_type}\",\"length\":{}}}\n{body}\n",
        payload["event_id"].as_str().unwrap_or(""),
        body.len()
    );
    raw_envelope(project, key, raw.into_bytes())
}

pub fn raw_envelope(project: u64, key: &str, body: Vec<u8>) -> ApiRequest {
    ApiRequest {
        method: "POST".into(),
        path: format!("/api/{project}/envelope/"),
        path_params: BTreeMap::from([("project_id".to_owned(), project.to_string())]),
        headers: vec![
            ("content-type".into(), "application/x-sentry-envelope".into()),
            (
                "x-sentry-auth".into(),
                format!("Sentry sentry_key={key}, sentry_version=7, sentry_client=test/1.0"),
            ),
        ],
        body,
        source_ip: Some("203.0.113.20".into()),
        ..Default::default()
    }
}

/// Gzip at the best level, as a decompression bomb's author would (zlib-rs's default level cuts long
/// runs short: 19 MiB of zeros came to 90 KB at level 6).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// `make_event` of Sentry's tests: an error-level event with a fresh id at `NOW`.
pub fn make_event(extra: Value) -> Value {
    let mut e = json!({
        "event_id": uuid_hex(),
        "level": "error",
        "logger": "default",
        "platform": "python",
        "timestamp": NOW as f64,
        "tags": [],
    });
    for (k, v) in extra.as_object().unwrap() {
        e[k] = v.clone();
    }
    e
}

pub fn uuid_hex() -> String {
    let mut b = [0u8; 16];
    shared::ports::Random::fill(&OsRandom, &mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn memory() {
                ($body)(common::memory_env().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn aws() {
                let Some(env) = common::aws_env(stringify!($name)).await else { return };
                ($body)(env).await;
            }
        }
    };
}
