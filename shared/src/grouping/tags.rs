//! Event tags as the save step writes them (spec §4.1, §5.1, §5.8).
//!
//! After Relay, `tags` is a list of `[key, value]` pairs. Sentry's save step then duplicates a few
//! attributes into tags and renames the ones that would clash with its own: [`apply_save_tags`]
//! does that in Sentry's order — `level`, `logger`, `environment`, `transaction`
//! (`_pull_out_data`), `sentry:release` and `sentry:dist` (`_get_or_create_release_many`, replacing
//! `release` / `dist`), `sentry:user` (`_get_event_user_many`, replacing `user`).
//!
//! [`set_tag`] removes every pair with the key and appends the new pair with the value trimmed to
//! [`MAX_TAG_VALUE_LENGTH`] characters (`truncatechars`: 197 characters and `...`).
//!
//! The event user ([`EventUser`], Sentry's `utils/eventuser.py`) is not persisted; its
//! [`EventUser::tag_value`] is the first of `id:`, `username:`, `email:`, `ip:` that is set, where the
//! IP only counts when it parses as an IPv4/IPv6 address (`test_event_user_invalid_ip`).
//!
//! Then, in the same step and order as Sentry's `save` (for errors, default events and transactions):
//! * `_derive_plugin_tags_many` — of the default plugins only `sentry_urls` adds a tag once the event
//!   has contexts (the user-agent plugins return nothing then, and Relay always leaves a trace
//!   context): `url` = `request.url` (`truncatechars` to 200), unless a `url` tag exists;
//! * `_derive_interface_tags_many` — interfaces by score, so the exception's before the contexts':
//!   the **last** exception's mechanism gives `mechanism` (its type) and `handled` (`yes`/`no`);
//!   each context (in Relay's order: sorted by alias) gives the tags of its type's
//!   `context_to_tag_mapping` under its alias — `runtime`/`browser`/`os` = `"{name} {version}"`,
//!   `{alias}.name`, `os.rooted`; `device` = model, `device.family`; `app.device` =
//!   `device_app_hash`; `gpu.name`, `gpu.vendor`; `monitor.id`, `monitor.slug`. A field that is
//!   missing or `null` skips that tag, booleans are `yes`/`no`, and an empty result is skipped. These
//!   overwrite (move to the end) a tag the client sent with the same key.
//!
//! Sources: `src/sentry/event_manager.py` (`set_tag`, `_derive_plugin_tags_many`,
//! `_derive_interface_tags_many`), `src/sentry/interfaces/contexts.py` (`ContextType.iter_tags`,
//! `format_index_expr`), `src/sentry/interfaces/exception.py` (`Exception.iter_tags`,
//! `Mechanism.iter_tags`), `src/sentry_plugins`' `UrlsPlugin`.

use std::net::IpAddr;

use serde_json::Value;

use super::compat::{py_str, py_strip, str_at, truncatechars, truthy_str_at};
use crate::tree::Fields;

/// `MAX_TAG_VALUE_LENGTH`.
pub const MAX_TAG_VALUE_LENGTH: usize = 200;

fn pair_key(pair: &Value) -> Option<&str> {
    pair.as_array().and_then(|p| p.first()).and_then(Value::as_str)
}

/// The value of the first tag pair with `key` (`None` when absent or when that pair's value is
/// `null`).
pub fn get_tag<'a>(event: &'a Value, key: &str) -> Option<&'a str> {
    let tags = event.field("tags")?.as_array()?;
    let pair = tags
        .iter()
        .filter_map(Value::as_array)
        .find(|pair| pair.len() == 2 && pair[0].as_str() == Some(key))?;
    pair[1].as_str()
}

/// Removes every tag pair with `key` (entries that are not pairs are kept).
pub fn pop_tag(event: &mut Value, key: &str) {
    if let Some(tags) = event.field_mut("tags").and_then(Value::as_array_mut) {
        tags.retain(|pair| pair_key(pair) != Some(key));
    }
}

/// Removes every pair with `key` and appends `[key, value]`, the value trimmed to 200 characters.
/// Creates `tags` when it is missing or not a list.
pub fn set_tag(event: &mut Value, key: &str, value: &str) {
    let Some(data) = event.as_object_mut() else {
        return;
    };
    let tags = data.entry("tags").or_insert_with(|| Value::Array(Vec::new()));
    if !tags.is_array() {
        *tags = Value::Array(Vec::new());
    }
    if let Some(tags) = tags.as_array_mut() {
        tags.retain(|pair| pair_key(pair) != Some(key));
        let value = truncatechars(value, MAX_TAG_VALUE_LENGTH).into_owned();
        tags.push(Value::Array(vec![Value::String(key.to_owned()), Value::String(value)]));
    }
}

/// Sentry's `EventUser`, built from the event's `user` interface.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventUser {
    pub id: Option<String>,
    pub username: Option<String>,
    pub email: Option<String>,
    /// Only a valid IPv4/IPv6 address; anything else (`"[ip]"`, `"{{auto}}"`) is dropped.
    pub ip_address: Option<String>,
    pub name: Option<String>,
}

impl EventUser {
    /// `tag_value`: `id:<id>`, else `username:<username>`, else `email:<email>`, else `ip:<ip>`.
    pub fn tag_value(&self) -> Option<String> {
        [("id", &self.id), ("username", &self.username), ("email", &self.email), ("ip", &self.ip_address)]
            .into_iter()
            .find_map(|(prefix, value)| {
                value.as_deref().filter(|v| !v.is_empty()).map(|v| format!("{prefix}:{v}"))
            })
    }
}

/// `_get_event_user`: `None` when the event has no (or an empty) `user`.
pub fn event_user(event: &Value) -> Option<EventUser> {
    let user = event.field("user").filter(|u| u.as_object().is_some_and(|o| !o.is_empty()))?;
    let field = |key: &str| user.field(key).filter(|v| !v.is_null()).map(|v| py_str(v).into_owned());
    let ip_address = field("ip_address").filter(|ip| ip.parse::<IpAddr>().is_ok());
    Some(EventUser {
        id: field("id"),
        username: field("username"),
        email: field("email"),
        ip_address,
        name: field("name"),
    })
}

/// The tag changes of Sentry's save step, in its order (see the module docs).
///
/// `release_version` is the version of the Release row the event was attached to (it can differ
/// from the event's `release`, e.g. `foo-1.0` for release `1.0` in project `foo`), `None` when the
/// event has no release or none was created. `dist` is the Distribution name; it is only applied
/// together with a release, as in Sentry.
pub fn apply_save_tags(event: &mut Value, release_version: Option<&str>, dist: Option<&str>) {
    let mut attributes: Vec<(&str, String)> = Vec::with_capacity(4);
    if let Some(level) = str_at(event, &["level"]) {
        attributes.push(("level", level.to_owned()));
    }
    for key in ["logger", "environment", "transaction"] {
        if let Some(value) = truthy_str_at(event, &[key]) {
            attributes.push((key, value.to_owned()));
        }
    }
    for (tag, value) in attributes {
        set_tag(event, tag, &value);
    }
    if let Some(version) = release_version {
        pop_tag(event, "release");
        set_tag(event, "sentry:release", version);
        if let Some(dist) = dist.filter(|d| !d.is_empty()) {
            pop_tag(event, "dist");
            set_tag(event, "sentry:dist", dist);
        }
    }
    if let Some(user) = event_user(event) {
        pop_tag(event, "user");
        pop_tag(event, "sentry:user");
        if let Some(tag_value) = user.tag_value() {
            set_tag(event, "sentry:user", &tag_value);
        }
    }
    derive_plugin_tags(event);
    for (key, value) in interface_tags(event) {
        match value {
            Some(value) => set_tag(event, &key, &value),
            None => pop_tag(event, &key),
        }
    }
}

/// `_derive_plugin_tags_many` with Sentry's default plugins (see the module docs): `url`.
fn derive_plugin_tags(event: &mut Value) {
    if get_tag(event, "url").is_some() {
        return;
    }
    if let Some(url) = truthy_str_at(event, &["request", "url"]) {
        let value = truncatechars(url, MAX_TAG_VALUE_LENGTH).into_owned();
        set_tag(event, "url", &value);
    }
}

/// The `(key, value)` pairs of `_derive_interface_tags_many`, in order; `None` removes the key (a
/// mechanism without a type).
pub fn interface_tags(event: &Value) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    // Exception (score 2000): the last exception's mechanism.
    let last = event
        .field("exception")
        .and_then(|e| e.field("values"))
        .and_then(Value::as_array)
        .and_then(|v| v.last());
    if let Some(mechanism) =
        last.and_then(|e| e.field("mechanism")).and_then(Value::as_object).filter(|m| !m.is_empty())
    {
        out.push((
            "mechanism".to_owned(),
            mechanism.field("type").and_then(Value::as_str).map(str::to_owned),
        ));
        if let Some(handled) = mechanism.field("handled").and_then(Value::as_bool) {
            out.push(("handled".to_owned(), Some(if handled { "yes" } else { "no" }.to_owned())));
        }
    }
    // Contexts (score 800), by alias as Relay orders them.
    if let Some(contexts) = event.field("contexts").and_then(Value::as_object) {
        let mut aliases: Vec<&String> = contexts.keys().collect();
        aliases.sort();
        for alias in aliases {
            let Some(ctx) = contexts[alias].as_object() else { continue };
            let ty = ctx.field("type").and_then(Value::as_str).unwrap_or(alias);
            for (field, format) in context_tag_mapping(ty) {
                let Some(value) = format_context(format, ctx) else { continue };
                let key = if field.is_empty() { alias.clone() } else { format!("{alias}.{field}") };
                out.push((key, Some(value)));
            }
        }
    }
    out
}

/// `context_to_tag_mapping` of each `ContextType`: (tag suffix, format of context fields).
fn context_tag_mapping(ty: &str) -> &'static [(&'static str, &'static [&'static str])] {
    match ty {
        "app" => &[("device", &["device_app_hash"])],
        "device" => &[("", &["model"]), ("family", &["family"])],
        "runtime" | "browser" => &[("", &["name", "version"]), ("name", &["name"])],
        "os" => &[("", &["name", "version"]), ("name", &["name"]), ("rooted", &["rooted"])],
        "gpu" => &[("name", &["name"]), ("vendor", &["vendor_name"])],
        "monitor" => &[("id", &["id"]), ("slug", &["slug"])],
        _ => &[],
    }
}

/// `format_index_expr("{a} {b}", data)`: the fields joined by a space, stripped; `None` when a field
/// is missing or `null` (Sentry's `KeyError`) or the result is empty. Booleans are `yes`/`no`.
fn format_context(fields: &[&str], ctx: &serde_json::Map<String, Value>) -> Option<String> {
    let mut parts = Vec::with_capacity(fields.len());
    for field in fields {
        let part = match ctx.field(field)? {
            Value::Null => return None,
            Value::Bool(b) => if *b { "yes" } else { "no" }.to_owned(),
            other => py_str(other).into_owned(),
        };
        parts.push(part);
    }
    let joined = parts.join(" ");
    let value = py_strip(&joined);
    (!value.is_empty()).then(|| value.to_owned())
}
