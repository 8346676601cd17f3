//! The aggregation of counters from the event stream (Sentry: `buffer_incr` and its flush), run by the
//! `aggregate-events` function on each Kinesis shard's batches (an event-source mapping with one
//! batch per shard at a time, in order, retried until it succeeds), and in-process by the local CLI
//! and the tests ([`Pump`]).
//!
//! ## What it writes
//!
//! For a batch of one shard, per row that the batch touches, **one write per batch** — never one per
//! event — into an *aggregate item* that belongs to that row and that shard alone
//! (`{row sk}#AGG#{shard}` in the row's partition):
//!
//! | row | aggregate item | values |
//! |---|---|---|
//! | group `GROUP#{g}`/`GROUP` | `GROUP#{g}`/`GROUP#AGG#{shard}` | `times_seen` (sum), `first_seen` (min), `last_seen` (max), level/culprit of the newest event, title/metadata/message of the newest event with a real title |
//! | release of a project `PROJECT#{p}`/`RELEASE#{v}` | `…/RELEASE#{v}#AGG#{shard}` | `new_groups` |
//! | release + environment `PROJECT#{p}`/`RPE#{v}#{e}` | `…/RPE#{v}#{e}#AGG#{shard}` | `new_issues_count` |
//!
//! A reader sums a row and its aggregate items with one `Query` on the row's partition and sort-key
//! prefix ([`group_view`], [`counter`]). Short ids of new groups are allocated here, from blocks of
//! [`SHORT_ID_BLOCK`] that an instance takes with one `ADD` on the project's counter, and set on the
//! group if absent (a re-delivery sets nothing twice; ids of an unspent block are gaps).
//!
//! ## Exactly once, under re-delivery, bisection and crashes
//!
//! 1. **Each event is counted by one record.** The aggregation *claims* every event on its marker
//!    (`SET state = streamed, counted = {shard}/{sequence}` if not counted, or counted by this very
//!    record). A record published twice (a resumed publish) fails the claim and counts nothing; a
//!    re-delivered record passes it again. Markers of the previous release (which counted in its
//!    save transaction) are never claimed.
//! 2. **Each aggregate item records the last sequence number it includes** (`w`). Records of a shard
//!    arrive in order, so a record with a sequence number ≤ `w` is already in the item: a batch
//!    delivered twice, bisected, or retried after a crash half-way adds only what is missing. The
//!    item is written with a condition on the `w` it was read with.
//!
//! Nothing is held only in memory: a killed invocation leaves claims and some aggregate items
//! written; its retry completes the rest and adds nothing twice.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::future::join_all;
use serde_json::Value;

use super::common::{DEDUPE_TTL_SECS, MARKER_VERSION, is_placeholder_title, level_num};
use crate::error::StoreError;
use crate::ports::StoredRecord;
use crate::storage::attr;
use crate::storage::item::{Item, ItemExt, Key, Val, item};
use crate::storage::keys;
use crate::storage::table::{Cond, Table, TxOutcome, Update, WriteOp};

/// How many claims / writes one invocation keeps in flight.
pub const CONCURRENCY: usize = 32;

/// One event of the stream, as the aggregation reads it.
#[derive(Clone, Debug, PartialEq)]
struct Counted {
    seq: String,
    event_id: String,
    project_id: u64,
    group_id: Option<u64>,
    timestamp: i64,
    release: Option<String>,
    environment: String,
    is_new: bool,
    is_new_group_environment: bool,
    level: i64,
    culprit: String,
    title: String,
    metadata: String,
    message: String,
}

/// What one batch did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AggReport {
    pub records: usize,
    /// Events counted by this batch (first claim, or a re-delivery of the claiming record).
    pub claimed: usize,
    /// Records not counted: a copy of an event already counted, or an event of the previous release.
    pub not_claimed: usize,
    /// Records that are not eventstream inserts (skipped).
    pub skipped: usize,
    /// Aggregate items written.
    pub rows_written: usize,
    pub short_ids: usize,
    /// Shard batches that failed (delivered again by the next round).
    pub failed_batches: usize,
}

impl AggReport {
    /// Adds another batch's figures to these.
    pub fn add(&mut self, r: &AggReport) {
        self.records += r.records;
        self.claimed += r.claimed;
        self.not_claimed += r.not_claimed;
        self.skipped += r.skipped;
        self.rows_written += r.rows_written;
        self.short_ids += r.short_ids;
        self.failed_batches += r.failed_batches;
    }
}

/// Kinesis sequence numbers are decimal strings of up to 128 digits: compare them as numbers.
/// (leading zeros, as ministack pads them, do not count).
pub fn seq_gt(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    (a.len(), a) > (b.len(), b)
}

/// Reads what the aggregation needs of an eventstream record, borrowing from its bytes and skipping the
/// rest of the event unparsed (an insert's `data` is the whole event: building it as a tree cost more
/// than everything else the aggregation does), in one pass over the record. Fields of the wrong type
/// read as absent. Anything but an insert is not counted: a message of another shape fails to parse
/// here, one of the insert's shape is told by its operation. A record that is not UTF-8 is not JSON and
/// is not counted (checked first: serde_json does not check the strings it skips in bytes).
fn parse(seq: &str, data: &[u8]) -> Option<Counted> {
    use serde::de::IgnoredAny;
    type Insert<'a> = (IgnoredAny, Loose<'a>, record_view::Payload1<'a>, record_view::Payload2<'a>);
    let data = std::str::from_utf8(data).ok()?;
    let (_, op, p1, p2): Insert<'_> = serde_json::from_str(data).ok()?;
    if op.as_str() != Some("insert") {
        return None;
    }
    let d = p1.data;
    let text = |v: &Loose<'_>| v.as_str().unwrap_or_default().to_owned();
    Some(Counted {
        seq: seq.to_owned(),
        event_id: p1.event_id.as_str()?.to_owned(),
        project_id: p1.project_id.as_u64()?,
        group_id: p1.group_id.as_u64(),
        timestamp: d.timestamp.as_f64().unwrap_or_default() as i64,
        release: d.release.as_str().filter(|r| !r.trim().is_empty()).map(str::to_owned),
        environment: d.environment.as_str().map(|e| e.chars().take(64).collect()).unwrap_or_default(),
        is_new: p2.is_new.as_bool().unwrap_or(false),
        is_new_group_environment: p2.is_new_group_environment.as_bool().unwrap_or(false),
        level: level_num(d.level.as_str().unwrap_or("error")),
        culprit: text(&d.culprit),
        title: text(&d.title),
        metadata: match d.metadata {
            // As `Value::to_string` writes it (the record's own text escapes non-ASCII).
            Some(raw) => serde_json::from_str::<Value>(raw.get()).map(|v| v.to_string()).unwrap_or_default(),
            None => "{}".into(),
        },
        message: text(&p1.message),
    })
}

/// A scalar read without insisting on its type: a string (borrowed when it has no escapes), a number,
/// a boolean; anything else (objects and arrays are skipped unbuilt) reads as absent.
#[derive(Default)]
enum Loose<'a> {
    #[default]
    Absent,
    Str(std::borrow::Cow<'a, str>),
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
}

impl Loose<'_> {
    fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }
    fn as_u64(&self) -> Option<u64> {
        match self {
            Self::U64(n) => Some(*n),
            Self::I64(n) => u64::try_from(*n).ok(),
            _ => None,
        }
    }
    fn as_f64(&self) -> Option<f64> {
        match self {
            Self::U64(n) => Some(*n as f64),
            Self::I64(n) => Some(*n as f64),
            Self::F64(n) => Some(*n),
            _ => None,
        }
    }
    fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            _ => None,
        }
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for Loose<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
        struct V<'a>(std::marker::PhantomData<Loose<'a>>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Loose<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Loose<'a>, E> {
                Ok(Loose::Str(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Loose<'a>, E> {
                Ok(Loose::Str(std::borrow::Cow::Owned(v.to_owned())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Loose<'a>, E> {
                Ok(Loose::U64(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Loose<'a>, E> {
                Ok(Loose::I64(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Loose<'a>, E> {
                Ok(Loose::F64(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Loose<'a>, E> {
                Ok(Loose::Bool(v))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Loose<'a>, E> {
                Ok(Loose::Absent)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Loose<'a>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Loose::Absent)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Loose<'a>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Loose::Absent)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// The parts of an insert record the aggregation reads (every other key is skipped by serde).
mod record_view {
    use serde::Deserialize;
    use serde_json::value::RawValue;

    use super::Loose;

    #[derive(Deserialize)]
    pub(super) struct Payload1<'a> {
        #[serde(default, borrow)]
        pub event_id: Loose<'a>,
        #[serde(default, borrow)]
        pub project_id: Loose<'a>,
        #[serde(default, borrow)]
        pub group_id: Loose<'a>,
        #[serde(default, borrow)]
        pub message: Loose<'a>,
        #[serde(borrow)]
        pub data: Data<'a>,
    }

    #[derive(Deserialize)]
    pub(super) struct Data<'a> {
        #[serde(default, borrow)]
        pub timestamp: Loose<'a>,
        #[serde(default, borrow)]
        pub release: Loose<'a>,
        #[serde(default, borrow)]
        pub environment: Loose<'a>,
        #[serde(default, borrow)]
        pub level: Loose<'a>,
        #[serde(default, borrow)]
        pub culprit: Loose<'a>,
        #[serde(default, borrow)]
        pub title: Loose<'a>,
        #[serde(default, borrow, deserialize_with = "raw")]
        pub metadata: Option<&'a RawValue>,
    }

    /// `metadata` as sent, `null` included.
    fn raw<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
        <&RawValue>::deserialize(d).map(Some)
    }

    #[derive(Deserialize)]
    pub(super) struct Payload2<'a> {
        #[serde(default, borrow)]
        pub is_new: Loose<'a>,
        #[serde(default, borrow)]
        pub is_new_group_environment: Loose<'a>,
    }
}

/// A row's contribution from this batch.
#[derive(Default)]
struct Delta {
    /// (sequence number, event) of every counted record touching the row.
    events: Vec<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
enum Kind {
    Group,
    NewGroups,
    NewIssues,
}

/// Short ids taken from a project's counter per `ADD` (an instance spends its block over its batches;
/// ids of a block an instance does not spend are gaps, as Sentry's sequence has gaps).
pub const SHORT_ID_BLOCK: i64 = 100;

/// The aggregation over a table.
pub struct Aggregator {
    table: Arc<dyn Table>,
    /// Per project: the next short id of this instance's block and the block's end (exclusive).
    short_ids: Mutex<HashMap<u64, (i64, i64)>>,
}

impl Aggregator {
    pub fn new(table: Arc<dyn Table>) -> Self {
        Self { table, short_ids: Mutex::new(HashMap::new()) }
    }

    /// `n` consecutive-in-allocation short ids of `project` (from this instance's block, or a new one).
    async fn take_short_ids(&self, project: u64, n: i64) -> Result<Vec<i64>, StoreError> {
        let mut out = Vec::with_capacity(n as usize);
        if let Ok(mut m) = self.short_ids.lock()
            && let Some((next, end)) = m.get_mut(&project)
        {
            while *next < *end && (out.len() as i64) < n {
                out.push(*next);
                *next += 1;
            }
        }
        let missing = n - out.len() as i64;
        if missing > 0 {
            let block = missing.max(SHORT_ID_BLOCK);
            let top = self
                .table
                .update_returning(
                    keys::short_id_counter(project),
                    Update::default().add("counter", block),
                    None,
                )
                .await?
                .and_then(|i| i.opt_n("counter"))
                .ok_or_else(|| StoreError::corrupt("short id counter without its value"))?;
            let start = top - block + 1;
            out.extend(start..start + missing);
            if let Ok(mut m) = self.short_ids.lock() {
                m.insert(project, (start + missing, top + 1));
            }
        }
        Ok(out)
    }

    /// Counts one batch of one shard (records in stream order). An error means: deliver the batch
    /// again (whole or bisected); nothing is counted twice.
    pub async fn process(
        &self,
        shard: &str,
        records: &[StoredRecord],
        now_secs: i64,
    ) -> Result<AggReport, StoreError> {
        let mut report = AggReport { records: records.len(), ..Default::default() };
        let parsed: Vec<Counted> = records
            .iter()
            .filter_map(|r| {
                let p = parse(&r.sequence_number, &r.data);
                if p.is_none() {
                    tracing::warn!(shard, seq = %r.sequence_number, "not an eventstream insert, skipped");
                }
                p
            })
            .collect();
        report.skipped = records.len() - parsed.len();

        // 1. Claim each event on its marker.
        let mut claims = Vec::with_capacity(parsed.len());
        for chunk in parsed.chunks(CONCURRENCY) {
            claims.extend(
                join_all(chunk.iter().map(|c| self.claim(shard, c, now_secs)).collect::<Vec<_>>()).await,
            );
        }
        let mut counted: Vec<&Counted> = Vec::new();
        for (c, ok) in parsed.iter().zip(claims) {
            if ok? {
                counted.push(c);
            } else {
                report.not_claimed += 1;
            }
        }
        report.claimed = counted.len();

        // 2. Group the counted events by aggregate row.
        let mut rows: BTreeMap<(Kind, Key), Delta> = BTreeMap::new();
        for (i, c) in counted.iter().enumerate() {
            let Some(g) = c.group_id else { continue };
            rows.entry((Kind::Group, keys::agg(&keys::group(g), shard))).or_default().events.push(i);
            if let Some(v) = c.release.as_deref() {
                if c.is_new {
                    rows.entry((Kind::NewGroups, keys::agg(&keys::release_project(c.project_id, v), shard)))
                        .or_default()
                        .events
                        .push(i);
                }
                if c.is_new_group_environment {
                    let base = keys::release_project_environment(c.project_id, v, &c.environment);
                    rows.entry((Kind::NewIssues, keys::agg(&base, shard))).or_default().events.push(i);
                }
            }
        }

        // 3. Read the aggregate items, add what they do not include yet, write each once.
        let row_keys: Vec<Key> = rows.keys().map(|(_, k)| k.clone()).collect();
        let mut current: HashMap<Key, Item> = HashMap::new();
        for chunk in row_keys.chunks(100) {
            for it in self.table.get_many(chunk).await?.into_iter().flatten() {
                if let Some(k) = it.key() {
                    current.insert(k, it);
                }
            }
        }
        let writes: Vec<_> = rows
            .iter()
            .filter_map(|((kind, key), delta)| {
                let old = current.get(key);
                let w = old.and_then(|i| i.opt_s("w")).map(str::to_owned);
                let fresh: Vec<&Counted> = delta
                    .events
                    .iter()
                    .map(|&i| counted[i])
                    .filter(|c| w.as_deref().is_none_or(|w| seq_gt(&c.seq, w)))
                    .collect();
                if fresh.is_empty() {
                    return None;
                }
                let new = merge_row(*kind, key, shard, old, &fresh);
                let cond = match &w {
                    Some(w) => Cond::eq("w", w.as_str()),
                    None => Cond::NotExists,
                };
                Some(WriteOp::Put { item: new, cond: Some(cond) })
            })
            .collect();
        let mut results = Vec::with_capacity(writes.len());
        for chunk in writes.chunks(CONCURRENCY) {
            results.extend(
                join_all(chunk.iter().map(|op| self.table.transact(vec![op.clone()])).collect::<Vec<_>>())
                    .await,
            );
        }
        for r in results {
            match r? {
                TxOutcome::Committed => report.rows_written += 1,
                TxOutcome::ConditionFailed { .. } => {
                    return Err(StoreError::Unavailable {
                        service: "dynamodb",
                        message: format!(
                            "aggregate item of shard {shard} changed concurrently; batch retried"
                        ),
                    });
                }
            }
        }

        // 4. Short ids for the new groups that have none yet.
        report.short_ids = self.assign_short_ids(&counted).await?;
        Ok(report)
    }

    async fn claim(&self, shard: &str, c: &Counted, now_secs: i64) -> Result<bool, StoreError> {
        let token = format!("{shard}/{}", c.seq);
        let u = Update::default()
            .set("state", "streamed")
            .set("counted", token.as_str())
            .remove("lease_until")
            .set_if_absent("v", MARKER_VERSION)
            .set_if_absent(attr::TTL, now_secs + DEDUPE_TTL_SECS);
        let cond = Cond::And(vec![
            Cond::Or(vec![Cond::NotExists, Cond::eq("v", MARKER_VERSION)]),
            Cond::Or(vec![Cond::attr_not_exists("counted"), Cond::eq("counted", token.as_str())]),
        ]);
        Ok(self
            .table
            .update_returning(keys::marker(c.project_id, &c.event_id), u, Some(cond))
            .await?
            .is_some())
    }

    async fn assign_short_ids(&self, counted: &[&Counted]) -> Result<usize, StoreError> {
        let mut new_groups: Vec<(u64, u64)> = Vec::new();
        for c in counted.iter().filter(|c| c.is_new) {
            if let Some(g) = c.group_id
                && !new_groups.iter().any(|(_, x)| *x == g)
            {
                new_groups.push((c.project_id, g));
            }
        }
        if new_groups.is_empty() {
            return Ok(0);
        }
        let group_keys: Vec<Key> = new_groups.iter().map(|(_, g)| keys::group(*g)).collect();
        let mut missing: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for chunk in new_groups.chunks(100).zip(group_keys.chunks(100)) {
            let items = self.table.get_many(chunk.1).await?;
            for ((p, g), it) in chunk.0.iter().zip(items) {
                if it.is_some_and(|i| i.opt_n("short_id").is_none()) {
                    missing.entry(*p).or_default().push(*g);
                }
            }
        }
        let mut assigned = 0;
        for (project, groups) in missing {
            let ids = self.take_short_ids(project, groups.len() as i64).await?;
            let sets: Vec<_> = groups
                .iter()
                .enumerate()
                .map(|(i, g)| {
                    self.table.update_returning(
                        keys::group(*g),
                        Update::default().set("short_id", ids[i]),
                        Some(Cond::And(vec![Cond::Exists, Cond::attr_not_exists("short_id")])),
                    )
                })
                .collect();
            for r in join_all(sets).await {
                if r?.is_some() {
                    assigned += 1;
                }
            }
        }
        Ok(assigned)
    }
}

/// The aggregate item after adding `fresh` (events not yet included) to `old`.
fn merge_row(kind: Kind, key: &Key, shard: &str, old: Option<&Item>, fresh: &[&Counted]) -> Item {
    let mut it = old.cloned().unwrap_or_else(|| item(key));
    it.insert("shard".into(), Val::S(shard.to_owned()));
    let last_seq = fresh.iter().map(|c| c.seq.as_str()).fold("", |a, b| if seq_gt(b, a) { b } else { a });
    it.insert("w".into(), Val::S(last_seq.to_owned()));
    let n = fresh.len() as i64;
    let add = |it: &mut Item, attr: &str| {
        let cur = it.opt_n(attr).unwrap_or(0);
        it.insert(attr.into(), Val::N(cur + n));
    };
    match kind {
        Kind::NewGroups => add(&mut it, "new_groups"),
        Kind::NewIssues => add(&mut it, "new_issues_count"),
        Kind::Group => {
            add(&mut it, "times_seen");
            let min = fresh.iter().map(|c| c.timestamp).min().unwrap_or(0);
            let max = fresh.iter().map(|c| c.timestamp).max().unwrap_or(0);
            let first = it.opt_n("first_seen").map_or(min, |f| f.min(min));
            let last = it.opt_n("last_seen").map_or(max, |l| l.max(max));
            it.insert("first_seen".into(), Val::N(first));
            it.insert("last_seen".into(), Val::N(last));
            // Values of the newest event (ties: the later record), as Sentry's buffer keeps the last.
            if let Some(newest) = fresh.iter().rev().max_by_key(|c| c.timestamp)
                && newest.timestamp >= it.opt_n("vts").unwrap_or(i64::MIN)
            {
                it.insert("vts".into(), Val::N(newest.timestamp));
                it.insert("level".into(), Val::N(newest.level));
                it.insert("culprit".into(), Val::S(newest.culprit.clone()));
            }
            // A placeholder title never replaces a real one (`_get_updated_group_title`).
            if let Some(newest) =
                fresh.iter().rev().filter(|c| !is_placeholder_title(&c.title)).max_by_key(|c| c.timestamp)
                && newest.timestamp >= it.opt_n("tts").unwrap_or(i64::MIN)
            {
                it.insert("tts".into(), Val::N(newest.timestamp));
                it.insert("title".into(), Val::S(newest.title.clone()));
                it.insert("metadata".into(), Val::S(newest.metadata.clone()));
                it.insert("message".into(), Val::S(newest.message.clone()));
            }
        }
    }
    it
}

/// A group as a reader sees it: its row merged with the aggregate items of every shard.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupView {
    pub id: u64,
    pub project_id: u64,
    pub times_seen: i64,
    pub first_seen: i64,
    pub last_seen: i64,
    pub short_id: Option<i64>,
    pub status: String,
    pub substatus: String,
    pub level: i64,
    pub culprit: String,
    pub title: String,
    pub message: String,
    /// The row as stored (creation values, status).
    pub row: Item,
}

/// Reads a group and its aggregate items (one `Query`).
pub async fn group_view(table: &dyn Table, group: u64) -> Result<Option<GroupView>, StoreError> {
    let base = keys::group(group);
    let items = table.query(&base.pk, Some(&keys::agg_prefix(&base))).await?;
    Ok(merge_group(group, &items))
}

/// Merges a group row with its aggregate items (what [`group_view`] read).
pub fn merge_group(group: u64, items: &[Item]) -> Option<GroupView> {
    let base = keys::group(group);
    let row = items.iter().find(|i| i.opt_s(attr::SK) == Some(base.sk.as_str()))?;
    let aggs: Vec<&Item> = items
        .iter()
        .filter(|i| i.opt_s(attr::SK).is_some_and(|sk| sk.starts_with(&format!("{}#AGG#", base.sk))))
        .collect();
    let mut v = GroupView {
        id: group,
        project_id: row.opt_n("project_id").unwrap_or(0) as u64,
        times_seen: row.opt_n("times_seen").unwrap_or(0),
        first_seen: row.opt_n("first_seen").unwrap_or(0),
        last_seen: row.opt_n("last_seen").unwrap_or(0),
        short_id: row.opt_n("short_id"),
        status: row.opt_s("status").unwrap_or("unresolved").to_owned(),
        substatus: row.opt_s("substatus").unwrap_or_default().to_owned(),
        level: row.opt_n("level").unwrap_or(40),
        culprit: row.opt_s("culprit").unwrap_or_default().to_owned(),
        title: row.opt_s("title").unwrap_or_default().to_owned(),
        message: row.opt_s("message").unwrap_or_default().to_owned(),
        row: row.clone(),
    };
    let (mut vts, mut tts) = (i64::MIN, i64::MIN);
    for a in aggs {
        v.times_seen += a.opt_n("times_seen").unwrap_or(0);
        if let Some(f) = a.opt_n("first_seen") {
            v.first_seen = v.first_seen.min(f);
        }
        if let Some(l) = a.opt_n("last_seen") {
            v.last_seen = v.last_seen.max(l);
        }
        if let Some(t) = a.opt_n("vts").filter(|t| *t > vts) {
            vts = t;
            v.level = a.opt_n("level").unwrap_or(v.level);
            v.culprit = a.opt_s("culprit").unwrap_or_default().to_owned();
        }
        if let Some(t) = a.opt_n("tts").filter(|t| *t > tts) {
            tts = t;
            v.title = a.opt_s("title").unwrap_or_default().to_owned();
            v.message = a.opt_s("message").unwrap_or_default().to_owned();
        }
    }
    Some(v)
}

/// A counter of a row (`new_groups` of a release, `new_issues_count` of a release environment): the
/// row's own value (items of the previous release) plus its aggregate items (one `Query`).
pub async fn counter(table: &dyn Table, base: &Key, attr_name: &str) -> Result<i64, StoreError> {
    let items = table.query(&base.pk, Some(&keys::agg_prefix(base))).await?;
    Ok(items.iter().filter_map(|i| i.opt_n(attr_name)).sum())
}

/// New records of a stream, per shard, for an in-process aggregation.
#[async_trait]
pub trait StreamFeed: Send + Sync {
    /// Records after the last committed sequence number of each shard (at most `max` per shard).
    async fn poll(&self, max: usize) -> Result<Vec<(String, Vec<StoredRecord>)>, StoreError>;
    /// The shard's records up to `seq` are counted.
    fn commit(&self, shard: &str, seq: &str);
}

/// An in-memory stream's records as shards: `records_since(i)` gives the records from index `i` on;
/// `shard_of` maps a partition key to a shard index (one shard by default; the AWS limits model maps
/// by MD5 hash ranges). It remembers the first record not yet committed, so a poll copies only what is
/// new (plus a failed batch being delivered again), whatever the length of the stream.
pub struct MemoryFeed {
    records_since: Box<dyn Fn(usize) -> Vec<StoredRecord> + Send + Sync>,
    shard_of: Box<dyn Fn(&str) -> usize + Send + Sync>,
    state: Mutex<FeedState>,
}

#[derive(Default)]
struct FeedState {
    /// Records before this index are committed (all their shards' batches succeeded).
    start: usize,
    /// Per shard, the last committed sequence number.
    committed: HashMap<String, String>,
}

/// AWS's shard id format.
pub fn shard_id(index: usize) -> String {
    format!("shardId-{index:012}")
}

impl MemoryFeed {
    pub fn new(
        records_since: impl Fn(usize) -> Vec<StoredRecord> + Send + Sync + 'static,
        shard_of: impl Fn(&str) -> usize + Send + Sync + 'static,
    ) -> Self {
        Self {
            records_since: Box::new(records_since),
            shard_of: Box::new(shard_of),
            state: Mutex::new(FeedState::default()),
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, FeedState>, StoreError> {
        self.state
            .lock()
            .map_err(|_| StoreError::Other { service: "memory", message: "lock poisoned".into() })
    }
}

#[async_trait]
impl StreamFeed for MemoryFeed {
    async fn poll(&self, max: usize) -> Result<Vec<(String, Vec<StoredRecord>)>, StoreError> {
        let (start, committed) = {
            let st = self.lock()?;
            (st.start, st.committed.clone())
        };
        let records = (self.records_since)(start);
        // Skip the committed prefix for good.
        let mut skipped = 0;
        let is_committed = |r: &StoredRecord| {
            let shard = shard_id((self.shard_of)(&r.partition_key));
            committed.get(&shard).is_some_and(|c| !seq_gt(&r.sequence_number, c))
        };
        while skipped < records.len() && is_committed(&records[skipped]) {
            skipped += 1;
        }
        self.lock()?.start = start + skipped;
        let mut out: BTreeMap<String, Vec<StoredRecord>> = BTreeMap::new();
        for r in records.into_iter().skip(skipped) {
            if is_committed(&r) {
                continue;
            }
            let batch = out.entry(shard_id((self.shard_of)(&r.partition_key))).or_default();
            if batch.len() < max {
                batch.push(r);
            }
        }
        Ok(out.into_iter().collect())
    }

    fn commit(&self, shard: &str, seq: &str) {
        if let Ok(mut st) = self.state.lock() {
            st.committed.insert(shard.to_owned(), seq.to_owned());
        }
    }
}

/// Runs the aggregation in-process over a feed, the way the event-source mapping does on AWS: one
/// batch per shard at a time, in order, committed only after it succeeded.
pub struct Pump {
    pub aggregator: Aggregator,
    pub feed: Arc<dyn StreamFeed>,
    pub batch_size: usize,
}

impl Pump {
    pub fn new(table: Arc<dyn Table>, feed: Arc<dyn StreamFeed>) -> Self {
        Self { aggregator: Aggregator::new(table), feed, batch_size: 1000 }
    }

    /// One round: one batch per shard; a shard whose batch fails is not committed (its batch comes
    /// again next round) and does not hold the others back. An error only when every batch failed.
    pub async fn round(&self, now_secs: i64) -> Result<AggReport, StoreError> {
        let mut total = AggReport::default();
        let mut first_error = None;
        for (shard, batch) in self.feed.poll(self.batch_size).await? {
            let Some(last) = batch.last().map(|r| r.sequence_number.clone()) else { continue };
            match self.aggregator.process(&shard, &batch, now_secs).await {
                Ok(r) => {
                    self.feed.commit(&shard, &last);
                    total.add(&r);
                }
                Err(e) => {
                    tracing::warn!(shard = %shard, error = %e, "aggregation batch failed; delivered again");
                    total.failed_batches += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) if total.records == 0 => Err(e),
            _ => Ok(total),
        }
    }

    /// Rounds until the stream is drained (at most 1,000 rounds).
    pub async fn drain(&self, now_secs: i64) -> Result<AggReport, StoreError> {
        let mut total = AggReport::default();
        for _ in 0..1000 {
            let r = self.round(now_secs).await?;
            let done = r.records == 0 && r.failed_batches == 0;
            total.add(&r);
            if done {
                break;
            }
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reader before it was typed: the whole record as a tree. The typed one reads the same.
    fn parse_as_tree(seq: &str, data: &[u8]) -> Option<Counted> {
        let v: Value = serde_json::from_slice(data).ok()?;
        let arr = v.as_array()?;
        if arr.get(1)?.as_str()? != "insert" {
            return None;
        }
        let (p1, p2) = (arr.get(2)?, arr.get(3)?);
        let d = p1.get("data")?;
        let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
        Some(Counted {
            seq: seq.to_owned(),
            event_id: p1.get("event_id")?.as_str()?.to_owned(),
            project_id: p1.get("project_id")?.as_u64()?,
            group_id: p1.get("group_id").and_then(Value::as_u64),
            timestamp: d.get("timestamp").and_then(Value::as_f64).unwrap_or_default() as i64,
            release: d
                .get("release")
                .and_then(Value::as_str)
                .filter(|r| !r.trim().is_empty())
                .map(str::to_owned),
            environment: d
                .get("environment")
                .and_then(Value::as_str)
                .map(|e| e.chars().take(64).collect())
                .unwrap_or_default(),
            is_new: p2.get("is_new").and_then(Value::as_bool).unwrap_or(false),
            is_new_group_environment: p2
                .get("is_new_group_environment")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            level: level_num(d.get("level").and_then(Value::as_str).unwrap_or("error")),
            culprit: s(d, "culprit"),
            title: s(d, "title"),
            metadata: d.get("metadata").map(Value::to_string).unwrap_or_else(|| "{}".into()),
            message: s(p1, "message"),
        })
    }

    #[test]
    fn the_typed_reader_reads_what_the_tree_did() {
        let records = [
            // An insert as the save path writes it: escaped non-ASCII, nested data, extra keys.
            r#"[2,"insert",{"group_id":7,"group_ids":[7],"event_id":"ab12","organization_id":1,"project_id":42,"message":"boom \u00e9","platform":"python","datetime":"x","data":{"timestamp":1717243200.5,"release":"1.0","environment":"prod","level":"warning","culprit":"app.main","title":"ValueError: \u00e9","metadata":{"type":"ValueError","value":"\u00e9 \"q\"","in_app_frame_mix":"in-app-only"},"exception":{"values":[{"type":"E","stacktrace":{"frames":[{"f":1}]}}]},"tags":[["a","b"]]},"primary_hash":"h","retention_days":90},{"is_new":true,"is_regression":false,"is_new_group_environment":true,"queue":"errors","skip_consume":false,"group_states":[]}]"#,
            // Fields of the wrong type, nulls and absences read as absent.
            r#"[2,"insert",{"group_id":null,"event_id":"cd34","project_id":42,"message":5,"data":{"timestamp":"soon","release":"  ","environment":["x"],"level":null,"metadata":null}},{"is_new":"yes"}]"#,
            r#"[2,"insert",{"event_id":"ef56","project_id":42,"data":{"timestamp":17,"environment":"ééé"}},{}]"#,
            // Not inserts, or not readable: skipped by both.
            r#"[2,"start_delete_groups",{"project_id":42},{}]"#,
            r#"[2,"end_delete_groups",{"event_id":"x","project_id":42,"data":{}},{}]"#,
            r#"[2,"insert",{"event_id":5,"project_id":42,"data":{}},{}]"#,
            r#"[2,"insert",{"event_id":"x","project_id":-1,"data":{}},{}]"#,
            r#"[2,"insert",{"event_id":"x","project_id":42},{}]"#,
            r#"not json"#,
        ];
        for r in records {
            assert_eq!(parse("1", r.as_bytes()), parse_as_tree("1", r.as_bytes()), "{r}");
        }
        // Not UTF-8 in a part the reader skips, or in the first element: skipped by both.
        for r in [
            &b"[2,\"insert\",{\"event_id\":\"x\",\"project_id\":42,\"data\":{\"extra\":\"\xFF\"}},{}]"[..],
            &b"[\"\xFF\",\"insert\",{\"event_id\":\"x\",\"project_id\":42,\"data\":{}},{}]"[..],
        ] {
            assert_eq!(parse("1", r), None);
            assert_eq!(parse_as_tree("1", r), None);
        }
        assert_eq!(
            parse("1", records[0].as_bytes()).unwrap().metadata,
            parse_as_tree("1", records[0].as_bytes()).unwrap().metadata
        );
        assert!(parse("1", records[0].as_bytes()).is_some() && parse("1", records[3].as_bytes()).is_none());
    }

    /// The in-memory feed delivers a shard's batch again until it is committed, and skips the committed
    /// prefix for good (a poll copies only what is new).
    #[tokio::test]
    async fn memory_feed_redelivers_until_committed() {
        let log: Arc<Mutex<Vec<StoredRecord>>> = Arc::new(Mutex::new(Vec::new()));
        let push = |pk: &str| {
            let mut l = log.lock().unwrap();
            let seq = format!("{}", l.len() + 1);
            l.push(StoredRecord { sequence_number: seq, partition_key: pk.into(), data: vec![] });
        };
        let reads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let feed = {
            let (log, reads) = (log.clone(), reads.clone());
            MemoryFeed::new(
                move |i| {
                    let r = log.lock().unwrap()[i..].to_vec();
                    reads.fetch_add(r.len(), std::sync::atomic::Ordering::SeqCst);
                    r
                },
                |pk| usize::from(pk == "b"),
            )
        };
        push("a");
        push("b");
        push("a");
        let first = feed.poll(10).await.unwrap();
        assert_eq!(first.len(), 2);
        assert_eq!(first[0].1.len(), 2, "shard 0: two records");
        feed.commit(&shard_id(0), "3");
        // Shard 1's batch failed (not committed): delivered again, with what arrived since.
        push("b");
        let again = feed.poll(10).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].0, shard_id(1));
        let seqs: Vec<&str> = again[0].1.iter().map(|r| r.sequence_number.as_str()).collect();
        assert_eq!(seqs, ["2", "4"]);
        feed.commit(&shard_id(1), "4");
        assert!(feed.poll(10).await.unwrap().is_empty());
        // Everything is committed: the next poll copies nothing old.
        let before = reads.load(std::sync::atomic::Ordering::SeqCst);
        push("a");
        assert_eq!(feed.poll(10).await.unwrap().len(), 1);
        assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst) - before, 1);
    }

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert!(seq_gt("10", "9"));
        assert!(!seq_gt("9", "10"));
        assert!(seq_gt("49590338271490256608559692538361571095921575989136588898", "4959"));
        assert!(!seq_gt("5", "5"));
        assert!(seq_gt("000000017960671979400000000010", "000000017960671979400000000006"));
        assert!(seq_gt("10", "0009"));
    }
}
