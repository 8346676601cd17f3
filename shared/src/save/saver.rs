//! Saving an event on the table — the per-event side of `EventManager.save` — designed so that a storm
//! of one error (thousands of events per second on one group of one project) writes **no shared item
//! per event**: the only item every event writes is its own de-duplication marker. Counters
//! (`times_seen`, `new_groups`, `new_issues_count`), the group's `first_seen`/`last_seen` and short ids
//! are aggregated from the event stream by [`super::aggregate`] (Sentry: `buffer_incr`).
//!
//! ## What one event writes
//!
//! | situation | writes (all plain, single-item, conditional) | sequential calls |
//! |---|---|---|
//! | warm Lambda, known group, status fresh | the marker | 1 (+ `PutRecords`) |
//! | cold Lambda, known group | the marker ∥ the group environment (put-if-absent, first time per Lambda) ∥ read of the group's status ∥ association upserts | 2 after the hash read (+ `PutRecords`) |
//! | new group | the marker ∥ one transaction creating the group, its hashes, its environment and release row — items no other group shares | 2 (+ `PutRecords`) |
//! | regression (resolved group) | + one conditional update of the group, after the marker | +1 |
//!
//! Release / environment association rows (`first_seen`, `last_seen`) are idempotent upserts that a
//! warm Lambda repeats at most once per [`BUMP_SECS`] per row (as Sentry throttles them), so a storm on
//! N Lambdas writes each row at most N times a minute.
//!
//! ## Decisions without transactions: stamps
//!
//! `is_new`, `is_new_group_environment` and `is_regression` must be true for exactly one event. Each
//! is decided by one conditional write that **stamps the item with the deciding event id**
//! (`first_event` on the hash and group-environment items, `regressed_by` on the group). A retry of the
//! same event id that finds its own stamp gets the same answer, so decisions are recomputed, never
//! stored: a resumed publish (below) rebuilds exactly the record the first attempt would have sent.
//! A regression is only written after the marker proves the event is not a duplicate.
//!
//! ## No lost events: the marker
//!
//! Every event id gets a marker item `EVT#{project}#{event_id}` (TTL 1 h, Sentry's de-duplication
//! window), written with `attribute_not_exists` (a put that returns the old item when refused):
//!
//! | marker found | meaning | answer |
//! |---|---|---|
//! | none | a new event | publish the record; the aggregation marks it `streamed` when it counts it |
//! | `streamed` / counted | a duplicate within the hour | 200 with the same id; nothing saved or streamed |
//! | `saving`, lease running | the same event is being published (or was, and is not yet counted) | 503 + `Retry-After` |
//! | `saving`, lease expired | an earlier attempt did not publish (stream failure, crash) | take the lease over (conditional update), recompute the decisions (stamps), re-publish |
//!
//! A failure after the marker was written — a table error while deciding, a publish failure — releases
//! the lease at once ([`EventSaver::abandon`]) so the SDK's retry resumes immediately. A record published twice (its first publish succeeded but was reported failed) is
//! counted once: the aggregation claims each event id on its marker.
//!
//! ## Compatibility with items of the previous release
//! Markers written before this design (`result` JSON with the flags, no `v`) are resumed from their
//! stored flags and are never claimed by the aggregation (that release counted them in its
//! transaction). Group hashes written under `PROJECT#{p}`/`HASH#{h}` are still read (and re-written
//! under their own partition on first use).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

pub use super::common::{DEDUPE_TTL_SECS, MARKER_VERSION};
use super::record::GroupState;
use crate::domain::project::Project;
use crate::error::StoreError;
use crate::ports::Random;
use crate::storage::attr;
use crate::storage::item::{Item, ItemExt, Key, Val, item};
use crate::storage::keys;
use crate::storage::table::{Cond, PutOutcome, Table, TxOutcome, Update, WriteOp};

/// How long a publisher owns an event before a retry may take it over (longer than a Lambda timeout).
pub const LEASE_SECS: i64 = 30;
/// How long a warm Lambda trusts the group status it read (a resolve is seen within this time).
pub const STATUS_TTL_SECS: i64 = 5;
/// `last_seen` of associations is re-written only when the event is at least this much newer (Sentry
/// throttles these bumps the same way).
pub const BUMP_SECS: i64 = 60;

/// Which `EventManager.save` branch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveKind {
    /// error, default, csp, … : grouped.
    Error,
    /// transaction: no group, release/environment associations only.
    Transaction,
    /// generic (issue platform): grouped by the occurrence fingerprints.
    Generic,
}

/// What the group gets from this event (`_get_group_processing_kwargs`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupValues {
    pub level: i64,
    pub culprit: String,
    pub message: String,
    pub title: String,
    pub title_is_placeholder: bool,
    pub event_type: String,
    pub metadata: Value,
    pub platform: String,
    pub logger: String,
}

#[derive(Clone, Debug)]
pub struct SaveJob {
    pub project: Project,
    pub event_id: String,
    pub kind: SaveKind,
    /// Event time and receive time (epoch seconds, fractional).
    pub timestamp: f64,
    pub received: f64,
    pub release: Option<String>,
    /// `""` when the event has none (every event has an environment row).
    pub environment: String,
    /// Grouping hashes, primary first (empty for transactions).
    pub hashes: Vec<String>,
    pub group: GroupValues,
}

/// What the record of a saved event carries: the group with its flags (none for transactions) and
/// the receive time of the attempt that saved.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SaveResult {
    pub group: Option<GroupState>,
    pub received: f64,
}

/// The marker's `result` as the previous release wrote it (read to resume its events).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct LegacyResult {
    #[serde(default)]
    group_id: Option<u64>,
    #[serde(default)]
    short_id: Option<i64>,
    #[serde(default)]
    is_new: bool,
    #[serde(default)]
    is_regression: bool,
    #[serde(default)]
    is_new_group_environment: bool,
    #[serde(default)]
    received: f64,
}

/// The group hash read (see [`EventSaver::prefetch`]): which group the hashes map to, the event that
/// created that mapping, and the hashes not yet stored under their own key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prefetch {
    pub group: Option<u64>,
    pub first_event: Option<String>,
    pub unmapped: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Begin {
    /// Saved now; the caller holds the lease: publish (or `abandon`).
    Saved(SaveResult),
    /// Saved by an earlier attempt that did not publish; the caller took the lease: publish.
    Resume(SaveResult),
    /// Already streamed: a duplicate.
    Duplicate,
    /// Another request holds the lease right now.
    InFlight,
}

#[derive(Clone, Debug)]
struct GroupSnap {
    status: String,
    active_at: i64,
    regressed_by: Option<String>,
    /// When it was read (clock seconds).
    read_at: i64,
}

/// What a warm Lambda knows exists (bounded; cleared when full).
#[derive(Default)]
struct Warm {
    /// Group hash → (group, the event that created the mapping): what the hash item holds, so a
    /// decision made from the cache is the one the item gives (`is_new`).
    hashes: HashMap<(u64, String), (u64, Option<String>)>,
    groups: HashMap<u64, GroupSnap>,
    /// Items known to exist, with the `last_seen` last written (seconds).
    known: HashMap<Key, i64>,
}

const WARM_CAPACITY: usize = 10_000;

fn bounded_insert<K: std::hash::Hash + Eq, V>(m: &mut HashMap<K, V>, k: K, v: V) {
    if m.len() >= WARM_CAPACITY && !m.contains_key(&k) {
        m.clear();
    }
    m.insert(k, v);
}

/// What the group-level decisions gave, before the regression is written.
struct Decision {
    group: u64,
    is_new: bool,
    is_new_env: bool,
    regression: Regression,
}

enum Regression {
    No,
    /// This event's own earlier attempt regressed the group.
    Mine,
    /// The group is resolved and the event may regress it (written after the marker).
    Candidate,
}

/// The event saver over a table, with its warm cache.
pub struct EventSaver {
    table: Arc<dyn Table>,
    random: Arc<dyn Random>,
    warm: Mutex<Warm>,
    lease_secs: i64,
    status_ttl_secs: i64,
    dedupe_secs: i64,
}

fn random_id(random: &dyn Random) -> u64 {
    let mut b = [0u8; 8];
    random.fill(&mut b);
    (u64::from_be_bytes(b) & ((1 << 53) - 1)).max(1)
}

fn lock_err() -> StoreError {
    StoreError::Other { service: "memory", message: "lock poisoned".into() }
}

impl EventSaver {
    pub fn new(table: Arc<dyn Table>, random: Arc<dyn Random>) -> Self {
        Self {
            table,
            random,
            warm: Mutex::new(Warm::default()),
            lease_secs: LEASE_SECS,
            status_ttl_secs: STATUS_TTL_SECS,
            dedupe_secs: DEDUPE_TTL_SECS,
        }
    }

    /// The publishing lease (default [`LEASE_SECS`]); it must outlast the function's timeout.
    pub fn with_lease_secs(mut self, secs: i64) -> Self {
        self.lease_secs = secs.max(1);
        self
    }

    /// How long an event id is remembered (the marker's TTL; default [`DEDUPE_TTL_SECS`], Sentry's
    /// hour). Never shorter than the publishing lease, which the marker carries.
    pub fn with_dedupe_secs(mut self, secs: i64) -> Self {
        self.dedupe_secs = secs.max(self.lease_secs).max(1);
        self
    }

    /// How long a group status read is trusted (default [`STATUS_TTL_SECS`]).
    pub fn with_status_ttl_secs(mut self, secs: i64) -> Self {
        self.status_ttl_secs = secs.max(0);
        self
    }

    fn known_recent(&self, key: &Key, ts: i64) -> bool {
        self.warm
            .lock()
            .ok()
            .and_then(|w| w.known.get(key).copied())
            .is_some_and(|last| ts < last + BUMP_SECS)
    }

    fn known(&self, key: &Key) -> bool {
        self.warm.lock().ok().is_some_and(|w| w.known.contains_key(key))
    }

    fn remember(&self, keys: &[Key], ts: i64) {
        if let Ok(mut w) = self.warm.lock() {
            for k in keys {
                let cur = w.known.get(k).copied().unwrap_or(i64::MIN);
                bounded_insert(&mut w.known, k.clone(), cur.max(ts));
            }
        }
    }

    /// Idempotent upserts of the release / environment rows, each skipped when this Lambda wrote it
    /// less than [`BUMP_SECS`] ago; sent concurrently, none in a transaction.
    async fn upsert_associations(&self, job: &SaveJob) -> Result<(), StoreError> {
        let ts = job.timestamp as i64;
        let p = &job.project;
        let env = job.environment.as_str();
        let mut rows: Vec<(Key, Update)> = vec![
            (
                keys::environment(p.organization_id, env),
                Update::default().set("name", env).set("org_id", p.organization_id as i64),
            ),
            (
                keys::environment_project(p.id, env),
                Update::default().set("name", env).set("project_id", p.id as i64),
            ),
        ];
        if let Some(version) = job.release.as_deref() {
            rows.push((
                keys::release(p.organization_id, version),
                Update::default()
                    .set("version", version)
                    .set("org_id", p.organization_id as i64)
                    .set_if_absent("date_added", ts),
            ));
            rows.push((
                keys::release_project(p.id, version),
                Update::default().set("version", version).set("project_id", p.id as i64),
            ));
            rows.push((
                keys::release_environment(p.organization_id, version, env),
                Update::default().set("version", version).set("environment", env),
            ));
            rows.push((
                keys::release_project_environment(p.id, version, env),
                Update::default()
                    .set("version", version)
                    .set("environment", env)
                    .set("project_id", p.id as i64),
            ));
        }
        let rows: Vec<(Key, Update)> = rows.into_iter().filter(|(k, _)| !self.known_recent(k, ts)).collect();
        let writes = rows.iter().map(|(k, u)| {
            let u = u.clone().set_if_absent("first_seen", ts).set("last_seen", ts);
            self.table.update_returning(k.clone(), u, None)
        });
        for r in futures::future::join_all(writes).await {
            r?;
        }
        let keys: Vec<Key> = rows.into_iter().map(|(k, _)| k).collect();
        self.remember(&keys, ts);
        Ok(())
    }

    fn marker_item(&self, job: &SaveJob, now_secs: i64, known_group: Option<u64>, attempt: &str) -> Item {
        let mut m = item(&keys::marker(job.project.id, &job.event_id));
        m.insert("v".into(), Val::N(MARKER_VERSION));
        // Which request wrote it: a put whose answer was lost and that the SDK sent again finds its own
        // marker and goes on (PutItem has no idempotency token).
        m.insert("attempt".into(), Val::S(attempt.to_owned()));
        m.insert("state".into(), Val::S("saving".into()));
        m.insert("lease_until".into(), Val::N(now_secs + self.lease_secs));
        // `result` in the previous release's shape (a rolling deploy's old instances can resume it).
        let legacy = LegacyResult { group_id: known_group, received: job.received, ..Default::default() };
        m.insert("result".into(), Val::S(serde_json::to_string(&legacy).unwrap_or_default()));
        m.insert(attr::TTL.into(), Val::N(now_secs + self.dedupe_secs));
        m
    }

    /// Saves the event (or finds out it is a duplicate / in flight / to be resumed).
    pub async fn begin(&self, job: &SaveJob, now_secs: i64) -> Result<Begin, StoreError> {
        self.begin_with(job, now_secs, None).await
    }

    /// [`EventSaver::begin`] with the hash read [`EventSaver::prefetch`] made (on a cold Lambda,
    /// concurrently with the DSN key check).
    pub async fn begin_with(
        &self,
        job: &SaveJob,
        now_secs: i64,
        prefetched: Option<Prefetch>,
    ) -> Result<Begin, StoreError> {
        let grouped = job.kind != SaveKind::Transaction;
        let known_group = if grouped { prefetched.as_ref().and_then(|p| p.group) } else { None };
        let attempt = crate::ports::random_hex_id(self.random.as_ref());
        let marker =
            self.table.put_or_get(self.marker_item(job, now_secs, known_group, &attempt), Cond::NotExists);
        let decide = async {
            if grouped { self.decide(job, now_secs, prefetched, false).await.map(Some) } else { Ok(None) }
        };
        // Release / environment rows that do not need the group (its release row is written by `decide`).
        let assoc = self.upsert_associations(job);
        let (marker, decision, assoc) = tokio::join!(marker, decide, assoc);
        let marker = match marker? {
            PutOutcome::Refused(Some(m)) if m.opt_s("attempt") == Some(attempt.as_str()) => {
                PutOutcome::Written
            }
            other => other,
        };
        match marker {
            PutOutcome::Written => {
                let saved = async {
                    assoc?;
                    match decision? {
                        Some(d) => Ok(Some(self.finish_decision(job, d).await?)),
                        None => Ok(None),
                    }
                };
                let group = self.or_release_lease(job, saved.await).await?;
                Ok(Begin::Saved(SaveResult { group, received: job.received }))
            }
            PutOutcome::Refused(old) => match self.existing_marker(job, now_secs, old).await? {
                Taken::Answer(b) => Ok(b),
                Taken::Legacy(r) => Ok(Begin::Resume(r)),
                Taken::Resume { received } => {
                    let resumed = async {
                        assoc?;
                        if !grouped {
                            return Ok(None);
                        }
                        // Recompute with fresh reads: the stamps give the first attempt's answers.
                        let d = self.decide(job, now_secs, None, true).await?;
                        Ok(Some(self.finish_decision(job, d).await?))
                    };
                    let group = self.or_release_lease(job, resumed.await).await?;
                    Ok(Begin::Resume(SaveResult { group, received }))
                }
            },
        }
    }

    /// After this request took the event's lease: on an error, release it at once (as a failed publish
    /// does), so the client's retry resumes now instead of waiting for the lease to expire.
    async fn or_release_lease<T>(&self, job: &SaveJob, r: Result<T, StoreError>) -> Result<T, StoreError> {
        if r.is_err() {
            let _ = self.abandon(job.project.id, &job.event_id).await;
        }
        r
    }

    /// Writes the regression (after the marker proved the event new) and gives the record's flags.
    async fn finish_decision(&self, job: &SaveJob, d: Decision) -> Result<GroupState, StoreError> {
        let is_regression = match d.regression {
            Regression::No => false,
            Regression::Mine => true,
            Regression::Candidate => self.regress(job, d.group).await?,
        };
        Ok(GroupState {
            id: d.group,
            is_new: d.is_new,
            is_regression,
            is_new_group_environment: d.is_new_env,
        })
    }

    /// `_handle_regression`: one event flips a resolved group back to unresolved (stamped with its id).
    async fn regress(&self, job: &SaveJob, g: u64) -> Result<bool, StoreError> {
        let ts = job.timestamp as i64;
        let u = Update::default()
            .set("status", "unresolved")
            .set("substatus", "regressed")
            .set("active_at", ts)
            .set("regressed_by", job.event_id.as_str());
        let cond = Cond::And(vec![Cond::eq("status", "resolved"), Cond::Lt("active_at".into(), ts - 5)]);
        let won = self.table.update_returning(keys::group(g), u, Some(cond)).await?;
        let snap = match won {
            Some(item) => parse_snap(&item, ts),
            None => match self.table.get(&keys::group(g)).await? {
                Some(item) => parse_snap(&item, ts),
                None => return Ok(false),
            },
        };
        let mine = snap.regressed_by.as_deref() == Some(job.event_id.as_str());
        if let Ok(mut w) = self.warm.lock() {
            bounded_insert(&mut w.groups, g, snap);
        }
        Ok(mine)
    }

    /// Reads the group hash items of an event (its own keys and the previous release's) — reads only,
    /// so it can run before the DSN key is checked. A Lambda that knows the group reads nothing.
    pub async fn prefetch(&self, project_id: u64, hashes: &[String]) -> Result<Prefetch, StoreError> {
        if let Some((g, first_event)) = self.cached_group(project_id, hashes) {
            let unmapped = self.uncached_hashes(project_id, hashes);
            return Ok(Prefetch { group: Some(g), first_event, unmapped });
        }
        if hashes.is_empty() {
            return Ok(Prefetch::default());
        }
        let mut read: Vec<Key> = hashes.iter().map(|hh| keys::group_hash(project_id, hh)).collect();
        read.extend(hashes.iter().map(|hh| keys::legacy_group_hash(project_id, hh)));
        let items = self.table.get_many(&read).await?;
        let (own, legacy) = items.split_at(hashes.len());
        let found = own
            .iter()
            .find_map(|i| {
                i.as_ref().and_then(|i| i.opt_n("group_id").map(|g| (g as u64, i.opt_s("first_event"))))
            })
            .or_else(|| {
                legacy
                    .iter()
                    .find_map(|i| i.as_ref().and_then(|i| i.opt_n("group_id")).map(|g| (g as u64, None)))
            });
        let unmapped: Vec<String> =
            hashes.iter().zip(own).filter(|(_, i)| i.is_none()).map(|(hh, _)| hh.clone()).collect();
        if let (Some((g, _)), Ok(mut w)) = (found, self.warm.lock()) {
            for (hh, it) in hashes.iter().zip(own) {
                if let Some(it) = it {
                    let first_event = it.opt_s("first_event").map(str::to_owned);
                    bounded_insert(&mut w.hashes, (project_id, hh.clone()), (g, first_event));
                }
            }
        }
        Ok(Prefetch {
            group: found.map(|(g, _)| g),
            first_event: found.and_then(|(_, e)| e.map(str::to_owned)),
            unmapped,
        })
    }

    fn cached_group(&self, project_id: u64, hashes: &[String]) -> Option<(u64, Option<String>)> {
        let w = self.warm.lock().ok()?;
        hashes.iter().find_map(|hh| w.hashes.get(&(project_id, hh.clone())).cloned())
    }

    fn uncached_hashes(&self, project_id: u64, hashes: &[String]) -> Vec<String> {
        let Ok(w) = self.warm.lock() else { return hashes.to_vec() };
        hashes.iter().filter(|hh| !w.hashes.contains_key(&(project_id, (*hh).clone()))).cloned().collect()
    }

    fn forget_hashes(&self, pid: u64, hashes: &[String]) {
        if let Ok(mut w) = self.warm.lock() {
            for hh in hashes {
                w.hashes.remove(&(pid, hh.clone()));
            }
        }
    }

    /// The group-level decisions of one event: which group (creating it if new), whether the group
    /// environment is new, and whether the event may regress the group. `fresh` ignores the warm cache
    /// (a resumed publish recomputes from the stamps).
    async fn decide(
        &self,
        job: &SaveJob,
        now_secs: i64,
        mut prefetched: Option<Prefetch>,
        fresh: bool,
    ) -> Result<Decision, StoreError> {
        let pid = job.project.id;
        let ts = job.timestamp as i64;
        let env = job.environment.as_str();
        let me = job.event_id.as_str();
        if fresh {
            self.forget_hashes(pid, &job.hashes);
        }
        for _ in 0..4 {
            let pre = match prefetched.take() {
                Some(p) => p,
                None => self.prefetch(pid, &job.hashes).await?,
            };
            let Some(g) = pre.group else {
                if job.hashes.is_empty() {
                    return Err(StoreError::Rejected("a grouped event without hashes".into()));
                }
                let g = random_id(self.random.as_ref());
                let mut ops = vec![WriteOp::Put { item: group_item(g, job), cond: Some(Cond::NotExists) }];
                for hh in &job.hashes {
                    ops.push(hash_put(pid, hh, g, me));
                }
                ops.push(genv_put(g, env, job));
                if let Some(version) = job.release.as_deref() {
                    let mut r = item(&keys::group_release(g, version, env));
                    r.insert("version".into(), Val::S(version.to_owned()));
                    r.insert("environment".into(), Val::S(env.to_owned()));
                    r.insert("project_id".into(), Val::N(pid as i64));
                    r.insert("first_seen".into(), Val::N(ts));
                    r.insert("last_seen".into(), Val::N(ts));
                    ops.push(WriteOp::Put { item: r, cond: None });
                }
                match self.table.transact(ops).await? {
                    TxOutcome::Committed => {
                        if let Ok(mut w) = self.warm.lock() {
                            for hh in &job.hashes {
                                bounded_insert(&mut w.hashes, (pid, hh.clone()), (g, Some(me.to_owned())));
                            }
                            let snap = GroupSnap {
                                status: "unresolved".into(),
                                active_at: ts,
                                regressed_by: None,
                                read_at: now_secs,
                            };
                            bounded_insert(&mut w.groups, g, snap);
                        }
                        let mut known = vec![keys::group_env(g, env)];
                        if let Some(version) = job.release.as_deref() {
                            known.push(keys::group_release(g, version, env));
                        }
                        self.remember(&known, ts);
                        return Ok(Decision {
                            group: g,
                            is_new: true,
                            is_new_env: true,
                            regression: Regression::No,
                        });
                    }
                    // Another event created the group (or mapped a hash) first: read the hashes again.
                    TxOutcome::ConditionFailed { .. } => continue,
                }
            };
            let is_new = pre.first_event.as_deref() == Some(me);
            let genv_key = keys::group_env(g, env);
            let map_hashes = async {
                let puts = pre
                    .unmapped
                    .iter()
                    .map(|hh| self.table.put_or_get(hash_item(pid, hh, g, me), Cond::NotExists));
                let outcomes = futures::future::join_all(puts).await;
                let mut learned = Vec::with_capacity(outcomes.len());
                for (hh, r) in pre.unmapped.iter().zip(outcomes) {
                    let first_event = match r? {
                        PutOutcome::Written => Some(me.to_owned()),
                        PutOutcome::Refused(old) => {
                            old.and_then(|i| i.opt_s("first_event").map(str::to_owned))
                        }
                    };
                    learned.push((hh.clone(), first_event));
                }
                if let Ok(mut w) = self.warm.lock() {
                    for (hh, first_event) in learned {
                        bounded_insert(&mut w.hashes, (pid, hh), (g, first_event));
                    }
                }
                Ok::<_, StoreError>(())
            };
            let genv = async {
                if !fresh && self.known(&genv_key) {
                    return Ok(false);
                }
                let new = match self.table.put_or_get(genv_item(g, env, job, me), Cond::NotExists).await? {
                    PutOutcome::Written => true,
                    PutOutcome::Refused(old) => old.as_ref().and_then(|i| i.opt_s("first_event")) == Some(me),
                };
                self.remember(std::slice::from_ref(&genv_key), i64::MIN);
                Ok::<_, StoreError>(new)
            };
            let status = async {
                let cached = self.warm.lock().ok().and_then(|w| w.groups.get(&g).cloned());
                match cached {
                    Some(s) if !fresh && now_secs < s.read_at + self.status_ttl_secs => Ok(Some(s)),
                    _ => {
                        let item = self.table.get(&keys::group(g)).await?;
                        let snap = item.map(|i| parse_snap(&i, now_secs));
                        if let (Some(s), Ok(mut w)) = (&snap, self.warm.lock()) {
                            bounded_insert(&mut w.groups, g, s.clone());
                        }
                        Ok::<_, StoreError>(snap)
                    }
                }
            };
            let release_row = async {
                match job.release.as_deref() {
                    Some(version) => {
                        let key = keys::group_release(g, version, env);
                        if self.known_recent(&key, ts) {
                            return Ok(());
                        }
                        let u = Update::default()
                            .set("version", version)
                            .set("environment", env)
                            .set("project_id", pid as i64)
                            .set_if_absent("first_seen", ts)
                            .set("last_seen", ts);
                        self.table.update_returning(key.clone(), u, None).await?;
                        self.remember(&[key], ts);
                        Ok::<_, StoreError>(())
                    }
                    None => Ok(()),
                }
            };
            let (mapped, is_new_env, snap, release_row) = tokio::join!(map_hashes, genv, status, release_row);
            mapped?;
            release_row?;
            let is_new_env = is_new_env?;
            let Some(snap) = snap? else {
                // A hash without its group (deleted by hand): forget it and decide again.
                self.forget_hashes(pid, &job.hashes);
                continue;
            };
            let regression = if snap.regressed_by.as_deref() == Some(me) {
                Regression::Mine
            } else if snap.status == "resolved" && snap.active_at < ts - 5 {
                Regression::Candidate
            } else {
                Regression::No
            };
            return Ok(Decision { group: g, is_new, is_new_env, regression });
        }
        Err(StoreError::Unavailable {
            service: "dynamodb",
            message: "group decisions kept conflicting".into(),
        })
    }

    /// The marker exists: duplicate, in flight, or resumable (the lease taken over).
    async fn existing_marker(
        &self,
        job: &SaveJob,
        now_secs: i64,
        m: Option<Item>,
    ) -> Result<Taken, StoreError> {
        let key = keys::marker(job.project.id, &job.event_id);
        let Some(m) = m else {
            // It expired between the put and now: treat as in flight; the retry writes a new one.
            return Ok(Taken::Answer(Begin::InFlight));
        };
        if m.opt_s("state") == Some("streamed") || m.contains_key("counted") {
            return Ok(Taken::Answer(Begin::Duplicate));
        }
        let lease = m.opt_n("lease_until").unwrap_or(0);
        if lease > now_secs {
            return Ok(Taken::Answer(Begin::InFlight));
        }
        let taken = self
            .table
            .update_returning(
                key,
                Update::default().set("lease_until", now_secs + self.lease_secs),
                Some(Cond::And(vec![
                    Cond::eq("state", "saving"),
                    Cond::eq("lease_until", lease),
                    Cond::attr_not_exists("counted"),
                ])),
            )
            .await?;
        if taken.is_none() {
            return Ok(Taken::Answer(Begin::InFlight));
        }
        let stored: LegacyResult = m
            .opt_s("result")
            .and_then(|r| serde_json::from_str(r).ok())
            .ok_or_else(|| StoreError::corrupt("event marker without its result"))?;
        if m.opt_n("v").unwrap_or(1) >= MARKER_VERSION {
            return Ok(Taken::Resume { received: stored.received });
        }
        Ok(Taken::Legacy(SaveResult {
            group: stored.group_id.map(|id| GroupState {
                id,
                is_new: stored.is_new,
                is_regression: stored.is_regression,
                is_new_group_environment: stored.is_new_group_environment,
            }),
            received: stored.received,
        }))
    }

    /// Publishing failed: release the lease so the client's retry resumes at once.
    pub async fn abandon(&self, project_id: u64, event_id: &str) -> Result<(), StoreError> {
        self.table
            .update_returning(
                keys::marker(project_id, event_id),
                Update::default().set("lease_until", 0i64),
                Some(Cond::eq("state", "saving")),
            )
            .await?;
        Ok(())
    }

    /// Resolves a group (there is no UI here): the next event after 5 s is a regression. Other warm
    /// Lambdas see it within [`STATUS_TTL_SECS`]; this one at once.
    pub async fn resolve_group(&self, group_id: u64) -> Result<bool, StoreError> {
        let out = self
            .table
            .update_returning(
                keys::group(group_id),
                Update::default().set("status", "resolved").set("substatus", "resolved"),
                Some(Cond::Exists),
            )
            .await?;
        if let Ok(mut w) = self.warm.lock() {
            w.groups.remove(&group_id);
        }
        Ok(out.is_some())
    }

    /// Forgets everything this Lambda learned (tests: a fresh instance over the same table).
    pub fn forget_all(&self) -> Result<(), StoreError> {
        let mut w = self.warm.lock().map_err(|_| lock_err())?;
        *w = Warm::default();
        Ok(())
    }
}

enum Taken {
    Answer(Begin),
    /// A marker of the previous release: its stored flags.
    Legacy(SaveResult),
    /// A marker of this release: recompute the decisions.
    Resume {
        received: f64,
    },
}

fn parse_snap(i: &Item, read_at: i64) -> GroupSnap {
    GroupSnap {
        status: i.opt_s("status").unwrap_or("unresolved").to_owned(),
        active_at: i.opt_n("active_at").unwrap_or(0),
        regressed_by: i.opt_s("regressed_by").map(str::to_owned),
        read_at,
    }
}

fn hash_item(project: u64, hash: &str, group: u64, first_event: &str) -> Item {
    let mut i = item(&keys::group_hash(project, hash));
    i.insert("group_id".into(), Val::N(group as i64));
    i.insert("hash".into(), Val::S(hash.to_owned()));
    i.insert("project_id".into(), Val::N(project as i64));
    i.insert("first_event".into(), Val::S(first_event.to_owned()));
    i
}

fn hash_put(project: u64, hash: &str, group: u64, first_event: &str) -> WriteOp {
    WriteOp::Put { item: hash_item(project, hash, group, first_event), cond: Some(Cond::NotExists) }
}

fn genv_item(group: u64, env: &str, job: &SaveJob, first_event: &str) -> Item {
    let mut i = item(&keys::group_env(group, env));
    i.insert("environment".into(), Val::S(env.to_owned()));
    i.insert("first_seen".into(), Val::N(job.timestamp as i64));
    i.insert("first_event".into(), Val::S(first_event.to_owned()));
    if let Some(r) = &job.release {
        i.insert("first_release".into(), Val::S(r.clone()));
    }
    i
}

fn genv_put(group: u64, env: &str, job: &SaveJob) -> WriteOp {
    WriteOp::Put { item: genv_item(group, env, job, &job.event_id), cond: Some(Cond::NotExists) }
}

/// The group row as created. `times_seen`, `last_seen` and the short id come from the aggregation
/// (its rows under the same partition; see [`super::aggregate::group_view`]).
fn group_item(id: u64, job: &SaveJob) -> Item {
    let ts = job.timestamp as i64;
    let g = &job.group;
    let mut i = item(&keys::group(id));
    i.insert("group_id".into(), Val::N(id as i64));
    i.insert("project_id".into(), Val::N(job.project.id as i64));
    i.insert("times_seen".into(), Val::N(0));
    i.insert("first_seen".into(), Val::N(ts));
    i.insert("last_seen".into(), Val::N(ts));
    i.insert("active_at".into(), Val::N(ts));
    i.insert("status".into(), Val::S("unresolved".into()));
    i.insert("substatus".into(), Val::S("new".into()));
    i.insert("level".into(), Val::N(g.level));
    i.insert("culprit".into(), Val::S(g.culprit.clone()));
    i.insert("message".into(), Val::S(g.message.clone()));
    i.insert("title".into(), Val::S(g.title.clone()));
    i.insert("title_is_placeholder".into(), Val::Bool(g.title_is_placeholder));
    i.insert("type".into(), Val::S(g.event_type.clone()));
    i.insert("metadata".into(), Val::S(g.metadata.to_string()));
    i.insert("platform".into(), Val::S(g.platform.clone()));
    i.insert("logger".into(), Val::S(g.logger.clone()));
    i.insert("first_event".into(), Val::S(job.event_id.clone()));
    if let Some(r) = &job.release {
        i.insert("first_release".into(), Val::S(r.clone()));
    }
    i
}
