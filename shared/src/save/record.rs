//! The eventstream record of a saved event (spec §7), as Sentry's `KafkaEventStream.insert`
//! produces it, for a Kinesis `PutRecord`.
//!
//! [`insert_message`] builds the record data, byte-compatible with Sentry's Kafka value for the
//! fields it controls: a compact JSON array `[2, "insert", payload1, payload2]` written like
//! `sentry.utils.json.dumps` (simplejson, separators `,`/`:`, `ensure_ascii`, floats as Python
//! `repr`, NaN/Infinity as `null`; written by `save::pyjson`). `payload1` keeps Sentry's
//! field order; its `data` is the event without `debug_meta` and `_meta` (written straight from the
//! borrowed event, no copy, or from an event given up to it and freed as it is written; issue
//! platform events get one copy to add `contexts.geo`). Object keys inside `data` are written in the
//! event's own order (as parsed, normalized and grouped here), which need not be the order Sentry's
//! Python objects have — consumers parse JSON, so this is not a semantic change.
//!
//! [`partition_key`] is the event id for every kind (see there for why not the project id).
//!
//! Kinesis records have no headers. [`record_headers`] returns what Sentry puts into the Kafka
//! headers (the `eventstream:kafka-headers` set, then `operation` and `version`) for a wrapper that
//! needs them, e.g. to route without parsing the JSON.

use serde_json::{Map, Value};

use crate::grouping::compat::{python_float_repr, str_at};
use crate::grouping::metadata::search_message;
use crate::save::pyjson::PyJson;
use crate::tree::Fields;

/// `EVENT_PROTOCOL_VERSION`.
pub const EVENT_PROTOCOL_VERSION: u8 = 2;

/// Keys removed from the event before it goes onto the stream (`EVENTSTREAM_PRUNED_KEYS`).
pub const EVENTSTREAM_PRUNED_KEYS: [&str; 2] = ["debug_meta", "_meta"];

/// Tag keys that should have been renamed to `sentry:*` before the stream (`UNEXPECTED_TAG_KEYS`).
pub const UNEXPECTED_TAG_KEYS: [&str; 3] = ["dist", "release", "user"];

/// Which stream (Sentry topic) and post-process queue an event goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamKind {
    /// Errors, default and security events: topic `events`, queue `post_process_errors`.
    Error,
    /// Topic `transactions`, queue `post_process_transactions`.
    Transaction,
    /// Issue-platform events (with an occurrence): topic `generic-events`, queue
    /// `post_process_issue_platform`.
    Generic,
}

impl StreamKind {
    /// `_get_event_type`: an occurrence makes it generic, else the event's `type` decides.
    pub fn of(event_type: &str, has_occurrence: bool) -> Self {
        if has_occurrence || event_type == "generic" {
            Self::Generic
        } else if event_type == "transaction" {
            Self::Transaction
        } else {
            Self::Error
        }
    }

    /// `_get_queue_for_post_process`.
    pub fn queue(self) -> &'static str {
        match self {
            Self::Error => "post_process_errors",
            Self::Transaction => "post_process_transactions",
            Self::Generic => "post_process_issue_platform",
        }
    }

    /// Sentry's Kafka topic for the kind.
    pub fn topic(self) -> &'static str {
        match self {
            Self::Error => "events",
            Self::Transaction => "transactions",
            Self::Generic => "generic-events",
        }
    }
}

/// One entry of `group_states`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupState {
    pub id: u64,
    pub is_new: bool,
    pub is_regression: bool,
    pub is_new_group_environment: bool,
}

/// Everything [`insert_message`] needs besides what it reads from the event.
#[derive(Clone, Debug)]
pub struct InsertParams<'a> {
    /// The saved event (normalized, tags applied, metadata materialized, hashes written).
    pub event: &'a Value,
    pub organization_id: u64,
    pub project_id: u64,
    /// The groups the event was assigned to, primary first; empty for transactions. `group_id`,
    /// `group_ids`, the top-level `is_new` / `is_regression` / `is_new_group_environment` and
    /// `group_states` (`null` when empty) come from here.
    pub groups: &'a [GroupState],
    /// `None` for transactions; `hashes[0]` for errors ([`primary_hash`]); the first occurrence
    /// fingerprint for issue-platform events.
    pub primary_hash: Option<&'a str>,
    /// `data["received"]` (or the event time) — used for the `Received-Timestamp` header.
    pub received_timestamp: f64,
    /// Sentry's `raw` flag (`skip_consume`).
    pub skip_consume: bool,
    /// `quotas.get_event_retention(organization)`, 90 by default.
    pub retention_days: u32,
    /// The issue occurrence for issue-platform events (its dict; `evidence_data` and
    /// `evidence_display` are left out of `occurrence_data`).
    pub occurrence: Option<&'a Value>,
    /// The event's `search_message` when the caller has it already (save computed it for the
    /// group from the same event); `None` computes it here.
    pub search_message: Option<&'a str>,
}

impl InsertParams<'_> {
    fn kind(&self) -> StreamKind {
        StreamKind::of(str_at(self.event, &["type"]).unwrap_or("default"), self.occurrence.is_some())
    }

    fn first_group(&self) -> GroupState {
        first_group(self.groups)
    }
}

/// The first group's state (all `false` without a group).
fn first_group(groups: &[GroupState]) -> GroupState {
    groups.first().copied().unwrap_or(GroupState {
        id: 0,
        is_new: false,
        is_regression: false,
        is_new_group_environment: false,
    })
}

/// `event.get_primary_hash()` for the eventstream: `hashes[0]`, none for transactions.
pub fn primary_hash(event: &Value) -> Option<&str> {
    if str_at(event, &["type"]) == Some("transaction") {
        return None;
    }
    event.field("hashes").and_then(Value::as_array).and_then(|h| h.first()).and_then(Value::as_str)
}

/// The Kinesis partition key: the event id, for every kind of event.
///
/// Sentry keys errors by project id on Kafka (whose partitions absorb a project's storm) and keeps a
/// switch to send them to random partitions. A Kinesis shard takes 1,000 records/s and 1 MiB/s, so a
/// key that one project's (or one group's) storm shares would cap that project near 170 events/s; the
/// event id spreads any storm evenly over all shards. What consumers lose is per-project order of
/// error records; Sentry's consumers do not need it (Snuba inserts rows keyed by event id and
/// timestamp, post-processing de-duplicates on (project, event id)). Copies of one event id (a
/// re-published record) land on the same shard, in order, which the aggregation relies on.
pub fn partition_key(event_id: &str) -> String {
    event_id.to_owned()
}

/// Tag keys of the event that Sentry logs as unexpected before producing (`dist`, `release`,
/// `user` not renamed to `sentry:*`).
pub fn unexpected_tags(event: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = event
        .field("tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|pair| pair.as_array().and_then(|p| p.first()).and_then(Value::as_str))
        .filter(|key| UNEXPECTED_TAG_KEYS.contains(key))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// `event.datetime` formatted by `json.datetime_to_str` (`%Y-%m-%dT%H:%M:%S.%fZ`): the event
/// `timestamp` (float seconds, UTC), rounded to microseconds half-to-even like
/// `datetime.fromtimestamp`.
pub fn event_datetime(event: &Value) -> String {
    let timestamp = event.field("timestamp").and_then(Value::as_f64).unwrap_or(0.0);
    format_datetime(timestamp)
}

fn format_datetime(timestamp: f64) -> String {
    let mut seconds = timestamp.floor();
    let mut micros = ((timestamp - seconds) * 1e6).round_ties_even();
    if micros >= 1e6 {
        seconds += 1.0;
        micros -= 1e6;
    }
    // Saturating casts: out-of-range timestamps end up at the epoch rather than panicking.
    let dt = chrono::DateTime::from_timestamp(seconds as i64, (micros as u32) * 1000).unwrap_or_default();
    dt.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// `augment_message_with_occurrence`: an issue-platform event's search message also carries the
/// occurrence's `issue_title`, `subtitle` and `culprit` (when not already contained).
fn augment_message_with_occurrence(mut message: String, occurrence: &Map<String, Value>) -> String {
    for attr in ["issue_title", "subtitle", "culprit"] {
        if let Some(value) = occurrence.field(attr).and_then(Value::as_str).filter(|v| !v.is_empty())
            && !message.contains(value)
        {
            message.push(' ');
            message.push_str(value);
        }
    }
    message
}

/// Issue-platform events: `contexts.geo` set from `user.geo` when absent (setdefault semantics).
fn add_geo_context(event: &mut Map<String, Value>) {
    let geo = event.field("user").and_then(|u| u.field("geo")).cloned();
    let geo = match geo {
        None => Some(Value::Object(Map::new())),
        Some(v @ Value::Object(_)) => Some(v),
        Some(_) => None,
    };
    let contexts = event.entry("contexts").or_insert_with(|| Value::Object(Map::new()));
    if let (Some(contexts), Some(geo)) = (contexts.as_object_mut(), geo) {
        contexts.entry("geo").or_insert(geo);
    }
}

/// Everything of a record but the event's data: read from [`InsertParams`] (the event included) so
/// that the event can then be given up to [`insert_message_taking`].
#[derive(Debug)]
pub struct RecordHead {
    kind: StreamKind,
    event_id: String,
    organization_id: u64,
    project_id: u64,
    message: String,
    platform: Option<Value>,
    datetime: String,
    primary_hash: Option<String>,
    retention_days: u32,
    occurrence_id: Option<Value>,
    occurrence_data: Option<Map<String, Value>>,
    skip_consume: bool,
    groups: Vec<GroupState>,
}

impl RecordHead {
    pub fn of(params: &InsertParams<'_>) -> Self {
        let occurrence = params.occurrence.and_then(Value::as_object);
        let message = params.search_message.map_or_else(|| search_message(params.event), str::to_owned);
        Self {
            kind: params.kind(),
            event_id: str_at(params.event, &["event_id"]).unwrap_or("").to_owned(),
            organization_id: params.organization_id,
            project_id: params.project_id,
            message: match occurrence {
                Some(o) => augment_message_with_occurrence(message, o),
                None => message,
            },
            platform: params.event.field("platform").cloned(),
            datetime: event_datetime(params.event),
            primary_hash: params.primary_hash.map(str::to_owned),
            retention_days: params.retention_days,
            occurrence_id: occurrence.and_then(|o| o.field("id")).cloned(),
            occurrence_data: occurrence.map(|o| {
                o.iter()
                    .filter(|(key, _)| *key != "evidence_data" && *key != "evidence_display")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            }),
            skip_consume: params.skip_consume,
            groups: params.groups.to_vec(),
        }
    }

    /// The record: `[2, "insert", payload1, payload2]`, `payload1` in Sentry's field order.
    fn write(self, data: StreamData<'_>) -> Vec<u8> {
        let mut w = PyJson::with_capacity(4096);
        w.raw(b"[");
        w.u64(EVENT_PROTOCOL_VERSION.into());
        w.raw(b",");
        w.str("insert");
        w.raw(b",");
        let mut p = w.object();
        match self.groups.first() {
            Some(group) => p.key("group_id").u64(group.id),
            None => p.key("group_id").null(),
        }
        p.key("group_ids").array(&self.groups, |w, group| w.u64(group.id));
        p.key("event_id").str(&self.event_id);
        p.key("organization_id").u64(self.organization_id);
        p.key("project_id").u64(self.project_id);
        p.key("message").str(&self.message);
        p.key("platform").value(self.platform.as_ref().unwrap_or(&Value::Null));
        p.key("datetime").str(&self.datetime);
        let kept = |key: &str| !EVENTSTREAM_PRUNED_KEYS.contains(&key);
        let mut data_object = p.key("data").object();
        match data {
            StreamData::Borrowed(event) => {
                for (key, value) in event.iter().filter(|(key, _)| kept(key)) {
                    data_object.key(key).value(value);
                }
            }
            StreamData::Owned(event) => {
                for (key, value) in event {
                    if kept(&key) {
                        data_object.key(&key).value_taken(value);
                    }
                }
            }
        }
        data_object.end();
        match &self.primary_hash {
            Some(hash) => p.key("primary_hash").str(hash),
            None => p.key("primary_hash").null(),
        }
        p.key("retention_days").u64(self.retention_days.into());
        p.key("occurrence_id").value(self.occurrence_id.as_ref().unwrap_or(&Value::Null));
        match &self.occurrence_data {
            Some(occurrence) => p.key("occurrence_data").map(occurrence),
            None => p.key("occurrence_data").object().end(),
        }
        p.end();
        w.raw(b",");
        let group = first_group(&self.groups);
        let mut p = w.object();
        p.key("is_new").bool(group.is_new);
        p.key("is_regression").bool(group.is_regression);
        p.key("is_new_group_environment").bool(group.is_new_group_environment);
        p.key("queue").str(self.kind.queue());
        p.key("skip_consume").bool(self.skip_consume);
        if self.groups.is_empty() {
            p.key("group_states").null();
        } else {
            group_states(p.key("group_states"), &self.groups);
        }
        p.end();
        w.raw(b"]");
        w.into_bytes()
    }
}

/// `group_states`: each group's id and flags.
fn group_states(w: &mut PyJson, groups: &[GroupState]) {
    w.array(groups, |w, group| {
        let mut state = w.object();
        state.key("id").u64(group.id);
        state.key("is_new").bool(group.is_new);
        state.key("is_regression").bool(group.is_regression);
        state.key("is_new_group_environment").bool(group.is_new_group_environment);
        state.end();
    });
}

/// The event's data: borrowed and written without copying, or owned and freed part by part as it is
/// written.
enum StreamData<'a> {
    Borrowed(&'a Map<String, Value>),
    Owned(Map<String, Value>),
}

/// The eventstream record data: `[2, "insert", payload1, payload2]` (see the module docs).
pub fn insert_message(params: &InsertParams<'_>) -> Vec<u8> {
    let head = RecordHead::of(params);
    let empty = Map::new();
    let event_map = params.event.as_object().unwrap_or(&empty);
    // Issue-platform events copy `user.geo` to `contexts.geo`, which needs one owned copy of the
    // event; everything else is written from the borrowed event.
    if head.kind == StreamKind::Generic {
        let mut copy = event_map.clone();
        add_geo_context(&mut copy);
        return head.write(StreamData::Borrowed(&copy));
    }
    head.write(StreamData::Borrowed(event_map))
}

/// The same record as [`insert_message`] from an event given up to it: every part of the event is
/// freed as soon as it is written, so the request's peak is the larger of the tree and the record,
/// not their sum (the save path's; a large event's record is its size again). `head` was read from
/// the event ([`RecordHead::of`]) before it was taken.
pub fn insert_message_taking(head: RecordHead, event: Value) -> Vec<u8> {
    let mut map = match event {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    if head.kind == StreamKind::Generic {
        add_geo_context(&mut map);
    }
    head.write(StreamData::Owned(map))
}

/// The Kafka headers Sentry sends with the record (option `eventstream:kafka-headers` on): values are
/// strings, `None`s left out, booleans as `"0"`/`"1"`, then `operation` and `version`. Kinesis has
/// no headers; this is what a wrapper envelope would carry.
pub fn record_headers(params: &InsertParams<'_>) -> Vec<(String, String)> {
    let group = params.first_group();
    let bool01 = |b: bool| if b { "1" } else { "0" }.to_owned();
    let mut headers: Vec<(String, String)> = Vec::with_capacity(14);
    let mut push = |key: &str, value: String| headers.push((key.to_owned(), value));
    push("Received-Timestamp", python_float_repr(params.received_timestamp));
    push("event_id", str_at(params.event, &["event_id"]).unwrap_or("").to_owned());
    push("project_id", params.project_id.to_string());
    if let Some(id) = params.occurrence.and_then(|o| o.field("id")).filter(|id| !id.is_null()) {
        push("occurrence_id", crate::grouping::compat::py_str(id).into_owned());
    }
    if let Some(group_id) = params.groups.first().map(|g| g.id) {
        push("group_id", group_id.to_string());
    }
    if let Some(primary_hash) = params.primary_hash {
        push("primary_hash", primary_hash.to_owned());
    }
    push("is_new", bool01(group.is_new));
    push("is_new_group_environment", bool01(group.is_new_group_environment));
    push("is_regression", bool01(group.is_regression));
    push("skip_consume", bool01(params.skip_consume));
    if !params.groups.is_empty() {
        let mut encoded = PyJson::with_capacity(128);
        group_states(&mut encoded, params.groups);
        // The writer writes ASCII only.
        push("group_states", String::from_utf8(encoded.into_bytes()).unwrap_or_default());
    }
    push("queue", params.kind().queue().to_owned());
    push("operation", "insert".to_owned());
    push("version", EVENT_PROTOCOL_VERSION.to_string());
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_has_six_fraction_digits() {
        assert_eq!(format_datetime(1717243200.0), "2024-06-01T12:00:00.000000Z");
        assert_eq!(format_datetime(1795677132.808546), "2026-11-26T07:12:12.808546Z");
        assert_eq!(format_datetime(1.9999999), "1970-01-01T00:00:02.000000Z");
    }

    #[test]
    fn partition_keys() {
        // Every kind: the event id, never the project id (a project's storm must not share a shard).
        assert_eq!(partition_key("abc"), "abc");
    }
}
