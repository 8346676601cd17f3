//! No lost events, no double counting: a stream failure after the table writes, the 200-way race on a
//! new release/environment/fingerprint, and the sequential round trips per event (cold and warm).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;
use shared::adapters::memory::SinkFault;
use shared::error::StoreError;
use shared::save::aggregate::counter;
use shared::storage::keys;

/// The stream fails once after the table writes → 503 with Retry-After; the SDK's retry → exactly one
/// record and `times_seen` 1.
async fn stream_fails_once(env: Env) {
    let ev = make_event(json!({"message": "flaky stream", "release": "3.0", "environment": "prod"}));
    env.memory_stream().sink().inject(SinkFault::Call(StoreError::Unavailable {
        service: "kinesis",
        message: "connection reset".into(),
    }));
    let r = env.send(&envelope(42, KEY, "event", &ev)).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(!r.json_body().to_string().contains("connection reset"), "no internals in the body");
    assert!(env.records().await.is_empty());

    // The retry (same envelope) publishes the record saved by the first attempt, without counting again.
    let r = env.send(&envelope(42, KEY, "event", &ev)).await;
    assert_eq!(r.status, 200);
    let msgs = env.messages().await;
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0][3]["is_new"], true, "the first attempt's flags");
    let gid = msgs[0][2]["group_id"].as_u64().unwrap();
    assert_eq!(env.group(gid).await.times_seen, 1);
    assert_eq!(
        counter(env.table.as_ref(), &keys::release_project(42, "3.0"), "new_groups").await.unwrap(),
        1
    );

    // A third copy is a duplicate.
    assert_eq!(env.send(&envelope(42, KEY, "event", &ev)).await.status, 200);
    assert_eq!(env.records().await.len(), 1);

    // Partial PutRecords failures are retried inside the request: no 503 at all.
    env.memory_stream().sink().inject(SinkFault::Entries(vec![0]));
    assert_eq!(
        env.send(&envelope(42, KEY, "event", &make_event(json!({"message": "partial"})))).await.status,
        200
    );
    assert_eq!(env.records().await.len(), 2);
}

#[tokio::test]
async fn stream_fails_once_memory() {
    stream_fails_once(memory_env().await).await;
}

#[tokio::test]
async fn stream_fails_once_dynamodb() {
    let Some(env) = dynamo_with_memory_stream("stream_fails_once_dynamodb").await else { return };
    stream_fails_once(env).await;
}

/// 200 events in parallel for a new release, environment and fingerprint → one Release, one
/// Environment, one Group with times_seen 200, exactly one `is_new` among 200 records.
async fn two_hundred(env: Env) {
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let h = env.handler.clone();
        let ev = make_event(
            json!({"message": "the race", "release": "race@1.0", "environment": "race-env", "fingerprint": ["race-fp"]}),
        );
        tasks.push(tokio::spawn(async move { h.handle_api(&envelope(42, KEY, "event", &ev)).await.status }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    env.aggregate().await;
    let msgs = env.messages().await;
    assert_eq!(msgs.len(), 200);
    assert_eq!(msgs.iter().filter(|m| m[3]["is_new"] == true).count(), 1);
    assert_eq!(msgs.iter().filter(|m| m[3]["is_new_group_environment"] == true).count(), 1);
    let gid = msgs[0][2]["group_id"].as_u64().unwrap();
    assert!(msgs.iter().all(|m| m[2]["group_id"].as_u64() == Some(gid)));
    assert_eq!(env.group(gid).await.times_seen, 200);
    assert_eq!(env.table.query("ORG#1", Some("RELEASE#")).await.unwrap().len(), 1, "one Release");
    assert_eq!(env.table.query("ORG#1", Some("ENV#")).await.unwrap().len(), 1, "one Environment");
    let ids: std::collections::BTreeSet<&str> =
        msgs.iter().map(|m| m[2]["event_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 200, "no event id streamed twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_in_parallel_memory() {
    two_hundred(memory_env().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_in_parallel_dynamodb_kinesis() {
    let Some(env) = aws_env("two_hundred_in_parallel_dynamodb_kinesis").await else { return };
    two_hundred(env).await;
}

/// Sequential round trips per event, counted by the SDK interceptor (DynamoDB and Kinesis calls), for
/// the request alone (the aggregation runs after it, in `aggregate-events` on AWS).
#[tokio::test]
async fn round_trips_per_event() {
    let Some(env) = aws_env("save_round_trips_per_event").await else { return };
    let rec = env.recorder.clone().unwrap();
    let ev = |msg: &str| make_event(json!({"message": msg, "release": "rt@1", "environment": "prod"}));
    let send = |e: serde_json::Value| {
        let h = env.handler.clone();
        async move { h.handle_api(&envelope(42, KEY, "event", &e)).await.status }
    };

    // Cold Lambda, new group: the key lookup (before anything past the envelope header is parsed);
    // the hash read; the marker ‖ the group's creation (one transaction of items no other group
    // shares) ‖ the release/environment rows; PutRecords.
    rec.reset();
    assert_eq!(send(ev("round trips")).await, 200);
    let cold_new = rec.sequential_round_trips();
    eprintln!("cold, new group: {cold_new} sequential round trips: {:?}", rec.operations());
    assert_eq!(cold_new, 4);
    env.aggregate().await;

    // Warm Lambda, known group, release and environment: the marker, PutRecords.
    rec.reset();
    assert_eq!(send(ev("round trips")).await, 200);
    let warm = rec.sequential_round_trips();
    eprintln!("warm, existing group: {warm}: {:?}", rec.operations());
    assert_eq!(warm, 2);
    assert_eq!(rec.operations(), ["PutItem", "PutRecords"]);

    // Warm key, new group: hash read; the marker ‖ the creation; PutRecords.
    rec.reset();
    assert_eq!(send(ev("a brand new group")).await, 200);
    let warm_new = rec.sequential_round_trips();
    eprintln!("warm, new group: {warm_new}: {:?}", rec.operations());
    assert_eq!(warm_new, 3);

    // A fresh Lambda for an existing group: the key; the hashes; the marker ‖ the group environment
    // (put-if-absent, answered with the existing item) ‖ the group's status ‖ release/environment rows.
    let fresh = save_event::SaveEvent::build(
        std::sync::Arc::new(shared::config::Config::for_local("t", "s")),
        &shared::backends::Backends::new(
            env.table.clone(),
            std::sync::Arc::new(shared::adapters::memory::MemoryRateLimiter::default()),
        )
        .with_clock(std::sync::Arc::new(env.clock.clone())),
        std::sync::Arc::new(shared::adapters::memory::memory_stream(3)),
    );
    rec.reset();
    assert_eq!(fresh.handle_api(&envelope(42, KEY, "event", &ev("round trips"))).await.status, 200);
    let cold_existing = rec.sequential_round_trips();
    eprintln!(
        "cold, existing group (DynamoDB only; stream in memory): {cold_existing}: {:?}",
        rec.operations()
    );
    assert_eq!(cold_existing, 3, "plus PutRecords on Kinesis: 4");
    env.aggregate().await;

    // A duplicate (warm): the marker put is refused with the counted marker; nothing published.
    let dup = ev("dup");
    assert_eq!(send(dup.clone()).await, 200);
    env.aggregate().await;
    rec.reset();
    assert_eq!(send(dup).await, 200);
    eprintln!("duplicate: {}: {:?}", rec.sequential_round_trips(), rec.operations());
    assert_eq!(rec.operations(), ["PutItem"]);
}
