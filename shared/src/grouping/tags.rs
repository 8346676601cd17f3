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
//! Not ported here: plugin tag derivers and interface tags (`_derive_interface_tags_many`, e.g.
//! `mechanism`, `handled`, `runtime`, `os.name`, `url`).

use std::net::IpAddr;

use serde_json::Value;

use super::compat::{py_str, str_at, truncatechars, truthy_str_at};

/// `MAX_TAG_VALUE_LENGTH`.
pub const MAX_TAG_VALUE_LENGTH: usize = 200;

fn pair_key(pair: &Value) -> Option<&str> {
    pair.as_array().and_then(|p| p.first()).and_then(Value::as_str)
}

/// The value of the first tag pair with `key` (`None` when absent or when that pair's value is
/// `null`).
pub fn get_tag<'a>(event: &'a Value, key: &str) -> Option<&'a str> {
    let tags = event.get("tags")?.as_array()?;
    let pair = tags
        .iter()
        .filter_map(Value::as_array)
        .find(|pair| pair.len() == 2 && pair[0].as_str() == Some(key))?;
    pair[1].as_str()
}

/// Removes every tag pair with `key` (entries that are not pairs are kept).
pub fn pop_tag(event: &mut Value, key: &str) {
    if let Some(tags) = event.get_mut("tags").and_then(Value::as_array_mut) {
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
    let user = event.get("user").filter(|u| u.as_object().is_some_and(|o| !o.is_empty()))?;
    let field = |key: &str| user.get(key).filter(|v| !v.is_null()).map(|v| py_str(v).into_owned());
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
}
