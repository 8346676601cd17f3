//! The sms and u2f rows of behaviour matrices A (GET) and B (POST) of `spec/sentry-enroll-invite.md`,
//! Sentry's `UserAuthenticatorEnrollTest` (3.1) sms/u2f tests, `SmsInterfaceTest` (3.5) through the
//! handler, and WebAuthn registrations made by a software security key (`U2FInterfaceTest`, 3.6), on the
//! in-memory adapters and on DynamoDB Local. Races: one code, one ceremony → one enrollment.

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

async fn sms_secret(env: &Env, c: &shared::http::Claims) -> String {
    let r = env.get("me", "sms", Some(c.clone())).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.json_body()["secret"].as_str().unwrap().to_owned()
}

/// GET u2f and register a fresh software key for the returned challenge.
async fn u2f_response(env: &Env, c: &shared::http::Claims) -> (Value, String) {
    let r = env.get("me", "u2f", Some(c.clone())).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let body = r.json_body();
    let response = soft_token_register(&body["challenge"], "https://localhost");
    (body, response)
}

fn u2f_body(response: &str) -> Value {
    json!({"deviceName": "device name", "challenge": "challenge", "response": response})
}

// ---------- availability ----------

both_backends!(
    unavailable_without_configuration,
    config_with(|c| {
        c.sms_sender = None;
        c.webauthn = None;
    }),
    |env: Env| async move {
        // Sentry: SMS needs a Twilio account, u2f an https:// URL prefix (LookupError → 500; 404 here).
        for iface in ["sms", "u2f"] {
            assert_eq!(env.get("me", iface, Some(claims("42"))).await.status, 404, "{iface}");
            let r = env
                .post(
                    "me",
                    iface,
                    Some(claims("42")),
                    json!({"phone": PHONE, "challenge": "c", "response": "r"}),
                )
                .await;
            assert_eq!(r.status, 404, "{iface}");
        }
        assert!(env.user("42").await.pending.is_empty());
    }
);

// ---------- SMS: matrix A ----------

both_backends!(sms_get_new_and_enrolled, local(), |env: Env| async move {
    // TE test_sms_can_enroll (GET part): form and secret; the secret is bound to the caller.
    let r = env.get("me", "sms", Some(claims("42"))).await;
    assert_eq!(r.status, 200);
    let b = r.json_body();
    assert_eq!(
        (b["id"].clone(), b["status"].clone(), b["phone"].clone()),
        (json!("sms"), json!("new"), Value::Null)
    );
    assert_eq!(b["name"], "Text Message");
    assert_eq!(b["form"][0]["name"], "phone");
    assert_eq!(
        b["form"][1],
        json!({"name": "otp", "defaultValue": null, "read_only": false, "required": false, "type": "string", "max_length": 20, "label": "Authenticator code"})
    );
    assert!(b.get("qrcode").is_none());
    let secret = b["secret"].as_str().unwrap();
    assert_eq!(env.user("42").await.pending_secret(InterfaceType::Sms, NOW).unwrap().secret.expose(), secret);
    // Enrolled → 400 Already enrolled (no rotation for SMS).
    assert_eq!(env.enroll_via("sms", &claims("42"), None).await.status, 204);
    let r = env.get("me", "sms", Some(claims("42"))).await;
    assert_eq!((r.status, r.json_body()), (400, json!({"details": "Already enrolled"})));
});

// ---------- SMS: matrix B ----------

both_backends!(sms_send_then_enroll, local(), |env: Env| async move {
    // TE test_sms_can_enroll: POST {secret, phone} texts the code (204, nothing enrolled); POST with the
    // code enrolls (config phone_number as posted), adds recovery codes, records mfa-added.
    let c = claims("42");
    let secret = sms_secret(&env, &c).await;
    let r = env.post("me", "sms", Some(c.clone()), json!({"secret": secret, "phone": PHONE})).await;
    assert_eq!((r.status, &r.body), (204, &ReplyBody::Empty));
    let sent = env.outbox.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to_e164, PHONE_E164);
    let code = env.texted_code(PHONE_E164);
    assert_eq!(
        sent[0].text.expose(),
        format!(
            "{code} is your Sentry two-factor enrollment code. You are about to set up text message based two-factor authentication.\n"
        )
    );
    // The code is TOTP (45 s) over a key the client never saw: not computable from the issued secret.
    let t = shared::domain::otp::Totp::sms(&shared::secret::Secret::new(secret.clone())).unwrap();
    let from_secret: Vec<String> =
        (-1..=1).map(|i| t.code_at_counter((t.counter_at(NOW) + i) as u64)).collect();
    assert!(!from_secret.contains(&code), "the texted code does not follow from the client's secret");
    assert!(env.user("42").await.authenticators.is_empty(), "sending enrolls nothing");

    // Within ±1 step (45 s) the code is valid; "123 456" spacing accepted.
    env.clock.advance_secs(40);
    let spaced = format!("{} {}", &code[..3], &code[3..]);
    let r = env
        .post("me", "sms", Some(c.clone()), json!({"secret": secret, "phone": PHONE, "otp": spaced}))
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let u = env.user("42").await;
    let sms = u.authenticator(InterfaceType::Sms).unwrap();
    assert_eq!(sms.config["phone_number"], PHONE);
    let key = sms.config["secret"].as_str().unwrap();
    assert!(key.len() == 32 && key != secret, "the enrolled secret is the server-side key, not the client's");
    assert!(u.authenticator(InterfaceType::Recovery).is_some());
    assert!(u.pending_secret(InterfaceType::Sms, NOW + 40).is_none(), "secret consumed");
    let acts = env.activities("42").await;
    assert_eq!(acts.len(), 1);
    assert_eq!(acts[0].s("interface").unwrap(), "sms");
    // Already enrolled now.
    let r = env.post("me", "sms", Some(c), json!({"secret": secret, "phone": PHONE, "otp": code})).await;
    assert_eq!((r.status, r.json_body()), (400, json!({"details": "Already enrolled"})));
});

both_backends!(
    sms_invalid_otp_and_numbers,
    config_with(|c| c.enroll_rate_limit = 100),
    |env: Env| async move {
        let c = claims("42");
        let secret = sms_secret(&env, &c).await;
        // TE test_sms_invalid_otp: otp null or "" → 400 Invalid OTP (array body).
        for otp in [Value::Null, json!("")] {
            let r = env
                .post("me", "sms", Some(c.clone()), json!({"secret": secret, "phone": PHONE, "otp": otp}))
                .await;
            assert_eq!((r.status, r.json_body()), (400, json!([{"details": "Invalid OTP"}])));
        }
        // SmsInterfaceTest.test_invalid_phone_number: +15555555555 is not a valid number → 400 (not 500).
        for phone in ["+15555555555", "1231234", "not a number"] {
            let r = env.post("me", "sms", Some(c.clone()), json!({"secret": secret, "phone": phone})).await;
            assert_eq!(
                (r.status, r.json_body()),
                (400, json!({"phone": ["Enter a valid phone number."]})),
                "{phone}"
            );
        }
        // Missing / foreign secret (DECISIONS 1, 2): nothing is texted.
        let r = env.post("me", "sms", Some(c.clone()), json!({"phone": PHONE})).await;
        assert_eq!((r.status, r.json_body()), (400, json!({"secret": ["This field is required."]})));
        let r = env
            .post(
                "me",
                "sms",
                Some(c.clone()),
                json!({"phone": PHONE, "secret": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"}),
            )
            .await;
        assert_eq!((r.status, r.json_body()), (400, json!({"details": "Invalid secret"})));
        assert!(env.outbox.sent().is_empty());
        // A wrong code, a code before any text, and a code texted to another number are refused.
        assert_eq!(
            env.post("me", "sms", Some(c.clone()), json!({"secret": secret, "phone": PHONE})).await.status,
            204
        );
        let good = env.texted_code(PHONE_E164);
        let bad = if good == "000000" { "000001" } else { "000000" };
        let r = env
            .post("me", "sms", Some(c.clone()), json!({"secret": secret, "phone": PHONE, "otp": bad}))
            .await;
        assert_eq!(r.status, 400);
        let r = env
            .post("me", "sms", Some(c.clone()), json!({"secret": secret, "phone": "2345678901", "otp": good}))
            .await;
        assert_eq!(
            (r.status, r.json_body()),
            (400, json!([{"details": "Invalid OTP"}])),
            "code was texted to another number"
        );
        // Outside ±1 step the code expired.
        env.clock.advance_secs(95);
        let r = env
            .post("me", "sms", Some(c.clone()), json!({"secret": secret, "phone": PHONE, "otp": good}))
            .await;
        assert_eq!(r.status, 400);
        assert!(env.user("42").await.authenticators.is_empty());
        assert!(env.activities("42").await.is_empty());
    }
);

both_backends!(
    sms_code_for_one_number_never_enrolls_another,
    config_with(|c| c.enroll_rate_limit = 100),
    |env: Env| async move {
        // A code texted to A is read; B is then bound to the pending secret without its text going out
        // (the send fails) — A's code still does not enroll B, and neither does the client's secret.
        let c = claims("42");
        let secret = sms_secret(&env, &c).await;
        assert_eq!(
            env.post("me", "sms", Some(c.clone()), json!({"secret": secret, "phone": PHONE})).await.status,
            204
        );
        let code_a = env.texted_code(PHONE_E164);
        env.outbox.fail_next(1);
        let b = "2345678901";
        let r = env.post("me", "sms", Some(c.clone()), json!({"secret": secret, "phone": b})).await;
        assert_eq!(r.status, 500, "B's text failed");
        let r = env
            .post("me", "sms", Some(c.clone()), json!({"secret": secret, "phone": b, "otp": code_a}))
            .await;
        assert_eq!((r.status, r.json_body()), (400, json!([{"details": "Invalid OTP"}])));
        let t = shared::domain::otp::Totp::sms(&shared::secret::Secret::new(secret.clone())).unwrap();
        let guess = t.code_at_counter(t.counter_at(NOW) as u64);
        let r =
            env.post("me", "sms", Some(c.clone()), json!({"secret": secret, "phone": b, "otp": guess})).await;
        assert_eq!(r.status, 400);
        assert!(env.user("42").await.authenticators.is_empty());
        // B's own text (when it goes out) enrolls B.
        assert_eq!(
            env.post("me", "sms", Some(c.clone()), json!({"secret": secret, "phone": b})).await.status,
            204
        );
        let code_b = env.texted_code("+12345678901");
        assert_ne!(code_a, code_b, "codes differ per number");
        let r = env.post("me", "sms", Some(c), json!({"secret": secret, "phone": b, "otp": code_b})).await;
        assert_eq!(r.status, 204);
    }
);

both_backends!(sms_texts_per_number_are_limited, local(), |env: Env| async move {
    // SmsInterfaceTest.test_ratelimit_exception through the handler: the 4th text to one number within a
    // 5-minute bucket → 429 {"details": "Error sending SMS"}; another number is not affected.
    let c = claims("42");
    let secret = sms_secret(&env, &c).await;
    let send = |phone: &str| json!({"secret": secret, "phone": phone});
    // Start at the beginning of a 300 s bucket.
    env.clock.set_secs((NOW / 300 + 1) * 300);
    let mut c = c.clone();
    c.auth_time = Some(env.clock_now() - 60);
    for _ in 0..3 {
        assert_eq!(env.post("me", "sms", Some(c.clone()), send(PHONE)).await.status, 204);
    }
    let r = env.post("me", "sms", Some(c.clone()), send("(234) 567-8900")).await;
    assert_eq!(
        (r.status, r.json_body()),
        (429, json!({"details": "Error sending SMS"})),
        "same number, other spelling"
    );
    assert_eq!(env.outbox.sent_to(PHONE_E164).len(), 3);
    assert_eq!(env.post("me", "sms", Some(c.clone()), send("2345678901")).await.status, 204);
    // The next bucket starts over.
    env.clock.advance_secs(300);
    assert_eq!(env.post("me", "sms", Some(c.clone()), send(PHONE)).await.status, 204);
});

both_backends!(sms_pumping_numbers_are_refused, local(), |env: Env| async move {
    // Premium-rate and other high-cost ranges, and countries outside SMS_ALLOWED_COUNTRIES, get a 400 on
    // `phone` in Sentry's form shape before anything is texted or counted.
    let c = claims("42");
    let secret = sms_secret(&env, &c).await;
    for (phone, message) in [
        ("+1 900 234 5678", "This phone number cannot receive text messages."),
        ("+44 909 879 0000", "This phone number cannot receive text messages."),
        ("+1 800 234 5678", "This phone number cannot receive text messages."),
        ("+371 2123 4567", "Text messages cannot be sent to this country."),
    ] {
        let r = env.post("me", "sms", Some(c.clone()), json!({"secret": secret, "phone": phone})).await;
        assert_eq!((r.status, r.json_body()), (400, json!({"phone": [message]})), "{phone}");
    }
    assert!(env.outbox.sent().is_empty(), "nothing texted");
    assert_eq!(
        env.post("me", "sms", Some(c.clone()), json!({"secret": secret, "phone": PHONE})).await.status,
        204
    );
});

both_backends!(
    sms_daily_cap_counts_every_account,
    config_with(|c| c.sms_daily_cap = 2),
    |env: Env| async move {
        // SMS_DAILY_CAP: texts per account and UTC day, whoever asks: the third text of the day → 429
        // {"details": "Error sending SMS"}, nothing texted; the next day starts over.
        env.clock.set_secs((NOW / 86_400 + 1) * 86_400 + 3600);
        let users = ["71", "72", "73"];
        let mut statuses = Vec::new();
        for (i, u) in users.iter().enumerate() {
            let mut c = claims(u);
            c.auth_time = Some(env.clock_now() - 60);
            let secret = sms_secret(&env, &c).await;
            let phone = format!("234567890{i}");
            let r = env.post("me", "sms", Some(c.clone()), json!({"secret": secret, "phone": phone})).await;
            if r.status == 429 {
                assert_eq!(r.json_body(), json!({"details": "Error sending SMS"}));
            }
            statuses.push(r.status);
        }
        assert_eq!(statuses, [204, 204, 429]);
        assert_eq!(env.outbox.sent().len(), 2);
        env.clock.advance_secs(86_400);
        let mut c = claims("73");
        c.auth_time = Some(env.clock_now() - 60);
        let secret = sms_secret(&env, &c).await;
        let r = env.post("me", "sms", Some(c), json!({"secret": secret, "phone": "2345678902"})).await;
        assert_eq!(r.status, 204, "a new day");
    }
);

both_backends!(sms_send_failure_is_500, local(), |env: Env| async move {
    // Sentry: send_text returned False → 500 {"details": "Error sending SMS"} (a dependency failure).
    let c = claims("42");
    let secret = sms_secret(&env, &c).await;
    env.outbox.fail_next(1);
    let r = env.post("me", "sms", Some(c.clone()), json!({"secret": secret, "phone": PHONE})).await;
    assert_eq!((r.status, r.json_body()), (500, json!({"details": "Error sending SMS"})));
    assert!(env.outbox.sent().is_empty());
    // The next attempt goes through and its code enrolls.
    assert_eq!(
        env.post("me", "sms", Some(c.clone()), json!({"secret": secret, "phone": PHONE})).await.status,
        204
    );
    let code = env.texted_code(PHONE_E164);
    let r = env.post("me", "sms", Some(c), json!({"secret": secret, "phone": PHONE, "otp": code})).await;
    assert_eq!(r.status, 204);
});

both_backends!(
    sms_disallow_new_enrollment,
    config_with(|c| {
        c.disallow_new_enrollment.insert("sms".into());
    }),
    |env: Env| async move {
        // TE test_sms_disallow_new_enrollment: POST {"phone": "+12345678901"} → 403, nothing texted.
        let r = env.post("me", "sms", Some(claims("42")), json!({"phone": "+12345678901"})).await;
        assert_eq!(
            (r.status, r.json_body()),
            (403, json!({"details": "New enrollments for this 2FA interface are not allowed"}))
        );
        assert!(env.outbox.sent().is_empty());
    }
);

both_backends!(sms_no_verified_email, local(), |env: Env| async move {
    // TE test_sms_no_verified_email.
    let mut c = claims("42");
    c.email_verified = false;
    c.email = Some("bar@example.com".into());
    let r =
        env.post("me", "sms", Some(c), json!({"secret": "secret12", "phone": "1231234", "otp": null})).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json_body()["detail"]["code"], "primary-email-verification-required");
    assert_eq!(r.json_body()["detail"]["extra"], json!({"username": "bar@example.com"}));
});

both_backends!(sms_code_accepted_once, local(), |env: Env| async move {
    // 10 concurrent POSTs with the same valid code → exactly one enrollment, one activity.
    let c = claims("42");
    let secret = sms_secret(&env, &c).await;
    assert_eq!(
        env.post("me", "sms", Some(c.clone()), json!({"secret": secret, "phone": PHONE})).await.status,
        204
    );
    let code = env.texted_code(PHONE_E164);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let h = env.handler.clone();
        let req = request(
            "POST",
            "me",
            "sms",
            Some(c.clone()),
            json!({"secret": secret, "phone": PHONE, "otp": code}),
        );
        tasks.push(tokio::spawn(async move { h.handle_api(&req).await.status }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 204).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 204 || *s == 400), "{statuses:?}");
    let u = env.user("42").await;
    assert_eq!(u.authenticators.iter().filter(|a| a.kind == InterfaceType::Sms).count(), 1);
    assert_eq!(env.activities("42").await.len(), 1);
});

// ---------- u2f: matrix A and B ----------

both_backends!(u2f_get_challenge, local(), |env: Env| async move {
    // TE test_u2f_can_enroll (GET part): form, challenge, no secret, no qrcode; U2FInterfaceTest
    // test_start_enrollment_webauthn: rp, user, discouraged user verification, 32-byte challenge.
    let r = env.get("me", "u2f", Some(claims("42"))).await;
    assert_eq!(r.status, 200);
    let b = r.json_body();
    assert_eq!(
        (b["id"].clone(), b["status"].clone(), b["allowMultiEnrollment"].clone()),
        (json!("u2f"), json!("new"), json!(true))
    );
    assert!(b.get("secret").is_none() && b.get("qrcode").is_none());
    let names: Vec<&str> =
        b["form"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["deviceName", "challenge", "response"]);
    assert!(b["challenge"]["webAuthnRegisterData"].as_str().unwrap().len() > 100);
    let pk = &b["challenge"]["publicKey"];
    assert_eq!(pk["rp"], json!({"id": "localhost", "name": "Sentry"}));
    assert_eq!(pk["user"]["name"], "admin@localhost");
    assert_eq!(pk["authenticatorSelection"]["userVerification"], "discouraged");
    assert_eq!(pk["challenge"].as_str().unwrap().len(), 43);
    let u = env.user("42").await;
    assert!(u.pending_webauthn(NOW).is_some(), "ceremony state stored for the caller");
    assert!(u.pending_webauthn(NOW + 900).is_none(), "for 15 minutes");
});

both_backends!(u2f_enroll_two_devices, local(), |env: Env| async move {
    // TE test_u2f_can_enroll + multi-enrollment: a second key is appended to the same authenticator,
    // the first one's credential is excluded from the second ceremony, recovery codes are added once.
    let c = claims("42");
    let (_, response) = u2f_response(&env, &c).await;
    let r = env.post("me", "u2f", Some(c.clone()), u2f_body(&response)).await;
    assert_eq!((r.status, &r.body), (204, &ReplyBody::Empty), "{:?}", r.body);
    let u = env.user("42").await;
    let first = u.authenticator(InterfaceType::U2f).unwrap().clone();
    let devices = first.config["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0]["name"], "device name");
    assert_eq!(devices[0]["ts"], NOW);
    assert!(u.pending_webauthn(NOW).is_none(), "state consumed");
    assert!(u.authenticator(InterfaceType::Recovery).is_some());
    let acts = env.activities("42").await;
    assert_eq!((acts.len(), acts[0].s("device_name").unwrap()), (1, "device name"));

    env.clock.advance_secs(10);
    let (get, response2) = u2f_response(&env, &c).await;
    assert_eq!(get["status"], "multi");
    assert_eq!(get["authId"], json!(first.id));
    assert_eq!(get["challenge"]["publicKey"]["excludeCredentials"][0]["id"], devices[0]["key_handle"]);
    // No deviceName → "Security Key".
    let r = env.post("me", "u2f", Some(c.clone()), json!({"challenge": "c", "response": response2})).await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let u = env.user("42").await;
    let both = u.authenticator(InterfaceType::U2f).unwrap();
    assert_eq!(both.id, first.id);
    assert_eq!(both.created_at, first.created_at, "appending keeps created_at");
    let names: Vec<&str> =
        both.config["devices"].as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["device name", "Security Key"]);
    assert_eq!(u.authenticators.iter().filter(|a| a.kind == InterfaceType::Recovery).count(), 1);
    assert_eq!(env.activities("42").await.len(), 2);
});

both_backends!(u2f_state_and_attestation_errors, local(), |env: Env| async move {
    let c = claims("42");
    // No ceremony → 400 Invalid auth state.
    let r = env.post("me", "u2f", Some(c.clone()), u2f_body("{}")).await;
    assert_eq!((r.status, r.json_body()), (400, json!({"details": "Invalid auth state"})));
    // Field errors as DRF.
    let r = env.post("me", "u2f", Some(c.clone()), json!({"deviceName": "x"})).await;
    assert_eq!(
        r.json_body(),
        json!({"challenge": ["This field is required."], "response": ["This field is required."]})
    );
    // A tampered attestation, a registration made for another origin, garbage → 400; nothing written and
    // the ceremony stays usable.
    let (get, good) = u2f_response(&env, &c).await;
    let mut tampered: Value = serde_json::from_str(&good).unwrap();
    let cdj = tampered["response"]["clientDataJSON"].as_str().unwrap().to_owned();
    tampered["response"]["clientDataJSON"] = json!(format!("{}A", &cdj[..cdj.len() - 1]));
    let evil = soft_token_register(&get["challenge"], "https://localhost:8443");
    for bad in [tampered.to_string(), evil, "not json".to_owned()] {
        let r = env.post("me", "u2f", Some(c.clone()), u2f_body(&bad)).await;
        assert_eq!(
            (r.status, r.json_body()),
            (400, json!({"details": "Invalid WebAuthn registration response"}))
        );
    }
    assert!(env.user("42").await.authenticators.is_empty());
    assert!(env.activities("42").await.is_empty());
    // The genuine response completes; replaying it afterwards finds no ceremony.
    assert_eq!(env.post("me", "u2f", Some(c.clone()), u2f_body(&good)).await.status, 204);
    let r = env.post("me", "u2f", Some(c.clone()), u2f_body(&good)).await;
    assert_eq!((r.status, r.json_body()), (400, json!({"details": "Invalid auth state"})));
    // An expired ceremony is refused.
    let (_, late) = u2f_response(&env, &c).await;
    env.clock.advance_secs(901);
    let mut c2 = c.clone();
    c2.auth_time = Some(env.clock_now());
    let r = env.post("me", "u2f", Some(c2), u2f_body(&late)).await;
    assert_eq!((r.status, r.json_body()), (400, json!({"details": "Invalid auth state"})));
});

both_backends!(u2f_rate_limited_and_disallowed, local(), |env: Env| async move {
    // TE test_rate_limited: GET is not limited; the 11th POST is 429 and never verifies anything.
    let c = claims("42");
    for _ in 0..10 {
        assert_eq!(env.post("me", "u2f", Some(c.clone()), u2f_body("{}")).await.status, 400);
    }
    assert_eq!(env.get("me", "u2f", Some(c.clone())).await.status, 200);
    let (_, good) = u2f_response(&env, &c).await;
    assert_eq!(env.post("me", "u2f", Some(c.clone()), u2f_body(&good)).await.status, 429);
    assert!(env.user("42").await.authenticators.is_empty());
});

both_backends!(
    u2f_disallow_new_enrollment,
    config_with(|c| {
        c.disallow_new_enrollment.insert("u2f".into());
    }),
    |env: Env| async move {
        // TE test_u2f_disallow_new_enrollment → 403.
        let c = claims("42");
        let (_, good) = u2f_response(&env, &c).await;
        let r = env.post("me", "u2f", Some(c), u2f_body(&good)).await;
        assert_eq!(r.status, 403);
        assert!(env.user("42").await.authenticators.is_empty());
    }
);

both_backends!(u2f_superuser_enrolls_themselves, local(), |env: Env| async move {
    // TE test_u2f_superuser_and_staff_cannot_enroll_other_user: GET {user}/u2f 200 (no secret/qrcode),
    // POST {user}/u2f enrolls the superuser, never the path user.
    env.seed(json!({"users": [{"id": "7", "email": "seven@example.com"}]})).await;
    let mut su = claims("1");
    su.superuser = true;
    let r = env.get("7", "u2f", Some(su.clone())).await;
    assert_eq!(r.status, 200);
    let b = r.json_body();
    assert!(b.get("secret").is_none() && b.get("qrcode").is_none());
    let response = soft_token_register(&b["challenge"], "https://localhost");
    let r = env.post("7", "u2f", Some(su), u2f_body(&response)).await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert!(env.user("7").await.authenticators.is_empty());
    assert!(env.user("1").await.authenticator(InterfaceType::U2f).is_some());
    assert_eq!(env.activities("1").await.len(), 1);
});

both_backends!(u2f_ceremony_completes_once, local(), |env: Env| async move {
    // 8 concurrent POSTs of one genuine response → one device, one activity; the rest find no state.
    let c = claims("42");
    let (_, good) = u2f_response(&env, &c).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let h = env.handler.clone();
        let req = request("POST", "me", "u2f", Some(c.clone()), u2f_body(&good));
        tasks.push(tokio::spawn(async move { h.handle_api(&req).await.status }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 204).count(), 1, "{statuses:?}");
    let u = env.user("42").await;
    assert_eq!(u.authenticator(InterfaceType::U2f).unwrap().config["devices"].as_array().unwrap().len(), 1);
    assert_eq!(env.activities("42").await.len(), 1);
});

/// Sequential round trips: u2f POST 2 (one read round, one transaction); SMS send 2 (one read round,
/// then the per-number limit and the phone binding together) plus the text itself.
#[tokio::test]
async fn round_trips_dynamodb() {
    let Some(env) = dynamo_env("sms_u2f_round_trips_dynamodb", local()).await else { return };
    let rec = env.recorder.clone().unwrap();
    let c = claims("42");
    let (_, good) = u2f_response(&env, &c).await;
    rec.reset();
    assert_eq!(env.post("me", "u2f", Some(c.clone()), u2f_body(&good)).await.status, 204);
    assert_eq!(rec.sequential_round_trips(), 2, "{:?}", rec.operations());

    let secret = sms_secret(&env, &claims("43")).await;
    rec.reset();
    let r = env.post("me", "sms", Some(claims("43")), json!({"secret": secret, "phone": PHONE})).await;
    assert_eq!(r.status, 204);
    assert_eq!(rec.sequential_round_trips(), 2, "{:?}", rec.operations());
}
