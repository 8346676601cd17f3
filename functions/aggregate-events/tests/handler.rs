//! The aggregate-events handler on the sample Kinesis delivery of `events/`: an error event, a
//! transaction and a re-published copy of the error event (as a resumed publish leaves on the stream).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use aggregate_events::AggregateEvents;
use aws_lambda_events::event::kinesis::KinesisEvent;
use shared::adapters::memory::MemoryTable;
use shared::ports::ManualClock;
use shared::save::aggregate::group_view;
use shared::storage::item::ItemExt;
use shared::storage::keys;
use shared::storage::table::Table;

const NOW: i64 = 1_795_677_180;

fn sample() -> KinesisEvent {
    let path = format!("{}/../../events/aggregate-events.kinesis-batch.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn group_of(ev: &KinesisEvent, i: usize) -> (u64, String) {
    let v: serde_json::Value = serde_json::from_slice(&ev.records[i].kinesis.data.0).unwrap();
    (v[2]["group_id"].as_u64().unwrap(), v[2]["event_id"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn sample_delivery_counts_each_event_once_whatever_the_redelivery() {
    let table = Arc::new(MemoryTable::default());
    let h = AggregateEvents::build(table.clone(), Arc::new(ManualClock::at_secs(NOW)));
    let ev = sample();
    let (g, event_id) = group_of(&ev, 0);
    // The group row, as save-event created it.
    let mut row = shared::storage::item::item(&keys::group(g));
    row.insert("project_id".into(), shared::storage::item::Val::N(42));
    row.insert("times_seen".into(), shared::storage::item::Val::N(0));
    table.transact(vec![shared::storage::table::WriteOp::Put { item: row, cond: None }]).await.unwrap();

    let out = h.handle(ev.clone()).await.unwrap();
    assert_eq!(out["batchItemFailures"], serde_json::json!([]));
    let v = group_view(table.as_ref(), g).await.unwrap().unwrap();
    assert_eq!(v.times_seen, 1, "the re-published copy is not counted");
    assert_eq!(v.short_id, Some(1), "a new group gets its short id");
    let marker = table.get(&keys::marker(42, &event_id)).await.unwrap().unwrap();
    assert_eq!(marker.opt_s("state"), Some("streamed"));
    assert!(marker.opt_s("counted").unwrap().starts_with("shardId-000000000003/"));

    // Delivered again (a retry after a timeout), and its two halves (bisected): nothing changes.
    h.handle(ev.clone()).await.unwrap();
    let mut first = ev.clone();
    first.records.truncate(1);
    let mut rest = ev.clone();
    rest.records.remove(0);
    h.handle(first).await.unwrap();
    h.handle(rest).await.unwrap();
    let again = group_view(table.as_ref(), g).await.unwrap().unwrap();
    assert_eq!((again.times_seen, again.short_id), (1, Some(1)));
}

/// A record that is not an eventstream insert (bad input on the stream) is skipped, logged, and does
/// not block the shard: the batch succeeds and the rest is counted.
#[tokio::test]
async fn a_record_that_is_not_an_insert_is_skipped() {
    let table = Arc::new(MemoryTable::default());
    let h = AggregateEvents::build(table.clone(), Arc::new(ManualClock::at_secs(NOW)));
    let mut ev = sample();
    let (g, _) = group_of(&ev, 0);
    let mut row = shared::storage::item::item(&keys::group(g));
    row.insert("project_id".into(), shared::storage::item::Val::N(42));
    table.transact(vec![shared::storage::table::WriteOp::Put { item: row, cond: None }]).await.unwrap();
    let mut junk = ev.records[0].clone();
    junk.kinesis.data.0 = b"[2,\"delete\",{}]not even json".to_vec();
    junk.kinesis.sequence_number = "49656958104526591470311917445327371898813537036112003100".into();
    ev.records.insert(0, junk);
    let out = h.handle(ev).await.unwrap();
    assert_eq!(out["batchItemFailures"], serde_json::json!([]));
    assert_eq!(group_view(table.as_ref(), g).await.unwrap().unwrap().times_seen, 1);
}

/// A table that fails: the handler answers an error (the mapping delivers the batch again).
#[tokio::test]
async fn a_failing_table_is_a_function_error() {
    struct Down;
    #[async_trait::async_trait]
    impl Table for Down {
        async fn get_many(
            &self,
            _: &[shared::storage::item::Key],
        ) -> Result<Vec<Option<shared::storage::item::Item>>, shared::error::StoreError> {
            Err(shared::error::StoreError::Throttled { service: "dynamodb" })
        }
        async fn query(
            &self,
            _: &str,
            _: Option<&str>,
        ) -> Result<Vec<shared::storage::item::Item>, shared::error::StoreError> {
            Err(shared::error::StoreError::Throttled { service: "dynamodb" })
        }
        async fn transact(
            &self,
            _: Vec<shared::storage::table::WriteOp>,
        ) -> Result<shared::storage::table::TxOutcome, shared::error::StoreError> {
            Err(shared::error::StoreError::Throttled { service: "dynamodb" })
        }
        async fn update_returning(
            &self,
            _: shared::storage::item::Key,
            _: shared::storage::table::Update,
            _: Option<shared::storage::table::Cond>,
        ) -> Result<Option<shared::storage::item::Item>, shared::error::StoreError> {
            Err(shared::error::StoreError::Throttled { service: "dynamodb" })
        }
    }
    let h = AggregateEvents::build(Arc::new(Down), Arc::new(ManualClock::at_secs(NOW)));
    assert!(h.handle(sample()).await.is_err());
}
