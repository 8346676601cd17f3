//! The event-stream publishing algorithm, written once over a [`RecordSink`] (one `PutRecords`-shaped
//! call). Kinesis and the in-memory stream are sinks; [`Publisher`] adds:
//!
//! 1. validation of every record before anything is sent (1 MiB incl. partition key, key 1..=256 chars);
//! 2. batching into calls of ≤ 500 records and ≤ 5 MiB, in order;
//! 3. for each call, retrying **only the entries that failed** (in their original order) with
//!    exponential backoff and jitter, at most `max_attempts` times, and never past an optional deadline
//!    (the Lambda's remaining time).

use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::error::StoreError;
use crate::ports::{EventStream, StreamRecord, batches, validate_record};

/// Per-entry result of one batch call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryResult {
    Ok,
    /// Failed entry with the service's error code (`ProvisionedThroughputExceededException`, `InternalFailure`).
    Failed(String),
}

/// One `PutRecords`-shaped call.
#[async_trait]
pub trait RecordSink: Send + Sync {
    /// Writes `records` (≤ 500, ≤ 5 MiB, already validated); returns one result per record, in order.
    async fn put_batch(&self, records: &[StreamRecord]) -> Result<Vec<EntryResult>, StoreError>;
}

/// Retrying publisher over a sink.
pub struct Publisher<S> {
    sink: S,
    max_attempts: u32,
    base_delay: Duration,
    deadline: Option<Instant>,
}

impl<S: RecordSink> Publisher<S> {
    pub fn new(sink: S, max_attempts: u32) -> Self {
        Self {
            sink,
            max_attempts: max_attempts.max(1),
            base_delay: Duration::from_millis(25),
            deadline: None,
        }
    }

    pub fn with_base_delay(mut self, d: Duration) -> Self {
        self.base_delay = d;
        self
    }

    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// A publisher that stops retrying at `deadline` (e.g. the Lambda deadline minus a margin).
    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.base_delay.saturating_mul(1u32 << attempt.min(6));
        let mut jitter = [0u8; 1];
        crate::ports::Random::fill(&crate::ports::OsRandom, &mut jitter);
        // Full jitter in [exp/2, exp].
        exp / 2 + exp / 2 * u32::from(jitter[0]) / 255
    }

    async fn publish_batch(
        &self,
        records: &[StreamRecord],
        deadline: Option<Instant>,
    ) -> Result<(), StoreError> {
        let mut pending: Vec<StreamRecord> = records.to_vec();
        for attempt in 0..self.max_attempts {
            let results = self.sink.put_batch(&pending).await?;
            if results.len() != pending.len() {
                return Err(StoreError::Other {
                    service: "kinesis",
                    message: format!(
                        "PutRecords answered {} results for {} records",
                        results.len(),
                        pending.len()
                    ),
                });
            }
            let mut last_code = String::new();
            let failed: Vec<StreamRecord> = pending
                .into_iter()
                .zip(results)
                .filter_map(|(r, res)| match res {
                    EntryResult::Ok => None,
                    EntryResult::Failed(code) => {
                        last_code = code;
                        Some(r)
                    }
                })
                .collect();
            if failed.is_empty() {
                return Ok(());
            }
            tracing::warn!(failed = failed.len(), attempt = attempt + 1, code = %last_code, "PutRecords partial failure");
            pending = failed;
            if attempt + 1 == self.max_attempts {
                break;
            }
            let delay = self.backoff(attempt);
            if deadline.is_some_and(|d| Instant::now() + delay >= d) {
                break;
            }
            tokio::time::sleep(delay).await;
        }
        Err(StoreError::Throttled { service: "kinesis" })
    }
}

#[async_trait]
impl<S: RecordSink> EventStream for Publisher<S> {
    async fn publish(&self, records: Vec<StreamRecord>) -> Result<(), StoreError> {
        self.publish_until(records, None).await
    }

    async fn publish_until(
        &self,
        records: Vec<StreamRecord>,
        deadline: Option<Instant>,
    ) -> Result<(), StoreError> {
        for r in &records {
            validate_record(r)?;
        }
        let deadline = match (self.deadline, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        for range in batches(&records) {
            self.publish_batch(&records[range], deadline).await?;
        }
        Ok(())
    }
}
