//! Organizations, auth providers, members and invites (Sentry's `Organization`, `AuthProvider`,
//! `OrganizationMember`).

use sha2::{Digest, Sha256};

/// Invites are valid for 30 days from creation or approval (`INVITE_DAYS_VALID`).
pub const INVITE_DAYS_VALID: i64 = 30;

/// How the accept-invite path names the organization: all digits = id, otherwise slug (Sentry's
/// `organization_id_or_slug.isdecimal()`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrgRef {
    Id(u64),
    Slug(String),
}

impl OrgRef {
    /// `None` for values that can name no organization (empty, too long, bad characters, id overflow).
    pub fn parse(s: &str) -> Option<Self> {
        if s.is_empty() || s.len() > 64 {
            return None;
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            return s.parse().ok().map(OrgRef::Id);
        }
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            .then(|| OrgRef::Slug(s.to_ascii_lowercase()))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuthProvider {
    pub id: u64,
    /// Provider key, e.g. `google`.
    pub provider: String,
    /// Display name, e.g. `Google` (`ssoProvider` in the accept GET answer).
    pub name: String,
    /// `flags.allow_unlinked`: members may join without an identity for this provider.
    #[serde(default)]
    pub allow_unlinked: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Organization {
    pub id: u64,
    pub slug: String,
    pub name: String,
    #[serde(default)]
    pub require_2fa: bool,
    #[serde(default)]
    pub require_email_verification: bool,
    #[serde(default)]
    pub auth_provider: Option<AuthProvider>,
}

/// `invite_status`: 0 approved, 1 requested to be invited, 2 requested to join.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InviteStatus {
    #[default]
    Approved,
    RequestedToBeInvited,
    RequestedToJoin,
}

impl InviteStatus {
    pub fn code(self) -> i64 {
        match self {
            Self::Approved => 0,
            Self::RequestedToBeInvited => 1,
            Self::RequestedToJoin => 2,
        }
    }

    pub fn from_code(c: i64) -> Option<Self> {
        Some(match c {
            0 => Self::Approved,
            1 => Self::RequestedToBeInvited,
            2 => Self::RequestedToJoin,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::RequestedToBeInvited => "requested_to_be_invited",
            Self::RequestedToJoin => "requested_to_join",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Team {
    pub id: u64,
    pub slug: String,
}

/// An organization member: an accepted membership (`user_id` set) or a pending invite (`email` set).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: u64,
    pub org_id: u64,
    pub user_id: Option<String>,
    pub email: Option<String>,
    pub role: String,
    pub invite_status: InviteStatus,
    /// SHA-256 (hex) of the invite token; the token itself is never stored.
    pub token_hash: Option<String>,
    /// Epoch seconds; `None` = a legacy token that never expires.
    pub token_expires_at: Option<i64>,
    pub inviter_id: Option<String>,
    pub teams: Vec<Team>,
    pub has_global_access: bool,
    pub date_added: i64,
}

impl Member {
    /// `is_pending`: no user bound yet.
    pub fn is_pending(&self) -> bool {
        self.user_id.is_none()
    }

    pub fn invite_approved(&self) -> bool {
        self.invite_status == InviteStatus::Approved
    }

    /// `token_expired`: false without an expiry (legacy) or while `expires_at > now`.
    pub fn token_expired(&self, now_secs: i64) -> bool {
        self.token_expires_at.is_some_and(|t| t <= now_secs)
    }

    /// `get_audit_log_metadata()` of the member as it is.
    pub fn audit_data(&self) -> serde_json::Value {
        serde_json::json!({
            "email": self.email,
            "teams": self.teams.iter().map(|t| t.id).collect::<Vec<_>>(),
            "teams_slugs": self.teams.iter().map(|t| t.slug.clone()).collect::<Vec<_>>(),
            "has_global_access": self.has_global_access,
            "role": self.role,
            "invite_status": self.invite_status.name(),
            "user": self.user_id,
        })
    }
}

/// SHA-256 hex of an invite token: what the store keeps and compares.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new invite token: 64 lowercase hex characters (Sentry's `uuid4().hex + uuid4().hex`), 256 random bits.
pub fn generate_token(rng: &dyn crate::ports::Random) -> String {
    let mut b = [0u8; 32];
    rng.fill(&mut b);
    hex::encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_ref_parsing() {
        assert_eq!(OrgRef::parse("42"), Some(OrgRef::Id(42)));
        assert_eq!(OrgRef::parse("Acme-Co"), Some(OrgRef::Slug("acme-co".into())));
        assert_eq!(OrgRef::parse(""), None);
        assert_eq!(OrgRef::parse("a/b"), None);
        assert_eq!(OrgRef::parse("99999999999999999999999"), None);
        assert_eq!(OrgRef::parse(&"a".repeat(65)), None);
    }

    #[test]
    fn token_hash_and_generation() {
        assert_eq!(hash_token("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let t = generate_token(&crate::ports::OsRandom);
        assert_eq!(t.len(), 64);
        assert!(t.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }

    #[test]
    fn invite_status_codes_round_trip() {
        for s in [InviteStatus::Approved, InviteStatus::RequestedToBeInvited, InviteStatus::RequestedToJoin] {
            assert_eq!(InviteStatus::from_code(s.code()), Some(s));
        }
        assert_eq!(InviteStatus::from_code(7), None);
        assert_eq!(InviteStatus::RequestedToJoin.name(), "requested_to_join");
    }

    #[test]
    fn expiry_rules() {
        let mut m = Member {
            id: 1,
            org_id: 1,
            user_id: None,
            email: Some("a@b.c".into()),
            role: "member".into(),
            invite_status: InviteStatus::Approved,
            token_hash: None,
            token_expires_at: None,
            inviter_id: None,
            teams: vec![],
            has_global_access: false,
            date_added: 0,
        };
        assert!(!m.token_expired(i64::MAX), "legacy tokens never expire");
        m.token_expires_at = Some(100);
        assert!(!m.token_expired(99));
        assert!(m.token_expired(100));
        assert!(m.is_pending());
        assert_eq!(m.audit_data()["invite_status"], "approved");
    }
}
