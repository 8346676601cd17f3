//! Saving an event: releases, environments, groups, de-duplication — the table side of
//! `EventManager.save`. The stream side (building and publishing the eventstream record) is the
//! caller's; this module gives it a lease to publish under and records when it did.
//!
//! ## No lost events, no double counting: the event marker
//!
//! Every event id gets a marker item `EVT#{project}#{event_id}` (TTL 1 h, Sentry's de-duplication
//! window) written **in the same transaction** as the group counters (`times_seen`, `new_groups`,
//! `new_issues_count`, …). Its `state` is `saving` while the caller holds a publishing lease
//! (`lease_until`), then `streamed` once the record is on the stream ([`EventSaver::finish`]):
//!
//! | marker found | meaning | answer |
//! |---|---|---|
//! | none | a new event | transaction (counts once, guarded by `attribute_not_exists`), publish, `finish` |
//! | `streamed` | a duplicate within the hour | 200 with the same id; nothing saved or streamed |
//! | `saving`, lease running | the same event is being published right now | 503 + `Retry-After` |
//! | `saving`, lease expired | an earlier attempt saved but did not publish (stream failure, timeout) | take the lease over (conditional update), re-publish the record rebuilt from the marker's flags, `finish` — counters are not touched again |
//!
//! A publish failure releases the lease at once ([`EventSaver::abandon`]) so the SDK's retry (after
//! the 503) resumes immediately. The only duplicate a consumer can see is a record published whose
//! `finish` then failed and whose lease expired before a retry: at-least-once, never lost.
//!
//! ## Round trips
//! Warm Lambda, known group and release/environment: 1 transaction (+ the caller's `PutRecords` and
//! `finish`). Cold: one concurrent `BatchGetItem` of the group hashes, the group and the group
//! environment first; a brand-new group adds one `UpdateItem` (its short id).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use md5::{Digest, Md5};
use serde_json::Value;

use super::item::{Item, ItemExt, Key, Val, item};
use super::table::{Cond, Table, TxOutcome, Update, WriteOp};
use crate::domain::project::Project;
use crate::error::StoreError;
use crate::ports::Random;

/// De-duplication window (Sentry's ingest consumer remembers event ids for one hour).
pub const DEDUPE_TTL_SECS: i64 = 3600;
/// How long a publisher owns an event before a retry may take it over (longer than a Lambda timeout).
pub const LEASE_SECS: i64 = 30;

fn h(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

pub mod keys {
    use super::{Key, h};

    pub fn marker(project: u64, event_id: &str) -> Key {
        Key::new(format!("EVT#{project}#{event_id}"), "MARK")
    }
    pub fn group(id: u64) -> Key {
        Key::new(format!("GROUP#{id}"), "GROUP")
    }
    pub fn group_hash(project: u64, hash: &str) -> Key {
        Key::new(format!("PROJECT#{project}"), format!("HASH#{hash}"))
    }
    pub fn group_env(group: u64, env: &str) -> Key {
        Key::new(format!("GROUP#{group}"), format!("ENV#{}", h(env)))
    }
    pub fn group_release(group: u64, version: &str, env: &str) -> Key {
        Key::new(format!("GROUP#{group}"), format!("REL#{}#{}", h(version), h(env)))
    }
    pub fn release(org: u64, version: &str) -> Key {
        Key::new(format!("ORG#{org}"), format!("RELEASE#{}", h(version)))
    }
    pub fn release_project(project: u64, version: &str) -> Key {
        Key::new(format!("PROJECT#{project}"), format!("RELEASE#{}", h(version)))
    }
    pub fn environment(org: u64, name: &str) -> Key {
        Key::new(format!("ORG#{org}"), format!("ENV#{}", h(name)))
    }
    pub fn environment_project(project: u64, name: &str) -> Key {
        Key::new(format!("PROJECT#{project}"), format!("ENV#{}", h(name)))
    }
    pub fn release_environment(org: u64, version: &str, env: &str) -> Key {
        Key::new(format!("ORG#{org}"), format!("RELENV#{}#{}", h(version), h(env)))
    }
    pub fn release_project_environment(project: u64, version: &str, env: &str) -> Key {
        Key::new(format!("PROJECT#{project}"), format!("RPE#{}#{}", h(version), h(env)))
    }
    pub fn short_id_counter(project: u64) -> Key {
        Key::new(format!("PROJECT#{project}"), "SHORTID")
    }
}

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

/// The flags the eventstream record carries (`job["groups"][0]`).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SaveResult {
    pub group_id: Option<u64>,
    pub short_id: Option<i64>,
    pub is_new: bool,
    pub is_regression: bool,
    pub is_new_group_environment: bool,
    /// The `received` of the attempt that saved (a resumed publish reuses it).
    pub received: f64,
}

/// Read ahead of the save (see [`EventSaver::prefetch`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Prefetch {
    pub group: Option<u64>,
    pub short_id: Option<i64>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Begin {
    /// Saved now; the caller holds the lease: publish, then `finish` (or `abandon`).
    Saved(SaveResult),
    /// Saved by an earlier attempt that did not publish; the caller took the lease: publish, `finish`.
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
    last_seen: i64,
    title_is_placeholder: bool,
}

/// What a warm Lambda knows exists (bounded; cleared when full).
#[derive(Default)]
struct Warm {
    hashes: HashMap<(u64, String), u64>,
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

/// `last_seen` of associations is re-written only when the event is at least this much newer (Sentry
/// throttles these bumps the same way).
const BUMP_SECS: i64 = 60;

/// The event saver over a table, with its warm cache.
pub struct EventSaver {
    table: Arc<dyn Table>,
    random: Arc<dyn Random>,
    warm: Mutex<Warm>,
    lease_secs: i64,
}

fn random_id(random: &dyn Random) -> u64 {
    let mut b = [0u8; 8];
    random.fill(&mut b);
    (u64::from_be_bytes(b) & ((1 << 53) - 1)).max(1)
}

impl EventSaver {
    pub fn new(table: Arc<dyn Table>, random: Arc<dyn Random>) -> Self {
        Self { table, random, warm: Mutex::new(Warm::default()), lease_secs: LEASE_SECS }
    }

    /// The publishing lease (default [`LEASE_SECS`]); it must outlast the function's timeout.
    pub fn with_lease_secs(mut self, secs: i64) -> Self {
        self.lease_secs = secs.max(1);
        self
    }

    fn known_recent(&self, key: &Key, ts: i64) -> bool {
        self.warm
            .lock()
            .ok()
            .and_then(|w| w.known.get(key).copied())
            .is_some_and(|last| ts < last + BUMP_SECS)
    }

    fn remember(&self, keys: &[Key], ts: i64) {
        if let Ok(mut w) = self.warm.lock() {
            for k in keys {
                let cur = w.known.get(k).copied().unwrap_or(i64::MIN);
                bounded_insert(&mut w.known, k.clone(), cur.max(ts));
            }
        }
    }

    /// The release / environment associations of an event, as idempotent upserts, skipped when a warm
    /// Lambda wrote them recently. Counters (`new_groups`, `new_issues_count`) force the write.
    fn association_ops(
        &self,
        job: &SaveJob,
        group: Option<u64>,
        is_new: bool,
        is_new_env: bool,
    ) -> (Vec<WriteOp>, Vec<Key>) {
        let ts = job.timestamp as i64;
        let p = &job.project;
        let env = job.environment.as_str();
        let mut ops = Vec::new();
        let mut keys = Vec::new();
        let mut upsert = |key: Key, mut u: Update, force: bool, ops: &mut Vec<WriteOp>| {
            if !force && self.known_recent(&key, ts) {
                return;
            }
            u = u.set_if_absent("first_seen", ts).set("last_seen", ts);
            keys.push(key.clone());
            ops.push(WriteOp::Update { key, update: u, cond: None });
        };
        upsert(
            keys::environment(p.organization_id, env),
            Update::default().set("name", env).set("org_id", p.organization_id as i64),
            false,
            &mut ops,
        );
        upsert(
            keys::environment_project(p.id, env),
            Update::default().set("name", env).set("project_id", p.id as i64),
            false,
            &mut ops,
        );
        if let Some(version) = job.release.as_deref() {
            upsert(
                keys::release(p.organization_id, version),
                Update::default()
                    .set("version", version)
                    .set("org_id", p.organization_id as i64)
                    .set_if_absent("date_added", ts),
                false,
                &mut ops,
            );
            let mut rp = Update::default().set("version", version).set("project_id", p.id as i64);
            if is_new {
                rp = rp.add("new_groups", 1);
            }
            upsert(keys::release_project(p.id, version), rp, is_new, &mut ops);
            upsert(
                keys::release_environment(p.organization_id, version, env),
                Update::default().set("version", version).set("environment", env),
                false,
                &mut ops,
            );
            let mut rpe = Update::default()
                .set("version", version)
                .set("environment", env)
                .set("project_id", p.id as i64);
            if is_new_env {
                rpe = rpe.add("new_issues_count", 1);
            }
            upsert(keys::release_project_environment(p.id, version, env), rpe, is_new_env, &mut ops);
            if let Some(g) = group {
                upsert(
                    keys::group_release(g, version, env),
                    Update::default()
                        .set("version", version)
                        .set("environment", env)
                        .set("project_id", p.id as i64),
                    false,
                    &mut ops,
                );
            }
        }
        (ops, keys)
    }

    fn marker_op(&self, job: &SaveJob, result: &SaveResult, now_secs: i64) -> WriteOp {
        let mut m = item(&keys::marker(job.project.id, &job.event_id));
        m.insert("state".into(), Val::S("saving".into()));
        m.insert("lease_until".into(), Val::N(now_secs + self.lease_secs));
        m.insert("result".into(), Val::S(serde_json::to_string(result).unwrap_or_default()));
        m.insert(super::attr::TTL.into(), Val::N(now_secs + DEDUPE_TTL_SECS));
        WriteOp::Put { item: m, cond: Some(Cond::NotExists) }
    }

    /// Saves the event (or finds out it is a duplicate / in flight / to be resumed).
    pub async fn begin(&self, job: &SaveJob, now_secs: i64) -> Result<Begin, StoreError> {
        self.begin_with(job, now_secs, None).await
    }

    /// [`EventSaver::begin`] with what [`EventSaver::prefetch`] read (on the first attempt).
    pub async fn begin_with(
        &self,
        job: &SaveJob,
        now_secs: i64,
        mut prefetched: Option<Prefetch>,
    ) -> Result<Begin, StoreError> {
        for _ in 0..6 {
            let attempt = match job.kind {
                SaveKind::Transaction => self.try_transaction(job, now_secs).await?,
                SaveKind::Error | SaveKind::Generic => {
                    self.try_grouped(job, now_secs, prefetched.take()).await?
                }
            };
            match attempt {
                Attempt::Done(b) => return Ok(b),
                Attempt::Retry => continue,
            }
        }
        Err(StoreError::Unavailable { service: "dynamodb", message: "event save kept conflicting".into() })
    }

    async fn try_transaction(&self, job: &SaveJob, now_secs: i64) -> Result<Attempt, StoreError> {
        let result = SaveResult { received: job.received, ..Default::default() };
        let mut ops = vec![self.marker_op(job, &result, now_secs)];
        let (assoc, keys) = self.association_ops(job, None, false, false);
        ops.extend(assoc);
        match self.table.transact(ops).await? {
            TxOutcome::Committed => {
                self.remember(&keys, job.timestamp as i64);
                Ok(Attempt::Done(Begin::Saved(result)))
            }
            out if out.failed_at(0) => self.existing_marker(job, now_secs).await,
            _ => Ok(Attempt::Retry),
        }
    }

    /// What to read before saving, concurrently with the DSN key check: the group hash items (reads
    /// only) and — when `authorized` says the caller's key is already known to be valid (a warm key
    /// cache), since the group may be new — a short id allocated speculatively (an unused one is a gap
    /// in the sequence, as Sentry's sequence has gaps too). Nothing is written for a request whose key
    /// has not been checked. A Lambda that knows the group reads nothing.
    pub async fn prefetch(
        &self,
        project_id: u64,
        hashes: &[String],
        authorized: bool,
    ) -> Result<Prefetch, StoreError> {
        if let Some(g) = self.cached_group(project_id, hashes) {
            return Ok(Prefetch { group: Some(g), short_id: None });
        }
        if !authorized {
            return Ok(Prefetch { group: self.lookup_hashes(project_id, hashes).await?, short_id: None });
        }
        let (group, short_id) =
            tokio::try_join!(self.lookup_hashes(project_id, hashes), self.allocate_short_id(project_id))?;
        Ok(Prefetch { group, short_id: if group.is_some() { None } else { short_id } })
    }

    async fn allocate_short_id(&self, project_id: u64) -> Result<Option<i64>, StoreError> {
        Ok(self
            .table
            .update_returning(keys::short_id_counter(project_id), Update::default().add("counter", 1), None)
            .await?
            .and_then(|i| i.opt_n("counter")))
    }

    /// Reads the group hash items of an event; the group id, if any hash is mapped.
    pub async fn lookup_hashes(&self, project_id: u64, hashes: &[String]) -> Result<Option<u64>, StoreError> {
        if let Some(g) = self.cached_group(project_id, hashes) {
            return Ok(Some(g));
        }
        if hashes.is_empty() {
            return Ok(None);
        }
        let read: Vec<Key> = hashes.iter().map(|hh| keys::group_hash(project_id, hh)).collect();
        let items = self.table.get_many(&read).await?;
        let found = items.iter().find_map(|i| i.as_ref().and_then(|i| i.opt_n("group_id"))).map(|g| g as u64);
        if let (Some(g), Ok(mut w)) = (found, self.warm.lock()) {
            for (hh, it) in hashes.iter().zip(&items) {
                if it.is_some() {
                    bounded_insert(&mut w.hashes, (project_id, hh.clone()), g);
                }
            }
        }
        Ok(found)
    }

    fn cached_group(&self, project_id: u64, hashes: &[String]) -> Option<u64> {
        let w = self.warm.lock().ok()?;
        hashes.iter().find_map(|hh| w.hashes.get(&(project_id, hh.clone())).copied())
    }

    async fn try_grouped(
        &self,
        job: &SaveJob,
        now_secs: i64,
        prefetched: Option<Prefetch>,
    ) -> Result<Attempt, StoreError> {
        let pid = job.project.id;
        let ts = job.timestamp as i64;
        let env = job.environment.as_str();
        let (group_id, mut short_id) = match prefetched {
            Some(p) => (p.group, p.short_id),
            None => (self.lookup_hashes(pid, &job.hashes).await?, None),
        };
        let (mapped, snap, genv_known) = match group_id {
            Some(g) => {
                let w = self
                    .warm
                    .lock()
                    .map_err(|_| StoreError::Other { service: "memory", message: "lock poisoned".into() })?;
                let mapped: Vec<String> = job
                    .hashes
                    .iter()
                    .filter(|hh| w.hashes.contains_key(&(pid, (*hh).clone())))
                    .cloned()
                    .collect();
                (mapped, w.groups.get(&g).cloned(), w.known.contains_key(&keys::group_env(g, env)))
            }
            None => (Vec::new(), None, false),
        };

        let (ops, result, assoc_keys, learn) = match group_id {
            Some(g) => {
                // Without a snapshot, assume the common case (unresolved); the condition catches the rest.
                let snap = snap.unwrap_or(GroupSnap {
                    status: "unresolved".into(),
                    active_at: i64::MIN,
                    last_seen: ts,
                    title_is_placeholder: true,
                });
                let is_new_env = !genv_known;
                let regression = snap.status == "resolved" && snap.active_at < ts - 5;
                let last_seen = snap.last_seen.max(ts);
                let mut u = Update::default()
                    .add("times_seen", 1)
                    .set("last_seen", last_seen)
                    .set("level", job.group.level)
                    .set("culprit", job.group.culprit.as_str());
                // A placeholder title never replaces a real one (`_get_updated_group_title`).
                if !job.group.title_is_placeholder {
                    u = u
                        .set("title", job.group.title.as_str())
                        .set("title_is_placeholder", false)
                        .set("metadata", job.group.metadata.to_string())
                        .set("message", job.group.message.as_str());
                }
                let cond = if regression {
                    u = u
                        .set("status", "unresolved")
                        .set("substatus", "regressed")
                        .set("active_at", last_seen);
                    Cond::And(vec![Cond::eq("status", "resolved"), Cond::Lt("active_at".into(), ts - 5)])
                } else if snap.status == "resolved" {
                    // Resolved, but re-activated within the last 5 s: counted, not a regression.
                    Cond::And(vec![Cond::eq("status", "resolved"), Cond::Gt("active_at".into(), ts - 6)])
                } else {
                    Cond::eq("status", snap.status.as_str())
                };
                let result = SaveResult {
                    group_id: Some(g),
                    short_id: None,
                    is_new: false,
                    is_regression: regression,
                    is_new_group_environment: is_new_env,
                    received: job.received,
                };
                let mut ops = vec![
                    self.marker_op(job, &result, now_secs),
                    WriteOp::Update { key: keys::group(g), update: u, cond: Some(cond) },
                ];
                for hh in job.hashes.iter().filter(|hh| !mapped.contains(hh)) {
                    ops.push(hash_put(pid, hh, g));
                }
                if is_new_env {
                    ops.push(genv_put(g, env, job));
                }
                let (assoc, keys) = self.association_ops(job, Some(g), false, is_new_env);
                ops.extend(assoc);
                let next = GroupSnap {
                    status: if regression { "unresolved".into() } else { snap.status.clone() },
                    active_at: if regression { last_seen } else { snap.active_at },
                    last_seen,
                    title_is_placeholder: snap.title_is_placeholder && job.group.title_is_placeholder,
                };
                (ops, result, keys, (g, next))
            }
            None => {
                // A new group: only one writer can map the hashes (condition); the others retry as
                // "existing".
                let g = random_id(self.random.as_ref());
                let short_id = match short_id.take() {
                    Some(s) => Some(s),
                    None => self.allocate_short_id(pid).await?,
                };
                let result = SaveResult {
                    group_id: Some(g),
                    short_id,
                    is_new: true,
                    is_regression: false,
                    is_new_group_environment: true,
                    received: job.received,
                };
                let mut ops = vec![
                    self.marker_op(job, &result, now_secs),
                    WriteOp::Put { item: group_item(g, job, short_id), cond: Some(Cond::NotExists) },
                ];
                for hh in &job.hashes {
                    ops.push(hash_put(pid, hh, g));
                }
                ops.push(genv_put(g, env, job));
                let (assoc, keys) = self.association_ops(job, Some(g), true, true);
                ops.extend(assoc);
                let snap = GroupSnap {
                    status: "unresolved".into(),
                    active_at: ts,
                    last_seen: ts,
                    title_is_placeholder: job.group.title_is_placeholder,
                };
                (ops, result, keys, (g, snap))
            }
        };
        let is_existing = !result.is_new;
        let genv_index = ops.iter().position(|op| op.key() == Some(keys::group_env(learn.0, env)));
        match self.table.transact(ops).await? {
            TxOutcome::Committed => {
                if let Ok(mut w) = self.warm.lock() {
                    for hh in &job.hashes {
                        bounded_insert(&mut w.hashes, (pid, hh.clone()), learn.0);
                    }
                    bounded_insert(&mut w.groups, learn.0, learn.1);
                }
                let mut known = assoc_keys;
                known.push(keys::group_env(learn.0, env));
                self.remember(&known, ts);
                Ok(Attempt::Done(Begin::Saved(result)))
            }
            out if out.failed_at(0) => self.existing_marker(job, now_secs).await,
            out => {
                // Lost a race or assumed wrong; learn what is true and retry.
                let status_wrong = is_existing && out.failed_at(1);
                let genv_exists = genv_index.is_some_and(|i| out.failed_at(i));
                if status_wrong {
                    // The group's status differs from the assumption: read it.
                    match self.table.get(&keys::group(learn.0)).await? {
                        Some(gi) => {
                            if let Ok(mut w) = self.warm.lock() {
                                bounded_insert(&mut w.groups, learn.0, parse_snap(&gi));
                            }
                        }
                        None => self.forget_hashes(pid, &job.hashes),
                    }
                }
                if genv_exists {
                    self.remember(&[keys::group_env(learn.0, env)], i64::MIN);
                }
                if !status_wrong && !genv_exists {
                    // Another writer created the group or mapped a hash first: read the hashes again.
                    self.forget_hashes(pid, &job.hashes);
                }
                Ok(Attempt::Retry)
            }
        }
    }

    fn forget_hashes(&self, pid: u64, hashes: &[String]) {
        if let Ok(mut w) = self.warm.lock() {
            for hh in hashes {
                w.hashes.remove(&(pid, hh.clone()));
            }
        }
    }

    /// The marker exists: duplicate, in flight, or resumable.
    async fn existing_marker(&self, job: &SaveJob, now_secs: i64) -> Result<Attempt, StoreError> {
        let key = keys::marker(job.project.id, &job.event_id);
        let Some(m) = self.table.get(&key).await? else { return Ok(Attempt::Retry) };
        if m.opt_s("state") == Some("streamed") {
            return Ok(Attempt::Done(Begin::Duplicate));
        }
        let lease = m.opt_n("lease_until").unwrap_or(0);
        if lease > now_secs {
            return Ok(Attempt::Done(Begin::InFlight));
        }
        let taken = self
            .table
            .update_returning(
                key,
                Update::default().set("lease_until", now_secs + self.lease_secs),
                Some(Cond::And(vec![Cond::eq("state", "saving"), Cond::eq("lease_until", lease)])),
            )
            .await?;
        if taken.is_none() {
            return Ok(Attempt::Retry);
        }
        let result: SaveResult = m
            .opt_s("result")
            .and_then(|r| serde_json::from_str(r).ok())
            .ok_or_else(|| StoreError::corrupt("event marker without its result"))?;
        Ok(Attempt::Done(Begin::Resume(result)))
    }

    /// The record is on the stream: later copies of this event id are duplicates.
    pub async fn finish(&self, project_id: u64, event_id: &str) -> Result<(), StoreError> {
        self.table
            .update_returning(
                keys::marker(project_id, event_id),
                Update::default().set("state", "streamed").remove("lease_until"),
                Some(Cond::Exists),
            )
            .await?;
        Ok(())
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

    /// Resolves a group (there is no UI here): the next event after 5 s is a regression.
    pub async fn resolve_group(&self, group_id: u64) -> Result<bool, StoreError> {
        let out = self
            .table
            .update_returning(
                keys::group(group_id),
                Update::default().set("status", "resolved").set("substatus", "resolved"),
                Some(Cond::Exists),
            )
            .await?;
        Ok(out.is_some())
    }
}

enum Attempt {
    Done(Begin),
    Retry,
}

fn parse_snap(i: &Item) -> GroupSnap {
    GroupSnap {
        status: i.opt_s("status").unwrap_or("unresolved").to_owned(),
        active_at: i.opt_n("active_at").unwrap_or(0),
        last_seen: i.opt_n("last_seen").unwrap_or(0),
        title_is_placeholder: i.b("title_is_placeholder"),
    }
}

fn hash_put(project: u64, hash: &str, group: u64) -> WriteOp {
    let mut i = item(&keys::group_hash(project, hash));
    i.insert("group_id".into(), Val::N(group as i64));
    i.insert("hash".into(), Val::S(hash.to_owned()));
    WriteOp::Put { item: i, cond: Some(Cond::NotExists) }
}

fn genv_put(group: u64, env: &str, job: &SaveJob) -> WriteOp {
    let mut i = item(&keys::group_env(group, env));
    i.insert("environment".into(), Val::S(env.to_owned()));
    i.insert("first_seen".into(), Val::N(job.timestamp as i64));
    if let Some(r) = &job.release {
        i.insert("first_release".into(), Val::S(r.clone()));
    }
    WriteOp::Put { item: i, cond: Some(Cond::NotExists) }
}

fn group_item(id: u64, job: &SaveJob, short_id: Option<i64>) -> Item {
    let ts = job.timestamp as i64;
    let g = &job.group;
    let mut i = item(&keys::group(id));
    i.insert("group_id".into(), Val::N(id as i64));
    i.insert("project_id".into(), Val::N(job.project.id as i64));
    if let Some(s) = short_id {
        i.insert("short_id".into(), Val::N(s));
    }
    i.insert("times_seen".into(), Val::N(1));
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
    if let Some(r) = &job.release {
        i.insert("first_release".into(), Val::S(r.clone()));
    }
    i
}
