//! Relay-compatible event normalization (ingest-protocol.md §7–§8).
//!
//! Owns turning an SDK event payload into what Sentry's `save` step expects — the output of
//! `sentry_relay.processing.StoreNormalizer` (Relay's `validate_event` + `normalize_event` with
//! `remove_other`, `emit_event_errors` and trimming on). It works directly on the
//! `serde_json::Value` object: events carry arbitrary interfaces (`extra`, `contexts`,
//! `request`, …) that must pass through untouched, and a typed model would have to round-trip
//! all of them. Each field is normalized where it stands in the map (`update`: one lookup, the
//! key kept), never cloned wholesale.
//!
//! Fidelity is checked against the real Relay normalizer by the conformance test
//! (`tests/relay_conformance.rs`, fixtures in `tests/fixtures/relay/`). Deliberate differences:
//! * the envelope `sent_at` clock-drift correction (|drift| ≥ 55 min) is applied here, as the
//!   Relay *server* does before normalizing; the 0.10.1 Python binding ignores `sent_at`;
//! * no `_meta` is produced (errors are reported in `errors` only);
//! * databag trimming of `extra` happens while the payload is parsed (`super::parse`), exactly as
//!   Relay's; the other databags (`request`, `contexts`, breadcrumb data, frame vars) are not trimmed,
//!   and PII scrubbing is not done.
//!
//! Module map: `timestamps` (parsing, drift, future/past clamping), `fields` (scalar fields:
//! event id, level, release, environment, dist, logentry, fingerprint, user, …), `tags`,
//! `interfaces` (exceptions, stack traces, breadcrumbs, contexts), `transaction`
//! (validation and trace context).

mod fields;
mod interfaces;
mod tags;
mod timestamps;
mod transaction;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::tree::Fields;

/// Normalization settings (Sentry's `DEFAULT_STORE_NORMALIZER_ARGS` + request data).
#[derive(Debug, Clone, PartialEq)]
pub struct NormalizeConfig {
    /// When the request was received (`received`, missing timestamps, clamping reference).
    pub received_at: DateTime<Utc>,
    /// Envelope `sent_at`, for clock-drift correction.
    pub sent_at: Option<DateTime<Utc>>,
    /// Client IP, for `{{auto}}` user IPs (browser/mobile platforms).
    pub client_ip: Option<String>,
    /// The project id (`project`).
    pub project_id: u64,
    /// The DSN key's id (`key_id`).
    pub key_id: Option<String>,
    /// Future tolerance in seconds (Sentry: 60).
    pub max_secs_in_future: i64,
    /// Past tolerance in seconds (Sentry: 30 days).
    pub max_secs_in_past: i64,
    /// `version` (protocol version, "7").
    pub protocol_version: String,
    /// `grouping_config`, e.g. `{"id": "newstyle:2023-01-11"}`.
    pub grouping_config: Value,
    /// Keep a client-sent `type` of `generic` or `feedback` (Sentry's `EventManager` puts it
    /// back after Relay overwrote it; used for issue-platform events, never for SDK traffic).
    pub keep_issue_platform_type: bool,
}

impl NormalizeConfig {
    /// Sentry's defaults for a project and a receive time.
    pub fn new(project_id: u64, received_at: DateTime<Utc>) -> Self {
        Self {
            received_at,
            sent_at: None,
            client_ip: None,
            project_id,
            key_id: None,
            max_secs_in_future: 60,
            max_secs_in_past: 2_592_000,
            protocol_version: "7".to_owned(),
            grouping_config: serde_json::json!({"id": "newstyle:2023-01-11"}),
            keep_issue_platform_type: false,
        }
    }
}

/// Events that cannot be normalized; the event is dropped (Relay: outcome "invalid").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    /// The payload is not a JSON object.
    #[error("invalid event: expected a JSON object")]
    NotAnObject,
    /// A transaction failing Relay's `validate_transaction` (message as Relay's).
    #[error("invalid transaction event: {0}")]
    InvalidTransaction(&'static str),
}

/// Normalizes one event or transaction payload.
pub fn normalize_event(event: Value, config: &NormalizeConfig) -> Result<Value, NormalizeError> {
    let Value::Object(mut event) = event else {
        return Err(NormalizeError::NotAnObject);
    };
    let mut errors = Errors::from_existing(event.remove("errors"));

    fields::apply_legacy_aliases(&mut event);
    remove_unknown_attributes(&mut event, &mut errors);
    // Taken where it stands; the entry gets the event's type at the end.
    let client_type = event.field_mut("type").map(Value::take);
    let client_type = client_type.as_ref().and_then(Value::as_str);
    let is_transaction = client_type == Some("transaction");

    let event_id = fields::normalize_event_id(&mut event, &mut errors);
    interfaces::normalize_breadcrumbs_shape(&mut event, &mut errors);
    timestamps::normalize(&mut event, config, &mut errors);
    if is_transaction {
        transaction::validate_and_normalize(&mut event, &mut errors)?;
    }

    fields::normalize_release(&mut event, &mut errors);
    fields::normalize_environment(&mut event, &mut errors);
    fields::normalize_logentry(&mut event, &mut errors);
    fields::normalize_dist(&mut event, &mut errors);
    tags::normalize(&mut event, &mut errors);
    fields::normalize_platform(&mut event);
    fields::normalize_level(&mut event, is_transaction, &mut errors);
    fields::normalize_logger(&mut event, &mut errors);
    fields::normalize_culprit_and_transaction(&mut event, is_transaction, &mut errors);
    fields::normalize_fingerprint(&mut event, &mut errors);
    interfaces::normalize_exceptions(&mut event, &mut errors);
    interfaces::normalize_breadcrumbs(&mut event, &mut errors);
    fields::normalize_user(&mut event, config, &mut errors);
    interfaces::normalize_contexts(&mut event, &event_id, is_transaction, &mut errors);
    if !is_transaction {
        event.remove("measurements");
    }
    fields::normalize_time_spent(&mut event);
    interfaces::drop_empty_containers(&mut event);

    let ty = match client_type {
        Some("transaction") => "transaction",
        Some(t @ ("generic" | "feedback")) if config.keep_issue_platform_type => t,
        _ => interfaces::infer_type(&event),
    };
    set(&mut event, "type", Value::from(ty));
    set(&mut event, "event_id", Value::String(event_id));
    event.insert("project".into(), Value::from(config.project_id));
    if let Some(key_id) = &config.key_id {
        event.insert("key_id".into(), Value::from(key_id.as_str()));
    }
    event.insert("version".into(), Value::from(config.protocol_version.as_str()));
    event.insert("grouping_config".into(), config.grouping_config.clone());
    if !errors.is_empty() {
        event.insert("errors".into(), Value::Array(errors.0));
    }
    Ok(Value::Object(event))
}

/// Top-level attributes of Relay's `Event` (plus internal ones Sentry keeps); anything else is
/// removed with an `invalid_attribute` error (`remove_other`). A `match`: compared by length, then
/// bytes.
fn is_known_attribute(key: &str) -> bool {
    matches!(
        key,
        "_dsc"
            | "_meta"
            | "_metrics"
            | "_performance_issues_spans"
            | "applecrashreport"
            | "breadcrumbs"
            | "breakdowns"
            | "checksum"
            | "contexts"
            | "csp"
            | "culprit"
            | "debug_meta"
            | "dist"
            | "environment"
            | "errors"
            | "event_id"
            | "exception"
            | "extra"
            | "fingerprint"
            | "grouping_config"
            | "hashes"
            | "ingest_path"
            | "key_id"
            | "level"
            | "logentry"
            | "logger"
            | "measurements"
            | "metadata"
            | "modules"
            | "platform"
            | "project"
            | "received"
            | "release"
            | "request"
            | "scraping_attempts"
            | "sdk"
            | "server_name"
            | "site"
            | "spans"
            | "stacktrace"
            | "start_timestamp"
            | "tags"
            | "template"
            | "threads"
            | "time_spent"
            | "timestamp"
            | "transaction"
            | "transaction_info"
            | "type"
            | "user"
            | "version"
    )
}

fn remove_unknown_attributes(event: &mut Map<String, Value>, errors: &mut Errors) {
    event.retain(|key, _| {
        // `_meta` is Relay's annotation tree; we do not produce or trust one.
        if key == "_meta" {
            return false;
        }
        let known = is_known_attribute(key);
        if !known {
            errors.push("invalid_attribute", key, None, None);
        }
        known
    });
}

/// Normalizes the field `key` of `map` where it stands: `f` gets its value (`None` when absent)
/// and returns the value to keep (`None` removes the field). One lookup for a field that stays,
/// and the entry keeps its key (not allocated again) and its place.
fn update(map: &mut Map<String, Value>, key: &str, f: impl FnOnce(Option<Value>) -> Option<Value>) {
    match map.field_mut(key) {
        Some(slot) => match f(Some(slot.take())) {
            Some(value) => *slot = value,
            None => {
                map.remove(key);
            }
        },
        None => {
            if let Some(value) = f(None) {
                map.insert(key.to_owned(), value);
            }
        }
    }
}

/// Sets `key` to `value`: in place when present (no new key), else added.
fn set(map: &mut Map<String, Value>, key: &str, value: Value) {
    match map.field_mut(key) {
        Some(slot) => *slot = value,
        None => {
            map.insert(key.to_owned(), value);
        }
    }
}

/// Processing errors in Relay's `errors` entry shape: `{type, name, value?, reason?, …}`.
#[derive(Debug, Default)]
struct Errors(Vec<Value>);

impl Errors {
    fn from_existing(existing: Option<Value>) -> Self {
        match existing {
            Some(Value::Array(list)) => Self(list.into_iter().filter(Value::is_object).collect()),
            _ => Self::default(),
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds an error of `kind` for the field at `name` (dotted path).
    fn push(&mut self, kind: &str, name: &str, value: Option<Value>, reason: Option<&str>) {
        let mut entry = Map::new();
        entry.insert("type".into(), Value::from(kind));
        entry.insert("name".into(), Value::from(name));
        if let Some(value) = value {
            entry.insert("value".into(), value);
        }
        if let Some(reason) = reason {
            entry.insert("reason".into(), Value::from(reason));
        }
        self.0.push(Value::Object(entry));
    }

    /// Adds an `invalid_data` error.
    fn invalid(&mut self, name: &str, value: Option<Value>, reason: Option<&str>) {
        self.push("invalid_data", name, value, reason);
    }

    /// Adds a prepared entry.
    fn push_entry(&mut self, entry: Map<String, Value>) {
        self.0.push(Value::Object(entry));
    }
}

/// Relay's `MaxChars` trimming: strings longer than `limit + allowance` characters are cut to
/// `limit - 3` characters followed by `...`.
fn trim_chars(value: &mut String, limit: usize, allowance: usize) {
    let mut indices = value.char_indices();
    if indices.nth(limit + allowance).is_none() {
        return;
    }
    let cut = value.char_indices().nth(limit.saturating_sub(3)).map_or(value.len(), |(i, _)| i);
    value.truncate(cut);
    value.push_str("...");
}

/// Relay's `LenientString`: primitives become strings (floats are truncated, booleans are
/// Python's `True`/`False`); returns `None` for null and `Err(())` for arrays/objects.
fn lenient_string(value: Value) -> Result<Option<String>, Value> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        Value::Bool(true) => Ok(Some("True".to_owned())),
        Value::Bool(false) => Ok(Some("False".to_owned())),
        Value::Number(n) => Ok(Some(number_to_string(&n))),
        other => Err(other),
    }
}

fn number_to_string(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        i.to_string()
    } else if let Some(u) = n.as_u64() {
        u.to_string()
    } else {
        // Relay converts floats to integers (`1.5` → `"1"`).
        n.as_f64().map_or_else(String::new, |f| (f.trunc() as i64).to_string())
    }
}

#[cfg(test)]
mod tests;
