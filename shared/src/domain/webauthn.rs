//! The u2f interface (Sentry's `U2fInterface`, WebAuthn since Sentry 22): registration ceremonies with
//! `webauthn-rs`, the device list kept in the authenticator's config, and Sentry's wire forms.
//!
//! - GET starts a ceremony ([`Registrar::start`]): the options go to the client twice, as Sentry's
//!   `challenge.webAuthnRegisterData` (base64 of the CBOR of `{"publicKey": …}` with byte strings, what
//!   Sentry's frontend decodes) and as the standard JSON form `challenge.publicKey` (base64url strings,
//!   what `navigator.credentials.create` helpers and other clients take). The ceremony state is stored
//!   server-side with a TTL, never sent to the client.
//! - POST completes it ([`Registrar::finish`]) from the `PublicKeyCredential` JSON the client posts as
//!   `response`; the resulting credential (public key, counter, credential id) is appended to
//!   `config.devices` as `{"name", "ts", "key_handle", "binding"}`.
//!
//! Differences from Sentry, on purpose: the user handle is a UUID derived from the user id (SHA-256),
//! not the id as 64 big-endian bytes (`webauthn-rs` takes a UUID; the handle is opaque to the
//! authenticator); `binding` is `webauthn-rs`'s stored credential, not fido2's `AuthenticatorData`.
//! User verification is "discouraged" as in Sentry (a second factor needs presence, not a PIN).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use webauthn_rs::prelude::{
    CreationChallengeResponse, CredentialID, RegisterPublicKeyCredential, SecurityKey,
    SecurityKeyRegistration, Url, Uuid, Webauthn, WebauthnBuilder,
};

use crate::config::WebAuthnRp;

/// The device name when the client sends none (Sentry: `device_name or "Security Key"`).
pub const DEFAULT_DEVICE_NAME: &str = "Security Key";
/// Sentry's `INVALID_AUTH_STATE` text: no ceremony state for this user (never started, expired, used).
pub const INVALID_AUTH_STATE: &str = "Invalid auth state";
/// The attestation could not be verified (Sentry answers 500; a 400 here, DECISIONS 1).
pub const INVALID_ATTESTATION: &str = "Invalid WebAuthn registration response";
/// The security key is already registered (to this or another account).
pub const ALREADY_REGISTERED: &str = "This security key is already registered";

#[derive(Debug, thiserror::Error)]
pub enum WebAuthnError {
    /// The client's response is malformed or does not verify against the stored state.
    #[error("invalid registration response")]
    InvalidResponse,
    /// Our own state or configuration could not be used (a bug or a corrupt item).
    #[error("webauthn: {0}")]
    Internal(String),
}

/// A relying party that runs registration ceremonies.
pub struct Registrar {
    webauthn: Webauthn,
    rp: WebAuthnRp,
}

impl std::fmt::Debug for Registrar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registrar").field("rp", &self.rp).finish_non_exhaustive()
    }
}

/// A completed registration: the credential id (base64url) and the stored credential.
#[derive(Debug, Clone)]
pub struct NewDevice {
    pub key_handle: String,
    pub binding: Value,
}

impl Registrar {
    pub fn new(rp: &WebAuthnRp) -> Result<Self, String> {
        let origin = Url::parse(&rp.origin).map_err(|e| e.to_string())?;
        let webauthn = WebauthnBuilder::new(&rp.rp_id, &origin)
            .map_err(|e| format!("relying party: {e}"))?
            .rp_name(&rp.rp_name)
            .danger_set_user_presence_only_security_keys(true)
            .build()
            .map_err(|e| format!("relying party: {e}"))?;
        Ok(Self { webauthn, rp: rp.clone() })
    }

    pub fn rp(&self) -> &WebAuthnRp {
        &self.rp
    }

    /// Starts a registration for `user_id` (shown to the user as `user_name`), excluding the
    /// credentials of the devices already in `config`. Returns Sentry's `challenge` object and the
    /// state to keep server-side.
    pub fn start(
        &self,
        user_id: &str,
        user_name: &str,
        config: Option<&Value>,
    ) -> Result<(Value, String), WebAuthnError> {
        let exclude = config.map(device_credential_ids).filter(|v| !v.is_empty());
        let (ccr, state) = self
            .webauthn
            .start_securitykey_registration(user_handle(user_id), user_name, user_name, exclude, None, None)
            .map_err(|e| WebAuthnError::Internal(e.to_string()))?;
        let state = serde_json::to_string(&state).map_err(|e| WebAuthnError::Internal(e.to_string()))?;
        Ok((challenge_body(&ccr)?, state))
    }

    /// Completes the registration stored as `state` with the client's `response` (a JSON string).
    pub fn finish(&self, state: &str, response: &str) -> Result<NewDevice, WebAuthnError> {
        let state: SecurityKeyRegistration =
            serde_json::from_str(state).map_err(|e| WebAuthnError::Internal(format!("stored state: {e}")))?;
        let credential = parse_response(response).ok_or(WebAuthnError::InvalidResponse)?;
        let key = self
            .webauthn
            .finish_securitykey_registration(&credential, &state)
            .map_err(|_| WebAuthnError::InvalidResponse)?;
        Ok(NewDevice {
            key_handle: URL_SAFE_NO_PAD.encode(key.cred_id()),
            binding: serde_json::to_value(&key).map_err(|e| WebAuthnError::Internal(e.to_string()))?,
        })
    }
}

/// The user handle: the first 16 bytes of SHA-256(user id) as a UUID (stable, and no user data).
pub fn user_handle(user_id: &str) -> Uuid {
    let digest = Sha256::digest(user_id.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(b)
}

/// `config.devices` after appending a device (Sentry's `try_enroll`).
pub fn append_device(config: Option<&Value>, name: &str, now_secs: i64, device: &NewDevice) -> Value {
    let mut devices = config.and_then(|c| c["devices"].as_array().cloned()).unwrap_or_default();
    devices.push(json!({
        "name": name,
        "ts": now_secs,
        "key_handle": device.key_handle,
        "binding": device.binding,
    }));
    json!({ "devices": devices })
}

/// The credential ids of the devices in a u2f config.
pub fn device_credential_ids(config: &Value) -> Vec<CredentialID> {
    config["devices"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| serde_json::from_value::<SecurityKey>(d["binding"].clone()).ok())
        .map(|k| k.cred_id().clone())
        .collect()
}

/// Sentry's GET `challenge`: `webAuthnRegisterData` (base64 of CBOR) plus the standard JSON options.
fn challenge_body(ccr: &CreationChallengeResponse) -> Result<Value, WebAuthnError> {
    let options = serde_json::to_value(ccr).map_err(|e| WebAuthnError::Internal(e.to_string()))?;
    let cbor =
        serde_cbor_2::to_vec(&to_cbor(&options, &[])).map_err(|e| WebAuthnError::Internal(e.to_string()))?;
    Ok(json!({
        "webAuthnRegisterData": STANDARD.encode(cbor),
        "publicKey": options["publicKey"],
    }))
}

/// JSON → CBOR, turning the base64url fields that are bytes in WebAuthn (`challenge`, `user.id`,
/// `excludeCredentials[].id`) into CBOR byte strings, as fido2's `cbor.encode` writes them.
fn to_cbor(v: &Value, path: &[&str]) -> serde_cbor_2::Value {
    use serde_cbor_2::Value as C;
    match v {
        Value::Null => C::Null,
        Value::Bool(b) => C::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => C::Integer(i128::from(i)),
            (None, Some(f)) => C::Float(f),
            _ => C::Null,
        },
        Value::String(s) => {
            let is_bytes = matches!(
                path,
                [.., "publicKey", "challenge"] | [.., "user", "id"] | [.., "excludeCredentials", "[]", "id"]
            );
            match is_bytes.then(|| decode_b64(s)).flatten() {
                Some(bytes) => C::Bytes(bytes),
                None => C::Text(s.clone()),
            }
        }
        Value::Array(items) => {
            let mut p = path.to_vec();
            p.push("[]");
            C::Array(items.iter().map(|i| to_cbor(i, &p)).collect())
        }
        Value::Object(map) => C::Map(
            map.iter()
                .map(|(k, v)| {
                    let mut p = path.to_vec();
                    p.push(k.as_str());
                    (C::Text(k.clone()), to_cbor(v, &p))
                })
                .collect(),
        ),
    }
}

/// Base64 in any of the forms clients use (url-safe or standard, padded or not).
fn decode_b64(s: &str) -> Option<Vec<u8>> {
    let t = s.trim_end_matches('=');
    URL_SAFE_NO_PAD
        .decode(t)
        .or_else(|_| URL_SAFE.decode(s))
        .or_else(|_| STANDARD.decode(s))
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(t))
        .ok()
}

/// Parses the posted `PublicKeyCredential` JSON, tolerating the forms clients send: `rawId` missing
/// (taken from `id`), standard or padded base64, no `type` (it is always "public-key").
fn parse_response(response: &str) -> Option<RegisterPublicKeyCredential> {
    let mut v: Value = serde_json::from_str(response).ok()?;
    let obj = v.as_object_mut()?;
    let raw_id = obj.get("rawId").or_else(|| obj.get("id"))?.as_str().and_then(decode_b64)?;
    obj.insert("rawId".into(), json!(URL_SAFE_NO_PAD.encode(&raw_id)));
    obj.entry("id").or_insert_with(|| json!(URL_SAFE_NO_PAD.encode(&raw_id)));
    // Sentry's frontend posts `"type": ""`; a registration credential is always a public key.
    if obj.get("type").and_then(Value::as_str).is_none_or(str::is_empty) {
        obj.insert("type".into(), json!("public-key"));
    }
    let resp = obj.get_mut("response")?.as_object_mut()?;
    for field in ["attestationObject", "clientDataJSON"] {
        let bytes = resp.get(field)?.as_str().and_then(decode_b64)?;
        resp.insert(field.into(), json!(URL_SAFE_NO_PAD.encode(bytes)));
    }
    serde_json::from_value(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use webauthn_authenticator_rs::WebauthnAuthenticator;
    use webauthn_authenticator_rs::softtoken::SoftToken;

    fn rp() -> WebAuthnRp {
        WebAuthnRp {
            origin: "https://sentry.example.com".into(),
            rp_id: "sentry.example.com".into(),
            rp_name: "Sentry".into(),
        }
    }

    fn register(token: &mut SoftToken, challenge: &Value, origin: &str) -> String {
        let ccr: CreationChallengeResponse =
            serde_json::from_value(json!({"publicKey": challenge["publicKey"]})).unwrap();
        let cred = token.do_registration(Url::parse(origin).unwrap(), ccr).unwrap();
        serde_json::to_string(&cred).unwrap()
    }

    /// U2FInterfaceTest.test_start_enrollment_webauthn, in our form.
    #[test]
    fn start_produces_sentry_and_standard_options() {
        let reg = Registrar::new(&rp()).unwrap();
        let (challenge, state) = reg.start("42", "admin@localhost", None).unwrap();
        let pk = &challenge["publicKey"];
        assert_eq!(pk["rp"], json!({"id": "sentry.example.com", "name": "Sentry"}));
        assert_eq!(pk["user"]["name"], "admin@localhost");
        assert_eq!(pk["user"]["displayName"], "admin@localhost");
        assert_eq!(pk["authenticatorSelection"]["userVerification"], "discouraged");
        assert!(pk["pubKeyCredParams"].as_array().unwrap().len() >= 2);
        assert_eq!(pk["challenge"].as_str().unwrap().len(), 43, "32 random bytes, base64url");
        // The state stays on the server: a JSON document holding this ceremony's challenge.
        let st: Value = serde_json::from_str(&state).unwrap();
        assert!(st.to_string().len() > 43);
        // The CBOR form decodes to the same options with byte strings.
        let cbor = STANDARD.decode(challenge["webAuthnRegisterData"].as_str().unwrap()).unwrap();
        let decoded: serde_cbor_2::Value = serde_cbor_2::from_slice(&cbor).unwrap();
        let serde_cbor_2::Value::Map(top) = decoded else { panic!("map") };
        let serde_cbor_2::Value::Map(pk_c) = &top[&serde_cbor_2::Value::Text("publicKey".into())] else {
            panic!("publicKey map")
        };
        let serde_cbor_2::Value::Bytes(ch) = &pk_c[&serde_cbor_2::Value::Text("challenge".into())] else {
            panic!("challenge bytes")
        };
        assert_eq!(URL_SAFE_NO_PAD.encode(ch), pk["challenge"].as_str().unwrap());
        assert_eq!(user_handle("42").as_bytes().len(), 16);
        assert_ne!(user_handle("42"), user_handle("43"));
    }

    #[test]
    fn soft_token_registration_completes_and_tampering_is_refused() {
        let reg = Registrar::new(&rp()).unwrap();
        let (mut token, _ca) = SoftToken::new(true).unwrap();
        let (challenge, state) = reg.start("42", "admin@localhost", None).unwrap();
        let response = register(&mut token, &challenge, "https://sentry.example.com");
        let device = reg.finish(&state, &response).unwrap();
        assert_eq!(
            device.key_handle.len(),
            URL_SAFE_NO_PAD.encode(decode_b64(&device.key_handle).unwrap()).len()
        );
        let config = append_device(None, DEFAULT_DEVICE_NAME, 1_700_000_000, &device);
        assert_eq!(config["devices"][0]["name"], "Security Key");
        assert_eq!(device_credential_ids(&config).len(), 1);

        // A second ceremony excludes the registered credential.
        let (challenge2, _) = reg.start("42", "admin@localhost", Some(&config)).unwrap();
        assert_eq!(challenge2["publicKey"]["excludeCredentials"].as_array().unwrap().len(), 1);

        // Tampered: a flipped byte in the attestation object, another origin, another ceremony's state.
        let (challenge3, state3) = reg.start("42", "admin@localhost", None).unwrap();
        let good = register(&mut token, &challenge3, "https://sentry.example.com");
        let mut v: Value = serde_json::from_str(&good).unwrap();
        let mut att = decode_b64(v["response"]["attestationObject"].as_str().unwrap()).unwrap();
        let n = att.len();
        att[n - 5] ^= 0x01;
        v["response"]["attestationObject"] = json!(URL_SAFE_NO_PAD.encode(att));
        assert!(matches!(reg.finish(&state3, &v.to_string()), Err(WebAuthnError::InvalidResponse)));
        let evil = register(&mut token, &challenge3, "https://evil.sentry.example.com");
        assert!(matches!(reg.finish(&state3, &evil), Err(WebAuthnError::InvalidResponse)));
        assert!(matches!(reg.finish(&state, &good), Err(WebAuthnError::InvalidResponse)), "other challenge");
        assert!(matches!(reg.finish(&state3, "not json"), Err(WebAuthnError::InvalidResponse)));
        assert!(matches!(reg.finish(&state3, "{}"), Err(WebAuthnError::InvalidResponse)));
        // The untampered response still completes its own ceremony.
        assert!(reg.finish(&state3, &good).is_ok());
    }

    /// U2FInterfaceTest.test_try_enroll_webauthn: the registration a real browser made for Sentry's
    /// test relying party (Sentry's frontend form: `"type": ""`, base64url fields), completed against a
    /// ceremony state carrying that test's challenge.
    #[test]
    fn sentry_browser_vector_completes() {
        const CHALLENGE: &str = "FmKqEKsXOinMhOdNhcZbMCbGleTlDeFr0S1gSYGzPY0";
        const DATA: &str = r#"{"id":"TYJVkw5RJGuwyY-veny4wBvPnhIc1-2vs7a17W6fRPMevfDlTR_YWTnLwgeLjKvNaZgMDd2T75CD9bEUX3FyxQ","rawId":"TYJVkw5RJGuwyY-veny4wBvPnhIc1-2vs7a17W6fRPMevfDlTR_YWTnLwgeLjKvNaZgMDd2T75CD9bEUX3FyxQ","response":{"attestationObject":"o2NmbXRkbm9uZWdhdHRTdG10oGhhdXRoRGF0YVjEdMsc6ARz46ITf5wcoxCGiLKiJRlmv2GeNJ635pkBOmVBAAAA_wAAAAAAAAAAAAAAAAAAAAAAQE2CVZMOUSRrsMmPr3p8uMAbz54SHNftr7O2te1un0TzHr3w5U0f2Fk5y8IHi4yrzWmYDA3dk--Qg_WxFF9xcsWlAQIDJiABIVggo6MzqMkVN1UI6d4gf60CoBH4CnAKURH0Q8ENYnD2k6MiWCCvFWvPJs_p0zGVyBwoZDy7WyQZUAPVZhmCAzXUnapQ-A","clientDataJSON":"eyJ0eXBlIjoid2ViYXV0aG4uY3JlYXRlIiwiY2hhbGxlbmdlIjoiRm1LcUVLc1hPaW5NaE9kTmhjWmJNQ2JHbGVUbERlRnIwUzFnU1lHelBZMCIsIm9yaWdpbiI6Imh0dHBzOi8vcmljaGFyZG1hc2VudHJ5Lm5ncm9rLmlvIiwiY3Jvc3NPcmlnaW4iOmZhbHNlfQ"},"type":""}"#;
        let rp = WebAuthnRp {
            origin: "https://richardmasentry.ngrok.io".into(),
            rp_id: "richardmasentry.ngrok.io".into(),
            rp_name: "Sentry".into(),
        };
        let reg = Registrar::new(&rp).unwrap();
        let (_, state) = reg.start("1", "admin@localhost", None).unwrap();
        // Put the test's challenge into our ceremony state, in whatever form the state stores it.
        let mut st: Value = serde_json::from_str(&state).unwrap();
        let want = decode_b64(CHALLENGE).unwrap();
        fn replace(v: &mut Value, want: &[u8]) -> bool {
            match v {
                Value::Object(m) => {
                    if let Some(c) = m.get_mut("challenge") {
                        *c = match c {
                            Value::String(_) => json!(URL_SAFE_NO_PAD.encode(want)),
                            _ => json!(want),
                        };
                        return true;
                    }
                    m.values_mut().any(|x| replace(x, want))
                }
                _ => false,
            }
        }
        assert!(replace(&mut st, &want), "the state holds a challenge");
        let device = reg.finish(&st.to_string(), DATA).unwrap();
        assert_eq!(
            device.key_handle,
            "TYJVkw5RJGuwyY-veny4wBvPnhIc1-2vs7a17W6fRPMevfDlTR_YWTnLwgeLjKvNaZgMDd2T75CD9bEUX3FyxQ"
        );
        // The same response against a ceremony with another challenge is refused.
        let (_, other) = reg.start("1", "admin@localhost", None).unwrap();
        assert!(matches!(reg.finish(&other, DATA), Err(WebAuthnError::InvalidResponse)));
    }

    #[test]
    fn lenient_response_forms() {
        let reg = Registrar::new(&rp()).unwrap();
        let (mut token, _ca) = SoftToken::new(true).unwrap();
        let (challenge, state) = reg.start("42", "admin@localhost", None).unwrap();
        let good = register(&mut token, &challenge, "https://sentry.example.com");
        // Standard padded base64, no rawId, no type.
        let mut v: Value = serde_json::from_str(&good).unwrap();
        for f in ["attestationObject", "clientDataJSON"] {
            let b = decode_b64(v["response"][f].as_str().unwrap()).unwrap();
            v["response"][f] = json!(STANDARD.encode(b));
        }
        let obj = v.as_object_mut().unwrap();
        obj.remove("rawId");
        obj.remove("type");
        assert!(reg.finish(&state, &v.to_string()).is_ok());
    }
}
