//! `postflow bench storm`: an error storm through the real save-event handler on the AWS limits model
//! (`shared::aws_model`, issue 15).
//!
//! N events per second for S seconds, spread over G groups of one project (G = 1: a one-group storm;
//! G = 1000: the control), each a real sentry-python error envelope (the captured
//! `tests/fixtures/sdk/python/exception.request.json`) with a fresh event id and a message/fingerprint
//! per group. The handler runs over `ModelTable(MemoryTable)` and a publisher over
//! `ModelSink(MemorySink)` with `--shards` shards. Time is simulated: a [`ManualClock`] moves by 1/N s
//! before each event, so although the events are handled one after another in real time, the model sees
//! N per second — which is what makes transaction holds (15 ms of model time) overlap as they would with
//! many concurrent Lambda instances. Each event is handled in its own tokio task (one invocation), so
//! the model does not count an invocation's follow-up writes as conflicts with its own transaction.
//! Retries inside adapters do not move the clock (a throttled shard or
//! a held item stays so for every retry of one event).
//!
//! The aggregation (`aggregate-events` on AWS) runs over the modelled stream's shards once per model
//! second during the storm (the event-source mapping's batching window) and its writes go through the
//! same table model. Counts are checked at the end: for each group, `times_seen` (its row plus its
//! aggregate items) must equal the number of its events answered 200; after the last event the
//! aggregation runs once per model second until they do ("time until exact").

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shared::adapters::memory::{MemoryRateLimiter, MemorySink, MemoryTable};
use shared::adapters::publisher::Publisher;
use shared::aws_model::{ModelSink, ModelStats, ModelTable, SinkStats, shard_id};
use shared::backends::Backends;
use shared::http::ApiRequest;
use shared::ports::{Clock, ManualClock, OsRandom, Random};
use shared::save::aggregate::{MemoryFeed, Pump, group_view};
use shared::storage::table::Table;

/// The storm's shape.
#[derive(Clone, Copy, Debug)]
pub struct StormOptions {
    /// Events per (model) second.
    pub rate: u64,
    pub secs: u64,
    /// Distinct groups the events are spread over (round robin).
    pub groups: usize,
    /// Shards of the modelled Kinesis stream.
    pub shards: usize,
    /// Transactions (the captured sentry-python transaction) instead of errors.
    pub transactions: bool,
}

/// What a storm measured.
#[derive(Clone, Debug)]
pub struct StormReport {
    pub options: StormOptions,
    pub events: u64,
    /// Answers by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    pub table: ModelStats,
    pub stream: SinkStats,
    /// Groups whose `times_seen` differs from their events answered 200 (after [`drain`]).
    pub inexact_groups: usize,
    /// Groups that got at least one 200.
    pub groups_checked: usize,
    /// Over the groups checked: the sum of `times_seen` and of events answered 200.
    pub times_seen_total: i64,
    pub answered_200_total: i64,
    /// Model time [`drain`] took until the counts were exact (zero today: nothing is aggregated).
    pub time_until_exact: Duration,
    /// Real time of the run.
    pub elapsed: Duration,
    /// Aggregation batches that failed and were delivered again (the model's transaction holds).
    pub aggregation_retries: usize,
}

impl StormReport {
    pub fn exact(&self) -> bool {
        self.inexact_groups == 0
    }

    pub fn count(&self, status: u16) -> u64 {
        self.statuses.get(&status).copied().unwrap_or(0)
    }
}

/// 2026-11-26T07:13:00Z, just after the SDK fixtures were captured.
const START_SECS: i64 = 1_795_677_180;
const PROJECT: u64 = 42;
const DSN_KEY: &str = "c0ffee0c0ffee0c0ffee0c0ffee0c0ff";
const FIXTURE: &str = include_str!("../tests/fixtures/sdk/python/exception.request.json");
const TX_FIXTURE: &str = include_str!("../tests/fixtures/sdk/python/transaction.request.json");

/// The event of the captured sentry-python exception (or transaction) envelope (gzip-decoded, third
/// line).
fn template_event(transactions: bool) -> Result<Value, String> {
    use base64::Engine;
    let v: Value =
        serde_json::from_str(if transactions { TX_FIXTURE } else { FIXTURE }).map_err(|e| e.to_string())?;
    let body = base64::engine::general_purpose::STANDARD
        .decode(v["body_base64"].as_str().unwrap_or_default())
        .map_err(|e| e.to_string())?;
    let raw =
        shared::ingest::decode::decode_body(&body, Some("gzip"), 16 << 20).map_err(|e| e.to_string())?;
    let text = std::str::from_utf8(&raw).map_err(|e| e.to_string())?;
    let line = text.lines().nth(2).ok_or("fixture envelope has no event item")?;
    serde_json::from_str(line).map_err(|e| e.to_string())
}

/// One envelope request for group `g`, with a fresh event id, at `now_secs`.
fn storm_request(template: &Value, g: usize, event_id: &str, now: f64) -> ApiRequest {
    let mut ev = template.clone();
    ev["event_id"] = json!(event_id);
    ev["timestamp"] = json!(now);
    let item_type = if ev["type"] == "transaction" { "transaction" } else { "event" };
    if item_type == "transaction" {
        ev["start_timestamp"] = json!(now - 0.25);
        ev["transaction"] = json!(format!("storm-{g}"));
    } else {
        ev["fingerprint"] = json!([format!("storm-{g}")]);
    }
    ev["message"] = json!(format!("storm error {g}"));
    if let Some(last) = ev["exception"]["values"].as_array_mut().and_then(|v| v.last_mut()) {
        last["value"] = json!(format!("storm error {g}"));
    }
    let body = ev.to_string();
    let raw = format!(
        "{{\"event_id\":\"{event_id}\"}}\n{{\"type\":\"{item_type}\",\"content_type\":\"application/json\",\"length\":{}}}\n{body}\n",
        body.len()
    );
    ApiRequest {
        method: "POST".into(),
        path: format!("/api/{PROJECT}/envelope/"),
        path_params: [("project_id".to_owned(), PROJECT.to_string())].into(),
        headers: vec![
            ("content-type".into(), "application/x-sentry-envelope".into()),
            ("user-agent".into(), "sentry.python/2.75.0".into()),
            (
                "x-sentry-auth".into(),
                format!("Sentry sentry_key={DSN_KEY}, sentry_version=7, sentry_client=sentry.python/2.75.0"),
            ),
        ],
        body: raw.into_bytes(),
        source_ip: Some("203.0.113.20".into()),
        ..Default::default()
    }
}

/// The one place counts are read: the group's `times_seen` as a reader sees it (its row plus its
/// per-shard aggregate items).
pub async fn group_times_seen(table: &dyn Table, group_id: u64) -> Result<i64, String> {
    Ok(group_view(table, group_id).await.map_err(|e| e.to_string())?.map_or(0, |v| v.times_seen))
}

/// One round of the aggregation (one batch per shard), in its own task (its own invocation). A failed
/// batch is delivered again by the next round, as the event-source mapping does; returns how many
/// batches failed.
async fn aggregation_round(pump: &Arc<Pump>, clock: &ManualClock) -> Result<usize, String> {
    let (p, now) = (pump.clone(), clock.now_secs());
    let r = tokio::spawn(async move { p.round(now).await })
        .await
        .map_err(|e| format!("aggregation task failed: {e}"))?;
    Ok(match r {
        Ok(report) => report.failed_batches,
        Err(_) => 1,
    })
}

/// Runs a storm and measures it.
pub async fn run_storm(options: StormOptions) -> Result<StormReport, String> {
    let groups = options.groups.max(1);
    let rate = options.rate.max(1);
    let clock = ManualClock::at_secs(START_SECS);
    let memory = Arc::new(MemoryTable::default());
    let seed: shared::storage::seed::Seed = serde_json::from_value(json!({
        "organizations": [{"id": 1, "slug": "acme", "name": "Acme"}],
        "projects": [{"id": PROJECT, "organization_id": 1, "slug": "backend", "platform": "python"}],
        "keys": [{"public_key": DSN_KEY, "project_id": PROJECT, "id": 7}]
    }))
    .map_err(|e| e.to_string())?;
    shared::storage::seed::load_seed(memory.as_ref(), &seed, START_SECS * 1000)
        .await
        .map_err(|e| e.to_string())?;
    let model = Arc::new(ModelTable::new(memory.clone(), Arc::new(clock.clone())));
    let sink = ModelSink::new(MemorySink::default(), Arc::new(clock.clone()), options.shards.max(1));
    // As the embedded backend (5 attempts), without real-time backoff: retries do not move model time.
    let stream = Arc::new(Publisher::new(sink, 5).with_base_delay(Duration::ZERO));
    let handler = Arc::new(save_event::SaveEvent::build(
        Arc::new(shared::config::Config::for_local("t", "s")),
        &Backends::new(model.clone(), Arc::new(MemoryRateLimiter::default()))
            .with_clock(Arc::new(clock.clone())),
        stream.clone(),
    ));
    let template = template_event(options.transactions)?;
    // The aggregation over the modelled stream's shards, writing through the table model.
    let feed = {
        let (records, shards) = (stream.clone(), stream.clone());
        MemoryFeed::new(
            move |i| records.sink().inner().records_since(i),
            move |pk| shards.sink().shard_of(pk),
        )
    };
    let pump = Arc::new(Pump::new(model.clone(), Arc::new(feed)));

    let events = rate * options.secs;
    let start_ms = START_SECS * 1000;
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    let mut ok_per_group = vec![0i64; groups];
    let mut group_of_event: HashMap<String, usize> = HashMap::new();
    let t0 = Instant::now();
    let mut failed_batches = 0usize;
    for i in 0..events {
        let before = clock.now_secs();
        clock.set_millis(start_ms + ((i + 1) * 1000 / rate) as i64);
        if clock.now_secs() != before {
            // A model second passed: the event-source mapping delivers a batch per shard.
            failed_batches += aggregation_round(&pump, &clock).await?;
        }
        let g = (i as usize) % groups;
        let event_id = hex::encode(OsRandom.bytes::<16>());
        let now = clock.now_millis() as f64 / 1000.0;
        let req = storm_request(&template, g, &event_id, now);
        // One task per event: one Lambda invocation, as the table model tells callers apart by task.
        let h = handler.clone();
        let status = tokio::spawn(async move { h.handle_api(&req).await.status })
            .await
            .map_err(|e| format!("event task failed: {e}"))?;
        *statuses.entry(status).or_default() += 1;
        // Transactions have no group: there is nothing to count for them.
        if status == 200 && !options.transactions {
            ok_per_group[g] += 1;
            group_of_event.insert(event_id, g);
        }
    }
    let last_event_ms = clock.now_millis();

    // Which group id each fingerprint got, from the stream records of the events answered 200.
    let mut group_id: HashMap<usize, u64> = HashMap::new();
    for r in stream.sink().inner().records() {
        let Ok(msg) = serde_json::from_slice::<Value>(&r.data) else { continue };
        let (Some(eid), Some(gid)) = (msg[2]["event_id"].as_str(), msg[2]["group_id"].as_u64()) else {
            continue;
        };
        if let Some(g) = group_of_event.get(eid) {
            group_id.entry(*g).or_insert(gid);
        }
    }
    // After the last event: a batch per shard every model second until the counts are exact.
    let (mut inexact, mut checked, mut seen_total, mut ok_total);
    let mut rounds = 0;
    loop {
        (inexact, checked, seen_total, ok_total) = (0, 0, 0, 0);
        for (g, ok) in ok_per_group.iter().enumerate().filter(|(_, ok)| **ok > 0) {
            checked += 1;
            let seen = match group_id.get(&g) {
                Some(id) => group_times_seen(memory.as_ref(), *id).await?,
                None => -1,
            };
            if seen != *ok {
                inexact += 1;
            }
            seen_total += seen.max(0);
            ok_total += ok;
        }
        if inexact == 0 || rounds >= 60 {
            break;
        }
        rounds += 1;
        clock.set_millis((clock.now_millis() / 1000 + 1) * 1000);
        failed_batches += aggregation_round(&pump, &clock).await?;
    }
    let time_until_exact = Duration::from_millis((clock.now_millis() - last_event_ms).max(0) as u64);
    let elapsed = t0.elapsed();
    Ok(StormReport {
        options,
        events,
        statuses,
        table: model.stats(),
        stream: stream.sink().stats(),
        inexact_groups: inexact,
        groups_checked: checked,
        times_seen_total: seen_total,
        answered_200_total: ok_total,
        time_until_exact,
        elapsed,
        aggregation_retries: failed_batches,
    })
}

/// `postflow bench storm`: runs a storm and prints what it measured.
pub async fn storm(options: StormOptions) -> Result<(), String> {
    let r = run_storm(options).await?;
    let n = r.events.max(1) as f64;
    let o = r.options;
    println!(
        "storm on the AWS limits model: {} events/s × {} s = {} events over {} group(s) of project {PROJECT}, {} shards (real time {:.1} s)",
        o.rate,
        o.secs,
        r.events,
        o.groups,
        o.shards,
        r.elapsed.as_secs_f64()
    );
    let other: u64 = r.statuses.iter().filter(|(s, _)| ![200, 429, 503].contains(*s)).map(|(_, n)| n).sum();
    println!(
        "answers:                 200: {}  429: {}  503: {}  other: {other}",
        r.count(200),
        r.count(429),
        r.count(503)
    );
    let t = &r.table;
    println!(
        "throttled:               table {} requests, stream {} records",
        t.throttled, r.stream.throttled
    );
    println!(
        "transaction conflicts:   {} cancelled ({} of {} transactions overlapped another on an item)",
        t.conflicts, t.tx_overlapped, t.transactions
    );
    match t.hottest_item_per_sec() {
        Some((k, _, w)) => println!("hottest item:            {w} writes/s peak on {}/{}", k.pk, k.sk),
        None => println!("hottest item:            none"),
    }
    if let Some((k, w)) = t.hottest_item_total() {
        println!("writes per event:        {:.3} on the most written item {}/{}", w as f64 / n, k.pk, k.sk);
    }
    if let Some((pk, _, u)) = t.hottest_partition_wcu() {
        println!("hottest partition:       {u} WCU/s peak on {pk}");
    }
    let s = &r.stream;
    match s.hottest_shard() {
        Some((i, _)) if s.total_records() > 0 => println!(
            "hottest shard:           {} with {:.1} % of {} records (peak {} records/s)",
            shard_id(i),
            s.hottest_share() * 100.0,
            s.total_records(),
            s.peak_records_per_sec[i]
        ),
        _ => println!("hottest shard:           no records"),
    }
    println!(
        "per event:               {:.2} WCU, {:.2} RCU, {:.3} Kinesis records, {:.0} Kinesis bytes",
        t.total_wcu as f64 / n,
        t.total_rcu as f64 / n,
        s.total_records() as f64 / n,
        s.total_bytes() as f64 / n
    );
    println!(
        "time until exact:        {:.1} s (model time, after the last event; {} aggregation batches failed and were delivered again)",
        r.time_until_exact.as_secs_f64(),
        r.aggregation_retries
    );
    println!(
        "counts exact:            {} ({} of {} groups with a 200 have times_seen ≠ events answered 200; times_seen {} vs 200s {})",
        if r.exact() { "yes" } else { "NO" },
        r.inexact_groups,
        r.groups_checked,
        r.times_seen_total,
        r.answered_200_total
    );
    Ok(())
}
