//! `u2f`: WebAuthn security keys, several per user. GET starts a registration ceremony bound to the
//! caller (the caller's devices excluded) and shows an enrolled interface as "multi"; POST finishes the
//! ceremony and adds the device to the same authenticator.

use serde_json::{Map, Value, json};
use shared::domain::enroll::{
    Consume, FieldErrors, Fields, PENDING_TTL_SECS, char_field, nullable_char_field,
};
use shared::domain::interfaces::{EnrollmentStatus, InterfaceInfo, serialize};
use shared::domain::user::InterfaceType;
use shared::domain::webauthn::{self, WebAuthnError};
use shared::error::ApiError;
use shared::http::Reply;

use super::{Body, Interface, Posted, Shown, Step, Verified};
use crate::EnrollAuthenticator;

pub(crate) struct U2f;

/// The u2f enrollment serializer's fields. Sentry's `deviceName` default is a random petname; here it is
/// the name a device gets when none is sent, "Security Key".
pub fn form() -> Value {
    json!([
        {"name": "deviceName", "defaultValue": webauthn::DEFAULT_DEVICE_NAME, "read_only": false, "required": false, "type": "string", "max_length": 60, "label": "Device name"},
        {"name": "challenge", "defaultValue": null, "read_only": false, "required": true, "type": "string", "label": "Challenge"},
        {"name": "response", "defaultValue": null, "read_only": false, "required": true, "type": "string", "label": "Response"}
    ])
}

/// The u2f enrollment body (`U2fRestSerializer`): `deviceName` (optional, null and blank allowed,
/// ≤ 60), `challenge` and `response` (required).
#[derive(Debug, Clone, PartialEq)]
pub struct U2fBody {
    pub device_name: Option<String>,
    pub challenge: String,
    pub response: String,
}

pub fn validate_body(body: &Map<String, Value>) -> Result<U2fBody, FieldErrors> {
    let mut f = Fields::default();
    let device_name = f.take(nullable_char_field(body, "deviceName", 60));
    let challenge = f.take(char_field(body, "challenge", true, usize::MAX)).flatten();
    let response = f.take(char_field(body, "response", true, usize::MAX)).flatten();
    let value = match (device_name, challenge, response) {
        (Some(d), Some(challenge), Some(response)) => {
            Some(U2fBody { device_name: d.flatten().filter(|n| !n.trim().is_empty()), challenge, response })
        }
        _ => None,
    };
    f.finish(value)
}

fn webauthn_error(e: WebAuthnError) -> ApiError {
    match e {
        WebAuthnError::InvalidResponse => ApiError::details(400, webauthn::INVALID_ATTESTATION),
        WebAuthnError::Internal(msg) => {
            tracing::error!(error = %msg, "webauthn ceremony failed");
            ApiError::Internal
        }
    }
}

#[async_trait::async_trait]
impl Interface for U2f {
    fn info(&self) -> InterfaceInfo {
        InterfaceInfo {
            kind: InterfaceType::U2f,
            name: "U2F (Universal 2nd Factor)",
            description: "Authenticate with a U2F hardware device. This is a device like a Yubikey or something similar which supports FIDO's U2F specification. This also requires a browser which supports this system (like Google Chrome).",
            rotation_warning: None,
            enroll_button: "Enroll",
            configure_button: "Configure",
            remove_button: Some("Remove"),
            is_backup: false,
            allow_multi_enrollment: true,
            allow_rotation_in_place: false,
            can_validate_otp: false,
        }
    }

    async fn show(&self, h: &EnrollAuthenticator, cx: Shown<'_>) -> Result<Reply, ApiError> {
        let kind = InterfaceType::U2f;
        let enrolled = cx.state.authenticator(kind);
        // Multi-enrollment: an enrolled u2f shows its authenticator and status "multi".
        let status = if enrolled.is_some() { EnrollmentStatus::Multi } else { EnrollmentStatus::New };
        let mut body = serialize(&self.info(), status, enrolled, cx.disallow);
        body["form"] = form();
        // The ceremony is the caller's (POST always enrolls the caller, a superuser included): the
        // caller's devices are excluded and the state is bound to the caller.
        let own = if cx.state.user_id == cx.caller.sub {
            enrolled.map(|a| a.config.clone())
        } else {
            h.enrollment.load_user(&cx.caller.sub).await?.authenticator(kind).map(|a| a.config.clone())
        };
        let name = cx.caller.email.clone().unwrap_or_else(|| cx.caller.sub.clone());
        let (challenge, ceremony) =
            h.registrar()?.start(&cx.caller.sub, &name, own.as_ref()).map_err(webauthn_error)?;
        let expires = h.clock.now_secs() + PENDING_TTL_SECS;
        h.enrollment.put_webauthn_state(&cx.caller.sub, &ceremony, expires).await?;
        body["challenge"] = challenge;
        Ok(Reply::json(200, body))
    }

    fn issued_gone(&self) -> ApiError {
        ApiError::details(400, webauthn::INVALID_AUTH_STATE)
    }

    fn validate(&self, body: &Map<String, Value>) -> Result<Body, ApiError> {
        Ok(Body::new(validate_body(body)?))
    }

    async fn verify(&self, h: &EnrollAuthenticator, cx: Posted<'_>, body: Body) -> Result<Step, ApiError> {
        let u2f: U2fBody = body.into()?;
        let Some(ceremony) = cx.user.pending_webauthn(cx.now) else {
            return Err(ApiError::details(400, webauthn::INVALID_AUTH_STATE));
        };
        // Sentry ignores the posted `challenge` too: the state holds the real one.
        let device = h.registrar()?.finish(ceremony, &u2f.response).map_err(webauthn_error)?;
        let name = u2f.device_name.unwrap_or_else(|| webauthn::DEFAULT_DEVICE_NAME.to_owned());
        Ok(Step::Enroll(Verified {
            config: webauthn::append_device(cx.existing.map(|a| &a.config), &name, cx.now, &device),
            consume: Consume::WebAuthnState(ceremony.to_owned()),
            otp_counter: None,
            credential: Some(device.key_handle),
            device_name: Some(name),
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::tests::body;
    use super::*;

    #[test]
    fn static_attributes_match_sentry() {
        assert!(U2f.info().allow_multi_enrollment);
    }

    #[test]
    fn u2f_body_as_drf() {
        let ok = |v: Value| validate_body(&body(v)).unwrap();
        let e = |v: Value| validate_body(&body(v)).map_err(|e| json!(e.0)).unwrap_err();
        let b = ok(json!({"deviceName": "device name", "challenge": "c", "response": "r"}));
        assert_eq!(b.device_name.as_deref(), Some("device name"));
        assert_eq!(ok(json!({"challenge": "c", "response": "r"})).device_name, None);
        assert_eq!(ok(json!({"deviceName": null, "challenge": "c", "response": "r"})).device_name, None);
        assert_eq!(ok(json!({"deviceName": "", "challenge": "c", "response": "r"})).device_name, None);
        assert_eq!(
            e(json!({"deviceName": "x".repeat(61)})),
            json!({
                "challenge": ["This field is required."],
                "deviceName": ["Ensure this field has no more than 60 characters."],
                "response": ["This field is required."]
            })
        );
    }
}
