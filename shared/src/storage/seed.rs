//! The seed format (JSON) for organizations, users, members/invites (with the plain token, which the
//! loader hashes), SSO identities — loadable into any [`Table`]; used by tests and `postflow seed`.
//!
//! ```json
//! {
//!   "users": [{"id": "42", "email": "bar@example.com"}],
//!   "organizations": [{"id": 1, "slug": "acme", "name": "Acme", "require_2fa": true,
//!                      "auth_provider": {"id": 5, "provider": "google", "name": "Google", "allow_unlinked": false}}],
//!   "members": [{"id": 10, "organization_id": 1, "email": "new@example.com", "role": "member",
//!                "token": "<64 hex>", "invite_status": "approved", "expires_in_days": 30}],
//!   "identities": [{"organization_id": 1, "user_id": "42"}],
//!   "projects": [{"id": 42, "organization_id": 1, "slug": "backend", "platform": "python",
//!                 "grouping_enhancements": "stack.module:myapp.* +app",
//!                 "fingerprinting_rules": "error.type:DatabaseUnavailable -> system-down"}],
//!   "keys": [{"public_key": "<32 hex>", "project_id": 42, "id": 7, "active": true}]
//! }
//! ```
//! A project's `grouping_enhancements` (stack-trace rules) and `fingerprinting_rules` are Sentry's
//! project grouping settings, in Sentry's syntax (see `grouping::enhancers`, `grouping::fingerprinting`).
//! A member with `user_id` is an accepted membership. `token_expires_at` (epoch seconds) overrides
//! `expires_in_days` (default 30, Sentry's `INVITE_DAYS_VALID`). Loading is idempotent for the same ids;
//! a second member claiming the same `(org, email)` or `(org, user)` is an error.

use super::item::{Val, item};
use super::keys;
use super::orgs::{member_item, membership_item, org_item, profile_op};
use super::table::{Cond, Table, WriteOp};
use crate::domain::org::{INVITE_DAYS_VALID, InviteStatus, Member, Organization, Team, hash_token};
use crate::error::StoreError;

#[derive(Clone, Debug, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    #[serde(default)]
    pub users: Vec<SeedUser>,
    #[serde(default)]
    pub organizations: Vec<Organization>,
    #[serde(default)]
    pub members: Vec<SeedMember>,
    #[serde(default)]
    pub identities: Vec<SeedIdentity>,
    #[serde(default)]
    pub projects: Vec<crate::domain::project::Project>,
    #[serde(default)]
    pub keys: Vec<SeedKey>,
}

/// A DSN key: `{"public_key": "<32 hex>", "project_id": 42, "id": 7, "active": true}`.
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SeedKey {
    pub public_key: String,
    pub project_id: u64,
    #[serde(default = "default_key_id")]
    pub id: u64,
    #[serde(default = "default_true")]
    pub active: bool,
}

fn default_key_id() -> u64 {
    1
}

fn default_true() -> bool {
    true
}

#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SeedUser {
    pub id: String,
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SeedMember {
    pub id: u64,
    pub organization_id: u64,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default = "default_role")]
    pub role: String,
    #[serde(default)]
    pub invite_status: InviteStatus,
    /// The plain token (as in the invite URL); stored as its SHA-256.
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub token_expires_at: Option<i64>,
    #[serde(default)]
    pub expires_in_days: Option<i64>,
    #[serde(default)]
    pub inviter_id: Option<String>,
    #[serde(default)]
    pub teams: Vec<Team>,
    #[serde(default)]
    pub has_global_access: bool,
}

fn default_role() -> String {
    "member".into()
}

#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SeedIdentity {
    pub organization_id: u64,
    pub user_id: String,
    #[serde(default)]
    pub ident: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("invalid seed: {0}")]
    Invalid(String),
    #[error("seed conflicts with existing data: {0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SeedMember {
    pub fn to_member(&self, now_secs: i64) -> Result<Member, SeedError> {
        if self.user_id.is_none() && self.email.is_none() {
            return Err(SeedError::Invalid(format!("member {} needs a user_id or an email", self.id)));
        }
        let token_hash = self.token.as_deref().map(hash_token);
        let token_expires_at = match (&token_hash, self.token_expires_at) {
            (None, _) => None,
            (Some(_), Some(t)) => Some(t),
            (Some(_), None) => Some(now_secs + self.expires_in_days.unwrap_or(INVITE_DAYS_VALID) * 86_400),
        };
        Ok(Member {
            id: self.id,
            org_id: self.organization_id,
            user_id: self.user_id.clone(),
            email: self.email.clone(),
            role: self.role.clone(),
            invite_status: self.invite_status,
            token_hash,
            token_expires_at,
            inviter_id: self.inviter_id.clone(),
            teams: self.teams.clone(),
            has_global_access: self.has_global_access,
            date_added: now_secs,
        })
    }
}

/// Loads a seed; returns the number of items written. A project's grouping rules are checked before
/// anything is written: an invalid rule is an error naming the project, the rule set and the line.
pub async fn load_seed(table: &dyn Table, seed: &Seed, now_millis: i64) -> Result<usize, SeedError> {
    for p in &seed.projects {
        crate::grouping::config::GroupingConfig::compile(&p.grouping_enhancements, &p.fingerprinting_rules)
            .map_err(|e| SeedError::Invalid(format!("project {}: {e}", p.id)))?;
    }
    let now_secs = now_millis.div_euclid(1000);
    let mut written = 0;
    for u in &seed.users {
        table.transact(vec![profile_op(&u.id, u.email.as_deref(), now_millis)]).await?;
        written += 1;
    }
    for o in &seed.organizations {
        if crate::domain::org::OrgRef::parse(&o.slug)
            != Some(crate::domain::org::OrgRef::Slug(o.slug.to_ascii_lowercase()))
        {
            return Err(SeedError::Invalid(format!("organization {} has an invalid slug", o.id)));
        }
        let same_org = Cond::Or(vec![Cond::NotExists, Cond::eq("org_id", o.id as i64)]);
        let out = table
            .transact(vec![
                WriteOp::Put { item: org_item(&keys::org(o.id), o), cond: Some(same_org.clone()) },
                WriteOp::Put { item: org_item(&keys::org_by_slug(&o.slug), o), cond: Some(same_org) },
            ])
            .await?;
        if !out.committed() {
            return Err(SeedError::Conflict(format!("organization {} or slug {}", o.id, o.slug)));
        }
        written += 2;
    }
    for sm in &seed.members {
        let m = sm.to_member(now_secs)?;
        let same_member = || Cond::Or(vec![Cond::NotExists, Cond::eq("member_id", m.id as i64)]);
        let mut ops = vec![WriteOp::Put { item: member_item(&m), cond: Some(same_member()) }];
        if let Some(email) = m.email.as_deref().filter(|_| m.user_id.is_none()) {
            let mut e = item(&keys::member_email(m.org_id, email));
            e.insert("member_id".into(), Val::N(m.id as i64));
            ops.push(WriteOp::Put { item: e, cond: Some(same_member()) });
        }
        if let Some(u) = &m.user_id {
            ops.push(WriteOp::Put { item: membership_item(u, &m), cond: Some(same_member()) });
        }
        let n = ops.len();
        if !table.transact(ops).await?.committed() {
            return Err(SeedError::Conflict(format!(
                "member {} (its id, (org, email) or (org, user) is taken)",
                m.id
            )));
        }
        written += n;
    }
    for i in &seed.identities {
        let mut it = item(&keys::identity(&i.user_id, i.organization_id));
        it.insert("org_id".into(), Val::N(i.organization_id as i64));
        if let Some(ident) = &i.ident {
            it.insert("ident".into(), Val::S(ident.clone()));
        }
        table.transact(vec![WriteOp::Put { item: it, cond: None }]).await?;
        written += 1;
    }
    for p in &seed.projects {
        table.transact(vec![WriteOp::Put { item: super::projects::project_item(p), cond: None }]).await?;
        written += 1;
    }
    for k in &seed.keys {
        let project = seed.projects.iter().find(|p| p.id == k.project_id).cloned().ok_or_else(|| {
            SeedError::Invalid(format!("key {} names project {} that is not in the seed", k.id, k.project_id))
        })?;
        let key = crate::domain::project::ProjectKey {
            public_key: k.public_key.to_ascii_lowercase(),
            key_id: k.id,
            project,
            active: k.active,
        };
        table.transact(vec![WriteOp::Put { item: super::projects::key_item(&key), cond: None }]).await?;
        written += 1;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::MemoryTable;

    fn seed_with(project: serde_json::Value) -> Seed {
        serde_json::from_value(serde_json::json!({
            "projects": [project],
            "keys": [{"public_key": "0123456789abcdef0123456789abcdef", "project_id": 42}],
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn grouping_rules_load_with_the_project_and_ride_on_its_key() {
        let table = MemoryTable::default();
        let seed = seed_with(serde_json::json!({
            "id": 42, "organization_id": 1, "slug": "backend",
            "grouping_enhancements": "stack.module:myapp.* +app",
            "fingerprinting_rules": "error.type:DatabaseUnavailable -> system-down",
        }));
        load_seed(&table, &seed, 0).await.unwrap();
        let key = super::super::projects::KeyCache::new(std::time::Duration::from_secs(60), 10)
            .get(&table, "0123456789abcdef0123456789abcdef")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(key.project.grouping_enhancements, "stack.module:myapp.* +app");
        assert_eq!(key.project.fingerprinting_rules, "error.type:DatabaseUnavailable -> system-down");
    }

    #[tokio::test]
    async fn invalid_grouping_rules_are_refused_naming_the_line_and_nothing_is_written() {
        let table = MemoryTable::default();
        for (field, rules, expected) in [
            ("grouping_enhancements", "stack.module:a.* +app\nstack.module:b.* +frobnicate", "line 2"),
            ("fingerprinting_rules", "\n\nerror.type:Foo => bar", "line 3"),
        ] {
            let mut project = serde_json::json!({"id": 42, "organization_id": 1, "slug": "backend"});
            project[field] = serde_json::json!(rules);
            let err = load_seed(&table, &seed_with(project), 0).await.unwrap_err().to_string();
            assert!(err.contains("project 42") && err.contains(field) && err.contains(expected), "{err}");
        }
        assert!(table.get(&super::super::keys::project(42)).await.unwrap().is_none());
        // A misspelled setting is refused rather than silently ignored.
        let bad: Result<Seed, _> = serde_json::from_value(serde_json::json!({
            "projects": [{"id": 42, "organization_id": 1, "slug": "b", "fingerprint_rules": "x"}]
        }));
        assert!(bad.is_err());
    }
}
