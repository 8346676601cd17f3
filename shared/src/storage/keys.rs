//! Key builders for every item type (the schema table lives in the module docs of [`super`]).

use super::item::Key;
use crate::domain::user::InterfaceType;

pub fn user_pk(user_id: &str) -> String {
    format!("USER#{user_id}")
}

pub fn profile(user_id: &str) -> Key {
    Key::new(user_pk(user_id), "PROFILE")
}

pub fn authenticator(user_id: &str, kind: InterfaceType) -> Key {
    Key::new(user_pk(user_id), format!("AUTH#{}", kind.code()))
}

pub fn membership(user_id: &str, org_id: u64) -> Key {
    Key::new(user_pk(user_id), format!("MEMBERSHIP#{org_id:020}"))
}

pub fn identity(user_id: &str, org_id: u64) -> Key {
    Key::new(user_pk(user_id), format!("IDENTITY#{org_id:020}"))
}

pub fn pending_secret(user_id: &str, kind: InterfaceType) -> Key {
    Key::new(user_pk(user_id), format!("PENDING#{}", kind.id()))
}

pub fn used_otp(user_id: &str, interface: &str, counter: i64) -> Key {
    Key::new(user_pk(user_id), format!("OTP#{interface}#{counter}"))
}

pub fn webauthn_state(user_id: &str) -> Key {
    Key::new(user_pk(user_id), "WEBAUTHN#REGISTER")
}

/// A registered WebAuthn credential (unique across all users), by SHA-256 of its id.
pub fn webauthn_credential(key_handle: &str) -> Key {
    use sha2::{Digest, Sha256};
    Key::new(format!("WACRED#{}", hex::encode(Sha256::digest(key_handle.as_bytes()))), "CRED")
}

pub fn security_activity(user_id: &str, at_millis: i64, id: &str) -> Key {
    Key::new(format!("USERSEC#{user_id}"), format!("{at_millis:015}#{id}"))
}

pub fn org_pk(org_id: u64) -> String {
    format!("ORG#{org_id}")
}

pub fn org(org_id: u64) -> Key {
    Key::new(org_pk(org_id), "ORG")
}

pub fn org_by_slug(slug: &str) -> Key {
    Key::new(format!("ORGSLUG#{}", slug.to_ascii_lowercase()), "ORG")
}

pub fn member(member_id: u64) -> Key {
    Key::new(format!("MEMBER#{member_id}"), "MEMBER")
}

pub fn member_email(org_id: u64, email: &str) -> Key {
    Key::new(org_pk(org_id), format!("EMAIL#{}", email.to_lowercase()))
}

pub fn audit(org_id: u64, at_millis: i64, id: &str) -> Key {
    Key::new(org_pk(org_id), format!("AUDIT#{at_millis:015}#{id}"))
}

pub fn member_joined(org_id: u64, member_id: u64) -> Key {
    Key::new(org_pk(org_id), format!("JOINED#{member_id:020}"))
}
