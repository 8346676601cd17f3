//! Interfaces: exceptions and stack traces, breadcrumbs, contexts (incl. the synthesized error
//! trace context) and event type inference.

use serde_json::{Map, Value};

use super::fields::parse_level;
use super::{Errors, set, update};
use crate::tree::Fields;

/// `breadcrumbs` as a bare list becomes `{"values": [...]}` (before timestamps are parsed).
pub(super) fn normalize_breadcrumbs_shape(event: &mut Map<String, Value>, errors: &mut Errors) {
    update(event, "breadcrumbs", |raw| match raw? {
        Value::Null => None,
        Value::Array(values) => Some(values_object(values)),
        Value::Object(obj) if matches!(obj.field("values"), Some(Value::Array(_))) => {
            Some(Value::Object(obj))
        }
        other => {
            errors.invalid("breadcrumbs", Some(other), Some("expected breadcrumbs"));
            None
        }
    });
}

fn values_object(values: Vec<Value>) -> Value {
    let mut map = Map::new();
    map.insert("values".into(), Value::Array(values));
    Value::Object(map)
}

/// Breadcrumb entries: objects only; `type` defaults to `default`, `level` to `info`.
pub(super) fn normalize_breadcrumbs(event: &mut Map<String, Value>, errors: &mut Errors) {
    let Some(Value::Array(values)) = event.field_mut("breadcrumbs").and_then(|b| b.field_mut("values"))
    else {
        return;
    };
    for (i, crumb) in values.iter_mut().enumerate() {
        match crumb {
            Value::Object(map) => {
                update(map, "type", |ty| match ty {
                    None | Some(Value::Null) => Some(Value::from("default")),
                    ty => ty,
                });
                update(map, "level", |raw| {
                    let level = match raw {
                        None | Some(Value::Null) => "info",
                        Some(raw) => parse_level(&raw).unwrap_or_else(|reason| {
                            errors.invalid(&format!("breadcrumbs.values.{i}.level"), Some(raw), reason);
                            "info"
                        }),
                    };
                    Some(Value::from(level))
                });
            }
            Value::Null => {}
            other => {
                let bad = std::mem::take(other);
                errors.invalid(&format!("breadcrumbs.values.{i}"), Some(bad), Some("expected breadcrumb"));
            }
        }
    }
}

/// Exceptions: list form → `{"values"}`; `Type: value` split when the type is missing; entries
/// with neither type nor value are nulled; a top-level `stacktrace` moves into a single
/// exception; frames get `abs_path` from `filename`.
pub(super) fn normalize_exceptions(event: &mut Map<String, Value>, errors: &mut Errors) {
    // Taken where it stands (the top-level stack trace may move into it); written back below.
    let raw = event.field_mut("exception").map(Value::take);
    let had_exception = raw.is_some();
    let mut exception = match raw {
        None | Some(Value::Null) => None,
        Some(Value::Array(values)) => Some(values_object(values)),
        Some(Value::Object(obj)) if obj.has_field("values") => Some(Value::Object(obj)),
        // A single exception object (no `values`): Relay's `Values` reads it as a list of one.
        Some(Value::Object(obj)) => Some(values_object(vec![Value::Object(obj)])),
        Some(other) => {
            errors.invalid("exception", Some(other), Some("expected exceptions"));
            None
        }
    };

    if let Some(Value::Array(values)) = exception.as_mut().and_then(|e| e.field_mut("values")) {
        for (i, exc) in values.iter_mut().enumerate() {
            match exc {
                Value::Object(map) => {
                    // Typed fields: an explicit `null` is the same as absent (Relay serializes neither).
                    map.retain(|_, v| !v.is_null());
                    if !normalize_exception(map) {
                        let bad = std::mem::take(exc);
                        let mut entry = Map::new();
                        entry.insert("type".into(), Value::from("missing_attribute"));
                        entry.insert("name".into(), Value::from(format!("exception.values.{i}")));
                        entry.insert("value".into(), bad);
                        entry.insert("attribute".into(), Value::from("type or value"));
                        errors.push_entry(entry);
                    }
                }
                Value::Null => {}
                other => {
                    let bad = std::mem::take(other);
                    errors.invalid(&format!("exception.values.{i}"), Some(bad), Some("expected exception"));
                }
            }
        }
        // Move a top-level stack trace into the only exception.
        if let [Value::Object(only)] = values.as_mut_slice()
            && only.field("stacktrace").is_none_or(Value::is_null)
            && let Some(stacktrace) = event.remove("stacktrace")
        {
            only.insert("stacktrace".into(), stacktrace);
        }
        for exc in values.iter_mut() {
            normalize_frames(exc.field_mut("stacktrace"));
        }
    }
    match exception {
        Some(exception) => set(event, "exception", exception),
        None if had_exception => {
            event.remove("exception");
        }
        None => {}
    }
    normalize_frames(event.field_mut("stacktrace"));
    if let Some(Value::Array(threads)) = event.field_mut("threads").and_then(|t| t.field_mut("values")) {
        for thread in threads {
            normalize_frames(thread.field_mut("stacktrace"));
        }
    }
}

/// Returns `false` when the exception has neither a type nor a value.
fn normalize_exception(map: &mut Map<String, Value>) -> bool {
    // `value` is a lenient string: other JSON is rendered as JSON text.
    match map.field("value") {
        Some(Value::String(_) | Value::Null) | None => {}
        Some(other) => {
            let text = other.to_string();
            map.insert("value".into(), Value::String(text));
        }
    }
    let has_type = map.field("type").and_then(Value::as_str).is_some_and(|t| !t.is_empty());
    if !has_type
        && let Some((ty, value)) = map.field("value").and_then(Value::as_str).and_then(split_type_value)
    {
        map.insert("type".into(), Value::String(ty));
        map.insert("value".into(), Value::String(value));
        return true;
    }
    let has_value = map.field("value").and_then(Value::as_str).is_some_and(|v| !v.is_empty());
    has_type || has_value
}

/// Relay's `^(\w+):(.*)$` on a value without type: `"ValueError: bad"` → (`ValueError`, `bad`).
fn split_type_value(value: &str) -> Option<(String, String)> {
    let (ty, rest) = value.split_once(':')?;
    let word = !ty.is_empty() && ty.chars().all(|c| c.is_alphanumeric() || c == '_');
    (word && !rest.contains('\n')).then(|| (ty.to_owned(), rest.trim().to_owned()))
}

/// Frames as Relay leaves them: `abs_path` from `filename`; `function: "?"` (JavaScript's unknown
/// function) removed; empty `pre_context`/`post_context` lists removed (`vars: {}` stays).
fn normalize_frames(stacktrace: Option<&mut Value>) {
    let Some(Value::Array(frames)) = stacktrace.and_then(|s| s.field_mut("frames")) else {
        return;
    };
    for frame in frames {
        let Value::Object(frame) = frame else { continue };
        // One pass over the frame's entries (no lookups).
        let (mut has_abs_path, mut filename, mut drop) = (false, None, false);
        for (key, value) in frame.iter() {
            match key.as_str() {
                "abs_path" => has_abs_path = !value.is_null(),
                "filename" if value.is_string() => filename = Some(value),
                "function" => drop |= value.as_str() == Some("?"),
                "pre_context" | "post_context" => drop |= value.as_array().is_some_and(Vec::is_empty),
                _ => {}
            }
        }
        let abs_path = filename.filter(|_| !has_abs_path).cloned();
        if drop {
            frame.retain(|key, value| match key.as_str() {
                "function" => value.as_str() != Some("?"),
                "pre_context" | "post_context" => !value.as_array().is_some_and(Vec::is_empty),
                _ => true,
            });
        }
        if let Some(abs_path) = abs_path {
            set(frame, "abs_path", abs_path);
        }
    }
}

/// Top-level containers Relay does not serialize when empty: `modules`, `extra`, `measurements` as
/// `{}`, and `breadcrumbs`, `exception`, `threads` without values.
pub(super) fn drop_empty_containers(event: &mut Map<String, Value>) {
    // One pass over the entries (no lookups).
    event.retain(|key, value| match key.as_str() {
        "modules" | "extra" | "measurements" => !value.as_object().is_some_and(Map::is_empty),
        "breadcrumbs" | "exception" | "threads" => {
            !value.field("values").and_then(Value::as_array).is_some_and(Vec::is_empty)
        }
        _ => true,
    });
}

/// The fields Relay derives in typed contexts: `runtime`, `os` and `browser` as `"{name} {version}"`
/// when both are strings and the field itself is absent.
fn derive_context_fields(ctx: &mut Map<String, Value>) {
    let field = match ctx.field("type").and_then(Value::as_str) {
        Some("runtime") => "runtime",
        Some("os") => "os",
        Some("browser") => "browser",
        _ => return,
    };
    if ctx.field(field).is_some_and(|v| !v.is_null()) {
        return;
    }
    if let (Some(Value::String(name)), Some(Value::String(version))) =
        (ctx.field("name"), ctx.field("version"))
    {
        let derived = format!("{name} {version}");
        ctx.insert(field.into(), Value::String(derived));
    }
}

/// Contexts: each context object gets `type` = its key; non-objects are errors. The trace
/// context of non-transactions is synthesized from the event id when absent (trace id = event
/// id, span id = its first 16 hex digits), else its ids are validated; `status` defaults to
/// `unknown`.
pub(super) fn normalize_contexts(
    event: &mut Map<String, Value>,
    event_id: &str,
    is_transaction: bool,
    errors: &mut Errors,
) {
    update(event, "contexts", |raw| {
        let contexts = match raw {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => map,
            Some(other) => {
                errors.invalid("contexts", Some(other), Some("expected an object"));
                Map::new()
            }
        };
        let contexts = normalize_context_entries(contexts, event_id, is_transaction, errors);
        (!contexts.is_empty()).then_some(Value::Object(contexts))
    });
}

fn normalize_context_entries(
    mut contexts: Map<String, Value>,
    event_id: &str,
    is_transaction: bool,
    errors: &mut Errors,
) -> Map<String, Value> {
    contexts.retain(|key, ctx| match ctx {
        Value::Object(map) => {
            update(map, "type", |ty| match ty {
                None | Some(Value::Null) => Some(Value::String(key.clone())),
                ty => ty,
            });
            derive_context_fields(map);
            true
        }
        Value::Null => false,
        other => {
            let bad = std::mem::take(other);
            errors.invalid(&format!("contexts.{key}"), Some(bad), Some("expected an object"));
            false
        }
    });
    if !is_transaction {
        match contexts.field_mut("trace") {
            Some(Value::Object(trace)) => {
                trace.retain(|_, v| !v.is_null());
                normalize_trace_ids(trace, errors);
                // Invalid or missing ids are filled from the event id, as for a new context.
                trace.entry("trace_id").or_insert_with(|| Value::from(event_id));
                trace.entry("span_id").or_insert_with(|| Value::from(&event_id[..16]));
                trace.entry("status").or_insert_with(|| Value::from("unknown"));
            }
            _ => {
                let mut trace = Map::new();
                trace.insert("trace_id".into(), Value::from(event_id));
                trace.insert("span_id".into(), Value::from(&event_id[..16]));
                trace.insert("status".into(), Value::from("unknown"));
                trace.insert("type".into(), Value::from("trace"));
                contexts.insert("trace".into(), Value::Object(trace));
            }
        }
    }
    contexts
}

/// Lowercases valid `trace_id` (32 hex) / `span_id` (16 hex); invalid ones are removed with an
/// error. Returns whether both are present and valid.
pub(super) fn normalize_trace_ids(trace: &mut Map<String, Value>, errors: &mut Errors) -> bool {
    let mut valid = true;
    for (key, len, reason) in
        [("trace_id", 32, "not a valid trace id"), ("span_id", 16, "not a valid span id")]
    {
        update(trace, key, |raw| match raw {
            None | Some(Value::Null) => {
                valid = false;
                None
            }
            Some(raw) => match raw.as_str().and_then(|s| normalize_hex_id(s, len)) {
                Some(id) => Some(Value::String(id)),
                None => {
                    errors.invalid(&format!("contexts.trace.{key}"), Some(raw), Some(reason));
                    valid = false;
                    None
                }
            },
        });
    }
    valid
}

/// A hex id of `len` digits (any case, dashes allowed for trace ids) in lowercase.
pub(super) fn normalize_hex_id(s: &str, len: usize) -> Option<String> {
    if len == 32 && s.len() == 36 {
        return uuid::Uuid::try_parse(s).ok().map(|u| u.simple().to_string());
    }
    (s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())).then(|| s.to_ascii_lowercase())
}

/// Relay's `infer_event_type` for non-transactions: `error` with exceptions, `csp` with a CSP
/// report, else `default`.
pub(super) fn infer_type(event: &Map<String, Value>) -> &'static str {
    let has_exceptions = event
        .field("exception")
        .and_then(|e| e.field("values"))
        .and_then(Value::as_array)
        .is_some_and(|v| v.iter().any(|e| !e.is_null()));
    if has_exceptions {
        "error"
    } else if event.field("csp").is_some_and(|c| !c.is_null()) {
        "csp"
    } else {
        "default"
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn type_value_split() {
        assert_eq!(
            split_type_value("ValueError: bad thing"),
            Some(("ValueError".into(), "bad thing".into()))
        );
        assert_eq!(split_type_value("no colon"), None);
        assert_eq!(split_type_value("two words: x"), None);
    }

    #[test]
    fn hex_ids() {
        assert_eq!(
            normalize_hex_id("4BF92F3577B34DA6A3CE929D0E0E4736", 32).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(
            normalize_hex_id("4bf92f35-77b3-4da6-a3ce-929d0e0e4736", 32).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(normalize_hex_id("zzz", 32), None);
        assert_eq!(normalize_hex_id("00F067AA0BA902B7", 16).as_deref(), Some("00f067aa0ba902b7"));
        assert_eq!(normalize_hex_id("00f067aa0ba902b", 16), None);
    }

    #[test]
    fn infers_types() {
        let obj = |v: Value| v.as_object().cloned().unwrap();
        assert_eq!(infer_type(&obj(json!({}))), "default");
        assert_eq!(infer_type(&obj(json!({"exception": {"values": []}}))), "default");
        assert_eq!(infer_type(&obj(json!({"exception": {"values": [{"type": "E"}]}}))), "error");
        assert_eq!(infer_type(&obj(json!({"csp": {}}))), "csp");
    }
}
