//! Event metadata, title, culprit and search message (spec §5.9, Sentry's `eventtypes/*`,
//! `event_manager.materialize_metadata` / `get_culprit`, `culprit.generate_culprit` and
//! `Event.search_message`).
//!
//! [`materialize_metadata`] computes what Sentry's `_materialize_metadata_many` merges into the
//! event (`type`, `culprit`, `metadata`, `title`, `location`); [`Materialized::write_into`] performs
//! that merge. [`search_message`] reads the merged `metadata` and `culprit` back from the event, so
//! call it after `write_into` (as Sentry does).
//!
//! Metadata per event type (`type` as normalized by Relay; unknown types behave as `default`):
//!
//! | type | metadata | title | location |
//! |---|---|---|---|
//! | `error` | `value`, `type` (not for synthetic exceptions), `filename`, `function` of the crash frame | `Type: first line of value` (100 chars), `Type`, else the function or `<unknown>` | `filename` |
//! | `default` | `title` = first line of the log message (100 chars) or `<unlabeled event>` | `title` | — |
//! | `csp` | `message`, `uri`, `directive` | `message` or `<untitled>` | `uri` |
//! | `hpkp`, `expectct`, `expectstaple` | `message`, `origin` | `message` | `origin` |
//! | `nel` | `title`, `uri` | `title` | — |
//! | `transaction` | `title` = trace description or transaction, `location` | `title` | `location` |
//! | `generic` | — (the occurrence supplies the title) | `<untitled>` | — |
//!
//! A custom `title` in the event (server-side fingerprinting) wins over the computed one, and
//! metadata already present in the event (for instance `in_app_frame_mix` written by grouping) is
//! kept over computed values ("don't clobber existing metadata").
//!
//! Title truncation is 100 characters (Sentry's `sentry.save-event.title-char-limit-256.enabled`
//! option off, its default).

pub use crate::save::common::{PLACEHOLDER_EVENT_TITLES, is_placeholder_title, level_num};
use std::borrow::Cow;

use serde_json::{Map, Value};

use super::compat::{first_line, get_path, list_at, py_str, py_strip, str_at, truncatechars, truthy_str_at};
use super::hashing::crash_frame;
use super::strategies::{csp_effective_directive, normalize_csp_uri};
use crate::tree::Fields;

/// Title length limit (`truncatechars(..., 100)`).
pub const TITLE_MAX_CHARS: usize = 100;
/// `MAX_CULPRIT_LENGTH`.
pub const MAX_CULPRIT_LENGTH: usize = 200;
/// `SENTRY_MAX_MESSAGE_LENGTH`, the limit of the search message.
pub const MAX_MESSAGE_LENGTH: usize = 8192;

/// Metadata keys left out of the search message (`SEARCH_MESSAGE_SKIPPED_KEYS`).
const SEARCH_MESSAGE_SKIPPED_KEYS: [&str; 1] = ["in_app_frame_mix"];

/// What [`materialize_metadata`] derives from an event.
#[derive(Clone, Debug, PartialEq)]
pub struct Materialized {
    /// The event type key: `error`, `default`, `csp`, `hpkp`, `expectct`, `expectstaple`, `nel`,
    /// `transaction` or `generic`.
    pub event_type: String,
    pub title: String,
    pub culprit: String,
    pub location: Option<String>,
    /// A JSON object.
    pub metadata: Value,
}

impl Materialized {
    /// `data.update(materialize_metadata(...))`: writes `type`, `culprit`, `metadata`, `title` and
    /// `location` into the event.
    pub fn write_into(&self, event: &mut Value) {
        let Some(data) = event.as_object_mut() else {
            return;
        };
        data.insert("type".to_owned(), Value::String(self.event_type.clone()));
        data.insert("culprit".to_owned(), Value::String(self.culprit.clone()));
        data.insert("metadata".to_owned(), self.metadata.clone());
        data.insert("title".to_owned(), Value::String(self.title.clone()));
        data.insert("location".to_owned(), self.location.clone().map_or(Value::Null, Value::String));
    }
}

/// The event-type classes of `sentry.eventtypes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EventType {
    Default,
    Error,
    Csp,
    Hpkp,
    ExpectCt,
    ExpectStaple,
    Nel,
    Transaction,
    Generic,
}

impl EventType {
    fn of(event: &Value) -> Self {
        match str_at(event, &["type"]).unwrap_or("default") {
            "error" => Self::Error,
            "csp" => Self::Csp,
            "hpkp" => Self::Hpkp,
            "expectct" => Self::ExpectCt,
            "expectstaple" => Self::ExpectStaple,
            "nel" => Self::Nel,
            "transaction" => Self::Transaction,
            "generic" => Self::Generic,
            _ => Self::Default,
        }
    }

    fn key(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Error => "error",
            Self::Csp => "csp",
            Self::Hpkp => "hpkp",
            Self::ExpectCt => "expectct",
            Self::ExpectStaple => "expectstaple",
            Self::Nel => "nel",
            Self::Transaction => "transaction",
            Self::Generic => "generic",
        }
    }

    fn is_security(self) -> bool {
        matches!(self, Self::Csp | Self::Hpkp | Self::ExpectCt | Self::ExpectStaple)
    }

    /// The insertion order of Sentry's `extract_metadata` (+ `title` from `get_metadata`), used to
    /// iterate metadata in Python's dict order for the search message.
    fn key_order(self) -> &'static [&'static str] {
        match self {
            Self::Error => &["value", "type", "filename", "function", "title"],
            Self::Default | Self::Generic => &["title"],
            Self::Nel => &["title", "uri"],
            Self::Csp => &["message", "uri", "directive", "title"],
            Self::Hpkp | Self::ExpectCt | Self::ExpectStaple => &["message", "origin", "title"],
            Self::Transaction => &["title", "location"],
        }
    }
}

/// `strip(logentry.formatted or logentry.message)`.
fn log_message(event: &Value) -> &str {
    let message = truthy_str_at(event, &["logentry", "formatted"])
        .or_else(|| truthy_str_at(event, &["logentry", "message"]))
        .unwrap_or("");
    py_strip(message)
}

/// `get_function_name_for_frame` without native trimming.
fn function_name(frame: &Value) -> Option<&str> {
    frame.field("function").and_then(Value::as_str)
}

/// The exception the title is made of: the one whose `mechanism.exception_id` is
/// `main_exception_id` (when truthy), else the last one.
fn main_exception(event: &Value) -> Option<&Value> {
    let exceptions = get_path(event, &["exception", "values"])?.as_array()?;
    let main_id = get_path(event, &["main_exception_id"]).filter(|id| super::compat::is_truthy(id));
    let found = main_id
        .and_then(|id| exceptions.iter().find(|e| get_path(e, &["mechanism", "exception_id"]) == Some(id)));
    found.or_else(|| exceptions.last()).filter(|e| super::compat::is_truthy(e))
}

fn insert_str(map: &mut Map<String, Value>, key: &str, value: impl Into<String>) {
    map.insert(key.to_owned(), Value::String(value.into()));
}

/// `extract_metadata` of the event's type.
fn extract_metadata(event: &Value, event_type: EventType) -> Map<String, Value> {
    let mut metadata = Map::new();
    match event_type {
        EventType::Error => {
            let Some(exception) = main_exception(event) else {
                return metadata;
            };
            let value = str_at(exception, &["value"]).unwrap_or("");
            insert_str(&mut metadata, "value", truncatechars(value, 1024));
            let synthetic =
                get_path(exception, &["mechanism", "synthetic"]).is_some_and(super::compat::is_truthy);
            if !synthetic {
                let ty = str_at(exception, &["type"]).unwrap_or("Error");
                insert_str(&mut metadata, "type", truncatechars(ty, 128));
            }
            let useful = |f: &Value| !matches!(function_name(f), None | Some("<redacted>" | "<unknown>"));
            if let Some(frame) = crash_frame(event, &useful) {
                let filename = frame
                    .field("filename")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .or_else(|| frame.field("abs_path").and_then(Value::as_str));
                if let Some(filename) = filename.filter(|s| !s.is_empty()) {
                    insert_str(&mut metadata, "filename", filename);
                }
                if let Some(function) = function_name(frame).filter(|s| !s.is_empty()) {
                    insert_str(&mut metadata, "function", function);
                }
            }
        }
        EventType::Default | EventType::Nel => {
            let message = log_message(event);
            let title = if message.is_empty() {
                Cow::Borrowed("<unlabeled event>")
            } else {
                truncatechars(first_line(message), TITLE_MAX_CHARS)
            };
            insert_str(&mut metadata, "title", title);
            if event_type == EventType::Nel {
                let uri = get_path(event, &["request", "url"]).cloned().unwrap_or(Value::Null);
                metadata.insert("uri".to_owned(), uri);
            }
        }
        EventType::Csp | EventType::Hpkp | EventType::ExpectCt | EventType::ExpectStaple => {
            insert_str(&mut metadata, "message", log_message(event));
            let report = get_path(event, &[event_type.key()]).unwrap_or(&Value::Null);
            if event_type == EventType::Csp {
                let blocked = report.field("blocked_uri").and_then(Value::as_str).unwrap_or("");
                insert_str(&mut metadata, "uri", normalize_csp_uri(blocked));
                let directive =
                    csp_effective_directive(report).map_or(Value::Null, |d| Value::String(d.to_owned()));
                metadata.insert("directive".to_owned(), directive);
            } else {
                let origin = report.field("hostname").cloned().unwrap_or(Value::Null);
                metadata.insert("origin".to_owned(), origin);
            }
        }
        EventType::Transaction => {
            let transaction = str_at(event, &["transaction"]);
            let title = truthy_str_at(event, &["contexts", "trace", "description"]).or(transaction);
            metadata.insert("title".to_owned(), title.map_or(Value::Null, |t| Value::String(t.to_owned())));
            metadata.insert(
                "location".to_owned(),
                transaction.map_or(Value::Null, |t| Value::String(t.to_owned())),
            );
        }
        EventType::Generic => {}
    }
    metadata
}

fn meta_str<'a>(metadata: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    metadata.field(key).and_then(Value::as_str)
}

/// `get_title(metadata)` of the event type.
fn title_of(metadata: &Map<String, Value>, event_type: EventType) -> String {
    if event_type.is_security() {
        let title = meta_str(metadata, "message")
            .filter(|s| !s.is_empty())
            .or_else(|| meta_str(metadata, "title").filter(|s| !s.is_empty()))
            .unwrap_or("<untitled>");
        return title.to_owned();
    }
    if let Some(title) = metadata.field("title").filter(|t| !t.is_null()) {
        return py_str(title).into_owned();
    }
    if event_type == EventType::Error {
        let computed = meta_str(metadata, "type").map(|ty| match meta_str(metadata, "value") {
            Some(value) if !value.is_empty() => {
                format!("{ty}: {}", truncatechars(first_line(value), TITLE_MAX_CHARS))
            }
            _ => ty.to_owned(),
        });
        return computed
            .filter(|t| !t.is_empty())
            .or_else(|| meta_str(metadata, "function").filter(|f| !f.is_empty()).map(str::to_owned))
            .unwrap_or_else(|| "<unknown>".to_owned());
    }
    "<untitled>".to_owned()
}

/// `get_location(metadata)` of the event type.
fn location_of(metadata: &Map<String, Value>, event_type: EventType) -> Option<String> {
    let value = match event_type {
        EventType::Error => metadata.field("filename"),
        EventType::Transaction => metadata.field("location"),
        t if t.is_security() => {
            metadata.field("uri").filter(|v| super::compat::is_truthy(v)).or_else(|| metadata.field("origin"))
        }
        _ => None,
    };
    value.filter(|v| !v.is_null()).map(|v| py_str(v).into_owned())
}

/// Sentry's `materialize_metadata(data, event_type, event_type.get_metadata(data))`.
pub fn materialize_metadata(event: &Value) -> Materialized {
    let event_type = EventType::of(event);
    let mut metadata = extract_metadata(event, event_type);
    if let Some(title) = get_path(event, &["title"]) {
        metadata.insert("title".to_owned(), title.clone());
    }
    // Don't clobber existing metadata.
    if let Some(existing) = get_path(event, &["metadata"]).and_then(Value::as_object) {
        for (key, value) in existing {
            metadata.insert(key.clone(), value.clone());
        }
    }
    Materialized {
        event_type: event_type.key().to_owned(),
        title: title_of(&metadata, event_type),
        culprit: get_culprit(event),
        location: location_of(&metadata, event_type),
        metadata: Value::Object(metadata),
    }
}

/// `get_culprit`: the event's `culprit`, else its `transaction`, else [`generate_culprit`], else `""`.
pub fn get_culprit(event: &Value) -> String {
    truthy_str_at(event, &["culprit"])
        .or_else(|| truthy_str_at(event, &["transaction"]))
        .map(str::to_owned)
        .unwrap_or_else(|| generate_culprit(event))
}

/// `get_frame_culprit`: `function` for native frames, `function(file)` for JavaScript,
/// `module in function` (or file) otherwise.
fn frame_culprit(frame: &Value, platform: Option<&str>) -> String {
    let platform = frame.field("platform").and_then(Value::as_str).filter(|p| !p.is_empty()).or(platform);
    let function = frame.field("function").and_then(Value::as_str).filter(|f| !f.is_empty());
    if matches!(platform, Some("objc" | "cocoa" | "native")) {
        return function.unwrap_or("?").to_owned();
    }
    let fileloc = frame
        .field("module")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .or_else(|| frame.field("filename").and_then(Value::as_str).filter(|f| !f.is_empty()));
    match fileloc {
        None => String::new(),
        Some(fileloc) if matches!(platform, Some("javascript" | "node")) => {
            format!("{}({fileloc})", function.unwrap_or("?"))
        }
        Some(fileloc) => format!("{fileloc} in {}", function.unwrap_or("?")),
    }
}

/// `get_stacktrace_culprit`: the top-most in-app frame with a culprit, else the top-most frame's.
fn stacktrace_culprit(frames: &[Value], platform: Option<&str>) -> Option<String> {
    let mut default: Option<String> = None;
    for frame in frames.iter().rev().filter(|f| super::compat::is_truthy(f)) {
        if frame.field("in_app").and_then(Value::as_bool).unwrap_or(false) {
            let culprit = frame_culprit(frame, platform);
            if !culprit.is_empty() {
                return Some(culprit);
            }
        } else if default.is_none() {
            default = Some(frame_culprit(frame, platform));
        }
    }
    default
}

/// Sentry's `generate_culprit` (the legacy culprit from the last stack trace, else the request URL),
/// truncated to [`MAX_CULPRIT_LENGTH`]. Synthetic exceptions get no culprit.
pub fn generate_culprit(event: &Value) -> String {
    let platform = str_at(event, &["platform"]);
    let exceptions: Vec<&Value> = list_at(event, &["exception", "values"]).collect();
    let last_frames = if let Some(last) = exceptions.last() {
        if get_path(last, &["mechanism", "synthetic"]).is_some_and(super::compat::is_truthy) {
            return String::new();
        }
        exceptions.iter().rev().find_map(|e| frames_of(e.field("stacktrace")))
    } else {
        frames_of(get_path(event, &["stacktrace"]))
    };
    let mut culprit = last_frames.and_then(|frames| stacktrace_culprit(frames, platform)).unwrap_or_default();
    if culprit.is_empty() && get_path(event, &["request"]).is_some_and(super::compat::is_truthy) {
        culprit =
            get_path(event, &["request", "url"]).map(|url| py_str(url).into_owned()).unwrap_or_default();
    }
    truncatechars(&culprit, MAX_CULPRIT_LENGTH).into_owned()
}

/// The non-empty frame list of a stack trace.
fn frames_of(stacktrace: Option<&Value>) -> Option<&Vec<Value>> {
    stacktrace.and_then(|s| s.field("frames")).and_then(Value::as_array).filter(|f| !f.is_empty())
}

/// `Event.search_message`: the log message, then every metadata value not already contained in it
/// (strings and other non-numeric values, in Sentry's insertion order), then the culprit, trimmed
/// to [`MAX_MESSAGE_LENGTH`] characters. Reads the `metadata` and `culprit` that
/// [`Materialized::write_into`] stored in the event.
pub fn search_message(event: &Value) -> String {
    let mut message = String::new();
    if get_path(event, &["logentry"]).is_some_and(super::compat::is_truthy) {
        message.push_str(
            truthy_str_at(event, &["logentry", "formatted"])
                .or_else(|| truthy_str_at(event, &["logentry", "message"]))
                .unwrap_or(""),
        );
    }
    if let Some(metadata) = get_path(event, &["metadata"]).and_then(Value::as_object) {
        let order = EventType::of(event).key_order();
        let known = order.iter().filter_map(|key| metadata.get_key_value(*key));
        let others = metadata.iter().filter(|(key, _)| !order.contains(&key.as_str()));
        for (key, value) in known.chain(others) {
            if SEARCH_MESSAGE_SKIPPED_KEYS.contains(&key.as_str())
                || matches!(value, Value::Bool(_) | Value::Number(_))
            {
                continue;
            }
            let text = py_str(value);
            if !message.contains(text.as_ref()) {
                message.push(' ');
                message.push_str(&text);
            }
        }
    }
    if let Some(culprit) = truthy_str_at(event, &["culprit"])
        && !message.contains(culprit)
    {
        message.push(' ');
        message.push_str(culprit);
    }
    truncatechars(py_strip(&message), MAX_MESSAGE_LENGTH).into_owned()
}

/// `PriorityLevel` values Sentry stores in `metadata.initial_priority`.
pub mod priority {
    pub const LOW: i64 = 25;
    pub const MEDIUM: i64 = 50;
    pub const HIGH: i64 = 75;
}

/// `_get_priority_for_group` without a severity score (no Seer): `info`/`debug` → LOW, `fatal` and
/// `error` → HIGH, `warning` → MEDIUM, anything else MEDIUM.
pub fn initial_priority(level: &str) -> i64 {
    match level {
        "info" | "debug" => priority::LOW,
        "fatal" | "error" => priority::HIGH,
        _ => priority::MEDIUM,
    }
}

fn is_real_title(title: Option<&str>) -> bool {
    title.is_some_and(|t| !t.is_empty() && !is_placeholder_title(t))
}

/// `_get_updated_group_title(existing, incoming)`: the incoming title (or none) unless a placeholder
/// would replace a real title or the absence of one.
pub fn updated_group_title<'a>(existing: Option<&'a str>, incoming: Option<&'a str>) -> Option<&'a str> {
    if is_real_title(incoming) || existing.is_some_and(is_placeholder_title) { incoming } else { existing }
}
