//! Test harness: the handler over the in-memory table or over DynamoDB Local, a manual clock, a seed,
//! and request builders.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use accept_invite::AcceptInvite;
use serde_json::{Value, json};
use shared::adapters::aws::CallRecorder;
use shared::adapters::dynamo_table::DynamoTable;
use shared::adapters::memory::{MemoryRateLimiter, MemoryTable};
use shared::backends::Backends;
use shared::config::Config;
use shared::domain::org::hash_token;
use shared::http::{ApiRequest, Claims, Reply};
use shared::ports::ManualClock;
use shared::storage::item::{Item, ItemExt};
use shared::storage::keys;
use shared::storage::orgs::parse_member;
use shared::storage::seed::{Seed, load_seed};
use shared::storage::table::Table;

pub const NOW: i64 = 1_700_000_000;
pub const TOKEN: &str = "5f0a9c1e2b3d4f5061728394a5b6c7d8e9f00112233445566778899aabbccddee";

pub struct Env {
    pub table: Arc<dyn Table>,
    pub handler: Arc<AcceptInvite>,
    pub clock: ManualClock,
    pub config: Arc<Config>,
    pub recorder: Option<CallRecorder>,
}

pub async fn memory_env() -> Env {
    env_with(Arc::new(MemoryTable::default()), None)
}

pub async fn dynamo_env(test: &str) -> Option<Env> {
    let aws = shared::testing::aws_env(test).await?;
    Some(env_with(Arc::new(DynamoTable::new(aws.clients.dynamodb.clone(), &aws.table)), Some(aws.recorder)))
}

fn env_with(table: Arc<dyn Table>, recorder: Option<CallRecorder>) -> Env {
    let clock = ManualClock::at_secs(NOW);
    let config = Arc::new(Config::for_local("unused", "unused"));
    let backends = Backends::new(table.clone(), Arc::new(MemoryRateLimiter::default()))
        .with_clock(Arc::new(clock.clone()));
    let handler = Arc::new(AcceptInvite::build(config.clone(), &backends));
    Env { table, handler, clock, config, recorder }
}

/// Org 1 "acme" (plain), org 2 "secure" (requires 2FA), org 3 "sso" (Google, unlinked not allowed),
/// org 4 "sso-optional" (allow_unlinked), org 5 "verified" (requires e-mail verification); invites in
/// each; user "42" is the caller in most tests.
pub fn base_seed() -> Value {
    let invite = |id: u64, org: u64, email: &str| json!({"id": id, "organization_id": org, "email": email, "role": "member", "token": TOKEN});
    json!({
        "users": [{"id": "1", "email": "foo@example.com"}],
        "organizations": [
            {"id": 1, "slug": "acme", "name": "Acme"},
            {"id": 2, "slug": "secure", "name": "Secure", "require_2fa": true},
            {"id": 3, "slug": "sso", "name": "SSO", "auth_provider": {"id": 30, "provider": "google", "name": "Google", "allow_unlinked": false}},
            {"id": 4, "slug": "sso-optional", "name": "SSO optional", "auth_provider": {"id": 40, "provider": "idp", "name": "Friendly IdP", "allow_unlinked": true}},
            {"id": 5, "slug": "verified", "name": "Verified", "require_email_verification": true}
        ],
        "members": [
            {"id": 1, "organization_id": 1, "user_id": "1", "role": "owner"},
            invite(10, 1, "newuser@example.com"),
            invite(20, 2, "newuser@example.com"),
            invite(30, 3, "newuser@example.com"),
            invite(40, 4, "newuser@example.com"),
            invite(50, 5, "newuser@example.com"),
            {"id": 11, "organization_id": 1, "email": "unapproved@example.com", "token": TOKEN, "invite_status": "requested_to_join"},
            {"id": 12, "organization_id": 1, "email": "expired@example.com", "token": TOKEN, "token_expires_at": NOW - 1},
            {"id": 13, "organization_id": 1, "email": "second@example.com", "token": "abcd"}
        ]
    })
}

pub async fn seed(env: &Env, v: Value) {
    let seed: Seed = serde_json::from_value(v).unwrap();
    load_seed(env.table.as_ref(), &seed, NOW * 1000).await.unwrap();
}

pub fn claims(sub: &str) -> Claims {
    Claims {
        sub: sub.into(),
        email: Some(format!("user{sub}@example.com")),
        email_verified: true,
        auth_time: Some(NOW - 60),
        superuser: false,
    }
}

pub fn request(method: &str, org: &str, member: &str, token: &str, caller: Option<Claims>) -> ApiRequest {
    let mut path_params = BTreeMap::new();
    path_params.insert("organization_id_or_slug".to_owned(), org.to_owned());
    path_params.insert("member_id".to_owned(), member.to_owned());
    path_params.insert("token".to_owned(), token.to_owned());
    ApiRequest {
        method: method.into(),
        path: format!("/api/0/accept-invite/{org}/{member}/{token}/"),
        path_params,
        claims: caller,
        source_ip: Some("127.0.0.1".into()),
        ..Default::default()
    }
}

impl Env {
    pub async fn call(
        &self,
        method: &str,
        org: &str,
        member: &str,
        token: &str,
        caller: Option<Claims>,
    ) -> Reply {
        self.handler.handle_api(&request(method, org, member, token, caller)).await
    }

    pub async fn member(&self, id: u64) -> Option<shared::domain::org::Member> {
        self.table.get(&keys::member(id)).await.unwrap().map(|i| parse_member(&i).unwrap())
    }

    pub async fn org_items(&self, org: u64, prefix: &str) -> Vec<Item> {
        self.table.query(&keys::org_pk(org), Some(prefix)).await.unwrap()
    }

    pub async fn memberships(&self, user: &str) -> Vec<Item> {
        self.table.query(&keys::user_pk(user), Some("MEMBERSHIP#")).await.unwrap()
    }

    /// Gives `user` a TOTP authenticator (what enrollment writes).
    pub async fn enroll_totp(&self, user: &str) {
        let a = shared::domain::user::Authenticator {
            id: "77".into(),
            kind: shared::domain::user::InterfaceType::Totp,
            config: json!({"secret": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"}),
            created_at: NOW * 1000,
            last_used_at: None,
            version: 1,
        };
        let item = shared::storage::users::authenticator_item(user, &a);
        assert!(
            self.table
                .transact(vec![shared::storage::table::WriteOp::Put { item, cond: None }])
                .await
                .unwrap()
                .committed()
        );
    }
}

pub fn set_cookie(r: &Reply) -> Option<&str> {
    r.header("set-cookie")
}

pub fn assert_details(r: &Reply, status: u16, details: &str) {
    assert_eq!(r.status, status, "body: {:?}", r.body);
    assert_eq!(r.json_body(), json!({ "details": details }));
}

pub fn token_hash() -> String {
    hash_token(TOKEN)
}

pub fn audit_entries(items: &[Item]) -> Vec<Value> {
    items
        .iter()
        .map(|i| {
            json!({
                "event": i.n("event").unwrap(),
                "actor": i.s("actor_user_id").unwrap(),
                "target_object": i.n("target_object").unwrap(),
                "target_user": i.s("target_user_id").unwrap(),
                "data": serde_json::from_str::<Value>(i.s("data").unwrap()).unwrap(),
            })
        })
        .collect()
}

/// Runs a scenario against the in-memory table and against DynamoDB Local.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test]
            async fn memory() {
                let env = common::memory_env().await;
                common::seed(&env, common::base_seed()).await;
                ($body)(env).await;
            }
            #[tokio::test]
            async fn dynamodb() {
                let Some(env) = common::dynamo_env(stringify!($name)).await else { return };
                common::seed(&env, common::base_seed()).await;
                ($body)(env).await;
            }
        }
    };
}
