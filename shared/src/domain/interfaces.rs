//! The authenticator interface registry (Sentry's `AUTHENTICATOR_INTERFACES`): static attributes of each
//! interface, availability, and the GET serialization (`AuthenticatorInterfaceSerializer`).
//!
//! Interfaces are data, not a trait hierarchy: each interface (`totp`, `sms`, `u2f`, `recovery`) is one
//! entry of this registry; its enrollment steps live in `domain::enroll`, `domain::sms` and
//! `domain::webauthn`, and its availability comes from the configuration.

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

pub const TOTP_DESCRIPTION: &str = "An authenticator application that supports TOTP (like Google Authenticator or 1Password) can be used to access your account securely using a token and secret key. A new token is generated every 30 seconds.";
pub const TOTP_ROTATION_WARNING: &str = "Your account is currently linked to an authenticator application. To link to a new device or application, or to update your secret key, click \"Confirm\" below. By clicking \"Confirm\", your existing secret key will be replaced and will no longer work to access your account.";

pub fn info(kind: InterfaceType) -> InterfaceInfo {
    match kind {
        InterfaceType::Recovery => InterfaceInfo {
            kind,
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
        },
        InterfaceType::Totp => InterfaceInfo {
            kind,
            name: "Authenticator App",
            description: TOTP_DESCRIPTION,
            rotation_warning: Some(TOTP_ROTATION_WARNING),
            enroll_button: "Enroll",
            configure_button: "Info",
            remove_button: Some("Remove"),
            is_backup: false,
            allow_multi_enrollment: false,
            allow_rotation_in_place: true,
            can_validate_otp: true,
        },
        InterfaceType::Sms => InterfaceInfo {
            kind,
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
        },
        InterfaceType::U2f => InterfaceInfo {
            kind,
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
        },
    }
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

/// `get_serializer_field_metadata` of the TOTP enrollment serializer.
pub fn totp_form() -> Value {
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

/// The SMS enrollment serializer's fields: `phone` (required) and `otp` (optional).
pub fn sms_form() -> Value {
    json!([
        {"name": "phone", "defaultValue": null, "read_only": false, "required": true, "type": "string", "max_length": 20, "label": "Phone number"},
        {"name": "otp", "defaultValue": null, "read_only": false, "required": false, "type": "string", "max_length": 20, "label": "Authenticator code"}
    ])
}

/// The u2f enrollment serializer's fields. Sentry's `deviceName` default is a random petname; here it is
/// the name a device gets when none is sent, "Security Key".
pub fn u2f_form() -> Value {
    json!([
        {"name": "deviceName", "defaultValue": super::webauthn::DEFAULT_DEVICE_NAME, "read_only": false, "required": false, "type": "string", "max_length": 60, "label": "Device name"},
        {"name": "challenge", "defaultValue": null, "read_only": false, "required": true, "type": "string", "label": "Challenge"},
        {"name": "response", "defaultValue": null, "read_only": false, "required": true, "type": "string", "label": "Response"}
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_attributes_match_sentry() {
        let r = info(InterfaceType::Recovery);
        assert!(r.is_backup && r.remove_button.is_none());
        let t = info(InterfaceType::Totp);
        assert!(t.allow_rotation_in_place && !t.allow_multi_enrollment);
        assert!(info(InterfaceType::U2f).allow_multi_enrollment);
        assert!(info(InterfaceType::Sms).description.contains("verification.  It's"), "two spaces, verbatim");
    }

    #[test]
    fn serialization_shape() {
        let v = serialize(&info(InterfaceType::Totp), EnrollmentStatus::New, None, false);
        assert_eq!(v["id"], "totp");
        assert_eq!(v["status"], "new");
        assert_eq!(v["isEnrolled"], false);
        assert!(v.get("authId").is_none());
        let v = serialize(&info(InterfaceType::Recovery), EnrollmentStatus::Existing, None, false);
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
        let v = serialize(&info(InterfaceType::Totp), EnrollmentStatus::Existing, Some(&a), true);
        assert_eq!(v["authId"], "5");
        assert_eq!(v["createdAt"], "2023-11-14T22:13:20.123000Z");
        assert_eq!(v["lastUsedAt"], Value::Null);
        assert_eq!(v["disallowNewEnrollment"], true);
    }
}
