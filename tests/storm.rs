//! An error storm on the AWS limits model (`shared::aws_model`: per-partition write/read units,
//! transaction conflicts, per-shard Kinesis limits) through the real save-event handler and the
//! aggregation: no 5xx, no throttle, no conflict, no hot item or hot shard, and exact counts shortly
//! after the last event — for a one-group storm and for a storm of new groups. Not timed: the model's
//! clock is simulated (`postflow bench storm` prints the same figures for bigger storms). 5,000 events/s
//! of real 5.4 KB SDK events keep a 64-shard stream at 40 % of its byte capacity, so a throttle here
//! can only come from a hot shard (at 10,000 events/s the stream itself is at 84 %, and random peaks
//! on single shards can reach the 1 MiB/s limit; the bench shows it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use postflow::bench_storm::{StormOptions, StormReport, run_storm};

fn assert_absorbed(r: &StormReport, label: &str) {
    let events = r.events;
    assert_eq!(r.count(200), events, "{label}: every event answered 200: {:?}", r.statuses);
    assert_eq!(r.table.throttled, 0, "{label}: no DynamoDB throttle");
    assert_eq!(r.table.conflicts, 0, "{label}: no transaction conflict");
    assert_eq!(r.table.tx_overlapped, 0, "{label}: no overlapping transactions on an item");
    assert_eq!(r.stream.throttled, 0, "{label}: no Kinesis throttle");
    // The hottest item: at most one write per 100 events in any model second.
    let (key, _, per_sec) = r.table.hottest_item_per_sec().unwrap();
    assert!(
        per_sec * 100 <= r.options.rate,
        "{label}: {per_sec} writes/s on {}/{} at {} events/s",
        key.pk,
        key.sk,
        r.options.rate
    );
    let (pk, _, wcu) = r.table.hottest_partition_wcu().unwrap();
    assert!(wcu <= 1000, "{label}: {wcu} WCU/s on {pk}");
    // No shard takes more than 1/32 of the storm on a 64-shard stream.
    assert!(r.stream.hottest_share() <= 1.0 / 32.0, "{label}: hottest shard {:.3}", r.stream.hottest_share());
    assert!(r.exact(), "{label}: counts exact ({} of {} groups off)", r.inexact_groups, r.groups_checked);
    assert!(r.time_until_exact.as_secs() <= 10, "{label}: exact after {:?}", r.time_until_exact);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_group_storm_is_absorbed_with_exact_counts() {
    let r = run_storm(StormOptions { rate: 5_000, secs: 2, groups: 1, shards: 64, transactions: false })
        .await
        .unwrap();
    assert_absorbed(&r, "one group");
    assert_eq!(r.times_seen_total, 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_new_groups_is_absorbed_with_exact_counts() {
    let r = run_storm(StormOptions { rate: 5_000, secs: 2, groups: 1000, shards: 64, transactions: false })
        .await
        .unwrap();
    assert_absorbed(&r, "1,000 new groups");
    assert_eq!(r.groups_checked, 1000);
}
