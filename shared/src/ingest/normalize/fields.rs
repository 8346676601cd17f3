//! Scalar event fields: legacy aliases, event id, release, environment, dist, logentry, level,
//! platform, logger, culprit/transaction, fingerprint, user, time spent.

use serde_json::{Map, Value};

use super::{Errors, NormalizeConfig, lenient_string, set, trim_chars, update};
use crate::tree::Fields;

/// `sentry_relay.VALID_PLATFORMS`.
const VALID_PLATFORMS: &[&str] = &[
    "as3",
    "c",
    "cfml",
    "cocoa",
    "csharp",
    "elixir",
    "go",
    "groovy",
    "haskell",
    "java",
    "javascript",
    "native",
    "node",
    "objc",
    "other",
    "perl",
    "php",
    "python",
    "ruby",
];

/// Legacy interface names (`legacy_alias` in Relay's `Event`); the canonical key wins.
const LEGACY_ALIASES: &[(&str, &str)] = &[
    ("sentry.interfaces.Message", "logentry"),
    ("sentry.interfaces.Exception", "exception"),
    ("sentry.interfaces.Stacktrace", "stacktrace"),
    ("sentry.interfaces.Template", "template"),
    ("sentry.interfaces.Breadcrumbs", "breadcrumbs"),
    ("sentry.interfaces.Http", "request"),
    ("sentry.interfaces.User", "user"),
    ("sentry.interfaces.Csp", "csp"),
    ("sentry.interfaces.DebugMeta", "debug_meta"),
];

pub(super) fn apply_legacy_aliases(event: &mut Map<String, Value>) {
    // Today's SDKs send none of them: one look at the keys instead of a lookup per alias.
    if event.keys().any(|key| key.starts_with("sentry.interfaces.")) {
        for (alias, canonical) in LEGACY_ALIASES {
            if let Some(value) = event.remove(*alias)
                && event.field(canonical).is_none_or(Value::is_null)
            {
                event.insert((*canonical).to_owned(), value);
            }
        }
    }
    // `message` is the legacy alias of `logentry`: a string/number/array becomes `formatted`,
    // an object is a logentry. `logentry` wins when both are present.
    if let Some(message) = event.remove("message")
        && event.field("logentry").is_none_or(Value::is_null)
    {
        let logentry = match message {
            Value::Null => None,
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(formatted(s)),
            Value::Object(obj) => Some(obj),
            Value::Array(_) => Some(formatted(message.to_string())),
            other => lenient_string(other).ok().flatten().map(formatted),
        };
        if let Some(logentry) = logentry {
            event.insert("logentry".into(), Value::Object(logentry));
        }
    }
}

/// A log entry of only `formatted`.
fn formatted(s: String) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("formatted".into(), Value::String(s));
    map
}

/// Validates `event_id` (any UUID form) and returns it as 32 lowercase hex characters; a missing
/// or invalid id is replaced by a new random one (invalid ones with an `invalid_data` error). The
/// value is taken where it stands (`null` until the caller writes the id back).
pub(super) fn normalize_event_id(event: &mut Map<String, Value>, errors: &mut Errors) -> String {
    match event.field_mut("event_id").map(Value::take) {
        None | Some(Value::Null) => {}
        Some(Value::String(raw)) => match uuid::Uuid::try_parse(&raw) {
            Ok(id) => return id.simple().to_string(),
            Err(_) => {
                let reason = uuid_error_reason(&raw);
                errors.invalid("event_id", Some(Value::String(raw)), Some(&reason));
            }
        },
        Some(other) => errors.invalid("event_id", Some(other), Some("expected event id")),
    }
    uuid::Uuid::new_v4().simple().to_string()
}

/// Relay's (uuid 0.8) wording: `invalid character: found `x` at i` / `invalid length: found n`.
fn uuid_error_reason(raw: &str) -> String {
    match raw.chars().enumerate().find(|(_, c)| !c.is_ascii_hexdigit() && *c != '-') {
        Some((i, c)) => format!("invalid character: found `{c}` at {i}"),
        None => format!("invalid length: found {}", raw.chars().count()),
    }
}

/// `release`: lenient string, trimmed, non-empty, valid per `sentry-release-parser`.
pub(super) fn normalize_release(event: &mut Map<String, Value>, errors: &mut Errors) {
    update(event, "release", |raw| {
        let release = match lenient_string(raw?) {
            Ok(None) => return None,
            Ok(Some(s)) => s,
            Err(bad) => {
                errors.invalid("release", Some(bad), Some("expected a primitive value"));
                return Some(Value::Null);
            }
        };
        Some(match trimmed_non_empty("release", release, errors) {
            Some(s) if sentry_release_parser::validate_release(&s).is_ok() => Value::String(s),
            Some(s) => {
                errors.invalid("release", Some(Value::String(s)), None);
                Value::Null
            }
            None => Value::Null,
        })
    });
}

/// `environment`: string, trimmed, non-empty, valid per `sentry-release-parser`.
pub(super) fn normalize_environment(event: &mut Map<String, Value>, errors: &mut Errors) {
    update(event, "environment", |raw| match raw? {
        Value::Null => None,
        Value::String(s) => Some(match trimmed_non_empty("environment", s, errors) {
            Some(s) if sentry_release_parser::validate_environment(&s).is_ok() => Value::String(s),
            Some(s) => {
                errors.invalid("environment", Some(Value::String(s)), None);
                Value::Null
            }
            None => Value::Null,
        }),
        other => {
            errors.invalid("environment", Some(other), Some("expected a string"));
            Some(Value::Null)
        }
    });
}

/// `dist`: string, trimmed, non-empty, ≤ 64 characters of `[a-zA-Z0-9_.-]`.
pub(super) fn normalize_dist(event: &mut Map<String, Value>, errors: &mut Errors) {
    update(event, "dist", |raw| {
        Some(match raw? {
            Value::Null => return None,
            Value::String(s) => dist(s, errors),
            other => {
                errors.invalid("dist", Some(other), Some("expected a string"));
                Value::Null
            }
        })
    });
}

fn dist(s: String, errors: &mut Errors) -> Value {
    match trimmed_non_empty("dist", s, errors) {
        None => Value::Null,
        Some(s) if s.chars().count() > 64 => {
            errors.push("value_too_long", "dist", Some(Value::String(s)), None);
            Value::Null
        }
        Some(s) => match s.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
            Some(c) => {
                let reason = format!("invalid character {c:?}");
                errors.invalid("dist", Some(Value::String(s)), Some(&reason));
                Value::Null
            }
            None => Value::String(s),
        },
    }
}

fn trimmed_non_empty(name: &str, s: String, errors: &mut Errors) -> Option<String> {
    let trimmed = s.trim();
    if trimmed.is_empty() {
        errors.invalid(name, None, Some("expected a non-empty string"));
        None
    } else if trimmed.len() == s.len() {
        Some(s)
    } else {
        Some(trimmed.to_owned())
    }
}

/// `logentry`: `formatted` from `message` + `params` when absent; `message` dropped when equal to
/// `formatted`; both trimmed to the Message limit (8192 + 200).
pub(super) fn normalize_logentry(event: &mut Map<String, Value>, errors: &mut Errors) {
    update(event, "logentry", |raw| logentry(raw?, errors));
}

fn logentry(raw: Value, errors: &mut Errors) -> Option<Value> {
    let entry = match raw {
        Value::Null => return None,
        Value::Object(map) => map,
        Value::String(s) if s.is_empty() => return None,
        Value::String(s) => formatted(s),
        other => {
            errors.invalid("logentry", Some(other), Some("expected a log entry"));
            return Some(Value::Null);
        }
    };
    if entry.values().all(Value::is_null) {
        return None;
    }
    normalize_logentry_fields(entry, errors)
}

fn normalize_logentry_fields(mut entry: Map<String, Value>, errors: &mut Errors) -> Option<Value> {
    for key in ["message", "formatted"] {
        update(&mut entry, key, |value| match value? {
            Value::Null => None,
            Value::String(s) => Some(Value::String(s)),
            other => lenient_string(other).ok().flatten().map(Value::String),
        });
    }
    let message = entry.field("message").and_then(Value::as_str);
    let has_formatted = entry.field("formatted").is_some();
    if message.is_none() && !has_formatted {
        errors.invalid("logentry", Some(Value::Object(entry)), Some("no message present"));
        return Some(Value::Null);
    }
    if !has_formatted && let Some(message) = message {
        let text = match entry.field("params") {
            Some(params @ (Value::Array(_) | Value::Object(_))) => format_message(message, params),
            _ => None,
        }
        .unwrap_or_else(|| message.to_owned());
        entry.insert("formatted".into(), Value::String(text));
    }
    if entry.field("formatted") == entry.field("message") {
        entry.remove("message");
    }
    trim_logentry(&mut entry);
    Some(Value::Object(entry))
}

fn trim_logentry(entry: &mut Map<String, Value>) {
    for key in ["formatted", "message"] {
        if let Some(Value::String(s)) = entry.field_mut(key) {
            trim_chars(s, 8192, 200);
        }
    }
}

/// Python-style `%s`/`%d`/`%(name)s` and `{0}` formatting of a log message template, as
/// Relay's `format_message`. Hand-written: no crate implements Python's `%` operator.
/// Returns `None` when no placeholder was filled.
fn format_message(template: &str, params: &Value) -> Option<String> {
    let mut out = String::with_capacity(template.len());
    let mut positional = 0usize;
    let mut replaced = false;
    let mut rest = template;
    while let Some(pos) = rest.find(['%', '{']) {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        let (consumed, piece) = placeholder(tail, params, &mut positional);
        match piece {
            Some(text) => {
                out.push_str(&text);
                replaced |= text != "%" || consumed != 2;
            }
            None => out.push_str(&tail[..consumed]),
        }
        rest = &tail[consumed..];
    }
    out.push_str(rest);
    replaced.then_some(out)
}

/// One placeholder at the start of `tail`: bytes consumed and its replacement (`None` keeps the
/// consumed text as is).
fn placeholder(tail: &str, params: &Value, positional: &mut usize) -> (usize, Option<String>) {
    fn display(value: &Value) -> String {
        match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
    let bytes = tail.as_bytes();
    if bytes.first() == Some(&b'{') {
        if let Some(close) = tail[1..].find('}')
            && let Ok(n) = tail[1..1 + close].parse::<usize>()
            && let Some(value) = params.get(n)
        {
            return (close + 2, Some(display(value)));
        }
        return (1, None);
    }
    match bytes.get(1) {
        Some(b'%') => (2, Some("%".to_owned())),
        Some(b'(') => {
            if let Some(close) = tail[2..].find(')')
                && let Some(conv) = bytes.get(3 + close)
                && conv.is_ascii_alphabetic()
                && let Some(value) = params.field(&tail[2..2 + close])
            {
                return (4 + close, Some(display(value)));
            }
            (1, None)
        }
        Some(conv) if conv.is_ascii_alphabetic() => match params.get(*positional) {
            Some(value) => {
                *positional += 1;
                (2, Some(display(value)))
            }
            None => (1, None),
        },
        _ => (1, None),
    }
}

/// `platform`: one of `VALID_PLATFORMS`, else `other`.
pub(super) fn normalize_platform(event: &mut Map<String, Value>) {
    let valid = event.field("platform").and_then(Value::as_str).is_some_and(|p| VALID_PLATFORMS.contains(&p));
    if !valid {
        set(event, "platform", Value::from("other"));
    }
}

/// Parses a level: names (with `log` and `critical` aliases) and Python logging integers.
pub(super) fn parse_level(value: &Value) -> Result<&'static str, Option<&'static str>> {
    match value {
        Value::String(s) => match s.as_str() {
            "debug" => Ok("debug"),
            "info" | "log" => Ok("info"),
            "warning" => Ok("warning"),
            "error" => Ok("error"),
            "fatal" | "critical" => Ok("fatal"),
            _ => Err(Some("invalid level")),
        },
        Value::Number(n) => match n.as_i64() {
            Some(10) => Ok("debug"),
            Some(20) => Ok("info"),
            Some(30) => Ok("warning"),
            Some(40) => Ok("error"),
            Some(50) => Ok("fatal"),
            _ => Err(None),
        },
        _ => Err(Some("expected a level")),
    }
}

/// `level`: parsed, else `error` (`info` for transactions).
pub(super) fn normalize_level(event: &mut Map<String, Value>, is_transaction: bool, errors: &mut Errors) {
    let default = if is_transaction { "info" } else { "error" };
    update(event, "level", |raw| {
        let level = match raw {
            None | Some(Value::Null) => None,
            Some(raw) => match parse_level(&raw) {
                Ok(level) => Some(level),
                Err(reason) => {
                    errors.invalid("level", Some(raw), reason);
                    None
                }
            },
        };
        Some(Value::from(level.unwrap_or(default)))
    });
}

/// `logger`: string without newlines, trimmed to 64 characters, default `""`.
pub(super) fn normalize_logger(event: &mut Map<String, Value>, errors: &mut Errors) {
    // Security reports get Relay's `csp` logger.
    let default = if event.field("csp").is_some_and(Value::is_object) { "csp" } else { "" };
    update(event, "logger", |raw| Some(Value::String(logger(raw, default, errors))));
}

fn logger(raw: Option<Value>, default: &str, errors: &mut Errors) -> String {
    match raw {
        None | Some(Value::Null) => default.to_owned(),
        Some(Value::String(s)) if s.contains(['\r', '\n']) => {
            let c = if s.contains('\r') { '\r' } else { '\n' };
            let reason = format!("invalid character {c:?}");
            errors.invalid("logger", Some(Value::String(s)), Some(&reason));
            String::new()
        }
        Some(Value::String(mut s)) => {
            trim_chars(&mut s, 64, 0);
            s
        }
        Some(other) => {
            errors.invalid("logger", Some(other), Some("expected a string"));
            String::new()
        }
    }
}

/// `culprit` and `transaction`: strings trimmed to 200 characters; for transactions the name is
/// whitespace-trimmed and defaults to `<unlabeled transaction>`.
pub(super) fn normalize_culprit_and_transaction(
    event: &mut Map<String, Value>,
    is_transaction: bool,
    errors: &mut Errors,
) {
    for key in ["culprit", "transaction"] {
        update(event, key, |raw| culprit_or_transaction(key, raw, is_transaction, errors));
    }
}

fn culprit_or_transaction(
    key: &str,
    raw: Option<Value>,
    is_transaction: bool,
    errors: &mut Errors,
) -> Option<Value> {
    let value = match raw {
        None | Some(Value::Null) => None,
        Some(Value::String(mut s)) => {
            if key == "transaction" {
                let trimmed = s.trim();
                if trimmed.len() != s.len() {
                    s = trimmed.to_owned();
                }
            }
            trim_chars(&mut s, 200, 0);
            Some(Value::String(s))
        }
        Some(other) => {
            errors.invalid(key, Some(other), Some("expected a string"));
            Some(Value::Null)
        }
    };
    let value = match value {
        Some(Value::String(s)) if key == "transaction" && is_transaction && s.is_empty() => None,
        v => v,
    };
    match value {
        None if key == "transaction" && is_transaction => Some(Value::from("<unlabeled transaction>")),
        v => v,
    }
}

/// `fingerprint`: array of strings; numbers and booleans are stringified (floats truncated),
/// nulls dropped, other values reported; non-arrays are an error.
pub(super) fn normalize_fingerprint(event: &mut Map<String, Value>, errors: &mut Errors) {
    update(event, "fingerprint", |raw| fingerprint(raw?, errors));
}

fn fingerprint(raw: Value, errors: &mut Errors) -> Option<Value> {
    Some(match raw {
        Value::Null => return None,
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            let mut bad = Vec::new();
            for item in items {
                match item {
                    Value::Null => {}
                    Value::Number(n) if n.as_f64().is_some_and(|f| f.abs() >= 9.007e15) => {
                        bad.push(Value::Number(n));
                    }
                    item @ (Value::String(_) | Value::Number(_) | Value::Bool(_)) => {
                        if let Ok(Some(s)) = lenient_string(item) {
                            out.push(Value::String(s));
                        }
                    }
                    other => bad.push(other),
                }
            }
            if !bad.is_empty() {
                errors.invalid("fingerprint", Some(Value::Array(bad)), None);
            }
            Value::Array(out)
        }
        other => {
            errors.invalid("fingerprint", Some(other), Some("expected an array"));
            Value::Null
        }
    })
}

/// `user`: lenient `id`/`username`, `{{auto}}` IP resolution, `sentry_user` tag value.
pub(super) fn normalize_user(event: &mut Map<String, Value>, config: &NormalizeConfig, errors: &mut Errors) {
    let platform = event.field("platform").and_then(Value::as_str).unwrap_or("other");
    let infer_ip = matches!(platform, "javascript" | "cocoa" | "objc");
    let remote_addr = event
        .field("request")
        .and_then(|r| r.field("env"))
        .and_then(|env| env.field("REMOTE_ADDR"))
        .and_then(Value::as_str)
        .map(str::to_owned);

    update(event, "user", |raw| {
        let user = match raw {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(user)) => user,
            Some(other) => {
                errors.invalid("user", Some(other), Some("expected user"));
                return Some(Value::Null);
            }
        };
        let user = user_fields(user, remote_addr, config.client_ip.as_ref().filter(|_| infer_ip), errors);
        (!user.is_empty()).then_some(Value::Object(user))
    });
}

fn user_fields(
    mut user: Map<String, Value>,
    remote_addr: Option<String>,
    client_ip: Option<&String>,
    errors: &mut Errors,
) -> Map<String, Value> {
    for key in ["id", "username"] {
        update(&mut user, key, |raw| match lenient_string(raw?) {
            Ok(value) => value.map(Value::String),
            Err(bad) => {
                errors.invalid(&format!("user.{key}"), Some(bad), Some("expected a primitive value"));
                None
            }
        });
    }
    match user.field("ip_address") {
        Some(Value::String(ip)) if ip == "{{auto}}" => {
            if let Some(client_ip) = client_ip {
                set(&mut user, "ip_address", Value::String(client_ip.clone()));
            }
        }
        None | Some(Value::Null) => {
            if let Some(ip) = remote_addr.or_else(|| client_ip.cloned()) {
                set(&mut user, "ip_address", Value::String(ip));
            }
        }
        _ => {}
    }
    if let Some(Value::String(email)) = user.field_mut("email") {
        trim_chars(email, 75, 0);
    }
    let tag = [("id", "id"), ("username", "username"), ("email", "email"), ("ip_address", "ip")]
        .iter()
        .find_map(|(key, prefix)| user.field(key).and_then(Value::as_str).map(|v| format!("{prefix}:{v}")));
    if let Some(tag) = tag {
        user.insert("sentry_user".into(), Value::String(tag));
    }
    user
}

/// `time_spent` values Sentry cannot store (≥ 2³¹ − 1) are removed.
pub(super) fn normalize_time_spent(event: &mut Map<String, Value>) {
    let too_big = event.field("time_spent").and_then(Value::as_f64).is_some_and(|t| t >= 2_147_483_647.0);
    if too_big {
        event.remove("time_spent");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn message_formatting() {
        let f = |t: &str, p: Value| format_message(t, &p);
        assert_eq!(f("hello %s and %d %%", json!(["a", 5])).as_deref(), Some("hello a and 5 %"));
        assert_eq!(f("hello %(name)s!", json!({"name": "bob"})).as_deref(), Some("hello bob!"));
        assert_eq!(f("hello {0} {1}", json!(["a", "b"])).as_deref(), Some("hello a b"));
        assert_eq!(f("no params %s", json!([])), None);
        assert_eq!(f("100% sure {x}", json!(["a"])), None);
    }

    #[test]
    fn levels() {
        assert_eq!(parse_level(&json!("critical")), Ok("fatal"));
        assert_eq!(parse_level(&json!("log")), Ok("info"));
        assert_eq!(parse_level(&json!(30)), Ok("warning"));
        assert_eq!(parse_level(&json!("warn")), Err(Some("invalid level")));
        assert_eq!(parse_level(&json!("ERROR")), Err(Some("invalid level")));
        assert_eq!(parse_level(&json!(35)), Err(None));
        assert_eq!(parse_level(&json!(true)), Err(Some("expected a level")));
    }

    #[test]
    fn uuid_reasons() {
        assert_eq!(uuid_error_reason("not-an-id"), "invalid character: found `n` at 0");
        assert_eq!(uuid_error_reason("aaa"), "invalid length: found 3");
    }
}
