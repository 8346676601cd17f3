//! Enrollment rules shared by every authenticator interface: DRF's field validation and messages (each
//! interface's body is validated with these in its own module of the enroll function), the
//! authenticator records an enrollment creates, recovery codes (`auto_add_recovery_codes`), and the
//! `mfa-added` security activity.

use serde_json::{Map, Value, json};

use super::invite::Acceptance;
use super::org::Member;
use super::otp::RecoveryCodes;
use super::user::{Authenticator, InterfaceType, UserState};
use crate::ports::Random;
use crate::secret::Secret;

/// Sentry's 429 sentence (a plain-text body).
pub const RATE_LIMITED: &str =
    "You have made too many authenticator enrollment attempts. Please try again later.";
pub const ALREADY_ENROLLED: &str = "Already enrolled";
pub const DISALLOWED_NEW_ENROLLMENT: &str = "New enrollments for this 2FA interface are not allowed";
pub const INVALID_SECRET: &str = "Invalid secret";
/// Pending enrollment secrets (and WebAuthn states) live 15 minutes.
pub const PENDING_TTL_SECS: i64 = 15 * 60;

/// DRF `CharField(max_length=20, required=True, allow_null=False, allow_blank=False, trim_whitespace=False)`.
pub fn char_field(
    body: &Map<String, Value>,
    name: &str,
    required: bool,
    max_length: usize,
) -> Result<Option<String>, (String, String)> {
    let err = |m: &str| Err((name.to_owned(), m.to_owned()));
    match body.get(name) {
        None if required => err("This field is required."),
        None => Ok(None),
        Some(Value::Null) => err("This field may not be null."),
        Some(v) => {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => if *b { "True" } else { "False" }.to_owned(),
                _ => return err("Not a valid string."),
            };
            if s.is_empty() {
                return err("This field may not be blank.");
            }
            if s.chars().count() > max_length {
                return Err((
                    name.to_owned(),
                    format!("Ensure this field has no more than {max_length} characters."),
                ));
            }
            Ok(Some(s))
        }
    }
}

/// An enrollment body that failed validation: DRF's field errors (every field is validated and every
/// error reported), answered 400 with the map as the body (`error.rs` maps it to HTTP).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldErrors(pub std::collections::BTreeMap<String, Vec<String>>);

impl FieldErrors {
    /// One field's one error.
    pub fn one(field: &str, message: &str) -> Self {
        Self(std::collections::BTreeMap::from([(field.to_owned(), vec![message.to_owned()])]))
    }
}

/// Collects DRF field errors (all fields are validated; every error is reported).
#[derive(Default)]
pub struct Fields {
    errors: std::collections::BTreeMap<String, Vec<String>>,
}

impl Fields {
    /// The field's value, or `None` with its error recorded.
    pub fn take<T>(&mut self, r: Result<T, (String, String)>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err((f, m)) => {
                self.errors.entry(f).or_default().push(m);
                None
            }
        }
    }

    /// The value when no field failed, else every error.
    pub fn finish<T>(self, value: Option<T>) -> Result<T, FieldErrors> {
        match value {
            Some(v) if self.errors.is_empty() => Ok(v),
            _ => Err(FieldErrors(self.errors)),
        }
    }
}

/// DRF `CharField(required=False, allow_null=True, allow_blank=True, max_length)`: `None` when the key
/// is absent, `Some(None)` for null, `Some(Some(s))` otherwise (possibly empty).
pub fn nullable_char_field(
    body: &Map<String, Value>,
    name: &str,
    max_length: usize,
) -> Result<Option<Option<String>>, (String, String)> {
    match body.get(name) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) if s.is_empty() => Ok(Some(Some(String::new()))),
        Some(_) => char_field(body, name, false, max_length).map(Some),
    }
}

/// A random authenticator id: a positive 53-bit integer as a decimal string (Sentry's ids are bigints
/// that JavaScript clients can hold).
pub fn new_authenticator_id(rng: &dyn Random) -> String {
    let mut b = [0u8; 8];
    rng.fill(&mut b);
    let n = u64::from_be_bytes(b) & ((1 << 53) - 1);
    n.max(1).to_string()
}

pub fn new_authenticator(
    kind: InterfaceType,
    config: Value,
    now_millis: i64,
    rng: &dyn Random,
) -> Authenticator {
    Authenticator {
        id: new_authenticator_id(rng),
        kind,
        config,
        created_at: now_millis,
        last_used_at: None,
        version: 1,
    }
}

/// `auto_add_recovery_codes` after an enrollment: recovery codes are added unless the user already has
/// a backup interface. `user` is the state before this enrollment.
pub fn recovery_codes_needed(user: &UserState, available: impl Fn(InterfaceType) -> bool) -> bool {
    !user.authenticators.iter().any(|a| available(a.kind) && a.kind.is_backup())
}

/// A fresh recovery-code authenticator (`{"salt": <32 hex>, "used": 0}`).
pub fn new_recovery_codes(now_millis: i64, rng: &dyn Random) -> Authenticator {
    let salt = RecoveryCodes::new_salt(rng);
    new_authenticator(InterfaceType::Recovery, json!({"salt": salt.expose(), "used": 0}), now_millis, rng)
}

/// The `mfa-added` security activity (what Sentry e-mails about).
#[derive(Clone, Debug, PartialEq)]
pub struct SecurityActivity {
    pub id: String,
    pub user_id: String,
    pub kind: &'static str,
    pub at_millis: i64,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub authenticator_id: String,
    pub interface: InterfaceType,
    /// u2f: the name of the added device (Sentry's `context["device_name"]`).
    pub device_name: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_only_without_a_backup_interface() {
        let rng = crate::ports::OsRandom;
        let mut u = UserState::empty("1");
        assert!(recovery_codes_needed(&u, |_| true));
        u.authenticators.push(new_authenticator(InterfaceType::Totp, json!({}), 0, &rng));
        assert!(recovery_codes_needed(&u, |_| true));
        u.authenticators.push(new_recovery_codes(0, &rng));
        assert!(!recovery_codes_needed(&u, |_| true));
        let rc = u.authenticator(InterfaceType::Recovery).unwrap();
        assert_eq!(rc.config["salt"].as_str().unwrap().len(), 32);
        assert_eq!(rc.config["used"], 0);
    }

    #[test]
    fn authenticator_ids_are_positive_53_bit() {
        for _ in 0..100 {
            let id: u64 = new_authenticator_id(&crate::ports::OsRandom).parse().unwrap();
            assert!((1..(1 << 53)).contains(&id));
        }
    }
}

// --- The enrollment command and its outcome (what `ports::EnrollmentStore` takes and returns) ---

#[derive(Clone, Debug)]
pub enum Mode {
    New,
    /// Rotation in place of the authenticator read at `version`.
    Rotate {
        version: i64,
    },
    /// A multi-enrollment interface (u2f): the config read at `version` gains a device; `created_at`
    /// and `last_used_at` stay.
    Append {
        version: i64,
    },
}

/// What GET issued that this enrollment consumes.
#[derive(Clone, Debug)]
pub enum Consume {
    /// The TOTP/SMS secret; for SMS the number (E.164) the code was texted to.
    Secret { interface: InterfaceType, secret: Secret, phone: Option<String> },
    /// The WebAuthn registration state (its stored text).
    WebAuthnState(String),
}

/// What to do with a pending invite (the `postflow-invite` cookie) in the same transaction.
#[derive(Clone, Debug)]
pub enum InviteAction {
    None,
    Accept(Acceptance),
    /// The user is already a member: delete the still-pending invite row.
    DropPending(Member),
}

#[derive(Clone, Debug)]
pub struct Enrollment {
    pub user_id: String,
    pub email: Option<String>,
    pub authenticator: Authenticator,
    pub mode: Mode,
    /// What GET issued, consumed by this enrollment.
    pub consume: Option<Consume>,
    /// u2f: the new credential's id (base64url), claimed once across all users.
    pub credential: Option<String>,
    /// `(interface id, counter, expires_at)` of the accepted OTP.
    pub otp_counter: Option<(String, i64, i64)>,
    pub recovery: Option<Authenticator>,
    pub activity: SecurityActivity,
    pub invite: InviteAction,
    pub now_secs: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum InviteResult {
    None,
    Accepted(Member),
    Dropped,
    /// The invite could not be completed (it changed concurrently); left as it is.
    NotCompleted,
}

#[derive(Clone, Debug, PartialEq)]
pub enum EnrollOutcome {
    Enrolled {
        recovery_added: bool,
        invite: InviteResult,
    },
    /// An authenticator of this type exists (a concurrent enrollment won) or the rotated one changed.
    AlreadyEnrolled,
    /// The pending secret (or WebAuthn state) was consumed or expired in the meantime.
    SecretGone,
    /// The WebAuthn credential is already registered (to this or another account).
    CredentialTaken,
    /// The OTP counter was used in the meantime.
    OtpReplayed,
}
