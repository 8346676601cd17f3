//! Behaviour matrices A (GET) and B (POST) of `spec/sentry-enroll-invite.md` for the TOTP and recovery
//! rows (sms and u2f rows: `sms_u2f.rs`), with Sentry's `UserAuthenticatorEnrollTest` (3.1, TOTP variants) and `AuthenticatorTest` (3.7),
//! on the in-memory adapters and on DynamoDB Local.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{Value, json};
use shared::domain::user::InterfaceType;
use shared::http::ReplyBody;
use shared::storage::item::ItemExt;

fn local() -> shared::config::Config {
    config_with(|_| {})
}

// ---------- matrix A: GET ----------

both_backends!(get_requires_authentication_user_permission_and_sudo, local(), |env: Env| async move {
    assert_eq!(env.get("me", "totp", None).await.status, 401);
    // Unknown user → 404; an existing other user for a non-superuser → 403.
    let r = env.get("999", "totp", Some(claims("42"))).await;
    assert_eq!((r.status, r.json_body()), (404, json!({"detail": "The requested resource does not exist"})));
    env.seed(json!({"users": [{"id": "7", "email": "seven@example.com"}]})).await;
    let r = env.get("7", "totp", Some(claims("42"))).await;
    assert_eq!(
        (r.status, r.json_body()),
        (403, json!({"detail": "You do not have permission to perform this action."}))
    );
    // No sudo: auth_time older than the window.
    let mut stale = claims("42");
    stale.auth_time = Some(NOW - 10_801);
    let r = env.get("me", "totp", Some(stale)).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json_body(),
        json!({"detail": {"code": "sudo-required", "message": "Account verification required.", "extra": {"username": "admin@localhost"}}})
    );
    assert!(env.user("42").await.pending.is_empty(), "nothing issued before the checks pass");
});

both_backends!(get_unknown_or_unavailable_interface_is_404, local(), |env: Env| async move {
    // (sms and u2f without configuration: tests/sms_u2f.rs)
    for iface in ["foo", "TOTP", "SMS", "recovery"] {
        assert_eq!(env.get("me", iface, Some(claims("42"))).await.status, 404, "{iface}");
    }
});

both_backends!(get_totp_new, local(), |env: Env| async move {
    // TE test_totp_can_enroll (GET part).
    let r = env.get("me", "totp", Some(claims("42"))).await;
    assert_eq!(r.status, 200);
    let b = r.json_body();
    let secret = b["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 32);
    assert_eq!(b["qrcode"], format!("otpauth://totp/admin%40localhost?issuer=Sentry&secret={secret}"));
    assert_eq!(b["status"], "new");
    assert_eq!(b["isEnrolled"], false);
    assert_eq!(b["id"], "totp");
    assert_eq!(b["name"], "Authenticator App");
    assert_eq!(
        b["form"],
        json!([{"name": "otp", "defaultValue": null, "read_only": false, "required": true, "type": "string", "max_length": 20, "label": "Authenticator token"}])
    );
    // Server-bound (DECISIONS 2): the issued secret is stored for the caller for 15 minutes.
    let u = env.user("42").await;
    assert_eq!(u.pending_secret(InterfaceType::Totp, NOW).unwrap().secret.expose(), secret);
    assert!(u.pending_secret(InterfaceType::Totp, NOW + 900).is_none());
});

both_backends!(get_totp_enrolled_is_rotation, local(), |env: Env| async move {
    assert_eq!(env.enroll_totp(&claims("42")).await.status, 204);
    let r = env.get("me", "totp", Some(claims("42"))).await;
    let b = r.json_body();
    assert_eq!(
        (r.status, b["status"].clone(), b["isEnrolled"].clone()),
        (200, json!("rotation"), json!(false))
    );
    assert!(b.get("authId").is_none());
    assert_eq!(b["allowRotationInPlace"], true);
    assert_ne!(b["secret"], Value::Null);
});

both_backends!(get_recovery, local(), |env: Env| async move {
    assert_eq!(
        env.get("me", "recovery", Some(claims("42"))).await.status,
        404,
        "not enrolled: no form (DECISIONS 1)"
    );
    assert_eq!(env.enroll_totp(&claims("42")).await.status, 204);
    let r = env.get("me", "recovery", Some(claims("42"))).await;
    assert_eq!((r.status, r.json_body()), (400, json!({"details": "Already enrolled"})));
});

both_backends!(get_superuser_other_user, local(), |env: Env| async move {
    env.seed(json!({"users": [{"id": "7", "email": "seven@example.com"}]})).await;
    let mut su = claims("1");
    su.superuser = true;
    let r = env.get("7", "totp", Some(su)).await;
    assert_eq!(r.status, 200);
    assert!(
        r.json_body()["qrcode"].as_str().unwrap().starts_with("otpauth://totp/seven%40example.com?"),
        "path user's account"
    );
    assert!(env.user("7").await.authenticators.is_empty());
});

// ---------- matrix B: POST ----------

both_backends!(post_totp_can_enroll_then_rotate, local(), |env: Env| async move {
    // TE test_totp_can_enroll.
    let c = claims("42");
    let secret = env.issue_secret(&c).await;
    let r =
        env.post("me", "totp", Some(c.clone()), json!({"secret": secret, "otp": env.code(&secret)})).await;
    assert_eq!((r.status, &r.body), (204, &ReplyBody::Empty));
    let u = env.user("42").await;
    let totp = u.authenticator(InterfaceType::Totp).unwrap().clone();
    assert_eq!(totp.config, json!({"secret": secret}), "config is exactly the secret");
    assert!(has(&u, InterfaceType::Recovery), "also enrolls in recovery codes");
    assert!(u.has_2fa(|_| true));
    let acts = env.activities("42").await;
    assert_eq!(acts.len(), 1, "one mfa-added");
    assert_eq!(acts[0].s("type").unwrap(), "mfa-added");
    assert_eq!(acts[0].s("authenticator_id").unwrap(), totp.id);
    assert_eq!(acts[0].s("ip_address").unwrap(), "127.0.0.1");
    assert_eq!(acts[0].s("user_agent").unwrap(), "pytest/1.0");

    // Rotation in place: GET again, POST the new secret → same row, new config, created_at now, last_used cleared.
    env.clock.advance_secs(90);
    let secret2 = env.issue_secret(&c).await;
    assert_ne!(secret2, secret);
    let r =
        env.post("me", "totp", Some(c.clone()), json!({"secret": secret2, "otp": env.code(&secret2)})).await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let u = env.user("42").await;
    let rotated = u.authenticator(InterfaceType::Totp).unwrap();
    assert_eq!(rotated.id, totp.id);
    assert_eq!(rotated.config, json!({"secret": secret2}));
    assert_eq!(rotated.created_at, (NOW + 90) * 1000);
    assert!(rotated.last_used_at.is_none());
    assert_eq!(
        u.authenticators.iter().filter(|a| a.kind == InterfaceType::Recovery).count(),
        1,
        "recovery codes once"
    );
    assert_eq!(env.activities("42").await.len(), 2);
});

both_backends!(post_no_verified_primary_email, local(), |env: Env| async move {
    // TE test_totp_no_verified_primary_email: GET 200, POST 401 with Sentry's body.
    let mut c = claims("42");
    c.email_verified = false;
    c.email = Some("bar@example.com".into());
    assert_eq!(env.get("me", "totp", Some(c.clone())).await.status, 200);
    let r = env.post("me", "totp", Some(c), json!({"secret": "x", "otp": "1234"})).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json_body(),
        json!({"detail": {"code": "primary-email-verification-required", "message": "Primary email verification required.", "extra": {"username": "bar@example.com"}}})
    );
});

both_backends!(post_checks_before_anything_is_written, local(), |env: Env| async move {
    env.seed(json!({"users": [{"id": "7"}]})).await;
    assert_eq!(env.post("me", "totp", None, json!({})).await.status, 401);
    assert_eq!(env.post("999", "totp", Some(claims("42")), json!({})).await.status, 404);
    assert_eq!(env.post("7", "totp", Some(claims("42")), json!({})).await.status, 403);
    let mut stale = claims("42");
    stale.auth_time = None;
    assert_eq!(env.post("me", "totp", Some(stale), json!({})).await.status, 401);
    let u = env.user("42").await;
    assert!(!u.exists && u.authenticators.is_empty(), "a rejected request wrote nothing");
});

both_backends!(post_validation_and_interface_errors, local(), |env: Env| async move {
    let c = claims("42");
    // Interface without an enrollment serializer → 404 with an empty body (recovery, unknown).
    for iface in ["recovery", "foo"] {
        let r = env.post("me", iface, Some(c.clone()), json!({"otp": "1"})).await;
        assert_eq!((r.status, &r.body), (404, &ReplyBody::Empty));
    }
    let r = env.post("me", "totp", Some(c.clone()), json!({})).await;
    assert_eq!((r.status, r.json_body()), (400, json!({"otp": ["This field is required."]})));
    let r = env.post("me", "totp", Some(c.clone()), json!({"otp": "123456789012345678901"})).await;
    assert_eq!(r.json_body(), json!({"otp": ["Ensure this field has no more than 20 characters."]}));
    // Malformed JSON → 400.
    let mut req = request("POST", "me", "totp", Some(c.clone()), Value::Null);
    req.body = b"{nope".to_vec();
    assert_eq!(env.handler.handle_api(&req).await.status, 400);
    // Missing / foreign / expired secret (DECISIONS 1 and 2).
    let r = env.post("me", "totp", Some(c.clone()), json!({"otp": "123456"})).await;
    assert_eq!((r.status, r.json_body()), (400, json!({"secret": ["This field is required."]})));
    let r = env
        .post(
            "me",
            "totp",
            Some(c.clone()),
            json!({"otp": "123456", "secret": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"}),
        )
        .await;
    assert_eq!((r.status, r.json_body()), (400, json!({"details": "Invalid secret"})));
    let secret = env.issue_secret(&c).await;
    let r = env
        .post(
            "me",
            "totp",
            Some(c.clone()),
            json!({"otp": "123456", "secret": secret, "phone": "2345678900"}),
        )
        .await;
    assert_eq!(r.status, 400, "phone on a non-SMS interface");
    env.clock.advance_secs(901);
    let r =
        env.post("me", "totp", Some(c.clone()), json!({"otp": env.code(&secret), "secret": secret})).await;
    assert_eq!((r.status, r.json_body()), (400, json!({"details": "Invalid secret"})), "expired");
    assert!(env.user("42").await.authenticators.is_empty());
});

both_backends!(post_invalid_otp, local(), |env: Env| async move {
    // TE test_invalid_otp: 400 array body, nothing enrolled, no mfa-added.
    let c = claims("42");
    let secret = env.issue_secret(&c).await;
    let good = env.code(&secret);
    let bad = if good == "000000" { "000001".to_owned() } else { "000000".to_owned() };
    let r = env.post("me", "totp", Some(c.clone()), json!({"secret": secret, "otp": bad})).await;
    assert_eq!((r.status, r.json_body()), (400, json!([{"details": "Invalid OTP"}])));
    assert!(env.user("42").await.authenticators.is_empty());
    assert!(env.activities("42").await.is_empty());
    // The secret was not consumed: a correct code still works; "287 082"-style spacing is accepted.
    let spaced = format!("{} {}", &good[..3], &good[3..]);
    assert_eq!(env.post("me", "totp", Some(c), json!({"secret": secret, "otp": spaced})).await.status, 204);
});

both_backends!(post_code_is_rejected_the_second_time, local(), |env: Env| async move {
    // DECISIONS 3: a code accepted once is rejected for the rest of its window, also at first enrollment.
    let c = claims("42");
    let secret = env.issue_secret(&c).await;
    let code = env.code(&secret);
    assert_eq!(
        env.post("me", "totp", Some(c.clone()), json!({"secret": secret, "otp": code})).await.status,
        204
    );
    // Re-issue the very same secret (as if GET had produced it again) and replay the code.
    use shared::ports::EnrollmentStore;
    let store = shared::storage::enroll::TableEnrollmentStore::new(env.table.clone());
    store
        .put_pending_secret(
            "42",
            InterfaceType::Totp,
            &shared::secret::Secret::new(secret.clone()),
            None,
            NOW + 900,
        )
        .await
        .unwrap();
    env.clock.advance_secs(30);
    let r = env.post("me", "totp", Some(c.clone()), json!({"secret": secret, "otp": code})).await;
    assert_eq!((r.status, r.json_body()), (400, json!([{"details": "Invalid OTP"}])));
    // After the window the counter item has expired and a fresh code works.
    env.clock.advance_secs(120);
    assert_eq!(
        env.post("me", "totp", Some(c), json!({"secret": secret, "otp": env.code(&secret)})).await.status,
        204
    );
});

both_backends!(
    post_disallow_new_enrollment,
    config_with(|c| {
        c.disallow_new_enrollment.insert("totp".into());
    }),
    |env: Env| async move {
        // TE test_totp_disallow_new_enrollment.
        let c = claims("42");
        let secret = env.issue_secret(&c).await;
        let r = env.post("me", "totp", Some(c), json!({"secret": secret, "otp": env.code(&secret)})).await;
        assert_eq!(
            (r.status, r.json_body()),
            (403, json!({"details": "New enrollments for this 2FA interface are not allowed"}))
        );
        assert!(env.user("42").await.authenticators.is_empty());
    }
);

both_backends!(post_rate_limited, local(), |env: Env| async move {
    // 10 POSTs per user and interface per UTC day; every POST counts (also invalid ones).
    let c = claims("42");
    for _ in 0..10 {
        assert_eq!(env.post("me", "totp", Some(c.clone()), json!({})).await.status, 400);
    }
    let r = env.post("me", "totp", Some(c.clone()), json!({})).await;
    assert_eq!(r.status, 429);
    assert_eq!(
        r.body,
        ReplyBody::Text(
            "You have made too many authenticator enrollment attempts. Please try again later.".into()
        )
    );
    assert_eq!(r.clone().into_response().headers()["content-type"], "text/plain; charset=utf-8");
    // Case and the `me` alias do not open a new bucket.
    assert_eq!(env.post("me", "TOTP", Some(c.clone()), json!({})).await.status, 429);
    assert_eq!(env.post("42", "totp", Some(c.clone()), json!({})).await.status, 429);
    // GET is not rate limited; another user is not affected; the next UTC day starts over.
    assert_eq!(env.get("me", "totp", Some(c.clone())).await.status, 200);
    assert_eq!(env.post("me", "totp", Some(claims("43")), json!({})).await.status, 400);
    env.clock.set_secs((NOW / 86_400 + 1) * 86_400);
    let mut fresh = c.clone();
    fresh.auth_time = Some((NOW / 86_400 + 1) * 86_400);
    assert_eq!(env.post("me", "totp", Some(fresh), json!({})).await.status, 400);
});

both_backends!(post_superuser_enrolls_themselves, local(), |env: Env| async move {
    // TE test_u2f_superuser_and_staff_cannot_enroll_other_user, TOTP variant: the enrollment lands on
    // the superuser, not on the path user.
    env.seed(json!({"users": [{"id": "7", "email": "seven@example.com"}]})).await;
    let mut su = claims("1");
    su.superuser = true;
    let secret = env.issue_secret(&su).await;
    let r =
        env.post("7", "totp", Some(su.clone()), json!({"secret": secret, "otp": env.code(&secret)})).await;
    assert_eq!(r.status, 204);
    assert!(env.user("7").await.authenticators.is_empty());
    assert!(has(&env.user("1").await, InterfaceType::Totp));
});

both_backends!(recovery_codes_are_added_once, local(), |env: Env| async move {
    // AuthenticatorTest.test_user_has_2fa: fresh → no 2FA; after TOTP: 2FA, 2 rows (TOTP + recovery).
    assert!(!env.user("42").await.has_2fa(|_| true));
    assert_eq!(env.enroll_totp(&claims("42")).await.status, 204);
    let u = env.user("42").await;
    assert!(u.has_2fa(|_| true));
    assert_eq!(u.authenticators.len(), 2);
    let rc = u.authenticator(InterfaceType::Recovery).unwrap();
    let salt = rc.config["salt"].as_str().unwrap();
    let codes = shared::domain::otp::RecoveryCodes { salt, used: 0 }.unused_display();
    assert_eq!(codes.len(), 10);
    assert!(codes.iter().all(|c| c.len() == 9 && c.as_bytes()[4] == b'-'));
});

/// A code computed by an independent implementation (pyotp) for the issued secret is accepted. Runs
/// when `PYOTP_PYTHON` names a Python with pyotp (the test command installs it; mandatory in CI).
#[tokio::test]
async fn pyotp_codes_are_accepted() {
    let Some(python) = std::env::var("PYOTP_PYTHON").ok() else {
        assert!(
            std::env::var("CI").is_err() && std::env::var("CI_EMULATORS_REQUIRED").is_err(),
            "PYOTP_PYTHON must be set in CI"
        );
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "SKIPPED pyotp_codes_are_accepted: PYOTP_PYTHON not set");
        return;
    };
    let env = memory_env(local()).await;
    let c = claims("42");
    let secret = env.issue_secret(&c).await;
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import sys, pyotp; print(pyotp.TOTP(sys.argv[1]).at(int(sys.argv[2])))",
            &secret,
            &NOW.to_string(),
        ])
        .output()
        .expect("run python");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let code = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(code.len(), 6);
    assert_eq!(env.post("me", "totp", Some(c), json!({"secret": secret, "otp": code})).await.status, 204);
}

both_backends!(retry_of_a_committed_enrollment_is_204, local(), |env: Env| async move {
    // The answer of a committed enrollment was lost; the client sends the same POST again: 204 again,
    // nothing written twice. Another secret (never issued) is still refused.
    let c = claims("42");
    let secret = env.issue_secret(&c).await;
    let body = json!({"secret": secret, "otp": env.code(&secret)});
    assert_eq!(env.post("me", "totp", Some(c.clone()), body.clone()).await.status, 204);
    let r = env.post("me", "totp", Some(c.clone()), body).await;
    assert_eq!((r.status, &r.body), (204, &ReplyBody::Empty));
    assert_eq!(env.activities("42").await.len(), 1, "nothing written twice");
    let r = env
        .post("me", "totp", Some(c), json!({"secret": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "otp": "123456"}))
        .await;
    assert_eq!((r.status, r.json_body()), (400, json!({"details": "Invalid secret"})));
});
