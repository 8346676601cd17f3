//! Postflow's Sentry ingestion edge: what happens to an SDK request before `save`.
//!
//! [`ingest`] takes an `/api/{project_id}/envelope/` or `/store/` request as API Gateway hands
//! it over (lowercased headers, raw query string, body already base64-decoded) and returns the
//! authenticated, decoded, parsed and normalized content, or an [`IngestError`] that knows its
//! HTTP status and Relay-style detail. Whether the returned public key belongs to the project is
//! the caller's business (a key lookup), as are persistence and the response body.
//!
//! * [`auth`] — DSN public key from `X-Sentry-Auth`, `Authorization`, `?sentry_key=` or the
//!   envelope `dsn` header.
//! * [`decode`] — `Content-Encoding` (gzip, deflate, br, zstd), bounded while streaming.
//! * [`envelope`] — envelope framing, item types, limits; [`envelope::store`] for `/store/`.
//! * [`parse`] — an event item's JSON into a tree of bounded size (`extra` trimmed as Relay trims it).
//! * [`normalize`] — Relay-compatible normalization of events and transactions.

pub mod auth;
pub mod decode;
pub mod envelope;
pub mod normalize;
pub mod parse;

use chrono::{DateTime, Utc};
use serde_json::Value;

use auth::{Auth, AuthError};
use decode::DecodeError;
use envelope::store::{StoreError, parse_store_request};
use envelope::{Envelope, EnvelopeError, EnvelopeHeaders, ItemType, Limits};
use normalize::{NormalizeConfig, NormalizeError, normalize_event};

use crate::tree::Fields;

/// Which ingest route was called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /api/{project_id}/envelope/`.
    Envelope,
    /// `POST /api/{project_id}/store/` (legacy single event).
    Store,
}

/// One ingest request as the Lambda handler sees it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The route.
    pub endpoint: Endpoint,
    /// `{project_id}` path segment, unparsed.
    pub project_id: &'a str,
    /// Headers with lowercase names.
    pub headers: &'a [(String, String)],
    /// Raw query string (without `?`).
    pub query: &'a str,
    /// Body bytes after API Gateway's base64 decoding (still content-encoded).
    pub body: &'a [u8],
    /// Receive time.
    pub received_at: DateTime<Utc>,
    /// Client address (API Gateway `sourceIp`); falls back to the first `X-Forwarded-For` entry.
    pub client_ip: Option<&'a str>,
}

/// Ingest failures; see [`IngestError::status`] and [`IngestError::detail`].
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The project id in the path is not a positive integer.
    #[error("bad project path")]
    BadProject,
    /// DSN authentication failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// No body.
    #[error("empty request body")]
    EmptyBody,
    /// Content decoding failed or hit the size limit.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The envelope is malformed or over a limit.
    #[error("invalid event envelope")]
    Envelope(#[source] EnvelopeError),
    /// The store body is malformed or over a limit.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An event/transaction item is not a JSON object.
    #[error("invalid event JSON in {item_type} item")]
    InvalidEvent {
        /// The item's type.
        item_type: String,
        /// The parse error, if the payload was not JSON at all.
        #[source]
        source: Option<serde_json::Error>,
    },
    /// An event/transaction item's parsed tree would take more memory than its size allows
    /// ([`parse::tree_limit`]: [`parse::TREE_BYTES_PER_BYTE`] bytes per byte of JSON, at least
    /// [`parse::MIN_TREE_BYTES`]).
    #[error(
        "envelope exceeded size limits for type '{item_type}' (its JSON is too dense: over {limit} bytes once parsed)"
    )]
    TooDense {
        /// The item's type.
        item_type: String,
        /// The limit for this item.
        limit: usize,
    },
}

impl IngestError {
    /// HTTP status: 400 malformed, 401/403 authentication, 413 too large.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadProject | Self::EmptyBody | Self::InvalidEvent { .. } => 400,
            Self::TooDense { .. } => 413,
            Self::Auth(e) => e.status(),
            Self::Decode(e) => e.status(),
            Self::Envelope(e) => e.status(),
            Self::Store(e) => e.status(),
        }
    }

    /// Relay's `detail` text: the error's own message (for limits, the specific limit message).
    pub fn detail(&self) -> String {
        match self {
            Self::Envelope(e) if e.status() == 413 => e.to_string(),
            other => other.to_string(),
        }
    }

    /// Relay's `causes`: the messages of the underlying errors, outermost first.
    pub fn causes(&self) -> Vec<String> {
        let mut causes = Vec::new();
        let mut source = std::error::Error::source(self);
        while let Some(err) = source {
            let text = err.to_string();
            if causes.last() != Some(&text) && text != self.detail() {
                causes.push(text);
            }
            source = err.source();
        }
        causes
    }
}

/// Event or transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// An `event` item (error, default, csp…).
    Event,
    /// A `transaction` item.
    Transaction,
}

impl EventKind {
    /// The envelope item type it comes from.
    pub fn item_type(self) -> &'static str {
        match self {
            Self::Event => "event",
            Self::Transaction => "transaction",
        }
    }
}

/// A normalized event, ready for `save`.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestedEvent {
    /// 32 lowercase hex characters (also in `payload["event_id"]`).
    pub event_id: String,
    /// Which item it came from.
    pub kind: EventKind,
    /// The normalized event.
    pub payload: Value,
    /// Bytes of the item's JSON as sent (decompressed).
    pub payload_bytes: usize,
}

/// Refuses (413) an event whose JSON has grown past what one stream record holds: checked after
/// normalization and again once grouping has written into it (in-app flags and `data` on every
/// frame can add a third to a large native or Android event). Only events sent with at least
/// [`Limits::NORMALIZED_CHECK_FROM`] bytes can reach the limit; smaller ones are not measured.
pub fn check_stored_size(
    event: &Value,
    kind: EventKind,
    payload_bytes: usize,
    limits: &Limits,
) -> Result<(), IngestError> {
    if payload_bytes < Limits::NORMALIZED_CHECK_FROM {
        return Ok(());
    }
    let size = json_size(event);
    if size > limits.max_normalized_event_bytes {
        return Err(IngestError::Envelope(EnvelopeError::ItemTooLarge {
            item_type: kind.item_type().to_owned(),
            size,
            limit: limits.max_normalized_event_bytes,
        }));
    }
    Ok(())
}

/// An event that is not saved: normalization rejected it (invalid transactions), or it is a second
/// event item in one envelope. Relay drops these too.
#[derive(Debug, Clone, PartialEq)]
pub struct DroppedEvent {
    /// The event id the SDK sent, if valid.
    pub event_id: Option<String>,
    /// Which item it came from.
    pub kind: EventKind,
    /// Why.
    pub reason: DropReason,
}

/// Why an event item was dropped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DropReason {
    /// Normalization rejected it.
    #[error(transparent)]
    Invalid(#[from] NormalizeError),
    /// An envelope creates at most one event: every `event`/`transaction` item after the first is
    /// dropped unparsed, as Relay rejects them (`ProcessingError::DuplicateItem`: "Event items can never
    /// occur twice in an envelope"). It also bounds a request's memory to one parsed event.
    #[error("duplicate {0} item")]
    DuplicateItem(&'static str),
}

/// An acknowledged attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentInfo {
    /// `filename` item header.
    pub filename: Option<String>,
    /// `content_type` item header.
    pub content_type: Option<String>,
    /// `attachment_type` item header (default `event.attachment`).
    pub attachment_type: String,
    /// Payload size in bytes.
    pub size: usize,
}

/// Items that are accepted and acknowledged but not saved (yet).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acknowledged {
    /// `session` items.
    pub sessions: usize,
    /// `sessions` (aggregate) items.
    pub session_aggregates: usize,
    /// `client_report` items.
    pub client_reports: usize,
    /// `attachment` items.
    pub attachments: Vec<AttachmentInfo>,
    /// Spans in `span` items (`item_count`, or 1 per item without it).
    pub spans: usize,
    /// Type names of every other item (skipped, as Relay does with unknown items).
    pub other: Vec<String>,
}

/// The outcome of a successful ingest.
#[derive(Debug, Clone, PartialEq)]
pub struct Ingested {
    /// The project id from the path.
    pub project_id: u64,
    /// Authentication (the caller checks the key against the project).
    pub auth: Auth,
    /// Envelope headers (for the store endpoint: only `event_id`).
    pub envelope_headers: EnvelopeHeaders,
    /// Normalized events and transactions, in item order.
    pub events: Vec<IngestedEvent>,
    /// Events rejected by normalization.
    pub dropped: Vec<DroppedEvent>,
    /// Other items.
    pub acknowledged: Acknowledged,
}

impl Ingested {
    /// The id for the `200 {"id": …}` response: the first event's, else the envelope's.
    pub fn response_event_id(&self) -> Option<&str> {
        self.events.first().map(|e| e.event_id.as_str()).or(self.envelope_headers.event_id.as_deref())
    }
}

/// Bytes of `value` as compact JSON, counted without building the string.
fn json_size(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing to a counter cannot fail, and a `Value` always serializes.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// A request whose project and DSN key have been found ([`authenticate`]), with its body decoded as
/// far as that took; [`ingest_authenticated`] goes on decoding from there.
#[derive(Debug)]
pub struct Authenticated<'a> {
    /// The project id from the path.
    pub project_id: u64,
    /// The DSN key and client, from the request and the envelope header.
    pub auth: Auth,
    /// The envelope's body as decoded so far (`None` for the store endpoint: nothing decoded yet).
    body: Option<decode::Decoding<'a>>,
}

/// The request's project and DSN key, found as cheaply as the request allows: from the headers and
/// the query, and for an envelope from its header, read from at most
/// [`envelope::HEADER_PREFIX_BYTES`] of decoded body. Nothing past the envelope header is decoded,
/// parsed or normalized, so the caller can refuse an unknown key before paying for any of it.
/// Gives the same project and [`Auth`] (or error) as [`ingest`] for the same request.
pub fn authenticate<'a>(request: &Request<'a>, limits: &Limits) -> Result<Authenticated<'a>, IngestError> {
    let (project_id, request_auth) = project_and_request_auth(request)?;
    match request.endpoint {
        Endpoint::Store => {
            Ok(Authenticated { project_id, auth: request_auth.ok_or(AuthError::Missing)?, body: None })
        }
        Endpoint::Envelope => {
            if request.body.is_empty() {
                return Err(IngestError::EmptyBody);
            }
            // SDK headers fit the first 4 KiB; only a longer one reads on, to 64 KiB, from where the
            // first read stopped.
            let encoding = header(request.headers, "content-encoding");
            let mut body = decode::Decoding::start(request.body, encoding, limits.max_envelope_bytes)?;
            let mut headers = None;
            for bound in [4 << 10, envelope::HEADER_PREFIX_BYTES] {
                let (prefix, complete) = body.prefix(bound)?;
                if prefix.is_empty() {
                    return Err(IngestError::EmptyBody);
                }
                match envelope::parse_header_prefix(prefix, complete) {
                    Err(EnvelopeError::HeaderTooLarge { .. }) if bound < envelope::HEADER_PREFIX_BYTES => {
                        continue;
                    }
                    parsed => {
                        headers = Some(parsed.map_err(IngestError::Envelope)?);
                        break;
                    }
                }
            }
            let headers = headers.ok_or(IngestError::EmptyBody)?;
            let auth = auth::combine_with_dsn(request_auth, headers.dsn.as_deref(), project_id)?;
            Ok(Authenticated { project_id, auth, body: Some(body) })
        }
    }
}

/// The project id from the path and the request-level authentication (headers, query); the store
/// endpoint has no other source, so there it must be present.
fn project_and_request_auth(request: &Request<'_>) -> Result<(u64, Option<Auth>), IngestError> {
    let project_id =
        request.project_id.parse::<u64>().ok().filter(|id| *id > 0).ok_or(IngestError::BadProject)?;
    let request_auth = auth::from_request(request.headers, request.query)?;
    if request.endpoint == Endpoint::Store && request_auth.is_none() {
        return Err(AuthError::Missing.into());
    }
    Ok((project_id, request_auth))
}

/// Authenticates, decodes, parses and normalizes one ingest request.
pub fn ingest(request: &Request<'_>, limits: &Limits) -> Result<Ingested, IngestError> {
    ingest_decoding(request, limits, None)
}

/// [`ingest`] of a request [`authenticate`] has passed: its project and key as authentication found
/// them (the same as [`ingest`] finds), its body decoded on from where authentication stopped.
pub fn ingest_authenticated<'a>(
    request: &Request<'a>,
    limits: &Limits,
    authenticated: Authenticated<'a>,
) -> Result<Ingested, IngestError> {
    ingest_decoding(request, limits, Some(authenticated))
}

fn ingest_decoding<'a>(
    request: &Request<'a>,
    limits: &Limits,
    authenticated: Option<Authenticated<'a>>,
) -> Result<Ingested, IngestError> {
    // Authenticated already, or the request's own credentials to combine with the envelope's `dsn`.
    let (project_id, known, request_auth, started) = match authenticated {
        Some(a) => (a.project_id, Some(a.auth), None, a.body),
        None => {
            let (project_id, request_auth) = project_and_request_auth(request)?;
            (project_id, None, request_auth, None)
        }
    };
    if request.body.is_empty() {
        return Err(IngestError::EmptyBody);
    }
    let body = match started {
        Some(started) => started,
        None => decode::Decoding::start(
            request.body,
            header(request.headers, "content-encoding"),
            limits.max_envelope_bytes,
        )?,
    };
    let body = body.finish(limits.max_envelope_bytes)?;
    if body.is_empty() {
        return Err(IngestError::EmptyBody);
    }
    let envelope = match request.endpoint {
        Endpoint::Envelope => Envelope::parse(&body, limits).map_err(IngestError::Envelope)?,
        Endpoint::Store => parse_store_request(&body, header(request.headers, "content-type"), limits)?,
    };
    let auth = match known {
        Some(auth) => auth,
        None => auth::combine_with_dsn(request_auth, envelope.headers.dsn.as_deref(), project_id)?,
    };

    let client_ip = request
        .client_ip
        .or_else(|| {
            header(request.headers, "x-forwarded-for").and_then(|v| v.split(',').next()).map(str::trim)
        })
        .filter(|ip| !ip.is_empty());
    let config = NormalizeConfig {
        sent_at: envelope.headers.sent_at,
        client_ip: client_ip.map(str::to_owned),
        ..NormalizeConfig::new(project_id, request.received_at)
    };

    let mut events = Vec::new();
    let mut dropped = Vec::new();
    let mut acknowledged = Acknowledged::default();
    let mut has_event = false;
    for item in &envelope.items {
        let kind = match item.ty {
            ItemType::Event | ItemType::Transaction if has_event => {
                let kind = if item.ty == ItemType::Event { EventKind::Event } else { EventKind::Transaction };
                dropped.push(DroppedEvent {
                    event_id: None,
                    kind,
                    reason: DropReason::DuplicateItem(kind.item_type()),
                });
                continue;
            }
            ItemType::Event => EventKind::Event,
            ItemType::Transaction => EventKind::Transaction,
            ItemType::Attachment => {
                acknowledged.attachments.push(AttachmentInfo {
                    filename: item.header_str("filename").map(str::to_owned),
                    content_type: item.header_str("content_type").map(str::to_owned),
                    attachment_type: item
                        .header_str("attachment_type")
                        .unwrap_or("event.attachment")
                        .to_owned(),
                    size: item.payload.len(),
                });
                continue;
            }
            ItemType::Session => {
                acknowledged.sessions += 1;
                continue;
            }
            ItemType::Sessions => {
                acknowledged.session_aggregates += 1;
                continue;
            }
            ItemType::ClientReport => {
                acknowledged.client_reports += 1;
                continue;
            }
            ItemType::Span => {
                let count = item.headers.field("item_count").and_then(Value::as_u64);
                acknowledged.spans += count.map_or(1, |c| usize::try_from(c).unwrap_or(usize::MAX));
                continue;
            }
            ref other => {
                acknowledged.other.push(other.as_str().to_owned());
                continue;
            }
        };
        has_event = true;
        let payload = parse::parse_event(&item.payload).map_err(|e| match e {
            parse::ParseError::Json(e) => {
                IngestError::InvalidEvent { item_type: item.ty.as_str().to_owned(), source: Some(e) }
            }
            parse::ParseError::TooDense { limit } => {
                IngestError::TooDense { item_type: item.ty.as_str().to_owned(), limit }
            }
        })?;
        let Value::Object(mut payload) = payload else {
            return Err(IngestError::InvalidEvent { item_type: item.ty.as_str().to_owned(), source: None });
        };
        let sent_id = payload.field("event_id").and_then(Value::as_str).and_then(envelope::parse_event_id);
        if payload.field("event_id").is_none_or(Value::is_null)
            && let Some(id) = &envelope.headers.event_id
        {
            payload.insert("event_id".into(), Value::from(id.as_str()));
        }
        if kind == EventKind::Transaction {
            payload.insert("type".into(), Value::from("transaction"));
        }
        match normalize_event(Value::Object(payload), &config) {
            Ok(normalized) => {
                check_stored_size(&normalized, kind, item.payload.len(), limits)?;
                let event_id =
                    normalized.field("event_id").and_then(Value::as_str).unwrap_or_default().to_owned();
                events.push(IngestedEvent {
                    event_id,
                    kind,
                    payload: normalized,
                    payload_bytes: item.payload.len(),
                });
            }
            Err(reason) => dropped.push(DroppedEvent {
                event_id: sent_id.or_else(|| envelope.headers.event_id.clone()),
                kind,
                reason: reason.into(),
            }),
        }
    }

    Ok(Ingested { project_id, auth, envelope_headers: envelope.headers, events, dropped, acknowledged })
}

#[cfg(test)]
mod tests;
