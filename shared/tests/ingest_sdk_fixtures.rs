//! Real SDK traffic (`tests/fixtures/sdk/{python,node}/*.request.json`, captured with
//! `sentry-sdk==2.75.0` and `@sentry/node@11.12.0` by `tests/fixtures/sdk/capture.py`) goes
//! through [`shared::ingest::ingest`] exactly as recorded: every request is accepted and yields the
//! expected items and normalized events.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine as _;
use serde_json::{Value, json};
use shared::ingest::envelope::{Envelope, Limits};
use shared::ingest::{Endpoint, EventKind, Ingested, Request, ingest};

const KEY: &str = "c0ffee0c0ffee0c0ffee0c0ffee0c0ff";

fn fixtures_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("POSTFLOW_FIXTURES_DIR") {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("tests/fixtures"))
        .find(|dir| dir.join("sdk").is_dir())
        .expect("tests/fixtures/sdk not found above the crate")
}

/// Runs one fixture; received half a second after the envelope's `sent_at`.
fn run_fixture(path: &std::path::Path) -> Ingested {
    let req: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let headers: Vec<(String, String)> = req["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str().unwrap().to_owned()))
        .collect();
    let body =
        base64::engine::general_purpose::STANDARD.decode(req["body_base64"].as_str().unwrap()).unwrap();
    let path_str = req["path"].as_str().unwrap();
    let segments: Vec<&str> = path_str.trim_matches('/').split('/').collect();
    let (project_id, endpoint) = match segments.as_slice() {
        ["api", project, "envelope"] => (*project, Endpoint::Envelope),
        ["api", project, "store"] => (*project, Endpoint::Store),
        other => panic!("unexpected path {other:?}"),
    };
    let encoding = headers.iter().find(|(k, _)| k == "content-encoding").map(|(_, v)| v.as_str());
    let decoded = shared::ingest::decode::decode_body(&body, encoding, 20 << 20).unwrap();
    let sent_at = Envelope::parse(&decoded, &Limits::default())
        .unwrap()
        .headers
        .sent_at
        .unwrap_or_else(chrono::Utc::now);
    let request = Request {
        endpoint,
        project_id,
        headers: &headers,
        query: req["query"].as_str().unwrap(),
        body: &body,
        received_at: sent_at + chrono::Duration::milliseconds(500),
        client_ip: Some("127.0.0.1"),
    };
    ingest(&request, &Limits::default()).unwrap_or_else(|e| panic!("{path:?}: {e:?}"))
}

fn all_fixtures() -> BTreeMap<String, Ingested> {
    let mut out = BTreeMap::new();
    for sdk in ["python", "node"] {
        let dir = fixtures_dir().join("sdk").join(sdk);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            if let Some(stem) = name.strip_suffix(".request.json") {
                out.insert(format!("{sdk}/{stem}"), run_fixture(&path));
            }
        }
    }
    out
}

fn single_event<'a>(all: &'a BTreeMap<String, Ingested>, name: &str) -> &'a Value {
    let ingested = &all[name];
    assert_eq!(ingested.events.len(), 1, "{name}");
    &ingested.events[0].payload
}

fn exception_types(event: &Value) -> Vec<&str> {
    event["exception"]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap_or_default())
        .collect()
}

#[test]
fn every_captured_request_is_accepted() {
    let all = all_fixtures();
    assert!(all.len() >= 19, "fixtures: {:?}", all.keys().collect::<Vec<_>>());
    for (name, ingested) in &all {
        assert_eq!(ingested.project_id, 42, "{name}");
        assert_eq!(ingested.auth.public_key, KEY, "{name}");
        assert!(ingested.dropped.is_empty(), "{name}: {:?}", ingested.dropped);
        for event in &ingested.events {
            assert_eq!(event.payload["event_id"], json!(event.event_id), "{name}");
            assert_eq!(event.payload["project"], json!(42));
            assert!(event.payload["received"].is_f64(), "{name}");
            // Real SDK payloads normalize without processing errors.
            assert!(event.payload.get("errors").is_none(), "{name}: {}", event.payload["errors"]);
        }
        // Events carry the id the envelope announced.
        if let (Some(header_id), Some(event)) = (&ingested.envelope_headers.event_id, ingested.events.first())
        {
            assert_eq!(&event.event_id, header_id, "{name}");
        }
    }
}

#[test]
fn python_sdk() {
    let all = all_fixtures();
    let exc = single_event(&all, "python/exception");
    assert_eq!(exc["type"], "error");
    assert_eq!(exc["platform"], "python");
    assert_eq!(exception_types(exc), vec!["KeyError", "ValueError"]);
    assert_eq!(exc["release"], "myapp@1.2.3");
    assert_eq!(exc["environment"], "production");
    assert!(exc["tags"].as_array().unwrap().contains(&json!(["server_name", "capture-host"])));

    let msg = single_event(&all, "python/message");
    assert_eq!(msg["type"], "default");
    assert_eq!(msg["level"], "warning");
    assert_eq!(msg["logentry"]["formatted"], "Something odd happened");
    assert_eq!(msg["user"]["sentry_user"], "id:42");
    let tags = msg["tags"].as_array().unwrap();
    assert!(tags.contains(&json!(["feature", "checkout"])));
    assert_eq!(msg["breadcrumbs"]["values"].as_array().unwrap().len(), 2);
    assert_eq!(msg["extra"]["cart"]["items"], 3);

    let txn = single_event(&all, "python/transaction");
    assert_eq!(all["python/transaction"].events[0].kind, EventKind::Transaction);
    assert_eq!(txn["type"], "transaction");
    assert_eq!(txn["level"], "info");
    assert_eq!(txn["transaction"], "process-order");
    assert_eq!(txn["transaction_info"]["source"], "custom");
    assert_eq!(txn["spans"].as_array().unwrap().len(), 3);
    assert_eq!(txn["contexts"]["trace"]["op"], "task");

    assert_eq!(single_event(&all, "python/session.1")["type"], "error");
    assert_eq!(all["python/session.2"].acknowledged.sessions, 1);
    assert_eq!(all["python/client_report"].acknowledged.client_reports, 1);
    assert!(all["python/client_report"].events.is_empty());
    let att = &all["python/attachment"];
    assert_eq!(att.events.len(), 1);
    assert_eq!(att.acknowledged.attachments.len(), 1);
    assert_eq!(att.acknowledged.attachments[0].filename.as_deref(), Some("hello.txt"));
    assert_eq!(att.acknowledged.attachments[0].size, 17);
}

#[test]
fn node_sdk() {
    let all = all_fixtures();
    assert_eq!(all["node/exception.1"].acknowledged.sessions, 1);
    let exc = single_event(&all, "node/exception.2");
    assert_eq!(exc["type"], "error");
    assert_eq!(exc["platform"], "node");
    assert_eq!(exception_types(exc), vec!["TypeError", "Error"]);

    let msg = single_event(&all, "node/message.2");
    assert_eq!(msg["level"], "warning");
    assert_eq!(msg["user"]["sentry_user"], "id:42");
    assert!(msg["tags"].as_array().unwrap().contains(&json!(["tier", "gold"])));

    // Default @sentry/node 11: v2 span items only, no transaction event.
    let spans = &all["node/transaction"];
    assert!(spans.events.is_empty());
    assert_eq!(spans.acknowledged.spans, 4);
    // traceLifecycle "static": a classic transaction.
    let txn = single_event(&all, "node/transaction_static");
    assert_eq!(txn["type"], "transaction");
    assert_eq!(txn["transaction"], "process-order");
    assert!(!txn["spans"].as_array().unwrap().is_empty());

    assert_eq!(all["node/client_report"].acknowledged.client_reports, 1);
    let att = &all["node/attachment.2"];
    assert_eq!(att.events.len(), 1);
    assert_eq!(att.acknowledged.attachments[0].filename.as_deref(), Some("hello.txt"));
}
