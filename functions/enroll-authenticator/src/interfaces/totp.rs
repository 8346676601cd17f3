//! `totp`: an authenticator app. GET issues a secret bound to the caller (DECISIONS 2) with its
//! `otpauth://` URI; POST verifies a code of that secret (each code once, DECISIONS 3) and enrolls it —
//! replacing an enrolled app's secret in place (rotation).

use serde_json::{Map, Value, json};
use shared::domain::enroll::{Consume, FieldErrors, INVALID_SECRET, char_field};
use shared::domain::interfaces::{EnrollmentStatus, InterfaceInfo, serialize};
use shared::domain::otp::{self, provision_uri};
use shared::domain::user::{InterfaceType, UserState};
use shared::error::ApiError;
use shared::http::Reply;

use super::{Body, Interface, Posted, Shown, Step, Verified, pending_secret, verify_code};
use crate::EnrollAuthenticator;

pub(crate) struct Totp;

pub const DESCRIPTION: &str = "An authenticator application that supports TOTP (like Google Authenticator or 1Password) can be used to access your account securely using a token and secret key. A new token is generated every 30 seconds.";
pub const ROTATION_WARNING: &str = "Your account is currently linked to an authenticator application. To link to a new device or application, or to update your secret key, click \"Confirm\" below. By clicking \"Confirm\", your existing secret key will be replaced and will no longer work to access your account.";

/// `get_serializer_field_metadata` of the TOTP enrollment serializer.
pub fn form() -> Value {
    json!([{
        "name": "otp",
        "defaultValue": null,
        "read_only": false,
        "required": true,
        "type": "string",
        "max_length": 20,
        "label": "Authenticator token"
    }])
}

/// The TOTP enrollment body: `otp` (required, ≤ 20).
pub fn validate_body(body: &Map<String, Value>) -> Result<String, FieldErrors> {
    match char_field(body, "otp", true, 20) {
        Ok(Some(otp)) => Ok(otp),
        Ok(None) => Err(FieldErrors::one("otp", "This field is required.")),
        Err((f, m)) => Err(FieldErrors::one(&f, &m)),
    }
}

#[async_trait::async_trait]
impl Interface for Totp {
    fn info(&self) -> InterfaceInfo {
        InterfaceInfo {
            kind: InterfaceType::Totp,
            name: "Authenticator App",
            description: DESCRIPTION,
            rotation_warning: Some(ROTATION_WARNING),
            enroll_button: "Enroll",
            configure_button: "Info",
            remove_button: Some("Remove"),
            is_backup: false,
            allow_multi_enrollment: false,
            allow_rotation_in_place: true,
            can_validate_otp: true,
        }
    }

    async fn show(&self, h: &EnrollAuthenticator, cx: Shown<'_>) -> Result<Reply, ApiError> {
        let enrolled = cx.state.authenticator(InterfaceType::Totp).is_some();
        let status = if enrolled { EnrollmentStatus::Rotation } else { EnrollmentStatus::New };
        let secret = h.issue_secret(cx.caller, InterfaceType::Totp, false).await?;
        // Rotation shows a fresh, unsaved interface (Sentry: `isEnrolled: false`, no authId).
        let mut body = serialize(&self.info(), status, None, cx.disallow);
        body["form"] = form();
        body["secret"] = json!(secret.expose());
        let account = cx.email.unwrap_or_else(|| cx.state.user_id.clone());
        body["qrcode"] = json!(provision_uri(&account, &h.config.totp_issuer, &secret));
        Ok(Reply::json(200, body))
    }

    /// A TOTP POST repeats an enrollment that already happened when its secret is no longer pending and
    /// is the secret of the caller's authenticator (compared in constant time).
    fn repeats_enrollment(&self, user: &UserState, body: &Map<String, Value>, now: i64) -> bool {
        let kind = InterfaceType::Totp;
        let (Some(a), Some(Value::String(posted))) = (user.authenticator(kind), body.get("secret")) else {
            return false;
        };
        user.pending_secret(kind, now).is_none()
            && a.config["secret"]
                .as_str()
                .is_some_and(|s| shared::secret::constant_time_eq(s.as_bytes(), posted.as_bytes()))
    }

    fn validate(&self, body: &Map<String, Value>) -> Result<Body, ApiError> {
        Ok(Body::new(validate_body(body)?))
    }

    async fn verify(&self, _: &EnrollAuthenticator, cx: Posted<'_>, body: Body) -> Result<Step, ApiError> {
        let otp: String = body.into()?;
        let kind = InterfaceType::Totp;
        let secret = pending_secret(cx.body, cx.user, kind, cx.now)?.secret.clone();
        let totp =
            otp::Totp::authenticator_app(&secret).ok_or_else(|| ApiError::details(400, INVALID_SECRET))?;
        let (scope, counter) = verify_code(&totp, &secret, kind, &otp, cx.user, cx.now)?;
        Ok(Step::Enroll(Verified {
            config: json!({"secret": secret.expose()}),
            otp_counter: Some((scope, counter, totp.valid_until(counter) + 60)),
            consume: Consume::Secret { interface: kind, secret, phone: None },
            credential: None,
            device_name: None,
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
        let t = Totp.info();
        assert!(t.allow_rotation_in_place && !t.allow_multi_enrollment);
    }

    #[test]
    fn drf_messages() {
        let e = |v: Value| validate_body(&body(v)).map_err(|e| json!(e.0)).unwrap_err();
        assert_eq!(e(json!({})), json!({"otp": ["This field is required."]}));
        assert_eq!(e(json!({"otp": null})), json!({"otp": ["This field may not be null."]}));
        assert_eq!(e(json!({"otp": ""})), json!({"otp": ["This field may not be blank."]}));
        assert_eq!(
            e(json!({"otp": "1".repeat(21)})),
            json!({"otp": ["Ensure this field has no more than 20 characters."]})
        );
        assert_eq!(e(json!({"otp": ["1"]})), json!({"otp": ["Not a valid string."]}));
        assert_eq!(validate_body(&body(json!({"otp": 123456}))).unwrap(), "123456");
        assert_eq!(validate_body(&body(json!({"otp": " 123 456 "}))).unwrap(), " 123 456 ", "no trimming");
    }
}
