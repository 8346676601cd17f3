//! One module per authenticator interface, behind one trait: each owns its static attributes (Sentry's
//! `AuthenticatorInterface` class attributes), its enrollment form, the validation of its POST body,
//! what GET issues and what POST verifies. The handler (`crate::EnrollAuthenticator`) looks the
//! interface up once ([`interface`]) and runs the checks every interface shares around these steps:
//! authentication, permission, sudo, rate limit, availability, disallowed enrollment, already enrolled,
//! and the one transaction that enrolls, adds recovery codes and completes a pending invite.
//!
//! A new interface is one file here with its tests, one [`InterfaceType`] variant (its id and Sentry's
//! type code in that enum's one table), one line in [`interface`], and its availability flag in
//! `shared::config::Config::interface_available`.

pub(crate) mod recovery;
pub(crate) mod sms;
pub(crate) mod totp;
pub(crate) mod u2f;

use std::any::Any;

use serde_json::{Map, Value};
use shared::domain::enroll::{Consume, INVALID_SECRET};
use shared::domain::interfaces::InterfaceInfo;
use shared::domain::otp::Totp;
use shared::domain::user::{Authenticator, InterfaceType, PendingSecret, UserState};
use shared::error::ApiError;
use shared::http::{ApiRequest, Claims, Reply};
use shared::secret::Secret;

use crate::EnrollAuthenticator;

/// The interface of a kind: the registry, one line per interface.
pub(crate) fn interface(kind: InterfaceType) -> &'static dyn Interface {
    match kind {
        InterfaceType::Recovery => &recovery::Recovery,
        InterfaceType::Totp => &totp::Totp,
        InterfaceType::Sms => &sms::Sms,
        InterfaceType::U2f => &u2f::U2f,
    }
}

/// GET's view of the request: the caller, the user the path names (the caller, or another user for a
/// superuser), that user's e-mail, and whether new enrollments of this interface are disallowed.
pub(crate) struct Shown<'a> {
    pub caller: &'a Claims,
    pub state: UserState,
    pub email: Option<String>,
    pub disallow: bool,
}

/// POST's view, once the shared checks passed: the validated body, the caller's state, the
/// authenticator of this kind the caller already has, and the time.
pub(crate) struct Posted<'a> {
    pub req: &'a ApiRequest,
    pub caller: &'a Claims,
    pub body: &'a Map<String, Value>,
    pub user: &'a UserState,
    pub existing: Option<&'a Authenticator>,
    pub now: i64,
}

/// A validated POST body, of the interface's own type (see [`Interface::validate`]).
pub(crate) struct Body(Box<dyn Any + Send + Sync>);

impl Body {
    pub(crate) fn new<T: Any + Send + Sync>(body: T) -> Self {
        Self(Box::new(body))
    }

    /// The body as the interface that validated it made it.
    pub(crate) fn into<T: Any>(self) -> Result<T, ApiError> {
        self.0.downcast::<T>().map(|b| *b).map_err(|_| {
            tracing::error!("an enrollment body reached another interface than the one that validated it");
            ApiError::Internal
        })
    }
}

/// What a verified POST enrolls.
pub(crate) struct Verified {
    pub config: Value,
    pub consume: Consume,
    pub otp_counter: Option<(String, i64, i64)>,
    pub credential: Option<String>,
    pub device_name: Option<String>,
}

/// How POST's interface step ends: something to enroll, or the answer itself (SMS: a code was texted).
pub(crate) enum Step {
    Enroll(Verified),
    Answer(Reply),
}

/// An authenticator interface's part of enrollment.
#[async_trait::async_trait]
pub(crate) trait Interface: Sync {
    /// Sentry's class attributes of the interface.
    fn info(&self) -> InterfaceInfo;

    /// Whether POST enrolls it here (recovery codes: no, they come with the first other interface;
    /// POST answers 404 as for an unknown id).
    fn enrolls_here(&self) -> bool {
        true
    }

    /// GET: the interface serialized with its form and what POST will need (a secret, a WebAuthn
    /// challenge), or the error Sentry's order gives.
    async fn show(&self, h: &EnrollAuthenticator, cx: Shown<'_>) -> Result<Reply, ApiError>;

    /// Whether a POST repeats an enrollment that already committed (its answer was lost): answered
    /// 204 again with nothing written.
    fn repeats_enrollment(&self, _user: &UserState, _body: &Map<String, Value>, _now: i64) -> bool {
        false
    }

    /// The answer when what GET issued is gone (consumed by a concurrent POST, or expired).
    fn issued_gone(&self) -> ApiError {
        ApiError::details(400, INVALID_SECRET)
    }

    /// POST: the body's fields checked (DRF's messages), before availability is (Sentry's order).
    fn validate(&self, body: &Map<String, Value>) -> Result<Body, ApiError>;

    /// POST: verifies what the user proves (a code, an attestation) against what GET issued.
    async fn verify(&self, h: &EnrollAuthenticator, cx: Posted<'_>, body: Body) -> Result<Step, ApiError>;
}

/// The pending entry for the `secret` of a TOTP/SMS POST: the secret is required, and it must be the one
/// GET issued to the caller for this interface, unexpired (DECISIONS 2).
pub(crate) fn pending_secret<'u>(
    body: &Map<String, Value>,
    user: &'u UserState,
    kind: InterfaceType,
    now: i64,
) -> Result<&'u PendingSecret, ApiError> {
    let secret = match body.get("secret") {
        Some(Value::String(s)) if !s.is_empty() => Secret::new(s.clone()),
        _ => return Err(ApiError::field_error("secret", "This field is required.")),
    };
    match user.pending_secret(kind, now) {
        Some(p) if p.secret == secret => Ok(p),
        _ => Err(ApiError::details(400, INVALID_SECRET)),
    }
}

/// Verifies a code and returns its replay scope and counter. Used counters are remembered per secret:
/// a code is (secret, counter); rotating to a new secret inside the same step is not blocked by the
/// previous secret's code.
pub(crate) fn verify_code(
    totp: &Totp,
    secret: &Secret,
    kind: InterfaceType,
    otp: &str,
    user: &UserState,
    now: i64,
) -> Result<(String, i64), ApiError> {
    let scope = format!("{}.{}", kind.id(), secret_fingerprint(secret));
    match totp.verify(otp, now, |c| user.otp_used(&scope, c, now)) {
        Some(counter) => Ok((scope, counter)),
        None => Err(ApiError::InvalidOtp),
    }
}

/// A short, non-reversible fingerprint of a secret (first 8 hex of SHA-256) for OTP replay keys.
fn secret_fingerprint(secret: &Secret) -> String {
    shared::domain::org::hash_token(secret.expose())[..8].to_owned()
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A POST body from a JSON object.
    pub(crate) fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_registry_serves_every_interface_type() {
        for (kind, _) in InterfaceType::ALL {
            assert_eq!(interface(kind).info().kind, kind);
        }
        assert!(!interface(InterfaceType::Recovery).enrolls_here());
    }
}
