//! The invariants of a Postflow table and event stream, checked over a full dump of both (tests and
//! `postflow check`): what must hold whatever mix of requests, races, faults and retries came before.
//!
//! 1. at most one recovery-code set per user, and one whenever the user has another authenticator
//!    (authenticators are unique per user and type by their key);
//! 2. one membership per (organization, user): at most one accepted member row per pair, and its
//!    uniqueness item points at that row;
//! 3. no invite both accepted and pending: an accepted row carries no e-mail or token, and every
//!    reserved invite e-mail belongs to a pending row;
//! 4. audit entries = accepted invites: each `MEMBER_ACCEPT` entry names a row accepted by that user,
//!    at most one entry per row, and as many `member_joined` records as entries;
//! 5. the aggregated values of every group (its row plus its per-shard aggregate items): `times_seen`
//!    = the distinct events streamed for it, `first_seen` / `last_seen` = the earliest / latest of their
//!    timestamps; `is_new` on exactly one of its events, `is_new_group_environment` on exactly one per
//!    environment; `new_groups` of each release and `new_issues_count` of each release environment =
//!    the streamed events that raised them (run after the aggregation has drained the stream);
//! 6. no event id twice on the stream.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use shared::ports::StoredRecord;
use shared::storage::item::{Item, ItemExt};
use shared::storage::keys::{self, Row};
use shared::storage::orgs::parse_member;

/// What the check counted, and what it found wrong.
#[derive(Debug, Default)]
pub struct Report {
    pub counts: BTreeMap<&'static str, usize>,
    pub violations: Vec<String>,
}

impl Report {
    fn count(&mut self, what: &'static str, n: usize) {
        *self.counts.entry(what).or_default() += n;
    }

    fn fail(&mut self, v: String) {
        self.violations.push(v);
    }
}

fn sk(it: &Item) -> &str {
    it.s("sk").unwrap_or_default()
}

fn pk(it: &Item) -> &str {
    it.s("pk").unwrap_or_default()
}

/// What the item is, by its key (`storage::keys` reads keys back; nothing here spells one).
fn row(it: &Item) -> Option<Row<'_>> {
    keys::classify(pk(it), sk(it))
}

pub fn check(items: &[Item], records: &[StoredRecord]) -> Report {
    let mut r = Report::default();

    // 1. Recovery codes.
    let mut auths: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for it in items {
        if let Some(Row::Authenticator { user }) = row(it) {
            auths.entry(user).or_default().push(it.n("type").unwrap_or(-1));
        }
    }
    for (user, types) in &auths {
        let recovery = types.iter().filter(|t| **t == 0).count();
        let others = types.len() - recovery;
        r.count("authenticators", types.len());
        if recovery > 1 || (others > 0 && recovery != 1) {
            r.fail(format!("user {user}: {recovery} recovery sets beside {others} authenticators"));
        }
    }

    // 2-3. Members, memberships, invite e-mails.
    let mut members = Vec::new();
    for it in items.iter().filter(|i| row(i) == Some(Row::Member)) {
        match parse_member(it) {
            Ok(m) => members.push(m),
            Err(e) => r.fail(format!("{}: unreadable member row ({e})", pk(it))),
        }
    }
    let by_id: BTreeMap<u64, _> = members.iter().map(|m| (m.id, m)).collect();
    let mut accepted_pairs: BTreeMap<(u64, &str), Vec<u64>> = BTreeMap::new();
    for m in &members {
        match m.user_id.as_deref() {
            Some(u) => {
                accepted_pairs.entry((m.org_id, u)).or_default().push(m.id);
                if m.email.is_some() || m.token_hash.is_some() || m.token_expires_at.is_some() {
                    r.fail(format!("member {}: accepted by {u} but still carries its invite", m.id));
                }
            }
            None => r.count("pending invites", 1),
        }
    }
    r.count("accepted members", accepted_pairs.values().map(Vec::len).sum());
    for ((org, user), ids) in &accepted_pairs {
        if ids.len() > 1 {
            r.fail(format!("org {org}, user {user}: {} accepted member rows {ids:?}", ids.len()));
        }
        let key = keys::membership(user, *org);
        let unique = items.iter().find(|i| pk(i) == key.pk && sk(i) == key.sk);
        match unique.and_then(|i| i.n("member_id").ok()) {
            Some(id) if ids.contains(&(id as u64)) => {}
            other => r.fail(format!("org {org}, user {user}: membership item {other:?} vs rows {ids:?}")),
        }
    }
    for it in items {
        let Some(Row::Membership { user }) = row(it) else { continue };
        let org = it.n("org_id").unwrap_or(-1) as u64;
        if !accepted_pairs.contains_key(&(org, user)) {
            r.fail(format!("user {user}: membership item for org {org} without an accepted member row"));
        }
    }
    for it in items.iter().filter(|i| row(i) == Some(Row::InviteEmail)) {
        let member = it.n("member_id").ok().and_then(|id| by_id.get(&(id as u64)));
        if !member.is_some_and(|m| m.is_pending()) {
            r.fail(format!("{} {}: reserved for a member that is not pending", pk(it), sk(it)));
        }
    }

    // 4. Audit entries and member_joined.
    let mut audited: BTreeMap<u64, usize> = BTreeMap::new();
    let audits: Vec<&Item> = items.iter().filter(|i| row(i) == Some(Row::Audit)).collect();
    for a in &audits {
        let member = a.n("target_object").unwrap_or(-1) as u64;
        *audited.entry(member).or_default() += 1;
        let user = a.s("target_user_id").unwrap_or_default();
        if by_id.get(&member).is_none_or(|m| m.user_id.as_deref() != Some(user)) {
            r.fail(format!("audit entry for member {member} and user {user}: not that user's accepted row"));
        }
    }
    for (member, n) in &audited {
        if *n > 1 {
            r.fail(format!("member {member}: {n} MEMBER_ACCEPT audit entries"));
        }
    }
    let joined: BTreeSet<u64> = items
        .iter()
        .filter_map(|i| match row(i) {
            Some(Row::MemberJoined { member }) => Some(member),
            _ => None,
        })
        .collect();
    r.count("audit entries", audits.len());
    r.count("member_joined", joined.len());
    for member in audited.keys().filter(|m| !joined.contains(m)) {
        r.fail(format!("member {member}: MEMBER_ACCEPT audit entry without member_joined"));
    }
    for member in joined.iter().filter(|m| !audited.contains_key(m)) {
        r.fail(format!("member {member}: member_joined without a MEMBER_ACCEPT audit entry"));
    }

    // 5-6. Stream records and groups.
    let mut seen: BTreeSet<(u64, String)> = BTreeSet::new();
    for rec in records {
        let Ok(v) = serde_json::from_slice::<Value>(&rec.data) else {
            r.fail("a stream record is not JSON".into());
            continue;
        };
        let ev = &v[2];
        let (Some(project), Some(id)) = (ev["project_id"].as_u64(), ev["event_id"].as_str()) else {
            r.fail(format!("a stream record without project/event id (partition key {})", rec.partition_key));
            continue;
        };
        if !seen.insert((project, id.to_owned())) {
            r.fail(format!("event {id} of project {project} is on the stream twice"));
        }
    }
    r.count("stream records", records.len());
    check_aggregates(items, records, &mut r);
    r
}

/// Invariant 5: the aggregated counters against the stream (each event id counted once).
fn check_aggregates(items: &[Item], records: &[StoredRecord], r: &mut Report) {
    use shared::save::aggregate::merge_group;
    #[derive(Default)]
    struct Seen {
        events: BTreeSet<String>,
        min_ts: Option<i64>,
        max_ts: Option<i64>,
        new: usize,
        new_env: BTreeMap<String, usize>,
    }
    let mut groups: BTreeMap<u64, Seen> = BTreeMap::new();
    let mut new_groups: BTreeMap<(u64, String), BTreeSet<u64>> = BTreeMap::new();
    let mut new_issues: BTreeMap<(u64, String, String), BTreeSet<String>> = BTreeMap::new();
    let mut done: BTreeSet<(u64, String)> = BTreeSet::new();
    for rec in records {
        let Ok(v) = serde_json::from_slice::<Value>(&rec.data) else { continue };
        let (ev, state) = (&v[2], &v[3]);
        let (Some(project), Some(id), Some(g)) =
            (ev["project_id"].as_u64(), ev["event_id"].as_str(), ev["group_id"].as_u64())
        else {
            continue;
        };
        if !done.insert((project, id.to_owned())) {
            continue; // a re-published copy: counted once
        }
        let data = &ev["data"];
        let ts = data["timestamp"].as_f64().map(|t| t as i64);
        let env = data["environment"].as_str().unwrap_or_default().to_owned();
        let release = data["release"].as_str().filter(|s| !s.trim().is_empty()).map(str::to_owned);
        let seen = groups.entry(g).or_default();
        seen.events.insert(id.to_owned());
        if let Some(ts) = ts {
            seen.min_ts = Some(seen.min_ts.map_or(ts, |m| m.min(ts)));
            seen.max_ts = Some(seen.max_ts.map_or(ts, |m| m.max(ts)));
        }
        if state["is_new"] == true {
            seen.new += 1;
            if let Some(rel) = &release {
                new_groups.entry((project, rel.clone())).or_default().insert(g);
            }
        }
        if state["is_new_group_environment"] == true {
            *seen.new_env.entry(env.clone()).or_default() += 1;
            if let Some(rel) = &release {
                new_issues.entry((project, rel.clone(), env)).or_default().insert(id.to_owned());
            }
        }
    }
    let mut by_pk: BTreeMap<&str, Vec<Item>> = BTreeMap::new();
    for it in
        items.iter().filter(|i| matches!(row(i), Some(Row::Group { .. } | Row::GroupOrProjectPartition)))
    {
        by_pk.entry(pk(it)).or_default().push(it.clone());
    }
    let sum = |base: &shared::storage::item::Key, attr: &str| -> i64 {
        by_pk
            .get(base.pk.as_str())
            .into_iter()
            .flatten()
            .filter(|i| sk(i).starts_with(&base.sk))
            .filter_map(|i| i.opt_n(attr))
            .sum()
    };
    for it in items {
        let Some(Row::Group { id }) = row(it) else { continue };
        r.count("groups", 1);
        let Some(view) = merge_group(id, by_pk.get(pk(it)).map(Vec::as_slice).unwrap_or_default()) else {
            continue;
        };
        let seen = groups.remove(&id).unwrap_or_default();
        let streamed = seen.events.len() as i64;
        if view.times_seen != streamed {
            r.fail(format!("group {id}: times_seen {}, {streamed} events streamed", view.times_seen));
        }
        if let (Some(min), Some(max)) = (seen.min_ts, seen.max_ts)
            && (view.first_seen != min || view.last_seen != max)
        {
            r.fail(format!(
                "group {id}: first/last seen {}/{}, streamed events span {min}/{max}",
                view.first_seen, view.last_seen
            ));
        }
        // A group of the previous release may predate the stream; one created here has its is_new.
        if view.row.contains_key("first_event") && streamed > 0 && seen.new != 1 {
            r.fail(format!("group {id}: {} events streamed with is_new", seen.new));
        }
        if let Some((env, n)) = seen.new_env.iter().find(|(_, n)| **n != 1) {
            r.fail(format!("group {id}: {n} events with is_new_group_environment in {env:?}"));
        }
    }
    for ((project, rel), gs) in new_groups {
        let n = sum(&keys::release_project(project, &rel), "new_groups");
        if n != gs.len() as i64 {
            r.fail(format!(
                "release {rel} of project {project}: new_groups {n}, {} new groups streamed",
                gs.len()
            ));
        }
    }
    for ((project, rel, env), evs) in new_issues {
        let n = sum(&keys::release_project_environment(project, &rel, &env), "new_issues_count");
        if n != evs.len() as i64 {
            r.fail(format!(
                "release {rel}/{env:?} of project {project}: new_issues_count {n}, {} streamed",
                evs.len()
            ));
        }
    }
    for g in groups.keys() {
        r.fail(format!("events streamed for group {g}, which is not in the table"));
    }
}

/// Every item of a DynamoDB table (a paginated `Scan`).
pub async fn scan_table(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<Vec<Item>, String> {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| format!("scan: {e:?}"))?;
        for raw in page.items() {
            out.push(shared::adapters::dynamo_table::to_item(raw).map_err(|e| e.to_string())?);
        }
        match page.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => return Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use shared::storage::item::Val;

    fn item(pairs: &[(&str, Val)]) -> Item {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
    }

    fn s(v: &str) -> Val {
        Val::S(v.into())
    }

    fn record(project: u64, event: &str, group: u64) -> StoredRecord {
        let data = serde_json::json!([2, "insert", {"project_id": project, "event_id": event, "group_id": group}, {}]);
        StoredRecord {
            partition_key: project.to_string(),
            sequence_number: "1".into(),
            data: data.to_string().into_bytes(),
        }
    }

    /// Each invariant catches its violation (the checker is not vacuous).
    #[test]
    fn each_violation_is_found() {
        let ok = vec![
            item(&[("pk", s("USER#u")), ("sk", s("AUTH#1")), ("type", Val::N(1))]),
            item(&[("pk", s("USER#u")), ("sk", s("AUTH#0")), ("type", Val::N(0))]),
            item(&[("pk", s("GROUP#5")), ("sk", s("GROUP")), ("times_seen", Val::N(1))]),
        ];
        let recs = vec![record(42, "a", 5)];
        let r = check(&ok, &recs);
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        assert_eq!(r.counts["authenticators"], 2);

        // No recovery set beside a TOTP authenticator.
        let r = check(&ok[..1], &[]);
        assert!(r.violations.iter().any(|v| v.contains("recovery")), "{:?}", r.violations);
        // times_seen differs from the events streamed; an event twice on the stream.
        let r = check(&ok, &[record(42, "a", 5), record(42, "a", 5)]);
        assert!(r.violations.iter().any(|v| v.contains("twice")), "{:?}", r.violations);
        let r = check(&ok, &[record(42, "a", 5), record(42, "b", 5)]);
        assert!(r.violations.iter().any(|v| v.contains("times_seen")), "{:?}", r.violations);
        // Aggregated values: a group's aggregate items summing to more than its streamed events; a
        // release whose new_groups misses a new group; is_new on two events of one group.
        let new_rec = |event: &str, is_new: bool| {
            let data = serde_json::json!([2, "insert", {"project_id": 42, "event_id": event, "group_id": 6,
                "data": {"timestamp": 100.0, "release": "r1", "environment": ""}}, {"is_new": is_new}]);
            StoredRecord {
                partition_key: event.into(),
                sequence_number: "1".into(),
                data: data.to_string().into_bytes(),
            }
        };
        let rows = vec![
            item(&[
                ("pk", s("GROUP#6")),
                ("sk", s("GROUP")),
                ("times_seen", Val::N(0)),
                ("first_event", s("x")),
            ]),
            item(&[
                ("pk", s("GROUP#6")),
                ("sk", s("GROUP#AGG#shardId-000000000000")),
                ("times_seen", Val::N(3)),
            ]),
        ];
        let r = check(&rows, &[new_rec("x", true), new_rec("y", true)]);
        assert!(r.violations.iter().any(|v| v.contains("times_seen 3, 2 events")), "{:?}", r.violations);
        assert!(
            r.violations.iter().any(|v| v.contains("2 events streamed with is_new")),
            "{:?}",
            r.violations
        );
        assert!(r.violations.iter().any(|v| v.contains("new_groups 0")), "{:?}", r.violations);
        // A membership item without an accepted member row; an audit entry without member_joined.
        let stray = vec![
            item(&[
                ("pk", s("USER#u")),
                ("sk", s("MEMBERSHIP#00000000000000000001")),
                ("org_id", Val::N(1)),
                ("member_id", Val::N(3)),
            ]),
            item(&[
                ("pk", s("ORG#1")),
                ("sk", s("AUDIT#1#x")),
                ("target_object", Val::N(3)),
                ("target_user_id", s("u")),
            ]),
        ];
        let r = check(&stray, &[]);
        assert!(
            r.violations.iter().any(|v| v.contains("without an accepted member row")),
            "{:?}",
            r.violations
        );
        assert!(r.violations.iter().any(|v| v.contains("member_joined")), "{:?}", r.violations);
        assert!(
            r.violations.iter().any(|v| v.contains("not that user's accepted row")),
            "{:?}",
            r.violations
        );
    }
}
