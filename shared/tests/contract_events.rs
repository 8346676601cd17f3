//! Contract suite for the event saver (`storage::events`): groups, releases, environments, the event
//! marker (duplicates, in-flight, resume) and the 200-way race, on the in-memory table and DynamoDB Local.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use shared::adapters::dynamo_table::DynamoTable;
use shared::adapters::memory::MemoryTable;
use shared::domain::project::Project;
use shared::ports::OsRandom;
use shared::storage::events::{Begin, EventSaver, GroupValues, SaveJob, SaveKind, keys};
use shared::storage::item::ItemExt;
use shared::storage::table::Table;
use shared::testing::aws_env;

const T: f64 = 1_700_000_000.0;

fn job(event_id: &str, hash: &str, env: &str, release: Option<&str>, ts: f64) -> SaveJob {
    SaveJob {
        project: Project { id: 42, organization_id: 1, slug: "backend".into(), platform: None },
        event_id: event_id.into(),
        kind: SaveKind::Error,
        timestamp: ts,
        received: ts,
        release: release.map(str::to_owned),
        environment: env.into(),
        hashes: vec![hash.into()],
        group: GroupValues {
            level: 40,
            culprit: "app.main".into(),
            message: "boom".into(),
            title: "ValueError: boom".into(),
            event_type: "error".into(),
            ..Default::default()
        },
    }
}

fn saved(b: Begin) -> shared::storage::events::SaveResult {
    match b {
        Begin::Saved(r) => r,
        other => panic!("expected Saved, got {other:?}"),
    }
}

async fn n(t: &dyn Table, key: shared::storage::item::Key, attr: &str) -> Option<i64> {
    t.get(&key).await.unwrap().and_then(|i| i.opt_n(attr))
}

async fn grouping_and_associations(t: Arc<dyn Table>) {
    let s = EventSaver::new(t.clone(), Arc::new(OsRandom));
    let now = T as i64;
    // ReleaseIssueTest.test_different_groups / test_same_group / test_same_group_different_environment.
    let a = saved(s.begin(&job("e1", "aaaa", "prod", Some("1.0"), T), now).await.unwrap());
    s.finish(42, "e1").await.unwrap();
    assert!(a.is_new && a.is_new_group_environment && !a.is_regression);
    assert_eq!(a.short_id, Some(1));
    let g = a.group_id.unwrap();
    let b = saved(s.begin(&job("e2", "aaaa", "prod", Some("1.0"), T + 100.0), now).await.unwrap());
    s.finish(42, "e2").await.unwrap();
    assert_eq!(b.group_id, Some(g));
    assert!(!b.is_new && !b.is_new_group_environment);
    let c = saved(s.begin(&job("e3", "bbbb", "prod", Some("1.0"), T + 100.0), now).await.unwrap());
    assert!(c.is_new);
    assert_ne!(c.group_id, Some(g));
    assert_eq!(c.short_id, Some(2));
    let d = saved(s.begin(&job("e4", "aaaa", "staging", Some("1.0"), T + 200.0), now).await.unwrap());
    assert!(!d.is_new && d.is_new_group_environment, "a new environment for an existing group");

    assert_eq!(n(t.as_ref(), keys::group(g), "times_seen").await, Some(3));
    assert_eq!(n(t.as_ref(), keys::group(g), "first_seen").await, Some(T as i64));
    assert_eq!(n(t.as_ref(), keys::group(g), "last_seen").await, Some(T as i64 + 200));
    assert_eq!(n(t.as_ref(), keys::release_project(42, "1.0"), "new_groups").await, Some(2));
    let rpe = keys::release_project_environment(42, "1.0", "prod");
    assert_eq!(n(t.as_ref(), rpe.clone(), "new_issues_count").await, Some(2));
    assert_eq!(n(t.as_ref(), rpe, "first_seen").await, Some(T as i64));
    assert_eq!(
        n(t.as_ref(), keys::release_project_environment(42, "1.0", "staging"), "new_issues_count").await,
        Some(1)
    );
    assert!(t.get(&keys::release(1, "1.0")).await.unwrap().is_some());
    assert!(t.get(&keys::environment(1, "prod")).await.unwrap().is_some());
    assert!(t.get(&keys::group_release(g, "1.0", "staging")).await.unwrap().is_some());
    assert!(t.get(&keys::group_env(g, "staging")).await.unwrap().is_some());

    // No release: no Release rows; the environment "" row exists.
    let e = saved(s.begin(&job("e5", "cccc", "", None, T), now).await.unwrap());
    assert!(e.is_new);
    assert!(t.get(&keys::environment(1, "")).await.unwrap().is_some());
    assert!(t.query("ORG#1", Some("RELEASE#")).await.unwrap().len() == 1);

    // A fresh Lambda (cold cache) finds the existing group through its hash.
    let cold = EventSaver::new(t.clone(), Arc::new(OsRandom));
    let f = saved(cold.begin(&job("e6", "aaaa", "prod", Some("1.0"), T + 300.0), now).await.unwrap());
    assert_eq!(f.group_id, Some(g));
    assert!(!f.is_new && !f.is_new_group_environment);
    assert_eq!(n(t.as_ref(), keys::group(g), "times_seen").await, Some(4));
}

async fn marker_lifecycle(t: Arc<dyn Table>) {
    let s = EventSaver::new(t.clone(), Arc::new(OsRandom));
    let now = T as i64;
    let j = job("dup", "dddd", "", None, T);
    let first = saved(s.begin(&j, now).await.unwrap());
    // While the first attempt holds the lease, a copy is "in flight".
    assert_eq!(s.begin(&j, now + 1).await.unwrap(), Begin::InFlight);
    // The publish failed: the lease is released and the retry resumes with the same flags.
    s.abandon(42, "dup").await.unwrap();
    let resumed = match s.begin(&j, now + 2).await.unwrap() {
        Begin::Resume(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(resumed, first);
    s.finish(42, "dup").await.unwrap();
    // A duplicate within the hour: nothing saved again.
    assert_eq!(s.begin(&j, now + 10).await.unwrap(), Begin::Duplicate);
    assert_eq!(
        n(t.as_ref(), keys::group(first.group_id.unwrap()), "times_seen").await,
        Some(1),
        "counted once"
    );
    // A lease that expired without `abandon` (the Lambda died) is taken over.
    let k = job("crash", "dddd", "", None, T);
    saved(s.begin(&k, now).await.unwrap());
    assert!(matches!(s.begin(&k, now + 31).await.unwrap(), Begin::Resume(_)));
    assert_eq!(s.begin(&k, now + 32).await.unwrap(), Begin::InFlight, "the new lease holds");
    assert_eq!(n(t.as_ref(), keys::group(first.group_id.unwrap()), "times_seen").await, Some(2));
}

async fn regression(t: Arc<dyn Table>) {
    let s = EventSaver::new(t.clone(), Arc::new(OsRandom));
    let now = T as i64;
    let g = saved(s.begin(&job("r1", "rrrr", "", None, T), now).await.unwrap()).group_id.unwrap();
    s.finish(42, "r1").await.unwrap();
    assert!(s.resolve_group(g).await.unwrap());
    // Within 5 s of activation: counted, not a regression.
    let r = saved(s.begin(&job("r2", "rrrr", "", None, T + 3.0), now).await.unwrap());
    assert!(!r.is_regression);
    let r = saved(s.begin(&job("r3", "rrrr", "", None, T + 60.0), now).await.unwrap());
    assert!(r.is_regression, "a resolved group receiving an event regresses");
    let item = t.get(&keys::group(g)).await.unwrap().unwrap();
    assert_eq!(item.s("status").unwrap(), "unresolved");
    assert_eq!(item.s("substatus").unwrap(), "regressed");
    let r = saved(s.begin(&job("r4", "rrrr", "", None, T + 120.0), now).await.unwrap());
    assert!(!r.is_regression);
    assert_eq!(item_n(&t, g).await, 4);
}

async fn item_n(t: &Arc<dyn Table>, g: u64) -> i64 {
    n(t.as_ref(), keys::group(g), "times_seen").await.unwrap()
}

async fn transactions(t: Arc<dyn Table>) {
    let s = EventSaver::new(t.clone(), Arc::new(OsRandom));
    let mut j = job("tx1", "", "prod", Some("2.0"), T);
    j.kind = SaveKind::Transaction;
    j.hashes.clear();
    let r = saved(s.begin(&j, T as i64).await.unwrap());
    assert_eq!(r.group_id, None);
    assert!(!r.is_new && !r.is_new_group_environment);
    assert!(t.get(&keys::release_environment(1, "2.0", "prod")).await.unwrap().is_some());
    assert!(t.get(&keys::release_project_environment(42, "2.0", "prod")).await.unwrap().is_some());
    assert_eq!(n(t.as_ref(), keys::release_project(42, "2.0"), "new_groups").await, None);
}

/// 200 events in parallel for a new release, environment and fingerprint: one Release, one Environment,
/// one Group with times_seen 200, exactly one is_new.
async fn race(t: Arc<dyn Table>) {
    let s = Arc::new(EventSaver::new(t.clone(), Arc::new(OsRandom)));
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let r = saved(
                s.begin(&job(&format!("race{i}"), "ffff", "racing", Some("9.9"), T), T as i64).await.unwrap(),
            );
            s.finish(42, &format!("race{i}")).await.unwrap();
            r
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    assert_eq!(results.iter().filter(|r| r.is_new).count(), 1);
    assert_eq!(results.iter().filter(|r| r.is_new_group_environment).count(), 1);
    let g = results[0].group_id.unwrap();
    assert!(results.iter().all(|r| r.group_id == Some(g)));
    assert_eq!(item_n(&t, g).await, 200);
    assert_eq!(t.query("ORG#1", Some("RELEASE#")).await.unwrap().len(), 1);
    assert_eq!(t.query("ORG#1", Some("ENV#")).await.unwrap().len(), 1);
    assert_eq!(n(t.as_ref(), keys::release_project(42, "9.9"), "new_groups").await, Some(1));
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
