//! Contract suite for the save path (`save::saver` + `save::aggregate`): groups, releases,
//! environments, the event marker (duplicates, in-flight, resume), the aggregation's exactly-once
//! counting under re-delivery, bisection, crashes and duplicate records, items of the previous
//! release, and the 200-way race — on the in-memory table and DynamoDB Local.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::json;
use shared::adapters::dynamo_table::DynamoTable;
use shared::adapters::memory::MemoryTable;
use shared::domain::project::Project;
use shared::error::StoreError;
use shared::ports::{OsRandom, StoredRecord};
use shared::save::aggregate::{Aggregator, counter, group_view};
use shared::save::record::GroupState;
use shared::save::{Begin, EventSaver, GroupValues, SaveJob, SaveKind, SaveResult, stream_record};
use shared::storage::item::{Item, ItemExt, Key, Val, item};
use shared::storage::keys;
use shared::storage::table::{Cond, Table, TxOutcome, Update, WriteOp};
use shared::testing::aws_env;

const T: f64 = 1_700_000_000.0;
const SHARD: &str = "shardId-000000000000";

fn job(event_id: &str, hash: &str, env: &str, release: Option<&str>, ts: f64) -> SaveJob {
    SaveJob {
        project: Project { id: 42, organization_id: 1, slug: "backend".into(), ..Default::default() },
        event_id: event_id.into(),
        kind: SaveKind::Error,
        timestamp: ts,
        received: ts,
        release: release.map(str::to_owned),
        environment: env.into(),
        hashes: if hash.is_empty() { vec![] } else { vec![hash.into()] },
        group: GroupValues {
            level: 40,
            culprit: "app.main".into(),
            // The search message of the event `Flow::publish` builds (the record carries this one).
            message: "ValueError boom app.main".into(),
            title: "ValueError: boom".into(),
            event_type: "error".into(),
            ..Default::default()
        },
    }
}

/// The saver, a stream (a vector with sequence numbers) and the aggregation over one table.
struct Flow {
    table: Arc<dyn Table>,
    saver: Arc<EventSaver>,
    stream: Mutex<Vec<StoredRecord>>,
    counted_upto: Mutex<usize>,
    agg: Aggregator,
}

impl Flow {
    fn new(table: Arc<dyn Table>) -> Self {
        Self {
            saver: Arc::new(EventSaver::new(table.clone(), Arc::new(OsRandom))),
            agg: Aggregator::new(table.clone()),
            table,
            stream: Mutex::new(Vec::new()),
            counted_upto: Mutex::new(0),
        }
    }

    /// What save-event does after `begin`: build and publish the record.
    fn publish(&self, j: &SaveJob, r: &SaveResult) {
        let mut event = json!({
            "event_id": j.event_id, "timestamp": j.timestamp, "received": j.received, "type": "error",
            "level": "error", "platform": "python", "culprit": j.group.culprit, "title": j.group.title,
            "metadata": {"type": "ValueError", "value": "boom"}, "environment": j.environment,
        });
        if let Some(rel) = &j.release {
            event["release"] = json!(rel);
        }
        let rec = stream_record(j, event, r);
        let mut s = self.stream.lock().unwrap();
        let seq = format!("{}", 1_000_000 + s.len());
        s.push(StoredRecord { sequence_number: seq, partition_key: rec.partition_key, data: rec.data });
    }

    async fn save(&self, j: &SaveJob) -> SaveResult {
        match self.saver.begin(j, T as i64).await.unwrap() {
            Begin::Saved(r) | Begin::Resume(r) => {
                self.publish(j, &r);
                r
            }
            other => panic!("expected Saved, got {other:?}"),
        }
    }

    /// Counts what was published since the last call, as one batch.
    async fn aggregate(&self) {
        let batch: Vec<StoredRecord> = {
            let s = self.stream.lock().unwrap();
            let mut upto = self.counted_upto.lock().unwrap();
            let b = s[*upto..].to_vec();
            *upto = s.len();
            b
        };
        self.agg.process(SHARD, &batch, T as i64).await.unwrap();
    }

    async fn times_seen(&self, g: u64) -> i64 {
        group_view(self.table.as_ref(), g).await.unwrap().unwrap().times_seen
    }
}

fn flags(r: &SaveResult) -> GroupState {
    r.group.unwrap()
}

async fn grouping_and_associations(t: Arc<dyn Table>) {
    let f = Flow::new(t.clone());
    // ReleaseIssueTest.test_different_groups / test_same_group / test_same_group_different_environment.
    let a = flags(&f.save(&job("e1", "aaaa", "prod", Some("1.0"), T)).await);
    assert!(a.is_new && a.is_new_group_environment && !a.is_regression);
    let g = a.id;
    let b = flags(&f.save(&job("e2", "aaaa", "prod", Some("1.0"), T + 100.0)).await);
    assert_eq!(b.id, g);
    assert!(!b.is_new && !b.is_new_group_environment);
    let c = flags(&f.save(&job("e3", "bbbb", "prod", Some("1.0"), T + 100.0)).await);
    assert!(c.is_new);
    assert_ne!(c.id, g);
    let d = flags(&f.save(&job("e4", "aaaa", "staging", Some("1.0"), T + 200.0)).await);
    assert!(!d.is_new && d.is_new_group_environment, "a new environment for an existing group");
    f.aggregate().await;

    let v = group_view(t.as_ref(), g).await.unwrap().unwrap();
    assert_eq!((v.times_seen, v.first_seen, v.last_seen), (3, T as i64, T as i64 + 200));
    assert_eq!(v.short_id, Some(1), "short ids in order of the new groups");
    assert_eq!(group_view(t.as_ref(), c.id).await.unwrap().unwrap().short_id, Some(2));
    assert_eq!(counter(t.as_ref(), &keys::release_project(42, "1.0"), "new_groups").await.unwrap(), 2);
    let rpe = keys::release_project_environment(42, "1.0", "prod");
    assert_eq!(counter(t.as_ref(), &rpe, "new_issues_count").await.unwrap(), 2);
    assert_eq!(t.get(&rpe).await.unwrap().unwrap().opt_n("first_seen"), Some(T as i64));
    let staging = keys::release_project_environment(42, "1.0", "staging");
    assert_eq!(counter(t.as_ref(), &staging, "new_issues_count").await.unwrap(), 1);
    assert!(t.get(&keys::release(1, "1.0")).await.unwrap().is_some());
    assert!(t.get(&keys::environment(1, "prod")).await.unwrap().is_some());
    assert!(t.get(&keys::group_release(g, "1.0", "staging")).await.unwrap().is_some());
    assert!(t.get(&keys::group_env(g, "staging")).await.unwrap().is_some());

    // No release: no Release rows; the environment "" row exists.
    let e = flags(&f.save(&job("e5", "cccc", "", None, T)).await);
    assert!(e.is_new);
    assert!(t.get(&keys::environment(1, "")).await.unwrap().is_some());
    assert!(t.query("ORG#1", Some("RELEASE#")).await.unwrap().len() == 1);

    // A fresh Lambda (cold cache) finds the existing group through its hash.
    f.saver.forget_all().unwrap();
    let x = flags(&f.save(&job("e6", "aaaa", "prod", Some("1.0"), T + 300.0)).await);
    assert_eq!(x.id, g);
    assert!(!x.is_new && !x.is_new_group_environment);
    f.aggregate().await;
    assert_eq!(f.times_seen(g).await, 4);
}

async fn marker_lifecycle(t: Arc<dyn Table>) {
    let f = Flow::new(t.clone());
    let s = &f.saver;
    let now = T as i64;
    let j = job("dup", "dddd", "", None, T);
    let first = match s.begin(&j, now).await.unwrap() {
        Begin::Saved(r) => r,
        other => panic!("{other:?}"),
    };
    // While the first attempt holds the lease, a copy is "in flight".
    assert_eq!(s.begin(&j, now + 1).await.unwrap(), Begin::InFlight);
    // The publish failed: the lease is released and the retry resumes with the same flags.
    s.abandon(42, "dup").await.unwrap();
    let resumed = match s.begin(&j, now + 2).await.unwrap() {
        Begin::Resume(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(resumed, first, "a resumed publish rebuilds the same record (stamps)");
    f.publish(&j, &resumed);
    f.aggregate().await;
    // Counted: a duplicate within the hour saves and streams nothing.
    assert_eq!(s.begin(&j, now + 10).await.unwrap(), Begin::Duplicate);
    let g = first.group.unwrap().id;
    assert_eq!(f.times_seen(g).await, 1, "counted once");

    // A failure after the marker was written (a release row cannot be written): the lease is released
    // at once, so the retry resumes immediately instead of waiting for the lease to expire.
    let failing = EventSaver::new(fail_on(t.clone(), "RELEASE#"), Arc::new(OsRandom));
    let l = job("lease-released", "dddd", "", Some("9.1"), T);
    assert!(failing.begin(&l, now).await.is_err(), "the marker is written, then the release row fails");
    assert!(matches!(s.begin(&l, now + 1).await.unwrap(), Begin::Resume(_)), "resumed at once");
    // A lease that expired without `abandon` (the Lambda died after publishing): taken over, published
    // again — two records of one event on the stream, counted once.
    let k = job("crash", "dddd", "", None, T);
    let r1 = f.save(&k).await;
    let r2 = match s.begin(&k, now + 31).await.unwrap() {
        Begin::Resume(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(r1, r2);
    assert_eq!(s.begin(&k, now + 32).await.unwrap(), Begin::InFlight, "the new lease holds");
    f.publish(&k, &r2);
    f.aggregate().await;
    assert_eq!(f.times_seen(g).await, 2, "the re-published record is not counted again");
    assert_eq!(s.begin(&k, now + 40).await.unwrap(), Begin::Duplicate);
}

async fn regression(t: Arc<dyn Table>) {
    let f = Flow::new(t.clone());
    let g = flags(&f.save(&job("r1", "rrrr", "", None, T)).await).id;
    assert!(f.saver.resolve_group(g).await.unwrap());
    // Within 5 s of activation: counted, not a regression.
    assert!(!flags(&f.save(&job("r2", "rrrr", "", None, T + 3.0)).await).is_regression);
    let r = f.save(&job("r3", "rrrr", "", None, T + 60.0)).await;
    assert!(flags(&r).is_regression, "a resolved group receiving an event regresses");
    let item = t.get(&keys::group(g)).await.unwrap().unwrap();
    assert_eq!(item.s("status").unwrap(), "unresolved");
    assert_eq!(item.s("substatus").unwrap(), "regressed");
    assert!(!flags(&f.save(&job("r4", "rrrr", "", None, T + 120.0)).await).is_regression);
    f.aggregate().await;
    assert_eq!(f.times_seen(g).await, 4);

    // A resolve is seen by another warm Lambda once its status read is older than the status TTL.
    let other = Flow::new(t.clone());
    other.save(&job("r5", "rrrr", "", None, T + 130.0)).await;
    assert!(f.saver.resolve_group(g).await.unwrap());
    let stale = other.saver.begin(&job("r6", "rrrr", "", None, T + 200.0), T as i64).await.unwrap();
    assert!(matches!(stale, Begin::Saved(r) if !flags(&r).is_regression), "within the status TTL");
    let later = other.saver.begin(&job("r7", "rrrr", "", None, T + 200.0), T as i64 + 6).await.unwrap();
    assert!(matches!(later, Begin::Saved(r) if flags(&r).is_regression), "after the status TTL");
}

async fn transactions(t: Arc<dyn Table>) {
    let f = Flow::new(t.clone());
    let mut j = job("tx1", "", "prod", Some("2.0"), T);
    j.kind = SaveKind::Transaction;
    let r = f.save(&j).await;
    assert_eq!(r.group, None);
    assert!(t.get(&keys::release_environment(1, "2.0", "prod")).await.unwrap().is_some());
    assert!(t.get(&keys::release_project_environment(42, "2.0", "prod")).await.unwrap().is_some());
    f.aggregate().await;
    assert_eq!(counter(t.as_ref(), &keys::release_project(42, "2.0"), "new_groups").await.unwrap(), 0);
    assert_eq!(f.saver.begin(&j, T as i64 + 1).await.unwrap(), Begin::Duplicate);
}

/// 200 events in parallel for a new release, environment and fingerprint: one Release, one Environment,
/// one Group with times_seen 200, exactly one is_new.
async fn race(t: Arc<dyn Table>) {
    let f = Arc::new(Flow::new(t.clone()));
    let mut tasks = Vec::new();
    for i in 0..200 {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            f.save(&job(&format!("race{i}"), "ffff", "racing", Some("9.9"), T)).await
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(flags(&task.await.unwrap()));
    }
    assert_eq!(results.iter().filter(|r| r.is_new).count(), 1);
    assert_eq!(results.iter().filter(|r| r.is_new_group_environment).count(), 1);
    let g = results[0].id;
    assert!(results.iter().all(|r| r.id == g));
    f.aggregate().await;
    assert_eq!(f.times_seen(g).await, 200);
    assert_eq!(t.query("ORG#1", Some("RELEASE#")).await.unwrap().len(), 1);
    assert_eq!(t.query("ORG#1", Some("ENV#")).await.unwrap().len(), 1);
    assert_eq!(counter(t.as_ref(), &keys::release_project(42, "9.9"), "new_groups").await.unwrap(), 1);
}

/// A group created by a copy of an event that is in flight elsewhere (its marker refused) — the warm
/// cache then knows the group — must still give `is_new` to the request that holds the event's marker
/// when its own creation loses and it decides from the cache (found by the mixed-load test).
async fn cache_keeps_the_creators_stamp(t: Arc<dyn Table>) {
    let s = EventSaver::new(t.clone(), Arc::new(OsRandom));
    let j = job("stamped", "ssss", "", None, T);
    let now = T as i64;
    // Another request holds the marker: this copy is in flight, but its decisions created the group.
    let mut held = item(&keys::marker(42, "stamped"));
    for (k, v) in [("state", Val::S("saving".into())), ("lease_until", Val::N(now + 30)), ("v", Val::N(2))] {
        held.insert(k.into(), v);
    }
    held.insert("result".into(), Val::S("{}".into()));
    t.transact(vec![WriteOp::Put { item: held, cond: None }]).await.unwrap();
    assert_eq!(s.begin(&j, now).await.unwrap(), Begin::InFlight);
    // The holder (same Lambda): it read no group before the copy created it, so its creation loses and
    // it decides again — from the cache.
    t.transact(vec![WriteOp::Delete { key: keys::marker(42, "stamped"), cond: None }]).await.unwrap();
    let r = match s.begin_with(&j, now, Some(shared::save::Prefetch::default())).await.unwrap() {
        Begin::Saved(r) => r,
        other => panic!("{other:?}"),
    };
    assert!(r.group.unwrap().is_new, "the event that created the group is the new one");
}

/// A table whose writes fail where `fails` says so (reads go through): a crash half-way through a
/// batch, or a dependency failure on one row.
struct FailingWrites<F> {
    inner: Arc<dyn Table>,
    fails: F,
}

impl<F: Fn(Option<&Key>) -> bool + Send + Sync> FailingWrites<F> {
    fn check(&self, key: Option<&Key>) -> Result<(), StoreError> {
        if (self.fails)(key) {
            return Err(StoreError::Unavailable { service: "dynamodb", message: "injected".into() });
        }
        Ok(())
    }
}

/// Every write after the first `budget` fails (a crash half-way).
fn crash_after(inner: Arc<dyn Table>, budget: usize) -> Arc<dyn Table> {
    let budget = AtomicUsize::new(budget);
    let fails = move |_: Option<&Key>| {
        budget.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1)).is_err()
    };
    Arc::new(FailingWrites { inner, fails })
}

/// Writes to items whose sort key starts with `prefix` fail.
fn fail_on(inner: Arc<dyn Table>, prefix: &'static str) -> Arc<dyn Table> {
    Arc::new(FailingWrites {
        inner,
        fails: move |k: Option<&Key>| k.is_some_and(|k| k.sk.starts_with(prefix)),
    })
}

#[async_trait]
impl<F: Fn(Option<&Key>) -> bool + Send + Sync> Table for FailingWrites<F> {
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        self.inner.get_many(keys).await
    }
    async fn query(&self, pk: &str, sk_prefix: Option<&str>) -> Result<Vec<Item>, StoreError> {
        self.inner.query(pk, sk_prefix).await
    }
    async fn transact(&self, ops: Vec<WriteOp>) -> Result<TxOutcome, StoreError> {
        for op in &ops {
            self.check(op.key().as_ref())?;
        }
        self.inner.transact(ops).await
    }
    async fn update_returning(
        &self,
        key: Key,
        update: Update,
        cond: Option<Cond>,
    ) -> Result<Option<Item>, StoreError> {
        self.check(Some(&key))?;
        self.inner.update_returning(key, update, cond).await
    }
}

/// The aggregation counts each event once whatever the delivery: twice, bisected, after a crash
/// half-way, with a re-published copy of an event, and never an event of the previous release.
async fn aggregation_exactly_once(t: Arc<dyn Table>) {
    let f = Flow::new(t.clone());
    let mut jobs = Vec::new();
    for i in 0..40 {
        let hash = if i % 4 == 0 { "one" } else { "two" };
        let rel = if i % 2 == 0 { Some("3.0") } else { None };
        jobs.push(job(&format!("x{i}"), hash, if i % 3 == 0 { "a" } else { "b" }, rel, T + i as f64));
    }
    for j in &jobs {
        f.save(j).await;
    }
    // A copy of x5 re-published (a resumed publish whose first copy had succeeded).
    {
        let mut s = f.stream.lock().unwrap();
        let mut copy = s[5].clone();
        copy.sequence_number = format!("{}", 1_000_000 + s.len());
        s.push(copy);
    }
    // An event of the previous release (its marker without `v`, counted by that release): not counted.
    let mut legacy = item(&keys::marker(42, "old1"));
    legacy.insert("state".into(), Val::S("saving".into()));
    legacy.insert("result".into(), Val::S("{\"group_id\":1,\"received\":1.0}".into()));
    t.transact(vec![WriteOp::Put { item: legacy, cond: None }]).await.unwrap();
    let old = job("old1", "one", "a", None, T);
    let r = SaveResult {
        group: Some(GroupState {
            id: f.saver_group("one").await,
            is_new: false,
            is_regression: false,
            is_new_group_environment: false,
        }),
        received: T,
    };
    f.publish(&old, &r);
    let batch: Vec<StoredRecord> = f.stream.lock().unwrap().clone();
    assert_eq!(batch.len(), 42);

    // A crash during the claims and one during the row writes (42 claims, then rows); then the first
    // half again (bisected), the whole batch (delivered twice), and the second half.
    for budget in [25, 44] {
        let crashing = Aggregator::new(crash_after(t.clone(), budget));
        assert!(crashing.process(SHARD, &batch, T as i64).await.is_err());
    }
    f.agg.process(SHARD, &batch[..21], T as i64).await.unwrap();
    f.agg.process(SHARD, &batch, T as i64).await.unwrap();
    f.agg.process(SHARD, &batch, T as i64).await.unwrap();
    f.agg.process(SHARD, &batch[21..], T as i64).await.unwrap();

    let one = f.saver_group("one").await;
    let two = f.saver_group("two").await;
    assert_eq!(f.times_seen(one).await, 10);
    assert_eq!(f.times_seen(two).await, 30);
    // x0 created "one" with release 3.0; x1 created "two" without a release.
    assert_eq!(counter(t.as_ref(), &keys::release_project(42, "3.0"), "new_groups").await.unwrap(), 1);
    let v = group_view(t.as_ref(), two).await.unwrap().unwrap();
    assert_eq!((v.first_seen, v.last_seen), (T as i64 + 1, T as i64 + 39));
    // Every counted marker says streamed; the legacy one is untouched.
    let m = t.get(&keys::marker(42, "x7")).await.unwrap().unwrap();
    assert_eq!(m.opt_s("state"), Some("streamed"));
    assert!(!t.get(&keys::marker(42, "old1")).await.unwrap().unwrap().contains_key("counted"));
}

impl Flow {
    async fn saver_group(&self, hash: &str) -> u64 {
        let it = self.table.get(&keys::group_hash(42, hash)).await.unwrap().unwrap();
        it.opt_n("group_id").unwrap() as u64
    }
}

/// Items of the previous release: a hash under `PROJECT#…`, a group with its own `times_seen`, and a
/// marker with the flags in `result` are read as before.
async fn previous_release_items(t: Arc<dyn Table>) {
    let mut hash = item(&keys::legacy_group_hash(42, "legacy"));
    hash.insert("group_id".into(), Val::N(777));
    hash.insert("hash".into(), Val::S("legacy".into()));
    let mut group = item(&keys::group(777));
    for (k, v) in [
        ("group_id", 777),
        ("project_id", 42),
        ("times_seen", 5),
        ("first_seen", 100),
        ("last_seen", 200),
        ("active_at", 100),
    ] {
        group.insert(k.into(), Val::N(v));
    }
    group.insert("status".into(), Val::S("unresolved".into()));
    let mut marker = item(&keys::marker(42, "legacy-evt"));
    marker.insert("state".into(), Val::S("saving".into()));
    marker.insert("lease_until".into(), Val::N(0));
    marker.insert(
        "result".into(),
        Val::S(r#"{"group_id":777,"short_id":3,"is_new":true,"is_regression":false,"is_new_group_environment":true,"received":1700000000.5}"#.into()),
    );
    for i in [hash, group, marker] {
        t.transact(vec![WriteOp::Put { item: i, cond: None }]).await.unwrap();
    }
    let f = Flow::new(t.clone());
    let r = flags(&f.save(&job("new-evt", "legacy", "", None, T)).await);
    assert_eq!(r.id, 777, "the previous release's hash is found");
    assert!(!r.is_new);
    assert!(
        t.get(&keys::group_hash(42, "legacy")).await.unwrap().is_some(),
        "and re-written under its own key"
    );
    f.aggregate().await;
    assert_eq!(f.times_seen(777).await, 6, "the row's own count plus the aggregate");
    match f.saver.begin(&job("legacy-evt", "legacy", "", None, T), T as i64).await.unwrap() {
        Begin::Resume(r) => {
            assert_eq!(r.received, 1_700_000_000.5);
            assert_eq!(
                r.group,
                Some(GroupState {
                    id: 777,
                    is_new: true,
                    is_regression: false,
                    is_new_group_environment: true
                })
            );
        }
        other => panic!("{other:?}"),
    }
}

macro_rules! both {
    ($name:ident) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn memory() {
                super::$name(Arc::new(MemoryTable::default())).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn dynamodb() {
                let Some(env) = aws_env(concat!("events_", stringify!($name))).await else { return };
                super::$name(Arc::new(DynamoTable::new(env.clients.dynamodb.clone(), &env.table))).await;
            }
        }
    };
}

both!(grouping_and_associations);
both!(marker_lifecycle);
both!(regression);
both!(transactions);
both!(race);
both!(aggregation_exactly_once);
both!(previous_release_items);
both!(cache_keeps_the_creators_stamp);
