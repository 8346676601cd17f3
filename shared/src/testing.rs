//! Test support (feature `testing`): finds the local AWS emulators and provisions a unique table and
//! stream per test, so that suites can run their contract tests against DynamoDB Local and ministack.
//!
//! Emulator tests are **mandatory** when `CI=true` or `CI_EMULATORS_REQUIRED=1` (the project's test
//! command sets it): an unreachable emulator then fails the test. Without endpoints and outside CI they
//! are skipped with a message on stderr.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::adapters::aws::{AwsClients, CallRecorder};
use crate::storage::provision;

/// A provisioned table and stream on the emulators.
pub struct AwsTestEnv {
    pub clients: AwsClients,
    pub table: String,
    pub stream: String,
    pub recorder: CallRecorder,
}

fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
        || std::env::var("CI_EMULATORS_REQUIRED").is_ok_and(|v| v == "1")
}

/// Whether tests that need outside tools (emulators, SDKs, Python packages, shared data) must run:
/// under CI or the project's test command. Then a missing tool fails the test instead of skipping it.
pub fn tools_required() -> bool {
    required()
}

/// The value of `var` (a tool's path that scripts/test sets), or `None` after printing `SKIPPED {what}`
/// outside CI; in CI a missing variable fails the test.
pub fn required_tool(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            assert!(!required(), "{what}: {var} must be set in CI (scripts/test sets it)");
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "SKIPPED {what}: {var} not set (run scripts/test)");
            None
        }
    }
}

/// Whether emulator endpoints are configured; panics when they are required but missing.
pub fn emulators_configured(test: &str) -> bool {
    let configured = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_ok()
        && std::env::var("AWS_ENDPOINT_URL_KINESIS").is_ok();
    if !configured {
        assert!(
            !required(),
            "{test}: emulator tests are required (CI) but AWS_ENDPOINT_URL_DYNAMODB / AWS_ENDPOINT_URL_KINESIS are not set; run scripts/test"
        );
        // Written straight to stderr, past libtest's output capture, so a plain `cargo test` shows it.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test} against DynamoDB Local/ministack: endpoints not set (run scripts/test to include them)"
        );
    }
    configured
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A unique name for this process and call.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst),
        chrono::Utc::now().timestamp_micros() % 1_000_000
    )
}

/// Provisions a fresh table and stream, or `None` when the emulators are not configured (and not
/// required). Panics with a clear message when they are configured but unreachable.
pub async fn aws_env(test: &str) -> Option<AwsTestEnv> {
    if !emulators_configured(test) {
        return None;
    }
    let recorder = CallRecorder::default();
    let clients = AwsClients::load(Some(recorder.clone())).await;
    let table = unique_name("pf-test");
    let stream = unique_name("pf-test");
    let (t, s) = tokio::join!(
        provision::create_table(&clients.dynamodb, &table),
        provision::create_stream(&clients.kinesis, &stream)
    );
    if let Err(e) = t {
        panic!("{test}: cannot create table on DynamoDB Local: {e}");
    }
    if let Err(e) = s {
        panic!("{test}: cannot create stream on ministack: {e}");
    }
    recorder.reset();
    Some(AwsTestEnv { clients, table, stream, recorder })
}

/// One plain HTTP/1.1 request to a loopback server (`host:port`), read to the end (`Connection: close`):
/// the status and the body. Tests use it for servers that are not AWS APIs (the local API Gateway
/// emulation, ministack's inspection endpoints) without an HTTP client dependency.
pub async fn http_request(
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(host).await?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response");
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status, body))
}
