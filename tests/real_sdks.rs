//! Real Sentry SDKs end to end: `sentry-sdk` (Python) and `@sentry/node` with their DSN pointing at
//! `postflow serve` (the save-event handler behind the local API Gateway emulation) send exceptions,
//! messages and transactions; every request is answered 200 and every event is on the stream once.
//!
//! Needs `SENTRY_SDK_PYTHON` (a Python with sentry-sdk) and `SENTRY_NODE_DIR` (a folder with
//! @sentry/node): `scripts/test` installs and sets both, and they are mandatory in CI.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use postflow::backend::{App, Backend};
use serde_json::Value;
use shared::config::Config;
use shared::storage::seed::{Seed, load_seed};

fn tool(var: &str) -> Option<String> {
    shared::testing::required_tool(var, "real SDK test")
}

async fn start() -> (Arc<Backend>, String) {
    let backend = Arc::new(Backend::embedded());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let seed: Seed =
        serde_json::from_str(&std::fs::read_to_string(root.join("events/seed.json")).unwrap()).unwrap();
    load_seed(backend.table.as_ref(), &seed, postflow::scenario::now_secs() * 1000).await.unwrap();
    let app = Arc::new(App::new(&backend, Config::for_local("postflow", "postflow-events")));
    let listener = postflow::serve::bind(0).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(postflow::serve::serve(listener, app));
    (backend, format!("http://c0ffee0c0ffee0c0ffee0c0ffee0c0ff@{addr}/42"))
}

/// Runs an SDK script off the async runtime (it talks to our server on this runtime).
async fn run(mut cmd: Command) -> Value {
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run the SDK script")).await.unwrap();
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

async fn check(backend: &Backend, ids: &Value, transaction: &str, sdk: &str) {
    let records = backend.records().await.unwrap();
    let msgs: Vec<Value> = records.iter().map(|r| serde_json::from_slice(&r.data).unwrap()).collect();
    for kind in ["exception", "message"] {
        let id = ids[kind].as_str().unwrap().replace('-', "");
        let found: Vec<&Value> = msgs.iter().filter(|m| m[2]["event_id"] == id.as_str()).collect();
        assert_eq!(found.len(), 1, "{sdk} {kind} {id} streamed once");
        assert_eq!(found[0][2]["project_id"], 42);
        assert!(found[0][2]["group_id"].is_u64());
        assert!(found[0][2]["data"]["sdk"]["name"].as_str().unwrap().contains(sdk));
    }
    let tx: Vec<&Value> = msgs.iter().filter(|m| m[2]["data"]["transaction"] == transaction).collect();
    assert_eq!(tx.len(), 1, "{sdk} transaction streamed once");
    assert_eq!(tx[0][2]["data"]["type"], "transaction");
    assert!(!tx[0][2]["data"]["spans"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_through_postflow_serve() {
    let Some(python) = tool("SENTRY_SDK_PYTHON") else { return };
    let (backend, dsn) = start().await;
    let mut cmd = Command::new(python);
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/e2e.py")).arg(&dsn);
    let ids = run(cmd).await;
    check(&backend, &ids, "e2e-python-transaction", "python").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_sdk_through_postflow_serve() {
    let Some(dir) = tool("SENTRY_NODE_DIR") else { return };
    let (backend, dsn) = start().await;
    let mut cmd = Command::new("node");
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/e2e.mjs"))
        .arg(&dsn)
        .env("SENTRY_NODE_DIR", dir);
    let ids = run(cmd).await;
    check(&backend, &ids, "e2e-node-transaction", "node").await;
}
