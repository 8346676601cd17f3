//! What every authenticator interface's GET shows: its static attributes ([`InterfaceInfo`], Sentry's
//! `AuthenticatorInterface` class attributes; each interface's own are in its module of the enroll
//! function), its enrollment status, and Sentry's `AuthenticatorInterfaceSerializer` shape.

use serde_json::{Value, json};

use super::user::{Authenticator, InterfaceType};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnrollmentStatus {
    New,
    Multi,
    Rotation,
    Existing,
}

impl EnrollmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Multi => "multi",
            Self::Rotation => "rotation",
            Self::Existing => "existing",
        }
    }
}

/// Static attributes of an interface.
#[derive(Clone, Copy, Debug)]
pub struct InterfaceInfo {
    pub kind: InterfaceType,
    pub name: &'static str,
    pub description: &'static str,
    pub rotation_warning: Option<&'static str>,
    pub enroll_button: &'static str,
    pub configure_button: &'static str,
    pub remove_button: Option<&'static str>,
    pub is_backup: bool,
    pub allow_multi_enrollment: bool,
    pub allow_rotation_in_place: bool,
    pub can_validate_otp: bool,
}

/// DRF's datetime rendering: `2023-11-14T22:13:20.123000Z`.
pub fn drf_datetime(millis: i64) -> Value {
    chrono::DateTime::from_timestamp_millis(millis)
        .map(|d| Value::String(d.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()))
        .unwrap_or(Value::Null)
}

/// `serialize(interface)`: the interface's attributes, its status, and (when bound to an enrolled
/// authenticator) `authId`, `createdAt`, `lastUsedAt`.
pub fn serialize(
    info: &InterfaceInfo,
    status: EnrollmentStatus,
    bound: Option<&Authenticator>,
    disallow_new_enrollment: bool,
) -> Value {
    let s = |o: Option<&str>| o.map_or_else(|| "None".to_owned(), str::to_owned);
    let mut v = json!({
        "id": info.kind.id(),
        "name": info.name,
        "description": info.description,
        "rotationWarning": s(info.rotation_warning),
        "enrollButton": info.enroll_button,
        "configureButton": info.configure_button,
        "removeButton": s(info.remove_button),
        "isBackupInterface": info.is_backup,
        "isEnrolled": bound.is_some(),
        "disallowNewEnrollment": disallow_new_enrollment,
        "status": status.as_str(),
        "canValidateOtp": info.can_validate_otp,
        "allowMultiEnrollment": info.allow_multi_enrollment,
        "allowRotationInPlace": info.allow_rotation_in_place,
    });
    if let Some(a) = bound {
        v["authId"] = json!(a.id);
        v["createdAt"] = drf_datetime(a.created_at);
        v["lastUsedAt"] = a.last_used_at.map_or(Value::Null, drf_datetime);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totp() -> InterfaceInfo {
        InterfaceInfo {
            kind: InterfaceType::Totp,
            name: "Authenticator App",
            description: "d",
            rotation_warning: Some("w"),
            enroll_button: "Enroll",
            configure_button: "Info",
            remove_button: Some("Remove"),
            is_backup: false,
            allow_multi_enrollment: false,
            allow_rotation_in_place: true,
            can_validate_otp: true,
        }
    }

    #[test]
    fn serialization_shape() {
        let v = serialize(&totp(), EnrollmentStatus::New, None, false);
        assert_eq!(v["id"], "totp");
        assert_eq!(v["status"], "new");
        assert_eq!(v["isEnrolled"], false);
        assert!(v.get("authId").is_none());
        let recovery = InterfaceInfo { rotation_warning: None, remove_button: None, ..totp() };
        let v = serialize(&recovery, EnrollmentStatus::Existing, None, false);
        assert_eq!(v["removeButton"], "None");
        assert_eq!(v["rotationWarning"], "None");
        let a = Authenticator {
            id: "5".into(),
            kind: InterfaceType::Totp,
            config: json!({}),
            created_at: 1_700_000_000_123,
            last_used_at: None,
            version: 1,
        };
        let v = serialize(&totp(), EnrollmentStatus::Existing, Some(&a), true);
        assert_eq!(v["authId"], "5");
        assert_eq!(v["createdAt"], "2023-11-14T22:13:20.123000Z");
        assert_eq!(v["lastUsedAt"], Value::Null);
        assert_eq!(v["disallowNewEnrollment"], true);
    }
}
