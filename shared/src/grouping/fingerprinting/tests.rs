//! Fingerprinting rules: parsing, matching and application.

use serde_json::json;

use super::*;

#[test]
fn rules_parse_with_attributes_variables_and_comments() {
    let rules = FingerprintingRules::parse(
        "# a comment\n\
         error.type:DatabaseUnavailable -> system-down\n\
         \n\
         logger:\"my.logger\" level:error -> {{ logger }}, {{level}} title=\"Log error: {{ logger }}\"\n\
         !app:yes stack.function:\"*flush*\" -> \"flush errors\", {{ default }}\n",
    )
    .unwrap();
    assert_eq!(rules.len(), 3);
    assert_eq!(rules.rules[0].fingerprint, ["system-down"]);
    assert_eq!(rules.rules[1].fingerprint, ["{{ logger }}", "{{level}}"]);
    assert_eq!(rules.rules[1].title.as_deref(), Some("Log error: {{ logger }}"));
    assert_eq!(rules.rules[2].fingerprint, ["flush errors", "{{ default }}"]);
    assert_eq!(rules.rules[0].text(), "type:\"DatabaseUnavailable\" -> \"system-down\"");
}

#[test]
fn invalid_rules_name_their_line() {
    for bad in [
        "error.type:Foo",
        "error.type:Foo ->",
        "nosuch:Foo -> x",
        "-> x",
        "type:Foo -> x color=\"red\"",
        "type:\"Foo -> x",
        "type:Foo -> {{ }}",
    ] {
        assert!(FingerprintingRules::parse(bad).is_err(), "{bad}");
    }
    let err = FingerprintingRules::parse("type:A -> a\n\ntype:B => b").unwrap_err();
    assert_eq!(err.line, 3);
}

#[test]
fn the_first_matching_rule_sets_fingerprint_title_and_info() {
    let rules = FingerprintingRules::parse(
        "type:Nope -> never\n\
         type:DatabaseUnavailable value:\"*timeout*\" -> db-down, {{ transaction }} title=\"DB down in {{ transaction }}\"\n\
         type:DatabaseUnavailable -> db-other",
    )
    .unwrap();
    let mut event = json!({
        "transaction": "/checkout",
        "fingerprint": ["client", "{{ default }}"],
        "exception": {"values": [{"type": "DatabaseUnavailable", "value": "Connect TIMEOUT after 5s"}]},
    });
    apply_server_fingerprinting(&mut event, &rules);
    assert_eq!(event["fingerprint"], json!(["db-down", "{{ transaction }}"]));
    assert_eq!(event["title"], "DB down in /checkout");
    assert_eq!(event["_fingerprint_info"]["client_fingerprint"], json!(["client", "{{ default }}"]));
    assert_eq!(
        event["_fingerprint_info"]["matched_rule"]["fingerprint"],
        json!(["db-down", "{{ transaction }}"])
    );

    // No rule matches: the fingerprint stays, a default one leaves no info.
    let mut event = json!({"fingerprint": ["{{ default }}"], "message": "hi"});
    apply_server_fingerprinting(&mut event, &rules);
    assert_eq!(event["fingerprint"], json!(["{{ default }}"]));
    assert!(event.get("_fingerprint_info").is_none());
}

#[test]
fn matchers_of_one_kind_must_hold_for_the_same_frame() {
    let rules = FingerprintingRules::parse("function:a module:m2 -> x").unwrap();
    let frames =
        |f: serde_json::Value| json!({"exception": {"values": [{"type": "E", "stacktrace": {"frames": f}}]}});
    assert!(
        rules
            .matching_rule(&frames(
                json!([{"function": "a", "module": "m1"}, {"function": "b", "module": "m2"}])
            ))
            .is_none()
    );
    assert!(
        rules
            .matching_rule(&frames(
                json!([{"function": "b", "module": "m1"}, {"function": "a", "module": "m2"}])
            ))
            .is_some()
    );
    // Different kinds may be satisfied by different parts of the event.
    let rules = FingerprintingRules::parse("function:a type:E tags.server:web-* level:ERROR -> x").unwrap();
    let mut event = frames(json!([{"function": "a"}]));
    event["tags"] = json!([["server", "web-1"]]);
    event["level"] = json!("error");
    assert!(rules.matching_rule(&event).is_some(), "level is case-insensitive, tags glob");
}
