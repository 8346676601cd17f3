//! Behaviour matrices C (GET) and D (POST) of `spec/sentry-enroll-invite.md`, with Sentry's
//! `AcceptInviteTest` (3.3) and `ApiInviteHelperTest` (3.4) rows, on the in-memory table and on
//! DynamoDB Local. Every route test runs by slug and by id, as Sentry's tests run every route variant.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;
use shared::domain::cookie::{COOKIE_NAME, InviteCookie};
use shared::storage::item::ItemExt;

async fn invite_cookie(env: &Env, r: &shared::http::Reply, caller: Option<&str>) -> InviteCookie {
    let header = set_cookie(r).expect("Set-Cookie");
    let value = header.strip_prefix(&format!("{COOKIE_NAME}=")).unwrap().split(';').next().unwrap();
    InviteCookie::decode(value, env.config.invite_cookie_key.as_ref().unwrap(), NOW, caller)
        .expect("valid signed cookie")
}

// ---------- matrix C: GET ----------

both_backends!(get_invalid_cases_are_400, |env: Env| async move {
    // TA test_invalid_member_id, unknown org, member of another org, non-numeric member id.
    for (org, member, token) in [
        ("acme", "1", "2"),
        ("nope", "10", TOKEN),
        ("99", "10", TOKEN),
        ("secure", "10", TOKEN),
        ("acme", "abc", TOKEN),
        ("acme", "-1", TOKEN),
        ("acme", "99999999999999999999999", TOKEN),
        ("a/b", "10", TOKEN),
    ] {
        let r = env.call("GET", org, member, token, None).await;
        assert_details(&r, 400, "Invalid invite code");
    }
    // TA test_invalid_token, test_invite_not_pending (owner membership 1), test_invite_unapproved, expired.
    assert_details(&env.call("GET", "acme", "10", "2", None).await, 400, "Invalid invite code");
    assert_details(&env.call("GET", "acme", "1", TOKEN, None).await, 400, "Invalid invite code");
    assert_details(&env.call("GET", "acme", "11", TOKEN, None).await, 400, "Invalid invite code");
    assert_details(&env.call("GET", "acme", "12", TOKEN, None).await, 400, "Invalid invite code");
    // A token expires exactly at token_expires_at (`<= now`).
    env.clock.set_secs(NOW + 30 * 86_400);
    assert_details(&env.call("GET", "acme", "10", TOKEN, None).await, 400, "Invalid invite code");
});

both_backends!(get_anonymous_needs_authentication, |env: Env| async move {
    for org in ["acme", "1"] {
        let r = env.call("GET", org, "10", TOKEN, None).await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.json_body(),
            json!({"orgSlug": "acme", "needsAuthentication": true, "needsSso": false, "hasAuthProvider": false,
                   "requireSso": false, "existingMember": false, "needs2fa": false, "needsEmailVerification": false})
        );
        // Sentry writes the invite into the session for anonymous callers: our signed cookie.
        let c = invite_cookie(&env, &r, None).await;
        assert_eq!((c.member_id, c.org_id, c.token.as_str(), c.user_id.as_deref()), (10, 1, TOKEN, None));
        let header = set_cookie(&r).unwrap();
        for attr in ["HttpOnly", "Secure", "SameSite=Lax", "Max-Age=604800", "Path=/"] {
            assert!(header.contains(attr), "{header}");
        }
    }
});

both_backends!(get_authenticated_does_not_need_authentication, |env: Env| async move {
    let r = env.call("GET", "acme", "10", TOKEN, Some(claims("42"))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json_body()["needsAuthentication"], false);
    assert_eq!(r.json_body()["needs2fa"], false);
    assert_eq!(r.json_body()["existingMember"], false);
    assert!(set_cookie(&r).is_none(), "no onboarding step: nothing to remember");
});

both_backends!(get_user_needs_2fa, |env: Env| async move {
    for org in ["secure", "2"] {
        let r = env.call("GET", org, "20", TOKEN, Some(claims("42"))).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json_body()["needs2fa"], true);
        let c = invite_cookie(&env, &r, Some("42")).await;
        assert_eq!((c.member_id, c.org_id, c.token.as_str()), (20, 2, TOKEN));
        assert_eq!(c.user_id.as_deref(), Some("42"), "bound to the caller");
    }
});

both_backends!(get_user_has_2fa, |env: Env| async move {
    env.enroll_totp("42").await;
    let r = env.call("GET", "secure", "20", TOKEN, Some(claims("42"))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json_body()["needs2fa"], false);
    assert!(set_cookie(&r).is_none(), "TA test_user_has_2fa: no invite keys in the session");
});

both_backends!(get_user_can_use_sso, |env: Env| async move {
    let r = env.call("GET", "sso", "30", TOKEN, Some(claims("42"))).await;
    assert_eq!(r.status, 200);
    let b = r.json_body();
    assert_eq!(
        (b["needsSso"].clone(), b["hasAuthProvider"].clone(), b["requireSso"].clone()),
        (json!(true), json!(true), json!(true))
    );
    assert_eq!(b["ssoProvider"], "Google");
    assert!(set_cookie(&r).is_some());
    let r = env.call("GET", "sso-optional", "40", TOKEN, Some(claims("42"))).await;
    assert_eq!(r.json_body()["requireSso"], false);
    assert_eq!(r.json_body()["ssoProvider"], "Friendly IdP");
});

both_backends!(get_email_verification_step, |env: Env| async move {
    let mut c = claims("42");
    c.email_verified = false;
    let r = env.call("GET", "verified", "50", TOKEN, Some(c)).await;
    assert_eq!(r.json_body()["needsEmailVerification"], true);
    assert!(set_cookie(&r).is_some());
    let r = env.call("GET", "verified", "50", TOKEN, Some(claims("42"))).await;
    assert_eq!(r.json_body()["needsEmailVerification"], false);
});

both_backends!(get_existing_member_is_invalid, |env: Env| async move {
    // The caller's own (accepted) membership shadows the invite: not pending → 400 (spec open question 6).
    let r = env.call("GET", "acme", "10", TOKEN, Some(claims("1"))).await;
    assert_details(&r, 400, "Invalid invite code");
});

both_backends!(mismatched_org_slug, |env: Env| async move {
    // TA test_mismatched_org_slug: GET and POST on an unknown org slug are 400.
    assert_details(
        &env.call("GET", "asdf", "10", TOKEN, Some(claims("42"))).await,
        400,
        "Invalid invite code",
    );
    assert_details(
        &env.call("POST", "asdf", "10", TOKEN, Some(claims("42"))).await,
        400,
        "Invalid invite code",
    );
    assert!(env.member(10).await.unwrap().is_pending());
});

// ---------- matrix D: POST ----------

both_backends!(post_anonymous_is_unable, |env: Env| async move {
    assert_details(
        &env.call("POST", "acme", "10", TOKEN, None).await,
        400,
        "unable to accept organization invite",
    );
    assert!(env.member(10).await.unwrap().is_pending());
});

both_backends!(post_accepts_while_authenticated, |env: Env| async move {
    // TA test_can_accept_while_authenticated, by slug and by id.
    for (org, member, user) in [("acme", 10u64, "42"), ("1", 13, "43")] {
        let token = if member == 13 { "abcd" } else { TOKEN };
        env.clock.advance_secs(1);
        let r = env.call("POST", org, &member.to_string(), token, Some(claims(user))).await;
        assert_eq!(r.status, 204, "{:?}", r.body);
        assert!(set_cookie(&r).unwrap().contains("Max-Age=0"), "invite cookie cleared");
        let m = env.member(member).await.unwrap();
        assert_eq!(m.user_id.as_deref(), Some(user));
        assert!(m.email.is_none() && m.token_hash.is_none() && m.token_expires_at.is_none());
        assert_eq!(env.memberships(user).await.len(), 1);
    }
    let audit = audit_entries(&env.org_items(1, "AUDIT#").await);
    assert_eq!(audit.len(), 2);
    assert_eq!(
        audit[0],
        json!({"event": 3, "actor": "42", "target_object": 10, "target_user": "42",
               "data": {"email": null, "teams": [], "teams_slugs": [], "has_global_access": false, "role": "member", "invite_status": "approved", "user": "42"}})
    );
    let joined = env.org_items(1, "JOINED#").await;
    assert_eq!(joined.iter().map(|j| j.n("member_id").unwrap()).collect::<Vec<_>>(), [10, 13]);
    // The (org, email) slot of the accepted invite is released.
    assert!(env.org_items(1, "EMAIL#newuser@").await.is_empty());
});

both_backends!(post_expired_and_unapproved_are_unable, |env: Env| async move {
    // TA test_cannot_accept_expired / test_cannot_accept_unapproved_invite: still pending, token kept.
    for member in [12u64, 11] {
        assert_details(
            &env.call("POST", "acme", &member.to_string(), TOKEN, Some(claims("42"))).await,
            400,
            "unable to accept organization invite",
        );
        let m = env.member(member).await.unwrap();
        assert!(m.is_pending());
        assert_eq!(m.token_hash, Some(token_hash()));
    }
    assert_details(
        &env.call("POST", "acme", "10", "wrong", Some(claims("42"))).await,
        400,
        "unable to accept organization invite",
    );
    assert!(env.memberships("42").await.is_empty());
});

both_backends!(post_needs_2fa_then_has_2fa, |env: Env| async move {
    // TA test_cannot_accept_when_user_needs_2fa, then test_can_accept_when_user_has_2fa.
    assert_details(
        &env.call("POST", "secure", "20", TOKEN, Some(claims("42"))).await,
        400,
        "unable to accept organization invite",
    );
    assert!(env.member(20).await.unwrap().is_pending());
    env.enroll_totp("42").await;
    let r = env.call("POST", "secure", "20", TOKEN, Some(claims("42"))).await;
    assert_eq!(r.status, 204);
    assert!(set_cookie(&r).unwrap().contains("Max-Age=0"));
    assert_eq!(env.member(20).await.unwrap().user_id.as_deref(), Some("42"));
    assert_eq!(audit_entries(&env.org_items(2, "AUDIT#").await).len(), 1);
});

both_backends!(post_needs_email_verification, |env: Env| async move {
    let mut c = claims("42");
    c.email_verified = false;
    assert_details(
        &env.call("POST", "verified", "50", TOKEN, Some(c)).await,
        400,
        "unable to accept organization invite",
    );
    assert_eq!(env.call("POST", "verified", "50", TOKEN, Some(claims("42"))).await.status, 204);
});

both_backends!(post_sso_required, |env: Env| async move {
    // TI rows 5 and 6: required SSO without identity → not accepted; with identity → accepted.
    assert_details(
        &env.call("POST", "sso", "30", TOKEN, Some(claims("42"))).await,
        400,
        "unable to accept organization invite",
    );
    assert!(env.member(30).await.unwrap().is_pending());
    common::seed(&env, json!({"identities": [{"organization_id": 3, "user_id": "42"}]})).await;
    assert_eq!(env.call("POST", "sso", "30", TOKEN, Some(claims("42"))).await.status, 204);
    // TI row 3: optional SSO needs no identity.
    assert_eq!(env.call("POST", "sso-optional", "40", TOKEN, Some(claims("42"))).await.status, 204);
});

both_backends!(post_member_already_exists_without_the_token_deletes_nothing, |env: Env| async move {
    // Hardening (Sentry deletes it): a member who names another pending invite of the org without its
    // token gets "member already exists", and the invite stays.
    assert_eq!(env.call("POST", "acme", "10", TOKEN, Some(claims("42"))).await.status, 204);
    for token in ["wrong-token", TOKEN] {
        let r = env.call("POST", "acme", "13", token, Some(claims("42"))).await;
        assert_details(&r, 400, "member already exists");
        assert!(env.member(13).await.is_some_and(|m| m.is_pending()), "invite 13 kept ({token})");
    }
    assert_eq!(env.org_items(1, "EMAIL#second@").await.len(), 1, "its e-mail slot too");
    // With its own token, it goes (the test below).
    let r = env.call("POST", "acme", "13", "abcd", Some(claims("42"))).await;
    assert_details(&r, 400, "member already exists");
    assert!(env.member(13).await.is_none());
});

both_backends!(post_member_already_exists_deletes_only_the_pending_invite, |env: Env| async move {
    // TA test_member_already_exists: accept invite 10, then POST invite 13 → 400 and invite 13 deleted.
    assert_eq!(env.call("POST", "acme", "10", TOKEN, Some(claims("42"))).await.status, 204);
    let r = env.call("POST", "acme", "13", "abcd", Some(claims("42"))).await;
    assert_details(&r, 400, "member already exists");
    assert!(set_cookie(&r).unwrap().contains("Max-Age=0"));
    assert!(env.member(13).await.is_none(), "pending invite row deleted");
    assert!(env.org_items(1, "EMAIL#second@").await.is_empty(), "its e-mail slot too");
    // TI row 2 / DECISIONS 5: posting the accepted invite again never deletes the accepted membership.
    // The caller is the member this invite created: a retry whose first answer was lost gets the same
    // outcome again, 204, and nothing is written (Sentry answers "member already exists").
    let audits = audit_entries(&env.org_items(1, "AUDIT#").await).len();
    let r = env.call("POST", "acme", "10", TOKEN, Some(claims("42"))).await;
    assert_eq!(r.status, 204);
    assert_eq!(env.member(10).await.unwrap().user_id.as_deref(), Some("42"));
    assert_eq!(audit_entries(&env.org_items(1, "AUDIT#").await).len(), audits, "nothing written");
    // Another user posting that accepted invite: "member already exists"? No — the invite is no longer
    // pending for them: 400 as Sentry.
    assert_eq!(env.call("POST", "acme", "10", TOKEN, Some(claims("77"))).await.status, 400);
    // The owner (member 1) posting someone's invite: 400, the owner membership untouched.
    common::seed(
        &env,
        json!({"members": [{"id": 14, "organization_id": 1, "email": "x@example.com", "token": TOKEN}]}),
    )
    .await;
    assert_details(
        &env.call("POST", "acme", "14", TOKEN, Some(claims("1"))).await,
        400,
        "member already exists",
    );
    assert!(env.member(1).await.is_some());
    assert_eq!(
        audit_entries(&env.org_items(1, "AUDIT#").await).len(),
        1,
        "only the real acceptance is audited"
    );
});

both_backends!(other_methods_are_405, |env: Env| async move {
    let r = env.call("DELETE", "acme", "10", TOKEN, Some(claims("42"))).await;
    assert_eq!(r.status, 405);
    assert!(env.member(10).await.unwrap().is_pending());
});
