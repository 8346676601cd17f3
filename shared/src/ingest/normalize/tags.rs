//! `tags`: normalized to a list of `[key, value]` pairs (Relay's `Tags` + `normalize_event_tags`).
//!
//! * an object becomes pairs sorted by key (Relay's object type is ordered); a list must hold
//!   2-element arrays (other entries become `null` with an error); anything else is an error;
//! * keys: spaces become `-`; values are whitespace-trimmed; an empty key/value or one containing
//!   `\n` becomes `null` with an error; both are trimmed to 200 characters (`...`);
//! * the legacy `environment` tag fills a missing `environment`; reserved tags (`release`,
//!   `dist`, `user`, `filename`, `function`) and repeated keys are dropped;
//! * `server_name` and `site` move into tags (replacing a tag of that name in place).

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::{Errors, lenient_string, set, trim_chars};
use crate::tree::Fields;

const RESERVED: &[&str] = &["release", "dist", "user", "filename", "function"];
const MAX_CHARS: usize = 200;

/// A tag entry: `None` for an entry Relay nulls; keys/values may be nulled individually.
type Pair = Option<(Option<String>, Option<String>)>;

pub(super) fn normalize(event: &mut Map<String, Value>, errors: &mut Errors) {
    // Taken where it stands; the entry gets the pairs back at the end, or goes.
    let tags = event.field_mut("tags").map(Value::take);
    let had_tags = tags.is_some();
    let mut pairs = match tags {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(map)) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            entries
                .into_iter()
                .enumerate()
                .map(|(i, (k, v))| Some((Some(k), value_part(v, i, 1, errors))))
                .collect()
        }
        Some(Value::Array(list)) => list
            .into_iter()
            .enumerate()
            .map(|(i, entry)| match entry {
                Value::Array(kv) if kv.len() == 2 => {
                    let mut kv = kv.into_iter();
                    let k = kv.next().unwrap_or(Value::Null);
                    let v = kv.next().unwrap_or(Value::Null);
                    Some((value_part(k, i, 0, errors), value_part(v, i, 1, errors)))
                }
                Value::Null => None,
                other => {
                    errors.invalid(&format!("tags.{i}"), Some(other), Some("expected a tuple"));
                    None
                }
            })
            .collect(),
        Some(other) => {
            errors.invalid("tags", Some(other), Some("expected an array"));
            Vec::new()
        }
    };

    for (i, pair) in pairs.iter_mut().enumerate() {
        if let Some((key, value)) = pair {
            validate_key(key, i, errors);
            validate_value(value, i, errors);
        }
    }

    // Legacy SDKs send the environment as a tag.
    if let Some(pos) = pairs.iter().position(|p| key_is(p, "environment")) {
        let tag = pairs.remove(pos).and_then(|(_, v)| v);
        let has_env = event.field("environment").is_some_and(|e| !e.is_null());
        if let (false, Some(tag)) = (has_env, tag) {
            set(event, "environment", Value::String(tag));
        }
    }

    let mut seen = HashSet::with_capacity(pairs.len());
    pairs.retain(|pair| match pair {
        Some((Some(key), _)) => !RESERVED.contains(&key.as_str()) && seen.insert(key.clone()),
        _ => true,
    });

    for field in ["server_name", "site"] {
        if let Some(value) = event.remove(field) {
            let Ok(Some(mut value)) = lenient_string(value) else {
                continue;
            };
            trim_chars(&mut value, MAX_CHARS, 0);
            match pairs.iter_mut().find(|p| key_is(p, field)) {
                Some(Some((_, v))) => *v = Some(value),
                _ => pairs.push(Some((Some(field.to_owned()), Some(value)))),
            }
        }
    }

    if !pairs.is_empty() {
        let list = pairs
            .into_iter()
            .map(|pair| match pair {
                None => Value::Null,
                Some((k, v)) => Value::Array(vec![
                    k.map_or(Value::Null, Value::String),
                    v.map_or(Value::Null, Value::String),
                ]),
            })
            .collect();
        set(event, "tags", Value::Array(list));
    } else if had_tags {
        event.remove("tags");
    }
}

fn key_is(pair: &Pair, name: &str) -> bool {
    matches!(pair, Some((Some(key), _)) if key == name)
}

fn value_part(value: Value, i: usize, j: usize, errors: &mut Errors) -> Option<String> {
    match lenient_string(value) {
        Ok(s) => s,
        Err(bad) => {
            errors.invalid(&format!("tags.{i}.{j}"), Some(bad), Some("expected a primitive value"));
            None
        }
    }
}

fn validate_key(key: &mut Option<String>, i: usize, errors: &mut Errors) {
    let Some(k) = key.take() else { return };
    if k.is_empty() {
        errors.invalid(&format!("tags.{i}.0"), None, Some("expected a non-empty value"));
    } else if k.contains('\n') {
        errors.invalid(&format!("tags.{i}.0"), Some(Value::String(k)), Some("invalid character '\\n'"));
    } else {
        let mut k = if k.contains(' ') { k.replace(' ', "-") } else { k };
        trim_chars(&mut k, MAX_CHARS, 0);
        *key = Some(k);
    }
}

fn validate_value(value: &mut Option<String>, i: usize, errors: &mut Errors) {
    let Some(v) = value.take() else { return };
    if v.contains('\n') {
        errors.invalid(&format!("tags.{i}.1"), Some(Value::String(v)), Some("invalid character '\\n'"));
        return;
    }
    let trimmed = v.trim();
    if trimmed.is_empty() {
        errors.invalid(&format!("tags.{i}.1"), None, Some("expected a non-empty value"));
        return;
    }
    let mut v = if trimmed.len() == v.len() { v } else { trimmed.to_owned() };
    trim_chars(&mut v, MAX_CHARS, 0);
    *value = Some(v);
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(event: Value) -> (Value, Vec<String>) {
        let Value::Object(mut map) = event else { panic!("object expected") };
        let mut errors = Errors::default();
        normalize(&mut map, &mut errors);
        let names = errors.0.iter().map(|e| e["name"].as_str().unwrap_or_default().to_owned()).collect();
        (Value::Object(map), names)
    }

    #[test]
    fn object_form_is_sorted_pairs() {
        let (ev, errors) = run(json!({"tags": {"b": "2", "foo bar": "x", "a": 1}}));
        assert_eq!(ev["tags"], json!([["a", "1"], ["b", "2"], ["foo-bar", "x"]]));
        assert!(errors.is_empty());
    }

    #[test]
    fn list_form_with_bad_entries() {
        let (ev, errors) = run(json!({"tags": [["a", "b"], ["c"], "d", [1, 2], ["e", null], ["f", true]]}));
        assert_eq!(ev["tags"], json!([["a", "b"], null, null, ["1", "2"], ["e", null], ["f", "True"]]));
        assert_eq!(errors, vec!["tags.1", "tags.2"]);
    }

    #[test]
    fn values_and_keys_are_checked() {
        let long = "v".repeat(250);
        let (ev, errors) =
            run(json!({"tags": [["a", "x\ny"], ["", "v"], ["b", "  "], ["c", " ok "], ["d", long]]}));
        let tags = ev["tags"].as_array().unwrap();
        assert_eq!(tags[0], json!(["a", null]));
        assert_eq!(tags[1], json!([null, "v"]));
        assert_eq!(tags[2], json!(["b", null]));
        assert_eq!(tags[3], json!(["c", "ok"]));
        assert_eq!(tags[4][1].as_str().unwrap().chars().count(), 200);
        assert!(tags[4][1].as_str().unwrap().ends_with("..."));
        assert_eq!(errors, vec!["tags.0.1", "tags.1.0", "tags.2.1"]);
    }

    #[test]
    fn reserved_duplicates_environment_server_name() {
        let (ev, _) = run(json!({
            "tags": [["release", "1"], ["a", "1"], ["a", "2"], ["environment", "staging"], ["site", "old"]],
            "server_name": "web-1",
            "site": "eu",
        }));
        assert_eq!(ev["tags"], json!([["a", "1"], ["site", "eu"], ["server_name", "web-1"]]));
        assert_eq!(ev["environment"], json!("staging"));
        assert!(ev.field("server_name").is_none());
        let (ev, _) = run(json!({"tags": {"environment": "staging"}, "environment": "prod"}));
        assert_eq!(ev["environment"], json!("prod"));
        assert!(ev.field("tags").is_none());
    }

    #[test]
    fn non_collections_are_errors() {
        let (ev, errors) = run(json!({"tags": "foo=bar"}));
        assert!(ev.field("tags").is_none());
        assert_eq!(errors, vec!["tags"]);
    }
}
