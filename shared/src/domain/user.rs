//! What Postflow knows about one user: everything stored in the user's partition, read with one query
//! (profile, authenticators, memberships, SSO identities, pending enrollment state, used OTP counters).

use std::collections::{BTreeMap, BTreeSet};

/// Authenticator interface types, as Sentry numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum InterfaceType {
    Recovery = 0,
    Totp = 1,
    Sms = 2,
    U2f = 3,
}

impl InterfaceType {
    /// Every interface and its id: the one table of ids (a type's code is Sentry's number, the
    /// discriminant above).
    pub const ALL: [(Self, &'static str); 4] =
        [(Self::Recovery, "recovery"), (Self::Totp, "totp"), (Self::Sms, "sms"), (Self::U2f, "u2f")];

    pub fn code(self) -> i64 {
        self as i64
    }

    pub fn from_code(c: i64) -> Option<Self> {
        Self::ALL.iter().map(|(k, _)| *k).find(|k| k.code() == c)
    }

    pub fn id(self) -> &'static str {
        Self::ALL.iter().find(|(k, _)| *k == self).map_or("", |(_, id)| id)
    }

    pub fn from_id(id: &str) -> Option<Self> {
        Self::ALL.iter().find(|(_, i)| *i == id).map(|(k, _)| *k)
    }

    /// Backup interfaces (recovery codes) do not count as 2FA.
    pub fn is_backup(self) -> bool {
        self == Self::Recovery
    }
}

/// One enrolled authenticator (unique per user and type). `config` holds the interface's secret
/// material (TOTP/SMS secret, recovery salt and used-bitmask, WebAuthn devices).
#[derive(Clone, Debug, PartialEq)]
pub struct Authenticator {
    pub id: String,
    pub kind: InterfaceType,
    pub config: serde_json::Value,
    /// Epoch milliseconds.
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    /// Optimistic-concurrency version, bumped by every write (rotation in place is conditional on it).
    pub version: i64,
}

/// The caller's membership in one organization (from the `(org, user)` uniqueness item).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    pub org_id: u64,
    pub member_id: u64,
    pub role: String,
}

/// A pending enrollment secret issued by GET (TOTP, SMS), consumed by POST.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingSecret {
    pub interface: InterfaceType,
    pub secret: crate::secret::Secret,
    pub expires_at: i64,
    /// SMS: the number (E.164) the code was texted to; the enrollment must name the same number.
    pub phone: Option<String>,
    /// SMS: the server-only key the texted codes derive from (never sent to the client).
    pub code_key: Option<crate::secret::Secret>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct UserState {
    pub user_id: String,
    /// Whether a profile item exists (users are created just in time from JWT claims).
    pub exists: bool,
    pub email: Option<String>,
    pub authenticators: Vec<Authenticator>,
    pub memberships: BTreeMap<u64, Membership>,
    /// Organizations for whose auth provider the user has an identity.
    pub identities: BTreeSet<u64>,
    pub pending: Vec<PendingSecret>,
    /// OTP counters already used (interface id, counter) with their expiry (epoch seconds).
    pub used_otp: BTreeMap<(String, i64), i64>,
    /// A pending WebAuthn registration state (the stored JSON text) with its expiry.
    pub webauthn_state: Option<(String, i64)>,
}

impl UserState {
    pub fn empty(user_id: &str) -> Self {
        Self { user_id: user_id.to_owned(), ..Default::default() }
    }

    pub fn authenticator(&self, kind: InterfaceType) -> Option<&Authenticator> {
        self.authenticators.iter().find(|a| a.kind == kind)
    }

    /// `User.has_2fa()`: an authenticator of a non-backup type among the `available` ones.
    pub fn has_2fa(&self, available: impl Fn(InterfaceType) -> bool) -> bool {
        self.authenticators.iter().any(|a| !a.kind.is_backup() && available(a.kind))
    }

    pub fn has_identity_for(&self, org_id: u64) -> bool {
        self.identities.contains(&org_id)
    }

    pub fn otp_used(&self, interface: &str, counter: i64, now_secs: i64) -> bool {
        self.used_otp.get(&(interface.to_owned(), counter)).is_some_and(|exp| *exp > now_secs)
    }

    pub fn pending_secret(&self, interface: InterfaceType, now_secs: i64) -> Option<&PendingSecret> {
        self.pending.iter().find(|p| p.interface == interface && p.expires_at > now_secs)
    }

    /// The WebAuthn registration state issued by GET, unless expired.
    pub fn pending_webauthn(&self, now_secs: i64) -> Option<&str> {
        self.webauthn_state.as_ref().filter(|(_, exp)| *exp > now_secs).map(|(s, _)| s.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(kind: InterfaceType) -> Authenticator {
        Authenticator {
            id: "1".into(),
            kind,
            config: serde_json::json!({}),
            created_at: 0,
            last_used_at: None,
            version: 1,
        }
    }

    /// Sentry's `test_user_has_2fa`: recovery codes alone are not 2FA; TOTP is.
    #[test]
    fn recovery_codes_alone_are_not_2fa() {
        let mut u = UserState::empty("1");
        assert!(!u.has_2fa(|_| true));
        u.authenticators.push(auth(InterfaceType::Recovery));
        assert!(!u.has_2fa(|_| true));
        assert_eq!(u.authenticators.len(), 1);
        u.authenticators.push(auth(InterfaceType::Totp));
        assert!(u.has_2fa(|_| true));
        assert_eq!(u.authenticators.len(), 2);
        // An enrolled interface that is no longer available does not count.
        assert!(!u.has_2fa(|t| t != InterfaceType::Totp));
    }

    #[test]
    fn interface_ids_and_codes() {
        // Every variant is in the table (a new one without a row would fail here).
        let every = |t: InterfaceType| match t {
            InterfaceType::Recovery | InterfaceType::Totp | InterfaceType::Sms | InterfaceType::U2f => t,
        };
        assert_eq!(InterfaceType::ALL.len(), 4);
        assert_eq!(InterfaceType::Totp.code(), 1, "Sentry's numbers");
        for t in InterfaceType::ALL.map(|(t, _)| every(t)) {
            assert!(!t.id().is_empty());
            assert_eq!(InterfaceType::from_code(t.code()), Some(t));
            assert_eq!(InterfaceType::from_id(t.id()), Some(t));
        }
        assert_eq!(InterfaceType::from_id("TOTP"), None);
        assert!(InterfaceType::Recovery.is_backup());
    }
}
