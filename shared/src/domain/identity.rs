//! The caller's identity as the domain sees it: the claims of the JWT that the API's authorizer
//! verified (`sub`, e-mail and its verification, `auth_time` for "sudo", the superuser claim). How they
//! arrive (API Gateway's JWT authorizer, the optional Lambda authorizer, the local CLI) is
//! [`crate::http`]'s business.

/// The authenticated caller, from the HTTP API JWT authorizer (`requestContext.authorizer.jwt.claims`)
/// or, on routes anonymous callers may use too, from the optional Lambda authorizer
/// (`requestContext.authorizer.lambda`, the same claims as strings).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Claims {
    /// `sub`: the user id.
    pub sub: String,
    pub email: Option<String>,
    pub email_verified: bool,
    /// `auth_time`: when the user last authenticated (epoch seconds); drives "sudo".
    pub auth_time: Option<i64>,
    pub superuser: bool,
}

impl Claims {
    /// Reads claims as API Gateway delivers them (every value a string). `None` without a usable `sub`.
    pub fn from_map(map: &std::collections::HashMap<String, String>, superuser_claim: &str) -> Option<Self> {
        let sub = map.get("sub").map(|s| s.trim()).filter(|s| !s.is_empty() && s.len() <= 128)?;
        let truthy = |v: Option<&String>| v.is_some_and(|v| matches!(v.trim(), "true" | "True" | "1"));
        Some(Self {
            sub: sub.to_owned(),
            email: map.get("email").map(|e| e.trim().to_owned()).filter(|e| !e.is_empty()),
            email_verified: truthy(map.get("email_verified")),
            auth_time: map.get("auth_time").and_then(|t| t.trim().parse::<f64>().ok()).map(|t| t as i64),
            superuser: truthy(map.get(superuser_claim)),
        })
    }

    /// Sudo: the caller re-authenticated within `window_secs` (and not in the future beyond a small skew).
    pub fn is_sudo(&self, now_secs: i64, window_secs: i64) -> bool {
        self.auth_time.is_some_and(|t| t <= now_secs + 300 && now_secs - t <= window_secs)
    }
}
