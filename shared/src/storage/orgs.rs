//! Organizations, members and invites on the table: encoding, the invite lookup (one round trip: org,
//! invite and the caller's partition read concurrently), the accept transaction, and the
//! "member already exists" clean-up.

use async_trait::async_trait;
use std::collections::BTreeMap;

use super::item::{Item, ItemExt, Key, Val, item};
use super::keys;
use super::table::{Cond, Table, TxOutcome, Update, WriteOp};
use super::users::load_user;
use crate::domain::invite::{AcceptOutcome, Acceptance, InviteLookup};
use crate::domain::org::{AuthProvider, InviteStatus, Member, OrgRef, Organization, Team};
use crate::error::StoreError;
use crate::ports::InviteStore;

pub fn org_item(key: &Key, o: &Organization) -> Item {
    let mut i = item(key);
    i.insert("org_id".into(), Val::N(o.id as i64));
    i.insert("slug".into(), Val::S(o.slug.clone()));
    i.insert("name".into(), Val::S(o.name.clone()));
    i.insert("require_2fa".into(), Val::Bool(o.require_2fa));
    i.insert("require_email_verification".into(), Val::Bool(o.require_email_verification));
    if let Some(p) = &o.auth_provider {
        let mut m = BTreeMap::new();
        m.insert("id".into(), Val::N(p.id as i64));
        m.insert("provider".into(), Val::S(p.provider.clone()));
        m.insert("name".into(), Val::S(p.name.clone()));
        m.insert("allow_unlinked".into(), Val::Bool(p.allow_unlinked));
        i.insert("auth_provider".into(), Val::M(m));
    }
    i
}

pub fn parse_org(it: &Item) -> Result<Organization, StoreError> {
    let auth_provider = match it.get("auth_provider") {
        Some(Val::M(m)) => {
            let get_s = |k: &str| match m.get(k) {
                Some(Val::S(s)) => Ok(s.clone()),
                _ => Err(StoreError::corrupt(format!("auth_provider.{k}"))),
            };
            Some(AuthProvider {
                id: match m.get("id") {
                    Some(Val::N(n)) => *n as u64,
                    _ => return Err(StoreError::corrupt("auth_provider.id")),
                },
                provider: get_s("provider")?,
                name: get_s("name")?,
                allow_unlinked: matches!(m.get("allow_unlinked"), Some(Val::Bool(true))),
            })
        }
        _ => None,
    };
    Ok(Organization {
        id: it.n("org_id")? as u64,
        slug: it.s("slug")?.to_owned(),
        name: it.s("name")?.to_owned(),
        require_2fa: it.b("require_2fa"),
        require_email_verification: it.b("require_email_verification"),
        auth_provider,
    })
}

pub fn member_item(m: &Member) -> Item {
    let mut i = item(&keys::member(m.id));
    i.insert("member_id".into(), Val::N(m.id as i64));
    i.insert("org_id".into(), Val::N(m.org_id as i64));
    if let Some(u) = &m.user_id {
        i.insert("user_id".into(), Val::S(u.clone()));
    }
    if let Some(e) = &m.email {
        i.insert("email".into(), Val::S(e.clone()));
    }
    i.insert("role".into(), Val::S(m.role.clone()));
    i.insert("invite_status".into(), Val::N(m.invite_status.code()));
    if let Some(h) = &m.token_hash {
        i.insert("token_hash".into(), Val::S(h.clone()));
    }
    if let Some(t) = m.token_expires_at {
        i.insert("token_expires_at".into(), Val::N(t));
    }
    if let Some(u) = &m.inviter_id {
        i.insert("inviter_id".into(), Val::S(u.clone()));
    }
    i.insert(
        "teams".into(),
        Val::L(
            m.teams
                .iter()
                .map(|t| {
                    Val::M(BTreeMap::from([
                        ("id".into(), Val::N(t.id as i64)),
                        ("slug".into(), Val::S(t.slug.clone())),
                    ]))
                })
                .collect(),
        ),
    );
    i.insert("has_global_access".into(), Val::Bool(m.has_global_access));
    i.insert("date_added".into(), Val::N(m.date_added));
    i.insert(super::attr::GSI1_PK.into(), Val::S(keys::org_pk(m.org_id)));
    i.insert(super::attr::GSI1_SK.into(), Val::S(super::keys::member_gsi_sk(m.id)));
    i
}

pub fn parse_member(it: &Item) -> Result<Member, StoreError> {
    let teams = match it.get("teams") {
        Some(Val::L(l)) => l
            .iter()
            .filter_map(|t| match t {
                Val::M(m) => match (m.get("id"), m.get("slug")) {
                    (Some(Val::N(id)), Some(Val::S(slug))) => {
                        Some(Team { id: *id as u64, slug: slug.clone() })
                    }
                    _ => None,
                },
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok(Member {
        id: it.n("member_id")? as u64,
        org_id: it.n("org_id")? as u64,
        user_id: it.opt_s("user_id").map(str::to_owned),
        email: it.opt_s("email").map(str::to_owned),
        role: it.opt_s("role").unwrap_or("member").to_owned(),
        invite_status: InviteStatus::from_code(it.n("invite_status")?)
            .ok_or_else(|| StoreError::corrupt("invite_status"))?,
        token_hash: it.opt_s("token_hash").map(str::to_owned),
        token_expires_at: it.opt_n("token_expires_at"),
        inviter_id: it.opt_s("inviter_id").map(str::to_owned),
        teams,
        has_global_access: it.b("has_global_access"),
        date_added: it.opt_n("date_added").unwrap_or(0),
    })
}

pub fn membership_item(user_id: &str, m: &Member) -> Item {
    let mut i = item(&keys::membership(user_id, m.org_id));
    i.insert("org_id".into(), Val::N(m.org_id as i64));
    i.insert("member_id".into(), Val::N(m.id as i64));
    i.insert("role".into(), Val::S(m.role.clone()));
    i
}

/// The writes that accept an invite, all or nothing. Index 0 is the member update (fails when the invite
/// is no longer acceptable), index 1 the `(org, user)` uniqueness claim (fails when the caller already
/// holds a membership). `with_profile` adds the just-in-time user profile (left out when the caller's
/// transaction writes the profile itself).
pub fn acceptance_ops(a: &Acceptance, with_profile: bool) -> Vec<WriteOp> {
    let inv = &a.invite;
    let accepted = a.accepted_member();
    let now_secs = a.now_secs();
    let mut still_acceptable = vec![
        Cond::Exists,
        Cond::attr_not_exists("user_id"),
        Cond::eq("org_id", inv.org_id as i64),
        Cond::eq("invite_status", InviteStatus::Approved.code()),
    ];
    match &inv.token_hash {
        Some(h) => still_acceptable.push(Cond::eq("token_hash", h.as_str())),
        None => still_acceptable.push(Cond::attr_not_exists("token_hash")),
    }
    if inv.token_expires_at.is_some() {
        still_acceptable.push(Cond::Gt("token_expires_at".into(), now_secs));
    }
    let mut ops = vec![
        WriteOp::Update {
            key: keys::member(inv.id),
            update: Update::default()
                .set("user_id", a.user_id.as_str())
                .remove("email")
                .remove("token_hash")
                .remove("token_expires_at"),
            cond: Some(Cond::And(still_acceptable)),
        },
        WriteOp::Put { item: membership_item(&a.user_id, &accepted), cond: Some(Cond::NotExists) },
    ];
    let mut audit = item(&keys::audit(inv.org_id, a.now_millis, &a.audit_id));
    audit.insert("event".into(), Val::N(3));
    audit.insert("event_name".into(), Val::S("member.accept-invite".into()));
    audit.insert("actor_user_id".into(), Val::S(a.user_id.clone()));
    audit.insert("target_object".into(), Val::N(inv.id as i64));
    audit.insert("target_user_id".into(), Val::S(a.user_id.clone()));
    if let Some(ip) = &a.ip_address {
        audit.insert("ip_address".into(), Val::S(ip.clone()));
    }
    audit.insert("data".into(), Val::S(accepted.audit_data().to_string()));
    audit.insert("datetime".into(), Val::N(a.now_millis));
    ops.push(WriteOp::Put { item: audit, cond: Some(Cond::NotExists) });
    let mut joined = item(&keys::member_joined(inv.org_id, inv.id));
    joined.insert("user_id".into(), Val::S(a.user_id.clone()));
    joined.insert("member_id".into(), Val::N(inv.id as i64));
    joined.insert("org_id".into(), Val::N(inv.org_id as i64));
    joined.insert("datetime".into(), Val::N(a.now_millis));
    ops.push(WriteOp::Put { item: joined, cond: Some(Cond::NotExists) });
    if let Some(email) = &inv.email {
        ops.push(WriteOp::Delete {
            key: keys::member_email(inv.org_id, email),
            cond: Some(Cond::Or(vec![Cond::NotExists, Cond::eq("member_id", inv.id as i64)])),
        });
    }
    if with_profile {
        ops.push(profile_op(&a.user_id, a.user_email.as_deref(), a.now_millis));
    }
    ops
}

/// Just-in-time user profile: created on first write, e-mail refreshed from the claims.
pub fn profile_op(user_id: &str, email: Option<&str>, now_millis: i64) -> WriteOp {
    let mut u = Update::default().set_if_absent("created_at", now_millis).set("user_id", user_id);
    if let Some(e) = email {
        u = u.set("email", e);
    }
    WriteOp::Update { key: keys::profile(user_id), update: u, cond: None }
}

/// Deletes a still-pending invite row (and its e-mail uniqueness item); an accepted membership is never
/// deleted (condition `attribute_not_exists(user_id)`).
pub fn delete_pending_ops(m: &Member) -> Vec<WriteOp> {
    let mut ops = vec![WriteOp::Delete {
        key: keys::member(m.id),
        cond: Some(Cond::And(vec![Cond::attr_not_exists("user_id"), Cond::eq("org_id", m.org_id as i64)])),
    }];
    if let Some(email) = &m.email {
        ops.push(WriteOp::Delete {
            key: keys::member_email(m.org_id, email),
            cond: Some(Cond::Or(vec![Cond::NotExists, Cond::eq("member_id", m.id as i64)])),
        });
    }
    ops
}

/// Interprets the outcome of [`acceptance_ops`].
pub fn acceptance_outcome(out: &TxOutcome, a: &Acceptance) -> AcceptOutcome {
    match out {
        TxOutcome::Committed => AcceptOutcome::Accepted(a.accepted_member()),
        o if o.failed_at(1) => AcceptOutcome::AlreadyMember,
        _ => AcceptOutcome::NoLongerValid,
    }
}

/// The invite store over any [`Table`].
#[derive(Clone)]
pub struct TableInviteStore {
    table: std::sync::Arc<dyn Table>,
}

impl TableInviteStore {
    pub fn new(table: std::sync::Arc<dyn Table>) -> Self {
        Self { table }
    }
}

#[async_trait]
impl InviteStore for TableInviteStore {
    async fn lookup_invite(
        &self,
        org: &OrgRef,
        member_id: u64,
        user_id: Option<&str>,
    ) -> Result<InviteLookup, StoreError> {
        let org_key = match org {
            OrgRef::Id(id) => keys::org(*id),
            OrgRef::Slug(s) => keys::org_by_slug(s),
        };
        let t: &dyn Table = self.table.as_ref();
        let keys = [org_key, keys::member(member_id)];
        let items = t.get_many(&keys);
        let user = async {
            match user_id {
                Some(u) => load_user(t, u).await.map(Some),
                None => Ok(None),
            }
        };
        let (items, user) = tokio::try_join!(items, user)?;
        let org = items[0].as_ref().map(parse_org).transpose()?;
        let invite = items[1].as_ref().map(parse_member).transpose()?;
        Ok(InviteLookup { org, invite, user })
    }

    async fn accept_invite(&self, a: &Acceptance) -> Result<AcceptOutcome, StoreError> {
        let out = self.table.transact(acceptance_ops(a, true)).await?;
        Ok(acceptance_outcome(&out, a))
    }

    async fn delete_pending_invite(&self, m: &Member) -> Result<bool, StoreError> {
        Ok(self.table.transact(delete_pending_ops(m)).await?.committed())
    }
}
