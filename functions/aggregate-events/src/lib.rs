//! # aggregate-events
//!
//! The event stream's consumer that keeps counters exact without a hot row: a Kinesis event-source
//! mapping delivers one batch per shard at a time, in order (`ParallelizationFactor: 1`), retried until
//! it succeeds (`MaximumRetryAttempts: -1`, bisected on error); [`shared::save::aggregate`] counts it
//! with one write per touched row and batch, idempotently (claims on the event markers, a sequence
//! watermark per aggregate item).
//!
//! A failed batch is a function error: the mapping delivers the batch again (bisected on AWS), and
//! what was already counted is not counted again. (Reporting `batchItemFailures` would do on AWS,
//! but ministack ignores them and moves on, which would lose counts there.)

use std::sync::Arc;

use aws_lambda_events::event::kinesis::KinesisEvent;
use serde_json::{Value, json};
use shared::ports::{Clock, StoredRecord};
use shared::save::aggregate::{AggReport, Aggregator};
use shared::storage::table::Table;

pub struct AggregateEvents {
    pub aggregator: Aggregator,
    pub clock: Arc<dyn Clock>,
}

impl AggregateEvents {
    /// The composition root: the aggregation over the table.
    pub fn build(table: Arc<dyn Table>, clock: Arc<dyn Clock>) -> Self {
        Self { aggregator: Aggregator::new(table), clock }
    }

    /// Counts one delivery. Records of one invocation come from one shard (its id is the prefix of
    /// each record's `eventID`); they are grouped by shard anyway, in order.
    pub async fn handle(&self, event: KinesisEvent) -> Result<Value, shared::error::StoreError> {
        let mut shards: Vec<(String, Vec<StoredRecord>)> = Vec::new();
        for r in event.records {
            let shard = r
                .event_id
                .as_deref()
                .and_then(|id| id.split(':').next())
                .unwrap_or("shardId-000000000000")
                .to_owned();
            let rec = StoredRecord {
                sequence_number: r.kinesis.sequence_number,
                partition_key: r.kinesis.partition_key,
                data: r.kinesis.data.0,
            };
            match shards.iter_mut().find(|(s, _)| *s == shard) {
                Some((_, v)) => v.push(rec),
                None => shards.push((shard, vec![rec])),
            }
        }
        let now = self.clock.now_secs();
        let mut failure = None;
        let mut total = AggReport::default();
        for (shard, records) in &shards {
            match self.aggregator.process(shard, records, now).await {
                Ok(r) => total.add(&r),
                Err(e) => {
                    tracing::warn!(shard = %shard, error = %e, "aggregation failed; the batch is delivered again");
                    failure = Some(e);
                }
            }
        }
        tracing::info!(
            records = total.records,
            claimed = total.claimed,
            not_claimed = total.not_claimed,
            rows_written = total.rows_written,
            short_ids = total.short_ids,
            failed = failure.is_some(),
            "aggregated"
        );
        match failure {
            Some(e) => Err(e),
            None => Ok(json!({ "batchItemFailures": [] })),
        }
    }
}
