//! In-memory adapters with the same semantics as the AWS ones: the embedded default of the local CLI and
//! the adapter every plain `cargo test` runs the contract suites against.
//!
//! Atomicity comes from one mutex per adapter; "TTL" items are treated as absent once expired, which is
//! what a reader of DynamoDB sees once TTL deletion has run.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;

use super::publisher::{EntryResult, Publisher, RecordSink};
use crate::error::StoreError;
use crate::ports::{RateDecision, RateLimiter, StoredRecord, StreamRecord, bucket};
#[cfg(feature = "enroll")]
use crate::ports::{SmsSender, TextMessage};
use crate::storage::rate_limit_key;

fn poisoned() -> StoreError {
    StoreError::Other { service: "memory", message: "lock poisoned".into() }
}

/// Fixed-window limiter over a map of counters with expiry.
#[derive(Debug, Default)]
pub struct MemoryRateLimiter {
    counters: Mutex<HashMap<(String, String), (u64, i64)>>,
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn hit_n(
        &self,
        key: &str,
        n: u64,
        limit: u64,
        window_secs: u64,
        now_secs: i64,
    ) -> Result<RateDecision, StoreError> {
        let (b, left) = bucket(now_secs, window_secs);
        let k = rate_limit_key(key, window_secs, b);
        let mut map = self.counters.lock().map_err(|_| poisoned())?;
        map.retain(|_, (_, expires)| *expires > now_secs);
        let entry = map.entry(k).or_insert((0, now_secs + left as i64 + 60));
        entry.0 += n;
        let count = entry.0;
        Ok(if count > limit {
            RateDecision::Limited { count, retry_after_secs: left }
        } else {
            RateDecision::Allowed { count }
        })
    }
}

/// A fault to inject into the next `put_batch` call of a [`MemorySink`].
#[derive(Debug)]
pub enum SinkFault {
    /// The whole call fails with this error.
    Call(StoreError),
    /// These entry indexes (within the call) fail with `ProvisionedThroughputExceededException`.
    Entries(Vec<usize>),
}

/// The in-memory stream: records with increasing sequence numbers, plus fault injection and a log of the
/// last batches it was called with (so tests can assert what was retried). Like a Kinesis stream it can
/// keep a bounded number of records ([`MemorySink::with_retention`]): the oldest go first, sequence
/// numbers and reader positions go on.
#[derive(Debug, Default)]
pub struct MemorySink {
    log: Mutex<Log>,
    faults: Mutex<VecDeque<SinkFault>>,
    calls: Mutex<VecDeque<Vec<StreamRecord>>>,
    retention: Option<usize>,
}

#[derive(Debug, Default)]
struct Log {
    /// Position (since the stream began) of `records[0]`.
    first: usize,
    records: VecDeque<StoredRecord>,
}

/// How many `put_batch` calls [`MemorySink::calls`] remembers.
pub const CALL_LOG: usize = 1000;

impl MemorySink {
    /// Keeps at most `records` records (the oldest are dropped, as Kinesis drops records past its
    /// retention period).
    pub fn with_retention(mut self, records: usize) -> Self {
        self.retention = Some(records.max(1));
        self
    }

    pub fn inject(&self, fault: SinkFault) {
        if let Ok(mut f) = self.faults.lock() {
            f.push_back(fault);
        }
    }

    /// The records still retained, oldest first.
    pub fn records(&self) -> Vec<StoredRecord> {
        self.log.lock().map(|l| l.records.iter().cloned().collect()).unwrap_or_default()
    }

    /// Records appended since the stream began (retention does not lower it).
    pub fn appended(&self) -> usize {
        self.log.lock().map(|l| l.first + l.records.len()).unwrap_or(0)
    }

    /// The records from position `from` on (positions count every record since the stream began; a
    /// reader that remembers how far it read copies only the new ones). Records past the retention are
    /// gone: a position before the oldest retained record starts there.
    pub fn records_since(&self, from: usize) -> Vec<StoredRecord> {
        self.log
            .lock()
            .map(|l| l.records.iter().skip(from.saturating_sub(l.first)).cloned().collect())
            .unwrap_or_default()
    }

    /// The last [`CALL_LOG`] batches passed to `put_batch`, in call order.
    pub fn calls(&self) -> Vec<Vec<StreamRecord>> {
        self.calls.lock().map(|c| c.iter().cloned().collect()).unwrap_or_default()
    }

    /// Replaces the content (the CLI loads saved state with this).
    pub fn restore(&self, records: Vec<StoredRecord>) {
        if let Ok(mut l) = self.log.lock() {
            *l = Log { first: 0, records: records.into() };
        }
    }
}

#[async_trait]
impl RecordSink for MemorySink {
    async fn put_batch(&self, records: &[StreamRecord]) -> Result<Vec<EntryResult>, StoreError> {
        {
            let mut calls = self.calls.lock().map_err(|_| poisoned())?;
            if calls.len() == CALL_LOG {
                calls.pop_front();
            }
            calls.push_back(records.to_vec());
        }
        let fault = self.faults.lock().map_err(|_| poisoned())?.pop_front();
        let failing: Vec<usize> = match fault {
            Some(SinkFault::Call(e)) => return Err(e),
            Some(SinkFault::Entries(idx)) => idx,
            None => Vec::new(),
        };
        let mut log = self.log.lock().map_err(|_| poisoned())?;
        let results = records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                if failing.contains(&i) {
                    return EntryResult::Failed("ProvisionedThroughputExceededException".into());
                }
                let seq = format!("{:030}", log.first + log.records.len() + 1);
                log.records.push_back(StoredRecord {
                    sequence_number: seq,
                    partition_key: r.partition_key.clone(),
                    data: r.data.clone(),
                });
                EntryResult::Ok
            })
            .collect();
        if let Some(keep) = self.retention {
            while log.records.len() > keep {
                log.records.pop_front();
                log.first += 1;
            }
        }
        Ok(results)
    }
}

/// The in-memory event stream: the shared publisher over [`MemorySink`].
pub type MemoryStream = Publisher<MemorySink>;

pub fn memory_stream(max_attempts: u32) -> MemoryStream {
    Publisher::new(MemorySink::default(), max_attempts).with_base_delay(std::time::Duration::from_millis(1))
}

/// [`memory_stream`] keeping at most `retention` records (the local CLI's embedded stream).
pub fn memory_stream_with_retention(max_attempts: u32, retention: usize) -> MemoryStream {
    Publisher::new(MemorySink::default().with_retention(retention), max_attempts)
        .with_base_delay(std::time::Duration::from_millis(1))
}

/// The table in memory: one ordered map under one mutex, so every transaction is atomic. Expired TTL
/// items stay visible, exactly as on DynamoDB before its TTL sweeper runs; readers check `expires_at`.
///
/// Items are kept packed ([`Packed`]): `postflow serve` holds one de-duplication marker per event for
/// an hour, hundreds of thousands of them at full speed, and an item as a map of strings costs about
/// 2 KiB with the allocator's share against ~0.3 KiB packed (BENCHMARKS §9). A read unpacks (as many
/// allocations as the clone it replaces); a write packs.
#[derive(Debug, Default)]
pub struct MemoryTable {
    items: Mutex<std::collections::BTreeMap<Key, Packed>>,
}

use crate::storage::item::{Item, ItemExt, Key};
use crate::storage::table::{Cond, Table, TxOutcome, Update, WriteOp};

/// An item without its key attributes (the map's key holds them), in postcard's compact encoding,
/// with its TTL beside it for the sweep.
#[derive(Debug)]
struct Packed {
    ttl: Option<i64>,
    bytes: Box<[u8]>,
}

/// The attributes of an item other than its key, serialized as a map.
struct Attributes<'a>(&'a Item);

impl serde::Serialize for Attributes<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let is_key = |a: &str| a == crate::storage::attr::PK || a == crate::storage::attr::SK;
        let n = self.0.keys().filter(|a| !is_key(a)).count();
        let mut m = s.serialize_map(Some(n))?;
        for (a, v) in self.0.iter().filter(|(a, _)| !is_key(a)) {
            m.serialize_entry(a, v)?;
        }
        m.end()
    }
}

impl Packed {
    fn pack(item: &Item) -> Result<Self, StoreError> {
        let bytes = postcard::to_allocvec(&Attributes(item))
            .map_err(|e| StoreError::Other { service: "memory", message: format!("packing an item: {e}") })?;
        Ok(Self { ttl: item.opt_n(crate::storage::attr::TTL), bytes: bytes.into_boxed_slice() })
    }

    fn unpack(&self, key: &Key) -> Result<Item, StoreError> {
        let mut attributes: Item = postcard::from_bytes(&self.bytes).map_err(|e| StoreError::Other {
            service: "memory",
            message: format!("unpacking an item: {e}"),
        })?;
        let mut it = crate::storage::item::item(key);
        it.append(&mut attributes);
        Ok(it)
    }
}

/// The current item under `key`, unpacked.
fn current(m: &std::collections::BTreeMap<Key, Packed>, key: &Key) -> Result<Option<Item>, StoreError> {
    m.get(key).map(|p| p.unpack(key)).transpose()
}

impl MemoryTable {
    /// Every item, in key order (the CLI saves state with this). An item that does not unpack is an
    /// error, never left out of what is saved.
    pub fn dump(&self) -> Result<Vec<Item>, StoreError> {
        let m = self.items.lock().map_err(|_| poisoned())?;
        m.iter().map(|(k, p)| p.unpack(k)).collect()
    }

    /// Removes the items whose TTL (`expires_at`) has passed, as DynamoDB's TTL sweeper does (the local
    /// CLI runs it while serving, so de-duplication markers and counters do not pile up). Returns how
    /// many were removed.
    pub fn sweep_expired(&self, now_secs: i64) -> usize {
        self.sweep_expired_step(now_secs, None, usize::MAX).0
    }

    /// [`MemoryTable::sweep_expired`] a slice at a time: looks at most `max` items in key order from
    /// `from` (the start when `None`) and removes the expired ones. Returns how many were removed and
    /// the key to go on from (`None` once the end was reached). The table's lock is held for those
    /// `max` items only, so a table of millions of items is swept without stopping its writers.
    pub fn sweep_expired_step(&self, now_secs: i64, from: Option<&Key>, max: usize) -> (usize, Option<Key>) {
        use std::ops::Bound;
        let Ok(mut m) = self.items.lock() else { return (0, None) };
        let start = from.map_or(Bound::Unbounded, Bound::Included);
        let mut expired = Vec::new();
        let mut next = None;
        for (seen, (key, item)) in m.range((start, Bound::Unbounded)).enumerate() {
            if seen == max {
                next = Some(key.clone());
                break;
            }
            if item.ttl.is_some_and(|t| t <= now_secs) {
                expired.push(key.clone());
            }
        }
        for key in &expired {
            m.remove(key);
        }
        (expired.len(), next)
    }

    /// The number of items per partition-key prefix (the part before the first `#`), without copying
    /// them (`postflow serve`'s stats).
    pub fn count_by_pk_prefix(&self) -> std::collections::BTreeMap<String, usize> {
        let mut out = std::collections::BTreeMap::new();
        if let Ok(m) = self.items.lock() {
            for key in m.keys() {
                let prefix = key.pk.split('#').next().unwrap_or_default();
                match out.get_mut(prefix) {
                    Some(n) => *n += 1,
                    None => {
                        out.insert(prefix.to_owned(), 1);
                    }
                }
            }
        }
        out
    }

    /// Replaces every item with `items` (what [`MemoryTable::dump`] gave, e.g. read back from a state
    /// file). An item without its key attributes, one that does not pack, or one with the key of an
    /// earlier item (a table holds one item per key, so one of them would be lost) is an error naming
    /// its position, and the table is left as it was.
    pub fn restore(&self, items: Vec<Item>) -> Result<(), StoreError> {
        let invalid = |i: usize, why: &str| StoreError::Other {
            service: "memory",
            message: format!("item {i} of the saved state {why}"),
        };
        let mut packed = std::collections::BTreeMap::new();
        for (i, it) in items.iter().enumerate() {
            let key = it.key().ok_or_else(|| invalid(i, "has no pk/sk"))?;
            let item = Packed::pack(it).map_err(|e| invalid(i, &format!("cannot be stored: {e}")))?;
            if packed.insert(key, item).is_some() {
                return Err(invalid(i, "has the pk/sk of an earlier item"));
            }
        }
        *self.items.lock().map_err(|_| poisoned())? = packed;
        Ok(())
    }
}

#[async_trait]
impl Table for MemoryTable {
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        let m = self.items.lock().map_err(|_| poisoned())?;
        keys.iter().map(|k| current(&m, k)).collect()
    }

    async fn query(&self, pk: &str, sk_prefix: Option<&str>) -> Result<Vec<Item>, StoreError> {
        let m = self.items.lock().map_err(|_| poisoned())?;
        let from = Key::new(pk, "");
        m.range(from..)
            .take_while(|(k, _)| k.pk == pk)
            .filter(|(k, _)| sk_prefix.is_none_or(|p| k.sk.starts_with(p)))
            .map(|(k, v)| v.unpack(k))
            .collect()
    }

    async fn transact(&self, ops: Vec<WriteOp>) -> Result<TxOutcome, StoreError> {
        if ops.len() > 100 {
            return Err(StoreError::Rejected(format!("transaction of {} operations exceeds 100", ops.len())));
        }
        let keys: Vec<Key> = ops.iter().filter_map(WriteOp::key).collect();
        let mut distinct = keys.clone();
        distinct.sort();
        distinct.dedup();
        if distinct.len() != keys.len() || keys.len() != ops.len() {
            // DynamoDB rejects two operations on one item in a transaction; so do we.
            return Err(StoreError::Rejected("transaction touches one item twice".into()));
        }
        let mut m = self.items.lock().map_err(|_| poisoned())?;
        // Each item the transaction writes, as it will be (`None`: deleted), worked out before any is
        // stored: a packing failure leaves the table as it was.
        // (Every operation has its key: `keys` is one per operation, checked above.)
        let mut failed = Vec::with_capacity(ops.len());
        let mut writes: Vec<(Key, Option<Packed>)> = Vec::with_capacity(ops.len());
        for (op, key) in ops.iter().zip(keys) {
            let cond = match op {
                WriteOp::Put { cond, .. } | WriteOp::Update { cond, .. } | WriteOp::Delete { cond, .. } => {
                    cond.as_ref()
                }
                WriteOp::Check { cond, .. } => Some(cond),
            };
            // Only an unconditional put or delete does without the current item.
            let now = match op {
                WriteOp::Put { cond: None, .. } | WriteOp::Delete { cond: None, .. } => None,
                _ => current(&m, &key)?,
            };
            failed.push(cond.is_some_and(|c| !c.eval(now.as_ref())));
            match op {
                WriteOp::Put { item, .. } => writes.push((key, Some(Packed::pack(item)?))),
                WriteOp::Update { update, .. } => {
                    let next = update.apply(&key, now);
                    writes.push((key, Some(Packed::pack(&next)?)));
                }
                WriteOp::Delete { .. } => writes.push((key, None)),
                WriteOp::Check { .. } => {}
            }
        }
        if failed.iter().any(|f| *f) {
            return Ok(TxOutcome::ConditionFailed { failed });
        }
        for (key, packed) in writes {
            match packed {
                Some(p) => {
                    m.insert(key, p);
                }
                None => {
                    m.remove(&key);
                }
            }
        }
        Ok(TxOutcome::Committed)
    }

    async fn update_returning(
        &self,
        key: Key,
        update: Update,
        cond: Option<Cond>,
    ) -> Result<Option<Item>, StoreError> {
        let mut m = self.items.lock().map_err(|_| poisoned())?;
        let now = current(&m, &key)?;
        if cond.is_some_and(|c| !c.eval(now.as_ref())) {
            return Ok(None);
        }
        let next = update.apply(&key, now);
        m.insert(key, Packed::pack(&next)?);
        Ok(Some(next))
    }
}

/// The in-memory [`SmsSender`]: an outbox that tests read and the local CLI prints. `fail_next`
/// makes the next sends fail (Sentry answers 500 `Error sending SMS` then).
#[cfg(feature = "enroll")]
#[derive(Debug, Default)]
pub struct MemorySmsOutbox {
    sent: Mutex<Vec<TextMessage>>,
    failures: std::sync::atomic::AtomicUsize,
}

#[cfg(feature = "enroll")]
impl MemorySmsOutbox {
    /// Every message sent so far, oldest first.
    pub fn sent(&self) -> Vec<TextMessage> {
        self.sent.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// The messages sent to one number.
    pub fn sent_to(&self, to_e164: &str) -> Vec<TextMessage> {
        self.sent().into_iter().filter(|m| m.to_e164 == to_e164).collect()
    }

    /// Makes the next `n` sends fail.
    pub fn fail_next(&self, n: usize) {
        self.failures.store(n, std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(feature = "enroll")]
#[async_trait]
impl SmsSender for MemorySmsOutbox {
    async fn send(&self, message: &TextMessage) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        if self.failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            return Err(StoreError::Unavailable { service: "sms", message: "injected send failure".into() });
        }
        self.sent.lock().map_err(|_| poisoned())?.push(message.clone());
        Ok(())
    }
}

#[cfg(test)]
mod retention_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::storage::item::{Val, item};
    use crate::storage::table::Update;

    fn rec(n: usize) -> StreamRecord {
        StreamRecord { partition_key: format!("k{n}"), data: vec![n as u8] }
    }

    /// A bounded stream keeps the newest records; sequence numbers and reader positions go on.
    #[tokio::test]
    async fn retention_drops_the_oldest_and_positions_go_on() {
        let sink = MemorySink::default().with_retention(3);
        let batch: Vec<StreamRecord> = (0..5).map(rec).collect();
        sink.put_batch(&batch).await.unwrap();
        let kept: Vec<String> = sink.records().iter().map(|r| r.sequence_number.clone()).collect();
        assert_eq!(kept, [format!("{:030}", 3), format!("{:030}", 4), format!("{:030}", 5)]);
        assert_eq!(sink.records_since(4).len(), 1, "position 4 = the fifth record");
        assert_eq!(sink.records_since(0).len(), 3, "positions before the oldest start there");
        sink.put_batch(&[rec(6)]).await.unwrap();
        assert_eq!(sink.records_since(5)[0].sequence_number, format!("{:030}", 6));
        assert_eq!(sink.records().len(), 3);
    }

    #[tokio::test]
    async fn the_call_log_is_bounded() {
        let sink = MemorySink::default().with_retention(1);
        for n in 0..(CALL_LOG + 5) {
            sink.put_batch(&[rec(n)]).await.unwrap();
        }
        assert_eq!(sink.calls().len(), CALL_LOG);
        assert_eq!(sink.calls()[0][0].data, vec![5u8]);
    }

    /// Expired TTL items are removed by the sweep, others stay.
    #[tokio::test]
    async fn sweep_removes_only_expired_items() {
        let t = MemoryTable::default();
        let mut old = item(&Key::new("EVT#1#a", "MARK"));
        old.insert(crate::storage::attr::TTL.into(), Val::N(100));
        let mut live = item(&Key::new("EVT#1#b", "MARK"));
        live.insert(crate::storage::attr::TTL.into(), Val::N(300));
        let forever = item(&Key::new("GROUP#1", "GROUP"));
        for i in [old, live, forever] {
            t.transact(vec![WriteOp::Put { item: i, cond: None }]).await.unwrap();
        }
        assert_eq!(t.sweep_expired(200), 1);
        assert_eq!(t.dump().unwrap().len(), 2);
        assert!(t.get(&Key::new("EVT#1#a", "MARK")).await.unwrap().is_none());
    }

    /// The sweep a slice at a time removes what the whole sweep removes, going on from where each
    /// step stopped and ending at the end of the table.
    #[tokio::test]
    async fn the_sweep_goes_a_slice_at_a_time() {
        let t = MemoryTable::default();
        for i in 0..25 {
            let mut it = item(&Key::new(format!("EVT#1#{i:02}"), "MARK"));
            it.insert(crate::storage::attr::TTL.into(), Val::N(if i % 2 == 0 { 100 } else { 300 }));
            t.transact(vec![WriteOp::Put { item: it, cond: None }]).await.unwrap();
        }
        let (mut removed, mut steps, mut from) = (0, 0, None);
        loop {
            let (r, next) = t.sweep_expired_step(200, from.as_ref(), 10);
            removed += r;
            steps += 1;
            match next {
                Some(k) => from = Some(k),
                None => break,
            }
        }
        assert_eq!((removed, steps, t.dump().unwrap().len()), (13, 3, 12));
        assert_eq!(t.sweep_expired_step(200, None, 100), (0, None));
    }

    /// An item comes back as it was written, every kind of value, and its packed form is a fraction
    /// of the map it stands for.
    #[tokio::test]
    async fn a_packed_item_comes_back_as_it_was() {
        let t = MemoryTable::default();
        let key = Key::new("EVT#7#0123456789abcdef0123456789abcdef", "MARK");
        let mut it = item(&key);
        it.insert("s".into(), Val::S("é ☃ \u{0} text".into()));
        it.insert("n".into(), Val::N(-1_700_000_000_123));
        it.insert("b".into(), Val::Bool(true));
        it.insert("l".into(), Val::L(vec![Val::N(1), Val::S("x".into()), Val::L(vec![])]));
        let inner = [("k".to_owned(), Val::Bool(false))].into_iter().collect();
        it.insert("m".into(), Val::M(inner));
        it.insert(crate::storage::attr::TTL.into(), Val::N(1234));
        t.transact(vec![WriteOp::Put { item: it.clone(), cond: None }]).await.unwrap();
        assert_eq!(t.get(&key).await.unwrap(), Some(it.clone()));
        assert_eq!(t.query("EVT#7#0123456789abcdef0123456789abcdef", None).await.unwrap(), vec![it.clone()]);
        assert_eq!(t.dump().unwrap(), vec![it.clone()]);
        // What was dumped restores to the same table; a saved item without its sort key is refused
        // with its position, and the table keeps what it had.
        let other = MemoryTable::default();
        other.restore(t.dump().unwrap()).unwrap();
        assert_eq!(other.dump().unwrap(), vec![it.clone()]);
        let mut keyless = it.clone();
        keyless.remove(crate::storage::attr::SK);
        let fresh = item(&Key::new("EVT#7#fedcba9876543210fedcba9876543210", "MARK"));
        let err = other.restore(vec![fresh, keyless]).unwrap_err().to_string();
        assert!(err.contains("item 1 of the saved state has no pk/sk"), "{err}");
        assert_eq!(other.dump().unwrap(), vec![it.clone()], "not cleared, not half-restored");
        // Two items with one key: refused, not merged (the last one would have won).
        let fresh = item(&Key::new("EVT#7#fedcba9876543210fedcba9876543210", "MARK"));
        let mut twin = fresh.clone();
        twin.insert("s".into(), Val::S("other".into()));
        let err = other.restore(vec![fresh, it.clone(), twin]).unwrap_err().to_string();
        assert!(err.contains("item 2 of the saved state has the pk/sk of an earlier item"), "{err}");
        assert_eq!(other.dump().unwrap(), vec![it.clone()], "not cleared, not half-restored");
        let packed = Packed::pack(&it).unwrap();
        assert_eq!(packed.ttl, Some(1234));
        assert!(packed.bytes.len() < 80, "{} bytes", packed.bytes.len());
        // An update unpacks, applies and packs again; the key attributes are the map key's.
        let u = Update::default().set("s", "y").remove("l").add("n", 1);
        let next = t.update_returning(key.clone(), u, None).await.unwrap().unwrap();
        assert_eq!(next.opt_s("s"), Some("y"));
        assert_eq!(next.opt_n("n"), Some(-1_700_000_000_122));
        assert_eq!(t.get(&key).await.unwrap(), Some(next));
    }

    #[tokio::test]
    async fn items_are_counted_by_key_prefix() {
        let t = MemoryTable::default();
        for k in [Key::new("EVT#1#a", "MARK"), Key::new("EVT#1#b", "MARK"), Key::new("GROUP#1", "GROUP")] {
            t.transact(vec![WriteOp::Put { item: item(&k), cond: None }]).await.unwrap();
        }
        let counts = t.count_by_pk_prefix();
        assert_eq!(counts.get("EVT"), Some(&2));
        assert_eq!(counts.get("GROUP"), Some(&1));
        assert_eq!(counts.len(), 2);
    }
}
