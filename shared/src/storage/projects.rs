//! Projects and DSN keys on the table, and the warm-Lambda key cache.
//!
//! The key item carries a copy of its project, so authenticating an ingest request is one `GetItem`
//! (and zero on a warm Lambda within the cache TTL).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::item::{Item, ItemExt, Val, item};
use super::table::Table;
use crate::domain::project::{Project, ProjectKey};
use crate::error::StoreError;

use super::keys::{dsn_key, project as project_key};

fn put_project(i: &mut Item, p: &Project) {
    i.insert("project_id".into(), Val::N(p.id as i64));
    i.insert("org_id".into(), Val::N(p.organization_id as i64));
    i.insert("project_slug".into(), Val::S(p.slug.clone()));
    if let Some(pl) = &p.platform {
        i.insert("platform".into(), Val::S(pl.clone()));
    }
    // Grouping rules ride on the key item too, so authenticating loads them (absent = none).
    if !p.grouping_enhancements.is_empty() {
        i.insert("grouping_enhancements".into(), Val::S(p.grouping_enhancements.clone()));
    }
    if !p.fingerprinting_rules.is_empty() {
        i.insert("fingerprinting_rules".into(), Val::S(p.fingerprinting_rules.clone()));
    }
}

pub fn project_item(p: &Project) -> Item {
    let mut i = item(&project_key(p.id));
    put_project(&mut i, p);
    i
}

pub fn key_item(k: &ProjectKey) -> Item {
    let mut i = item(&dsn_key(&k.public_key));
    put_project(&mut i, &k.project);
    i.insert("key_id".into(), Val::N(k.key_id as i64));
    i.insert("public_key".into(), Val::S(k.public_key.clone()));
    i.insert("active".into(), Val::Bool(k.active));
    i
}

fn parse_project(i: &Item) -> Result<Project, StoreError> {
    Ok(Project {
        id: i.n("project_id")? as u64,
        organization_id: i.n("org_id")? as u64,
        slug: i.s("project_slug")?.to_owned(),
        platform: i.opt_s("platform").map(str::to_owned),
        grouping_enhancements: i.opt_s("grouping_enhancements").unwrap_or_default().to_owned(),
        fingerprinting_rules: i.opt_s("fingerprinting_rules").unwrap_or_default().to_owned(),
    })
}

pub fn parse_key(i: &Item) -> Result<ProjectKey, StoreError> {
    Ok(ProjectKey {
        public_key: i.s("public_key")?.to_owned(),
        key_id: i.n("key_id")? as u64,
        project: parse_project(i)?,
        active: i.b("active"),
    })
}

/// Looks up DSN keys with a per-warm-Lambda cache (positive and negative answers) of bounded size and a
/// short TTL, so a disabled key stops working within `ttl` everywhere.
pub struct KeyCache {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<String, (Option<ProjectKey>, Instant)>>,
}

impl KeyCache {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self { ttl, capacity: capacity.max(1), entries: Mutex::new(HashMap::new()) }
    }

    /// The cached answer for `public_key`, if fresh (no I/O).
    pub fn cached(&self, public_key: &str) -> Option<Option<ProjectKey>> {
        let m = self.entries.lock().ok()?;
        let (k, at) = m.get(public_key)?;
        (at.elapsed() < self.ttl).then(|| k.clone())
    }

    pub async fn get(&self, table: &dyn Table, public_key: &str) -> Result<Option<ProjectKey>, StoreError> {
        if let Ok(m) = self.entries.lock()
            && let Some((k, at)) = m.get(public_key)
            && at.elapsed() < self.ttl
        {
            return Ok(k.clone());
        }
        let found = table.get(&dsn_key(public_key)).await?.map(|i| parse_key(&i)).transpose()?;
        if let Ok(mut m) = self.entries.lock() {
            if m.len() >= self.capacity {
                // Bounded: drop expired entries and unknown keys first (a flood of made-up keys
                // must not evict the keys real SDKs use), and everything if that is not enough.
                let ttl = self.ttl;
                m.retain(|_, (k, at)| k.is_some() && at.elapsed() < ttl);
                if m.len() >= self.capacity {
                    m.clear();
                }
            }
            m.insert(public_key.to_owned(), (found.clone(), Instant::now()));
        }
        Ok(found)
    }
}
