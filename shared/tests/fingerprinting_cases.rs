//! Sentry's server-side fingerprinting test cases (`tests/fixtures/sentry-fingerprinting/cases.json`,
//! provenance in the file): each event is normalized and grouped as Sentry's test does (stack traces
//! normalized, the project's fingerprinting rules applied) and the fingerprint, its resolved values
//! and the custom title are compared with Sentry's snapshots.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{TimeZone, Utc};
use serde_json::Value;
use shared::grouping::config::GroupingConfig;
use shared::grouping::hashing::{calculate_hashes_with, resolve_fingerprint_values};
use shared::ingest::normalize::{NormalizeConfig, normalize_event};

#[test]
fn sentrys_fingerprinting_cases() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sentry-fingerprinting/cases.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 30);
    let received = Utc.timestamp_opt(1_717_243_200, 0).unwrap();
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let config = GroupingConfig::compile("", case["rules"].as_str().unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut event = normalize_event(case["event"].clone(), &NormalizeConfig::new(1, received))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        calculate_hashes_with(&mut event, &config);
        let matched = event.pointer("/_fingerprint_info/matched_rule").is_some();
        let fingerprint: Vec<String> =
            event["fingerprint"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
        match case["expected_fingerprint"].as_array() {
            None if matched => failures.push(format!("{name}: a rule matched, Sentry's did not")),
            None => {}
            Some(expected) => {
                let expected: Vec<&str> = expected.iter().map(|v| v.as_str().unwrap()).collect();
                if !matched || fingerprint != expected {
                    failures.push(format!("{name}: fingerprint {fingerprint:?}, Sentry's {expected:?}"));
                }
            }
        }
        if let Some(expected) = case["expected_resolved_values"].as_array() {
            let expected: Vec<&str> = expected.iter().map(|v| v.as_str().unwrap()).collect();
            let resolved = resolve_fingerprint_values(&fingerprint, &event);
            if resolved != expected {
                failures.push(format!("{name}: resolved {resolved:?}, Sentry's {expected:?}"));
            }
        }
        if let Some(expected) = case["expected_title"].as_str() {
            let title = event["title"].as_str().unwrap_or("<none>");
            if title != expected {
                failures.push(format!("{name}: title {title:?}, Sentry's {expected:?}"));
            }
        }
    }
    eprintln!("Sentry's fingerprinting cases: {} of {} as Sentry", cases.len() - failures.len(), cases.len());
    assert!(failures.is_empty(), "{failures:#?}");
}
