//! Fuzz target bodies, shared by the `cargo fuzz` targets in `fuzz/` (nightly, libFuzzer) and by the
//! stable regression test `shared/tests/fuzz_regressions.rs`, which replays the committed seeds and every
//! crash input kept in `fuzz/regressions/` through the very same functions.
//!
//! Every function takes arbitrary bytes and must never panic. Besides "no panic, no stack overflow,
//! no runaway allocation", each one checks a few invariants of the code under test with `assert!` (an
//! accepted envelope has at most `max_items` items, an error maps to a 4xx the edge documents, an
//! accepted key is a plausible DSN key, a decoded invite cookie is unexpired and bound to the caller, …):
//! an assertion failure is a finding like any other panic.
//!
//! Only public API is used. Where the code under test keeps a piece private, the target says what it
//! does instead (the invite cookie's MAC is recomputed here from its documented format).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::domain::cookie::{COOKIE_NAME, InviteCookie};
use crate::grouping;
use crate::http::{ApiRequest, parse_cookies};
use crate::ingest::auth::{self, Auth, AuthError};
use crate::ingest::decode;
use crate::ingest::envelope::store::{parse_store_body, parse_store_request};
use crate::ingest::envelope::{Envelope, ItemType, Limits};
use crate::ingest::normalize::{NormalizeConfig, normalize_event};
use crate::ingest::{self, Endpoint, Request};
use crate::secret::Secret;

/// Receive time of every fuzzed request (the `timeEpoch` of the sample events in `events/`).
pub const RECEIVED_AT_SECS: i64 = 1_795_590_000;
/// The DSN public key of the sample events.
pub const DSN_KEY: &str = "c0ffee0c0ffee0c0ffee0c0ffee0c0ff";
/// The project of the sample events.
pub const PROJECT_ID: u64 = 42;
/// The invite-cookie key the `cookie` target signs and verifies with.
pub const COOKIE_KEY: &str = "fuzz-invite-cookie-key-0123456789abcdef";
/// The caller the `cookie` target decodes as.
pub const COOKIE_CALLER: &str = "42";
/// Prefix that selects `Content-Encoding: br` in the `envelope` target (brotli has no magic number).
pub const BROTLI_PREFIX: &[u8] = b"br:";
/// The superuser claim name used by the functions.
pub const SUPERUSER_CLAIM: &str = "postflow:superuser";

/// Statuses the ingest edge answers with for rejected requests.
const INGEST_ERROR_STATUSES: [u16; 4] = [400, 401, 403, 413];

fn received_at() -> DateTime<Utc> {
    DateTime::from_timestamp(RECEIVED_AT_SECS, 0).unwrap_or_default()
}

fn is_event_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The `Content-Encoding` the `envelope` target uses for `data`, and the body: gzip, zstd and zlib are
/// recognised by their magic numbers, brotli by [`BROTLI_PREFIX`]; anything else is identity.
pub fn sniff_encoding(data: &[u8]) -> (Option<&'static str>, &[u8]) {
    if let Some(rest) = data.strip_prefix(BROTLI_PREFIX) {
        return (Some("br"), rest);
    }
    let encoding = match data {
        [0x1f, 0x8b, ..] => Some("gzip"),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Some("zstd"),
        [cmf, flg, ..] if cmf & 0x0f == 8 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0 => {
            Some("deflate")
        }
        _ => None,
    };
    (encoding, data)
}

fn ingest_headers(content_encoding: Option<&str>, content_type: &str) -> Vec<(String, String)> {
    let mut headers = vec![
        (
            "x-sentry-auth".to_owned(),
            format!("Sentry sentry_key={DSN_KEY}, sentry_version=7, sentry_client=fuzz/1"),
        ),
        ("content-type".to_owned(), content_type.to_owned()),
        ("user-agent".to_owned(), "fuzz/1".to_owned()),
    ];
    if let Some(encoding) = content_encoding {
        headers.push(("content-encoding".to_owned(), encoding.to_owned()));
    }
    headers
}

/// Runs one request through [`ingest::ingest`] and checks the outcome's invariants.
fn check_ingest(request: &Request<'_>, limits: &Limits) {
    // Authentication first: whatever the full ingest accepts, the cheap step accepts with the same key.
    let authenticated = ingest::authenticate(request, limits);
    let direct = ingest::ingest(request, limits);
    // The handler's path (authenticate, then decode on from where it stopped) gives what `ingest` gives.
    if let Ok(started) = ingest::authenticate(request, limits) {
        let resumed = ingest::ingest_authenticated(request, limits, started);
        match (&direct, &resumed) {
            (Ok(a), Ok(b)) => {
                assert_eq!((a.project_id, &a.auth, a.events.len()), (b.project_id, &b.auth, b.events.len()));
                // (Event ids a payload lacks are made up per run.)
                for (x, y) in a.events.iter().zip(&b.events) {
                    assert_eq!((x.kind, x.payload_bytes), (y.kind, y.payload_bytes));
                }
            }
            (Err(a), Err(b)) => assert_eq!(a.status(), b.status(), "{a:?} / {b:?}"),
            (a, b) => panic!("ingest and authenticate + ingest_authenticated differ: {a:?} / {b:?}"),
        }
    }
    match direct {
        Ok(ingested) => {
            assert_eq!(ingested.project_id, PROJECT_ID);
            check_auth(&ingested.auth);
            match &authenticated {
                Ok(a) => assert_eq!((a.project_id, &a.auth), (ingested.project_id, &ingested.auth)),
                Err(e) => assert!(
                    matches!(
                        e,
                        ingest::IngestError::Envelope(ingest::envelope::EnvelopeError::HeaderTooLarge { .. })
                    ),
                    "ingest accepted what authenticate refused: {e:?}"
                ),
            }
            for event in &ingested.events {
                assert!(is_event_id(&event.event_id), "bad event id {:?}", event.event_id);
                assert_eq!(
                    event.payload.get("event_id").and_then(Value::as_str),
                    Some(event.event_id.as_str())
                );
                assert_eq!(event.payload.get("project").and_then(Value::as_u64), Some(PROJECT_ID));
                check_saveable(event.payload.clone());
            }
            if let Some(id) = ingested.response_event_id() {
                assert!(is_event_id(id), "bad response id {id:?}");
            }
        }
        Err(e) => {
            assert!(INGEST_ERROR_STATUSES.contains(&e.status()), "{e:?} → {}", e.status());
            let _ = (e.detail(), e.causes());
        }
    }
}

fn check_auth(auth: &Auth) {
    let key = &auth.public_key;
    assert!(!key.is_empty() && key.len() <= 64, "implausible key {key:?}");
    assert!(
        key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'),
        "key not normalized: {key:?}"
    );
}

/// `envelope`: content decoding (by magic number), envelope framing and limits, and the whole
/// envelope-endpoint ingest (authentication, parse, normalization) over raw request bytes.
pub fn envelope(data: &[u8]) {
    let limits = Limits::default();
    let (encoding, body) = sniff_encoding(data);

    match decode::decode_body(body, encoding, limits.max_envelope_bytes) {
        Ok(decoded) => {
            assert!(decoded.len() <= limits.max_envelope_bytes);
            match Envelope::parse(&decoded, &limits) {
                Ok(envelope) => {
                    assert!(envelope.items.len() <= limits.max_items);
                    for item in &envelope.items {
                        if item.ty.is_event_like() {
                            assert!(item.payload.len() <= limits.max_event_bytes);
                        }
                        assert_eq!(ItemType::from_name(item.ty.as_str()), item.ty);
                    }
                    if let Some(id) = &envelope.headers.event_id {
                        assert!(is_event_id(id), "bad envelope event id {id:?}");
                    }
                }
                Err(e) => assert!(matches!(e.status(), 400 | 413), "{e:?}"),
            }
        }
        Err(e) => assert!(matches!(e.status(), 400 | 413), "{e:?}"),
    }

    let headers = ingest_headers(encoding, "application/x-sentry-envelope");
    let request = Request {
        endpoint: Endpoint::Envelope,
        project_id: "42",
        headers: &headers,
        query: "",
        body,
        received_at: received_at(),
        client_ip: Some("203.0.113.20"),
    };
    check_ingest(&request, &limits);
}

/// `store_body`: the legacy `/store/` body (JSON, base64 JSON, base64 zlib JSON) and the store-endpoint
/// ingest.
pub fn store_body(data: &[u8]) {
    let limits = Limits::default();
    match parse_store_body(data, &limits) {
        Ok(event) => {
            assert!(event.payload.len() <= limits.max_event_bytes);
            assert!(matches!(event.ty, ItemType::Event | ItemType::Transaction));
            if let Some(id) = &event.event_id {
                assert!(is_event_id(id), "bad store event id {id:?}");
            }
        }
        Err(e) => assert!(matches!(e.status(), 400 | 413), "{e:?}"),
    }
    match parse_store_request(data, None, &limits) {
        Ok(envelope) => assert_eq!(envelope.items.len(), 1),
        Err(e) => assert!(matches!(e.status(), 400 | 413), "{e:?}"),
    }

    let headers = ingest_headers(None, "application/json");
    let request = Request {
        endpoint: Endpoint::Store,
        project_id: "42",
        headers: &headers,
        query: "",
        body: data,
        received_at: received_at(),
        client_ip: None,
    };
    check_ingest(&request, &limits);
}

/// `normalize`: Relay-compatible normalization of an arbitrary JSON document (non-JSON input is
/// skipped), then the grouping steps save-event applies to a normalized event.
pub fn normalize(data: &[u8]) {
    let Ok(event) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let was_object = event.is_object();
    let config = NormalizeConfig {
        sent_at: DateTime::from_timestamp(RECEIVED_AT_SECS - 7200, 0),
        client_ip: Some("203.0.113.20".to_owned()),
        ..NormalizeConfig::new(PROJECT_ID, received_at())
    };
    match normalize_event(event, &config) {
        Ok(normalized) => {
            assert!(was_object);
            let id = normalized.get("event_id").and_then(Value::as_str).unwrap_or_default();
            assert!(is_event_id(id), "bad normalized event id {id:?}");
            assert!(normalized.get("type").is_some_and(Value::is_string));
            assert_eq!(normalized.get("project").and_then(Value::as_u64), Some(PROJECT_ID));
            check_saveable(normalized);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// What save-event's `prepare` does with a normalized event (save tags, hashes or span grouping,
/// materialized metadata), using the same public `grouping` functions.
fn check_saveable(mut event: Value) {
    let ty = event.get("type").and_then(Value::as_str).unwrap_or("default").to_owned();
    let release =
        event.get("release").and_then(Value::as_str).filter(|r| !r.trim().is_empty()).map(str::to_owned);
    let dist = event.get("dist").and_then(Value::as_str).map(str::to_owned);
    grouping::tags::apply_save_tags(
        &mut event,
        release.as_deref(),
        dist.filter(|_| release.is_some()).as_deref(),
    );
    match ty.as_str() {
        "transaction" => {
            grouping::spans::calculate_span_grouping(&mut event);
        }
        "generic" => {}
        _ => {
            let hashes = grouping::hashing::calculate_hashes(&mut event);
            for hash in &hashes.hashes {
                assert!(is_event_id(hash), "bad grouping hash {hash:?}");
            }
        }
    }
    let metadata = grouping::metadata::materialize_metadata(&event);
    metadata.write_into(&mut event);
    let _ = grouping::metadata::search_message(&event);
    let level = event.get("level").and_then(Value::as_str).unwrap_or("error").to_owned();
    let _ = grouping::metadata::level_num(&level);
    let _ = grouping::metadata::is_placeholder_title(&metadata.title);
    let _ = crate::save::record::event_datetime(&event);
    let _ = crate::save::record::unexpected_tags(&event);
}

/// `apigw_event`: an API Gateway HTTP API (v2) event as JSON → `lambda_http` request (exactly as the
/// Lambda runtime converts it) → [`ApiRequest::from_lambda`], then what the handlers read from it: the
/// JSON body, the invite cookie, ingest authentication, and the save-event ingest.
pub fn apigw_event(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() {
        return;
    }
    if !lambda_http_converts(text) && !unguarded() {
        return;
    }
    let Ok(request) = lambda_http::request::from_str(text) else {
        return;
    };
    let api = ApiRequest::from_lambda(&request, SUPERUSER_CLAIM);
    for (name, _) in &api.headers {
        assert_eq!(*name, name.to_ascii_lowercase(), "header name not lower-cased");
    }
    if let Some(claims) = &api.claims {
        assert!(!claims.sub.is_empty() && claims.sub.len() <= 128);
        assert_eq!(claims.sub, claims.sub.trim());
        let _ = claims.is_sudo(RECEIVED_AT_SECS, 900);
    }
    for name in api.cookies.keys() {
        assert!(!name.is_empty() && name.trim() == name);
    }
    let _ = api.json_object();
    if let Some(value) = api.cookie(COOKIE_NAME) {
        let caller = api.claims.as_ref().map(|c| c.sub.as_str());
        check_cookie(InviteCookie::decode(value, &Secret::new(COOKIE_KEY), RECEIVED_AT_SECS, caller), caller);
    }
    match auth::from_request(&api.headers, &api.raw_query) {
        Ok(Some(found)) => check_auth(&found),
        Ok(None) => {}
        Err(e) => assert_eq!(e.status(), 401),
    }
    if api.method == "POST" && api.path.contains("/api/") {
        let endpoint = if api.path.trim_end_matches('/').ends_with("/store") {
            Endpoint::Store
        } else {
            Endpoint::Envelope
        };
        let request = Request {
            endpoint,
            project_id: api.path_param("project_id").unwrap_or_default(),
            headers: &api.headers,
            query: &api.raw_query,
            body: &api.body,
            received_at: received_at(),
            client_ip: api.source_ip.as_deref(),
        };
        match ingest::ingest(&request, &Limits::default()) {
            Ok(ingested) => {
                check_auth(&ingested.auth);
                for event in &ingested.events {
                    assert!(is_event_id(&event.event_id));
                }
            }
            Err(e) => assert!(INGEST_ERROR_STATUSES.contains(&e.status()), "{e:?}"),
        }
    }
}

/// `FUZZ_APIGW_UNGUARDED=1` lets the `apigw_event` target hand every event to lambda_http, to check
/// that the guard below is still needed (the fuzzer then stops at the dependency's panic).
fn unguarded() -> bool {
    static UNGUARDED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *UNGUARDED.get_or_init(|| std::env::var_os("FUZZ_APIGW_UNGUARDED").is_some_and(|v| v == "1"))
}

pub use crate::http::lambda_http_converts;

/// `cookie`: the signed invite cookie and the `Cookie` header parser over arbitrary text, plus — since a
/// fuzzer cannot forge the HMAC — the same bytes signed as a cookie payload, so that decoding reaches the
/// JSON, expiry and user-binding checks.
pub fn cookie(data: &[u8]) {
    let key = Secret::new(COOKIE_KEY);
    let text = String::from_utf8_lossy(data);

    // The bytes as a cookie value (only the committed seeds carry a valid signature).
    check_cookie(
        InviteCookie::decode(&text, &key, RECEIVED_AT_SECS, Some(COOKIE_CALLER)),
        Some(COOKIE_CALLER),
    );
    let jar = parse_cookies(std::iter::once(text.as_ref()));
    for (name, value) in &jar {
        assert!(!name.is_empty() && name.trim() == name);
        if name == COOKIE_NAME {
            check_cookie(InviteCookie::decode(value, &key, RECEIVED_AT_SECS, None), None);
        }
    }

    // The bytes as a correctly signed payload.
    let value = sign_cookie_payload(data, &key);
    let decoded = InviteCookie::decode(&value, &key, RECEIVED_AT_SECS, Some(COOKIE_CALLER));
    if value.len() > 2048 {
        assert_eq!(decoded, None, "oversized cookie accepted");
    }
    check_cookie(decoded.clone(), Some(COOKIE_CALLER));
    if let Some(cookie) = decoded {
        let other_key = Secret::new("another-fuzz-key-another-fuzz-key-0000");
        assert_eq!(InviteCookie::decode(&value, &other_key, RECEIVED_AT_SECS, Some(COOKIE_CALLER)), None);
        assert_eq!(InviteCookie::decode(&value, &key, cookie.expires_at, Some(COOKIE_CALLER)), None);
        if let Some(encoded) = cookie.encode(&key)
            && encoded.len() <= 2048
        {
            assert_eq!(
                InviteCookie::decode(&encoded, &key, RECEIVED_AT_SECS, Some(COOKIE_CALLER)),
                Some(cookie)
            );
        }
    }
}

/// `base64url(payload) "." base64url(HMAC-SHA256(key, "postflow-invite.v1." + base64url(payload)))`,
/// the format documented in `domain::cookie` (whose MAC helper is private).
pub fn sign_cookie_payload(payload: &[u8], key: &Secret) -> String {
    let payload = B64.encode(payload);
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.expose().as_bytes()) else {
        return String::new();
    };
    mac.update(b"postflow-invite.v1.");
    mac.update(payload.as_bytes());
    format!("{payload}.{}", B64.encode(mac.finalize().into_bytes()))
}

fn check_cookie(decoded: Option<InviteCookie>, caller: Option<&str>) {
    if let Some(cookie) = decoded {
        assert!(cookie.expires_at > RECEIVED_AT_SECS, "expired cookie accepted");
        if let Some(bound) = &cookie.user_id {
            assert_eq!(Some(bound.as_str()), caller, "cookie of another user accepted");
        }
    }
}

/// `auth_header`: DSN authentication. The input is split on `\n` into an `X-Sentry-Auth` value, an
/// `Authorization` value, a raw query string and an envelope `dsn`; the whole text is also tried as each.
pub fn auth_header(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, '\n');
    let sentry_auth = parts.next().unwrap_or_default();
    let authorization = parts.next().unwrap_or_default();
    let query = parts.next().unwrap_or_default();
    let dsn = parts.next().unwrap_or_default();

    let mut headers = vec![("user-agent".to_owned(), "fuzz/1".to_owned())];
    if !sentry_auth.is_empty() {
        headers.push(("x-sentry-auth".to_owned(), sentry_auth.to_owned()));
    }
    if !authorization.is_empty() {
        headers.push(("authorization".to_owned(), authorization.to_owned()));
    }
    let request = check_from_request(&headers, query);
    let dsn = (!dsn.is_empty()).then_some(dsn);
    match auth::combine_with_dsn(request, dsn, PROJECT_ID) {
        Ok(found) => check_auth(&found),
        Err(e) => assert!(matches!(e.status(), 401 | 403)),
    }

    let whole = text.as_ref();
    check_from_request(&[("x-sentry-auth".to_owned(), whole.to_owned())], "");
    check_from_request(&[("authorization".to_owned(), whole.to_owned())], "");
    check_from_request(&[], whole);
    for _ in auth::query_pairs(whole) {}
    for candidate in [whole, sentry_auth, dsn.unwrap_or_default()] {
        if let Ok(parsed) = auth::parse_dsn(candidate) {
            assert!(parsed.project_id > 0);
            assert!(!parsed.public_key.is_empty() && parsed.public_key.len() <= 64);
        }
    }
}

fn check_from_request(headers: &[(String, String)], query: &str) -> Option<Auth> {
    match auth::from_request(headers, query) {
        Ok(found) => {
            if let Some(found) = &found {
                check_auth(found);
            }
            found
        }
        Err(e) => {
            assert_eq!(e.status(), 401);
            assert_ne!(e, AuthError::ProjectMismatch);
            None
        }
    }
}

/// `phone_number`: the SMS form's `phone` field (libphonenumber runs inside the enroll function, where
/// a panic aborts the process). What is accepted is `+` and ASCII digits — a country code of 1–3 and
/// a national number of at most 17 (libphonenumber's bound: E.164's 15 in all is not, a 14-digit German
/// number is valid for it and for Python's `phonenumbers` alike; the fuzzer found one) — the same again
/// when given back, and textable only if valid; the premium and country checks never accept what
/// validation refused.
pub fn phone_number(data: &[u8]) {
    use crate::domain::sms::{AllowedCountries, Refusal, phone_number_as_e164, textable_e164};
    let text = String::from_utf8_lossy(data);
    let valid = phone_number_as_e164(&text);
    if let Ok(e164) = &valid {
        let digits = e164.strip_prefix('+').unwrap_or_default();
        assert!((2..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()), "{e164}");
        assert_eq!(phone_number_as_e164(e164).as_ref(), Ok(e164), "E.164 is a fixed point");
    }
    match textable_e164(&text, &AllowedCountries::All) {
        Ok(e164) => assert_eq!(valid.as_ref(), Ok(&e164)),
        Err(Refusal::Invalid) => assert!(valid.is_err()),
        Err(Refusal::NumberType) => assert!(valid.is_ok()),
        Err(Refusal::Country) => panic!("every country is allowed here"),
    }
}
