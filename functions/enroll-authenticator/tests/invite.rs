//! Enrollment completes a pending invite (Sentry's `AcceptOrganizationInviteTest`, spec 3.2) through
//! each interface — TOTP, SMS and u2f (a software security key) — on the in-memory adapters and on
//! DynamoDB Local; the 20-way enrollment race, and the sequential round trips of POST.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;
use shared::domain::user::InterfaceType;
use shared::storage::item::ItemExt;
use shared::storage::keys;
use shared::storage::orgs::parse_member;

/// Org "secure" requires 2FA; member 20 invites newuser@example.com with TOKEN.
fn seed() -> serde_json::Value {
    json!({
        "users": [{"id": "1", "email": "foo@example.com"}],
        "organizations": [{"id": 2, "slug": "secure", "name": "Secure", "require_2fa": true}],
        "members": [
            {"id": 1, "organization_id": 2, "user_id": "1", "role": "owner"},
            {"id": 20, "organization_id": 2, "email": "newuser@example.com", "role": "member", "token": TOKEN}
        ]
    })
}

/// `get_om_and_init_invite`: accept-invite GET for the 2FA org → 200 `needs2fa` and the signed cookie.
async fn init_invite(env: &Env, user: &str) -> String {
    let mut params = std::collections::BTreeMap::new();
    params.insert("organization_id_or_slug".to_owned(), "secure".to_owned());
    params.insert("member_id".to_owned(), "20".to_owned());
    params.insert("token".to_owned(), TOKEN.to_owned());
    let req = shared::http::ApiRequest {
        method: "GET".into(),
        path_params: params,
        claims: Some(claims(user)),
        ..Default::default()
    };
    let r = env.accept.handle_api(&req).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json_body()["needs2fa"], true);
    let header = r.header("set-cookie").expect("invite cookie").to_owned();
    header.strip_prefix("postflow-invite=").unwrap().split(';').next().unwrap().to_owned()
}

async fn member20(env: &Env) -> Option<shared::domain::org::Member> {
    env.table.get(&keys::member(20)).await.unwrap().map(|i| parse_member(&i).unwrap())
}

/// One test per interface (totp, sms, u2f), each on both backends; the body gets `(env, interface)`.
macro_rules! each_interface {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            both_backends!(totp, config_with(|_| {}), |env: Env| async move { ($body)(env, "totp").await });
            both_backends!(sms, config_with(|_| {}), |env: Env| async move { ($body)(env, "sms").await });
            both_backends!(u2f, config_with(|_| {}), |env: Env| async move { ($body)(env, "u2f").await });
        }
    };
}

both_backends!(pending_invite_stays_pending_until_2fa, config_with(|_| {}), |env: Env| async move {
    // test_cannot_accept_invite_pending_invite__2fa_required
    env.seed(seed()).await;
    init_invite(&env, "42").await;
    let m = member20(&env).await.unwrap();
    assert!(m.is_pending());
    assert_eq!(m.email.as_deref(), Some("newuser@example.com"));
});

each_interface!(enrollment_accepts_pending_invite, |env: Env, iface: &'static str| async move {
    // test_accept_pending_invite__{totp,sms,u2f}_enroll (+ assert_invite_accepted)
    env.seed(seed()).await;
    let cookie = init_invite(&env, "42").await;
    let r = env.enroll_via(iface, &claims("42"), Some(&cookie)).await;
    assert_eq!(r.status, 204);
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"), "invite cookie cleared");
    let m = member20(&env).await.unwrap();
    assert_eq!(m.user_id.as_deref(), Some("42"));
    assert!(m.email.is_none());
    let audit = env.table.query(&keys::org_pk(2), Some("AUDIT#")).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].n("event").unwrap(), 3);
    assert_eq!(audit[0].n("target_object").unwrap(), 20);
    assert_eq!(audit[0].s("target_user_id").unwrap(), "42");
    let data: serde_json::Value = serde_json::from_str(audit[0].s("data").unwrap()).unwrap();
    assert_eq!(data, parse_member_audit(&m));
    assert_eq!(env.table.query(&keys::org_pk(2), Some("JOINED#")).await.unwrap().len(), 1);
    let u = env.user("42").await;
    let kind = InterfaceType::from_id(iface).unwrap();
    assert!(u.authenticator(kind).is_some() && u.authenticator(InterfaceType::Recovery).is_some());
    if iface == "sms" {
        assert_eq!(u.authenticator(kind).unwrap().config["phone_number"], PHONE);
    }
});

fn parse_member_audit(m: &shared::domain::org::Member) -> serde_json::Value {
    m.audit_data()
}

each_interface!(user_already_org_member_drops_the_invite, |env: Env, iface: &'static str| async move {
    // test_user_already_org_member: init the invite, then the user becomes a member another way.
    env.seed(seed()).await;
    let cookie = init_invite(&env, "42").await;
    env.seed(json!({"members": [{"id": 21, "organization_id": 2, "user_id": "42"}]})).await;
    let r = env.enroll_via(iface, &claims("42"), Some(&cookie)).await;
    assert_eq!(r.status, 204);
    assert!(member20(&env).await.is_none(), "invite row deleted");
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert!(env.table.get(&keys::member(21)).await.unwrap().is_some(), "the real membership stays");
});

each_interface!(org_member_does_not_exist, |env: Env, iface: &'static str| async move {
    // test_org_member_does_not_exist: the invite behind the cookie is gone → 204, nothing else.
    env.seed(seed()).await;
    let cookie = init_invite(&env, "42").await;
    let m = member20(&env).await.unwrap();
    env.table.transact(shared::storage::orgs::delete_pending_ops(&m)).await.unwrap();
    let r = env.enroll_via(iface, &claims("42"), Some(&cookie)).await;
    assert_eq!(r.status, 204);
    assert!(r.header("set-cookie").is_none(), "cookie left in place");
    assert!(env.user("42").await.memberships.is_empty());
});

each_interface!(invalid_token_leaves_the_invite, |env: Env, iface: &'static str| async move {
    // test_invalid_token: the member's token changed after the GET → 204, member unchanged.
    env.seed(seed()).await;
    let cookie = init_invite(&env, "42").await;
    env.seed(json!({"members": [{"id": 20, "organization_id": 2, "email": "newuser@example.com", "token": "123"}]})).await;
    let r = env.enroll_via(iface, &claims("42"), Some(&cookie)).await;
    assert_eq!(r.status, 204);
    let m = member20(&env).await.unwrap();
    assert!(m.is_pending());
    assert_eq!(m.email.as_deref(), Some("newuser@example.com"));
});

each_interface!(enroll_without_pending_invite, |env: Env, iface: &'static str| async move {
    // test_enroll_without_pending_invite__no_error; and a tampered or other user's cookie is ignored.
    env.seed(seed()).await;
    assert_eq!(env.enroll_via(iface, &claims("42"), None).await.status, 204);
    let cookie = init_invite(&env, "43").await;
    let r = env.enroll_via(iface, &claims("44"), Some(&cookie)).await;
    assert_eq!(r.status, 204);
    assert!(member20(&env).await.unwrap().is_pending(), "a cookie bound to user 43 does nothing for 44");
    let tampered = format!("{}x", cookie);
    assert_eq!(env.enroll_via(iface, &claims("43"), Some(&tampered)).await.status, 204);
    assert!(member20(&env).await.unwrap().is_pending());
});

async fn twenty_concurrent_enrollments(env: Env) {
    let c = claims("42");
    let secret = env.issue_secret(&c).await;
    let code = env.code(&secret);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let h = env.handler.clone();
        let body = json!({"secret": secret, "otp": code});
        let c = c.clone();
        tasks.push(tokio::spawn(
            async move { h.handle_api(&request("POST", "me", "totp", Some(c), body)).await },
        ));
    }
    let mut ok = 0;
    for t in tasks {
        let r = t.await.unwrap();
        if r.status == 204 {
            ok += 1;
        } else {
            assert_eq!(r.status, 400, "{:?}", r.body);
        }
    }
    // One enrollment happened. A request that lost the race in flight is refused (400); one that
    // started after the winner committed sees its own secret enrolled and gets the same 204 (the
    // idempotent retry), writing nothing.
    assert!(ok >= 1);
    let u = env.user("42").await;
    assert_eq!(u.authenticators.iter().filter(|a| a.kind == InterfaceType::Totp).count(), 1);
    assert_eq!(u.authenticators.iter().filter(|a| a.kind == InterfaceType::Recovery).count(), 1);
    assert_eq!(env.activities("42").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_enrollments_memory() {
    // The daily limit (10) would answer half of them 429; this test is about the race.
    twenty_concurrent_enrollments(memory_env(config_with(|c| c.enroll_rate_limit = 100)).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_enrollments_dynamodb() {
    let Some(env) =
        dynamo_env("twenty_concurrent_enrollments_dynamodb", config_with(|c| c.enroll_rate_limit = 100))
            .await
    else {
        return;
    };
    twenty_concurrent_enrollments(env).await;
}

/// Sequential round trips of POST: 2 without and 2 with a pending invite (one concurrent read round,
/// one transaction).
#[tokio::test]
async fn round_trips_dynamodb() {
    let Some(env) = dynamo_env("enroll_round_trips_dynamodb", config_with(|_| {})).await else { return };
    env.seed(seed()).await;
    let rec = env.recorder.clone().unwrap();
    let c = claims("42");

    let secret = env.issue_secret(&c).await;
    let code = env.code(&secret);
    rec.reset();
    let r = env.post("me", "totp", Some(c.clone()), json!({"secret": secret, "otp": code})).await;
    assert_eq!(r.status, 204);
    assert_eq!(rec.sequential_round_trips(), 2, "{:?}", rec.operations());
    let mut ops = rec.operations();
    ops.sort();
    assert_eq!(ops, ["Query", "TransactWriteItems", "UpdateItem"]);

    let cookie = init_invite(&env, "43").await;
    let c43 = claims("43");
    let secret = env.issue_secret(&c43).await;
    let code = env.code(&secret);
    rec.reset();
    let r = env.post_with_cookie(c43, json!({"secret": secret, "otp": code}), &cookie).await;
    assert_eq!(r.status, 204);
    assert_eq!(rec.sequential_round_trips(), 2, "{:?}", rec.operations());
    assert_eq!(
        member20(&env).await.unwrap().user_id.as_deref(),
        Some("43"),
        "accepted in the same transaction"
    );
}
