//! The eventstream record of a saved event (spec §7), as Sentry's `KafkaEventStream.insert`
//! produces it, for a Kinesis `PutRecord`.
//!
//! [`insert_message`] builds the record data, byte-compatible with Sentry's Kafka value for the
//! fields it controls: a compact JSON array `[2, "insert", payload1, payload2]` written like
//! `sentry.utils.json.dumps` (simplejson, separators `,`/`:`, `ensure_ascii`, floats as Python
//! `repr`, NaN/Infinity as `null`). `payload1` keeps Sentry's field order; its `data` is the event
//! without `debug_meta` and `_meta` (serialized straight from the borrowed event, no copy; issue
//! platform events get one copy to add `contexts.geo`). Object keys inside `data` are written in the
//! event's own order (as parsed, normalized and grouped here), which need not be the order Sentry's
//! Python objects have — consumers parse JSON, so this is not a semantic change.
//!
//! [`partition_key`] is the event id for every kind (see there for why not the project id).
//!
//! Kinesis records have no headers. [`record_headers`] returns what Sentry puts into the Kafka
//! headers (the `eventstream:kafka-headers` set, then `operation` and `version`) for a wrapper that
//! needs them, e.g. to route without parsing the JSON.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Map, Value};

use crate::grouping::compat::{python_float_repr, str_at};
use crate::grouping::metadata::search_message;

/// `EVENT_PROTOCOL_VERSION`.
pub const EVENT_PROTOCOL_VERSION: u8 = 2;

/// Keys removed from the event before it goes onto the stream (`EVENTSTREAM_PRUNED_KEYS`).
pub const EVENTSTREAM_PRUNED_KEYS: [&str; 2] = ["debug_meta", "_meta"];

/// Tag keys that should have been renamed to `sentry:*` before the stream (`UNEXPECTED_TAG_KEYS`).
pub const UNEXPECTED_TAG_KEYS: [&str; 3] = ["dist", "release", "user"];

/// Errors while building a record.
#[derive(Debug, thiserror::Error)]
pub enum EventstreamError {
    #[error("cannot serialize the eventstream record: {0}")]
    Serialize(#[from] serde_json::Error),
}

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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
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
    event.get("hashes").and_then(Value::as_array).and_then(|h| h.first()).and_then(Value::as_str)
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
        .get("tags")
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
    let timestamp = event.get("timestamp").and_then(Value::as_f64).unwrap_or(0.0);
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

/// The event minus the pruned keys: borrowed and serialized without copying, or owned and freed part
/// by part as it is written.
enum StreamData<'a> {
    Borrowed(&'a Map<String, Value>),
    Owned(std::cell::RefCell<Option<Map<String, Value>>>),
}

impl Serialize for StreamData<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let kept = |key: &str| !EVENTSTREAM_PRUNED_KEYS.contains(&key);
        let mut map = serializer.serialize_map(None)?;
        match self {
            Self::Borrowed(event) => {
                for (key, value) in event.iter().filter(|(key, _)| kept(key)) {
                    map.serialize_entry(key, value)?;
                }
            }
            Self::Owned(event) => {
                for (key, value) in event.borrow_mut().take().unwrap_or_default() {
                    if kept(&key) {
                        map.serialize_entry(&key, &Taken::new(value))?;
                    }
                }
            }
        }
        map.end()
    }
}

/// A value serialized once and freed as it goes: each element or entry is dropped right after it
/// is written (the same output as `Value`'s own `Serialize`).
struct Taken(std::cell::RefCell<Option<Value>>);

impl Taken {
    fn new(value: Value) -> Self {
        Self(std::cell::RefCell::new(Some(value)))
    }
}

impl Serialize for Taken {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        match self.0.borrow_mut().take().unwrap_or(Value::Null) {
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&Taken::new(item))?;
                }
                seq.end()
            }
            Value::Object(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    map.serialize_entry(&key, &Taken::new(value))?;
                }
                map.end()
            }
            scalar => scalar.serialize(serializer),
        }
    }
}

/// The occurrence dict without `evidence_data` / `evidence_display` (`{}` when there is none),
/// filtered when the head is read.
struct OccurrenceData<'a>(Option<&'a Map<String, Value>>);

impl Serialize for OccurrenceData<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in self.0.into_iter().flatten() {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct Payload1<'a> {
    group_id: Option<u64>,
    group_ids: Vec<u64>,
    event_id: &'a str,
    organization_id: u64,
    project_id: u64,
    message: String,
    platform: Option<&'a Value>,
    datetime: String,
    data: StreamData<'a>,
    primary_hash: Option<&'a str>,
    retention_days: u32,
    occurrence_id: Option<&'a Value>,
    occurrence_data: OccurrenceData<'a>,
}

#[derive(Serialize)]
struct Payload2<'a> {
    is_new: bool,
    is_regression: bool,
    is_new_group_environment: bool,
    queue: &'static str,
    skip_consume: bool,
    group_states: Option<&'a [GroupState]>,
}

/// A `serde_json` formatter that writes like Sentry's simplejson encoder: compact, every character
/// outside printable ASCII escaped as `\uXXXX` (surrogate pairs above the BMP), floats as Python's
/// `repr`, non-finite floats as `null`. Hand-written because `serde_json` has no `ensure_ascii`.
struct PythonJsonFormatter;

impl serde_json::ser::Formatter for PythonJsonFormatter {
    fn write_f64<W: ?Sized + std::io::Write>(&mut self, writer: &mut W, value: f64) -> std::io::Result<()> {
        if value.is_finite() {
            writer.write_all(python_float_repr(value).as_bytes())
        } else {
            writer.write_all(b"null")
        }
    }

    fn write_f32<W: ?Sized + std::io::Write>(&mut self, writer: &mut W, value: f32) -> std::io::Result<()> {
        self.write_f64(writer, f64::from(value))
    }

    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        // Runs of printable ASCII (nearly everything) are written whole; `i` stays on a character
        // boundary (it moves past ASCII bytes or one whole character).
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let bytes = fragment.as_bytes();
        let mut i = 0;
        loop {
            let run = printable_ascii_run(&bytes[i..]);
            writer.write_all(&bytes[i..i + run])?;
            i += run;
            let Some(c) = fragment[i..].chars().next() else { return Ok(()) };
            let mut units = [0u16; 2];
            for &mut unit in c.encode_utf16(&mut units) {
                let nibble = |shift: u16| HEX[usize::from((unit >> shift) & 0xf)];
                writer.write_all(&[b'\\', b'u', nibble(12), nibble(8), nibble(4), nibble(0)])?;
            }
            i += c.len_utf8();
        }
    }
}

/// How many bytes at the start of `bytes` are printable ASCII (`' '..='~'`), looked at eight at a
/// time: the record's strings are nearly all such bytes. In a little-endian word `w` of eight
/// bytes, a byte below 0x20 sets its high bit in `(w - 0x2020…) & !w`, and a byte of 0x7f or above
/// sets it in `w + 0x0101…` or in `w`. Carries and borrows run only towards later bytes and only
/// out of bytes outside the range, so the first such byte of a word is always flagged; a flagged
/// word is then counted byte by byte.
fn printable_ascii_run(bytes: &[u8]) -> usize {
    const LOW: u64 = u64::from_le_bytes([0x20; 8]);
    const ONE: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
    let mut i = 0;
    for chunk in bytes.chunks_exact(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        if ((w.wrapping_sub(LOW) & !w) | w.wrapping_add(ONE) | w) & HIGH != 0 {
            break;
        }
        i += 8;
    }
    i + bytes[i..].iter().take_while(|b| (b' '..=b'~').contains(*b)).count()
}

/// `augment_message_with_occurrence`: an issue-platform event's search message also carries the
/// occurrence's `issue_title`, `subtitle` and `culprit` (when not already contained).
fn augment_message_with_occurrence(mut message: String, occurrence: &Map<String, Value>) -> String {
    for attr in ["issue_title", "subtitle", "culprit"] {
        if let Some(value) = occurrence.get(attr).and_then(Value::as_str).filter(|v| !v.is_empty())
            && !message.contains(value)
        {
            message.push(' ');
            message.push_str(value);
        }
    }
    message
}

/// The eventstream record data: `[2, "insert", payload1, payload2]` (see the module docs).
pub fn insert_message(params: &InsertParams<'_>) -> Result<Vec<u8>, EventstreamError> {
    let head = RecordHead::of(params);
    let empty = Map::new();
    let event_map = params.event.as_object().unwrap_or(&empty);
    // Issue-platform events copy `user.geo` to `contexts.geo`, which needs one owned copy of the
    // event; everything else serializes from the borrowed event.
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
pub fn insert_message_taking(head: RecordHead, event: Value) -> Result<Vec<u8>, EventstreamError> {
    let mut map = match event {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    if head.kind == StreamKind::Generic {
        add_geo_context(&mut map);
    }
    head.write(StreamData::Owned(std::cell::RefCell::new(Some(map))))
}

/// Issue-platform events: `contexts.geo` set from `user.geo` when absent (setdefault semantics).
fn add_geo_context(event: &mut Map<String, Value>) {
    let geo = event.get("user").and_then(|u| u.get("geo")).cloned();
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
            platform: params.event.get("platform").cloned(),
            datetime: event_datetime(params.event),
            primary_hash: params.primary_hash.map(str::to_owned),
            retention_days: params.retention_days,
            occurrence_id: occurrence.and_then(|o| o.get("id")).cloned(),
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

    fn write(self, data: StreamData<'_>) -> Result<Vec<u8>, EventstreamError> {
        let payload1 = Payload1 {
            group_id: self.groups.first().map(|g| g.id),
            group_ids: self.groups.iter().map(|g| g.id).collect(),
            event_id: &self.event_id,
            organization_id: self.organization_id,
            project_id: self.project_id,
            message: self.message,
            platform: self.platform.as_ref(),
            datetime: self.datetime,
            data,
            primary_hash: self.primary_hash.as_deref(),
            retention_days: self.retention_days,
            occurrence_id: self.occurrence_id.as_ref(),
            occurrence_data: OccurrenceData(self.occurrence_data.as_ref()),
        };
        let group = first_group(&self.groups);
        let payload2 = Payload2 {
            is_new: group.is_new,
            is_regression: group.is_regression,
            is_new_group_environment: group.is_new_group_environment,
            queue: self.kind.queue(),
            skip_consume: self.skip_consume,
            group_states: (!self.groups.is_empty()).then_some(&self.groups),
        };
        let mut out = Vec::with_capacity(4096);
        let mut serializer =
            serde_json::Serializer::with_formatter(QuarterGrowth(&mut out), PythonJsonFormatter);
        (EVENT_PROTOCOL_VERSION, "insert", payload1, payload2).serialize(&mut serializer)?;
        Ok(out)
    }
}

/// The record's buffer, grown by a quarter of its length at a time (at least 16 KiB, so a usual record
/// grows at most once, as it would doubling) instead of doubled: a large
/// record (up to 1 MiB) is built while the event's tree is still held, so a doubled buffer — up to
/// twice the record — is what the peak of a large event's request is made of (an Android ANR of
/// 0.7 MiB: a 1 MiB buffer). Large reallocations move pages rather than bytes, so growing more often
/// costs little.
struct QuarterGrowth<'a>(&'a mut Vec<u8>);

impl std::io::Write for QuarterGrowth<'_> {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    #[inline]
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let v = &mut *self.0;
        if v.capacity() - v.len() < buf.len() {
            v.reserve_exact(buf.len().max(v.len() / 4).max(16 << 10));
        }
        v.extend_from_slice(buf);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The Kafka headers Sentry sends with the record (option `eventstream:kafka-headers` on): values are
/// strings, `None`s left out, booleans as `"0"`/`"1"`, then `operation` and `version`. Kinesis has
/// no headers; this is what a wrapper envelope would carry.
pub fn record_headers(params: &InsertParams<'_>) -> Result<Vec<(String, String)>, EventstreamError> {
    let group = params.first_group();
    let bool01 = |b: bool| if b { "1" } else { "0" }.to_owned();
    let mut headers: Vec<(String, String)> = Vec::with_capacity(14);
    let mut push = |key: &str, value: String| headers.push((key.to_owned(), value));
    push("Received-Timestamp", python_float_repr(params.received_timestamp));
    push("event_id", str_at(params.event, &["event_id"]).unwrap_or("").to_owned());
    push("project_id", params.project_id.to_string());
    if let Some(id) = params.occurrence.and_then(|o| o.get("id")).filter(|id| !id.is_null()) {
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
        let mut encoded = Vec::new();
        let mut serializer = serde_json::Serializer::with_formatter(&mut encoded, PythonJsonFormatter);
        params.groups.serialize(&mut serializer)?;
        push("group_states", String::from_utf8_lossy(&encoded).into_owned());
    }
    push("queue", params.kind().queue().to_owned());
    push("operation", "insert".to_owned());
    push("version", EVENT_PROTOCOL_VERSION.to_string());
    Ok(headers)
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
    fn python_json_escapes_non_ascii_and_formats_floats() {
        let value = serde_json::json!({"a": "foô\u{1F600}\u{7f}", "b": 1e16, "c": 1717243200.0, "d": [1, true, null]});
        let mut out = Vec::new();
        let mut serializer = serde_json::Serializer::with_formatter(&mut out, PythonJsonFormatter);
        value.serialize(&mut serializer).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":"fo\u00f4\ud83d\ude00\u007f","b":1e+16,"c":1717243200.0,"d":[1,true,null]}"#
        );
    }

    #[test]
    fn printable_ascii_runs_end_at_the_first_other_byte() {
        // Every byte value at every position of a 20-byte run (two words and a tail), and after an
        // 0xff (whose carry would spill into the next byte of its word).
        for b in 0..=255u8 {
            let printable = (b' '..=b'~').contains(&b);
            for pos in 0..20 {
                let mut bytes = vec![b'a'; 20];
                bytes[pos] = b;
                assert_eq!(printable_ascii_run(&bytes), if printable { 20 } else { pos }, "{b:#x} at {pos}");
                if pos > 0 {
                    bytes[pos - 1] = 0xff;
                    assert_eq!(printable_ascii_run(&bytes), pos - 1, "{b:#x} after 0xff at {pos}");
                }
            }
        }
        assert_eq!(printable_ascii_run(b""), 0);
        assert_eq!(printable_ascii_run(b"~ ~ ~ ~ ~ ~"), 11);
    }

    #[test]
    fn partition_keys() {
        // Every kind: the event id, never the project id (a project's storm must not share a shard).
        assert_eq!(partition_key("abc"), "abc");
    }
}
