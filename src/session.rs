//! What a browser (or an SDK) keeps between requests in a replay: cookies set by responses, the TOTP
//! secret the last enroll GET issued, and the placeholders filled into sample events:
//!
//! | placeholder | replaced by |
//! |---|---|
//! | `{{now}}` | the current Unix time in seconds (for the `auth_time` claim: sudo needs a recent one) |
//! | `{{secret}}` | the TOTP/SMS secret issued by the last enroll GET of this session |
//! | `{{totp}}` | the current TOTP code for that secret |
//! | `{{sms}}` | the code in the last text the local outbox received |
//! | `{{webauthn}}` | a registration made by a new software security key for the challenge of the last u2f GET, at the configured WebAuthn origin; escaped to sit inside a JSON string inside the event's `body` string |
//!
//! Cookies: when an event has no `cookies` of its own, the session's cookie jar is sent.

use std::collections::BTreeMap;

use serde_json::Value;
use shared::domain::otp::Totp;
use shared::secret::Secret;

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Session {
    pub cookies: BTreeMap<String, String>,
    /// The last TOTP secret issued by enroll GET (kept out of printed output).
    pub secret: Option<String>,
    /// The code of the last text in the local outbox.
    #[serde(default)]
    pub sms_code: Option<String>,
    /// The `challenge` object of the last u2f enroll GET.
    #[serde(default)]
    pub webauthn_challenge: Option<Value>,
    /// The WebAuthn origin the software key registers at (from the configuration).
    #[serde(default)]
    pub webauthn_origin: Option<String>,
}

impl Session {
    /// Fills placeholders in an event file's text and parses it.
    pub fn prepare(&self, text: &str, now_secs: i64) -> Result<Value, String> {
        let mut t = text.replace("{{now}}", &now_secs.to_string());
        if t.contains("{{secret}}") || t.contains("{{totp}}") {
            let secret = self
                .secret
                .as_deref()
                .ok_or("the event uses {{secret}}/{{totp}} but no enroll GET issued a secret yet")?;
            let totp =
                Totp::authenticator_app(&Secret::new(secret)).ok_or("the issued secret is not base32")?;
            let code = totp.code_at_counter(totp.counter_at(now_secs) as u64);
            t = t.replace("{{secret}}", secret).replace("{{totp}}", &code);
        }
        if t.contains("{{sms}}") {
            let code = self.sms_code.as_deref().ok_or("the event uses {{sms}} but no text was sent yet")?;
            t = t.replace("{{sms}}", code);
        }
        if t.contains("{{webauthn}}") {
            t = t.replace("{{webauthn}}", &self.webauthn_response()?);
        }
        let mut event: Value = serde_json::from_str(&t).map_err(|e| format!("invalid JSON: {e}"))?;
        let has_cookies = event.get("cookies").and_then(Value::as_array).is_some_and(|c| !c.is_empty());
        if !has_cookies && !self.cookies.is_empty() {
            event["cookies"] =
                Value::Array(self.cookies.iter().map(|(k, v)| Value::String(format!("{k}={v}"))).collect());
        }
        Ok(event)
    }

    /// Learns from a response: `Set-Cookie` (a `Max-Age=0` cookie is removed) and an issued `secret`.
    pub fn observe(&mut self, response: &Value) {
        for c in response["cookies"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            let first = c.split(';').next().unwrap_or_default();
            if let Some((k, v)) = first.split_once('=') {
                if c.contains("Max-Age=0") || v.is_empty() {
                    self.cookies.remove(k.trim());
                } else {
                    self.cookies.insert(k.trim().to_owned(), v.trim().to_owned());
                }
            }
        }
        if let Ok(Value::Object(body)) =
            serde_json::from_str::<Value>(response["body"].as_str().unwrap_or_default())
        {
            if let Some(Value::String(secret)) = body.get("secret") {
                self.secret = Some(secret.clone());
            }
            if let Some(challenge) = body.get("challenge").filter(|c| c.get("publicKey").is_some()) {
                self.webauthn_challenge = Some(challenge.clone());
            }
        }
    }

    /// Learns the code of the last text (the local outbox's newest message).
    pub fn observe_text(&mut self, text: Option<&str>) {
        if let Some(code) =
            text.and_then(|t| t.split(' ').next()).filter(|c| c.chars().all(|ch| ch.is_ascii_digit()))
        {
            self.sms_code = Some(code.to_owned());
        }
    }

    /// A software security key (webauthn-authenticator-rs's soft token, as a browser with a USB key
    /// would) answers the last u2f challenge; the credential JSON, escaped twice (a string inside the
    /// JSON text of the event's `body` string).
    fn webauthn_response(&self) -> Result<String, String> {
        use webauthn_authenticator_rs::WebauthnAuthenticator;
        let challenge =
            self.webauthn_challenge.as_ref().ok_or("the event uses {{webauthn}} but no u2f GET ran yet")?;
        let origin = self.webauthn_origin.as_deref().ok_or("no WebAuthn origin is configured")?;
        let options: webauthn_rs::prelude::CreationChallengeResponse =
            serde_json::from_value(serde_json::json!({"publicKey": challenge["publicKey"]}))
                .map_err(|e| format!("u2f challenge: {e}"))?;
        let origin = webauthn_rs::prelude::Url::parse(origin).map_err(|e| e.to_string())?;
        let (mut token, _ca) = webauthn_authenticator_rs::softtoken::SoftToken::new(true)
            .map_err(|e| format!("soft token: {e:?}"))?;
        let credential = token.do_registration(origin, options).map_err(|e| format!("soft token: {e:?}"))?;
        let json = serde_json::to_string(&credential).map_err(|e| e.to_string())?;
        let once = serde_json::to_string(&json).map_err(|e| e.to_string())?;
        let twice = serde_json::to_string(&once[1..once.len() - 1]).map_err(|e| e.to_string())?;
        Ok(twice[1..twice.len() - 1].to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placeholders_and_cookies() {
        let mut s = Session::default();
        assert!(s.prepare(r#"{"a": "{{totp}}"}"#, 0).is_err());
        s.observe(&json!({"cookies": ["postflow-invite=abc; Path=/; HttpOnly"], "body": "{\"secret\": \"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\"}"}));
        let ev = s.prepare(r#"{"t": "{{totp}}", "s": "{{secret}}", "n": "{{now}}"}"#, 59).unwrap();
        assert_eq!(ev["t"], "287082");
        assert_eq!(ev["s"], "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(ev["n"], "59");
        assert_eq!(ev["cookies"], json!(["postflow-invite=abc"]));
        // An event with its own cookies keeps them.
        let ev = s.prepare(r#"{"cookies": ["x=1"]}"#, 0).unwrap();
        assert_eq!(ev["cookies"], json!(["x=1"]));
        s.observe(&json!({"cookies": ["postflow-invite=; Path=/; Max-Age=0"], "body": ""}));
        assert!(s.cookies.is_empty());
    }
}
