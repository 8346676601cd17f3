//! `postflow bench limits`: what hostile and oversized save-event requests cost (issue 18) — CPU per
//! refused request, and the peak memory of accepted ones per MiB of decompressed event.
//!
//! Memory is the RSS high-water mark of a child process (`bench limits --one CASE`) that builds the
//! embedded save-event, sends one warm-up request, resets its high-water mark (`/proc/self/clear_refs`),
//! sends the case's request and reports `VmHWM − VmRSS(before)`: allocator and page effects included,
//! as a Lambda's memory limit sees them. CPU is the process's user + system time over a loop of the
//! same refused request (the unknown key is then cached, as on a warm Lambda).

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use shared::http::ApiRequest;

const KEY: &str = "c0ffee0c0ffee0c0ffee0c0ffee0c0ff";
const MADE_UP: &str = "deadbeefdeadbeefdeadbeefdeadbeef";
const EVENT_BYTES: usize = 896 << 10;

async fn handler() -> Result<save_event::SaveEvent, String> {
    use shared::adapters::memory::{MemoryRateLimiter, MemoryTable, memory_stream};
    let table = Arc::new(MemoryTable::default());
    let seed: shared::storage::seed::Seed = serde_json::from_value(json!({
        "organizations": [{"id": 1, "slug": "acme", "name": "Acme"}],
        "projects": [{"id": 42, "organization_id": 1, "slug": "backend"}],
        "keys": [{"public_key": KEY, "project_id": 42, "id": 7}]
    }))
    .map_err(|e| e.to_string())?;
    shared::storage::seed::load_seed(table.as_ref(), &seed, crate::scenario::now_secs() * 1000)
        .await
        .map_err(|e| e.to_string())?;
    Ok(save_event::SaveEvent::build(
        Arc::new(shared::config::Config::for_local("t", "s")),
        &shared::backends::Backends::new(table, Arc::new(MemoryRateLimiter::default())),
        Arc::new(memory_stream(3)),
    ))
}

/// Gzip at the best level, as a decompression bomb's author would.
fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let _ = e.write_all(bytes);
    e.finish().unwrap_or_default()
}

fn event_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// An event of about `bytes` bytes whose `extra.a` is an array of zeros (the costliest JSON shape to
/// parse: one tree node per two bytes; trimmed to Relay's 16 KiB while parsed).
fn zeros_event(bytes: usize) -> Value {
    let now = crate::scenario::now_secs();
    let mut e = json!({"event_id": event_id(), "message": "zeros", "timestamp": now, "platform": "python"});
    let n = bytes.saturating_sub(e.to_string().len() + 20) / 2;
    e["extra"] = json!({ "a": vec![0u8; n] });
    e
}

fn envelope(key: &str, items: &[Vec<u8>], encodings: Option<&str>) -> ApiRequest {
    let mut body = b"{}".to_vec();
    for payload in items {
        body.push(b'\n');
        body.extend_from_slice(json!({"type": "event", "length": payload.len()}).to_string().as_bytes());
        body.push(b'\n');
        body.extend_from_slice(payload);
    }
    body.push(b'\n');
    let mut headers =
        vec![("x-sentry-auth".to_owned(), format!("Sentry sentry_key={key}, sentry_version=7"))];
    if let Some(enc) = encodings {
        headers.push(("content-encoding".into(), enc.into()));
        body = gzip(&body);
    }
    ApiRequest {
        method: "POST".into(),
        path: "/api/42/envelope/".into(),
        path_params: [("project_id".to_owned(), "42".to_owned())].into(),
        headers,
        body,
        ..Default::default()
    }
}

/// The cases: name, request builder (fresh event ids each call), expected status, events decompressed.
type Build = fn() -> ApiRequest;
const CASES: &[(&str, Build, u16, usize)] = &[
    ("unknown key, 19 × 0.9 MiB events, gzip", || bomb(MADE_UP, 19), 403, 19),
    ("unknown key, 1 small event", || envelope(MADE_UP, &[small()], None), 403, 1),
    (
        "1,500 stacked gzip codings",
        || {
            let mut r = envelope(KEY, &[small()], None);
            r.headers.push(("content-encoding".into(), ["gzip"; 1500].join(",")));
            r
        },
        400,
        1,
    ),
    ("valid key, 1 × 0.9 MiB event, gzip", || bomb(KEY, 1), 200, 1),
    ("valid key, 19 × 0.9 MiB events, gzip", || bomb(KEY, 19), 200, 19),
    ("valid key, 1 small event", || envelope(KEY, &[small()], None), 200, 1),
    ("valid key, 0.9 MiB of numbers outside extra", || envelope(KEY, &[dense()], Some("gzip")), 413, 1),
];

/// The zeros of [`zeros_event`] as the event's fingerprint, where no bag trims them: refused (413) as
/// denser than the parser builds.
fn dense() -> Vec<u8> {
    let mut e = zeros_event(EVENT_BYTES);
    e["fingerprint"] = e["extra"]["a"].take();
    e["extra"] = json!({});
    e.to_string().into_bytes()
}

fn small() -> Vec<u8> {
    json!({"event_id": event_id(), "message": "small", "timestamp": crate::scenario::now_secs(), "platform": "python",
           "exception": {"values": [{"type": "ValueError", "value": "bad", "stacktrace": {"frames": [{"function": "main", "filename": "app.py", "lineno": 3, "in_app": true}]}}]}})
    .to_string()
    .into_bytes()
}

fn bomb(key: &str, n: usize) -> ApiRequest {
    let big = zeros_event(EVENT_BYTES).to_string().into_bytes();
    envelope(key, &vec![big; n], Some("gzip"))
}

fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// User + system CPU seconds of this process (`/proc/self/stat`, clock ticks of 1/100 s).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // After the command name: state is field 0, utime 11, stime 12.
    (ticks(11) + ticks(12)) / 100.0
}

/// The child side: one case, one request, the peak RSS above the level before it (KiB).
pub async fn limits_one(case: usize) -> Result<(), String> {
    let (name, build, status, _) = CASES.get(case).ok_or("no such case")?;
    let h = handler().await?;
    // Warm-up: the key cache, lazies and the allocator's first arenas.
    let _ = h.handle_api(&envelope(KEY, &[small()], None)).await;
    let _ = h.handle_api(&envelope(MADE_UP, &[small()], None)).await;
    let req = build();
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = proc_status_kib("VmRSS:");
    let r = h.handle_api(&req).await;
    let peak = proc_status_kib("VmHWM:");
    if r.status != *status {
        return Err(format!("{name}: status {} (expected {status})", r.status));
    }
    println!("peak_kib {}", peak.saturating_sub(before));
    Ok(())
}

/// Runs every case: peak memory in a child process each, CPU per request for the refused ones.
pub async fn limits(secs: f64) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    println!("save-event on the embedded store: one request per case (peak RSS of a child process), and");
    println!("the refused ones in a loop for {secs} s (CPU per request, user + system)");
    println!(
        "{:<42} {:>6} {:>11} {:>13} {:>10} {:>14} {:>12}",
        "case", "status", "request B", "decompr. MiB", "peak MiB", "peak/decompr.", "CPU µs/req"
    );
    let h = handler().await?;
    for (i, (name, build, status, events)) in CASES.iter().enumerate() {
        let req = build();
        let decompressed = match req.headers.iter().any(|(k, v)| k == "content-encoding" && v == "gzip") {
            true => *events as f64 * EVENT_BYTES as f64 / 1048576.0,
            false => req.body.len() as f64 / 1048576.0,
        };
        let out = std::process::Command::new(&exe)
            .args(["bench", "limits", "--one", &i.to_string()])
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout);
        let peak_kib: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("peak_kib "))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| format!("{name}: {}", String::from_utf8_lossy(&out.stderr)))?;
        let peak = peak_kib / 1024.0;
        let per_event = if *status == 200 { peak / decompressed.max(1e-9) } else { f64::NAN };
        let cpu = if *status == 200 {
            "-".to_owned()
        } else {
            let c0 = cpu_secs();
            let t0 = Instant::now();
            let mut n = 0u64;
            while t0.elapsed().as_secs_f64() < secs {
                let r = h.handle_api(&req).await;
                if r.status != *status {
                    return Err(format!("{name}: status {}", r.status));
                }
                n += 1;
            }
            format!("{:.1}", (cpu_secs() - c0) * 1e6 / n as f64)
        };
        let per_event = if per_event.is_nan() { "-".to_owned() } else { format!("{per_event:.1}") };
        println!(
            "{name:<42} {status:>6} {:>11} {decompressed:>13.1} {peak:>10.1} {per_event:>14} {cpu:>12}",
            req.body.len()
        );
    }
    Ok(())
}
