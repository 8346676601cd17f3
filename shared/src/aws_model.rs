//! A model of the AWS limits that DynamoDB Local and ministack do not enforce (DESIGN.md, "Scale rules";
//! issue 15, item 5). Two wrappers, each over any adapter of its port:
//!
//! - [`ModelTable`] over any [`Table`]: per-partition write and read units per second, with DynamoDB's
//!   1 KB / 4 KB rounding and transactional doubling, answering [`StoreError::Throttled`] past the
//!   per-partition limits; and transaction conflicts: a `TransactWriteItems` touching an item that
//!   another transaction holds is cancelled (`TransactionConflict`).
//! - [`ModelSink`] over any [`RecordSink`]: records mapped to shards by the MD5 of their partition key
//!   over equal hash-key ranges, each shard limited to 1,000 records/s and 1 MiB/s, with the partial
//!   failures of `PutRecords`.
//!
//! Time is an injected [`Clock`] (usually a [`crate::ports::ManualClock`] a bench advances), and
//! "second" means the window `floor(now_millis / 1000)` of that clock. Both wrappers keep statistics
//! ([`ModelStats`], [`SinkStats`]) that can be read at any time.
//!
//! What the model does *not* do: adaptive capacity and burst credits (AWS may absorb short bursts above
//! the partition limits, and may split a hot partition after a while; the model is the steady state),
//! retries (an adapter retries a conflict 6 times; in simulated time that changes nothing, so the model
//! answers at once with what the adapter ends with), and charging cancelled transactions (a conflict
//! consumes nothing in the model).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use md5::{Digest, Md5};

use crate::adapters::publisher::{EntryResult, RecordSink};
use crate::error::StoreError;
use crate::ports::{Clock, StreamRecord};
use crate::storage::item::{Item, Key, Val};
use crate::storage::table::{Cond, Table, TxOutcome, Update, WriteOp};

fn poisoned() -> StoreError {
    StoreError::Other { service: "aws-model", message: "lock poisoned".into() }
}

// ---------------------------------------------------------------------------------------------------
// Item sizes and capacity units
// ---------------------------------------------------------------------------------------------------

/// The size of a value by DynamoDB's rules ("Item sizes and formats" in the DynamoDB developer guide):
/// strings are their UTF-8 bytes; numbers `ceil(significant digits / 2) + 1` bytes (leading and
/// trailing zeros are not significant); booleans 1 byte; lists and maps 3 bytes plus their elements
/// plus 1 byte per element (a map element also counts its name).
pub fn value_size(v: &Val) -> usize {
    match v {
        Val::S(s) => s.len(),
        Val::N(n) => {
            let digits = n.unsigned_abs().to_string();
            let significant = digits.trim_end_matches('0').len().max(1);
            significant.div_ceil(2) + 1
        }
        Val::Bool(_) => 1,
        Val::L(l) => 3 + l.iter().map(|e| value_size(e) + 1).sum::<usize>(),
        Val::M(m) => 3 + m.iter().map(|(k, e)| k.len() + value_size(e) + 1).sum::<usize>(),
    }
}

/// The size of an item: the sum over attributes of the UTF-8 length of the name plus the value size.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

/// Write units of one write of an item of `size` bytes: one per started KB (1,024 bytes), at least one.
pub fn write_units(size: usize) -> u64 {
    (size.div_ceil(1024)).max(1) as u64
}

/// Read units of one strongly consistent read of `size` bytes: one per started 4 KB, at least one.
pub fn read_units(size: usize) -> u64 {
    (size.div_ceil(4096)).max(1) as u64
}

// ---------------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------------

/// The limits the table model enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableLimits {
    /// Write units per second on one partition. AWS: "a single partition can support a maximum of
    /// 3,000 read capacity units (RCUs) or 1,000 write capacity units (WCUs)" (DynamoDB developer
    /// guide, "Partitions and data distribution" / "Burst and adaptive capacity").
    pub partition_wcu_per_sec: u64,
    /// Read units per second on one partition (AWS: 3,000 RCU, same source).
    pub partition_rcu_per_sec: u64,
    /// How long a `TransactWriteItems` holds its items, in model milliseconds from its start (on top of
    /// the real time its inner call takes). Default 15 ms: the typical duration of a
    /// `TransactWriteItems` of a few items in one region.
    pub tx_hold_ms: i64,
}

impl Default for TableLimits {
    fn default() -> Self {
        Self { partition_wcu_per_sec: 1_000, partition_rcu_per_sec: 3_000, tx_hold_ms: 15 }
    }
}

/// A snapshot of the table model's statistics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelStats {
    /// Per item: the number of committed writes in each model second (`second -> writes`).
    pub item_writes: HashMap<Key, BTreeMap<i64, u64>>,
    /// Per partition (`pk`): write units consumed in each model second.
    pub partition_wcu: HashMap<String, BTreeMap<i64, u64>>,
    /// Per partition (`pk`): read units consumed in each model second.
    pub partition_rcu: HashMap<String, BTreeMap<i64, u64>>,
    /// Requests answered `Throttled` (partition over its units in the current second).
    pub throttled: u64,
    /// Requests cancelled because an item was held by a transaction (transactions and plain writes).
    pub conflicts: u64,
    /// Transactions (≥ 2 ops) that touched an item held by another transaction (all were cancelled).
    pub tx_overlapped: u64,
    /// Transactions (≥ 2 ops) sent to the model, including cancelled and throttled ones.
    pub transactions: u64,
    /// Write units consumed in total (conditional writes whose condition failed included).
    pub total_wcu: u64,
    /// Read units consumed in total.
    pub total_rcu: u64,
}

impl ModelStats {
    /// Total committed writes of one item.
    pub fn item_total_writes(&self, key: &Key) -> u64 {
        self.item_writes.get(key).map(|m| m.values().sum()).unwrap_or(0)
    }

    /// The item with the most writes in one model second: `(item, second, writes)`.
    pub fn hottest_item_per_sec(&self) -> Option<(Key, i64, u64)> {
        self.item_writes
            .iter()
            .flat_map(|(k, m)| m.iter().map(move |(s, n)| (k, *s, *n)))
            .max_by(|a, b| a.2.cmp(&b.2).then_with(|| b.0.cmp(a.0)))
            .map(|(k, s, n)| (k.clone(), s, n))
    }

    /// The item with the most committed writes in total: `(item, writes)`.
    pub fn hottest_item_total(&self) -> Option<(Key, u64)> {
        self.item_writes
            .iter()
            .map(|(k, m)| (k, m.values().sum::<u64>()))
            .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(k, n)| (k.clone(), n))
    }

    /// The partition with the most write units in one second: `(pk, second, units)`.
    pub fn hottest_partition_wcu(&self) -> Option<(String, i64, u64)> {
        peak(&self.partition_wcu)
    }

    /// The partition with the most read units in one second: `(pk, second, units)`.
    pub fn hottest_partition_rcu(&self) -> Option<(String, i64, u64)> {
        peak(&self.partition_rcu)
    }
}

fn peak(m: &HashMap<String, BTreeMap<i64, u64>>) -> Option<(String, i64, u64)> {
    m.iter()
        .flat_map(|(p, secs)| secs.iter().map(move |(s, n)| (p, *s, *n)))
        .max_by(|a, b| a.2.cmp(&b.2).then_with(|| b.0.cmp(a.0)))
        .map(|(p, s, n)| (p.clone(), s, n))
}

/// A transaction's hold on its items.
#[derive(Debug)]
struct Hold {
    tx: u64,
    /// The tokio task that sent the transaction (one Lambda invocation), if known.
    owner: Option<tokio::task::Id>,
    until_ms: i64,
    in_flight: bool,
}

#[derive(Debug, Default)]
struct TableState {
    stats: ModelStats,
    holds: HashMap<Key, Vec<Hold>>,
    next_tx: u64,
}

impl TableState {
    fn used(map: &HashMap<String, BTreeMap<i64, u64>>, pk: &str, sec: i64) -> u64 {
        map.get(pk).and_then(|m| m.get(&sec)).copied().unwrap_or(0)
    }

    /// Whether a transaction of another caller holds `key` at `now`. A caller's own transaction does
    /// not block its later calls once it returned: in real time they come after it ended, even when
    /// the model clock has not moved in between.
    fn held_by_other(&mut self, key: &Key, now: i64, caller: Option<tokio::task::Id>) -> bool {
        let Some(hs) = self.holds.get_mut(key) else { return false };
        hs.retain(|h| h.in_flight || h.until_ms > now);
        if hs.is_empty() {
            self.holds.remove(key);
            return false;
        }
        hs.iter().any(|h| h.in_flight || caller.is_none() || h.owner != caller)
    }

    /// Checks the per-partition limit for `units` (per pk) and consumes them if all fit.
    fn consume(
        &mut self,
        units: &BTreeMap<String, u64>,
        sec: i64,
        limit: u64,
        write: bool,
    ) -> Result<(), StoreError> {
        let map = if write { &self.stats.partition_wcu } else { &self.stats.partition_rcu };
        if units.iter().any(|(pk, u)| Self::used(map, pk, sec) + u > limit) {
            self.stats.throttled += 1;
            return Err(StoreError::Throttled { service: "dynamodb" });
        }
        let map = if write { &mut self.stats.partition_wcu } else { &mut self.stats.partition_rcu };
        let mut total = 0;
        for (pk, u) in units {
            *map.entry(pk.clone()).or_default().entry(sec).or_default() += u;
            total += u;
        }
        if write {
            self.stats.total_wcu += total;
        } else {
            self.stats.total_rcu += total;
        }
        Ok(())
    }

    fn record_write(&mut self, key: &Key, sec: i64) {
        *self.stats.item_writes.entry(key.clone()).or_default().entry(sec).or_default() += 1;
    }
}

/// A [`Table`] that enforces DynamoDB's per-partition limits and transaction conflicts over any table.
///
/// A transaction (≥ 2 ops) holds its items from its start for [`TableLimits::tx_hold_ms`] of model
/// time and while its inner call runs; any other transaction or plain write on a held item is
/// cancelled. Callers are told apart by tokio task (run each simulated Lambda invocation in its own
/// task): a task's own later calls are not blocked by its own finished transaction. Outside a task
/// (e.g. a `#[tokio::test]` body) every hold blocks every call.
pub struct ModelTable {
    inner: Arc<dyn Table>,
    clock: Arc<dyn Clock>,
    limits: TableLimits,
    state: Mutex<TableState>,
}

fn conflict(key: &Key) -> StoreError {
    // What `DynamoTable::transact_many` answers once its 6 retries of a TransactionConflict are spent.
    StoreError::Unavailable {
        service: "dynamodb",
        message: format!(
            "TransactionConflict on {}/{}: transaction conflict persisted (aws-model)",
            key.pk, key.sk
        ),
    }
}

impl ModelTable {
    /// The model with AWS's limits ([`TableLimits::default`]).
    pub fn new(inner: Arc<dyn Table>, clock: Arc<dyn Clock>) -> Self {
        Self::with_limits(inner, clock, TableLimits::default())
    }

    pub fn with_limits(inner: Arc<dyn Table>, clock: Arc<dyn Clock>, limits: TableLimits) -> Self {
        Self { inner, clock, limits, state: Mutex::new(TableState::default()) }
    }

    /// The wrapped table (reads through it are not counted).
    pub fn inner(&self) -> &Arc<dyn Table> {
        &self.inner
    }

    pub fn limits(&self) -> TableLimits {
        self.limits
    }

    /// A snapshot of the statistics so far.
    pub fn stats(&self) -> ModelStats {
        self.state.lock().map(|s| s.stats.clone()).unwrap_or_default()
    }

    /// Forgets the statistics (not the holds).
    pub fn reset_stats(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.stats = ModelStats::default();
        }
    }

    fn release(&self, tx: u64, keys: &[Key]) {
        if let Ok(mut s) = self.state.lock() {
            for k in keys {
                if let Some(hs) = s.holds.get_mut(k) {
                    for h in hs.iter_mut().filter(|h| h.tx == tx) {
                        h.in_flight = false;
                    }
                }
            }
        }
    }

    /// Write units per partition of `ops`, from the items before and after each write.
    fn write_cost(ops: &[WriteOp], before: &[Option<Item>], factor: u64) -> BTreeMap<String, u64> {
        let mut units: BTreeMap<String, u64> = BTreeMap::new();
        for (op, prev) in ops.iter().zip(before) {
            let prev_size = prev.as_ref().map(item_size).unwrap_or(0);
            let (key, size) = match op {
                WriteOp::Put { item, .. } => (op.key(), item_size(item).max(prev_size)),
                WriteOp::Update { key, update, .. } => {
                    (Some(key.clone()), item_size(&update.apply(key, prev.clone())).max(prev_size))
                }
                WriteOp::Delete { key, .. } | WriteOp::Check { key, .. } => (Some(key.clone()), prev_size),
            };
            if let Some(k) = key {
                *units.entry(k.pk).or_default() += write_units(size) * factor;
            }
        }
        units
    }

    /// The checks and accounting before a write; returns the transaction id holding the items (if any).
    fn admit_write(&self, ops: &[WriteOp], before: &[Option<Item>]) -> Result<Option<u64>, StoreError> {
        let now = self.clock.now_millis();
        let sec = now.div_euclid(1000);
        let is_tx = ops.len() >= 2;
        let keys: Vec<Key> = ops.iter().filter_map(WriteOp::key).collect();
        let caller = tokio::task::try_id();
        let mut s = self.state.lock().map_err(|_| poisoned())?;
        if is_tx {
            s.stats.transactions += 1;
        }
        if let Some(k) = keys.iter().find(|k| s.held_by_other(k, now, caller)).cloned() {
            s.stats.conflicts += 1;
            if is_tx {
                s.stats.tx_overlapped += 1;
            }
            return Err(conflict(&k));
        }
        let units = Self::write_cost(ops, before, if is_tx { 2 } else { 1 });
        s.consume(&units, sec, self.limits.partition_wcu_per_sec, true)?;
        if !is_tx {
            return Ok(None);
        }
        s.next_tx += 1;
        let tx = s.next_tx;
        let until_ms = now + self.limits.tx_hold_ms;
        for k in keys {
            s.holds.entry(k).or_default().push(Hold { tx, owner: caller, until_ms, in_flight: true });
        }
        Ok(Some(tx))
    }

    fn record_writes(&self, keys: &[Key]) {
        let sec = self.clock.now_millis().div_euclid(1000);
        if let Ok(mut s) = self.state.lock() {
            for k in keys {
                s.record_write(k, sec);
            }
        }
    }
}

#[async_trait]
impl Table for ModelTable {
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        let items = self.inner.get_many(keys).await?;
        let mut units: BTreeMap<String, u64> = BTreeMap::new();
        for (k, it) in keys.iter().zip(&items) {
            *units.entry(k.pk.clone()).or_default() += read_units(it.as_ref().map(item_size).unwrap_or(0));
        }
        let sec = self.clock.now_secs();
        let mut s = self.state.lock().map_err(|_| poisoned())?;
        s.consume(&units, sec, self.limits.partition_rcu_per_sec, false)?;
        Ok(items)
    }

    async fn query(&self, pk: &str, sk_prefix: Option<&str>) -> Result<Vec<Item>, StoreError> {
        let items = self.inner.query(pk, sk_prefix).await?;
        let bytes: usize = items.iter().map(item_size).sum();
        let units = BTreeMap::from([(pk.to_owned(), read_units(bytes))]);
        let sec = self.clock.now_secs();
        let mut s = self.state.lock().map_err(|_| poisoned())?;
        s.consume(&units, sec, self.limits.partition_rcu_per_sec, false)?;
        Ok(items)
    }

    async fn transact(&self, ops: Vec<WriteOp>) -> Result<TxOutcome, StoreError> {
        let keys: Vec<Key> = ops.iter().filter_map(WriteOp::key).collect();
        let before = self.inner.get_many(&keys).await?;
        let tx = self.admit_write(&ops, &before)?;
        let written: Vec<Key> =
            ops.iter().filter(|op| !matches!(op, WriteOp::Check { .. })).filter_map(WriteOp::key).collect();
        let res = self.inner.transact(ops).await;
        if let Some(tx) = tx {
            self.release(tx, &keys);
        }
        if matches!(res, Ok(TxOutcome::Committed)) {
            self.record_writes(&written);
        }
        res
    }

    async fn update_returning(
        &self,
        key: Key,
        update: Update,
        cond: Option<Cond>,
    ) -> Result<Option<Item>, StoreError> {
        let before = self.inner.get_many(std::slice::from_ref(&key)).await?;
        let op = WriteOp::Update { key: key.clone(), update: update.clone(), cond: cond.clone() };
        self.admit_write(std::slice::from_ref(&op), &before)?;
        let res = self.inner.update_returning(key.clone(), update, cond).await;
        if matches!(res, Ok(Some(_))) {
            self.record_writes(std::slice::from_ref(&key));
        }
        res
    }
}

// ---------------------------------------------------------------------------------------------------
// The stream
// ---------------------------------------------------------------------------------------------------

/// The limits the stream model enforces per shard and second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamLimits {
    /// AWS: "Each shard can support writes up to 1,000 records per second" (Kinesis Data Streams
    /// quotas and limits).
    pub records_per_sec: u64,
    /// AWS: "up to a maximum total data write rate of 1 MiB per second" per shard, counting the data
    /// blob and the partition key.
    pub bytes_per_sec: u64,
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self { records_per_sec: 1_000, bytes_per_sec: 1024 * 1024 }
    }
}

/// A snapshot of the stream model's statistics (vectors are indexed by shard).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SinkStats {
    /// Records accepted per shard.
    pub shard_records: Vec<u64>,
    /// Bytes (data + partition key) accepted per shard.
    pub shard_bytes: Vec<u64>,
    /// The most records a shard accepted in one model second.
    pub peak_records_per_sec: Vec<u64>,
    /// The most bytes a shard accepted in one model second.
    pub peak_bytes_per_sec: Vec<u64>,
    /// Entries answered `ProvisionedThroughputExceededException`.
    pub throttled: u64,
}

impl SinkStats {
    pub fn total_records(&self) -> u64 {
        self.shard_records.iter().sum()
    }

    pub fn total_bytes(&self) -> u64 {
        self.shard_bytes.iter().sum()
    }

    /// The shard with the most records: `(shard, records)`.
    pub fn hottest_shard(&self) -> Option<(usize, u64)> {
        self.shard_records.iter().copied().enumerate().max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
    }

    /// The hottest shard's share of all accepted records (0 when there are none).
    pub fn hottest_share(&self) -> f64 {
        let total = self.total_records();
        match self.hottest_shard() {
            Some((_, n)) if total > 0 => n as f64 / total as f64,
            _ => 0.0,
        }
    }
}

#[derive(Debug, Default)]
struct SinkState {
    /// Per shard: (second, records, bytes) of the current second.
    current: Vec<(i64, u64, u64)>,
    stats: SinkStats,
}

/// A [`RecordSink`] that maps records to shards as Kinesis does and throttles each shard past its
/// per-second limits, over any sink.
pub struct ModelSink<S> {
    inner: S,
    clock: Arc<dyn Clock>,
    shard_count: usize,
    /// Size of every shard's hash-key range except possibly the last (which ends at 2^128 - 1).
    range: u128,
    limits: StreamLimits,
    state: Mutex<SinkState>,
}

/// `floor(2^128 / n)`: the range of each shard of a stream created with `n` shards (`CreateStream`
/// gives shard `i` the starting hash key `i * floor(2^128 / n)`; the last shard ends at 2^128 - 1).
fn shard_range(n: usize) -> u128 {
    let n = n.max(1) as u128;
    if n == 1 {
        return u128::MAX; // 2^128 does not fit; every key is below it anyway
    }
    u128::MAX / n + u128::from(u128::MAX % n + 1 == n)
}

/// The hash key of a partition key: its MD5 read as a big-endian 128-bit integer.
pub fn hash_key(partition_key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(partition_key.as_bytes()).into())
}

/// A shard id as Kinesis spells it (`shardId-000000000007`).
pub fn shard_id(shard: usize) -> String {
    format!("shardId-{shard:012}")
}

impl<S: RecordSink> ModelSink<S> {
    /// A stream of `shard_count` shards with AWS's per-shard limits.
    pub fn new(inner: S, clock: Arc<dyn Clock>, shard_count: usize) -> Self {
        Self::with_limits(inner, clock, shard_count, StreamLimits::default())
    }

    pub fn with_limits(inner: S, clock: Arc<dyn Clock>, shard_count: usize, limits: StreamLimits) -> Self {
        let n = shard_count.max(1);
        let state = SinkState {
            current: vec![(i64::MIN, 0, 0); n],
            stats: SinkStats {
                shard_records: vec![0; n],
                shard_bytes: vec![0; n],
                peak_records_per_sec: vec![0; n],
                peak_bytes_per_sec: vec![0; n],
                throttled: 0,
            },
        };
        Self { inner, clock, shard_count: n, range: shard_range(n), limits, state: Mutex::new(state) }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    pub fn shard_count(&self) -> usize {
        self.shard_count
    }

    /// The shard (index) whose hash-key range holds the MD5 of `partition_key`.
    pub fn shard_of(&self, partition_key: &str) -> usize {
        ((hash_key(partition_key) / self.range) as usize).min(self.shard_count - 1)
    }

    /// The Kinesis shard id of the shard holding `partition_key`.
    pub fn shard_id_of(&self, partition_key: &str) -> String {
        shard_id(self.shard_of(partition_key))
    }

    pub fn stats(&self) -> SinkStats {
        self.state.lock().map(|s| s.stats.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl<S: RecordSink> RecordSink for ModelSink<S> {
    async fn put_batch(&self, records: &[StreamRecord]) -> Result<Vec<EntryResult>, StoreError> {
        let sec = self.clock.now_secs();
        // Admit entries in order, per shard, under the shard's limits of the current second.
        let admitted: Vec<bool> = {
            let mut s = self.state.lock().map_err(|_| poisoned())?;
            let mut out = Vec::with_capacity(records.len());
            for r in records {
                let shard = self.shard_of(&r.partition_key);
                let bytes = (r.data.len() + r.partition_key.len()) as u64;
                let cur = &mut s.current[shard];
                if cur.0 != sec {
                    *cur = (sec, 0, 0);
                }
                if cur.1 + 1 > self.limits.records_per_sec || cur.2 + bytes > self.limits.bytes_per_sec {
                    s.stats.throttled += 1;
                    out.push(false);
                    continue;
                }
                cur.1 += 1;
                cur.2 += bytes;
                let (n, b) = (cur.1, cur.2);
                let st = &mut s.stats;
                st.shard_records[shard] += 1;
                st.shard_bytes[shard] += bytes;
                st.peak_records_per_sec[shard] = st.peak_records_per_sec[shard].max(n);
                st.peak_bytes_per_sec[shard] = st.peak_bytes_per_sec[shard].max(b);
                out.push(true);
            }
            out
        };
        let forward: Vec<StreamRecord> =
            records.iter().zip(&admitted).filter(|(_, a)| **a).map(|(r, _)| r.clone()).collect();
        let mut inner_results =
            if forward.is_empty() { Vec::new() } else { self.inner.put_batch(&forward).await? }.into_iter();
        Ok(admitted
            .iter()
            .map(|a| {
                if *a {
                    inner_results.next().unwrap_or_else(|| EntryResult::Failed("InternalFailure".into()))
                } else {
                    EntryResult::Failed("ProvisionedThroughputExceededException".into())
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::adapters::memory::{MemorySink, MemoryTable};
    use crate::ports::ManualClock;
    use crate::storage::item::item;

    fn setup() -> (Arc<ModelTable>, ManualClock) {
        let clock = ManualClock::at_secs(1_000);
        let t = ModelTable::new(Arc::new(MemoryTable::default()), Arc::new(clock.clone()));
        (Arc::new(t), clock)
    }

    /// An item of exactly `size` bytes: pk "P" (2 + 1), sk "S" (2 + 1), and a string attribute "d".
    fn sized(pk: &str, sk: &str, size: usize) -> Item {
        let mut it = item(&Key::new(pk, sk));
        let base = item_size(&it) + 1; // + the name "d"
        it.insert("d".into(), Val::S("x".repeat(size - base)));
        assert_eq!(item_size(&it), size);
        it
    }

    fn put(it: Item) -> WriteOp {
        WriteOp::Put { item: it, cond: None }
    }

    fn wcu(t: &ModelTable, pk: &str) -> u64 {
        t.stats().partition_wcu.get(pk).map(|m| m.values().sum()).unwrap_or(0)
    }

    #[test]
    fn sizes_follow_dynamodb_rules() {
        assert_eq!(value_size(&Val::S("héllo".into())), 6);
        assert_eq!(value_size(&Val::N(0)), 2);
        assert_eq!(value_size(&Val::N(12)), 2);
        assert_eq!(value_size(&Val::N(123)), 3);
        assert_eq!(value_size(&Val::N(-1_000_000)), 2);
        assert_eq!(value_size(&Val::N(1_795_677_180_123)), 8);
        assert_eq!(value_size(&Val::Bool(true)), 1);
        assert_eq!(value_size(&Val::L(vec![])), 3);
        assert_eq!(value_size(&Val::L(vec![Val::S("ab".into()), Val::Bool(false)])), 3 + 3 + 2);
        let m = BTreeMap::from([("k".to_owned(), Val::S("v".into()))]);
        assert_eq!(value_size(&Val::M(m)), 3 + 1 + 1 + 1);
        let it = item(&Key::new("P", "S"));
        assert_eq!(item_size(&it), 6);
    }

    #[test]
    fn unit_rounding_edges() {
        assert_eq!(write_units(0), 1);
        assert_eq!(write_units(1), 1);
        assert_eq!(write_units(1024), 1);
        assert_eq!(write_units(1025), 2);
        assert_eq!(write_units(2048), 2);
        assert_eq!(read_units(4096), 1);
        assert_eq!(read_units(4097), 2);
    }

    #[test]
    fn defaults_are_aws_published_limits() {
        let t = TableLimits::default();
        assert_eq!((t.partition_wcu_per_sec, t.partition_rcu_per_sec, t.tx_hold_ms), (1_000, 3_000, 15));
        let s = StreamLimits::default();
        assert_eq!((s.records_per_sec, s.bytes_per_sec), (1_000, 1_048_576));
    }

    #[tokio::test]
    async fn writes_cost_per_started_kb_and_transactions_double() {
        let (t, _c) = setup();
        t.transact(vec![put(sized("A", "1", 1024))]).await.unwrap();
        assert_eq!(wcu(&t, "A"), 1);
        t.transact(vec![put(sized("B", "1", 1025))]).await.unwrap();
        assert_eq!(wcu(&t, "B"), 2);
        // Two items of 1 KB and 1 KB + 1 in one transaction: (1 + 2) × 2.
        t.transact(vec![put(sized("C", "1", 1024)), put(sized("C", "2", 1025))]).await.unwrap();
        assert_eq!(wcu(&t, "C"), 6);
        // A condition check costs like a write; an update costs the larger of before and after.
        let check = WriteOp::Check { key: Key::new("A", "1"), cond: Cond::Exists };
        t.transact(vec![check, put(sized("D", "1", 10))]).await.unwrap();
        assert_eq!(wcu(&t, "A"), 1 + 2);
        assert_eq!(wcu(&t, "D"), 2);
        t.update_returning(Key::new("B", "1"), Update::default().remove("d"), None).await.unwrap();
        assert_eq!(wcu(&t, "B"), 2 + 2);
        assert_eq!(t.stats().total_wcu, 1 + 2 + 6 + 2 + 2 + 2);
    }

    #[tokio::test]
    async fn failed_conditions_still_consume() {
        let (t, _c) = setup();
        let op = || WriteOp::Put { item: sized("A", "1", 100), cond: Some(Cond::NotExists) };
        assert!(t.transact(vec![op()]).await.unwrap().committed());
        assert!(!t.transact(vec![op()]).await.unwrap().committed());
        assert_eq!(wcu(&t, "A"), 2);
        assert_eq!(t.stats().item_total_writes(&Key::new("A", "1")), 1);
    }

    #[tokio::test]
    async fn the_1001st_write_unit_in_a_second_throttles() {
        let (t, c) = setup();
        for i in 0..1000 {
            t.transact(vec![put(sized("P", &i.to_string(), 100))]).await.unwrap();
        }
        let err = t.transact(vec![put(sized("P", "x", 100))]).await.unwrap_err();
        assert!(matches!(err, StoreError::Throttled { service: "dynamodb" }));
        // Another partition is not affected; the throttled request consumed nothing.
        t.transact(vec![put(sized("Q", "x", 100))]).await.unwrap();
        let s = t.stats();
        assert_eq!((s.throttled, wcu(&t, "P")), (1, 1000));
        assert!(t.inner().get(&Key::new("P", "x")).await.unwrap().is_none());
        // The next second is fine.
        c.advance_millis(1000);
        t.transact(vec![put(sized("P", "x", 100))]).await.unwrap();
        assert_eq!(t.stats().hottest_partition_wcu().map(|p| (p.0, p.2)), Some(("P".to_owned(), 1000)));
    }

    #[tokio::test]
    async fn transactional_writes_reach_the_limit_at_half_the_items() {
        let (t, _c) = setup();
        for i in 0..500 {
            let ops = vec![put(sized("P", &format!("a{i}"), 10)), put(sized("Z", &format!("{i}"), 10))];
            t.transact(ops).await.unwrap();
        }
        // 500 transactions × 1 item × 2 units on P = 1,000: the next one throttles.
        let err = t.transact(vec![put(sized("P", "b", 10)), put(sized("Y", "b", 10))]).await.unwrap_err();
        assert!(matches!(err, StoreError::Throttled { .. }));
    }

    #[tokio::test]
    async fn three_thousand_read_units_per_partition() {
        let (t, c) = setup();
        t.inner().transact(vec![put(sized("R", "1", 4096))]).await.unwrap();
        t.inner().transact(vec![put(sized("R", "2", 4097))]).await.unwrap();
        let k1 = Key::new("R", "1");
        for _ in 0..3000 {
            t.get(&k1).await.unwrap();
        }
        assert!(matches!(t.get(&k1).await, Err(StoreError::Throttled { .. })));
        c.advance_millis(1000);
        // A query costs ceil(total / 4 KB): 8,193 + overhead bytes → 3 units.
        t.query("R", None).await.unwrap();
        let s = t.stats();
        assert_eq!(s.hottest_partition_rcu().map(|p| p.2), Some(3000));
        assert_eq!(s.total_rcu, 3000 + 3);
        // A missing item still costs one unit.
        t.get(&Key::new("R", "none")).await.unwrap();
        assert_eq!(t.stats().total_rcu, 3004);
    }

    fn tx(pk: &str, sk: &str) -> Vec<WriteOp> {
        vec![
            put(sized(pk, sk, 50)),
            put(sized(&format!("{pk}-other"), &format!("{sk}-{}", rand_suffix()), 50)),
        ]
    }

    fn rand_suffix() -> String {
        crate::ports::random_hex_id(&crate::ports::OsRandom)
    }

    #[tokio::test]
    async fn overlapping_transactions_on_one_item_conflict() {
        let (t, c) = setup();
        t.transact(tx("G", "1")).await.unwrap();
        // 10 ms later, still held (15 ms).
        c.advance_millis(10);
        let err = t.transact(tx("G", "1")).await.unwrap_err();
        match err {
            StoreError::Unavailable { service: "dynamodb", message } => {
                assert!(message.starts_with("TransactionConflict"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        // A different item is fine at the same time.
        t.transact(tx("G", "2")).await.unwrap();
        // Once the hold is over, the same item is fine again.
        c.advance_millis(6);
        t.transact(tx("G", "1")).await.unwrap();
        let s = t.stats();
        assert_eq!((s.conflicts, s.tx_overlapped, s.transactions), (1, 1, 4));
        assert_eq!(s.item_total_writes(&Key::new("G", "1")), 2);
    }

    #[tokio::test]
    async fn a_plain_write_on_a_held_item_conflicts_and_a_cancelled_transaction_writes_nothing() {
        let (t, c) = setup();
        t.transact(tx("G", "1")).await.unwrap();
        let err = t.update_returning(Key::new("G", "1"), Update::default().add("n", 1), None).await;
        assert!(matches!(err, Err(StoreError::Unavailable { .. })));
        let err = t.transact(vec![put(sized("G", "1", 60))]).await;
        assert!(matches!(err, Err(StoreError::Unavailable { .. })));
        // A transaction of a fresh item plus the held one writes neither.
        let res = t.transact(vec![put(sized("H", "1", 50)), put(sized("G", "1", 70))]).await;
        assert!(res.is_err());
        assert!(t.inner().get(&Key::new("H", "1")).await.unwrap().is_none());
        // Plain writes do not hold: two plain writes in the same millisecond are fine.
        c.advance_millis(20);
        t.update_returning(Key::new("G", "1"), Update::default().add("n", 1), None).await.unwrap();
        t.update_returning(Key::new("G", "1"), Update::default().add("n", 1), None).await.unwrap();
        let s = t.stats();
        assert_eq!((s.conflicts, s.tx_overlapped), (3, 1));
        assert_eq!(s.hottest_item_per_sec().map(|h| (h.0, h.2)), Some((Key::new("G", "1"), 3)));
    }

    #[tokio::test]
    async fn a_caller_is_not_blocked_by_its_own_finished_transaction() {
        let (t, _c) = setup();
        let t2 = t.clone();
        tokio::spawn(async move {
            t2.transact(tx("G", "1")).await.unwrap();
            // The same invocation's follow-up write at the same model instant: fine.
            t2.update_returning(Key::new("G", "1"), Update::default().add("n", 1), None).await.unwrap();
        })
        .await
        .unwrap();
        // Another invocation at the same instant: conflict.
        let t3 = t.clone();
        let other = tokio::spawn(async move { t3.transact(tx("G", "1")).await }).await.unwrap();
        assert!(matches!(other, Err(StoreError::Unavailable { .. })));
        assert_eq!(t.stats().conflicts, 1);
    }

    fn rec(pk: &str, len: usize) -> StreamRecord {
        StreamRecord { partition_key: pk.into(), data: vec![0; len] }
    }

    fn sink(shards: usize) -> (ModelSink<MemorySink>, ManualClock) {
        let clock = ManualClock::at_secs(1_000);
        (ModelSink::new(MemorySink::default(), Arc::new(clock.clone()), shards), clock)
    }

    #[tokio::test]
    async fn a_shard_takes_1000_records_per_second() {
        let (s, c) = sink(4);
        let batch: Vec<_> = (0..500).map(|_| rec("k", 10)).collect();
        for _ in 0..2 {
            assert!(s.put_batch(&batch).await.unwrap().iter().all(|r| *r == EntryResult::Ok));
        }
        // The 1,001st record of the second fails alone; a record for another shard passes.
        let other = (0..100).map(|i| i.to_string()).find(|k| s.shard_of(k) != s.shard_of("k")).unwrap();
        let res = s.put_batch(&[rec("k", 10), rec(&other, 10)]).await.unwrap();
        assert_eq!(
            res,
            vec![EntryResult::Failed("ProvisionedThroughputExceededException".into()), EntryResult::Ok]
        );
        assert_eq!(s.inner().records().len(), 1001);
        c.advance_millis(1000);
        assert_eq!(s.put_batch(&[rec("k", 10)]).await.unwrap(), vec![EntryResult::Ok]);
        let st = s.stats();
        assert_eq!(st.throttled, 1);
        assert_eq!(st.peak_records_per_sec[s.shard_of("k")], 1000);
        assert_eq!(st.total_records(), 1002);
    }

    #[tokio::test]
    async fn a_shard_takes_1_mib_per_second_counting_the_partition_key() {
        let (s, c) = sink(1);
        // 4 records of 256 KiB in total (data + 1-byte key): exactly 1 MiB.
        let r = rec("k", 256 * 1024 - 1);
        let res = s.put_batch(&[r.clone(), r.clone(), r.clone(), r.clone(), rec("k", 0)]).await.unwrap();
        assert_eq!(&res[..4], &[EntryResult::Ok, EntryResult::Ok, EntryResult::Ok, EntryResult::Ok]);
        assert_eq!(res[4], EntryResult::Failed("ProvisionedThroughputExceededException".into()));
        c.advance_millis(1000);
        assert_eq!(s.put_batch(&[rec("k", 0)]).await.unwrap(), vec![EntryResult::Ok]);
        assert_eq!(s.stats().peak_bytes_per_sec[0], 1024 * 1024);
    }

    #[test]
    fn partition_keys_map_to_shards_by_md5_ranges() {
        let (s, _) = sink(64);
        // By hand: with 64 shards each range is 2^122 wide, so the shard is the top 6 bits of the MD5.
        // md5("42") = a1d0c6e83f027327d8461063f4ac58a6: 0xa1 >> 2 = 40.
        assert_eq!(hex::encode(Md5::digest(b"42")), "a1d0c6e83f027327d8461063f4ac58a6");
        assert_eq!(s.shard_of("42"), 40);
        assert_eq!(s.shard_id_of("42"), "shardId-000000000040");
        // md5("a") = 0cc175b9c0f1b6a831c399e269772661: 0x0c >> 2 = 3.
        assert_eq!(s.shard_of("a"), 3);
        // md5("b") = 92eb5ffee6ae2fec3ad71c777531578f: 0x92 >> 2 = 36.
        assert_eq!(s.shard_of("b"), 36);
        assert_eq!(shard_id(7), "shardId-000000000007");
        // Three shards: CreateStream's starting hash keys are i × floor(2^128 / 3).
        let (s3, _) = sink(3);
        assert_eq!(shard_range(3), 113_427_455_640_312_821_154_458_202_477_256_070_485);
        // 1/3 of the space is 0x5555…, 2/3 is 0xaaaa….
        assert_eq!(s3.shard_of("a"), 0); // 0x0cc1…
        assert_eq!(s3.shard_of("42"), 1); // 0xa1d0…
        assert_eq!(s3.shard_of("b"), 1); // 0x92eb…
        // md5("e") = e1671797c52e15f763380b45e841ec32.
        assert_eq!(s3.shard_of("e"), 2);
        assert_eq!(s.shard_of("e"), 0xe1 >> 2);
        assert_eq!(shard_range(64), 1u128 << 122);
        assert_eq!(shard_range(1), u128::MAX);
    }

    #[tokio::test]
    async fn random_event_ids_spread_and_one_key_does_not() {
        let (s, _c) = sink(64);
        // 10,000 records in one model second: ~156 per shard, under the 1,000 records/s of a shard.
        let ids: Vec<String> = (0..10_000).map(|_| rand_suffix()).collect();
        for chunk in ids.chunks(500) {
            let batch: Vec<_> = chunk.iter().map(|k| rec(k, 10)).collect();
            s.put_batch(&batch).await.unwrap();
        }
        let st = s.stats();
        assert_eq!(st.total_records(), 10_000);
        assert!(st.hottest_share() <= 1.0 / 32.0, "{}", st.hottest_share());
        let (one, c) = sink(64);
        for _ in 0..10 {
            let batch: Vec<_> = (0..500).map(|_| rec("42", 10)).collect();
            one.put_batch(&batch).await.unwrap();
            c.advance_millis(1000);
        }
        let st = one.stats();
        assert_eq!(st.hottest_share(), 1.0);
        assert_eq!(st.hottest_shard(), Some((40, 5000)));
    }
}
