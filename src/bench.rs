//! `postflow bench …`: benchmarks that print numbers (recorded in BENCHMARKS.md with their commands).
//!
//! - `pipeline`: save-event CPU per event — decompress + parse + normalize + group + serialize the
//!   stream record — on the real SDK payloads in `events/`, in-process, no I/O; optionally side by side
//!   with Relay's normalizer (`sentry_relay`, Python) on the same payloads; then each stage timed on
//!   its own (ingest, prepare, the stream record).
//! - `lookups`: a field found by its hash against [`shared::tree::Fields`]'s scan, over the objects of
//!   the same payloads' events, by object size.
//! - `growth`: save-event on the embedded store with 1, 10, 100, 1000 distinct releases/groups: time
//!   and table operations per event must stay flat.
//! - `cold-start`: starts a function's release binary under a minimal Lambda Runtime API emulator and
//!   measures exec → first `next` request (init) and → first response, and peak RSS.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shared::grouping::config::GroupingConfig;
use shared::http::ApiRequest;
use shared::ingest::{self, Endpoint};
use shared::save::SaveResult;
use shared::save::record::GroupState;
use shared::storage::counting::CountingTable;

use crate::apigw::request_from_event;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn p90(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get((v.len() * 9 / 10).min(v.len().saturating_sub(1))).copied().unwrap_or(0.0)
}

/// The save-event samples of `events/` that carry an event or a transaction.
pub fn sample_requests(dir: &Path) -> Result<Vec<(String, ApiRequest)>, String> {
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                // The samples a real SDK sends and that are saved (not the rejected-key variants).
                n.starts_with("save-event.")
                    && n.ends_with(".json")
                    && !n.contains(".wrong-")
                    && !n.contains(".missing-")
            })
        })
        .collect();
    files.sort();
    for f in files {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&f).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        let req = request_from_event(&v)?;
        let api = ApiRequest::from_lambda(&req, "x");
        let name = f
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .trim_start_matches("save-event.")
            .to_owned();
        // Keep the ones that ingest to at least one event.
        let r = ingest_once(&api).ok().filter(|i| !i.events.is_empty());
        if r.is_some() {
            out.push((name, api));
        }
    }
    Ok(out)
}

fn ingest_once(api: &ApiRequest) -> Result<ingest::Ingested, ingest::IngestError> {
    let endpoint =
        if api.path.trim_end_matches('/').ends_with("/store") { Endpoint::Store } else { Endpoint::Envelope };
    let request = ingest::Request {
        endpoint,
        project_id: api.path_param("project_id").unwrap_or("42"),
        headers: &api.headers,
        query: &api.raw_query,
        body: &api.body,
        received_at: chrono::Utc::now(),
        client_ip: api.source_ip.as_deref(),
    };
    ingest::ingest(&request, &ingest::envelope::Limits::default())
}

/// The whole CPU side of save-event for one request: ingest + prepare + record serialization.
fn pipeline_once(api: &ApiRequest) -> usize {
    let Ok(ingested) = ingest_once(api) else { return 0 };
    let mut bytes = 0;
    for ev in ingested.events {
        let (job, event) =
            shared::save::prepare(ev.payload, ev.kind, ingested.project_id, GroupingConfig::builtin());
        let result = saved(job.received);
        bytes += shared::save::stream_record(&job, event, &result).data.len();
    }
    bytes
}

/// What saving an event of a new group gives the stream record.
fn saved(received: f64) -> SaveResult {
    SaveResult {
        group: Some(GroupState { id: 1, is_new: true, is_regression: false, is_new_group_environment: true }),
        received,
    }
}

/// The raw event payloads (as the SDK sent them, before normalization) for Relay's side.
fn raw_events(api: &ApiRequest) -> Vec<Value> {
    let encoding = api.header("content-encoding");
    let Ok(body) = ingest::decode::decode_body(&api.body, encoding, 20 << 20) else { return Vec::new() };
    if api.path.contains("/store/") {
        return serde_json::from_slice(&body).into_iter().collect();
    }
    let Ok(env) = ingest::envelope::Envelope::parse(&body, &ingest::envelope::Limits::default()) else {
        return Vec::new();
    };
    env.items
        .iter()
        .filter(|i| {
            matches!(i.ty, ingest::envelope::ItemType::Event | ingest::envelope::ItemType::Transaction)
        })
        .filter_map(|i| serde_json::from_slice(&i.payload).ok())
        .collect()
}

pub fn pipeline(events_dir: &Path, iterations: usize, relay_python: Option<&str>) -> Result<(), String> {
    let samples = sample_requests(events_dir)?;
    println!(
        "save-event CPU per request: decompress + parse + normalize + group + serialize the stream record"
    );
    println!(
        "{} iterations per payload after 50 warm-up runs; in-process, no I/O (release build recommended)\n",
        iterations
    );
    let mut ours = Vec::new();
    let mut stages = Vec::new();
    for (name, api) in &samples {
        for _ in 0..50 {
            std::hint::black_box(pipeline_once(api));
        }
        let mut t = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let t0 = Instant::now();
            std::hint::black_box(pipeline_once(api));
            t.push(t0.elapsed().as_secs_f64() * 1e6);
        }
        ours.push((name.clone(), median(t), api.body.len()));
        stages.push((name.clone(), stage_medians(api, iterations)));
    }
    let relay: Option<Value> = match relay_python {
        None => None,
        Some(py) => {
            let payloads: Vec<Value> = samples
                .iter()
                .flat_map(|(name, api)| {
                    raw_events(api).into_iter().map(move |e| json!({"name": name, "event": e}))
                })
                .collect();
            let tmp =
                std::env::temp_dir().join(format!("postflow-relay-payloads-{}.json", std::process::id()));
            std::fs::write(&tmp, serde_json::to_vec(&payloads).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/relay_normalize.py");
            let out = std::process::Command::new(py)
                .arg(script)
                .arg(&tmp)
                .arg(iterations.to_string())
                .output()
                .map_err(|e| e.to_string())?;
            let _ = std::fs::remove_file(&tmp);
            if !out.status.success() {
                return Err(format!("relay_normalize.py failed: {}", String::from_utf8_lossy(&out.stderr)));
            }
            Some(serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?)
        }
    };
    println!(
        "{:<22} {:>12} {:>22} {:>24}",
        "payload", "body bytes", "postflow µs/request", "Relay normalize µs/event"
    );
    let mut sum_ours = 0.0;
    let mut sum_relay = 0.0;
    for (name, us, bytes) in &ours {
        let r = relay.as_ref().and_then(|r| r.get(name)).and_then(Value::as_f64);
        sum_ours += us;
        sum_relay += r.unwrap_or(0.0);
        println!(
            "{name:<22} {bytes:>12} {us:>22.1} {:>24}",
            r.map(|r| format!("{r:.1}")).unwrap_or_else(|| "-".into())
        );
    }
    let n = ours.len().max(1) as f64;
    println!(
        "{:<22} {:>12} {:>22.1} {:>24}",
        "mean",
        "",
        sum_ours / n,
        if relay.is_some() { format!("{:.1}", sum_relay / n) } else { "-".into() }
    );
    println!(
        "\nthe same requests by stage (median µs of each stage timed on its own, its input made beforehand)"
    );
    println!(
        "{:<22} {:>22} {:>24} {:>16}",
        "payload", "ingest (decode, parse,", "prepare (grouping, tags,", "stream record"
    );
    println!("{:<22} {:>22} {:>24} {:>16}", "", "normalize)", "metadata)", "");
    let mut sums = [0.0; 3];
    for (name, [a, b, c]) in &stages {
        println!("{name:<22} {a:>22.1} {b:>24.1} {c:>16.1}");
        for (sum, v) in sums.iter_mut().zip([a, b, c]) {
            *sum += v;
        }
    }
    println!("{:<22} {:>22.1} {:>24.1} {:>16.1}", "mean", sums[0] / n, sums[1] / n, sums[2] / n);
    Ok(())
}

/// `bench lookups`: a field looked up by its hash (`Map::get`, SipHash) and by [`Fields::field`] (a
/// scan of objects up to [`shared::tree::SCAN_MAX`] entries), over every object of the samples'
/// events as sent and as normalized: each object's own keys (hits) and three keys it lacks
/// (misses), by object size.
pub fn lookups(events_dir: &Path, rounds: usize) -> Result<(), String> {
    use serde_json::Map;
    use shared::tree::Fields;
    fn objects<'a>(value: &'a Value, out: &mut Vec<&'a Map<String, Value>>) {
        match value {
            Value::Object(map) => {
                out.push(map);
                map.values().for_each(|v| objects(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| objects(v, out)),
            _ => {}
        }
    }
    let mut trees = Vec::new();
    for (_, api) in sample_requests(events_dir)? {
        trees.extend(raw_events(&api));
        if let Ok(ingested) = ingest_once(&api) {
            trees.extend(ingested.events.into_iter().map(|e| e.payload));
        }
    }
    let mut all = Vec::new();
    trees.iter().for_each(|t| objects(t, &mut all));
    println!(
        "field lookups over the {} objects of {} sample events (as sent and as normalized)",
        all.len(),
        trees.len()
    );
    println!("{rounds} rounds; the best of 5 alternating runs per way; ns per lookup\n");
    println!(
        "{:<20} {:>8} {:>8} {:>14} {:>14} {:>8}",
        "object entries", "objects", "lookups", "hashed (get)", "Fields::field", "ratio"
    );
    const MAX: usize = shared::tree::SCAN_MAX;
    let sizes = [
        ("0-8".to_owned(), 0..=8),
        (format!("9-{MAX}"), 9..=MAX),
        (format!("over {MAX} (hashed)"), MAX + 1..=usize::MAX),
    ];
    for (label, size) in sizes {
        let maps: Vec<&Map<String, Value>> =
            all.iter().copied().filter(|m| size.contains(&m.len())).collect();
        let probes: Vec<(&Map<String, Value>, &str)> = maps
            .iter()
            .flat_map(|m| {
                let misses = ["exception", "in_app", "x"].into_iter().filter(|k| !m.contains_key(*k));
                m.keys().map(String::as_str).chain(misses).map(move |k| (*m, k))
            })
            .collect();
        if probes.is_empty() {
            println!("{label:<20} {:>8}", 0);
            continue;
        }
        let time = |scan: bool| {
            let t0 = Instant::now();
            for _ in 0..rounds {
                for (map, key) in &probes {
                    let map = std::hint::black_box(*map);
                    std::hint::black_box(if scan { map.field(key) } else { map.get(*key) });
                }
            }
            t0.elapsed().as_secs_f64() * 1e9 / (rounds * probes.len()) as f64
        };
        let (mut hashed, mut scanned) = (f64::MAX, f64::MAX);
        for _ in 0..5 {
            hashed = hashed.min(time(false));
            scanned = scanned.min(time(true));
        }
        println!(
            "{label:<20} {:>8} {:>8} {hashed:>14.1} {scanned:>14.1} {:>7.2}×",
            maps.len(),
            probes.len(),
            hashed / scanned
        );
    }
    Ok(())
}

/// Median µs of each stage of [`pipeline_once`] on its own — ingest, prepare, the stream record — each
/// run on a copy of its input made before the clock starts (the request's first event: the samples
/// carry one each).
fn stage_medians(api: &ApiRequest, iterations: usize) -> [f64; 3] {
    let Ok(ingested) = ingest_once(api) else { return [0.0; 3] };
    let Some(ev) = ingested.events.first() else { return [0.0; 3] };
    let (project_id, kind) = (ingested.project_id, ev.kind);
    let prepared = shared::save::prepare(ev.payload.clone(), kind, project_id, GroupingConfig::builtin());
    let result = saved(prepared.0.received);
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..iterations {
        let t0 = Instant::now();
        std::hint::black_box(ingest_once(api).ok());
        a.push(t0.elapsed().as_secs_f64() * 1e6);
        let payload = ev.payload.clone();
        let t0 = Instant::now();
        std::hint::black_box(shared::save::prepare(payload, kind, project_id, GroupingConfig::builtin()));
        b.push(t0.elapsed().as_secs_f64() * 1e6);
        let event = prepared.1.clone();
        let t0 = Instant::now();
        std::hint::black_box(shared::save::stream_record(&prepared.0, event, &result));
        c.push(t0.elapsed().as_secs_f64() * 1e6);
    }
    [median(a), median(b), median(c)]
}

/// save-event with N distinct releases and groups, 2000 events each round, on the embedded store.
pub async fn growth(events_per_round: usize) -> Result<(), String> {
    use shared::adapters::memory::{MemoryRateLimiter, MemoryTable, memory_stream};
    println!(
        "save-event on the embedded store: {events_per_round} events per round, spread over N distinct releases and groups"
    );
    println!("{:>6} {:>16} {:>22}", "N", "µs per event", "table calls per event");
    for n in [1usize, 10, 100, 1000] {
        let table =
            Arc::new(CountingTable { inner: Arc::new(MemoryTable::default()), calls: AtomicUsize::new(0) });
        let seed: shared::storage::seed::Seed = serde_json::from_value(json!({
            "organizations": [{"id": 1, "slug": "acme", "name": "Acme"}],
            "projects": [{"id": 42, "organization_id": 1, "slug": "backend"}],
            "keys": [{"public_key": "c0ffee0c0ffee0c0ffee0c0ffee0c0ff", "project_id": 42, "id": 7}]
        }))
        .map_err(|e| e.to_string())?;
        shared::storage::seed::load_seed(table.as_ref(), &seed, crate::scenario::now_secs() * 1000)
            .await
            .map_err(|e| e.to_string())?;
        let handler = save_event::SaveEvent::build(
            Arc::new(shared::config::Config::for_local("t", "s")),
            &shared::backends::Backends::new(table.clone(), Arc::new(MemoryRateLimiter::default())),
            Arc::new(memory_stream(3)),
        );
        let now = crate::scenario::now_secs() as f64;
        let req = |i: usize| {
            let ev = json!({"message": format!("group number {}", i % n), "fingerprint": [format!("g{}", i % n)], "release": format!("app@{}", i % n), "environment": "prod", "timestamp": now, "platform": "python"});
            let body = ev.to_string();
            ApiRequest {
                method: "POST".into(),
                path: "/api/42/envelope/".into(),
                path_params: [("project_id".to_owned(), "42".to_owned())].into(),
                headers: vec![(
                    "x-sentry-auth".into(),
                    "Sentry sentry_key=c0ffee0c0ffee0c0ffee0c0ffee0c0ff, sentry_version=7".into(),
                )],
                body: format!("{{}}\n{{\"type\":\"event\",\"length\":{}}}\n{body}\n", body.len())
                    .into_bytes(),
                ..Default::default()
            }
        };
        // Warm-up round: creates the N groups and releases.
        for i in 0..n.max(10) {
            handler.handle_api(&req(i)).await;
        }
        table.calls.store(0, Ordering::Relaxed);
        let t0 = Instant::now();
        for i in 0..events_per_round {
            let r = handler.handle_api(&req(i)).await;
            if r.status != 200 {
                return Err(format!("status {}", r.status));
            }
        }
        let per_event = t0.elapsed().as_secs_f64() * 1e6 / events_per_round as f64;
        let calls = table.calls.load(Ordering::Relaxed) as f64 / events_per_round as f64;
        println!("{n:>6} {per_event:>16.1} {calls:>22.2}");
    }
    Ok(())
}

/// Outcome of one cold start under the Runtime API emulator.
#[derive(Debug, Clone, Copy)]
pub struct ColdStart {
    pub init_ms: f64,
    pub first_response_ms: f64,
    pub peak_rss_kb: u64,
}

/// Starts `bin` with `AWS_LAMBDA_RUNTIME_API` pointing at a minimal in-process Runtime API, serves it
/// `event`, and measures exec → first `next` and → first response. The process is killed afterwards.
pub async fn cold_start_once(
    bin: &Path,
    event: &Value,
    extra_env: &[(String, String)],
) -> Result<ColdStart, String> {
    cold_start_cmd(bin, &[], None, event, extra_env).await
}

/// [`cold_start_once`] for any command (the Python peer runs `python bootstrap.py`).
pub async fn cold_start_cmd(
    bin: &Path,
    args: &[String],
    cwd: Option<&Path>,
    event: &Value,
    extra_env: &[(String, String)],
) -> Result<ColdStart, String> {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    use tokio::sync::mpsc;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (tx, mut rx) = mpsc::unbounded_channel::<(&'static str, Instant)>();
    let body = Bytes::from(event.to_string());
    let served = Arc::new(AtomicUsize::new(0));
    let server = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { break };
            let (tx, body, served) = (tx.clone(), body.clone(), served.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (tx, body, served) = (tx.clone(), body.clone(), served.clone());
                    async move {
                        let path = req.uri().path().to_owned();
                        let now = Instant::now();
                        let resp = if path.ends_with("/invocation/next") {
                            if served.fetch_add(1, Ordering::SeqCst) == 0 {
                                let _ = tx.send(("next", now));
                                hyper::Response::builder()
                                    .header("lambda-runtime-aws-request-id", "bench-request-1")
                                    .header(
                                        "lambda-runtime-deadline-ms",
                                        (chrono::Utc::now().timestamp_millis() + 30_000).to_string(),
                                    )
                                    .header(
                                        "lambda-runtime-invoked-function-arn",
                                        "arn:aws:lambda:us-east-1:123456789012:function:bench",
                                    )
                                    .header(
                                        "lambda-runtime-trace-id",
                                        "Root=1-00000000-000000000000000000000000",
                                    )
                                    .body(Full::new(body))
                            } else {
                                // Second `next`: the measurement is over; park the runtime.
                                tokio::time::sleep(Duration::from_secs(3600)).await;
                                hyper::Response::builder().status(500).body(Full::new(Bytes::new()))
                            }
                        } else {
                            let body =
                                req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            if !path.ends_with("/response") {
                                eprintln!(
                                    "runtime reported an error at {path}: {}",
                                    String::from_utf8_lossy(&body)
                                );
                            }
                            let _ = tx.send(if path.ends_with("/response") {
                                ("response", now)
                            } else {
                                ("error", now)
                            });
                            hyper::Response::builder().status(202).body(Full::new(Bytes::new()))
                        };
                        Ok::<_, std::convert::Infallible>(resp.unwrap_or_default())
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    let t0 = Instant::now();
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args(args);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let mut child = cmd
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_LEVEL", "warn")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("TABLE_NAME", "bench")
        .env("STREAM_NAME", "bench")
        .env("INVITE_COOKIE_KEY", "benchmark-cookie-key-benchmark-cookie-key")
        .envs(extra_env.iter().cloned())
        .stdout(std::process::Stdio::null())
        .stderr(if std::env::var_os("POSTFLOW_BENCH_DEBUG").is_some() {
            std::process::Stdio::inherit()
        } else {
            std::process::Stdio::null()
        })
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let pid = child.id();
    let mut init = None;
    let mut resp = None;
    let deadline = tokio::time::sleep(Duration::from_secs(20));
    tokio::pin!(deadline);
    while resp.is_none() {
        tokio::select! {
            m = rx.recv() => match m {
                Some(("next", t)) => init = Some(t),
                Some(("response", t)) => resp = Some(t),
                Some((_, _)) => { let _ = child.kill().await; server.abort(); return Err("the function reported an error".into()) }
                None => break,
            },
            _ = &mut deadline => break,
        }
    }
    let rss = pid.and_then(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok()).and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
    });
    let _ = child.kill().await;
    server.abort();
    match (init, resp) {
        (Some(i), Some(r)) => Ok(ColdStart {
            init_ms: (i - t0).as_secs_f64() * 1000.0,
            first_response_ms: (r - t0).as_secs_f64() * 1000.0,
            peak_rss_kb: rss.unwrap_or(0),
        }),
        (Some(_), None) => Err("the runtime asked for the event but sent no response within 20 s".into()),
        _ => Err("timed out waiting for the runtime's first `next` request".into()),
    }
}

pub const COLD_START_HEADER: &str =
    "binary                    init p50 ms        p90   first resp        p90     RSS MB    size MB";

pub async fn cold_start(bins: &[PathBuf], event: &Path, runs: usize) -> Result<(), String> {
    let ev: Value = serde_json::from_str(&std::fs::read_to_string(event).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    for bin in bins {
        let mut init = Vec::new();
        let mut first = Vec::new();
        let mut rss: u64 = 0;
        for _ in 0..runs {
            let c = cold_start_once(bin, &ev, &[]).await?;
            init.push(c.init_ms);
            first.push(c.first_response_ms);
            rss = rss.max(c.peak_rss_kb);
        }
        let size = std::fs::metadata(bin).map(|m| m.len() as f64 / 1_048_576.0).unwrap_or(0.0);
        let name = bin.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        println!(
            "{name:<24} {:>12.2} {:>10.2} {:>12.2} {:>10.2} {:>10.1} {:>10.1}",
            median(init.clone()),
            p90(init),
            median(first.clone()),
            p90(first),
            rss as f64 / 1024.0,
            size
        );
    }
    Ok(())
}

/// The Python peer: `benches/python_peer/bootstrap.py` (the managed runtime's loop) with a handler that
/// imports boto3 and builds a DynamoDB client at init, measured the same way.
pub async fn cold_start_python_peer(python: &str, runs: usize) -> Result<(), String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/python_peer");
    let ev: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("events/save-event.missing-key.json"),
        )
        .map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let args = ["bootstrap.py".to_owned()];
    let mut init = Vec::new();
    let mut first = Vec::new();
    let mut rss: u64 = 0;
    for _ in 0..runs {
        let env = [
            ("LAMBDA_TASK_ROOT".to_owned(), dir.display().to_string()),
            ("_HANDLER".to_owned(), "handler.handler".to_owned()),
        ];
        let c = cold_start_cmd(Path::new(python), &args, Some(&dir), &ev, &env).await?;
        init.push(c.init_ms);
        first.push(c.first_response_ms);
        rss = rss.max(c.peak_rss_kb);
    }
    println!(
        "{:<24} {:>12.2} {:>10.2} {:>12.2} {:>10.2} {:>10.1} {:>10}",
        "python+boto3 (peer)",
        median(init.clone()),
        p90(init),
        median(first.clone()),
        p90(first),
        rss as f64 / 1024.0,
        "-"
    );
    Ok(())
}

/// One HTTP/1.1 request over a fresh loopback connection; returns the status. Hand-written (a few lines)
/// to keep a client HTTP stack out of the CLI's dependencies.
async fn http_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Result<u16, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
    s.write_all(body).await.map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
    let line = String::from_utf8_lossy(&buf[..buf.len().min(32)]).into_owned();
    line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| format!("bad response: {line}"))
}

/// Runs `op` from `clients` concurrent tasks for `secs` seconds; returns (ops/s, p50 ms, p99 ms).
async fn load<F, Fut>(clients: usize, secs: f64, op: F) -> Result<(f64, f64, f64), String>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let op = Arc::new(op);
    let counter = Arc::new(AtomicUsize::new(0));
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (op, counter) = (op.clone(), counter.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < end {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                let s = Instant::now();
                op(i).await?;
                lat.push(s.elapsed().as_secs_f64() * 1000.0);
            }
            Ok::<_, String>(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.map_err(|e| e.to_string())??);
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let n = all.len() as f64;
    all.sort_by(f64::total_cmp);
    let p = |q: f64| {
        all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(0.0)
    };
    Ok((n / elapsed, p(0.5), p(0.99)))
}

/// Throughput and latency through `postflow serve --aws` against DynamoDB Local + ministack, with the
/// emulators' own raw PutItem / PutRecord rates measured in the same run as the ceiling.
pub async fn throughput(clients: usize, secs: f64) -> Result<(), String> {
    use aws_sdk_dynamodb::types::AttributeValue;
    if std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_err() {
        return Err(
            "set AWS_ENDPOINT_URL_DYNAMODB / AWS_ENDPOINT_URL_KINESIS (run under scripts/with-emulators)"
                .into(),
        );
    }
    let suffix = format!("{}-{}", std::process::id(), crate::scenario::now_secs());
    let mut config =
        shared::config::Config::for_local(&format!("pf-bench-{suffix}"), &format!("pf-bench-{suffix}"));
    config.enroll_rate_limit = u64::MAX / 2;
    let backend = Arc::new(crate::backend::Backend::aws(&config, true).await?);
    let seed: shared::storage::seed::Seed = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("events/seed.json"))
            .map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    shared::storage::seed::load_seed(backend.table.as_ref(), &seed, crate::scenario::now_secs() * 1000)
        .await
        .map_err(|e| e.to_string())?;
    let app = Arc::new(crate::backend::App::new(&backend, config.clone()));
    let listener = crate::serve::bind(0).await.map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let server = tokio::spawn(crate::serve::serve(listener, app));
    let clients_sdk = shared::adapters::aws::AwsClients::load(None).await;
    println!(
        "{clients} concurrent clients, {secs} s per measurement, loopback; table {} on {}",
        config.table_name,
        std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_default()
    );
    println!("{:<44} {:>10} {:>9} {:>9}", "operation", "ops/s", "p50 ms", "p99 ms");

    let ddb = clients_sdk.dynamodb.clone();
    let table = config.table_name.clone();
    let (put_rate, p50, p99) = load(clients, secs, move |i| {
        let (ddb, table) = (ddb.clone(), table.clone());
        async move {
            ddb.put_item()
                .table_name(table)
                .item("pk", AttributeValue::S(format!("BENCH#{i}")))
                .item("sk", AttributeValue::S("X".into()))
                .item("n", AttributeValue::N(i.to_string()))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("{e:?}"))
        }
    })
    .await?;
    println!("{:<44} {put_rate:>10.0} {p50:>9.2} {p99:>9.2}", "ceiling: raw DynamoDB PutItem");
    let ddb = clients_sdk.dynamodb.clone();
    let table = config.table_name.clone();
    let (tx_rate, p50, p99) = load(clients, secs, move |i| {
        let (ddb, table) = (ddb.clone(), table.clone());
        async move {
            let put = |sk: &str| -> Result<aws_sdk_dynamodb::types::TransactWriteItem, String> {
                let p = aws_sdk_dynamodb::types::Put::builder()
                    .table_name(&table)
                    .item("pk", AttributeValue::S(format!("BENCHTX#{i}")))
                    .item("sk", AttributeValue::S(sk.to_owned()))
                    .build()
                    .map_err(|e| e.to_string())?;
                Ok(aws_sdk_dynamodb::types::TransactWriteItem::builder().put(p).build())
            };
            ddb.transact_write_items()
                .transact_items(put("A")?)
                .transact_items(put("B")?)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("{e:?}"))
        }
    })
    .await?;
    println!("{:<44} {tx_rate:>10.0} {p50:>9.2} {p99:>9.2}", "ceiling: raw TransactWriteItems (2 puts)");
    let kin = clients_sdk.kinesis.clone();
    let stream = config.stream_name.clone().unwrap_or_default();
    let (rec_rate, p50, p99) = load(clients, secs, move |i| {
        let (kin, stream) = (kin.clone(), stream.clone());
        async move {
            kin.put_record()
                .stream_name(stream)
                .partition_key("42")
                .data(aws_sdk_kinesis::primitives::Blob::new(format!("{{\"n\":{i}}}")))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("{e:?}"))
        }
    })
    .await?;
    println!("{:<44} {rec_rate:>10.0} {p50:>9.2} {p99:>9.2}", "ceiling: raw Kinesis PutRecord");

    let auth =
        ("x-sentry-auth", "Sentry sentry_key=c0ffee0c0ffee0c0ffee0c0ffee0c0ff, sentry_version=7".to_owned());
    let now = crate::scenario::now_secs() as f64;
    let offset = Arc::new(AtomicUsize::new(0));
    let mut save_rate = 0.0;
    for (label, groups) in [("save-event, 1000 groups", 1000usize), ("save-event, one hot group", 1)] {
        let (auth, offset) = (auth.clone(), offset.clone());
        // Warm-up (not measured): one event per group creates the groups; the measurement is the steady
        // state of a Lambda that has seen them (group creation bumps shared counters and is measured by
        // `bench growth` and the race tests instead).
        let warm = offset.fetch_add(10_000_000, Ordering::Relaxed);
        let mut tasks = Vec::new();
        for c in 0..clients {
            let auth = auth.clone();
            tasks.push(tokio::spawn(async move {
                for g in (c..groups).step_by(clients) {
                    let ev = json!({"event_id": format!("{:032x}", (warm + g) as u128 + 1), "message": "throughput", "fingerprint": [format!("g{g}")], "timestamp": now, "platform": "python", "release": "bench@1", "environment": "bench"});
                    let body = ev.to_string();
                    let env = format!("{{}}\n{{\"type\":\"event\",\"length\":{}}}\n{body}\n", body.len());
                    http_request(addr, "POST", "/api/42/envelope/", std::slice::from_ref(&auth), env.as_bytes()).await?;
                }
                Ok::<_, String>(())
            }));
        }
        for t in tasks {
            t.await.map_err(|e| e.to_string())??;
        }
        let base = offset.fetch_add(10_000_000, Ordering::Relaxed);
        let (rate, p50, p99) = load(clients, secs, move |i| {
            let auth = auth.clone();
            let id = base + i;
            async move {
                let ev = json!({"event_id": format!("{:032x}", (id as u128) + 1), "message": "throughput", "fingerprint": [format!("g{}", id % groups)], "timestamp": now, "platform": "python", "release": "bench@1", "environment": "bench"});
                let body = ev.to_string();
                let env = format!("{{}}\n{{\"type\":\"event\",\"length\":{}}}\n{body}\n", body.len());
                match http_request(addr, "POST", "/api/42/envelope/", &[auth], env.as_bytes()).await? {
                    200 => Ok(()),
                    s => Err(format!("save-event answered {s}")),
                }
            }
        })
        .await?;
        if groups > 1 {
            save_rate = rate;
        }
        println!("{label:<44} {rate:>10.0} {p50:>9.2} {p99:>9.2}");
    }
    let claims = format!(
        "{{\"sub\":\"bench\",\"email\":\"b@example.com\",\"email_verified\":true,\"auth_time\":{}}}",
        crate::scenario::now_secs()
    );
    let (enroll_rate, p50, p99) = load(clients, secs, move |_| {
        let claims = claims.clone();
        async move {
            match http_request(
                addr,
                "GET",
                "/api/0/users/me/authenticators/totp/enroll/",
                &[("x-postflow-claims", claims)],
                b"",
            )
            .await?
            {
                200 => Ok(()),
                s => Err(format!("enroll GET answered {s}")),
            }
        }
    })
    .await?;
    println!("{:<44} {enroll_rate:>10.0} {p50:>9.2} {p99:>9.2}", "enroll GET (1 Query + 1 PutItem)");
    let (accept_rate, p50, p99) = load(clients, secs, move |_| async move {
        match http_request(
            addr,
            "GET",
            "/api/0/accept-invite/acme/10/8d3f7a1c2b9e4f6051a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708/",
            &[],
            b"",
        )
        .await?
        {
            200 => Ok(()),
            s => Err(format!("accept GET answered {s}")),
        }
    })
    .await?;
    println!("{:<44} {accept_rate:>10.0} {p50:>9.2} {p99:>9.2}", "accept-invite GET (1 BatchGetItem)");
    server.abort();
    println!(
        "\nsave-event (1000 groups): {:.0}% of the raw TransactWriteItems rate (each event is one transaction + one PutItem-class update + one PutRecords), {:.0}% of the PutItem rate",
        save_rate / tx_rate * 100.0,
        save_rate / put_rate * 100.0
    );
    println!("accept-invite GET: {:.0}% of the PutItem ceiling", accept_rate / put_rate * 100.0);
    let _ = shared::storage::provision::delete_table(&clients_sdk.dynamodb, &config.table_name).await;
    Ok(())
}
