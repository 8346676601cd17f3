//! Sentry envelopes (ingest-protocol.md §6) and the legacy store body (§5, [`store`]).
//!
//! Owns the wire framing only: header line, item headers, payload boundaries, item types and
//! the size/count limits. Payloads are borrowed from the request body; nothing is copied.
//!
//! Framing follows Relay's `Envelope::parse_bytes` / `Item::parse`: each header is one JSON
//! value followed by `\n` or EOF; an item with `length` has exactly that many payload bytes,
//! then `\n` or EOF; an item without `length` runs to the next `\n` or EOF. A `\r` belongs to
//! the line. Header JSON is read with serde_json's stream deserializer, which also gives Relay's
//! tolerance for whitespace before a header.
//!
//! `sentry-types` has an envelope type, but its parser is built for SDKs (it owns the payloads
//! and drops unknown header attributes), so the framing is written here.

pub mod store;

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::tree::Fields;

/// Envelope size and count limits (413 when exceeded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum payload of one `event`, `transaction`, `span` (and other event-like) item.
    pub max_event_bytes: usize,
    /// Maximum number of items in one envelope.
    pub max_items: usize,
    /// Maximum decompressed envelope (and store body) size.
    pub max_envelope_bytes: usize,
    /// Maximum size of a normalized event as JSON: its eventstream record (the event plus about a
    /// kilobyte of row and state) must fit one Kinesis record (1 MiB). Checked for items over
    /// [`Limits::NORMALIZED_CHECK_FROM`] bytes, the only ones normalization could take past it.
    pub max_normalized_event_bytes: usize,
}

impl Limits {
    /// Items at least this large have their normalized size measured (a smaller one would have to
    /// grow eightfold in normalization to reach the limit).
    pub const NORMALIZED_CHECK_FROM: usize = 128 << 10;

    /// Limits with explicit values (and the default normalized-event bound).
    pub const fn new(max_event_bytes: usize, max_items: usize, max_envelope_bytes: usize) -> Self {
        Self {
            max_event_bytes,
            max_items,
            max_envelope_bytes,
            max_normalized_event_bytes: (1 << 20) - (64 << 10),
        }
    }
}

impl Default for Limits {
    /// 1 MiB per event item, 100 items, 20 MiB per envelope.
    fn default() -> Self {
        Self::new(1 << 20, 100, 20 << 20)
    }
}

/// Envelope item types (wire names are the snake_case forms).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ItemType {
    /// `event`: an error or default event.
    Event,
    /// `transaction`.
    Transaction,
    /// `attachment`.
    Attachment,
    /// `session`: one session update.
    Session,
    /// `sessions`: pre-aggregated sessions.
    Sessions,
    /// `client_report`: SDK outcomes.
    ClientReport,
    /// `span` (v2 span containers from @sentry/node ≥ 11).
    Span,
    /// `security`: CSP & co. reports.
    Security,
    /// `check_in`: cron monitors.
    CheckIn,
    /// `profile`.
    Profile,
    /// `replay_event`.
    ReplayEvent,
    /// `replay_recording`.
    ReplayRecording,
    /// `user_report`: legacy user feedback.
    UserReport,
    /// `log`.
    Log,
    /// Anything else; skipped and acknowledged.
    Unknown(String),
}

impl ItemType {
    /// Parses a wire name.
    pub fn from_name(name: &str) -> Self {
        match name {
            "event" => Self::Event,
            "transaction" => Self::Transaction,
            "attachment" => Self::Attachment,
            "session" => Self::Session,
            "sessions" => Self::Sessions,
            "client_report" => Self::ClientReport,
            "span" => Self::Span,
            "security" => Self::Security,
            "check_in" => Self::CheckIn,
            "profile" => Self::Profile,
            "replay_event" => Self::ReplayEvent,
            "replay_recording" => Self::ReplayRecording,
            "user_report" => Self::UserReport,
            "log" => Self::Log,
            other => Self::Unknown(other.to_owned()),
        }
    }

    /// The wire name.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Event => "event",
            Self::Transaction => "transaction",
            Self::Attachment => "attachment",
            Self::Session => "session",
            Self::Sessions => "sessions",
            Self::ClientReport => "client_report",
            Self::Span => "span",
            Self::Security => "security",
            Self::CheckIn => "check_in",
            Self::Profile => "profile",
            Self::ReplayEvent => "replay_event",
            Self::ReplayRecording => "replay_recording",
            Self::UserReport => "user_report",
            Self::Log => "log",
            Self::Unknown(name) => name,
        }
    }

    /// Items whose payload is an event-sized JSON document (1 MiB limit).
    pub fn is_event_like(&self) -> bool {
        matches!(self, Self::Event | Self::Transaction | Self::Span | Self::Security | Self::UserReport)
    }
}

impl fmt::Display for ItemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Envelope framing and limit errors.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// The body has no header line.
    #[error("missing envelope header")]
    MissingHeader,
    /// The header line is not a valid envelope header object.
    #[error("invalid envelope header")]
    InvalidHeader(#[source] serde_json::Error),
    /// A header or length-delimited payload is not followed by `\n` or EOF.
    #[error("missing newline after header or payload")]
    MissingNewline,
    /// The body ends before `length` payload bytes.
    #[error("unexpected end of file")]
    UnexpectedEof,
    /// An item header is not a valid JSON object with a `type`.
    #[error("invalid item header")]
    InvalidItemHeader(#[source] serde_json::Error),
    /// An item payload is over its limit.
    #[error("envelope exceeded size limits for type '{item_type}' ({size} > {limit} bytes)")]
    ItemTooLarge {
        /// Wire name of the item type.
        item_type: String,
        /// Payload size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// More items than allowed.
    #[error("envelope exceeded the limit of {limit} items")]
    TooManyItems {
        /// The limit.
        limit: usize,
    },
    /// The envelope header is longer than the part read before authentication
    /// ([`HEADER_PREFIX_BYTES`]).
    #[error("envelope header exceeded its size limit of {limit} bytes")]
    HeaderTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The envelope is larger than allowed.
    #[error("envelope exceeded its size limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
}

impl EnvelopeError {
    /// HTTP status for this error: 413 for limits, else 400.
    pub fn status(&self) -> u16 {
        match self {
            Self::ItemTooLarge { .. }
            | Self::TooManyItems { .. }
            | Self::TooLarge { .. }
            | Self::HeaderTooLarge { .. } => 413,
            _ => 400,
        }
    }
}

/// Envelope headers. Unknown attributes are kept in [`EnvelopeHeaders::other`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EnvelopeHeaders {
    /// `event_id`, validated and rendered as 32 lowercase hex characters.
    pub event_id: Option<String>,
    /// `dsn`: full DSN (authentication source for the envelope endpoint).
    pub dsn: Option<String>,
    /// `sdk` `{name, version}`, as sent (nothing on the save path reads it).
    pub sdk: Option<RawJson>,
    /// `sent_at`: SDK clock at send time (clock-drift correction).
    pub sent_at: Option<DateTime<Utc>>,
    /// `trace`: the dynamic sampling context, as sent (nothing on the save path reads it).
    pub trace: Option<RawJson>,
    /// Any other attribute.
    pub other: Map<String, Value>,
}

/// A header value kept as its JSON text: checked to be JSON as it is parsed, but not built into a
/// tree (a sampling context is a dozen strings, each an allocation and a hashed key, on every request).
/// The grammar is checked, not the values: a lone surrogate escape (`"\ud800"`), a number beyond
/// `f64` (`1e400`) or nesting deeper than 128 levels, which a tree refuses, is kept as sent — nothing
/// reads these headers.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct RawJson(Box<RawValue>);

impl RawJson {
    /// The JSON text as sent.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// The value as a tree.
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }
}

/// The same JSON text (not the same value written otherwise).
impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

/// Parses an event id (32 hex or dashed UUID, any case) into 32 lowercase hex characters.
pub fn parse_event_id(value: &str) -> Option<String> {
    uuid::Uuid::try_parse(value).ok().map(|id| id.simple().to_string())
}

/// Deserialized with a visitor so that a *duplicated* known key (notably `sent_at`) rejects the
/// header, as Relay's derived deserializer does; `serde_json::Value` would keep the last one.
impl<'de> Deserialize<'de> for EnvelopeHeaders {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HeadersVisitor;

        impl<'de> Visitor<'de> for HeadersVisitor {
            type Value = EnvelopeHeaders;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an envelope header object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut headers = EnvelopeHeaders::default();
                let mut seen = [false; 5];
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    let slot = match key.as_ref() {
                        "event_id" => 0,
                        "dsn" => 1,
                        "sdk" => 2,
                        "sent_at" => 3,
                        "trace" => 4,
                        _ => {
                            let value: Value = map.next_value()?;
                            headers.other.insert(key.into_owned(), value);
                            continue;
                        }
                    };
                    if std::mem::replace(&mut seen[slot], true) {
                        return Err(de::Error::custom(format_args!("duplicate field `{key}`")));
                    }
                    match slot {
                        0 => {
                            headers.event_id = match map.next_value::<Option<Cow<'de, str>>>()? {
                                None => None,
                                Some(raw) => Some(parse_event_id(&raw).ok_or_else(|| {
                                    de::Error::custom(format_args!("invalid event_id `{raw}`"))
                                })?),
                            }
                        }
                        1 => headers.dsn = map.next_value()?,
                        2 => headers.sdk = map.next_value()?,
                        3 => {
                            headers.sent_at = match map.next_value::<Option<Cow<'de, str>>>()? {
                                None => None,
                                Some(raw) => Some(
                                    DateTime::parse_from_rfc3339(&raw)
                                        .map_err(|e| de::Error::custom(format_args!("invalid sent_at: {e}")))?
                                        .with_timezone(&Utc),
                                ),
                            }
                        }
                        _ => headers.trace = map.next_value()?,
                    }
                }
                Ok(headers)
            }
        }

        deserializer.deserialize_map(HeadersVisitor)
    }
}

/// One envelope item.
#[derive(Debug, Clone, PartialEq)]
pub struct Item<'a> {
    /// The `type` header.
    pub ty: ItemType,
    /// All item headers as sent (`type`, `length`, `filename`, `content_type`, …).
    pub headers: Map<String, Value>,
    /// The payload (borrowed from the body unless the store endpoint had to decode it).
    pub payload: Cow<'a, [u8]>,
}

impl Item<'_> {
    /// A string item header.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.headers.field(name).and_then(Value::as_str)
    }
}

/// A parsed envelope.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Envelope<'a> {
    /// Envelope headers.
    pub headers: EnvelopeHeaders,
    /// Items in order.
    pub items: Vec<Item<'a>>,
}

impl<'a> Envelope<'a> {
    /// Parses an envelope, enforcing `limits`.
    pub fn parse(bytes: &'a [u8], limits: &Limits) -> Result<Self, EnvelopeError> {
        if bytes.len() > limits.max_envelope_bytes {
            return Err(EnvelopeError::TooLarge { limit: limits.max_envelope_bytes });
        }
        let (headers, mut offset) = parse_json_line::<EnvelopeHeaders>(bytes).map_err(|e| match e {
            LineError::Missing => EnvelopeError::MissingHeader,
            LineError::Json(e) => EnvelopeError::InvalidHeader(e),
            LineError::MissingNewline => EnvelopeError::MissingNewline,
        })?;

        let mut items = Vec::new();
        while offset < bytes.len() {
            if items.len() >= limits.max_items {
                return Err(EnvelopeError::TooManyItems { limit: limits.max_items });
            }
            let (item, consumed) = parse_item(&bytes[offset..])?;
            if item.ty.is_event_like() && item.payload.len() > limits.max_event_bytes {
                return Err(EnvelopeError::ItemTooLarge {
                    item_type: item.ty.as_str().to_owned(),
                    size: item.payload.len(),
                    limit: limits.max_event_bytes,
                });
            }
            items.push(item);
            offset += consumed;
        }
        Ok(Self { headers, items })
    }
}

/// How much of a decoded envelope is read to find its header before the request is authenticated
/// (SDK headers are a few hundred bytes: `event_id`, `dsn`, `sdk`, `sent_at`, `trace`).
pub const HEADER_PREFIX_BYTES: usize = 64 << 10;

/// The envelope header from the first bytes of a decoded envelope (`complete`: the prefix is the whole
/// envelope), with the errors [`Envelope::parse`] would give for it; a header that does not end within
/// the prefix is [`EnvelopeError::HeaderTooLarge`].
pub fn parse_header_prefix(prefix: &[u8], complete: bool) -> Result<EnvelopeHeaders, EnvelopeError> {
    let too_large = EnvelopeError::HeaderTooLarge { limit: prefix.len() };
    match parse_json_line::<EnvelopeHeaders>(prefix) {
        Ok((headers, _)) => Ok(headers),
        Err(LineError::Missing) if !complete => Err(too_large),
        Err(LineError::Json(e)) if !complete && e.is_eof() => Err(too_large),
        Err(LineError::Missing) => Err(EnvelopeError::MissingHeader),
        Err(LineError::Json(e)) => Err(EnvelopeError::InvalidHeader(e)),
        Err(LineError::MissingNewline) => Err(EnvelopeError::MissingNewline),
    }
}

enum LineError {
    Missing,
    Json(serde_json::Error),
    MissingNewline,
}

/// One JSON value followed by `\n` or EOF; returns it and the offset after the newline.
fn parse_json_line<'a, T: Deserialize<'a>>(slice: &'a [u8]) -> Result<(T, usize), LineError> {
    let mut stream = serde_json::Deserializer::from_slice(slice).into_iter::<T>();
    let value = match stream.next() {
        None => return Err(LineError::Missing),
        Some(Err(e)) => return Err(LineError::Json(e)),
        Some(Ok(value)) => value,
    };
    let end = stream.byte_offset();
    require_termination(slice, end).map_err(|()| LineError::MissingNewline)?;
    Ok((value, end + 1))
}

fn require_termination(slice: &[u8], offset: usize) -> Result<(), ()> {
    match slice.get(offset) {
        Some(b'\n') | None => Ok(()),
        Some(_) => Err(()),
    }
}

fn parse_item(bytes: &[u8]) -> Result<(Item<'_>, usize), EnvelopeError> {
    let (headers, headers_end) = parse_json_line::<Map<String, Value>>(bytes).map_err(|e| match e {
        // Only whitespace left after the previous item: Relay reports a missing header.
        LineError::Missing => EnvelopeError::MissingHeader,
        LineError::Json(e) => EnvelopeError::InvalidItemHeader(e),
        LineError::MissingNewline => EnvelopeError::MissingNewline,
    })?;
    let ty = match headers.field("type") {
        Some(Value::String(name)) => ItemType::from_name(name),
        _ => {
            return Err(EnvelopeError::InvalidItemHeader(de::Error::custom(
                "missing or invalid field `type`",
            )));
        }
    };
    let length =
        match headers.field("length") {
            None | Some(Value::Null) => None,
            Some(value) => Some(value.as_u64().and_then(|l| usize::try_from(l).ok()).ok_or_else(|| {
                EnvelopeError::InvalidItemHeader(de::Error::custom("invalid field `length`"))
            })?),
        };

    let payload_start = headers_end.min(bytes.len());
    let payload_end = match length {
        Some(length) => {
            let end = payload_start.checked_add(length).ok_or(EnvelopeError::UnexpectedEof)?;
            if end > bytes.len() {
                return Err(EnvelopeError::UnexpectedEof);
            }
            require_termination(bytes, end).map_err(|()| EnvelopeError::MissingNewline)?;
            end
        }
        None => {
            bytes[payload_start..].iter().position(|b| *b == b'\n').map_or(bytes.len(), |p| payload_start + p)
        }
    };
    let item = Item { ty, headers, payload: Cow::Borrowed(&bytes[payload_start..payload_end]) };
    Ok((item, payload_end + 1))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<Envelope<'_>, EnvelopeError> {
        Envelope::parse(bytes, &Limits::default())
    }

    #[test]
    fn empty_envelopes() {
        for body in [&b"{}"[..], b"{}\n"] {
            let env = parse(body).unwrap();
            assert!(env.items.is_empty());
            assert_eq!(env.headers, EnvelopeHeaders::default());
        }
        assert!(matches!(parse(b""), Err(EnvelopeError::MissingHeader)));
    }

    #[test]
    fn items_with_and_without_length() {
        let body = b"{\"event_id\":\"9EC79C33-EC99-42AB-8353-589FCB2E04DC\",\"dsn\":\"https://k@h/1\",\"custom\":1}\n\
{\"type\":\"attachment\",\"length\":10,\"filename\":\"a.txt\"}\n\
helloworld\n\
{\"type\":\"event\"}\n\
{\"message\":\"hi\"}\n\
{\"type\":\"session\",\"length\":0}\n\
\n\
{\"type\":\"something_new\"}\n";
        let env = parse(body).unwrap();
        assert_eq!(env.headers.event_id.as_deref(), Some("9ec79c33ec9942ab8353589fcb2e04dc"));
        assert_eq!(env.headers.dsn.as_deref(), Some("https://k@h/1"));
        assert_eq!(env.headers.other.field("custom"), Some(&Value::from(1)));
        let types: Vec<_> = env.items.iter().map(|i| i.ty.clone()).collect();
        assert_eq!(
            types,
            vec![
                ItemType::Attachment,
                ItemType::Event,
                ItemType::Session,
                ItemType::Unknown("something_new".into())
            ]
        );
        assert_eq!(&*env.items[0].payload, b"helloworld");
        assert_eq!(env.items[0].header_str("filename"), Some("a.txt"));
        assert_eq!(&*env.items[1].payload, b"{\"message\":\"hi\"}");
        assert_eq!(&*env.items[2].payload, b"");
        assert_eq!(&*env.items[3].payload, b"");
        assert!(matches!(env.items[0].payload, Cow::Borrowed(_)));
    }

    #[test]
    fn trailing_newline_is_optional() {
        let a = parse(b"{}\n{\"type\":\"event\"}\n{}").unwrap();
        let b = parse(b"{}\n{\"type\":\"event\"}\n{}\n").unwrap();
        assert_eq!(a, b);
        let c = parse(b"{}\n{\"type\":\"event\",\"length\":2}\n{}").unwrap();
        assert_eq!(&*c.items[0].payload, b"{}");
    }

    #[test]
    fn payload_may_contain_newlines_with_length() {
        let env = parse(b"{}\n{\"type\":\"attachment\",\"length\":5}\na\nb\nc\n").unwrap();
        assert_eq!(&*env.items[0].payload, b"a\nb\nc");
    }

    #[test]
    fn carriage_return_belongs_to_the_line() {
        let env = parse(b"{}\n{\"type\":\"event\"}\n{\"a\":1}\r\n").unwrap();
        assert_eq!(&*env.items[0].payload, b"{\"a\":1}\r");
        // A header followed by `\r\n` is not terminated by `\n`.
        assert!(matches!(parse(b"{}\r\n{\"type\":\"event\"}\n{}"), Err(EnvelopeError::MissingNewline)));
    }

    #[test]
    fn wrong_length_is_rejected() {
        // payload longer than length: no newline after `length` bytes
        assert!(matches!(
            parse(b"{}\n{\"type\":\"event\",\"length\":3}\n{}xx\n"),
            Err(EnvelopeError::MissingNewline)
        ));
        // truncated
        assert!(matches!(
            parse(b"{}\n{\"type\":\"event\",\"length\":30}\n{}\n"),
            Err(EnvelopeError::UnexpectedEof)
        ));
        assert!(matches!(
            parse(b"{}\n{\"type\":\"event\",\"length\":-1}\n{}"),
            Err(EnvelopeError::InvalidItemHeader(_))
        ));
        assert!(matches!(
            parse(b"{}\n{\"type\":\"event\",\"length\":\"2\"}\n{}"),
            Err(EnvelopeError::InvalidItemHeader(_))
        ));
    }

    #[test]
    fn bad_headers() {
        assert!(matches!(parse(b"not json\n"), Err(EnvelopeError::InvalidHeader(_))));
        assert!(matches!(parse(b"[1,2]\n"), Err(EnvelopeError::InvalidHeader(_))));
        assert!(matches!(parse(b"{} {}\n"), Err(EnvelopeError::MissingNewline)));
        assert!(matches!(parse(b"{\"event_id\":\"nope\"}\n"), Err(EnvelopeError::InvalidHeader(_))));
        assert!(matches!(parse(b"{\"sent_at\":\"yesterday\"}\n"), Err(EnvelopeError::InvalidHeader(_))));
        assert!(matches!(parse(b"{}\n{\"length\":2}\n{}"), Err(EnvelopeError::InvalidItemHeader(_))));
        assert!(matches!(parse(b"{}\n{\"type\":1}\n{}"), Err(EnvelopeError::InvalidItemHeader(_))));
        assert!(matches!(parse(b"{}\n{\"type\":\"event\"\n{}"), Err(EnvelopeError::InvalidItemHeader(_))));
        let err = parse(b"{}\n{\"type\":\"event\"}\n{}\n\n").unwrap_err();
        assert!(matches!(err, EnvelopeError::MissingHeader));
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn duplicated_sent_at_rejects_the_envelope() {
        let err = parse(b"{\"sent_at\":\"2024-01-01T00:00:00Z\",\"sent_at\":\"2024-01-01T00:00:01Z\"}\n")
            .unwrap_err();
        assert!(matches!(err, EnvelopeError::InvalidHeader(_)));
        let source = std::error::Error::source(&err).map(ToString::to_string);
        assert!(source.unwrap_or_default().contains("duplicate field `sent_at`"));
        // unknown keys may repeat (last wins)
        let env = parse(b"{\"x\":1,\"x\":2}\n").unwrap();
        assert_eq!(env.headers.other.field("x"), Some(&Value::from(2)));
    }

    #[test]
    fn header_values() {
        let env = parse(
            b"{\"sent_at\":\"2026-11-26T07:12:12.308546Z\",\"sdk\":{\"name\":\"x\"},\"trace\":{\"trace_id\":\"t\"},\"event_id\":null}",
        )
        .unwrap();
        assert_eq!(env.headers.sent_at.map(|t| t.timestamp_micros()), Some(1_795_677_132_308_546));
        let sdk = env.headers.sdk.as_ref().map(RawJson::to_value).transpose().unwrap();
        assert_eq!(sdk, Some(serde_json::json!({"name": "x"})));
        assert_eq!(env.headers.trace.as_ref().map(RawJson::get), Some("{\"trace_id\":\"t\"}"));
        assert_eq!(env.headers.event_id, None);
        // `null` is no value; what is not JSON is still refused, as a tree would be.
        assert_eq!(parse(b"{\"trace\":null}\n").unwrap().headers.trace, None);
        assert!(matches!(parse(b"{\"trace\":{\"a\":}}\n"), Err(EnvelopeError::InvalidHeader(_))));
        assert!(matches!(parse(b"{\"sdk\":\"\x01\"}\n"), Err(EnvelopeError::InvalidHeader(_))));
        // Values a tree refuses but the grammar allows are kept as sent.
        let env = parse(b"{\"trace\":{\"a\":1e400,\"b\":\"\\ud800\"}}\n").unwrap();
        assert_eq!(env.headers.trace.as_ref().map(RawJson::get), Some(r#"{"a":1e400,"b":"\ud800"}"#));
    }

    #[test]
    fn limits() {
        let limits = Limits::new(4, 2, 200);
        let err = Envelope::parse(b"{}\n{\"type\":\"event\"}\n{\"a\":1}", &limits).unwrap_err();
        assert!(
            matches!(&err, EnvelopeError::ItemTooLarge { item_type, size: 7, limit: 4 } if item_type == "event")
        );
        assert_eq!(err.status(), 413);
        assert!(err.to_string().contains("size limits for type 'event'"));
        // attachments are not event-sized
        assert!(Envelope::parse(b"{}\n{\"type\":\"attachment\"}\n1234567", &limits).is_ok());
        let err = Envelope::parse(
            b"{}\n{\"type\":\"session\"}\n{}\n{\"type\":\"session\"}\n{}\n{\"type\":\"session\"}\n{}",
            &limits,
        )
        .unwrap_err();
        assert!(matches!(err, EnvelopeError::TooManyItems { limit: 2 }));
        assert_eq!(err.status(), 413);
        let big = vec![b' '; 201];
        assert_eq!(Envelope::parse(&big, &limits).unwrap_err().status(), 413);
    }

    #[test]
    fn item_type_names_round_trip() {
        for name in [
            "event",
            "transaction",
            "attachment",
            "session",
            "sessions",
            "client_report",
            "span",
            "security",
            "check_in",
            "profile",
            "replay_event",
            "replay_recording",
            "user_report",
            "log",
            "statsd",
        ] {
            assert_eq!(ItemType::from_name(name).as_str(), name);
        }
        assert!(ItemType::Span.is_event_like());
        assert!(!ItemType::Attachment.is_event_like());
    }

    #[test]
    fn event_ids() {
        assert_eq!(
            parse_event_id("52DF9022-8352-46EE-B317-DBD739CCD059").as_deref(),
            Some("52df9022835246eeb317dbd739ccd059")
        );
        assert_eq!(parse_event_id("xyz"), None);
        assert_eq!(parse_event_id(&"a".repeat(33)), None);
    }
}
