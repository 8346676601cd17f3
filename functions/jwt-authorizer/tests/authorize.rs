//! The optional authorizer's decisions on real RS256 tokens (signed here with aws-lc-rs keys): anonymous,
//! valid, and every way a token is refused, plus the key cache's refresh rules and a key outage.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::jwk::JwkSet;
use jwt_authorizer::{Authorizer, AuthorizerConfig, KeyError, KeySource, TOKEN_MARK, bearer};
use serde_json::{Value, json};

const ISSUER: &str = "https://issuer.test";

struct Key {
    pair: KeyPair,
    kid: String,
}

impl Key {
    fn new(kid: &str) -> Self {
        Self { pair: KeyPair::generate(KeySize::Rsa2048).unwrap(), kid: kid.into() }
    }

    fn jwk(&self) -> Value {
        let public = self.pair.public_key();
        json!({
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid,
            "n": B64.encode(public.modulus().big_endian_without_leading_zero()),
            "e": B64.encode(public.exponent().big_endian_without_leading_zero()),
        })
    }

    /// An RS256 JWT over `claims` with this key's id (or `kid`).
    fn sign(&self, claims: &Value, kid: Option<&str>) -> String {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": kid.unwrap_or(&self.kid)});
        let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
        let mut sig = vec![0u8; self.pair.public_modulus_len()];
        self.pair.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), input.as_bytes(), &mut sig).unwrap();
        format!("{input}.{}", B64.encode(sig))
    }
}

/// A key source serving a fixed set, counting fetches; `down` makes it fail.
struct StaticKeys {
    set: std::sync::Mutex<Value>,
    fetches: AtomicUsize,
    down: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl KeySource for StaticKeys {
    async fn fetch(&self) -> Result<JwkSet, KeyError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(KeyError("connection refused".into()));
        }
        Ok(serde_json::from_value(self.set.lock().unwrap().clone()).unwrap())
    }
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn claims(extra: Value) -> Value {
    let mut c = json!({
        "iss": ISSUER, "aud": "postflow", "sub": "42", "email": "a@example.com", "email_verified": true,
        "auth_time": now() - 10, "iat": now(), "exp": now() + 600, "postflow:superuser": false,
    });
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn event(authorization: Option<&str>) -> Value {
    let mut headers = json!({"user-agent": "test"});
    if let Some(a) = authorization {
        headers["authorization"] = json!(a);
    }
    json!({"version": "2.0", "type": "REQUEST", "routeKey": "GET /api/0/accept-invite/{organization_id_or_slug}/{member_id}/{token}/", "headers": headers})
}

fn setup(keys: &[&Key]) -> (Authorizer, Arc<StaticKeys>) {
    let source = Arc::new(StaticKeys {
        set: std::sync::Mutex::new(json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()})),
        fetches: AtomicUsize::new(0),
        down: Default::default(),
    });
    let config =
        AuthorizerConfig { issuer: ISSUER.into(), audiences: vec!["postflow".into(), "other".into()] };
    (Authorizer::build(config, source.clone()), source)
}

#[tokio::test]
async fn anonymous_valid_and_refused_tokens() {
    let key = Key::new("k1");
    let foreign = Key::new("k1"); // another key under the same kid
    let (auth, _) = setup(&[&key]);

    // No header, an empty one: anonymous, let through without claims.
    for e in [event(None), event(Some("")), event(Some("Bearer "))] {
        assert_eq!(auth.authorize(&e).await.unwrap(), json!({"isAuthorized": true, "context": {}}));
    }

    // A valid token: its claims as strings, as the JWT authorizer delivers them (with or without
    // the scheme, any case).
    let token = key.sign(&claims(json!({})), None);
    for header in [format!("Bearer {token}"), format!("bearer {token}"), token.clone()] {
        let r = auth.authorize(&event(Some(&header))).await.unwrap();
        assert_eq!(r["isAuthorized"], true);
        let ctx = &r["context"];
        assert_eq!((ctx["sub"].as_str(), ctx["email_verified"].as_str()), (Some("42"), Some("true")));
        assert_eq!(ctx["postflow:superuser"], "false");
        assert_eq!(ctx["auth_time"], (now() - 10).to_string());
        assert!(ctx.get(TOKEN_MARK).is_none());
    }
    // Any configured audience; an `aud` array naming one of them.
    let r =
        auth.authorize(&event(Some(&key.sign(&claims(json!({"aud": ["x", "other"]})), None)))).await.unwrap();
    assert_eq!(r["context"]["sub"], "42");

    // Refused: let through with the mark only (the function answers 401), never with claims.
    let refused = [
        ("signed by another key", foreign.sign(&claims(json!({})), None)),
        ("wrong audience", key.sign(&claims(json!({"aud": "someone-else"})), None)),
        ("wrong issuer", key.sign(&claims(json!({"iss": "https://evil.test"})), None)),
        ("expired a second ago", key.sign(&claims(json!({"exp": now() - 1})), None)),
        ("not yet valid", key.sign(&claims(json!({"nbf": now() + 60})), None)),
        ("no exp", key.sign(&claims(json!({"exp": null})), None)),
        ("unknown kid", key.sign(&claims(json!({})), Some("nope"))),
        ("not a JWT", "not.a.jwt".to_owned()),
        ("garbage", "x".repeat(5000)),
        (
            "alg none",
            format!(
                "{}.{}.",
                B64.encode(r#"{"alg":"none","kid":"k1"}"#),
                B64.encode(claims(json!({})).to_string())
            ),
        ),
        ("HS256 with the public key", {
            let h = B64.encode(r#"{"alg":"HS256","kid":"k1"}"#);
            let p = B64.encode(claims(json!({})).to_string());
            format!("{h}.{p}.{}", B64.encode("sig"))
        }),
    ];
    for (name, token) in refused {
        let r = auth.authorize(&event(Some(&format!("Bearer {token}")))).await.unwrap();
        assert_eq!(r, json!({"isAuthorized": true, "context": {TOKEN_MARK: "invalid"}}), "{name}");
    }
}

#[tokio::test]
async fn keys_are_cached_and_refreshed_for_a_new_kid_at_most_every_30_s() {
    let k1 = Key::new("k1");
    let k2 = Key::new("k2");
    let (auth, source) = setup(&[&k1]);
    let t1 = format!("Bearer {}", k1.sign(&claims(json!({})), None));
    for _ in 0..3 {
        assert_eq!(auth.authorize(&event(Some(&t1))).await.unwrap()["context"]["sub"], "42");
    }
    assert_eq!(source.fetches.load(Ordering::SeqCst), 1, "cached");
    // The issuer rotates to k2: a token with the new kid is refused until the floor has passed
    // (the first refresh happened just now), without a fetch per token.
    *source.set.lock().unwrap() = json!({"keys": [k1.jwk(), k2.jwk()]});
    let t2 = format!("Bearer {}", k2.sign(&claims(json!({})), None));
    for _ in 0..3 {
        assert_eq!(auth.authorize(&event(Some(&t2))).await.unwrap()["context"][TOKEN_MARK], "invalid");
    }
    assert_eq!(source.fetches.load(Ordering::SeqCst), 1, "no fetch per unknown kid within 30 s");

    // A fresh instance learns k2 with its first fetch.
    let (auth, source) = setup(&[&k1, &k2]);
    assert_eq!(auth.authorize(&event(Some(&t2))).await.unwrap()["context"]["sub"], "42");
    // Keys down: a request with a token is an error (500 on API Gateway), an anonymous one is not.
    let (auth2, down) = setup(&[&k1]);
    down.down.store(true, Ordering::SeqCst);
    assert!(auth2.authorize(&event(Some(&t1))).await.is_err());
    assert_eq!(auth2.authorize(&event(None)).await.unwrap()["isAuthorized"], true);
    assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
}

#[test]
fn bearer_extraction() {
    assert_eq!(bearer(&event(Some("Bearer abc"))), Some("abc"));
    assert_eq!(bearer(&event(Some("  BEARER   abc "))), Some("abc"));
    assert_eq!(bearer(&event(Some("abc"))), Some("abc"));
    assert_eq!(bearer(&event(None)), None);
    assert_eq!(bearer(&json!({"headers": {"Authorization": "Bearer x"}})), Some("x"));
    assert_eq!(bearer(&json!({})), None);
}

/// The sample events of `events/` (what `cargo lambda invoke` and scripts/lambda-tooling send): neither
/// needs the issuer's keys.
#[tokio::test]
async fn sample_events() {
    let key = Key::new("k1");
    let (auth, source) = setup(&[&key]);
    let events = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events");
    for (file, want) in [
        ("jwt-authorizer.anonymous.json", json!({"isAuthorized": true, "context": {}})),
        (
            "jwt-authorizer.invalid-token.json",
            json!({"isAuthorized": true, "context": {TOKEN_MARK: "invalid"}}),
        ),
    ] {
        let event: Value =
            serde_json::from_str(&std::fs::read_to_string(events.join(file)).unwrap()).unwrap();
        assert_eq!(auth.authorize(&event).await.unwrap(), want, "{file}");
    }
    assert_eq!(source.fetches.load(Ordering::SeqCst), 0);
    // The same event with a valid token: the claims.
    let mut event: Value =
        serde_json::from_str(&std::fs::read_to_string(events.join("jwt-authorizer.anonymous.json")).unwrap())
            .unwrap();
    event["headers"]["authorization"] = json!(format!("Bearer {}", key.sign(&claims(json!({})), None)));
    assert_eq!(auth.authorize(&event).await.unwrap()["context"]["email"], "a@example.com");
}
