//! The signed `postflow-invite` cookie: Sentry keeps the pending invite (`invite_token`,
//! `invite_member_id`, `invite_organization_id`) in the session; Postflow has no session, so accept-invite
//! GET puts them in a cookie signed with HMAC-SHA256 under the configured key, and enroll POST / accept
//! POST read it back. A tampered, expired, or other user's cookie is ignored.
//!
//! Value: `base64url(json payload) "." base64url(hmac(key, "postflow-invite.v1." + payload))`.
//! The payload holds the member id, organization id, the invite token (the same token the URL carries;
//! the cookie is `HttpOnly`, `Secure`, `SameSite=Lax`), the user it was issued to when the GET was
//! authenticated, and its expiry.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::{Secret, constant_time_eq};

pub const COOKIE_NAME: &str = "postflow-invite";
pub const MAX_AGE_SECS: i64 = 7 * 24 * 3600;
const CONTEXT: &[u8] = b"postflow-invite.v1.";

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InviteCookie {
    #[serde(rename = "m")]
    pub member_id: u64,
    #[serde(rename = "o")]
    pub org_id: u64,
    #[serde(rename = "t")]
    pub token: String,
    /// The user the cookie was issued to (authenticated GET); `None` for an anonymous GET, which any user
    /// who then logs in in that browser may complete (as with Sentry's session).
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(rename = "e")]
    pub expires_at: i64,
}

fn mac(key: &Secret, payload: &str) -> Option<Vec<u8>> {
    let mut m = Hmac::<Sha256>::new_from_slice(key.expose().as_bytes()).ok()?;
    m.update(CONTEXT);
    m.update(payload.as_bytes());
    Some(m.finalize().into_bytes().to_vec())
}

impl InviteCookie {
    /// The signed cookie value.
    pub fn encode(&self, key: &Secret) -> Option<String> {
        let payload = B64.encode(serde_json::to_vec(self).ok()?);
        let sig = B64.encode(mac(key, &payload)?);
        Some(format!("{payload}.{sig}"))
    }

    /// Verifies the signature, expiry and user binding; `None` for anything invalid.
    pub fn decode(value: &str, key: &Secret, now_secs: i64, caller: Option<&str>) -> Option<Self> {
        if value.len() > 2048 {
            return None;
        }
        let (payload, sig) = value.split_once('.')?;
        let expected = mac(key, payload)?;
        let got = B64.decode(sig).ok()?;
        if !constant_time_eq(&expected, &got) {
            return None;
        }
        let c: Self = serde_json::from_slice(&B64.decode(payload).ok()?).ok()?;
        if c.expires_at <= now_secs {
            return None;
        }
        if let Some(bound) = &c.user_id
            && caller != Some(bound.as_str())
        {
            return None;
        }
        Some(c)
    }

    /// `Set-Cookie` header value that stores the cookie for 7 days.
    pub fn set_cookie_header(value: &str) -> String {
        format!("{COOKIE_NAME}={value}; Path=/; Max-Age={MAX_AGE_SECS}; HttpOnly; Secure; SameSite=Lax")
    }

    /// `Set-Cookie` header value that removes the cookie.
    pub fn clear_cookie_header() -> String {
        format!("{COOKIE_NAME}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Secret {
        Secret::new("0123456789abcdef0123456789abcdef")
    }

    fn cookie(user: Option<&str>) -> InviteCookie {
        InviteCookie {
            member_id: 7,
            org_id: 1,
            token: "abc".into(),
            user_id: user.map(str::to_owned),
            expires_at: 1_000,
        }
    }

    #[test]
    fn round_trip() {
        let v = cookie(None).encode(&key()).unwrap();
        assert_eq!(InviteCookie::decode(&v, &key(), 999, Some("5")), Some(cookie(None)));
        assert_eq!(InviteCookie::decode(&v, &key(), 999, None), Some(cookie(None)));
    }

    #[test]
    fn rejects_tampering_expiry_wrong_key_and_other_users() {
        let v = cookie(Some("5")).encode(&key()).unwrap();
        assert!(InviteCookie::decode(&v, &key(), 999, Some("5")).is_some());
        assert!(InviteCookie::decode(&v, &key(), 999, Some("6")).is_none(), "replay for another user");
        assert!(InviteCookie::decode(&v, &key(), 999, None).is_none());
        assert!(InviteCookie::decode(&v, &key(), 1_000, Some("5")).is_none(), "expired");
        assert!(
            InviteCookie::decode(&v, &Secret::new("another-key-another-key-another-key"), 999, Some("5"))
                .is_none()
        );
        // Flip the member id inside the payload: the signature no longer matches.
        let (payload, sig) = v.split_once('.').unwrap();
        let mut json: serde_json::Value = serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap();
        json["m"] = 8.into();
        let forged = format!("{}.{sig}", B64.encode(serde_json::to_vec(&json).unwrap()));
        assert!(InviteCookie::decode(&forged, &key(), 999, Some("5")).is_none());
        for junk in ["", ".", "a.b", "!!!.???", &"x".repeat(3000)] {
            assert!(InviteCookie::decode(junk, &key(), 0, None).is_none());
        }
    }

    #[test]
    fn headers() {
        assert_eq!(
            InviteCookie::set_cookie_header("v"),
            "postflow-invite=v; Path=/; Max-Age=604800; HttpOnly; Secure; SameSite=Lax"
        );
        assert!(InviteCookie::clear_cookie_header().contains("Max-Age=0"));
    }
}
