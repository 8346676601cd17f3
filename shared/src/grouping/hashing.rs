//! Grouping hashes of an error/default/security event (spec §6.1 and §6.3).
//!
//! [`calculate_hashes`] does what Sentry's `_calculate_event_grouping` + `get_hashes_and_variants`
//! do to the event before the GroupHash lookup:
//!
//! 1. transactions (and issue-platform `generic` events) get no hashes: their client fingerprint is
//!    ignored and the event is left untouched;
//! 2. `fingerprint` defaults to `["{{ default }}"]` and is written back; a non-default client
//!    fingerprint is recorded under `_fingerprint_info.client_fingerprint`;
//! 3. stack traces are normalized for grouping: missing `in_app` becomes `false`, query strings are
//!    cut from JavaScript file names, and `metadata.in_app_frame_mix` is recorded;
//! 4. variants: a legacy `checksum` (32 lowercase hex → itself, anything else → its MD5) is the only
//!    hash; otherwise the strategies of [`super::strategies`] produce `app`/`system`/`default`
//!    variants; a custom fingerprint (no `{{ default }}` entry) replaces them by one hash of its
//!    resolved values; `{{ default }}` next to other entries salts every variant; nothing
//!    contributing → `fallback` = MD5 of nothing;
//! 5. hashes are ordered with `system` last, `None`s dropped, and written to `event["hashes"]`.
//!
//! `hash_from_values` is Sentry's: MD5 over the UTF-8 bytes of the values concatenated without a
//! separator (`"foo"` → `acbd18db4cc2f85cedef654fccc4a4d8`, nothing → `d41d8cd98f00b204e9800998ecf8427e`).
//!
//! Stack traces are normalized first (function trimming, Sentry's stack-trace rules:
//! [`normalize_stacktraces_for_grouping`]), then a project's server-side fingerprinting rules apply
//! ([`super::fingerprinting`]). Where hashes differ from Sentry's on purpose: Sentry's built-in
//! fingerprinting rule sets (JavaScript chunk-load and hydration errors) are not applied, and message
//! parameterization uses the 2023/24 pattern. The grouping config emulated is `newstyle:2023-01-11` (the one Relay stamps into
//! `grouping_config`), including its legacy fingerprint-variable handling (unknown `{{ vars }}` stay
//! as written).

use md5::{Digest, Md5};
use serde_json::{Map, Value, json};

use super::compat::{get_path, list_at, str_at, truthy_str_at, urlsplit};
use super::config::GroupingConfig;
use super::enhancers::{Enhancements, ExceptionData, set_in_app};
use super::fingerprinting::apply_server_fingerprinting;
use super::functions::trim_function_name;
use super::strategies::variants_from_strategies;
use crate::tree::Fields;

/// The fingerprint entry that stands for "Sentry's default grouping".
pub const DEFAULT_FINGERPRINT_VARIABLE: &str = "{{ default }}";

/// The result of [`calculate_hashes`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hashes {
    /// Grouping hashes, primary first, the `system` variant last. Empty for transactions.
    pub hashes: Vec<String>,
    /// The variant that produced `hashes[0]`: `checksum`, `hashed_checksum`, `custom_fingerprint`,
    /// `app`, `system`, `default` or `fallback` (empty for transactions).
    pub contributing_variant: String,
    /// Every grouping variant with its hash (`None` when it does not contribute), `system` last —
    /// what Sentry's grouping-info view and snapshot tests list.
    pub variants: Vec<(String, Option<String>)>,
}

impl Hashes {
    /// `hashes[0]`, the `primary_hash` of the eventstream.
    pub fn primary(&self) -> Option<&str> {
        self.hashes.first().map(String::as_str)
    }
}

/// Sentry's `hash_from_values`: MD5 hex of the values concatenated without separator.
pub fn hash_from_values<I, S>(values: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut hasher = Md5::new();
    for value in values {
        hasher.update(value.as_ref().as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// The variable name of a fingerprint entry of the form `{{ name }}` (regex
/// `\{\{\s*(\S+)\s*\}\}` matching the whole entry), else `None`.
pub fn parse_fingerprint_variable(entry: &str) -> Option<&str> {
    if entry.len() < 4 || !entry.starts_with("{{") || !entry.ends_with("}}") {
        return None;
    }
    let inner = super::compat::py_strip(&entry[2..entry.len() - 2]);
    let valid = !inner.is_empty() && !inner.chars().any(super::compat::is_py_space);
    valid.then_some(inner)
}

/// `{{ default }}`, `{{default}}`, `{{  default }}` …
pub fn is_default_fingerprint_var(entry: &str) -> bool {
    parse_fingerprint_variable(entry) == Some("default")
}

/// The frame Sentry calls the crash frame (`get_crash_frame_from_event_data`): the last in-app
/// frame of the last exception's (or the event's, or the only thread's) stack trace, else its last
/// frame; `filter` skips frames.
pub(crate) fn crash_frame<'a>(event: &'a Value, filter: &dyn Fn(&Value) -> bool) -> Option<&'a Value> {
    let non_empty = |v: Option<&'a Value>| v.and_then(Value::as_array).filter(|a| !a.is_empty());
    let frames = non_empty(get_path(event, &["exception", "values", "-1", "stacktrace", "frames"]))
        .or_else(|| non_empty(get_path(event, &["stacktrace", "frames"])))
        .or_else(|| {
            let threads = get_path(event, &["threads", "values"]).and_then(Value::as_array)?;
            match threads.as_slice() {
                [thread] => non_empty(get_path(thread, &["stacktrace", "frames"])),
                _ => None,
            }
        })?;
    let mut default = None;
    for frame in frames.iter().rev().filter(|f| !f.is_null() && filter(f)) {
        if frame.field("in_app").and_then(Value::as_bool).unwrap_or(false) {
            return Some(frame);
        }
        default = default.or(Some(frame));
    }
    default
}

/// `resolve_fingerprint_variable` with the legacy unknown-variable handling of `newstyle:2023-01-11`
/// (`None` → the entry is kept as written).
pub(crate) fn resolve_variable(key: &str, event: &Value) -> Option<String> {
    let or =
        |value: Option<&str>, fallback: &str| value.filter(|s| !s.is_empty()).unwrap_or(fallback).to_owned();
    let crash = || crash_frame(event, &|_| true);
    let frame_str =
        |field: &str| crash().and_then(|f| f.field(field)).and_then(Value::as_str).filter(|s| !s.is_empty());
    Some(match key {
        "transaction" => or(str_at(event, &["transaction"]), "<no-transaction>"),
        "message" => or(
            truthy_str_at(event, &["logentry", "formatted"])
                .or_else(|| truthy_str_at(event, &["logentry", "message"]))
                .or_else(|| truthy_str_at(event, &["exception", "values", "-1", "value"])),
            "<no-message>",
        ),
        "type" | "error.type" => or(str_at(event, &["exception", "values", "-1", "type"]), "<no-type>"),
        "value" | "error.value" => or(str_at(event, &["exception", "values", "-1", "value"]), "<no-value>"),
        "function" | "stack.function" => or(frame_str("function"), "<no-function>"),
        "path" | "stack.abs_path" => {
            or(frame_str("abs_path").or_else(|| frame_str("filename")), "<no-abs-path>")
        }
        "stack.filename" => or(frame_str("filename").or_else(|| frame_str("abs_path")), "<no-filename>"),
        "module" | "stack.module" => or(frame_str("module"), "<no-module>"),
        "package" | "stack.package" => {
            let package = frame_str("package")
                .map(|p| p.rsplit('/').next().unwrap_or(p).rsplit('\\').next().unwrap_or(p));
            or(package, "<no-package>")
        }
        "level" => or(str_at(event, &["level"]), "<no-level>"),
        "logger" => or(str_at(event, &["logger"]), "<no-logger>"),
        _ => match key.strip_prefix("tags.") {
            Some(tag) => list_at(event, &["tags"])
                .filter_map(|pair| pair.as_array())
                .find_map(|pair| match pair.as_slice() {
                    [Value::String(k), Value::String(v)] if k == tag => Some(v.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| format!("<no-value-for-tag-{tag}>")),
            None => return None,
        },
    })
}

/// `resolve_fingerprint_values`: variables replaced by their event values, `{{ default }}` entries
/// normalized to [`DEFAULT_FINGERPRINT_VARIABLE`], anything else kept.
pub fn resolve_fingerprint_values(fingerprint: &[String], event: &Value) -> Vec<String> {
    fingerprint
        .iter()
        .map(|entry| match parse_fingerprint_variable(entry) {
            Some("default") => DEFAULT_FINGERPRINT_VARIABLE.to_owned(),
            Some(key) => resolve_variable(key, event).unwrap_or_else(|| entry.clone()),
            None => entry.clone(),
        })
        .collect()
}

/// Sentry's `normalize_stacktraces_for_grouping`, which changes the saved payload: native and C#
/// function names are trimmed (the original kept in `raw_function`), JavaScript file names lose
/// their query string, the modifier stack-trace rules set `in_app` and `data.category`, `in_app`
/// defaults to `false` (both recording `data.orig_in_app`), and `metadata.in_app_frame_mix` records
/// `in-app-only` / `system-only` / `mixed`.
pub fn normalize_stacktraces_for_grouping(event: &mut Value, enhancements: &Enhancements) {
    let platform = str_at(event, &["platform"]).filter(|p| !p.is_empty()).map(str::to_owned);
    let platform = platform.as_deref();
    let Some(data) = event.as_object_mut() else {
        return;
    };
    // `find_stacktraces_in_data(include_raw=True)`: the stack traces of exceptions (with their exception
    // as the rules' `error.*` data) and threads, their raw stack traces, and the top-level one. Each is
    // normalized on its own, so their order does not matter; only the set of per-stacktrace mixes does.
    let mut mixes: Vec<&'static str> = Vec::new();
    for container_key in ["exception", "threads"] {
        let Some(values) =
            data.field_mut(container_key).and_then(|c| c.field_mut("values")).and_then(Value::as_array_mut)
        else {
            continue;
        };
        for container in values.iter_mut() {
            let exception = match container_key {
                "exception" if container.is_object() => ExceptionData::of(container),
                _ => ExceptionData::default(),
            };
            let Some(container) = container.as_object_mut() else {
                continue;
            };
            mixes.extend(normalize_frames(
                container.field_mut("stacktrace"),
                platform,
                enhancements,
                &exception,
            ));
            let raw = container.field_mut("raw_stacktrace");
            mixes.extend(normalize_frames(raw, platform, enhancements, &ExceptionData::default()));
        }
    }
    mixes.extend(normalize_frames(
        data.field_mut("stacktrace"),
        platform,
        enhancements,
        &ExceptionData::default(),
    ));
    if mixes.is_empty() {
        return;
    }
    let mix = if mixes.iter().all(|m| *m == "in-app-only") {
        "in-app-only"
    } else if mixes.iter().all(|m| *m == "system-only") {
        "system-only"
    } else {
        "mixed"
    };
    let metadata = data.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    if !metadata.is_object() {
        *metadata = Value::Object(Map::new());
    }
    if let Some(metadata) = metadata.as_object_mut() {
        metadata.insert("in_app_frame_mix".to_owned(), Value::String(mix.to_owned()));
    }
}

/// Normalizes one stack trace's frames; returns its in-app mix when it has frames.
fn normalize_frames(
    stacktrace: Option<&mut Value>,
    platform: Option<&str>,
    enhancements: &Enhancements,
    exception: &ExceptionData,
) -> Option<&'static str> {
    let frames = stacktrace?.field_mut("frames")?.as_array_mut()?;
    if !frames.iter().any(Value::is_object) {
        return None;
    }
    for frame in frames.iter_mut().filter_map(Value::as_object_mut) {
        trim_frame_function(frame, platform);
        // A stack trace normalized before keeps its original `in_app` for the rules to start from.
        let orig = frame.field("data").and_then(|d| d.field("orig_in_app")).and_then(Value::as_i64);
        if let Some(orig) = orig {
            frame.insert("in_app".to_owned(), if orig == -1 { Value::Null } else { Value::Bool(orig != 0) });
        }
        if platform == Some("javascript") {
            strip_filename_query(frame);
        }
    }
    enhancements.apply_modifications(frames, platform, exception);
    let (mut has_in_app, mut has_system) = (false, false);
    for frame in frames.iter_mut().filter_map(Value::as_object_mut) {
        match frame.field("in_app") {
            Some(Value::Bool(true)) => has_in_app = true,
            None | Some(Value::Null) => {
                set_in_app(frame, false);
                has_system = true;
            }
            Some(_) => has_system = true,
        }
    }
    match (has_in_app, has_system) {
        (false, false) => None,
        (true, true) => Some("mixed"),
        (true, false) => Some("in-app-only"),
        (false, true) => Some("system-only"),
    }
}

/// `_trim_function_name`: the trimmed name replaces `function` (the original moves to
/// `raw_function`) when trimming changes it and no raw name was recorded yet.
fn trim_frame_function(frame: &mut Map<String, Value>, platform: Option<&str>) {
    if frame.field("raw_function").is_some_and(|r| !r.is_null()) {
        return;
    }
    let Some(function) = frame.field("function").and_then(Value::as_str).filter(|f| !f.is_empty()) else {
        return;
    };
    let frame_platform = frame.field("platform").and_then(Value::as_str).or(platform);
    if frame_platform != Some("csharp") && !super::functions::is_native_platform(frame_platform) {
        return; // only native and C# names are trimmed
    }
    let trimmed = trim_function_name(function, frame_platform);
    if trimmed != function {
        let raw = function.to_owned();
        frame.insert("raw_function".to_owned(), Value::String(raw));
        frame.insert("function".to_owned(), Value::String(trimmed));
    }
}

/// JavaScript: `frame["filename"].replace(f"?{query}", "")` when the file name has a query string.
fn strip_filename_query(frame: &mut Map<String, Value>) {
    let Some(filename) = frame.field("filename").and_then(Value::as_str) else {
        return;
    };
    let query = urlsplit(filename).query;
    if query.is_empty() {
        return;
    }
    let stripped = filename.replace(&format!("?{query}"), "");
    frame.insert("filename".to_owned(), Value::String(stripped));
}

/// The fingerprint of the event as a list of strings (numbers and booleans stringified as Relay
/// does; other entries skipped).
fn fingerprint_of(event: &Value) -> Vec<String> {
    get_path(event, &["fingerprint"])
        .and_then(Value::as_array)
        .map(|entries| {
            entries.iter().filter(|v| !v.is_null()).map(|v| super::compat::py_str(v).into_owned()).collect()
        })
        .unwrap_or_default()
}

fn event_type(event: &Value) -> &str {
    str_at(event, &["type"]).unwrap_or("default")
}

/// Computes the grouping hashes of `event` (see the module docs) and writes `fingerprint`,
/// `hashes`, `metadata.in_app_frame_mix`, `_fingerprint_info` and `main_exception_id` into it as
/// Sentry does. Transactions and generic events are left untouched and get no hashes.
pub fn calculate_hashes(event: &mut Value) -> Hashes {
    calculate_hashes_with(event, GroupingConfig::builtin())
}

/// [`calculate_hashes`] with a project's grouping configuration: its stack-trace rules (after the
/// built-in ones) and its server-side fingerprinting rules, applied as Sentry's save step does —
/// stack traces normalized first, then the fingerprinting rules, then the hashes.
pub fn calculate_hashes_with(event: &mut Value, config: &GroupingConfig) -> Hashes {
    if matches!(event_type(event), "transaction" | "generic") || !event.is_object() {
        return Hashes::default();
    }
    let enhancements = config.enhancements.as_ref();
    normalize_stacktraces_for_grouping(event, enhancements);

    let mut fingerprint = fingerprint_of(event);
    if fingerprint.is_empty() {
        fingerprint = vec![DEFAULT_FINGERPRINT_VARIABLE.to_owned()];
    }
    if let Some(data) = event.as_object_mut() {
        data.insert("fingerprint".to_owned(), json!(fingerprint));
    }
    // Records the client's fingerprint in `_fingerprint_info` and applies the first matching rule.
    apply_server_fingerprinting(event, &config.fingerprinting);
    let fingerprint = fingerprint_of(event);
    let fingerprint_type = match fingerprint.as_slice() {
        [only] if is_default_fingerprint_var(only) => FingerprintType::Default,
        entries if entries.iter().any(|e| is_default_fingerprint_var(e)) => FingerprintType::Hybrid,
        _ => FingerprintType::Custom,
    };

    let result = compute_variants(event, &fingerprint, fingerprint_type, enhancements);
    if let Some(data) = event.as_object_mut() {
        data.insert("hashes".to_owned(), json!(result.hashes));
    }
    result
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FingerprintType {
    Default,
    Hybrid,
    Custom,
}

/// `get_grouping_variants_for_event` + `get_hashes_and_variants`; may write `main_exception_id`.
fn compute_variants(
    event: &mut Value,
    fingerprint: &[String],
    fingerprint_type: FingerprintType,
    enhancements: &Enhancements,
) -> Hashes {
    if let Some(checksum) = get_path(event, &["checksum"]).filter(|c| super::compat::is_truthy(c)) {
        let checksum = super::compat::py_str(checksum);
        let is_hash = checksum.len() == 32
            && checksum.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let (hash, name) = if is_hash {
            (checksum.into_owned(), "checksum")
        } else {
            (hash_from_values([checksum.as_ref()]), "hashed_checksum")
        };
        return Hashes {
            hashes: vec![hash.clone()],
            contributing_variant: name.to_owned(),
            variants: vec![(name.to_owned(), Some(hash))],
        };
    }

    let resolved = match fingerprint_type {
        FingerprintType::Default => Vec::new(),
        _ => resolve_fingerprint_values(fingerprint, event),
    };
    let strategy = variants_from_strategies(event, enhancements);
    if let (Some(id), Some(data)) = (strategy.main_exception_id, event.as_object_mut()) {
        data.insert("main_exception_id".to_owned(), json!(id));
    }

    // (name, hash) in variant order.
    let mut variants: Vec<(&'static str, Option<String>)> = strategy
        .variants
        .iter()
        .map(|(name, root)| {
            let hash = match fingerprint_type {
                FingerprintType::Default => root.hash(),
                FingerprintType::Custom => None,
                FingerprintType::Hybrid => root.contributes.then(|| {
                    let mut hasher = Md5::new();
                    for entry in &resolved {
                        if is_default_fingerprint_var(entry) {
                            root.for_each_value(&mut |v| hasher.update(v.as_bytes()));
                        } else {
                            hasher.update(entry.as_bytes());
                        }
                    }
                    hex::encode(hasher.finalize())
                }),
            };
            (*name, hash)
        })
        .collect();
    if fingerprint_type == FingerprintType::Custom {
        variants.push(("custom_fingerprint", Some(hash_from_values(&resolved))));
    }
    if variants.iter().all(|(_, hash)| hash.is_none()) {
        variants.push(("fallback", Some(hash_from_values::<[&str; 0], &str>([]))));
    }
    // Stable sort: the system variant last.
    variants.sort_by_key(|(name, _)| *name == "system");
    let contributing = variants.iter().find(|(_, h)| h.is_some()).map_or("", |(name, _)| *name).to_owned();
    let hashes = variants.iter().filter_map(|(_, hash)| hash.clone()).collect();
    let variants = variants.into_iter().map(|(name, hash)| (name.to_owned(), hash)).collect();
    Hashes { hashes, contributing_variant: contributing, variants }
}
