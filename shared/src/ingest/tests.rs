//! Tests of the [`ingest`](super::ingest) facade: every malformed-input class maps to its status
//! and nothing is returned for saving.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;

use chrono::TimeZone;
use serde_json::json;

use super::*;

const KEY: &str = "c0ffee0c0ffee0c0ffee0c0ffee0c0ff";
const AUTH: &str =
    "Sentry sentry_key=c0ffee0c0ffee0c0ffee0c0ffee0c0ff, sentry_version=7, sentry_client=test/1";

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn request<'a>(
    endpoint: Endpoint,
    project: &'a str,
    headers: &'a [(String, String)],
    query: &'a str,
    body: &'a [u8],
) -> Request<'a> {
    Request {
        endpoint,
        project_id: project,
        headers,
        query,
        body,
        received_at: Utc.timestamp_opt(1_717_243_200, 0).unwrap(),
        client_ip: None,
    }
}

fn run(
    endpoint: Endpoint,
    project: &str,
    headers: &[(String, String)],
    query: &str,
    body: &[u8],
) -> Result<Ingested, IngestError> {
    ingest(&request(endpoint, project, headers, query, body), &Limits::default())
}

fn envelope(body: &[u8]) -> Result<Ingested, IngestError> {
    run(Endpoint::Envelope, "42", &headers(&[("x-sentry-auth", AUTH)]), "", body)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

const EVENT_ENVELOPE: &[u8] =
    b"{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\",\"sent_at\":\"2024-06-01T11:59:59Z\"}\n\
{\"type\":\"event\"}\n{\"message\":\"hello\",\"level\":\"warning\"}\n\
{\"type\":\"attachment\",\"length\":5,\"filename\":\"a.txt\"}\nhello\n\
{\"type\":\"session\"}\n{\"sid\":\"x\"}\n\
{\"type\":\"client_report\"}\n{}\n\
{\"type\":\"span\",\"item_count\":4}\n{}\n\
{\"type\":\"statsd\"}\nfoo:1|c\n";

#[test]
fn envelope_with_every_item_kind() {
    let out = envelope(EVENT_ENVELOPE).unwrap();
    assert_eq!(out.project_id, 42);
    assert_eq!(out.auth.public_key, KEY);
    assert_eq!(out.events.len(), 1);
    let event = &out.events[0];
    // the envelope's event id is used when the payload has none
    assert_eq!(event.event_id, "9ec79c33ec9942ab8353589fcb2e04dc");
    assert_eq!(event.kind, EventKind::Event);
    assert_eq!(event.payload["level"], "warning");
    assert_eq!(event.payload["logentry"]["formatted"], "hello");
    assert_eq!(out.response_event_id(), Some("9ec79c33ec9942ab8353589fcb2e04dc"));
    let ack = &out.acknowledged;
    assert_eq!(ack.sessions, 1);
    assert_eq!(ack.client_reports, 1);
    assert_eq!(ack.spans, 4);
    assert_eq!(ack.other, vec!["statsd".to_owned()]);
    assert_eq!(
        ack.attachments,
        vec![AttachmentInfo {
            filename: Some("a.txt".into()),
            content_type: None,
            attachment_type: "event.attachment".into(),
            size: 5,
        }]
    );
}

#[test]
fn gzip_envelope_and_query_auth() {
    let body = gzip(EVENT_ENVELOPE);
    let out = run(
        Endpoint::Envelope,
        "42",
        &headers(&[("content-encoding", "gzip")]),
        "sentry_version=7&sentry_key=c0ffee0c0ffee0c0ffee0c0ffee0c0ff&sentry_client=sentry.javascript.node%2F11.12.0",
        &body,
    )
    .unwrap();
    assert_eq!(out.auth.client.as_deref(), Some("sentry.javascript.node/11.12.0"));
    assert_eq!(out.events.len(), 1);
}

#[test]
fn envelope_dsn_header_authenticates() {
    let body =
        b"{\"dsn\":\"https://c0ffee0c0ffee0c0ffee0c0ffee0c0ff@example.com/42\"}\n{\"type\":\"session\"}\n{}";
    let out = run(Endpoint::Envelope, "42", &[], "", body).unwrap();
    assert_eq!(out.auth.source, auth::AuthSource::EnvelopeDsn);
    assert_eq!(out.response_event_id(), None);
    let err = run(Endpoint::Envelope, "43", &[], "", body).unwrap_err();
    assert_eq!(err.status(), 403);
    let err = run(Endpoint::Envelope, "42", &[], "sentry_key=deadbeef", body).unwrap_err();
    assert_eq!((err.status(), err.detail().as_str()), (401, "multiple authorization payloads detected"));
}

#[test]
fn store_endpoint() {
    let h = headers(&[("x-sentry-auth", AUTH), ("content-type", "application/json")]);
    let out = run(
        Endpoint::Store,
        "42",
        &h,
        "",
        br#"{"message":"hi","event_id":"52DF9022-8352-46EE-B317-DBD739CCD059"}"#,
    )
    .unwrap();
    assert_eq!(out.response_event_id(), Some("52df9022835246eeb317dbd739ccd059"));
    let out = run(Endpoint::Store, "42", &h, "", br#"{"type":"transaction","start_timestamp":1717243198,"timestamp":1717243199,"contexts":{"trace":{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7"}}}"#)
        .unwrap();
    assert_eq!(out.events[0].kind, EventKind::Transaction);
    // no event id: generated and reported
    let out = run(Endpoint::Store, "42", &h, "", br#"{"message":"hi"}"#).unwrap();
    assert_eq!(out.response_event_id().map(str::len), Some(32));
    // an envelope posted to /store/
    let h = headers(&[("x-sentry-auth", AUTH), ("content-type", "application/x-sentry-envelope")]);
    let out = run(Endpoint::Store, "42", &h, "", EVENT_ENVELOPE).unwrap();
    assert_eq!(out.acknowledged.sessions, 1);
}

#[test]
fn invalid_transactions_are_dropped_not_errors() {
    let body = b"{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\"}\n{\"type\":\"transaction\"}\n{\"start_timestamp\":1717243198,\"timestamp\":1717243199}\n";
    let out = envelope(body).unwrap();
    assert!(out.events.is_empty());
    assert_eq!(out.dropped.len(), 1);
    assert_eq!(out.dropped[0].event_id.as_deref(), Some("9ec79c33ec9942ab8353589fcb2e04dc"));
    assert_eq!(
        out.dropped[0].reason,
        NormalizeError::InvalidTransaction("missing valid trace context").into()
    );
    assert_eq!(out.response_event_id(), Some("9ec79c33ec9942ab8353589fcb2e04dc"));
}

/// Every malformed-input class: (name, result, status, detail substring).
#[test]
fn malformed_inputs_map_to_statuses() {
    let auth = headers(&[("x-sentry-auth", AUTH)]);
    let gz = headers(&[("x-sentry-auth", AUTH), ("content-encoding", "gzip")]);
    let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..24 {
        bomb.write_all(&zeros).unwrap();
    }
    let bomb = bomb.finish().unwrap();
    let big_event = format!("{{}}\n{{\"type\":\"event\"}}\n{{\"message\":\"{}\"}}\n", "x".repeat(1 << 20));
    let many_items = format!("{{}}\n{}", "{\"type\":\"session\"}\n{}\n".repeat(101));
    let cases: Vec<(&str, Result<Ingested, IngestError>, u16, &str)> = vec![
        ("bad project", run(Endpoint::Envelope, "abc", &auth, "", EVENT_ENVELOPE), 400, "bad project path"),
        ("project zero", run(Endpoint::Envelope, "0", &auth, "", EVENT_ENVELOPE), 400, "bad project path"),
        (
            "missing key",
            run(Endpoint::Envelope, "42", &[], "", EVENT_ENVELOPE),
            401,
            "missing authorization information",
        ),
        (
            "missing key store",
            run(Endpoint::Store, "42", &[], "", b"{}"),
            401,
            "missing authorization information",
        ),
        (
            "bad auth header",
            run(
                Endpoint::Envelope,
                "42",
                &headers(&[("x-sentry-auth", "Sentry sentry_version=7")]),
                "",
                EVENT_ENVELOPE,
            ),
            401,
            "bad x-sentry-auth header",
        ),
        ("empty body", envelope(b""), 400, "empty request body"),
        ("empty store body", run(Endpoint::Store, "42", &auth, "", b""), 400, "empty request body"),
        (
            "bad gzip",
            run(Endpoint::Envelope, "42", &gz, "", b"not gzip at all"),
            400,
            "failed to decode gzip",
        ),
        ("decompression bomb", run(Endpoint::Envelope, "42", &gz, "", &bomb), 413, "size limit"),
        (
            "truncated envelope",
            envelope(b"{}\n{\"type\":\"event\",\"length\":100}\n{}"),
            400,
            "invalid event envelope",
        ),
        (
            "wrong length",
            envelope(b"{}\n{\"type\":\"event\",\"length\":2}\n{}}\n"),
            400,
            "invalid event envelope",
        ),
        ("bad envelope header", envelope(b"{nope\n"), 400, "invalid event envelope"),
        (
            "duplicate sent_at",
            envelope(b"{\"sent_at\":\"2024-01-01T00:00:00Z\",\"sent_at\":\"2024-01-01T00:00:00Z\"}\n"),
            400,
            "invalid event envelope",
        ),
        ("bad event JSON", envelope(b"{}\n{\"type\":\"event\"}\n{nope}\n"), 400, "invalid event JSON"),
        ("event not an object", envelope(b"{}\n{\"type\":\"event\"}\n[1]\n"), 400, "invalid event JSON"),
        ("bad store JSON", run(Endpoint::Store, "42", &auth, "", b"{nope"), 400, "invalid JSON data"),
        (
            "bad store event id",
            run(Endpoint::Store, "42", &auth, "", br#"{"event_id":"zzz"}"#),
            400,
            "invalid event id",
        ),
        ("oversized item", envelope(big_event.as_bytes()), 413, "size limits for type 'event'"),
        ("too many items", envelope(many_items.as_bytes()), 413, "100 items"),
    ];
    for (name, result, status, detail) in cases {
        let err = result.expect_err(name);
        assert_eq!(err.status(), status, "{name}: {err:?}");
        assert!(err.detail().contains(detail), "{name}: {}", err.detail());
    }
}

#[test]
fn causes_explain_envelope_errors() {
    let err = envelope(b"{}\n{\"type\":\"event\",\"length\":100}\n{}").unwrap_err();
    assert_eq!(err.detail(), "invalid event envelope");
    assert_eq!(err.causes(), vec!["unexpected end of file".to_owned()]);
    let err = envelope(b"{\"sent_at\":\"2024-01-01T00:00:00Z\",\"sent_at\":\"2024-01-01T00:00:00Z\"}\n")
        .unwrap_err();
    assert!(err.causes().iter().any(|c| c.contains("duplicate field `sent_at`")), "{:?}", err.causes());
}

#[test]
fn client_ip_from_forwarded_for() {
    let h = headers(&[("x-sentry-auth", AUTH), ("x-forwarded-for", "10.9.8.7, 1.1.1.1")]);
    let body =
        b"{}\n{\"type\":\"event\"}\n{\"platform\":\"javascript\",\"user\":{\"ip_address\":\"{{auto}}\"}}\n";
    let out = run(Endpoint::Envelope, "42", &h, "", body).unwrap();
    assert_eq!(out.events[0].payload["user"]["ip_address"], json!("10.9.8.7"));
}

fn auth_only(headers: &[(String, String)], body: &[u8]) -> Result<(u64, Auth), IngestError> {
    authenticate(&request(Endpoint::Envelope, "42", headers, "", body), &Limits::default())
        .map(|a| (a.project_id, a.auth))
}

/// The handler's path — [`authenticate`], then [`ingest_authenticated`] decoding on from where
/// authentication stopped — gives what [`ingest`] gives: bodies decoded within the first 4 KiB read,
/// past it, with a header longer than 4 KiB, stacked codings, too large, and cut short.
#[test]
fn ingest_goes_on_from_where_authentication_stopped() {
    let dsn = format!("https://{KEY}@o1.ingest.example/42");
    let event = |pad: usize| {
        let payload = json!({ "message": "m", "extra": { "pad": "x".repeat(pad) } }).to_string();
        format!("{}\n{{\"type\":\"event\"}}\n{payload}\n", json!({ "dsn": dsn, "h": "y".repeat(pad / 2) }))
    };
    let gz = |pad: usize| gzip(event(pad).as_bytes());
    let mut cut = gz(20 << 10);
    cut.truncate(cut.len() - 20);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("gzip", gz(100)),
        ("gzip", gz(6 << 10)),
        ("gzip", gz(20 << 10)),
        ("gzip, gzip", gzip(&gz(20 << 10))),
        ("", event(6 << 10).into_bytes()),
        ("gzip", gzip(&vec![b' '; 30 << 20])),
        ("gzip", cut),
    ];
    for (encoding, body) in &cases {
        let h = headers(&[("content-encoding", encoding)]);
        let req = request(Endpoint::Envelope, "42", &h, "", body);
        let direct = ingest(&req, &Limits::default());
        let resumed = authenticate(&req, &Limits::default())
            .and_then(|a| ingest_authenticated(&req, &Limits::default(), a));
        match (direct, resumed) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.events.len(), 1);
                assert_eq!(
                    (a.auth, &a.events[0].payload["extra"], a.events[0].payload_bytes),
                    (b.auth, &b.events[0].payload["extra"], b.events[0].payload_bytes)
                );
            }
            // (30 MiB of spaces: the header is found too large before the body is: 413 both ways.)
            (Err(a), Err(b)) => assert_eq!(a.status(), b.status(), "{encoding}: {a:?} / {b:?}"),
            (a, b) => panic!("{encoding}: {a:?} / {b:?}"),
        }
    }
}

/// [`authenticate`] reads only the envelope header — a body whose items are garbage authenticates —
/// and finds the key where the full ingest does: headers, or the header's `dsn` (also pretty-printed,
/// after leading whitespace, under gzip, past the first 4 KiB); a header that does not end within
/// 64 KiB is a 413, and the same errors as the full ingest otherwise.
#[test]
fn authenticate_reads_the_header_only() {
    let dsn = format!("https://{KEY}@o1.ingest.example/42");
    let garbage = b"\n{\"type\":\"event\",\"length\":99999}\n{not json";
    let with = |header: String| [header.as_bytes(), garbage].concat();
    let none = headers(&[]);
    let (project, auth) = auth_only(&headers(&[("x-sentry-auth", AUTH)]), &with("{}".into())).unwrap();
    assert_eq!(
        (project, auth.public_key.as_str(), auth.source),
        (42, KEY, auth::AuthSource::SentryAuthHeader)
    );
    for header in [
        json!({ "dsn": dsn }).to_string(),
        format!("\n  {{\n \"dsn\": \"{dsn}\"\n}}"),
        json!({ "dsn": dsn, "pad": "x".repeat(10 << 10) }).to_string(),
    ] {
        let (_, auth) = auth_only(&none, &with(header.clone())).unwrap();
        assert_eq!(
            (auth.public_key.as_str(), auth.source),
            (KEY, auth::AuthSource::EnvelopeDsn),
            "{header:.40}"
        );
        let gz = gzip(&with(header));
        let (_, auth) = auth_only(&headers(&[("content-encoding", "gzip")]), &gz).unwrap();
        assert_eq!(auth.public_key, KEY);
    }
    let huge = json!({ "dsn": dsn, "pad": "x".repeat(70 << 10) }).to_string();
    let err = auth_only(&none, &with(huge)).unwrap_err();
    assert_eq!(
        (err.status(), err.detail().as_str()),
        (413, "envelope header exceeded its size limit of 65536 bytes")
    );
    // The errors of the full ingest, where it would stop at the header.
    for (body, status) in [(&b""[..], 400), (b"{\"dsn\": 5}\n", 400), (b"{}\n", 401), (b"[]", 400)] {
        assert_eq!(
            auth_only(&none, body).unwrap_err().status(),
            status,
            "{:?}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(envelope_noauth(body).unwrap_err().status(), status);
    }
    let other = json!({ "dsn": format!("https://{KEY}@o1.ingest.example/43") }).to_string();
    assert_eq!(auth_only(&none, other.as_bytes()).unwrap_err().status(), 403);
}

fn envelope_noauth(body: &[u8]) -> Result<Ingested, IngestError> {
    run(Endpoint::Envelope, "42", &headers(&[]), "", body)
}
