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
