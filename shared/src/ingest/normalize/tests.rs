//! Table-driven tests of the whole normalizer (Relay parity is in `tests/relay_conformance.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::TimeZone;
use serde_json::json;

use super::*;

const TS: f64 = 1_717_243_200.0; // 2024-06-01T12:00:00Z
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN_ID: &str = "00f067aa0ba902b7";

fn config() -> NormalizeConfig {
    let mut config = NormalizeConfig::new(42, Utc.timestamp_opt(TS as i64, 0).unwrap());
    config.key_id = Some("7".into());
    config
}

fn norm(event: Value) -> Value {
    normalize_event(event, &config()).unwrap()
}

fn error_types(event: &Value) -> Vec<&str> {
    event["errors"]
        .as_array()
        .map(|list| list.iter().filter_map(|e| e["type"].as_str()).collect())
        .unwrap_or_default()
}

fn txn(overrides: Value) -> Value {
    let mut event = json!({
        "type": "transaction",
        "transaction": "/api/orders",
        "start_timestamp": TS - 2.0,
        "timestamp": TS - 1.0,
        "contexts": {"trace": {"trace_id": TRACE_ID, "span_id": SPAN_ID, "op": "http.server"}},
    });
    for (k, v) in overrides.as_object().unwrap() {
        if v.is_null() {
            event.as_object_mut().unwrap().remove(k);
        } else {
            event[k] = v.clone();
        }
    }
    event
}

#[test]
fn known_attributes_are_matched_exactly() {
    for key in
        ["_dsc", "_meta", "applecrashreport", "event_id", "transaction_info", "type", "user", "version"]
    {
        assert!(is_known_attribute(key), "{key}");
    }
    for key in ["", "Type", "users", "_dsc ", "sentry.interfaces.User", "message", "transaction_inf"] {
        assert!(!is_known_attribute(key), "{key}");
    }
}

#[test]
fn minimal_event_gets_relays_additions() {
    let ev = norm(json!({"message": "hello"}));
    let id = ev["event_id"].as_str().unwrap();
    assert_eq!(id.len(), 32);
    assert_eq!(ev["type"], "default");
    assert_eq!(ev["level"], "error");
    assert_eq!(ev["platform"], "other");
    assert_eq!(ev["logger"], "");
    assert_eq!(ev["logentry"], json!({"formatted": "hello"}));
    assert!(ev.get("message").is_none());
    assert_eq!(ev["timestamp"], json!(TS));
    assert_eq!(ev["received"], json!(TS));
    assert_eq!(ev["project"], 42);
    assert_eq!(ev["key_id"], "7");
    assert_eq!(ev["version"], "7");
    assert_eq!(ev["grouping_config"], json!({"id": "newstyle:2023-01-11"}));
    assert_eq!(
        ev["contexts"]["trace"],
        json!({"trace_id": id, "span_id": &id[..16], "status": "unknown", "type": "trace"})
    );
    assert!(ev.get("errors").is_none());
}

#[test]
fn not_an_object() {
    assert_eq!(normalize_event(json!([1]), &config()), Err(NormalizeError::NotAnObject));
}

#[test]
fn event_ids() {
    let cases = [
        (json!("6F4B2D3E-1C2A-4B5C-9D8E-7F6A5B4C3D2E"), Some("6f4b2d3e1c2a4b5c9d8e7f6a5b4c3d2e"), 0),
        (json!("52df9022835246eeb317dbd739ccd059"), Some("52df9022835246eeb317dbd739ccd059"), 0),
        (json!("not-an-id"), None, 1),
        (json!("a".repeat(33)), None, 1),
        (json!(42), None, 1),
        (json!(null), None, 0),
    ];
    for (input, expected, errors) in cases {
        let ev = norm(json!({"event_id": input}));
        let id = ev["event_id"].as_str().unwrap();
        assert_eq!(id.len(), 32, "{input}");
        if let Some(expected) = expected {
            assert_eq!(id, expected);
        }
        assert_eq!(error_types(&ev).len(), errors, "{input}");
    }
}

#[test]
fn levels() {
    for (input, level, err) in [
        (json!("warn"), "error", true),
        (json!("critical"), "fatal", false),
        (json!("log"), "info", false),
        (json!(40), "error", false),
        (json!(20), "info", false),
        (json!(35), "error", true),
        (json!("ERROR"), "error", true),
        (json!(true), "error", true),
    ] {
        let ev = norm(json!({"level": input}));
        assert_eq!(ev["level"], level, "{input}");
        assert_eq!(!error_types(&ev).is_empty(), err, "{input}");
    }
    assert_eq!(norm(txn(json!({})))["level"], "info");
    assert_eq!(norm(txn(json!({"level": "warn"})))["level"], "info");
}

#[test]
fn releases_and_environments() {
    for (input, expected) in [
        (json!("  1.0  "), json!("1.0")),
        (json!(42), json!("42")),
        (json!(1.5), json!("1")),
        (json!("my/app"), Value::Null),
        (json!("latest"), Value::Null),
        (json!("."), Value::Null),
        (json!(""), Value::Null),
        (json!("a".repeat(201)), Value::Null),
        (json!("1.0\nx"), Value::Null),
        (json!({"a": 1}), Value::Null),
    ] {
        let ev = norm(json!({"release": input}));
        assert_eq!(ev["release"], expected, "{input}");
        assert_eq!(error_types(&ev).is_empty(), !expected.is_null(), "{input}");
    }
    for (input, expected) in [
        (json!(" staging "), json!("staging")),
        (json!("none"), Value::Null),
        (json!("e".repeat(65)), Value::Null),
        (json!("prod/eu"), Value::Null),
        (json!(3), Value::Null),
    ] {
        let ev = norm(json!({"environment": input}));
        assert_eq!(ev["environment"], expected, "{input}");
    }
}

#[test]
fn dist() {
    let ev = norm(json!({"dist": "  abc "}));
    assert_eq!(ev["dist"], "abc");
    let ev = norm(json!({"dist": "d".repeat(65)}));
    assert_eq!(ev["dist"], Value::Null);
    assert_eq!(error_types(&ev), vec!["value_too_long"]);
    let ev = norm(json!({"dist": "a b"}));
    assert_eq!(ev["errors"][0]["reason"], "invalid character ' '");
}

#[test]
fn timestamps_are_floats_and_clamped() {
    let ev = norm(json!({"timestamp": "2024-06-01T11:59:00"}));
    assert_eq!(ev["timestamp"], json!(TS - 60.0));
    let ev = norm(json!({"timestamp": "garbage"}));
    assert_eq!(ev["timestamp"], json!(TS));
    assert_eq!(error_types(&ev), vec!["invalid_data"]);

    let ev = norm(json!({"timestamp": TS + 120.0, "breadcrumbs": [{"timestamp": TS + 110.0}]}));
    assert_eq!(ev["timestamp"], json!(TS));
    assert_eq!(ev["breadcrumbs"]["values"][0]["timestamp"], json!(TS - 10.0));
    assert_eq!(error_types(&ev), vec!["future_timestamp"]);
    assert_eq!(ev["errors"][0]["sdk_time"], "2024-06-01T12:02:00+00:00");

    let ev = norm(json!({"timestamp": TS + 30.0}));
    assert_eq!(ev["timestamp"], json!(TS + 30.0));
    let ev = norm(json!({"timestamp": TS - 31.0 * 86400.0}));
    assert_eq!(error_types(&ev), vec!["past_timestamp"]);
    assert_eq!(ev["timestamp"], json!(TS));
}

#[test]
fn clock_drift_correction() {
    let mut cfg = config();
    cfg.sent_at = Some(cfg.received_at - chrono::Duration::hours(2));
    let event = json!({
        "timestamp": TS - 7205.0,
        "breadcrumbs": {"values": [{"timestamp": TS - 7210.0}]},
    });
    let ev = normalize_event(event.clone(), &cfg).unwrap();
    assert_eq!(ev["timestamp"], json!(TS - 5.0));
    assert_eq!(ev["breadcrumbs"]["values"][0]["timestamp"], json!(TS - 10.0));
    assert_eq!(error_types(&ev), vec!["clock_drift"]);

    // Below 55 minutes nothing happens.
    cfg.sent_at = Some(cfg.received_at - chrono::Duration::minutes(54));
    let ev = normalize_event(json!({"timestamp": TS - 3245.0}), &cfg).unwrap();
    assert_eq!(ev["timestamp"], json!(TS - 3245.0));
    assert!(ev.get("errors").is_none());

    // Transactions: start, end and spans move together.
    cfg.sent_at = Some(cfg.received_at + chrono::Duration::hours(2));
    let event = txn(json!({
        "start_timestamp": TS + 7198.0,
        "timestamp": TS + 7199.0,
        "spans": [{"trace_id": TRACE_ID, "span_id": "b0e6f15b45c36b12", "start_timestamp": TS + 7198.5, "timestamp": TS + 7198.75}],
    }));
    let ev = normalize_event(event, &cfg).unwrap();
    assert_eq!(ev["start_timestamp"], json!(TS - 2.0));
    assert_eq!(ev["timestamp"], json!(TS - 1.0));
    assert_eq!(ev["spans"][0]["start_timestamp"], json!(TS - 1.5));
    assert_eq!(ev["spans"][0]["timestamp"], json!(TS - 1.25));
}

#[test]
fn type_inference() {
    assert_eq!(norm(json!({"type": "foo"}))["type"], "default");
    assert_eq!(norm(json!({"type": "error"}))["type"], "default");
    assert_eq!(norm(json!({"type": "generic"}))["type"], "default");
    assert_eq!(norm(json!({"exception": [{"type": "E", "value": "v"}]}))["type"], "error");
    let ev = norm(json!({"csp": {"document_uri": "https://x/"}}));
    assert_eq!((ev["type"].as_str(), ev["logger"].as_str()), (Some("csp"), Some("csp")));
    let mut cfg = config();
    cfg.keep_issue_platform_type = true;
    for ty in ["generic", "feedback"] {
        let ev = normalize_event(json!({"type": ty}), &cfg).unwrap();
        assert_eq!(ev["type"], ty);
    }
}

#[test]
fn messages() {
    let cases = [
        (json!({"message": 42}), json!({"formatted": "42"})),
        (json!({"message": ["a", "b"]}), json!({"formatted": "[\"a\",\"b\"]"})),
        (json!({"message": "m", "logentry": {"formatted": "l"}}), json!({"formatted": "l"})),
        (
            json!({"logentry": {"message": "hi %s", "params": ["x"]}}),
            json!({"formatted": "hi x", "message": "hi %s", "params": ["x"]}),
        ),
        (json!({"sentry.interfaces.Message": {"message": "legacy"}}), json!({"formatted": "legacy"})),
    ];
    for (input, expected) in cases {
        assert_eq!(norm(input.clone())["logentry"], expected, "{input}");
    }
    assert!(norm(json!({"message": ""})).get("logentry").is_none());
    let ev = norm(json!({"logentry": {"params": [1]}}));
    assert_eq!(ev["logentry"], Value::Null);
    let ev = norm(json!({"message": "m".repeat(9000)}));
    let formatted = ev["logentry"]["formatted"].as_str().unwrap();
    assert_eq!(formatted.chars().count(), 8192);
    assert!(formatted.ends_with("..."));
    assert_eq!(
        norm(json!({"message": "m".repeat(8300)}))["logentry"]["formatted"].as_str().map(str::len),
        Some(8300)
    );
}

#[test]
fn fingerprints() {
    let ev = norm(json!({"fingerprint": ["{{ default }}", 1, 2.7, true, null, "x"]}));
    assert_eq!(ev["fingerprint"], json!(["{{ default }}", "1", "2", "True", "x"]));
    let ev = norm(json!({"fingerprint": "abc"}));
    assert_eq!(ev["fingerprint"], Value::Null);
    assert_eq!(error_types(&ev), vec!["invalid_data"]);
}

#[test]
fn exceptions_and_stacktraces() {
    let ev = norm(json!({
        "exception": {"values": [{"value": "ValueError: bad"}]},
        "stacktrace": {"frames": [{"filename": "a.py", "function": "f"}]},
    }));
    let exc = &ev["exception"]["values"][0];
    assert_eq!((exc["type"].as_str(), exc["value"].as_str()), (Some("ValueError"), Some("bad")));
    assert_eq!(exc["stacktrace"]["frames"][0]["abs_path"], "a.py");
    assert!(ev.get("stacktrace").is_none());

    let ev = norm(json!({"exception": {"values": [{"module": "x"}, "str"]}}));
    assert_eq!(ev["exception"]["values"], json!([null, null]));
    assert_eq!(error_types(&ev), vec!["missing_attribute", "invalid_data"]);
    assert_eq!(ev["type"], "default");
}

#[test]
fn breadcrumbs_user_contexts() {
    let ev = norm(json!({
        "breadcrumbs": [{"timestamp": "2024-06-01T11:58:00Z", "level": "warn"}, 5],
        "user": {"id": 1, "email": "a@b.c"},
        "contexts": {"os": {"name": "Linux"}, "bad": 1, "trace": {"trace_id": TRACE_ID, "span_id": SPAN_ID, "parent_span_id": null}},
    }));
    let crumb = &ev["breadcrumbs"]["values"][0];
    assert_eq!(crumb["timestamp"], json!(TS - 120.0));
    assert_eq!((crumb["level"].as_str(), crumb["type"].as_str()), (Some("info"), Some("default")));
    assert_eq!(ev["breadcrumbs"]["values"][1], Value::Null);
    assert_eq!(ev["user"]["id"], "1");
    assert_eq!(ev["user"]["sentry_user"], "id:1");
    assert_eq!(ev["contexts"]["os"]["type"], "os");
    assert!(ev["contexts"].get("bad").is_none());
    assert_eq!(
        ev["contexts"]["trace"],
        json!({"trace_id": TRACE_ID, "span_id": SPAN_ID, "status": "unknown", "type": "trace"})
    );
    assert_eq!(norm(json!({"user": {"email": "e@x"}}))["user"]["sentry_user"], "email:e@x");
    assert_eq!(norm(json!({"user": {"ip_address": "1.2.3.4"}}))["user"]["sentry_user"], "ip:1.2.3.4");
}

#[test]
fn auto_ip_is_resolved_for_browser_platforms() {
    let mut cfg = config();
    cfg.client_ip = Some("10.1.2.3".into());
    let ev =
        normalize_event(json!({"platform": "javascript", "user": {"ip_address": "{{auto}}"}}), &cfg).unwrap();
    assert_eq!(ev["user"]["ip_address"], "10.1.2.3");
    let ev =
        normalize_event(json!({"platform": "python", "user": {"ip_address": "{{auto}}"}}), &cfg).unwrap();
    assert_eq!(ev["user"]["ip_address"], "{{auto}}");
    let ev = normalize_event(json!({"request": {"env": {"REMOTE_ADDR": "1.1.1.1"}}}), &cfg).unwrap();
    assert_eq!(ev["user"]["sentry_user"], "ip:1.1.1.1");
}

#[test]
fn unknown_attributes_and_measurements() {
    let ev = norm(json!({"foo": 1, "measurements": {"lcp": {"value": 1}}, "server_name": "web"}));
    assert!(ev.get("foo").is_none());
    assert!(ev.get("measurements").is_none());
    assert_eq!(error_types(&ev), vec!["invalid_attribute"]);
    assert_eq!(ev["tags"], json!([["server_name", "web"]]));
}

#[test]
fn trimming() {
    let ev =
        norm(json!({"logger": "l".repeat(70), "culprit": "c".repeat(250), "transaction": "t".repeat(250)}));
    assert_eq!(ev["logger"].as_str().unwrap().chars().count(), 64);
    assert_eq!(ev["culprit"].as_str().unwrap().chars().count(), 200);
    assert!(ev["transaction"].as_str().unwrap().ends_with("..."));
    let mut s = "é".repeat(10);
    trim_chars(&mut s, 5, 0);
    assert_eq!(s, "éé...");
}

#[test]
fn transactions() {
    let ev = norm(txn(
        json!({"transaction": null, "spans": [{"trace_id": TRACE_ID.to_uppercase(), "span_id": "B0E6F15B45C36B12", "start_timestamp": TS - 1.5}]}),
    ));
    assert_eq!(ev["type"], "transaction");
    assert_eq!(ev["transaction"], "<unlabeled transaction>");
    assert_eq!(ev["transaction_info"]["source"], "unknown");
    assert_eq!(ev["contexts"]["trace"]["status"], "unknown");
    assert_eq!(ev["contexts"]["trace"]["op"], "http.server");
    let span = &ev["spans"][0];
    assert_eq!(span["trace_id"], TRACE_ID);
    assert_eq!(span["span_id"], "b0e6f15b45c36b12");
    assert_eq!(span["timestamp"], json!(TS - 1.0));
    assert_eq!(span["status"], "deadline_exceeded");
    assert_eq!(span["op"], "default");
    assert_eq!(norm(txn(json!({"transaction": "  /x  "})))["transaction"], "/x");
    assert_eq!(
        norm(txn(json!({"transaction_info": {"source": "route"}})))["transaction_info"]["source"],
        "route"
    );
    let ev = norm(txn(json!({"contexts": {"trace": {"trace_id": TRACE_ID, "span_id": SPAN_ID}}})));
    assert_eq!(ev["contexts"]["trace"]["op"], "default");
}

#[test]
fn invalid_transactions_are_rejected() {
    let reject = |overrides: Value| normalize_event(txn(overrides), &config()).unwrap_err();
    let cases = [
        (json!({"start_timestamp": null}), "start_timestamp hard-required for transaction events"),
        (json!({"start_timestamp": "garbage"}), "start_timestamp hard-required for transaction events"),
        (
            json!({"start_timestamp": TS - 1.0, "timestamp": TS - 2.0}),
            "end timestamp is smaller than start timestamp",
        ),
        (json!({"contexts": {}}), "missing valid trace context"),
        (
            json!({"contexts": {"trace": {"trace_id": "zzz", "span_id": SPAN_ID}}}),
            "trace context is missing trace_id",
        ),
        (json!({"contexts": {"trace": {"trace_id": TRACE_ID}}}), "trace context is missing span_id"),
        (
            json!({"spans": [{"start_timestamp": TS - 1.5, "timestamp": TS - 1.2}]}),
            "span is missing trace_id",
        ),
        (
            json!({"spans": [{"trace_id": TRACE_ID, "start_timestamp": TS - 1.5, "timestamp": TS - 1.2}]}),
            "span is missing span_id",
        ),
        (
            json!({"spans": [{"trace_id": TRACE_ID, "span_id": SPAN_ID, "start_timestamp": TS - 1.2, "timestamp": TS - 1.5}]}),
            "end timestamp is smaller than start timestamp",
        ),
    ];
    for (overrides, reason) in cases {
        assert_eq!(reject(overrides.clone()), NormalizeError::InvalidTransaction(reason), "{overrides}");
    }
    // A missing end is the receive time.
    assert!(normalize_event(txn(json!({"timestamp": null})), &config()).is_ok());
}

#[test]
fn is_idempotent_on_its_output() {
    let first = norm(json!({
        "message": "hello", "level": "warning", "release": "1.0", "tags": {"a": "b"},
        "user": {"id": "1"}, "exception": [{"type": "E", "value": "v"}],
    }));
    let second = norm(first.clone());
    for key in [
        "event_id",
        "level",
        "release",
        "tags",
        "user",
        "exception",
        "logentry",
        "contexts",
        "timestamp",
        "type",
    ] {
        assert_eq!(first[key], second[key], "{key}");
    }
}
