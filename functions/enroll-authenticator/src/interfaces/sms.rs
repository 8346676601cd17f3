//! `sms`: text messages. GET issues a secret bound to the caller and a server-only code key; POST
//! without `otp` texts the number a code (per-number and account-wide limits, allowed countries, no
//! premium-rate numbers: SMS pumping), POST with `otp` verifies the code texted to that number and
//! enrolls it. The codes derive from the server-only key and the number, so the client, who holds
//! `secret`, cannot compute them (`shared::domain::sms`).

use serde_json::{Map, Value, json};
use shared::domain::enroll::{
    ALREADY_ENROLLED, Consume, FieldErrors, Fields, INVALID_SECRET, char_field, nullable_char_field,
};
use shared::domain::interfaces::{EnrollmentStatus, InterfaceInfo, serialize};
use shared::domain::otp;
use shared::domain::sms;
use shared::domain::user::InterfaceType;
use shared::error::ApiError;
use shared::http::{ApiRequest, Claims, Reply};
use shared::ports::TextMessage;
use shared::secret::Secret;

use super::{Body, Interface, Posted, Shown, Step, Verified, pending_secret, verify_code};
use crate::EnrollAuthenticator;

pub(crate) struct Sms;

/// The SMS enrollment serializer's fields: `phone` (required) and `otp` (optional).
pub fn form() -> Value {
    json!([
        {"name": "phone", "defaultValue": null, "read_only": false, "required": true, "type": "string", "max_length": 20, "label": "Phone number"},
        {"name": "otp", "defaultValue": null, "read_only": false, "required": false, "type": "string", "max_length": 20, "label": "Authenticator code"}
    ])
}

/// The SMS enrollment body (`SmsRestSerializer`): `phone` (required, ≤ 20) and `otp` (optional,
/// null and blank allowed, ≤ 20). `otp`: `None` = key absent (send a text), `Some(None)` = null.
#[derive(Debug, Clone, PartialEq)]
pub struct SmsBody {
    pub phone: String,
    pub otp: Option<Option<String>>,
}

pub fn validate_body(body: &Map<String, Value>) -> Result<SmsBody, FieldErrors> {
    let mut f = Fields::default();
    let phone = f.take(char_field(body, "phone", true, 20)).flatten();
    let otp = f.take(nullable_char_field(body, "otp", 20));
    let value = match (phone, otp) {
        (Some(phone), Some(otp)) => Some(SmsBody { phone, otp }),
        _ => None,
    };
    f.finish(value)
}

#[async_trait::async_trait]
impl Interface for Sms {
    fn info(&self) -> InterfaceInfo {
        InterfaceInfo {
            kind: InterfaceType::Sms,
            name: "Text Message",
            description: "This authenticator sends you text messages for verification.  It's useful as a backup method or when you do not have a phone that supports an authenticator application.",
            rotation_warning: None,
            enroll_button: "Enroll",
            configure_button: "Info",
            remove_button: Some("Remove"),
            is_backup: false,
            allow_multi_enrollment: false,
            allow_rotation_in_place: false,
            can_validate_otp: true,
        }
    }

    async fn show(&self, h: &EnrollAuthenticator, cx: Shown<'_>) -> Result<Reply, ApiError> {
        if cx.state.authenticator(InterfaceType::Sms).is_some() {
            return Err(ApiError::details(400, ALREADY_ENROLLED));
        }
        let secret = h.issue_secret(cx.caller, InterfaceType::Sms, true).await?;
        let mut body = serialize(&self.info(), EnrollmentStatus::New, None, cx.disallow);
        body["phone"] = Value::Null;
        body["form"] = form();
        body["secret"] = json!(secret.expose());
        Ok(Reply::json(200, body))
    }

    fn validate(&self, body: &Map<String, Value>) -> Result<Body, ApiError> {
        Ok(Body::new(validate_body(body)?))
    }

    async fn verify(&self, h: &EnrollAuthenticator, cx: Posted<'_>, body: Body) -> Result<Step, ApiError> {
        let sms_body: SmsBody = body.into()?;
        let kind = InterfaceType::Sms;
        let pending = pending_secret(cx.body, cx.user, kind, cx.now)?;
        let secret = pending.secret.clone();
        let server_key = pending.code_key.as_ref().ok_or_else(|| ApiError::details(400, INVALID_SECRET))?;
        // Invalid numbers, countries outside the allow-list and premium-rate or other high-cost
        // number types are refused before anything is texted (SMS pumping).
        let e164 = sms::textable_e164(&sms_body.phone, &h.config.sms_allowed_countries)
            .map_err(|r| ApiError::field_error("phone", r.message()))?;
        // The codes for this number: TOTP (45 s) over a key derived from the server-only key.
        let key = sms::code_key(server_key, &e164);
        let totp = otp::Totp::sms(&key).ok_or(ApiError::Internal)?;
        let otp = match sms_body.otp {
            // No `otp` key: text the code (Sentry: `"otp" not in request.data`).
            None => {
                return send_text(h, cx.req, cx.caller, &secret, &totp, &e164, cx.now)
                    .await
                    .map(Step::Answer);
            }
            Some(Some(otp)) if !otp.is_empty() => otp,
            Some(_) => return Err(ApiError::InvalidOtp),
        };
        // Only a number a code was texted to can be enrolled.
        if pending.phone.as_deref() != Some(e164.as_str()) {
            return Err(ApiError::InvalidOtp);
        }
        let (scope, counter) = verify_code(&totp, &key, kind, &otp, cx.user, cx.now)?;
        Ok(Step::Enroll(Verified {
            // The enrolled secret is the derived key, which never left the server.
            config: json!({"secret": key.expose(), "phone_number": sms_body.phone}),
            otp_counter: Some((scope, counter, totp.valid_until(counter) + 45)),
            consume: Consume::Secret { interface: kind, secret, phone: Some(e164) },
            credential: None,
            device_name: None,
        }))
    }
}

/// SMS POST without `otp`: text the number its code (Sentry's `send_text(for_enrollment=True)`). The
/// per-number limit, the account-wide daily cap and the binding of the number to the pending secret
/// run concurrently (one round); the text goes out only if all pass.
async fn send_text(
    h: &EnrollAuthenticator,
    req: &ApiRequest,
    caller: &Claims,
    secret: &Secret,
    totp: &otp::Totp,
    e164: &str,
    now: i64,
) -> Result<Reply, ApiError> {
    let limit_key = sms::rate_limit_key(e164);
    let limit = h.limiter.hit(&limit_key, sms::TEXTS_PER_NUMBER, sms::TEXT_WINDOW_SECS, now);
    let bind = h.enrollment.bind_pending_phone(&caller.sub, InterfaceType::Sms, secret, e164, now);
    // The account-wide daily cap (all users): what SMS pumping through many accounts runs into.
    let cap = h.config.sms_daily_cap;
    let daily = async {
        if cap == 0 {
            return Ok(None);
        }
        h.limiter.hit(sms::DAILY_CAP_KEY, cap, 86_400, now).await.map(Some)
    };
    let (limit, bound, daily) = tokio::join!(limit, bind, daily);
    // Unlike the enrollment limit these fail closed: every text costs money.
    if limit?.is_limited() {
        tracing::warn!(user_id = %caller.sub, remote_ip = ?req.source_ip, "auth-enroll.sms.rate-limit-exceeded");
        return Err(ApiError::details(429, sms::SEND_SMS_ERR));
    }
    if daily?.is_some_and(|d| d.is_limited()) {
        tracing::warn!(user_id = %caller.sub, remote_ip = ?req.source_ip, cap, "auth-enroll.sms.daily-cap-reached");
        return Err(ApiError::details(429, sms::SEND_SMS_ERR));
    }
    if !bound? {
        return Err(ApiError::details(400, INVALID_SECRET));
    }
    let code = totp.code_at_counter(totp.counter_at(now) as u64);
    let message = TextMessage { to_e164: e164.to_owned(), text: sms::enrollment_text(&code) };
    match h.sms.send(&message).await {
        Ok(()) => {
            tracing::info!(user_id = %caller.sub, "mfa.sms-enrollment-code-sent");
            Ok(Reply::empty(204))
        }
        Err(e) => {
            tracing::error!(user_id = %caller.sub, error = %e, "sending the enrollment text failed");
            Err(ApiError::details(500, sms::SEND_SMS_ERR))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::tests::body;
    use super::*;

    #[test]
    fn static_attributes_match_sentry() {
        assert!(Sms.info().description.contains("verification.  It's"), "two spaces, verbatim");
    }

    #[test]
    fn sms_body_as_drf() {
        let ok = |v: Value| validate_body(&body(v)).unwrap();
        let e = |v: Value| validate_body(&body(v)).map_err(|e| json!(e.0)).unwrap_err();
        assert_eq!(ok(json!({"phone": "2345678900"})), SmsBody { phone: "2345678900".into(), otp: None });
        assert_eq!(ok(json!({"phone": "1", "otp": null})).otp, Some(None));
        assert_eq!(ok(json!({"phone": "1", "otp": ""})).otp, Some(Some(String::new())));
        assert_eq!(ok(json!({"phone": "1", "otp": "123 456"})).otp, Some(Some("123 456".into())));
        assert_eq!(e(json!({})), json!({"phone": ["This field is required."]}));
        assert_eq!(
            e(json!({"phone": "", "otp": "1".repeat(21)})),
            json!({"otp": ["Ensure this field has no more than 20 characters."], "phone": ["This field may not be blank."]})
        );
    }
}
