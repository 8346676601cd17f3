//! The ingestion edge through the real handler: captured SDK requests are accepted and streamed; every
//! malformed-input class gets its status and leaves nothing in the table or on the stream.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;

/// Every request captured from sentry-python 2.75 and @sentry/node 11.12 is accepted (200), and each
/// event or transaction in it becomes exactly one record.
async fn sdk_traffic(env: Env) {
    let cases = [
        ("python", "exception", 1),
        ("python", "message", 1),
        ("python", "transaction", 1),
        ("python", "session.1", 1),
        ("python", "session.2", 0),
        ("python", "client_report", 0),
        ("python", "attachment", 1),
        ("node", "exception.1", 0),
        ("node", "exception.2", 1),
        ("node", "message.1", 0),
        ("node", "message.2", 1),
        ("node", "transaction_static", 1),
        ("node", "transaction", 0),
        ("node", "attachment.2", 1),
    ];
    let mut expected = 0;
    for (sdk, name, records) in cases {
        let r = env.send(&fixture(sdk, name)).await;
        assert_eq!(r.status, 200, "{sdk}/{name}: {:?}", r.body);
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
        expected += records;
        assert_eq!(env.records().await.len(), expected, "{sdk}/{name}");
    }
    for m in env.messages().await {
        let data = &m[2]["data"];
        assert_eq!(m[2]["project_id"], 42);
        assert_eq!(data["key_id"], "7");
        assert!(data["received"].is_number());
        if data["type"] != "transaction" {
            assert_eq!(data["fingerprint"], json!(["{{ default }}"]));
            assert_eq!(m[2]["primary_hash"], data["hashes"][0]);
            assert!(m[2]["group_id"].is_u64());
        }
    }
}

both_backends!(sdk_traffic_is_saved_and_streamed, sdk_traffic);

async fn assert_nothing_written(env: &Env) {
    assert_eq!(env.event_items().await, 0, "nothing in the table");
    assert!(env.records().await.is_empty(), "nothing on the stream");
}

/// Each class of malformed input: status, Relay's body shape, and no state change.
async fn malformed(env: Env) {
    let event = make_event(json!({"message": "hello"}));
    let good = envelope(42, KEY, "event", &event);
    let cases: Vec<(&str, shared::http::ApiRequest, u16)> = vec![
        (
            "bad gzip",
            {
                let mut r = good.clone();
                r.headers.push(("content-encoding".into(), "gzip".into()));
                r.body = b"\x1f\x8b\x08\x00not gzip at all".to_vec();
                r
            },
            400,
        ),
        (
            "truncated envelope (length past the end)",
            raw_envelope(42, KEY, b"{}\n{\"type\":\"event\",\"length\":500}\n{\"message\":\"x\"}".to_vec()),
            400,
        ),
        (
            "wrong length (payload not followed by a newline)",
            raw_envelope(42, KEY, b"{}\n{\"type\":\"event\",\"length\":3}\n{\"message\":\"x\"}\n".to_vec()),
            400,
        ),
        (
            "bad JSON in the event item",
            raw_envelope(42, KEY, b"{}\n{\"type\":\"event\"}\n{not json\n".to_vec()),
            400,
        ),
        ("bad envelope header", raw_envelope(42, KEY, b"not json\n".to_vec()), 400),
        ("empty body", raw_envelope(42, KEY, Vec::new()), 400),
        (
            "oversized event item",
            {
                let big = make_event(json!({"message": "x".repeat(1024 * 1024 + 10)}));
                envelope(42, KEY, "event", &big)
            },
            413,
        ),
        (
            // Issue 18's bomb: a body gzipped 1,500 times, as its header says (1.2 s of CPU before
            // the 400, once).
            "1,500 stacked content codings (refused before decoding)",
            {
                let body = (0..1500).fold(b"{}\n".to_vec(), |b, _| gzip(&b));
                let mut r = raw_envelope(42, KEY, body);
                r.headers.push(("content-encoding".into(), ["gzip"; 1500].join(", ")));
                r
            },
            400,
        ),
        (
            "more than two content codings (refused before decoding)",
            {
                let mut r = raw_envelope(42, KEY, gzip(&gzip(&gzip(b"{}\n"))));
                r.headers.push(("content-encoding".into(), "gzip, gzip, gzip".into()));
                r
            },
            400,
        ),
        (
            "decompression bomb",
            {
                let mut r = raw_envelope(42, KEY, gzip(&vec![b' '; 30 * 1024 * 1024]));
                r.headers.push(("content-encoding".into(), "gzip".into()));
                r
            },
            413,
        ),
        (
            "too many items",
            {
                let mut body = b"{}\n".to_vec();
                for _ in 0..101 {
                    body.extend_from_slice(b"{\"type\":\"client_report\"}\n{}\n");
                }
                raw_envelope(42, KEY, body)
            },
            413,
        ),
        (
            "missing key",
            {
                let mut r = good.clone();
                r.headers.retain(|(k, _)| k != "x-sentry-auth");
                r
            },
            401,
        ),
        ("unknown key", envelope(42, "deadbeefdeadbeefdeadbeefdeadbeef", "event", &event), 403),
        ("disabled key", envelope(42, "disabled0disabled0disabled0disab", "event", &event), 403),
        ("key of another project", envelope(42, "0123456789abcdef0123456789abcdef", "event", &event), 403),
        (
            "bad project id",
            {
                let mut r = good.clone();
                r.path_params.insert("project_id".into(), "abc".into());
                r
            },
            400,
        ),
    ];
    for (name, req, status) in cases {
        let r = env.send(&req).await;
        assert_eq!(r.status, status, "{name}: {:?}", r.body);
        let body = r.json_body();
        assert!(body["detail"].is_string(), "{name}: Relay's body shape, got {body}");
        if name.contains("content codings") {
            // Refused for the count of codings, not for a layer that failed to decode.
            assert!(
                body["detail"].as_str().unwrap().starts_with("too many content encodings"),
                "{name}: {body}"
            );
        }
        assert!(r.header("x-sentry-error").is_some(), "{name}");
        assert_eq!(r.header("access-control-allow-origin"), Some("*"), "{name}");
        assert_nothing_written(&env).await;
    }
    // The good request still works afterwards.
    assert_eq!(env.send(&good).await.status, 200);
    assert_eq!(env.records().await.len(), 1);
}

both_backends!(malformed_input_is_rejected_without_state, malformed);

#[tokio::test]
async fn cors_preflight_and_methods() {
    let env = memory_env().await;
    let mut req = envelope(42, KEY, "event", &make_event(json!({})));
    req.method = "OPTIONS".into();
    let r = env.send(&req).await;
    assert_eq!(r.status, 200);
    assert!(r.header("access-control-allow-headers").unwrap().contains("x-sentry-auth"));
    req.method = "GET".into();
    assert_eq!(env.send(&req).await.status, 405);
    assert_nothing_written(&env).await;
}

/// The store endpoint takes one JSON event; auth from the `sentry_key` query parameter works too.
#[tokio::test]
async fn store_endpoint_and_query_auth() {
    let env = memory_env().await;
    let ev = make_event(json!({"message": "from store"}));
    let mut req = envelope(42, KEY, "event", &ev);
    req.path = "/api/42/store/".into();
    req.body = ev.to_string().into_bytes();
    req.headers = vec![("content-type".into(), "application/json".into())];
    req.raw_query = format!("sentry_key={KEY}&sentry_version=7");
    let r = env.send(&req).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json_body(), json!({"id": ev["event_id"]}));
    assert_eq!(env.records().await.len(), 1);
}

/// Envelopes holding only sessions or client reports are accepted (200) and stream nothing.
#[tokio::test]
async fn non_event_items_are_acknowledged() {
    let env = memory_env().await;
    let r = env.send(&raw_envelope(42, KEY, b"{}\n{\"type\":\"session\"}\n{\"sid\":\"x\",\"status\":\"ok\"}\n{\"type\":\"some_future_type\"}\n{}\n".to_vec())).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json_body(), json!({}));
    assert!(env.records().await.is_empty());
}

/// Per-project rate limit: 429 with Retry-After, nothing saved for the limited request.
#[tokio::test]
async fn project_rate_limit() {
    let mut config = shared::config::Config::for_local("t", "s");
    config.ingest_rate_limit = 2;
    let env = memory_env_with(config).await;
    for _ in 0..2 {
        assert_eq!(
            env.send(&envelope(42, KEY, "event", &make_event(json!({"message": "m"})))).await.status,
            200
        );
    }
    let r = env.send(&envelope(42, KEY, "event", &make_event(json!({"message": "m"})))).await;
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some());
    assert_eq!(env.records().await.len(), 2);
}

const MADE_UP: &str = "deadbeefdeadbeefdeadbeefdeadbeef";

/// Authorize first: a request with a made-up key is refused after one key lookup — cached, so the same
/// key again costs none — before its body is decoded past the envelope header, parsed, normalized or
/// grouped, and before any group read. Proof that nothing was parsed: bodies that the full ingest
/// would refuse with a 400 (not JSON, a decompression bomb) get the key's 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_key_costs_one_cached_lookup_and_no_parsing() {
    use std::sync::Arc;
    let counting = Arc::new(shared::storage::counting::CountingTable::new(Arc::new(
        shared::adapters::memory::MemoryTable::default(),
    )));
    let env = memory_env_on(counting.clone()).await;

    // 19 events of ~1 MiB (the bomb of issue 18: a 20 KB request) and an item that is not JSON.
    let big = zeros_event(1 << 20).to_string().into_bytes();
    let bomb: Vec<(&str, Vec<u8>)> = (0..19).map(|_| ("event", big.clone())).collect();
    let mut gz_bomb = raw_envelope(42, MADE_UP, gzip(&envelope_body(None, &bomb)));
    gz_bomb.headers.push(("content-encoding".into(), "gzip".into()));
    assert!(gz_bomb.body.len() < 64 << 10, "{} bytes", gz_bomb.body.len());
    let not_json = raw_envelope(42, MADE_UP, envelope_body(None, &[("event", b"{not json".to_vec())]));
    // The key only in the envelope header's DSN.
    let dsn = format!("https://{MADE_UP}@o1.ingest.example/42");
    let mut by_dsn = raw_envelope(42, MADE_UP, gzip(&envelope_body(Some(&dsn), &bomb)));
    by_dsn.headers.retain(|(k, _)| k != "x-sentry-auth");
    by_dsn.headers.push(("content-encoding".into(), "gzip".into()));
    let mut store = fixture("python", "exception");
    store.path = "/api/42/store/".into();
    store.body = b"{not json".to_vec();
    store.headers.retain(|(k, _)| k != "content-encoding" && k != "x-sentry-auth");
    store.headers.push(("x-sentry-auth".into(), format!("Sentry sentry_key={MADE_UP}, sentry_version=7")));

    let before = counting.calls();
    for (i, (name, req)) in
        [("gzip bomb", &gz_bomb), ("not json", &not_json), ("dsn header", &by_dsn), ("store", &store)]
            .into_iter()
            .enumerate()
    {
        let r = env.handler.handle_api(req).await;
        assert_eq!(r.status, 403, "{name}: {:?}", r.body);
        assert!(r.json_body()["detail"].is_string(), "{name}");
        // One lookup for the first request; the unknown key is cached for the others.
        assert_eq!(counting.calls() - before, 1, "{name}: table calls after request {i}");
    }
    // 100 small distinct events with the made-up key (issue 18: 100 sequential group reads before the
    // 403): no table call at all, the key is known to be unknown.
    for i in 0..100 {
        let event = serde_json::json!({ "message": format!("distinct {i}"), "level": "error" });
        let req =
            raw_envelope(42, MADE_UP, envelope_body(None, &[("event", event.to_string().into_bytes())]));
        assert_eq!(env.handler.handle_api(&req).await.status, 403, "event {i}");
    }
    assert_eq!(counting.calls() - before, 1, "table calls after 104 requests with the made-up key");
    assert!(env.records().await.is_empty());
    assert_eq!(env.event_items().await, 0);

    // The same bodies with the real key are parsed: the 400s the key check spared.
    let mut not_json_ok = not_json.clone();
    not_json_ok.headers.retain(|(k, _)| k != "x-sentry-auth");
    not_json_ok.headers.push(("x-sentry-auth".into(), format!("Sentry sentry_key={KEY}, sentry_version=7")));
    assert_eq!(env.handler.handle_api(&not_json_ok).await.status, 400);
}

/// Relay's rule: an envelope creates at most one event. Items after the first `event`/`transaction`
/// are dropped unparsed (Relay: `DuplicateItem`), so the largest request we accept holds one event of
/// at most 1 MiB whatever its size; the first event is saved once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_per_envelope_and_the_largest_request() {
    let env = memory_env().await;
    let first = make_event(json!({"message": "first"}));
    let second = make_event(json!({"message": "second"}));
    let body = envelope_body(
        None,
        &[
            ("event", first.to_string().into_bytes()),
            ("transaction", b"{not json".to_vec()),
            ("event", second.to_string().into_bytes()),
        ],
    );
    let r = env.send(&raw_envelope(42, KEY, body)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json_body()["id"], first["event_id"]);
    let msgs = env.messages().await;
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0][2]["event_id"], first["event_id"]);

    // The largest accepted request: 19 events of 896 KiB (17 MiB, under the 20 MiB envelope limit),
    // gzip: 200, one event saved and streamed (its record under Kinesis's 1 MiB).
    let limits = shared::ingest::envelope::Limits::default();
    let limit = limits.max_event_bytes;
    let big = strings_event(limit - (128 << 10)).to_string().into_bytes();
    let items: Vec<(&str, Vec<u8>)> = (0..19).map(|_| ("event", big.clone())).collect();
    let mut req = raw_envelope(42, KEY, gzip(&envelope_body(None, &items)));
    req.headers.push(("content-encoding".into(), "gzip".into()));
    let r = env.send(&req).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(env.messages().await.len(), 2);
    let record = &env.records().await[1];
    assert!(record.data.len() < 1 << 20 && record.data.len() > big.len(), "{}", record.data.len());

    // An item within the 1 MiB item limit whose normalized event would not fit a stream record: 413
    // before anything is written (not a 500 after the group was created).
    let near = strings_event(limit - 64).to_string().into_bytes();
    assert!(near.len() <= limit);
    let before = env.event_items().await;
    let r = env.send(&raw_envelope(42, KEY, envelope_body(None, &[("event", near)]))).await;
    assert_eq!(r.status, 413, "{:?}", r.body);
    assert!(r.json_body()["detail"].as_str().unwrap().contains("size limits"), "{:?}", r.body);
    assert_eq!((env.event_items().await, env.messages().await.len()), (before, 2));

    let too_big = zeros_event(limit + 64).to_string().into_bytes();
    let mut req = raw_envelope(42, KEY, gzip(&envelope_body(None, &[("event", too_big)])));
    req.headers.push(("content-encoding".into(), "gzip".into()));
    assert_eq!(env.send(&req).await.status, 413);
    assert_eq!(env.messages().await.len(), 2);
}

/// Refused before anything is written, with a 413: an event whose tree would be denser than the
/// parser builds (numbers outside `extra`), and an Android ANR that fits one stream record after
/// normalization but not once grouping has written `in_app` and `data` into its 20,000 frames (the
/// size is checked again after grouping; it was a 500 after the save).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_dense_or_grown_by_grouping_writes_nothing() {
    let env = memory_env().await;
    let limits = shared::ingest::envelope::Limits::default();
    let mut dense = zeros_event(896 << 10);
    dense["fingerprint"] = dense["extra"]["a"].take();
    dense["extra"] = json!({});
    let grown = android_anr_event(896 << 10);
    // The ANR passes the check after normalization: only the one after grouping can refuse it.
    let parsed = shared::ingest::parse::parse_event(grown.to_string().as_bytes()).unwrap();
    let config = shared::ingest::normalize::NormalizeConfig::new(42, chrono::Utc::now());
    let normalized = shared::ingest::normalize::normalize_event(parsed, &config).unwrap();
    assert!(normalized.to_string().len() <= limits.max_normalized_event_bytes);

    let before = env.event_items().await;
    for (name, event) in [("dense", dense), ("grown by grouping", grown)] {
        let body = envelope_body(None, &[("event", event.to_string().into_bytes())]);
        let r = env.send(&raw_envelope(42, KEY, body)).await;
        assert_eq!(r.status, 413, "{name}: {:?}", r.body);
        assert!(r.json_body()["detail"].as_str().unwrap().contains("size limits"), "{name}: {:?}", r.body);
        assert_eq!((env.event_items().await, env.messages().await.len()), (before, 0), "{name}");
    }
}

/// Sentry's tags on the saved events of the real SDK requests, written out by hand from Sentry's save
/// step (`event_manager.py`: `_pull_out_data`, the release and user steps, the `url` plugin,
/// `_derive_interface_tags_many`): Relay's `server_name` tag; `level`; `environment` (an empty logger
/// and no transaction add nothing); `sentry:release`; the last exception's mechanism (`generic`,
/// handled → `yes`); the contexts by alias — `os` ("Debian 12.11", the version's trailing newline
/// stripped by `format_index_expr`), `runtime`; `app`, `device`, `culture`, `cloud_resource` and `trace`
/// give none (no `device_app_hash`, no `model`/`family`, no mapping).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentry_tags_on_real_sdk_events() {
    let env = memory_env().await;
    type Tags = &'static [(&'static str, &'static str)];
    let cases: [(&str, &str, Tags); 2] = [
        (
            "python",
            "exception",
            &[
                ("server_name", "capture-host"),
                ("level", "error"),
                ("environment", "production"),
                ("sentry:release", "myapp@1.2.3"),
                ("mechanism", "generic"),
                ("handled", "yes"),
                ("runtime", "CPython 3.11.7"),
                ("runtime.name", "CPython"),
            ],
        ),
        (
            "node",
            "exception.2",
            &[
                ("server_name", "capture-host"),
                ("level", "error"),
                ("environment", "production"),
                ("sentry:release", "myapp@1.2.3"),
                ("mechanism", "generic"),
                ("handled", "yes"),
                ("os", "Debian 12.11"),
                ("os.name", "Debian"),
                ("runtime", "node v20.20.2"),
                ("runtime.name", "node"),
            ],
        ),
    ];
    for (sdk, name, want) in cases {
        let before = env.messages().await.len();
        assert_eq!(env.send(&fixture(sdk, name)).await.status, 200, "{sdk}/{name}");
        let msgs = env.messages().await;
        assert_eq!(msgs.len(), before + 1, "{sdk}/{name}");
        let want: Vec<serde_json::Value> = want.iter().map(|(k, v)| json!([k, v])).collect();
        assert_eq!(msgs[before][2]["data"]["tags"], json!(want), "{sdk}/{name}");
    }
}
