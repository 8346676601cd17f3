//! Ported Sentry tests (spec §10) at the pure-function level, and flows over real normalized SDK
//! events from `tests/fixtures/relay/expected.json` (Relay's normalizer output), with insta snapshots
//! of the eventstream records.

use std::sync::LazyLock;

use serde_json::{Value, json};

use super::hashing::{calculate_hashes, hash_from_values, resolve_fingerprint_values};
use super::metadata::{self, materialize_metadata, search_message, updated_group_title};
use super::spans::calculate_span_grouping;
use super::tags::{self, apply_save_tags, get_tag};
use crate::save::record::{self as eventstream, GroupState, InsertParams};

static RELAY_CASES: LazyLock<Vec<(String, Value)>> = LazyLock::new(|| {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/relay/expected.json");
    let text = std::fs::read_to_string(path).unwrap();
    let cases: Vec<Value> = serde_json::from_str(&text).unwrap();
    cases
        .into_iter()
        .filter_map(|case| Some((case["name"].as_str()?.to_owned(), case.get("output")?.clone())))
        .collect()
});

/// Relay's normalized output for one fixture case.
fn relay(name: &str) -> Value {
    RELAY_CASES
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no case {name}"))
}

/// A normalized event as Relay would produce it for Sentry's `make_event(**overrides)`.
fn make_event(overrides: Value) -> Value {
    let mut event = json!({
        "event_id": "a".repeat(32),
        "level": "error",
        "logger": "",
        "platform": "other",
        "tags": [],
        "timestamp": 1717243200.0,
        "received": 1717243200.5,
        "contexts": {"trace": {"trace_id": "a".repeat(32), "span_id": "a".repeat(16), "type": "trace"}},
    });
    let map = event.as_object_mut().unwrap();
    for (key, value) in overrides.as_object().unwrap() {
        map.insert(key.clone(), value.clone());
    }
    if !map.contains_key("type") {
        let has_exception = map
            .get("exception")
            .and_then(|e| e.get("values"))
            .is_some_and(|v| v.as_array().is_some_and(|a| !a.is_empty()));
        map.insert("type".to_owned(), json!(if has_exception { "error" } else { "default" }));
    }
    event
}

fn message_event(message: &str) -> Value {
    make_event(json!({"logentry": {"formatted": message}}))
}

fn hashes_of(mut event: Value) -> Vec<String> {
    calculate_hashes(&mut event).hashes
}

fn primary(event: Value) -> String {
    hashes_of(event).remove(0)
}

// ---------------------------------------------------------------------------------------------
// Grouping (test_event_manager_grouping.py, test_event_manager.py)
// ---------------------------------------------------------------------------------------------

#[test]
fn test_hash_from_values() {
    assert_eq!(hash_from_values(["foo"]), "acbd18db4cc2f85cedef654fccc4a4d8");
    assert_eq!(hash_from_values(["f", "oo"]), "acbd18db4cc2f85cedef654fccc4a4d8");
    assert_eq!(hash_from_values::<[&str; 0], &str>([]), "d41d8cd98f00b204e9800998ecf8427e");
}

/// `test_group_environment` / eventstream `test`: message "foo" → primary hash md5("foo").
#[test]
fn test_group_environment_primary_hash() {
    let mut event = message_event("foo");
    let hashes = calculate_hashes(&mut event);
    assert_eq!(hashes.hashes, ["acbd18db4cc2f85cedef654fccc4a4d8"]);
    assert_eq!(hashes.contributing_variant, "default");
    assert_eq!(event["hashes"], json!(["acbd18db4cc2f85cedef654fccc4a4d8"]));
}

#[test]
fn test_adds_default_fingerprint_if_none_in_event() {
    let mut event = message_event("Dogs are great!");
    calculate_hashes(&mut event);
    assert_eq!(event["fingerprint"], json!(["{{ default }}"]));
    assert!(event.get("_fingerprint_info").is_none());
}

#[test]
fn test_puts_events_with_matching_fingerprints_in_same_group() {
    let a = make_event(json!({"logentry": {"formatted": "Dogs are great!"}, "fingerprint": ["maisey"]}));
    let b = make_event(json!({"logentry": {"formatted": "Adopt don't shop"}, "fingerprint": ["maisey"]}));
    assert_eq!(hashes_of(a), hashes_of(b));
}

#[test]
fn test_puts_events_with_different_fingerprints_in_different_groups() {
    let a = make_event(json!({"logentry": {"formatted": "Dogs are great!"}, "fingerprint": ["maisey"]}));
    let b = make_event(json!({"logentry": {"formatted": "Dogs are great!"}, "fingerprint": ["charlie"]}));
    let (a, b) = (hashes_of(a), hashes_of(b));
    assert_eq!(a, [hash_from_values(["maisey"])]);
    assert_ne!(a, b);
}

#[test]
fn test_puts_events_with_only_partial_message_match_in_different_groups() {
    let a = primary(message_event("Dogs are great!"));
    let b = primary(message_event("Dogs are really great!"));
    assert_ne!(a, b);
    assert_eq!(a, hash_from_values(["Dogs are great!"]));
}

#[test]
fn test_invalid_checksum_gets_hashed() {
    let mut event = make_event(json!({"checksum": "invalid checksum hash"}));
    let hashes = calculate_hashes(&mut event);
    assert_eq!(hashes.hashes, [hash_from_values(["invalid checksum hash"])]);
    assert_eq!(hashes.contributing_variant, "hashed_checksum");
}

#[test]
fn valid_checksum_is_the_only_hash() {
    let mut event = make_event(json!({"checksum": "a".repeat(32), "logentry": {"formatted": "foo"}}));
    let hashes = calculate_hashes(&mut event);
    assert_eq!(hashes.hashes, ["a".repeat(32)]);
    assert_eq!(hashes.contributing_variant, "checksum");
    // Uppercase hex is not a checksum: it gets hashed.
    assert_eq!(
        hashes_of(make_event(json!({"checksum": "A".repeat(32)}))),
        [hash_from_values(["A".repeat(32)])]
    );
}

#[test]
fn test_ignores_fingerprint_on_transaction_event() {
    let error_event =
        make_event(json!({"logentry": {"formatted": "Dogs are great!"}, "fingerprint": ["charlie"]}));
    let mut transaction = make_event(json!({
        "type": "transaction", "transaction": "dogpark", "fingerprint": ["charlie"],
        "start_timestamp": 1717243199.0, "spans": [],
    }));
    let before = transaction.clone();
    let hashes = calculate_hashes(&mut transaction);
    assert!(hashes.hashes.is_empty());
    assert_eq!(transaction, before, "transactions are not touched by grouping");
    assert_eq!(hashes_of(error_event), [hash_from_values(["charlie"])]);
}

#[test]
fn test_none_exception() {
    let mut event = make_event(json!({"exception": null}));
    let hashes = calculate_hashes(&mut event);
    assert_eq!(hashes.hashes, ["d41d8cd98f00b204e9800998ecf8427e"]);
    assert_eq!(hashes.contributing_variant, "fallback");
}

/// `test_category_match_group`: recomputing the hashes of a saved event gives the same hashes.
#[test]
fn test_category_match_group() {
    for name in ["sdk_python_exception", "sdk_node_exception_2", "sdk_python_message", "sdk_node_message_2"] {
        let mut event = relay(name);
        let first = calculate_hashes(&mut event);
        let second = calculate_hashes(&mut event);
        assert_eq!(first, second, "{name}");
    }
}

#[test]
fn identical_events_get_identical_hashes() {
    for name in ["sdk_python_exception", "sdk_node_exception_2", "sdk_python_session_1", "exception_values"] {
        assert_eq!(hashes_of(relay(name)), hashes_of(relay(name)), "{name}");
    }
}

#[test]
fn events_differing_only_in_lineno_group_together() {
    let a = relay("sdk_python_exception");
    let mut b = a.clone();
    for exception in b["exception"]["values"].as_array_mut().unwrap() {
        for frame in exception["stacktrace"]["frames"].as_array_mut().unwrap() {
            frame["lineno"] = json!(frame["lineno"].as_i64().unwrap() + 7);
        }
    }
    assert_eq!(hashes_of(a.clone()), hashes_of(b));
    let mut c = a.clone();
    c["exception"]["values"][0]["stacktrace"]["frames"][0]["function"] = json!("other");
    assert_ne!(hashes_of(a), hashes_of(c));
}

#[test]
fn messages_differing_only_by_a_number_group_together() {
    assert_eq!(
        primary(message_event("Took 12 ms for job 4")),
        primary(message_event("Took 99 ms for job 123456"))
    );
    assert_eq!(primary(message_event("Took 12 ms")), hash_from_values(["Took <int> ms"]));
}

#[test]
fn message_template_is_preferred_over_the_formatted_message() {
    let event =
        make_event(json!({"logentry": {"formatted": "foo bar", "message": "foo %s", "params": ["bar"]}}));
    assert_eq!(primary(event), hash_from_values(["foo %s"]));
}

#[test]
fn default_fingerprint_with_any_inner_whitespace_is_recognised() {
    let plain = primary(message_event("foo"));
    for fingerprint in ["{{default}}", "{{ default }}", "{{  default\t}}"] {
        let mut event = make_event(json!({"logentry": {"formatted": "foo"}, "fingerprint": [fingerprint]}));
        let hashes = calculate_hashes(&mut event);
        assert_eq!(hashes.hashes, std::slice::from_ref(&plain), "{fingerprint}");
        assert_eq!(event["fingerprint"], json!([fingerprint]));
    }
}

#[test]
fn default_mixed_with_other_entries_salts_the_hash() {
    let salted = |salt: &str| {
        let mut event =
            make_event(json!({"logentry": {"formatted": "foo"}, "fingerprint": ["{{ default }}", salt]}));
        let hashes = calculate_hashes(&mut event);
        assert_eq!(event["_fingerprint_info"], json!({"client_fingerprint": ["{{ default }}", salt]}));
        hashes
    };
    let x = salted("x");
    assert_eq!(x.hashes, [hash_from_values(["foo", "x"])]);
    assert_eq!(x.contributing_variant, "default");
    assert_ne!(x.hashes, salted("y").hashes);
}

#[test]
fn fingerprint_variables_are_resolved() {
    let event = make_event(json!({
        "transaction": "/dogs/", "level": "warning",
        "exception": {"values": [{"type": "DogError", "value": "no dogs", "stacktrace": {"frames": [
            {"module": "app.dogs", "function": "walk", "filename": "dogs.py", "in_app": true},
            {"module": "lib.leash", "function": "pull", "filename": "leash.py", "in_app": false},
        ]}}]},
    }));
    let fingerprint: Vec<String> = [
        "{{ transaction }}",
        "{{ type }}",
        "{{ module }}",
        "{{ function }}",
        "{{ level }}",
        "{{ message }}",
        "{{ tags.missing }}",
        "{{ unknown_var }}",
        "literal",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(
        resolve_fingerprint_values(&fingerprint, &event),
        [
            "/dogs/",
            "DogError",
            "app.dogs",
            "walk",
            "warning",
            "no dogs",
            "<no-value-for-tag-missing>",
            "{{ unknown_var }}",
            "literal"
        ]
    );
    let mut with_fingerprint = event.clone();
    with_fingerprint["fingerprint"] = json!(["{{ type }}", "{{ function }}"]);
    assert_eq!(hashes_of(with_fingerprint), [hash_from_values(["DogError", "walk"])]);
    let message_only = message_event("hello");
    let fingerprint = ["{{ transaction }}".to_owned(), "{{ type }}".to_owned(), "{{ message }}".to_owned()];
    assert_eq!(
        resolve_fingerprint_values(&fingerprint, &message_only),
        ["<no-transaction>", "<no-type>", "hello"]
    );
}

/// `test_error_event_type` grouping: without a stack trace the type and the normalized value count.
#[test]
fn error_without_stacktrace_groups_by_type_and_value() {
    let event = make_event(json!({"exception": {"values": [{"type": "Foo", "value": "bar"}]}}));
    let mut e = event.clone();
    let hashes = calculate_hashes(&mut e);
    assert_eq!(hashes.hashes, [hash_from_values(["Foo", "bar"])]);
    assert_eq!(hashes.contributing_variant, "app");
    let other_number = make_event(json!({"exception": {"values": [{"type": "Foo", "value": "bar 12"}]}}));
    let same_number = make_event(json!({"exception": {"values": [{"type": "Foo", "value": "bar 13"}]}}));
    assert_eq!(hashes_of(other_number), hashes_of(same_number));
}

#[test]
fn synthetic_exception_types_are_ignored() {
    let event = |ty: &str| {
        make_event(
            json!({"exception": {"values": [{"type": ty, "value": "boom", "mechanism": {"type": "generic", "synthetic": true}}]}}),
        )
    };
    assert_eq!(hashes_of(event("SIGSEGV")), hashes_of(event("EXC_BAD_ACCESS")));
    assert_eq!(hashes_of(event("SIGSEGV")), [hash_from_values(["boom"])]);
}

#[test]
fn exception_value_is_ignored_when_the_stacktrace_contributes() {
    let event = |value: &str| {
        make_event(
            json!({"platform": "python", "exception": {"values": [{"type": "E", "value": value, "stacktrace": {"frames": [
                {"module": "app", "function": "run", "context_line": "run()", "in_app": true}
            ]}}]}}),
        )
    };
    assert_eq!(hashes_of(event("user 1 failed")), hashes_of(event("something else entirely")));
}

/// The Python SDK's chained exception: per exception (payload order) the contributing frame values
/// (module, function, context line) and then the type — `newstyle:2023-01-11`'s legacy
/// sub-component order. All frames are in-app, so the app variant equals the system variant and is
/// ignored ("ignored because hash matches system variant"): the system variant carries the hash.
#[test]
fn python_sdk_exception_hash_components() {
    let mut event = relay("sdk_python_exception");
    let hashes = calculate_hashes(&mut event);
    let expected = hash_from_values([
        "__main__",
        "outer",
        "inner()",
        "__main__",
        "inner",
        "raise KeyError(\"missing-key\")",
        "KeyError",
        "__main__",
        "python_scenario",
        "outer()",
        "__main__",
        "outer",
        "raise ValueError(\"outer failure\") from exc",
        "ValueError",
    ]);
    assert_eq!(hashes.hashes, [expected]);
    assert_eq!(hashes.contributing_variant, "system");
    assert_eq!(event["metadata"]["in_app_frame_mix"], "in-app-only");
    assert!(event.get("main_exception_id").is_none());
}

/// The Node SDK's linked errors carry `exception_id`/`parent_id`: the exception tree puts the root
/// error first (Sentry's exception-group handling) and records `main_exception_id` 0. Node internal
/// frames only count in the system variant, which is kept last.
#[test]
fn node_sdk_chained_exception_follows_the_exception_tree() {
    let mut event = relay("sdk_node_exception_2");
    let hashes = calculate_hashes(&mut event);
    let app = hash_from_values([
        "capture",
        "outer();",
        "capture",
        "outer",
        "throw new Error(\"outer failure\", { cause });",
        "Error",
        "capture",
        "outer();",
        "capture",
        "outer",
        "inner();",
        "capture",
        "inner",
        "throw new TypeError(\"missing-key\");",
        "TypeError",
    ]);
    let system = hash_from_values([
        "run_main",
        "asyncRunEntryPointWithESMLoader",
        "loader",
        "import",
        "module_job",
        "run",
        "capture",
        "outer();",
        "capture",
        "outer",
        "throw new Error(\"outer failure\", { cause });",
        "Error",
        "run_main",
        "asyncRunEntryPointWithESMLoader",
        "loader",
        "import",
        "module_job",
        "run",
        "capture",
        "outer();",
        "capture",
        "outer",
        "inner();",
        "capture",
        "inner",
        "throw new TypeError(\"missing-key\");",
        "TypeError",
    ]);
    assert_eq!(hashes.hashes, [app, system]);
    assert_eq!(event["main_exception_id"], 0);
    assert_eq!(event["metadata"]["in_app_frame_mix"], "mixed");
}

#[test]
fn without_in_app_frames_only_the_system_variant_counts() {
    let event = make_event(
        json!({"platform": "python", "exception": {"values": [{"type": "E", "value": "v", "stacktrace": {"frames": [
            {"module": "lib", "function": "f", "in_app": false}
        ]}}]}}),
    );
    let mut e = event.clone();
    let hashes = calculate_hashes(&mut e);
    assert_eq!(hashes.hashes, [hash_from_values(["lib", "f", "E"])]);
    assert_eq!(hashes.contributing_variant, "system");
    assert_eq!(e["exception"]["values"][0]["stacktrace"]["frames"][0]["in_app"], false);
}

#[test]
fn missing_in_app_defaults_to_false() {
    let mut event = make_event(
        json!({"exception": {"values": [{"type": "E", "stacktrace": {"frames": [{"function": "f"}]}}]}}),
    );
    calculate_hashes(&mut event);
    assert_eq!(event["exception"]["values"][0]["stacktrace"]["frames"][0]["in_app"], false);
    assert_eq!(event["metadata"]["in_app_frame_mix"], "system-only");
}

#[test]
fn threads_strategy_uses_the_crashed_thread() {
    let thread = |id: u64, crashed: bool, function: &str| json!({"id": id, "crashed": crashed, "stacktrace": {"frames": [{"function": function, "package": "app", "in_app": true}]}});
    let event = make_event(
        json!({"platform": "native", "threads": {"values": [thread(1, false, "idle"), thread(2, true, "crash_here")]}}),
    );
    assert_eq!(hashes_of(event), [hash_from_values(["crash_here"])]);
}

#[test]
fn csp_reports_group_by_directive_and_blocked_host() {
    let event = |uri: &str| {
        make_event(
            json!({"type": "csp", "logger": "csp", "csp": {"effective_directive": "script-src", "blocked_uri": uri, "violated_directive": "script-src 'self'"},
            "logentry": {"formatted": "Blocked 'script' from 'evil.example'"}}),
        )
    };
    let a = hashes_of(event("https://evil.example/a.js"));
    assert_eq!(a, [hash_from_values(["script-src", "evil.example"])]);
    assert_eq!(a, hashes_of(event("https://evil.example/b.js")));
    assert_ne!(a, hashes_of(event("https://other.example/a.js")));
}

#[test]
fn relay_csp_fixture_groups_by_derived_directive() {
    assert_eq!(hashes_of(relay("type_csp")), [hash_from_values(["script-src", "evil.example"])]);
}

#[test]
fn fallback_hash_when_nothing_contributes() {
    let mut event = relay("empty_event");
    let hashes = calculate_hashes(&mut event);
    assert_eq!(hashes.hashes, [hash_from_values::<[&str; 0], &str>([])]);
    assert_eq!(hashes.contributing_variant, "fallback");
}

#[test]
fn relay_message_fixtures_hash_their_message() {
    assert_eq!(hashes_of(relay("sdk_python_message")), [hash_from_values(["Something odd happened"])]);
    assert_eq!(hashes_of(relay("logentry_params")), [hash_from_values(["hello %s"])]);
    assert_eq!(hashes_of(relay("message_plain")), hashes_of(message_event("Hello there")));
}

// ---------------------------------------------------------------------------------------------
// Event types, metadata, titles, culprits (test_event_manager.py)
// ---------------------------------------------------------------------------------------------

#[test]
fn test_default_event_type() {
    let m = materialize_metadata(&message_event("foo bar"));
    assert_eq!(m.event_type, "default");
    assert_eq!(m.metadata, json!({"title": "foo bar"}));
    assert_eq!(m.title, "foo bar");
}

#[test]
fn test_message_event_type() {
    let event =
        make_event(json!({"logentry": {"formatted": "foo bar", "message": "foo %s", "params": ["bar"]}}));
    let m = materialize_metadata(&event);
    assert_eq!(m.event_type, "default");
    assert_eq!(m.metadata["title"], "foo bar");
}

#[test]
fn test_error_event_type() {
    let event = make_event(json!({"exception": {"values": [{"type": "Foo", "value": "bar"}]}}));
    let m = materialize_metadata(&event);
    assert_eq!(m.event_type, "error");
    assert_eq!(m.metadata, json!({"type": "Foo", "value": "bar"}));
    assert_eq!(m.title, "Foo: bar");
    assert_eq!(metadata::initial_priority("error"), metadata::priority::HIGH);
}

#[test]
fn test_csp_event_type() {
    let event = make_event(json!({
        "type": "csp",
        "csp": {"effective_directive": "script-src", "blocked_uri": "http://example.com"},
        "logentry": {"message": "Blocked 'script' from 'example.com'"},
    }));
    let m = materialize_metadata(&event);
    assert_eq!(m.event_type, "csp");
    assert_eq!(
        m.metadata,
        json!({"directive": "script-src", "uri": "example.com", "message": "Blocked 'script' from 'example.com'"})
    );
    assert_eq!(m.title, "Blocked 'script' from 'example.com'");
    assert_eq!(m.location.as_deref(), Some("example.com"));
}

#[test]
fn test_transaction_event_type() {
    let mut event = relay("sdk_python_transaction");
    assert_eq!(event["type"], "transaction");
    let m = materialize_metadata(&event);
    assert_eq!(
        (m.event_type.as_str(), m.title.as_str(), m.culprit.as_str()),
        ("transaction", "process-order", "process-order")
    );
    assert_eq!(m.location.as_deref(), Some("process-order"));
    m.write_into(&mut event);
    assert_eq!(search_message(&event), "process-order");
}

#[test]
fn test_materialze_metadata_simple() {
    let m = materialize_metadata(&make_event(json!({"transaction": "/dogs/are/great/"})));
    assert_eq!(m.event_type, "default");
    assert_eq!(m.culprit, "/dogs/are/great/");
    assert_eq!(m.metadata, json!({"title": "<unlabeled event>"}));
    assert_eq!(m.title, "<unlabeled event>");
    assert_eq!(m.location, None);
}

#[test]
fn test_materialze_metadata_preserves_existing_metadata() {
    let mut event = make_event(json!({}));
    event["metadata"] = json!({"dogs": "are great"});
    assert_eq!(
        materialize_metadata(&event).metadata,
        json!({"title": "<unlabeled event>", "dogs": "are great"})
    );
}

#[test]
fn test_react_error_picks_cause_error_title_subtitle() {
    let cases = [
        (
            "There was an error during concurrent rendering but React was able to recover by instead synchronously rendering the entire root.",
            "Load failed",
            json!({"type": "onerror", "handled": false, "source": "cause", "exception_id": 1, "parent_id": 0}),
        ),
        (
            "There was an error while hydrating but React was able to recover by instead client rendering from the nearest Suspense boundary.",
            "Cannot read properties of undefined (reading 'nodeName')",
            json!({"type": "chained", "source": "cause", "exception_id": 1, "parent_id": 0}),
        ),
    ];
    for (react_message, cause, mechanism) in cases {
        let mut event = make_event(json!({"platform": "javascript", "exception": {"values": [
            {"type": "TypeError", "value": cause, "mechanism": mechanism},
            {"type": "Error", "value": react_message, "mechanism": {"type": "generic", "handled": true, "exception_id": 0}},
        ]}}));
        calculate_hashes(&mut event);
        assert_eq!(event["main_exception_id"], 1);
        let m = materialize_metadata(&event);
        assert_eq!(m.metadata["value"], cause);
        assert_eq!(m.metadata["type"], "TypeError");
        assert_eq!(m.title, format!("TypeError: {cause}"));
    }
}

#[test]
fn error_title_uses_the_first_line_of_the_value_truncated_to_100() {
    let long = "x".repeat(150);
    let event = make_event(
        json!({"exception": {"values": [{"type": "E", "value": format!("{long}\nsecond line")}]}}),
    );
    let m = materialize_metadata(&event);
    assert_eq!(m.title, format!("E: {}...", "x".repeat(97)));
    let no_value = make_event(json!({"exception": {"values": [{"type": "E"}]}}));
    assert_eq!(materialize_metadata(&no_value).title, "E");
}

#[test]
fn error_metadata_from_real_sdk_events() {
    let python = materialize_metadata(&relay("sdk_python_exception"));
    assert_eq!(
        python.metadata,
        json!({"type": "ValueError", "value": "outer failure", "filename": "capture.py", "function": "outer"})
    );
    assert_eq!(python.title, "ValueError: outer failure");
    assert_eq!(python.culprit, "__main__ in outer");
    assert_eq!(python.location.as_deref(), Some("capture.py"));

    // A synthetic exception (attach-stacktrace message) has no type and no culprit; the title falls
    // back to the crash frame's function (the in-app frame has none, so the top system frame).
    let node_message = materialize_metadata(&relay("sdk_node_message_2"));
    assert_eq!(node_message.title, "ModuleJob.run");
    assert_eq!(node_message.metadata["value"], "Something odd happened");
    assert!(node_message.metadata.get("type").is_none());
    assert_eq!(node_message.culprit, "");
}

#[test]
fn test_transaction_as_culprit() {
    let event = make_event(json!({"transaction": "foobar"}));
    assert_eq!(metadata::get_culprit(&event), "foobar");
}

#[test]
fn test_culprit_is_not_transaction() {
    let event = make_event(json!({"culprit": "foobar"}));
    assert_eq!(event.get("transaction"), None);
    assert_eq!(metadata::get_culprit(&event), "foobar");
}

#[test]
fn test_transaction_and_culprit() {
    let event = make_event(json!({"transaction": "foobar", "culprit": "baz"}));
    assert_eq!(metadata::get_culprit(&event), "baz");
}

#[test]
fn test_inferred_culprit_from_empty_stacktrace() {
    let event = make_event(json!({"stacktrace": {"frames": []}}));
    assert_eq!(metadata::get_culprit(&event), "");
}

/// Sentry marks the frames with enhancement rules (`function:in_app_function +app`); the port trusts
/// `in_app` as given, so the test sets it directly.
#[test]
fn test_culprit_after_stacktrace_processing() {
    let event = make_event(
        json!({"platform": "native", "exception": {"values": [{"type": "Hello", "stacktrace": {"frames": [
            {"function": "not_in_app_function", "in_app": false},
            {"function": "in_app_function", "in_app": true},
        ]}}]}}),
    );
    assert_eq!(metadata::get_culprit(&event), "in_app_function");
}

#[test]
fn culprit_formats_per_platform() {
    let frames = |platform: &str| {
        make_event(
            json!({"platform": platform, "exception": {"values": [{"type": "E", "stacktrace": {"frames": [
                {"module": "app.views", "filename": "views.js", "function": "index", "in_app": true},
                {"module": "lib", "function": "helper", "in_app": false},
            ]}}]}}),
        )
    };
    assert_eq!(metadata::get_culprit(&frames("python")), "app.views in index");
    assert_eq!(metadata::get_culprit(&frames("node")), "index(app.views)");
    let request_only = make_event(json!({"request": {"url": "https://example.com/x"}}));
    assert_eq!(metadata::get_culprit(&request_only), "https://example.com/x");
}

#[test]
fn test_search_message_simple() {
    let mut event =
        make_event(json!({"logentry": {"formatted": "test"}, "transaction": "sentry.tasks.process"}));
    materialize_metadata(&event).write_into(&mut event);
    let message = search_message(&event);
    assert!(message.contains("test") && message.contains("sentry.tasks.process"), "{message}");
}

#[test]
fn test_search_message_prefers_log_entry_message() {
    let mut event =
        make_event(json!({"logentry": {"message": "hello world"}, "transaction": "sentry.tasks.process"}));
    materialize_metadata(&event).write_into(&mut event);
    let message = search_message(&event);
    assert!(message.contains("hello world") && message.contains("sentry.tasks.process"));
}

/// Sentry patches the skipped keys to `("dogs",)`; the real skipped key is `in_app_frame_mix`.
#[test]
fn test_search_message_skips_requested_keys() {
    let mut event =
        make_event(json!({"logentry": {"message": "hello world"}, "transaction": "sentry.tasks.process"}));
    event["metadata"] = json!({"in_app_frame_mix": "are great", "maisey": "silly", "charlie": "goofy"});
    materialize_metadata(&event).write_into(&mut event);
    let message = search_message(&event);
    assert!(message.contains("hello world") && message.contains("sentry.tasks.process"));
    assert!(message.contains("silly") && message.contains("goofy"));
    assert!(!message.contains("are great"));
}

#[test]
fn test_search_message_skips_bools_and_numbers() {
    let mut event =
        make_event(json!({"logentry": {"message": "hello world"}, "transaction": "sentry.tasks.process"}));
    event["metadata"] =
        json!({"dogs are great": true, "maisey": 12312012, "charlie": 1121.2012, "adopt": "don't shop"});
    materialize_metadata(&event).write_into(&mut event);
    let message = search_message(&event);
    assert!(message.contains("hello world") && message.contains("don't shop"));
    assert!(!message.contains("True") && !message.contains("12312012") && !message.contains("1121.2012"));
}

/// `PlaceholderTitleTest.test_bug_regression_no_longer_breaks_titles` at the pure level: the error
/// title and search message, the placeholder a mis-typed (default) interpretation would produce, and
/// the group title rule that keeps the real one.
#[test]
fn placeholder_title_test_bug_regression_no_longer_breaks_titles() {
    let mut event = make_event(json!({
        "exception": {"values": [{"type": "DogsAreNeverAnError", "value": "Dogs are great!"}]},
        "fingerprint": ["adopt don't shop"],
    }));
    calculate_hashes(&mut event);
    let m = materialize_metadata(&event);
    m.write_into(&mut event);
    assert_eq!(m.title, "DogsAreNeverAnError: Dogs are great!");
    assert!(m.metadata.get("title").is_none());
    assert_eq!(search_message(&event), "Dogs are great! DogsAreNeverAnError");

    let mut misread = event.clone();
    misread["type"] = json!("default");
    misread.as_object_mut().unwrap().remove("title");
    misread.as_object_mut().unwrap().remove("metadata");
    let bad = materialize_metadata(&misread);
    assert_eq!(bad.title, "<unlabeled event>");
    assert!(metadata::is_placeholder_title(&bad.title));
    assert_eq!(updated_group_title(Some(&m.title), Some(&bad.title)), Some(m.title.as_str()));
    assert_eq!(updated_group_title(None, bad.metadata["title"].as_str()), None);
}

/// `PlaceholderTitleTest.test_fixes_broken_title_data`: a real title replaces a stored placeholder.
#[test]
fn placeholder_title_test_fixes_broken_title_data() {
    assert_eq!(
        updated_group_title(Some("<unlabeled event>"), Some("DogsAreNeverAnError: Charlie is goofy")),
        Some("DogsAreNeverAnError: Charlie is goofy")
    );
    // Metadata level: the placeholder metadata title is removed by the incoming error's lack of one.
    assert_eq!(updated_group_title(Some("<unlabeled event>"), None), None);
}

#[test]
fn test_get_updated_group_title() {
    let table: [(Option<&str>, Option<&str>, Option<&str>); 9] = [
        (Some("Dogs are great!"), Some("Adopt don't shop"), Some("Adopt don't shop")),
        (Some("Dogs are great!"), Some("<untitled>"), Some("Dogs are great!")),
        (Some("Dogs are great!"), None, Some("Dogs are great!")),
        (Some("<unlabeled event>"), Some("Adopt don't shop"), Some("Adopt don't shop")),
        (Some("<unlabeled event>"), Some("<untitled>"), Some("<untitled>")),
        (Some("<unlabeled event>"), None, None),
        (None, Some("Adopt don't shop"), Some("Adopt don't shop")),
        (None, Some("<untitled>"), None),
        (None, None, None),
    ];
    for (existing, incoming, expected) in table {
        assert_eq!(updated_group_title(existing, incoming), expected, "{existing:?} {incoming:?}");
    }
}

#[test]
fn level_numbers_and_placeholders() {
    let levels = [("sample", 0), ("debug", 10), ("info", 20), ("warning", 30), ("error", 40), ("fatal", 50)];
    for (level, num) in levels {
        assert_eq!(metadata::level_num(level), num);
    }
    for title in ["<untitled>", "<unknown>", "<unlabeled event>", "Error"] {
        assert!(metadata::is_placeholder_title(title));
    }
    assert!(!metadata::is_placeholder_title("Error: boom"));
}

// ---------------------------------------------------------------------------------------------
// Tags, releases, environments, users
// ---------------------------------------------------------------------------------------------

#[test]
fn test_event_user() {
    let mut event = make_event(
        json!({"environment": "totally unique environment", "user": {"id": "1", "sentry_user": "id:1"}}),
    );
    apply_save_tags(&mut event, None, None);
    assert_eq!(get_tag(&event, "sentry:user"), Some("id:1"));
    let mut second = make_event(json!({"user": {"id": "1", "name": "jane"}}));
    apply_save_tags(&mut second, None, None);
    let user = tags::event_user(&second).unwrap();
    assert_eq!((user.name.as_deref(), user.id.as_deref()), (Some("jane"), Some("1")));
    assert_eq!(get_tag(&second, "sentry:user"), Some("id:1"));
}

#[test]
fn test_event_user_invalid_ip() {
    let event = make_event(json!({"user": {"id": "1", "ip_address": "[ip]"}}));
    assert_eq!(tags::event_user(&event).unwrap().ip_address, None);
    let ip_only = make_event(json!({"user": {"ip_address": "[ip]"}}));
    assert_eq!(tags::event_user(&ip_only).unwrap().tag_value(), None);
    let valid = make_event(json!({"user": {"ip_address": "2001:db8::1"}}));
    assert_eq!(tags::event_user(&valid).unwrap().tag_value().as_deref(), Some("ip:2001:db8::1"));
}

#[test]
fn test_event_user_unicode_identifier() {
    let mut event = make_event(json!({"user": {"username": "foô"}}));
    apply_save_tags(&mut event, None, None);
    assert_eq!(tags::event_user(&event).unwrap().username.as_deref(), Some("foô"));
    assert_eq!(get_tag(&event, "sentry:user"), Some("username:foô"));
}

#[test]
fn user_tag_values_from_relay_fixtures() {
    let tag_of = |name: &str| tags::event_user(&relay(name)).and_then(|u| u.tag_value());
    assert_eq!(tag_of("user_full").as_deref(), Some("id:1"));
    assert_eq!(tag_of("user_email_only").as_deref(), Some("email:jane@example.com"));
    assert_eq!(tag_of("user_ip_only").as_deref(), Some("ip:10.0.0.1"));
    assert_eq!(tag_of("user_username_only").as_deref(), Some("username:bob"));
    assert_eq!(tag_of("user_empty_id_and_auto_ip").as_deref(), Some("username:5"));
}

#[test]
fn test_environment() {
    let mut event = make_event(json!({"environment": "beta"}));
    apply_save_tags(&mut event, None, None);
    assert_eq!(get_tag(&event, "environment"), Some("beta"));
}

/// `test_invalid_environment`: Relay drops `bad/name`, so no tag is written.
#[test]
fn test_invalid_environment() {
    let mut event = relay("environment_slash");
    assert!(event.get("environment").is_none_or(Value::is_null));
    apply_save_tags(&mut event, None, None);
    assert_eq!(get_tag(&event, "environment"), None);
}

#[test]
fn test_legacy_attributes_moved() {
    let mut event = relay("server_name_and_site");
    event["release"] = json!("my-release");
    event["environment"] = json!("my-environment");
    apply_save_tags(&mut event, Some("my-release"), None);
    assert_eq!(event["release"], "my-release");
    assert_eq!(event["environment"], "my-environment");
    assert!(event.get("site").is_none() && event.get("server_name").is_none());
    assert_eq!(get_tag(&event, "site"), Some("eu"));
    assert_eq!(get_tag(&event, "server_name"), Some("web-1"));
    assert_eq!(get_tag(&event, "sentry:release"), Some("my-release"));
}

/// `test_release_project_slug`: the tag carries the stored Release version.
#[test]
fn test_release_project_slug() {
    let mut event =
        make_event(json!({"release": "1.0", "dist": "abc", "tags": [["release", "1.0"], ["dist", "x"]]}));
    apply_save_tags(&mut event, Some("foo-1.0"), Some("abc"));
    assert_eq!(get_tag(&event, "sentry:release"), Some("foo-1.0"));
    assert_eq!(get_tag(&event, "sentry:dist"), Some("abc"));
    assert_eq!((get_tag(&event, "release"), get_tag(&event, "dist")), (None, None));
}

#[test]
fn save_tags_order_and_values() {
    let mut event = relay("sdk_python_message");
    apply_save_tags(&mut event, Some("myapp@1.2.3"), None);
    assert_eq!(
        event["tags"],
        json!([
            ["feature", "checkout"],
            ["tier", "gold"],
            ["server_name", "capture-host"],
            ["level", "warning"],
            ["environment", "production"],
            ["sentry:release", "myapp@1.2.3"],
            ["sentry:user", "id:42"],
            // The runtime context's tags (`RuntimeContextType`: "{name} {version}", name).
            ["runtime", "CPython 3.11.7"],
            ["runtime.name", "CPython"],
        ])
    );
    // The empty logger is not a tag; applying twice changes nothing.
    let once = event.clone();
    apply_save_tags(&mut event, Some("myapp@1.2.3"), None);
    assert_eq!(event, once);
}

#[test]
fn set_tag_replaces_and_trims_to_200_characters() {
    let mut event = make_event(json!({"tags": [["a", "1"], null, ["b", "2"], ["a", "3"]]}));
    tags::set_tag(&mut event, "a", &"x".repeat(250));
    let tags_list = event["tags"].as_array().unwrap();
    assert_eq!(tags_list.len(), 3);
    assert_eq!(tags_list[1], json!(["b", "2"]));
    let value = get_tag(&event, "a").unwrap();
    assert_eq!(value.chars().count(), 200);
    assert!(value.ends_with("..."));
    tags::pop_tag(&mut event, "a");
    assert_eq!(get_tag(&event, "a"), None);
    assert_eq!(event["tags"].as_array().unwrap().len(), 2, "null entries are kept by pop_tag");
    let mut no_tags = json!({});
    tags::set_tag(&mut no_tags, "k", "v");
    assert_eq!(no_tags["tags"], json!([["k", "v"]]));
}

/// `test_invalid_tags`: Relay turns `[42]` into a `null` entry; the save step keeps it as it is and
/// still adds its own tags.
#[test]
fn test_invalid_tags() {
    let mut event = make_event(json!({"tags": [null, ["a", "b"]]}));
    apply_save_tags(&mut event, None, None);
    assert_eq!(event["tags"], json!([null, ["a", "b"], ["level", "error"]]));
    assert_eq!(get_tag(&event, "a"), Some("b"));
}

#[test]
fn javascript_filename_query_strings_are_stripped() {
    let event = |filename: &str| {
        make_event(
            json!({"platform": "javascript", "exception": {"values": [{"type": "E", "stacktrace": {"frames": [
                {"filename": filename, "abs_path": "/static/app.js", "function": "render", "in_app": true}
            ]}}]}}),
        )
    };
    let mut a = event("app.js?v=123");
    let hashes = calculate_hashes(&mut a);
    assert_eq!(a["exception"]["values"][0]["stacktrace"]["frames"][0]["filename"], "app.js");
    assert_eq!(hashes.hashes, hashes_of(event("app.js?v=456")));
    assert_eq!(hashes.hashes, [hash_from_values(["app.js", "render", "E"])]);
}

// ---------------------------------------------------------------------------------------------
// Transactions
// ---------------------------------------------------------------------------------------------

#[test]
fn test_transaction_event_span_grouping() {
    let span = |id: char, description: &str| {
        json!({"trace_id": "a0fa8803753e40fd8124b21eeb2986b5", "parent_span_id": "bf5be759039ede9a",
            "span_id": id.to_string().repeat(16), "start_timestamp": 0.0, "timestamp": 1.0,
            "same_process_as_parent": true, "op": "default", "description": description})
    };
    let mut event = make_event(json!({
        "type": "transaction", "transaction": "wait",
        "contexts": {"trace": {"parent_span_id": "bce14471e0e9654d", "op": "foobar",
            "trace_id": "a0fa8803753e40fd8124b21eeb2986b5", "span_id": "bf5be759039ede9a"}},
        "spans": [span('a', "span a"), span('b', "span a"), span('c', "span b")],
        "start_timestamp": 1560520900.0, "timestamp": 1560520900.0,
    }));
    assert!(calculate_span_grouping(&mut event));
    assert_eq!(event["span_grouping_config"]["id"], "default:2022-10-27");
    for span in event["spans"].as_array().unwrap() {
        let expected = &hash_from_values([span["description"].as_str().unwrap()])[..16];
        assert_eq!(span["hash"], expected);
    }
}

#[test]
fn real_sdk_transaction_span_hashes() {
    let mut event = relay("sdk_python_transaction");
    assert!(calculate_span_grouping(&mut event));
    let hashes: Vec<&str> =
        event["spans"].as_array().unwrap().iter().map(|s| s["hash"].as_str().unwrap()).collect();
    assert_eq!(
        hashes,
        [
            &hash_from_values(["SELECT * FROM orders"])[..16],
            &hash_from_values(["GET", "https", "example.invalid", "/"])[..16],
            &hash_from_values(["encode body"])[..16],
        ]
    );
    assert_eq!(event["contexts"]["trace"]["hash"], &hash_from_values(["process-order"])[..16]);
}

// ---------------------------------------------------------------------------------------------
// Eventstream (tests/sentry/eventstream/test_eventstream.py)
// ---------------------------------------------------------------------------------------------

const PROJECT_ID: u64 = 42;
const ORG_ID: u64 = 1;

/// The error path of `save_error_events` up to the eventstream, for a new group.
fn save_error(mut event: Value, group_id: u64) -> (Value, Vec<GroupState>) {
    let release = event["release"].as_str().map(str::to_owned);
    apply_save_tags(&mut event, release.as_deref(), None);
    calculate_hashes(&mut event);
    materialize_metadata(&event).write_into(&mut event);
    let groups =
        vec![GroupState { id: group_id, is_new: true, is_regression: false, is_new_group_environment: true }];
    (event, groups)
}

fn params<'a>(event: &'a Value, groups: &'a [GroupState]) -> InsertParams<'a> {
    InsertParams {
        event,
        organization_id: ORG_ID,
        project_id: PROJECT_ID,
        groups,
        primary_hash: eventstream::primary_hash(event),
        received_timestamp: event["received"].as_f64().unwrap(),
        skip_consume: false,
        retention_days: 90,
        occurrence: None,
        search_message: None,
    }
}

fn decode(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

/// Sentry's eventstream `test`: `[2, "insert", payload1, payload2]`, key `str(project_id)`.
#[test]
fn test() {
    let (event, groups) = save_error(message_event("foo"), 7);
    let p = params(&event, &groups);
    let record = decode(&eventstream::insert_message(&p));
    let [version, kind, payload1, payload2] = record.as_array().unwrap().as_slice() else { panic!("shape") };
    assert_eq!((version, kind), (&json!(2), &json!("insert")));
    assert_eq!(payload1["primary_hash"], "acbd18db4cc2f85cedef654fccc4a4d8");
    assert_eq!(payload1["group_id"], 7);
    assert_eq!(payload1["group_ids"], json!([7]));
    assert_eq!(payload1["project_id"], PROJECT_ID);
    assert_eq!(payload1["organization_id"], ORG_ID);
    assert_eq!(payload1["message"], "foo");
    assert_eq!(payload1["datetime"], "2024-06-01T12:00:00.000000Z");
    assert_eq!(payload1["occurrence_id"], Value::Null);
    assert_eq!(payload1["occurrence_data"], json!({}));
    assert_eq!(payload1["data"]["hashes"], json!(["acbd18db4cc2f85cedef654fccc4a4d8"]));
    assert_eq!(
        payload2,
        &json!({"is_new": true, "is_regression": false, "is_new_group_environment": true,
            "queue": "post_process_errors", "skip_consume": false,
            "group_states": [{"id": 7, "is_new": true, "is_regression": false, "is_new_group_environment": true}]})
    );
    assert_eq!(eventstream::partition_key(&"a".repeat(32)), "a".repeat(32));
}

#[test]
fn test_error_queue() {
    let (event, groups) = save_error(message_event("foo"), 7);
    let headers = eventstream::record_headers(&params(&event, &groups));
    let get = |k: &str| headers.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    assert_eq!(get("queue"), Some("post_process_errors"));
    assert_eq!(get("occurrence_id"), None);
    assert_eq!(get("Received-Timestamp"), Some("1717243200.5"));
    assert_eq!(get("is_new"), Some("1"));
    assert_eq!(get("is_regression"), Some("0"));
    assert_eq!(get("group_id"), Some("7"));
    assert_eq!(get("primary_hash"), Some("acbd18db4cc2f85cedef654fccc4a4d8"));
    assert_eq!(
        get("group_states"),
        Some(r#"[{"id":7,"is_new":true,"is_regression":false,"is_new_group_environment":true}]"#)
    );
    let keys: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "Received-Timestamp",
            "event_id",
            "project_id",
            "group_id",
            "primary_hash",
            "is_new",
            "is_new_group_environment",
            "is_regression",
            "skip_consume",
            "group_states",
            "queue",
            "operation",
            "version",
        ]
    );
    assert_eq!(get("version"), Some("2"));
}

#[test]
fn test_transaction_queue() {
    let mut event = relay("sdk_python_transaction");
    apply_save_tags(&mut event, Some("myapp@1.2.3"), None);
    calculate_span_grouping(&mut event);
    materialize_metadata(&event).write_into(&mut event);
    let p = params(&event, &[]);
    assert_eq!(p.primary_hash, None);
    let record = decode(&eventstream::insert_message(&p));
    assert_eq!(record[3]["queue"], "post_process_transactions");
    assert_eq!(record[3]["group_states"], Value::Null);
    assert_eq!(record[3]["is_new"], false);
    assert_eq!(record[2]["group_id"], Value::Null);
    assert_eq!(record[2]["group_ids"], json!([]));
    assert_eq!(record[2]["primary_hash"], Value::Null);
    let event_id = event["event_id"].as_str().unwrap();
    assert_eq!(eventstream::partition_key(event_id), event_id);
    let headers = eventstream::record_headers(&p);
    assert!(headers.contains(&("queue".to_owned(), "post_process_transactions".to_owned())));
    assert!(!headers.iter().any(|(k, _)| k == "group_id" || k == "primary_hash" || k == "group_states"));
}

#[test]
fn test_issue_platform_queue() {
    let (event, groups) = save_error(message_event("foo"), 9);
    let occurrence = json!({"id": "occ1", "fingerprint": ["abc"], "issue_title": "N+1", "evidence_data": {"x": 1}, "evidence_display": []});
    let mut p = params(&event, &groups);
    p.occurrence = Some(&occurrence);
    p.primary_hash = Some("abc");
    let record = decode(&eventstream::insert_message(&p));
    assert_eq!(record[2]["occurrence_id"], "occ1");
    assert_eq!(
        record[2]["occurrence_data"],
        json!({"id": "occ1", "fingerprint": ["abc"], "issue_title": "N+1"})
    );
    assert_eq!(record[3]["queue"], "post_process_issue_platform");
    assert_eq!(record[2]["message"], "foo N+1");
    let headers = eventstream::record_headers(&p);
    assert!(headers.contains(&("occurrence_id".to_owned(), "occ1".to_owned())));
}

#[test]
fn test_insert_generic_event_contexts() {
    let geo = json!({"city": "San Francisco", "country_code": "US", "region": "California"});
    let event = make_event(json!({"type": "generic", "user": {"geo": geo}}));
    let occurrence = json!({"id": "occ"});
    let mut p = params(&event, &[]);
    p.occurrence = Some(&occurrence);
    let record = decode(&eventstream::insert_message(&p));
    assert_eq!(record[2]["data"]["contexts"]["geo"], geo);
    assert_eq!(event["contexts"].get("geo"), None, "the saved event itself is not changed");
}

#[test]
fn stream_data_drops_debug_meta_and_meta() {
    let mut event = relay("fingerprint_nested");
    event["debug_meta"] = json!({"images": []});
    assert!(event.get("_meta").is_some());
    let (event, groups) = save_error(event, 1);
    let record = decode(&eventstream::insert_message(&params(&event, &groups)));
    assert!(record[2]["data"].get("_meta").is_none());
    assert!(record[2]["data"].get("debug_meta").is_none());
    assert_eq!(record[2]["data"]["errors"], event["errors"]);
}

#[test]
fn unexpected_tag_keys_are_reported() {
    let event = make_event(json!({"tags": [["release", "1"], ["user", "x"], ["ok", "y"]]}));
    assert_eq!(eventstream::unexpected_tags(&event), ["release", "user"]);
}

fn assert_record_snapshot(name: &str, record: &Value) {
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_snapshot_path("snapshots");
    settings.bind(|| {
        insta::assert_json_snapshot!(name, record, {
            "[2].event_id" => "[event_id]",
            "[2].datetime" => "[datetime]",
            "[2].data.event_id" => "[event_id]",
            "[2].data.received" => "[received]",
            "[2].data.timestamp" => "[timestamp]",
            "[2].data.start_timestamp" => "[timestamp]",
            "[2].data.spans[].timestamp" => "[timestamp]",
            "[2].data.spans[].start_timestamp" => "[timestamp]",
            "[2].data.breadcrumbs.values[].timestamp" => "[timestamp]",
        });
    });
}

#[test]
fn snapshot_python_exception_record() {
    let (event, groups) = save_error(relay("sdk_python_exception"), 101);
    let record = decode(&eventstream::insert_message(&params(&event, &groups)));
    assert_eq!(record[2]["message"], "outer failure ValueError capture.py __main__ in outer");
    assert_record_snapshot("record_python_exception", &record);
}

#[test]
fn snapshot_python_message_record() {
    let (event, groups) = save_error(relay("sdk_python_message"), 102);
    let record = decode(&eventstream::insert_message(&params(&event, &groups)));
    assert_eq!(record[2]["message"], "Something odd happened");
    assert_record_snapshot("record_python_message", &record);
}

#[test]
fn snapshot_node_exception_record() {
    let (event, groups) = save_error(relay("sdk_node_exception_2"), 103);
    let record = decode(&eventstream::insert_message(&params(&event, &groups)));
    assert_record_snapshot("record_node_exception", &record);
}

#[test]
fn snapshot_python_transaction_record() {
    let mut event = relay("sdk_python_transaction");
    apply_save_tags(&mut event, Some("myapp@1.2.3"), None);
    calculate_span_grouping(&mut event);
    materialize_metadata(&event).write_into(&mut event);
    let record = decode(&eventstream::insert_message(&params(&event, &[])));
    assert_record_snapshot("record_python_transaction", &record);
}

/// The save path writes the record from the event given up to it (each part freed once written):
/// byte for byte the record written from the borrowed event, for errors, transactions, issue-platform
/// events (their `contexts.geo`, occurrence and evidence filtering), pruned keys and odd values.
#[test]
fn record_written_from_a_taken_event_is_the_same() {
    let (error, groups) = save_error(
        make_event(json!({
            "logentry": {"formatted": "héllo 🦀"}, "debug_meta": {"images": []}, "_meta": {"x": 1},
            "extra": {"nested": [[1, 2.5, null, true], {"a": {"b": []}}], "empty": {}},
        })),
        5,
    );
    let mut transaction = relay("sdk_python_transaction");
    calculate_span_grouping(&mut transaction);
    materialize_metadata(&transaction).write_into(&mut transaction);
    let generic = make_event(json!({"type": "generic", "user": {"geo": {"city": "Vienna"}}}));
    let occurrence = json!({"id": "occ", "evidence_data": {"x": 1}, "evidence_display": [], "type": 1006});
    for (event, groups, occurrence) in [
        (&error, &groups[..], None),
        (&transaction, &[][..], None),
        (&generic, &groups[..], Some(&occurrence)),
        (&json!({"received": 1.5}), &[][..], None),
    ] {
        let mut p = params(event, groups);
        p.occurrence = occurrence;
        let borrowed = eventstream::insert_message(&p);
        let taken = eventstream::insert_message_taking(eventstream::RecordHead::of(&p), event.clone());
        assert_eq!(String::from_utf8(taken).unwrap(), String::from_utf8(borrowed.clone()).unwrap());
        // The save path hands over the search message it computed for the group: the same record.
        let message = search_message(event);
        p.search_message = Some(&message);
        assert_eq!(eventstream::insert_message(&p), borrowed);
    }
}

/// The record bytes are compact, ASCII-only JSON (simplejson's `ensure_ascii`).
#[test]
fn record_bytes_are_compact_ascii() {
    let (event, groups) = save_error(make_event(json!({"logentry": {"formatted": "héllo wörld"}})), 5);
    let bytes = eventstream::insert_message(&params(&event, &groups));
    assert!(bytes.is_ascii());
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.starts_with(r#"[2,"insert",{"group_id":5,"group_ids":[5],"event_id":"#), "{text}");
    assert!(text.contains(r#""message":"h\u00e9llo w\u00f6rld""#));
    assert!(!text.contains(": ") && !text.contains(", "));
}

// ---------------------------------------------------------------------------------------------
// Interface and plugin tags (`_derive_plugin_tags_many`, `_derive_interface_tags_many`)
// ---------------------------------------------------------------------------------------------

fn sorted_interface_tags(event: Value) -> Vec<(String, String)> {
    let mut tags: Vec<(String, String)> =
        tags::interface_tags(&event).into_iter().filter_map(|(k, v)| Some((k, v?))).collect();
    tags.sort();
    tags
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// Sentry's `tests/sentry/interfaces/test_contexts.py` (`sorted(ctx.iter_tags())`), and the mappings of
/// `app`, `gpu` and `monitor` from `contexts.py`.
#[test]
fn context_tags_as_sentrys_context_types() {
    let ctx = |c: Value| sorted_interface_tags(json!({ "contexts": c }));
    assert_eq!(
        ctx(json!({"os": {"type": "os", "name": "Windows", "version": "95", "rooted": true}})),
        pairs(&[("os", "Windows 95"), ("os.name", "Windows"), ("os.rooted", "yes")])
    );
    assert_eq!(
        ctx(json!({"runtime": {"type": "runtime", "name": "Java", "version": "1.2.3", "build": "BLAH"}})),
        pairs(&[("runtime", "Java 1.2.3"), ("runtime.name", "Java")])
    );
    let device = json!({"name": "My iPad", "model": "iPad", "model_id": "1234AB", "version": "1.2.3", "arch": "arm64"});
    let mut typed = device.clone();
    typed["type"] = json!("device");
    assert_eq!(ctx(json!({ "device": typed.clone() })), pairs(&[("device", "iPad")]));
    typed["title"] = json!("My Title");
    assert_eq!(ctx(json!({ "my_device": typed })), pairs(&[("my_device", "iPad")]));
    assert_eq!(
        ctx(
            json!({"whatever": {"type": "default", "foo": "bar", "blub": "blah", "biz": [1, 2, 3], "baz": {"foo": "bar"}}})
        ),
        vec![]
    );
    assert_eq!(
        ctx(json!({"app": {"type": "app", "app_id": "1234", "device_app_hash": "5678"}})),
        pairs(&[("app.device", "5678")])
    );
    assert_eq!(
        ctx(
            json!({"gpu": {"type": "gpu", "name": "AMD Radeon Pro 560", "vendor_name": "Apple", "memory_size": 4096}})
        ),
        pairs(&[("gpu.name", "AMD Radeon Pro 560"), ("gpu.vendor", "Apple")])
    );
    assert_eq!(
        ctx(json!({"monitor": {"type": "monitor", "id": "abc123", "slug": "my-monitor"}})),
        pairs(&[("monitor.id", "abc123"), ("monitor.slug", "my-monitor")])
    );
    // `format_index_expr`: a missing or null field skips the tag (KeyError), an empty one does not
    // (the result is stripped), an empty result is skipped; `client_os` is an alias of type `os`.
    assert_eq!(
        ctx(
            json!({"client_os": {"type": "os", "name": "Windows", "version": null}, "browser": {"type": "browser", "name": "Chrome", "version": ""}, "device": {"type": "device", "model": " "}})
        ),
        pairs(&[("browser", "Chrome"), ("browser.name", "Chrome"), ("client_os.name", "Windows")])
    );
    assert_eq!(ctx(json!({"trace": {"type": "trace", "trace_id": "a", "span_id": "b"}})), vec![]);
}

/// `Exception.iter_tags`: the last exception's mechanism (`Mechanism.iter_tags`: type, then handled as
/// yes/no when set).
#[test]
fn mechanism_tags_come_from_the_last_exception() {
    let event = json!({"exception": {"values": [
        {"type": "KeyError", "mechanism": {"type": "first", "handled": false}},
        {"type": "ValueError", "mechanism": {"type": "django", "handled": false}},
    ]}});
    assert_eq!(sorted_interface_tags(event), pairs(&[("handled", "no"), ("mechanism", "django")]));
    let no_handled = json!({"exception": {"values": [{"type": "E", "mechanism": {"type": "generic"}}]}});
    assert_eq!(sorted_interface_tags(no_handled), pairs(&[("mechanism", "generic")]));
    let no_mechanism =
        json!({"exception": {"values": [{"type": "E", "mechanism": {"type": "x"}}, {"type": "F"}]}});
    assert_eq!(sorted_interface_tags(no_mechanism), vec![]);
}

/// The order of `save` (walked through from `event_manager.py`): `_pull_out_data`'s attribute tags,
/// the release, the user, the `url` plugin, then the exception's tags before the contexts' (score 2000
/// before 800), contexts by alias; a client tag with a derived key moves to the end.
#[test]
fn save_tags_in_sentrys_order() {
    let mut event = json!({
        "tags": [["custom", "x"], ["server_name", "web-1"], ["runtime", "client-sent"]],
        "level": "error", "logger": "", "environment": "prod", "transaction": "/api/x", "release": "app@1",
        "user": {"id": "42"},
        "request": {"url": "https://example.com/api/x"},
        "contexts": {
            "runtime": {"type": "runtime", "name": "CPython", "version": "3.11.4"},
            "trace": {"type": "trace", "trace_id": "a", "span_id": "b"},
            "client_os": {"type": "os", "name": "Windows", "version": "10"},
            "browser": {"type": "browser", "name": "Chrome", "version": "120.0.0"},
        },
        "exception": {"values": [{"type": "ValueError", "mechanism": {"type": "django", "handled": false}}]},
    });
    apply_save_tags(&mut event, Some("app@1"), None);
    let keys: Vec<&str> = event["tags"].as_array().unwrap().iter().map(|p| p[0].as_str().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "custom",
            "server_name",
            "level",
            "environment",
            "transaction",
            "sentry:release",
            "sentry:user",
            "url",
            "mechanism",
            "handled",
            "browser",
            "browser.name",
            "client_os",
            "client_os.name",
            "runtime",
            "runtime.name",
        ]
    );
    assert_eq!(get_tag(&event, "runtime"), Some("CPython 3.11.4"));
    assert_eq!(get_tag(&event, "url"), Some("https://example.com/api/x"));
    // The url plugin does not override a url tag the client sent, and trims to 200 characters.
    let mut sent = json!({"tags": [["url", "mine"]], "request": {"url": "https://example.com/"}});
    apply_save_tags(&mut sent, None, None);
    assert_eq!(get_tag(&sent, "url"), Some("mine"));
    let long = format!("https://example.com/{}", "a".repeat(300));
    let mut long_event = json!({"request": {"url": long}});
    apply_save_tags(&mut long_event, None, None);
    let tag = get_tag(&long_event, "url").unwrap();
    assert_eq!((tag.chars().count(), tag.ends_with("...")), (200, true));
}

/// `template:v1`: the template's file basename and context line (the corpus' `template-compute-hashes`
/// gives `826f66ef602835f68030c04c634df320` = md5("foo.html" + "hello world")).
#[test]
fn template_strategy() {
    let mut event = json!({"template": {"lineno": 1, "context_line": "hello world", "filename": "templates/foo.html"}, "type": "default"});
    let hashes = calculate_hashes(&mut event);
    assert_eq!(hashes.primary(), Some("826f66ef602835f68030c04c634df320"));
    assert_eq!(hashes.primary().map(str::to_owned), Some(hash_from_values(["foo.html", "hello world"])));
    // A message does not win over the template (score 1100 > 0).
    let mut with_message =
        json!({"template": {"context_line": "x", "filename": "a.html"}, "logentry": {"formatted": "m"}});
    assert_eq!(
        calculate_hashes(&mut with_message).primary().map(str::to_owned),
        Some(hash_from_values(["a.html", "x"]))
    );
}
