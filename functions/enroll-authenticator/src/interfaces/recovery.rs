//! `recovery`: recovery codes, the backup interface. They are never enrolled through this endpoint:
//! they are added with the first other interface (`shared::domain::enroll::recovery_codes_needed`).
//! GET answers "Already enrolled" when the user has them and 404 otherwise (Sentry: a `KeyError`, 500;
//! DECISIONS 1); POST is a 404 as for an unknown interface.

use serde_json::{Map, Value};
use shared::domain::enroll::ALREADY_ENROLLED;
use shared::domain::interfaces::InterfaceInfo;
use shared::domain::user::InterfaceType;
use shared::error::ApiError;
use shared::http::Reply;

use super::{Body, Interface, Posted, Shown, Step};
use crate::EnrollAuthenticator;

pub(crate) struct Recovery;

#[async_trait::async_trait]
impl Interface for Recovery {
    fn info(&self) -> InterfaceInfo {
        InterfaceInfo {
            kind: InterfaceType::Recovery,
            name: "Recovery Codes",
            description: "Recovery codes are the only way to access your account if you lose your device and cannot receive two factor authentication codes.",
            rotation_warning: None,
            enroll_button: "Activate",
            configure_button: "View Codes",
            remove_button: None,
            is_backup: true,
            allow_multi_enrollment: false,
            allow_rotation_in_place: false,
            can_validate_otp: true,
        }
    }

    fn enrolls_here(&self) -> bool {
        false
    }

    async fn show(&self, _: &EnrollAuthenticator, cx: Shown<'_>) -> Result<Reply, ApiError> {
        match cx.state.authenticator(InterfaceType::Recovery) {
            Some(_) => Err(ApiError::details(400, ALREADY_ENROLLED)),
            None => Err(ApiError::ResourceDoesNotExist),
        }
    }

    fn validate(&self, _: &Map<String, Value>) -> Result<Body, ApiError> {
        Err(ApiError::NotFoundEmpty)
    }

    async fn verify(&self, _: &EnrollAuthenticator, _: Posted<'_>, _: Body) -> Result<Step, ApiError> {
        Err(ApiError::NotFoundEmpty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_attributes_match_sentry() {
        let r = Recovery.info();
        assert!(r.is_backup && r.remove_button.is_none());
    }
}
