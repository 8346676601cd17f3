//! The legacy `/api/{project_id}/store/` body (ingest-protocol.md §5, Relay `endpoints/store.rs`).
//!
//! A body starting with `{` is JSON as-is; otherwise it is base64, whose decoded form is JSON
//! (starts with `{`) or zlib-compressed JSON (inflated within the event size limit). A minimal
//! parse validates the JSON, the `event_id` (a valid UUID when present) and reads `type`
//! (`transaction` → transaction item, anything else → event item). A store request whose
//! `Content-Type` is `application/x-sentry-envelope` is an envelope.

use std::borrow::Cow;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use super::super::decode::{self, DecodeError};
use super::{Envelope, EnvelopeError, EnvelopeHeaders, Item, ItemType, Limits, parse_event_id};

/// Store body failures (all 400 except the size limit, 413).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Nothing was sent.
    #[error("empty request body")]
    EmptyBody,
    /// Neither JSON nor base64(-zlib) JSON.
    #[error("invalid JSON data")]
    InvalidJson(#[source] serde_json::Error),
    /// Base64 that does not decode.
    #[error("failed to decode base64 request body")]
    InvalidBase64,
    /// zlib data that does not inflate, or inflates past the limit.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// `event_id` present but not a UUID.
    #[error("invalid event id")]
    InvalidEventId,
    /// The event is over the event size limit.
    #[error("event exceeded its size limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The body was an envelope and failed to parse as one.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
}

impl StoreError {
    /// HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            Self::TooLarge { .. } => 413,
            Self::Decode(e) => e.status(),
            Self::Envelope(e) => e.status(),
            _ => 400,
        }
    }
}

/// The single event of a store request.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreEvent<'a> {
    /// `event` or `transaction`.
    pub ty: ItemType,
    /// The validated `event_id` of the payload (32 lowercase hex), if it had one.
    pub event_id: Option<String>,
    /// The JSON payload.
    pub payload: Cow<'a, [u8]>,
}

#[derive(Deserialize)]
struct MinimalEvent<'a> {
    #[serde(default, borrow)]
    event_id: Option<Cow<'a, str>>,
    #[serde(default, rename = "type", borrow)]
    ty: Option<Cow<'a, str>>,
}

/// Decodes and minimally validates a store body.
pub fn parse_store_body<'a>(body: &'a [u8], limits: &Limits) -> Result<StoreEvent<'a>, StoreError> {
    let body = body.trim_ascii();
    if body.is_empty() {
        return Err(StoreError::EmptyBody);
    }
    let payload: Cow<'a, [u8]> = if body.starts_with(b"{") {
        Cow::Borrowed(body)
    } else {
        let decoded =
            base64::engine::general_purpose::STANDARD.decode(body).map_err(|_| StoreError::InvalidBase64)?;
        if decoded.starts_with(b"{") {
            Cow::Owned(decoded)
        } else {
            Cow::Owned(decode::inflate_zlib(&decoded, limits.max_event_bytes)?)
        }
    };
    if payload.len() > limits.max_event_bytes {
        return Err(StoreError::TooLarge { limit: limits.max_event_bytes });
    }
    let minimal: MinimalEvent<'_> = serde_json::from_slice(&payload).map_err(StoreError::InvalidJson)?;
    let event_id = match minimal.event_id {
        None => None,
        Some(raw) => Some(parse_event_id(&raw).ok_or(StoreError::InvalidEventId)?),
    };
    let ty = match minimal.ty.as_deref() {
        Some("transaction") => ItemType::Transaction,
        _ => ItemType::Event,
    };
    Ok(StoreEvent { ty, event_id, payload })
}

/// Parses a store request into an envelope: an envelope body when the content type says so,
/// else a single event item (the envelope `event_id` header is the payload's, if any).
pub fn parse_store_request<'a>(
    body: &'a [u8],
    content_type: Option<&str>,
    limits: &Limits,
) -> Result<Envelope<'a>, StoreError> {
    let is_envelope = content_type
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|ct| ct.trim().eq_ignore_ascii_case("application/x-sentry-envelope"));
    if is_envelope {
        if body.is_empty() {
            return Err(StoreError::EmptyBody);
        }
        return Ok(Envelope::parse(body, limits)?);
    }
    let event = parse_store_body(body, limits)?;
    let mut headers = serde_json::Map::new();
    headers.insert("type".into(), Value::from(event.ty.as_str()));
    Ok(Envelope {
        headers: EnvelopeHeaders { event_id: event.event_id, ..EnvelopeHeaders::default() },
        items: vec![Item { ty: event.ty, headers, payload: event.payload }],
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::io::Write;

    fn parse(body: &[u8]) -> Result<StoreEvent<'_>, StoreError> {
        parse_store_body(body, &Limits::default())
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn b64(data: &[u8]) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD.encode(data).into_bytes()
    }

    const EVENT: &[u8] = br#"{"event_id":"52DF9022-8352-46EE-B317-DBD739CCD059","message":"hi"}"#;

    #[test]
    fn plain_json() {
        let ev = parse(EVENT).unwrap();
        assert_eq!(ev.ty, ItemType::Event);
        assert_eq!(ev.event_id.as_deref(), Some("52df9022835246eeb317dbd739ccd059"));
        assert!(matches!(ev.payload, Cow::Borrowed(_)));
    }

    #[test]
    fn base64_and_base64_zlib() {
        assert_eq!(&*parse(&b64(EVENT)).unwrap().payload, EVENT);
        assert_eq!(&*parse(&b64(&zlib(EVENT))).unwrap().payload, EVENT);
    }

    #[test]
    fn transaction_type() {
        let ev = parse(br#"{"type":"transaction"}"#).unwrap();
        assert_eq!(ev.ty, ItemType::Transaction);
        assert_eq!(ev.event_id, None);
        assert_eq!(parse(br#"{"type":"error"}"#).unwrap().ty, ItemType::Event);
    }

    #[test]
    fn errors() {
        assert!(matches!(parse(b""), Err(StoreError::EmptyBody)));
        assert!(matches!(parse(b"  \n"), Err(StoreError::EmptyBody)));
        assert_eq!(StoreError::EmptyBody.to_string(), "empty request body");
        assert!(matches!(parse(b"{nope"), Err(StoreError::InvalidJson(_))));
        assert!(matches!(parse(b"!!!"), Err(StoreError::InvalidBase64)));
        assert!(matches!(parse(&b64(b"not zlib")), Err(StoreError::Decode(_))));
        assert!(matches!(parse(br#"{"event_id":"nope"}"#), Err(StoreError::InvalidEventId)));
        assert!(matches!(parse(br#"{"event_id":42}"#), Err(StoreError::InvalidJson(_))));
        for err in [
            parse(b"").unwrap_err(),
            parse(b"{nope").unwrap_err(),
            parse(br#"{"event_id":"nope"}"#).unwrap_err(),
        ] {
            assert_eq!(err.status(), 400);
        }
    }

    #[test]
    fn size_limits() {
        let limits = Limits::new(10, 100, 1000);
        let err = parse_store_body(EVENT, &limits).unwrap_err();
        assert!(matches!(err, StoreError::TooLarge { limit: 10 }));
        assert_eq!(err.status(), 413);
        let bomb = zlib(&[b' '; 100_000]);
        let err = parse_store_body(&b64(&bomb), &limits).unwrap_err();
        assert_eq!(err.status(), 413);
    }

    #[test]
    fn store_request_content_types() {
        let env = parse_store_request(EVENT, None, &Limits::default()).unwrap();
        assert_eq!(env.items.len(), 1);
        assert_eq!(env.items[0].ty, ItemType::Event);
        assert_eq!(env.headers.event_id.as_deref(), Some("52df9022835246eeb317dbd739ccd059"));
        let env = parse_store_request(
            b"{}\n{\"type\":\"session\"}\n{}",
            Some("application/x-sentry-envelope; charset=utf-8"),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(env.items[0].ty, ItemType::Session);
        assert!(matches!(
            parse_store_request(b"", Some("application/x-sentry-envelope"), &Limits::default()),
            Err(StoreError::EmptyBody)
        ));
    }
}
