//! Fuzzing on stable: replays the committed seed corpora (`fuzz/seeds/<target>/`) and every input kept
//! in `fuzz/regressions/<target>/` (crashes found by `scripts/fuzz`, fixed or guarded) through the same
//! `shared::fuzzing` functions the `cargo fuzz` targets call; then checks the size and depth limits of
//! the ingest edge and the API Gateway decoding with inputs built here (deep JSON, too many items, many
//! and huge headers, decompression bombs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use shared::domain::cookie::InviteCookie;
use shared::fuzzing::{self, COOKIE_CALLER, COOKIE_KEY, DSN_KEY, RECEIVED_AT_SECS};
use shared::http::ApiRequest;
use shared::ingest::decode::{self, DecodeError};
use shared::ingest::envelope::store::{StoreError, parse_store_body};
use shared::ingest::envelope::{Envelope, EnvelopeError, Limits};
use shared::ingest::{self, Endpoint, IngestError, Request};
use shared::secret::Secret;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 7] = [
    ("envelope", fuzzing::envelope),
    ("store_body", fuzzing::store_body),
    ("normalize", fuzzing::normalize),
    ("apigw_event", fuzzing::apigw_event),
    ("cookie", fuzzing::cookie),
    ("auth_header", fuzzing::auth_header),
    ("phone_number", fuzzing::phone_number),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    out.sort();
    out
}

/// Runs `target` on every file, collecting the ones that panic (with the panic message).
fn replay(target: Target, paths: &[PathBuf]) -> Vec<String> {
    let mut failures = Vec::new();
    for path in paths {
        let data = std::fs::read(path).unwrap();
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| target(&data))) {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failures.push(format!("{}: {msg}", path.display()));
        }
    }
    failures
}

#[test]
fn seeds_and_regressions_replay_without_panics() {
    let mut failures = Vec::new();
    for (name, target) in TARGETS {
        let seeds = files(&fuzz_dir().join("seeds").join(name));
        assert!(seeds.len() >= 5, "fuzz/seeds/{name} has {} files; run python3 fuzz/seed.py", seeds.len());
        failures.extend(replay(target, &seeds));
        failures.extend(replay(target, &files(&fuzz_dir().join("regressions").join(name))));
    }
    assert!(failures.is_empty(), "inputs that panic:\n{}", failures.join("\n"));
}

fn seeds_named(target: &str, prefix: &str) -> Vec<(String, Vec<u8>)> {
    let out: Vec<_> = files(&fuzz_dir().join("seeds").join(target))
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    assert!(!out.is_empty(), "no {prefix}* seeds for {target}");
    out
}

/// The seeds marked `ok-` are accepted, so the fuzzer starts from inputs that reach deep into the code
/// (and the stored samples still parse).
#[test]
fn ok_seeds_are_accepted() {
    let limits = Limits::default();
    for (path, data) in seeds_named("envelope", "ok-") {
        let (encoding, body) = fuzzing::sniff_encoding(&data);
        let decoded = decode::decode_body(body, encoding, limits.max_envelope_bytes)
            .unwrap_or_else(|e| panic!("{path}: {e:?}"));
        Envelope::parse(&decoded, &limits).unwrap_or_else(|e| panic!("{path}: {e:?}"));
        if path.ends_with(".br") || path.ends_with(".zst") {
            assert_ne!(&*decoded, body, "{path} was not decoded");
        }
    }
    for (path, data) in seeds_named("store_body", "ok-") {
        parse_store_body(&data, &limits).unwrap_or_else(|e| panic!("{path}: {e:?}"));
    }
    for (path, data) in seeds_named("apigw_event", "ok-") {
        let text = std::str::from_utf8(&data).unwrap();
        assert!(fuzzing::lambda_http_converts(text), "{path}");
        let req = lambda_http::request::from_str(text).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(!ApiRequest::from_lambda(&req, fuzzing::SUPERUSER_CLAIM).method.is_empty());
    }
    let key = Secret::new(COOKIE_KEY);
    for (path, data) in seeds_named("cookie", "signed-") {
        let text = String::from_utf8(data).unwrap();
        let decoded = InviteCookie::decode(&text, &key, RECEIVED_AT_SECS, Some(COOKIE_CALLER));
        assert_eq!(decoded.is_some(), !path.ends_with("expired.cookie"), "{path}");
    }
}

/// `lambda_http` panics while converting an event whose `rawPath`/`rawQueryString`/host do not form a
/// URI, or whose `isBase64Encoded` body is not base64; the `apigw_event` target skips those events (see `fuzzing::lambda_http_converts`). This checks
/// that the guard matches the dependency on the kept inputs: each is skipped, and lambda_http still
/// panics on it — when it stops panicking, the guard (and this test's expectation) can go.
#[test]
fn lambda_http_uri_panics_are_guarded() {
    let kept = files(&fuzz_dir().join("regressions").join("apigw_event"));
    let uri_cases: Vec<_> = kept
        .iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("lambda-http-"))
        .collect();
    assert!(!uri_cases.is_empty(), "the lambda_http panic inputs are kept in fuzz/regressions/apigw_event/");
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut wrong = Vec::new();
    for path in uri_cases {
        let text = std::fs::read_to_string(path).unwrap();
        let skipped = !fuzzing::lambda_http_converts(&text);
        let panics = catch_unwind(|| lambda_http::request::from_str(&text).map(|_| ())).is_err();
        if !(skipped && panics) {
            wrong.push(format!("{}: skipped={skipped} lambda_http panics={panics}", path.display()));
        }
    }
    std::panic::set_hook(hook);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------

fn received_at() -> DateTime<Utc> {
    DateTime::from_timestamp(RECEIVED_AT_SECS, 0).unwrap()
}

fn auth_headers(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut headers =
        vec![("x-sentry-auth".to_owned(), format!("Sentry sentry_key={DSN_KEY}, sentry_version=7"))];
    headers.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    headers
}

fn ingest_envelope(body: &[u8], headers: &[(String, String)]) -> Result<ingest::Ingested, IngestError> {
    let request = Request {
        endpoint: Endpoint::Envelope,
        project_id: "42",
        headers,
        query: "",
        body,
        received_at: received_at(),
        client_ip: None,
    };
    ingest::ingest(&request, &Limits::default())
}

fn ingest_store(body: &[u8]) -> Result<ingest::Ingested, IngestError> {
    let headers = auth_headers(&[]);
    let request = Request {
        endpoint: Endpoint::Store,
        project_id: "42",
        headers: &headers,
        query: "",
        body,
        received_at: received_at(),
        client_ip: None,
    };
    ingest::ingest(&request, &Limits::default())
}

fn nested_arrays(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

const DEEP: usize = 10_000;

/// Runs `f` on a thread with a 2 MiB stack — the size of a tokio worker thread, where the Lambda
/// handlers run — so that unbounded recursion shows up as a stack overflow (which aborts the test binary).
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new().stack_size(2 << 20).spawn(f).unwrap().join().unwrap()
}

#[test]
fn deep_json_in_an_event_item_is_a_clean_400() {
    on_small_stack(|| {
        let payload = format!(r#"{{"message":"deep","extra":{{"a":{}}}}}"#, nested_arrays(DEEP));
        let body = format!("{{}}\n{{\"type\":\"event\"}}\n{payload}\n");
        let err = ingest_envelope(body.as_bytes(), &auth_headers(&[])).unwrap_err();
        assert!(matches!(err, IngestError::InvalidEvent { source: Some(_), .. }), "{err:?}");
        assert_eq!(err.status(), 400);
        assert!(err.causes().iter().any(|c| c.contains("recursion limit")), "{:?}", err.causes());
        fuzzing::envelope(body.as_bytes());
        fuzzing::normalize(payload.as_bytes());
    });
}

#[test]
fn deep_json_in_envelope_and_item_headers_is_a_clean_400() {
    on_small_stack(|| {
        let deep = nested_arrays(DEEP);
        let header = format!("{{\"x\":{deep}}}\n");
        let err = Envelope::parse(header.as_bytes(), &Limits::default()).unwrap_err();
        assert!(matches!(err, EnvelopeError::InvalidHeader(_)), "{err:?}");
        let item = format!("{{}}\n{{\"type\":\"event\",\"x\":{deep}}}\n{{}}\n");
        let err = Envelope::parse(item.as_bytes(), &Limits::default()).unwrap_err();
        assert!(matches!(err, EnvelopeError::InvalidItemHeader(_)), "{err:?}");
        assert_eq!(err.status(), 400);
    });
}

#[test]
fn deep_json_in_a_store_body_is_a_clean_400() {
    on_small_stack(|| {
        // The minimal parse skips unknown fields iteratively, so the body passes it…
        let body = format!(r#"{{"message":"deep","extra":{}}}"#, nested_arrays(DEEP));
        assert!(parse_store_body(body.as_bytes(), &Limits::default()).is_ok());
        // …and the full parse stops at serde_json's recursion limit.
        let err = ingest_store(body.as_bytes()).unwrap_err();
        assert_eq!(err.status(), 400, "{err:?}");
        fuzzing::store_body(body.as_bytes());
    });
}

/// Just under serde_json's recursion limit (128), a nested value reaches normalization and grouping;
/// they must not recurse deeper than that on a 2 MiB stack.
#[test]
fn nesting_just_under_the_parser_limit_normalizes() {
    on_small_stack(|| {
        let deep = nested_arrays(120);
        let object = |depth: usize| format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
        let event = json!({
            "message": "almost too deep",
            "extra": serde_json::from_str::<Value>(&deep).unwrap(),
            "contexts": {"deep": serde_json::from_str::<Value>(&object(120)).unwrap()},
            "tags": {"t": serde_json::from_str::<Value>(&deep).unwrap()},
            "exception": {"values": [{"type": "E", "value": "v", "stacktrace": {"frames": [
                {"function": "f", "vars": serde_json::from_str::<Value>(&object(110)).unwrap()}
            ]}}]},
        })
        .to_string();
        let body = format!("{{}}\n{{\"type\":\"event\"}}\n{event}\n");
        let ingested = ingest_envelope(body.as_bytes(), &auth_headers(&[])).unwrap();
        assert_eq!(ingested.events.len(), 1);
        fuzzing::normalize(event.as_bytes());
        fuzzing::envelope(body.as_bytes());
    });
}

#[test]
fn deep_json_in_an_api_gateway_event_is_rejected_cleanly() {
    on_small_stack(|| {
        let event = format!(r#"{{"version":"2.0","rawPath":"/","headers":{}}}"#, nested_arrays(DEEP));
        assert!(lambda_http::request::from_str(&event).is_err());
        fuzzing::apigw_event(event.as_bytes());
    });
}

fn envelope_with_items(n: usize) -> Vec<u8> {
    let mut body = b"{}\n".to_vec();
    for _ in 0..n {
        body.extend_from_slice(b"{\"type\":\"session\"}\n{\"sid\":\"x\"}\n");
    }
    body
}

#[test]
fn more_than_100_items_is_413() {
    let limits = Limits::default();
    assert_eq!(limits.max_items, 100);
    let ok = ingest_envelope(&envelope_with_items(100), &auth_headers(&[])).unwrap();
    assert_eq!(ok.acknowledged.sessions, 100);
    for n in [101, 10_000] {
        let err = ingest_envelope(&envelope_with_items(n), &auth_headers(&[])).unwrap_err();
        assert_eq!(err.status(), 413, "{n} items: {err:?}");
        assert_eq!(err.detail(), "envelope exceeded the limit of 100 items");
    }
    // Empty headers-only items count too (no free items).
    let mut body = b"{}\n".to_vec();
    for _ in 0..101 {
        body.extend_from_slice(b"{\"type\":\"x\",\"length\":0}\n\n");
    }
    assert_eq!(Envelope::parse(&body, &limits).unwrap_err().status(), 413);
}

#[test]
fn item_and_envelope_size_limits_are_413() {
    let limits = Limits::default();
    let big = format!(r#"{{"message":"{}"}}"#, "x".repeat(limits.max_event_bytes));
    let body = format!("{{}}\n{{\"type\":\"event\"}}\n{big}\n");
    let err = ingest_envelope(body.as_bytes(), &auth_headers(&[])).unwrap_err();
    assert_eq!(err.status(), 413, "{err:?}");
    assert!(err.detail().contains("size limits for type 'event'"), "{}", err.detail());

    // Attachments are not event-sized, but the whole envelope is bounded.
    let huge = vec![b'a'; limits.max_envelope_bytes + 1];
    let mut body = format!("{{}}\n{{\"type\":\"attachment\",\"length\":{}}}\n", huge.len()).into_bytes();
    body.extend_from_slice(&huge);
    assert_eq!(ingest_envelope(&body, &auth_headers(&[])).unwrap_err().status(), 413);

    let store = format!(r#"{{"message":"{}"}}"#, "x".repeat(limits.max_event_bytes));
    assert!(matches!(parse_store_body(store.as_bytes(), &limits), Err(StoreError::TooLarge { .. })));
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// 4 GiB of zeros as 4096 concatenated gzip members of 1 MiB (~4 MB on the wire). Inflating it in full
/// would take minutes and 4 GiB of memory; bounded streaming stops right after the 20 MiB limit.
fn gzip_bomb() -> Vec<u8> {
    let member = gzip(&vec![0u8; 1 << 20]);
    member.repeat(4096)
}

#[test]
fn a_gzip_bomb_is_rejected_while_streaming() {
    let bomb = gzip_bomb();
    assert!(bomb.len() < 8 << 20, "{}", bomb.len());
    let started = Instant::now();
    let err = ingest_envelope(&bomb, &auth_headers(&[("content-encoding", "gzip")])).unwrap_err();
    assert!(
        matches!(&err, IngestError::Decode(DecodeError::PayloadTooLarge { limit }) if *limit == 20 << 20),
        "{err:?}"
    );
    assert_eq!(err.status(), 413);
    // 20 MiB of output, not 4 GiB: generous bound even for a debug build on a busy machine.
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());

    // Stacked codings: each layer is bounded.
    let double = gzip(&bomb[..bomb.len() / 8]);
    let err = ingest_envelope(&double, &auth_headers(&[("content-encoding", "gzip, gzip")])).unwrap_err();
    assert_eq!(err.status(), 413, "{err:?}");

    // The legacy store body's base64(zlib) is bounded by the event limit (1 MiB).
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&vec![b' '; 64 << 20]).unwrap();
    let body = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, enc.finish().unwrap());
    let err = ingest_store(body.as_bytes()).unwrap_err();
    assert_eq!(err.status(), 413, "{err:?}");
}

#[test]
fn the_envelope_target_sniffs_the_bomb_and_stays_bounded() {
    let started = Instant::now();
    fuzzing::envelope(&gzip_bomb()[..64 << 10]);
    assert!(started.elapsed() < Duration::from_secs(30));
}

fn apigw_event(headers: Value, cookies: Value) -> String {
    json!({
        "version": "2.0",
        "routeKey": "POST /api/{project_id}/envelope/",
        "rawPath": "/api/42/envelope/",
        "rawQueryString": "",
        "cookies": cookies,
        "headers": headers,
        "pathParameters": {"project_id": "42"},
        "requestContext": {
            "accountId": "1", "apiId": "api", "domainName": "api.postflow.example", "domainPrefix": "api",
            "http": {"method": "POST", "path": "/api/42/envelope/", "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.20", "userAgent": "fuzz/1"},
            "requestId": "r", "routeKey": "x", "stage": "$default", "time": "x", "timeEpoch": 0
        },
        "body": "{}\n{\"type\":\"session\"}\n{}",
        "isBase64Encoded": false
    })
    .to_string()
}

#[test]
fn ten_thousand_headers_decode_and_ingest() {
    let mut headers = serde_json::Map::new();
    for i in 0..10_000 {
        headers.insert(format!("x-h-{i}"), Value::from("v"));
    }
    headers.insert("x-sentry-auth".into(), Value::from(format!("Sentry sentry_key={DSN_KEY}")));
    let text = apigw_event(Value::Object(headers), json!(null));
    let started = Instant::now();
    let req = lambda_http::request::from_str(&text).unwrap();
    let api = ApiRequest::from_lambda(&req, fuzzing::SUPERUSER_CLAIM);
    // No header-count limit in the Lambda (API Gateway caps request headers at 10 KB before us).
    assert_eq!(api.headers.len(), 10_001);
    let request = Request {
        endpoint: Endpoint::Envelope,
        project_id: "42",
        headers: &api.headers,
        query: &api.raw_query,
        body: &api.body,
        received_at: received_at(),
        client_ip: api.source_ip.as_deref(),
    };
    let ingested = ingest::ingest(&request, &Limits::default()).unwrap();
    assert_eq!(ingested.acknowledged.sessions, 1);
    fuzzing::apigw_event(text.as_bytes());
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
}

#[test]
fn a_one_megabyte_cookie_header_is_ignored() {
    let key = Secret::new(COOKIE_KEY);
    let invite = InviteCookie {
        member_id: 7,
        org_id: 1,
        token: "abc".into(),
        user_id: None,
        expires_at: RECEIVED_AT_SECS + 60,
    }
    .encode(&key)
    .unwrap();
    let megabyte = format!("big={}", "x".repeat(1 << 20));

    // The invite cookie alone is read…
    let text =
        apigw_event(json!({"host": "api.postflow.example"}), json!([format!("postflow-invite={invite}")]));
    let api = ApiRequest::from_lambda(&lambda_http::request::from_str(&text).unwrap(), "x");
    assert_eq!(api.cookie("postflow-invite"), Some(invite.as_str()));

    // …but a Cookie header over 8 KiB is ignored as a whole (cookies array merged into one header).
    let text = apigw_event(json!({}), json!([format!("postflow-invite={invite}"), megabyte.clone()]));
    let api = ApiRequest::from_lambda(&lambda_http::request::from_str(&text).unwrap(), "x");
    assert!(api.cookies.is_empty(), "{:?}", api.cookies.keys().collect::<Vec<_>>());
    // The same as a plain header.
    let text = apigw_event(json!({"cookie": megabyte}), json!(null));
    let api = ApiRequest::from_lambda(&lambda_http::request::from_str(&text).unwrap(), "x");
    assert!(api.cookies.is_empty());
    fuzzing::apigw_event(text.as_bytes());

    // A 1 MB cookie value is refused by the decoder itself.
    let big_cookie = "a".repeat(1 << 20) + "." + &"b".repeat(43);
    assert_eq!(InviteCookie::decode(&big_cookie, &key, RECEIVED_AT_SECS, None), None);
    fuzzing::cookie(big_cookie.as_bytes());
}

#[test]
fn a_one_megabyte_auth_header_is_a_401() {
    let huge_key = format!("Sentry sentry_key={}, sentry_version=7", "a".repeat(1 << 20));
    let headers = vec![("x-sentry-auth".to_owned(), huge_key.clone())];
    let err = ingest::auth::from_request(&headers, "").unwrap_err();
    assert_eq!(err.status(), 401);
    let many_pairs = format!("Sentry {}sentry_key={DSN_KEY}", "a=b, ".repeat(200_000));
    let headers = vec![("x-sentry-auth".to_owned(), many_pairs.clone())];
    assert_eq!(ingest::auth::from_request(&headers, "").unwrap().unwrap().public_key, DSN_KEY);
    fuzzing::auth_header(huge_key.as_bytes());
    fuzzing::auth_header(many_pairs.as_bytes());
}
