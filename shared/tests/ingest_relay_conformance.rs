//! Conformance with Relay's real normalizer (`sentry_relay.processing.StoreNormalizer`,
//! sentry-relay 0.10.1).
//!
//! `tests/fixtures/relay/cases.json` holds the inputs (real-SDK events decoded from
//! `tests/fixtures/sdk/` plus edge cases), `expected.json` Relay's output for each, produced by
//! `tests/fixtures/relay/oracle.py` (see its docstring to re-run). This test normalizes the same
//! inputs with the same `received_at`/`sent_at` and compares the fields `save` relies on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde_json::Value;
use shared::ingest::normalize::{NormalizeConfig, normalize_event};
use shared::ingest::parse::parse_event;

/// Cases where we deliberately differ from the 0.10.1 binding: (case, field, why).
const KNOWN_DIFFERENCES: &[(&str, &str, &str)] = &[
    (
        "clock_drift_2h",
        "timestamp",
        "Relay server corrects envelope clock drift (sent_at, ≥ 55 min) before normalizing; the \
         StoreNormalizer binding ignores sent_at. We apply the server behaviour.",
    ),
    ("clock_drift_2h", "errors", "same: we add the clock_drift error"),
    (
        "clock_drift_future_transaction",
        "timestamp",
        "same: drift correction makes the transaction current instead of future-clamped",
    ),
    ("clock_drift_future_transaction", "start_timestamp", "same"),
    ("clock_drift_future_transaction", "errors", "same: clock_drift instead of future_timestamp"),
    (
        "user_auto_ip_with_client_ip",
        "user.sentry_user",
        "Relay server resolves a `{{auto}}` user IP from the client address for browser/mobile \
         platforms (normalize_ip_addresses); the binding is not configured to infer IPs.",
    ),
];

/// Fixture folder: `$POSTFLOW_FIXTURES_DIR`, else the first `tests/fixtures` above this crate.
fn fixtures_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("POSTFLOW_FIXTURES_DIR") {
        return PathBuf::from(dir);
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .map(|dir| dir.join("tests/fixtures"))
        .find(|dir| dir.join("relay/expected.json").is_file())
        .expect("tests/fixtures/relay/expected.json not found above the crate")
}

/// `expected.json` comes from the committed oracle run, or — in the test command, which runs Relay's
/// normalizer live (`sentry-relay` from PyPI) — from `$RELAY_EXPECTED_JSON`.
fn load(name: &str) -> Vec<Value> {
    let live = std::env::var_os("RELAY_EXPECTED_JSON").filter(|_| name == "expected.json");
    if live.is_some() {
        use std::io::Write;
        let _ =
            writeln!(std::io::stderr(), "relay conformance: comparing with the live oracle output {live:?}");
    }
    let path = live.map(PathBuf::from).unwrap_or_else(|| fixtures_dir().join("relay").join(name));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn time(value: &Value) -> Option<DateTime<Utc>> {
    value.as_str().map(|s| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc))
}

/// Value at a dotted path; `null` counts as absent.
fn at<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(value, |v, key| match key.parse::<usize>() {
            Ok(i) => v.get(i),
            Err(_) => v.get(key),
        })
        .filter(|v| !v.is_null())
}

fn is_hex32(value: Option<&Value>) -> bool {
    value
        .and_then(Value::as_str)
        .is_some_and(|s| s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

fn error_types(event: &Value) -> BTreeSet<String> {
    at(event, "errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e["type"].as_str().map(str::to_owned))
        .collect()
}

fn exceptions(event: &Value) -> Vec<(Option<Value>, Option<Value>)> {
    at(event, "exception.values")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| (at(e, "type").cloned(), at(e, "value").cloned()))
        .collect()
}

fn tags(event: &Value) -> Value {
    at(event, "tags").cloned().unwrap_or(Value::Array(vec![]))
}

/// A case's input as the ingest path parses it (`extra` trimmed while parsing, as Relay trims it).
fn parsed(input: &Value) -> Value {
    parse_event(input.to_string().as_bytes()).unwrap()
}

#[test]
fn matches_relay_store_normalizer() {
    let cases = load("cases.json");
    let expected = load("expected.json");
    assert_eq!(cases.len(), expected.len(), "re-run oracle.py");
    assert!(cases.len() >= 45, "at least 45 cases");

    let mut mismatches = Vec::new();
    let mut used_differences = BTreeSet::new();
    for (case, expected) in cases.iter().zip(&expected) {
        let name = case["name"].as_str().unwrap();
        assert_eq!(expected["name"], case["name"], "case order");
        let mut config = NormalizeConfig::new(42, time(&case["received_at"]).unwrap());
        config.sent_at = time(&case["sent_at"]);
        config.key_id = Some("7".to_owned());
        config.client_ip = case["client_ip"].as_str().map(str::to_owned);
        let ours = normalize_event(parsed(&case["input"]), &config);

        let mut check = |field: &str, ok: bool, ours: &dyn std::fmt::Debug, relay: &dyn std::fmt::Debug| {
            if ok {
                return;
            }
            if KNOWN_DIFFERENCES.iter().any(|(c, f, _)| *c == name && *f == field) {
                used_differences.insert((name.to_owned(), field.to_owned()));
                return;
            }
            mismatches.push(format!("{name}: {field}: ours {ours:?} != relay {relay:?}"));
        };

        let (ours, relay) = match (ours, expected.get("output")) {
            (Ok(ours), Some(relay)) => (ours, relay),
            (Err(_), None) => continue,
            (ours, _) => {
                check("accept/reject", false, &ours.map(|_| "accepted"), &expected.get("error"));
                continue;
            }
        };

        // event_id: equal when the input carried a valid one, else freshly generated on both sides.
        let input_id_valid =
            case["input"]["event_id"].as_str().is_some_and(|s| uuid::Uuid::try_parse(s).is_ok());
        if input_id_valid {
            check("event_id", ours["event_id"] == relay["event_id"], &ours["event_id"], &relay["event_id"]);
        } else {
            check("event_id", is_hex32(at(&ours, "event_id")), &ours["event_id"], &"32 hex");
        }

        for field in [
            "type",
            "level",
            "platform",
            "logger",
            "release",
            "dist",
            "environment",
            "transaction",
            "culprit",
            "fingerprint",
            "logentry.formatted",
            "logentry.message",
            "transaction_info.source",
            "contexts.trace.op",
            "contexts.trace.status",
            "user.sentry_user",
            "project",
            "extra",
        ] {
            let (a, b) = (at(&ours, field), at(relay, field));
            check(field, a == b, &a, &b);
        }
        for field in ["timestamp", "start_timestamp", "received"] {
            let (a, b) = (at(&ours, field).and_then(Value::as_f64), at(relay, field).and_then(Value::as_f64));
            let ok = match (a, b) {
                (Some(a), Some(b)) => (a - b).abs() < 1e-3,
                (a, b) => a == b,
            };
            check(field, ok, &a, &b);
        }
        // Trace ids synthesized from a generated event id differ by construction.
        for field in ["contexts.trace.trace_id", "contexts.trace.span_id"] {
            let (a, b) = (at(&ours, field), at(relay, field));
            let synthesized = b
                .and_then(Value::as_str)
                .zip(relay["event_id"].as_str())
                .is_some_and(|(id, ev)| ev.starts_with(id));
            let ok = if synthesized && !input_id_valid {
                a.and_then(Value::as_str)
                    .zip(ours["event_id"].as_str())
                    .is_some_and(|(id, ev)| ev.starts_with(id))
            } else {
                a == b
            };
            check(field, ok, &a, &b);
        }
        let (a, b) = (tags(&ours), tags(relay));
        check("tags", a == b, &a, &b);
        let (a, b) = (exceptions(&ours), exceptions(relay));
        check("exception", a == b, &a, &b);
        let (a, b) = (error_types(&ours), error_types(relay));
        check("errors", a == b, &a, &b);
    }

    let stale: Vec<_> = KNOWN_DIFFERENCES
        .iter()
        .filter(|(c, f, _)| !used_differences.contains(&((*c).to_owned(), (*f).to_owned())))
        .collect();
    assert!(stale.is_empty(), "KNOWN_DIFFERENCES entries that no longer differ: {stale:?}");
    assert!(mismatches.is_empty(), "{} mismatches with Relay:\n{}", mismatches.len(), mismatches.join("\n"));
}

/// Paths (array indices written `*`) where our normalized SDK events may differ from Relay's, with why.
/// Everything else of the real-SDK cases (`sdk_*`) must be equal, field by field.
const SDK_EXPLAINED: &[(&str, &str)] = &[(
    "spans.*.same_process_as_parent",
    "kept: newer Relay keeps it (Span.same_process_as_parent) and the messages Sentry writes to the \
         transactions topic carry it (sentry-kafka-schemas' examples); the 0.10.1 binding predates the field",
)];

fn diff_paths(path: &str, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<String>) {
    let child = |key: &str| if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") };
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                diff_paths(&child(k), x.get(k), y.get(k), out);
            }
        }
        (Some(Value::Array(x)), Some(Value::Array(y))) if x.len() == y.len() => {
            for (p, q) in x.iter().zip(y) {
                diff_paths(&child("*"), Some(p), Some(q), out);
            }
        }
        (Some(Value::Number(x)), Some(Value::Number(y)))
            if x.as_f64().zip(y.as_f64()).is_some_and(|(x, y)| (x - y).abs() < 1e-3) => {}
        (a, b) if a == b => {}
        _ => out.push(path.to_owned()),
    }
}

/// Edge cases compared in full too: one per class of difference the full comparison of the SDK events
/// found (derived context fields, frames, empty containers, nulls in exceptions, span fields).
const FULL_EDGE_CASES: &[&str] = &[
    "contexts_derived_fields",
    "frame_function_question_mark",
    "empty_containers",
    "empty_breadcrumbs_list",
    "transaction_empty_measurements",
    "exception_null_fields",
    "exception_single_object",
    "transaction_span_same_process",
];

/// Ids both sides generate when the input has no valid event id (compared by shape in the other test).
const GENERATED: &[&str] = &["event_id", "contexts.trace.trace_id", "contexts.trace.span_id"];

/// The real-SDK cases (and [`FULL_EDGE_CASES`]) in full: every field of our normalized event equals
/// Relay's, except the paths of [`SDK_EXPLAINED`].
#[test]
fn sdk_payloads_match_relay_in_full() {
    let cases = load("cases.json");
    let expected = load("expected.json");
    let mut unexplained = BTreeSet::new();
    let mut explained_used = BTreeSet::new();
    let mut compared = 0;
    for (case, expected) in cases.iter().zip(&expected) {
        let name = case["name"].as_str().unwrap();
        if !name.starts_with("sdk_") && !FULL_EDGE_CASES.contains(&name) {
            continue;
        }
        let input_id_valid =
            case["input"]["event_id"].as_str().is_some_and(|s| uuid::Uuid::try_parse(s).is_ok());
        let Some(relay) = expected.get("output") else { continue };
        let mut config = NormalizeConfig::new(42, time(&case["received_at"]).unwrap());
        config.sent_at = time(&case["sent_at"]);
        config.key_id = Some("7".to_owned());
        config.client_ip = case["client_ip"].as_str().map(str::to_owned);
        let ours = normalize_event(parsed(&case["input"]), &config).unwrap();
        let mut paths = Vec::new();
        diff_paths("", Some(&ours), Some(relay), &mut paths);
        for p in paths {
            if !input_id_valid && GENERATED.contains(&p.as_str()) {
                continue;
            }
            if let Some((e, _)) =
                SDK_EXPLAINED.iter().find(|(e, _)| p == *e || p.starts_with(&format!("{e}.")))
            {
                explained_used.insert(*e);
            } else {
                unexplained.insert(format!(
                    "{name}: {p}: ours {:?} relay {:?}",
                    at_star(&ours, &p),
                    at_star(relay, &p)
                ));
            }
        }
        compared += 1;
    }
    assert!(compared >= 8 + FULL_EDGE_CASES.len(), "{compared} cases compared in full");
    let stale: Vec<_> = SDK_EXPLAINED.iter().filter(|(e, _)| !explained_used.contains(e)).collect();
    assert!(stale.is_empty(), "SDK_EXPLAINED entries that no longer differ: {stale:?}");
    assert!(
        unexplained.is_empty(),
        "{} unexplained differences:\n{}",
        unexplained.len(),
        unexplained.into_iter().collect::<Vec<_>>().join("\n")
    );
}

/// The first value at a path with `*` for array elements (for messages).
fn at_star(value: &Value, path: &str) -> Option<String> {
    let mut v = value;
    for key in path.split('.') {
        v = if key == "*" { v.as_array()?.first()? } else { v.get(key)? };
    }
    let s = v.to_string();
    Some(if s.len() > 80 {
        format!("{}…", &s[..s.char_indices().nth(80).map_or(s.len(), |(i, _)| i)])
    } else {
        s
    })
}
