//! Every eventstream record the save path produces validates against Sentry's published topic schemas
//! (`sentry-kafka-schemas` 3.0.2 from PyPI: `events` for errors, default and security events,
//! `transactions` for transactions), checked by `tests/fixtures/schemas/validate.py` with the package's
//! own codec. The records come from material nobody here wrote: the requests captured from
//! sentry-python and @sentry/node, the inputs of the Relay conformance suite, and Sentry's grouping
//! corpus (`../shared/sentry-grouping-corpus/inputs`, read in place).
//!
//! Needs `SENTRY_SCHEMAS_PYTHON` (a Python with sentry-kafka-schemas; scripts/test sets it); without it
//! the test is skipped outside CI and fails in CI, as is the grouping corpus when it is missing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Sends each payload as an envelope item of its type (with a fresh event id) and returns how many
/// were answered 200.
async fn send_all(env: &Env, payloads: impl IntoIterator<Item = Value>) -> usize {
    let mut ok = 0;
    for mut p in payloads {
        if !p.is_object() {
            continue;
        }
        p["event_id"] = json!(uuid_hex());
        let ty = if p.get("type").and_then(Value::as_str) == Some("transaction") {
            "transaction"
        } else {
            "event"
        };
        if env.send(&envelope(42, KEY, ty, &p)).await.status == 200 {
            ok += 1;
        }
    }
    ok
}

fn json_files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{dir:?}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_str().is_some_and(|s| s.ends_with(suffix)))
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_validates_against_sentrys_topic_schemas() {
    let Some(python) = shared::testing::required_tool("SENTRY_SCHEMAS_PYTHON", "stream schema validation")
    else {
        return;
    };
    let mut records: Vec<(String, Vec<u8>)> = Vec::new();
    fn collect(
        records: &mut Vec<(String, Vec<u8>)>,
        source: &str,
        env_records: Vec<shared::ports::StoredRecord>,
    ) {
        for (i, r) in env_records.into_iter().enumerate() {
            records.push((format!("{source}#{i}"), r.data));
        }
    }

    // 1. Requests captured from the real SDKs, as they were sent.
    for sdk in ["python", "node"] {
        let env = memory_env().await;
        for f in json_files(&root().join("tests/fixtures/sdk").join(sdk), ".request.json") {
            let name = f.file_name().unwrap().to_str().unwrap().trim_end_matches(".request.json").to_owned();
            let r = env.send(&fixture(sdk, &name)).await;
            assert_eq!(r.status, 200, "{sdk}/{name}: {:?}", r.body);
        }
        collect(&mut records, &format!("sdk:{sdk}"), env.records().await);
    }
    let sdk_records = records.len();
    assert!(sdk_records >= 10, "{sdk_records} SDK records");

    // 2. The inputs of the Relay conformance suite.
    let cases: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/relay/cases.json")).unwrap(),
    )
    .unwrap();
    let env = memory_env().await;
    let accepted = send_all(&env, cases.iter().map(|c| c["input"].clone())).await;
    collect(&mut records, "relay-conformance", env.records().await);
    let relay_records = records.len() - sdk_records;
    assert!(relay_records >= 100, "{relay_records} records from {accepted} accepted conformance inputs");

    // 3. Sentry's grouping corpus, read where it lies (never copied into this repository).
    let corpus = root().join("../shared/sentry-grouping-corpus/inputs");
    if corpus.is_dir() {
        let env = memory_env().await;
        let inputs = json_files(&corpus, ".json")
            .into_iter()
            .map(|f| serde_json::from_str::<Value>(&std::fs::read_to_string(&f).unwrap()).unwrap());
        let accepted = send_all(&env, inputs).await;
        assert!(accepted >= 150, "{accepted} corpus inputs accepted");
        collect(&mut records, "grouping-corpus", env.records().await);
    } else {
        assert!(!shared::testing::tools_required(), "the grouping corpus is missing at {corpus:?}");
        eprintln!("SKIPPED the grouping corpus part: {corpus:?} not found");
    }

    let dir = std::env::temp_dir().join(shared::testing::unique_name("stream-schemas"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("records.jsonl");
    let mut lines = String::new();
    for (name, data) in &records {
        lines.push_str(&json!({"name": name, "data": String::from_utf8(data.clone()).unwrap()}).to_string());
        lines.push('\n');
    }
    std::fs::write(&file, lines).unwrap();
    let out = std::process::Command::new(&python)
        .arg(root().join("tests/fixtures/schemas/validate.py"))
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("{python}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "records failed Sentry's schemas:\n{stdout}");
    assert!(
        stdout.contains(&format!("records: {} valid, 0 invalid", records.len())),
        "expected all {} records validated:\n{stdout}",
        records.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
