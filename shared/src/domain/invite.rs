//! Accepting an organization invite: Sentry's `ApiInviteHelper` and `AcceptOrganizationInvite` rules.
//!
//! [`resolve_context`] reproduces `_get_invite`'s lookup order (the caller's own membership in the org
//! first, then the requested member id within the org). [`InviteHelper`] answers the same questions as
//! Sentry's helper. [`get_answer`] and [`post_decision`] are the two endpoint algorithms as pure
//! functions; the handler only performs what they decide.

use serde_json::{Value, json};

use super::identity::Claims;
use super::org::{Member, Organization, hash_token};
use super::user::{InterfaceType, UserState};
use crate::secret::constant_time_eq;

/// What the store returns for one accept-invite request (read in one round trip).
#[derive(Clone, Debug, Default)]
pub struct InviteLookup {
    pub org: Option<Organization>,
    /// The member with the requested id, if it belongs to `org`.
    pub invite: Option<Member>,
    /// The caller's partition (authenticators, memberships, identities), when authenticated.
    pub user: Option<UserState>,
}

/// `RpcUserInviteContext`.
#[derive(Clone, Debug, PartialEq)]
pub struct InviteContext {
    pub org: Organization,
    /// The member `_get_invite` picked: the caller's own membership when they have one, else the invite.
    pub member: Member,
    /// The member with the requested id (the invite row), when it exists in the org.
    pub invite: Option<Member>,
    pub invite_member_id: u64,
}

impl InviteContext {
    /// `invite_context.user_id`.
    pub fn user_id(&self) -> Option<&str> {
        self.member.user_id.as_deref()
    }
}

/// `_get_invite`: `None` when the org is unknown or the member is not in it (→ "Invalid invite code").
pub fn resolve_context(lookup: &InviteLookup, invite_member_id: u64) -> Option<InviteContext> {
    let org = lookup.org.clone()?;
    let invite = lookup.invite.clone().filter(|m| m.org_id == org.id && m.id == invite_member_id);
    let own = lookup.user.as_ref().and_then(|u| {
        u.memberships.get(&org.id).map(|m| Member {
            id: m.member_id,
            org_id: org.id,
            user_id: Some(u.user_id.clone()),
            email: None,
            role: m.role.clone(),
            invite_status: super::org::InviteStatus::Approved,
            token_hash: None,
            token_expires_at: None,
            inviter_id: None,
            teams: Vec::new(),
            has_global_access: false,
            date_added: 0,
        })
    });
    let member = own.or_else(|| invite.clone())?;
    Some(InviteContext { org, member, invite, invite_member_id })
}

/// `ApiInviteHelper`.
pub struct InviteHelper<'a> {
    pub ctx: &'a InviteContext,
    pub token: Option<&'a str>,
    pub caller: Option<&'a Claims>,
    pub user: Option<&'a UserState>,
    pub now_secs: i64,
    /// Which authenticator interfaces are available (for `has_2fa`).
    pub available: &'a (dyn Fn(InterfaceType) -> bool + Sync),
}

impl InviteHelper<'_> {
    pub fn member_pending(&self) -> bool {
        self.ctx.member.is_pending()
    }

    pub fn invite_approved(&self) -> bool {
        self.ctx.member.invite_approved()
    }

    /// Token present, not expired, and equal (constant time, over SHA-256 hashes) to the member's.
    pub fn valid_token(&self) -> bool {
        self.token_matches(&self.ctx.member)
    }

    fn token_matches(&self, m: &Member) -> bool {
        let Some(token) = self.token else { return false };
        if m.token_expired(self.now_secs) {
            return false;
        }
        m.token_hash.as_deref().is_some_and(|h| constant_time_eq(h.as_bytes(), hash_token(token).as_bytes()))
    }

    /// The request proves it holds the requested invite: that row is still pending and the token is its
    /// own (valid, not expired). Only then may "member already exists" delete it.
    pub fn holds_requested_invite(&self) -> bool {
        self.ctx.invite.as_ref().is_some_and(|i| i.is_pending() && self.token_matches(i))
    }

    pub fn user_authenticated(&self) -> bool {
        self.caller.is_some()
    }

    pub fn member_already_exists(&self) -> bool {
        self.user_authenticated() && self.ctx.user_id().is_some()
    }

    pub fn needs_2fa(&self) -> bool {
        self.ctx.org.require_2fa
            && !(self.user_authenticated() && self.user.is_some_and(|u| u.has_2fa(self.available)))
    }

    /// The org requires a verified e-mail and the caller has none (Sentry's feature flag is assumed on).
    pub fn needs_email_verification(&self) -> bool {
        self.ctx.org.require_email_verification && !self.caller.is_some_and(|c| c.email_verified)
    }

    pub fn onboarding_steps(&self) -> (bool, bool) {
        (self.needs_2fa(), self.needs_email_verification())
    }

    /// Newest Sentry: a provider that does not allow unlinked members requires an identity.
    pub fn sso_required_without_identity(&self) -> bool {
        self.ctx.org.auth_provider.as_ref().is_some_and(|p| !p.allow_unlinked)
            && !self.user.is_some_and(|u| u.has_identity_for(self.ctx.org.id))
    }

    pub fn valid_request(&self) -> bool {
        let (needs2fa, needs_email) = self.onboarding_steps();
        self.member_pending()
            && self.invite_approved()
            && self.valid_token()
            && self.user_authenticated()
            && !needs2fa
            && !needs_email
            && !self.sso_required_without_identity()
    }
}

/// Accept-invite GET: the 200 body and whether the invite goes into the cookie, or `None` for
/// "Invalid invite code".
pub fn get_answer(h: &InviteHelper<'_>) -> Option<(Value, bool)> {
    if !h.member_pending() || !h.valid_token() || !h.invite_approved() {
        return None;
    }
    let provider = h.ctx.org.auth_provider.as_ref();
    let mut body = json!({
        "orgSlug": h.ctx.org.slug,
        "needsAuthentication": !h.user_authenticated(),
        "needsSso": provider.is_some(),
        "hasAuthProvider": provider.is_some(),
        "requireSso": provider.is_some_and(|p| !p.allow_unlinked),
        "existingMember": h.member_already_exists(),
    });
    let mut remember = !h.user_authenticated() || provider.is_some();
    if let Some(p) = provider {
        body["ssoProvider"] = json!(p.name);
    }
    let (needs2fa, needs_email) = h.onboarding_steps();
    body["needs2fa"] = json!(needs2fa);
    body["needsEmailVerification"] = json!(needs_email);
    remember |= needs2fa || needs_email;
    Some((body, remember))
}

/// What accept-invite POST (and the pending invite after enrollment) must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PostDecision {
    /// 400 "unable to accept organization invite", nothing written.
    Unable,
    /// 400 "member already exists"; `drop_invite`: delete the requested invite row, still pending —
    /// only when the request holds its token (Sentry deletes it for any member who names its id).
    AlreadyMember { drop_invite: bool },
    /// Accept: bind the caller to the invite.
    Accept,
}

pub fn post_decision(h: &InviteHelper<'_>) -> PostDecision {
    if !h.user_authenticated() {
        PostDecision::Unable
    } else if h.member_already_exists() {
        PostDecision::AlreadyMember { drop_invite: h.holds_requested_invite() }
    } else if !h.valid_request() {
        PostDecision::Unable
    } else {
        PostDecision::Accept
    }
}

/// Everything the store needs to accept an invite in one transaction.
#[derive(Clone, Debug)]
pub struct Acceptance {
    /// The invite as read (pending); the transaction re-checks every rule that made it acceptable.
    pub invite: Member,
    pub user_id: String,
    pub user_email: Option<String>,
    pub now_millis: i64,
    pub ip_address: Option<String>,
    /// Unique id of the audit entry (so a retried transaction cannot write two).
    pub audit_id: String,
}

impl Acceptance {
    pub fn now_secs(&self) -> i64 {
        self.now_millis.div_euclid(1000)
    }

    /// The member after acceptance: `set_user` (user bound; e-mail, token and expiry cleared).
    pub fn accepted_member(&self) -> Member {
        Member {
            user_id: Some(self.user_id.clone()),
            email: None,
            token_hash: None,
            token_expires_at: None,
            ..self.invite.clone()
        }
    }
}

/// Result of the accept transaction.
#[derive(Clone, Debug, PartialEq)]
pub enum AcceptOutcome {
    Accepted(Member),
    /// The caller already holds a membership in the org (possibly won by a concurrent request).
    AlreadyMember,
    /// The invite is no longer acceptable (accepted by someone else, deleted, token changed, expired).
    NoLongerValid,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::org::{AuthProvider, InviteStatus};
    use crate::domain::user::{Authenticator, Membership};

    const NOW: i64 = 1_700_000_000;

    fn org() -> Organization {
        Organization {
            id: 1,
            slug: "acme".into(),
            name: "Acme".into(),
            require_2fa: false,
            require_email_verification: false,
            auth_provider: None,
        }
    }

    fn invite() -> Member {
        Member {
            id: 10,
            org_id: 1,
            user_id: None,
            email: Some("new@example.com".into()),
            role: "member".into(),
            invite_status: InviteStatus::Approved,
            token_hash: Some(hash_token("abc")),
            token_expires_at: Some(NOW + 30 * 86_400),
            inviter_id: None,
            teams: vec![],
            has_global_access: false,
            date_added: NOW,
        }
    }

    fn claims(verified: bool) -> Claims {
        Claims {
            sub: "42".into(),
            email: Some("bar@example.com".into()),
            email_verified: verified,
            auth_time: Some(NOW),
            superuser: false,
        }
    }

    fn lookup(org: Organization, inv: Option<Member>, user: Option<UserState>) -> InviteLookup {
        InviteLookup { org: Some(org), invite: inv, user }
    }

    fn with<R>(
        l: &InviteLookup,
        token: Option<&str>,
        caller: Option<&Claims>,
        f: impl FnOnce(&InviteHelper<'_>) -> R,
    ) -> Option<R> {
        let ctx = resolve_context(l, 10)?;
        let all = |_: InterfaceType| true;
        let h =
            InviteHelper { ctx: &ctx, token, caller, user: l.user.as_ref(), now_secs: NOW, available: &all };
        Some(f(&h))
    }

    fn user_with(kind: Option<InterfaceType>) -> UserState {
        let mut u = UserState::empty("42");
        if let Some(kind) = kind {
            u.authenticators.push(Authenticator {
                id: "9".into(),
                kind,
                config: json!({}),
                created_at: 0,
                last_used_at: None,
                version: 1,
            });
        }
        u
    }

    #[test]
    fn unknown_org_or_member_of_another_org_is_invalid() {
        assert!(resolve_context(&InviteLookup::default(), 10).is_none());
        let mut other = invite();
        other.org_id = 2;
        assert!(resolve_context(&lookup(org(), Some(other), None), 10).is_none());
        assert!(resolve_context(&lookup(org(), None, None), 10).is_none());
    }

    /// Matrix C rows: invalid token, expired, not pending, not approved → no answer (400).
    #[test]
    fn get_invalid_cases() {
        let l = lookup(org(), Some(invite()), None);
        assert!(with(&l, Some("2"), None, get_answer).unwrap().is_none(), "wrong token");
        assert!(with(&l, None, None, get_answer).unwrap().is_none(), "no token");
        let mut expired = invite();
        expired.token_expires_at = Some(NOW);
        assert!(with(&lookup(org(), Some(expired), None), Some("abc"), None, get_answer).unwrap().is_none());
        let mut accepted = invite();
        accepted.user_id = Some("7".into());
        assert!(with(&lookup(org(), Some(accepted), None), Some("abc"), None, get_answer).unwrap().is_none());
        for status in [InviteStatus::RequestedToJoin, InviteStatus::RequestedToBeInvited] {
            let mut m = invite();
            m.invite_status = status;
            assert!(with(&lookup(org(), Some(m), None), Some("abc"), None, get_answer).unwrap().is_none());
        }
    }

    #[test]
    fn get_anonymous_needs_authentication_and_remembers() {
        let l = lookup(org(), Some(invite()), None);
        let (body, remember) = with(&l, Some("abc"), None, get_answer).unwrap().unwrap();
        assert_eq!(
            body,
            json!({"orgSlug": "acme", "needsAuthentication": true, "needsSso": false, "hasAuthProvider": false,
                   "requireSso": false, "existingMember": false, "needs2fa": false, "needsEmailVerification": false})
        );
        assert!(remember);
    }

    #[test]
    fn get_authenticated_plain_does_not_remember() {
        let c = claims(true);
        let l = lookup(org(), Some(invite()), Some(user_with(None)));
        let (body, remember) = with(&l, Some("abc"), Some(&c), get_answer).unwrap().unwrap();
        assert_eq!(body["needsAuthentication"], false);
        assert_eq!(body["needs2fa"], false);
        assert!(!remember);
    }

    #[test]
    fn get_2fa_org() {
        let mut o = org();
        o.require_2fa = true;
        let c = claims(true);
        let l = lookup(o.clone(), Some(invite()), Some(user_with(None)));
        let (body, remember) = with(&l, Some("abc"), Some(&c), get_answer).unwrap().unwrap();
        assert_eq!(body["needs2fa"], true);
        assert!(remember);
        // Recovery codes alone do not satisfy the requirement; TOTP does (TA test_user_has_2fa).
        let l = lookup(o.clone(), Some(invite()), Some(user_with(Some(InterfaceType::Recovery))));
        assert_eq!(with(&l, Some("abc"), Some(&c), get_answer).unwrap().unwrap().0["needs2fa"], true);
        let l = lookup(o, Some(invite()), Some(user_with(Some(InterfaceType::Totp))));
        let (body, remember) = with(&l, Some("abc"), Some(&c), get_answer).unwrap().unwrap();
        assert_eq!(body["needs2fa"], false);
        assert!(!remember);
    }

    #[test]
    fn get_sso_provider() {
        let mut o = org();
        o.auth_provider = Some(AuthProvider {
            id: 3,
            provider: "google".into(),
            name: "Google".into(),
            allow_unlinked: false,
        });
        let c = claims(true);
        let l = lookup(o, Some(invite()), Some(user_with(None)));
        let (body, remember) = with(&l, Some("abc"), Some(&c), get_answer).unwrap().unwrap();
        assert_eq!(body["needsSso"], true);
        assert_eq!(body["hasAuthProvider"], true);
        assert_eq!(body["requireSso"], true);
        assert_eq!(body["ssoProvider"], "Google");
        assert!(remember);
    }

    #[test]
    fn email_verification_step() {
        let mut o = org();
        o.require_email_verification = true;
        let l = lookup(o, Some(invite()), Some(user_with(None)));
        let c = claims(false);
        assert_eq!(
            with(&l, Some("abc"), Some(&c), get_answer).unwrap().unwrap().0["needsEmailVerification"],
            true
        );
        assert_eq!(with(&l, Some("abc"), Some(&c), post_decision).unwrap(), PostDecision::Unable);
        let c = claims(true);
        assert_eq!(with(&l, Some("abc"), Some(&c), post_decision).unwrap(), PostDecision::Accept);
    }

    /// An authenticated user who already belongs to the org sees their own membership: not pending,
    /// so GET is 400 and POST is "member already exists".
    #[test]
    fn existing_member() {
        let mut u = user_with(None);
        u.memberships.insert(1, Membership { org_id: 1, member_id: 3, role: "owner".into() });
        let c = claims(true);
        let l = lookup(org(), Some(invite()), Some(u));
        assert!(with(&l, Some("abc"), Some(&c), get_answer).unwrap().is_none());
        assert_eq!(
            with(&l, Some("abc"), Some(&c), post_decision).unwrap(),
            PostDecision::AlreadyMember { drop_invite: true },
            "the request holds the invite's token"
        );
        // Hardening: a member who names another invite of the org without its token cannot delete it.
        for token in [None, Some("wrong-token")] {
            assert_eq!(
                with(&l, token, Some(&c), post_decision).unwrap(),
                PostDecision::AlreadyMember { drop_invite: false },
                "{token:?}"
            );
        }
        let ctx = resolve_context(&l, 10).unwrap();
        assert_eq!(ctx.member.id, 3);
        assert_eq!(ctx.invite.as_ref().map(|m| m.id), Some(10));
    }

    /// Matrix D and TI rows 5–9: SSO required without identity → not valid; with identity or optional SSO → valid.
    #[test]
    fn post_rules() {
        let c = claims(true);
        let l = lookup(org(), Some(invite()), Some(user_with(None)));
        assert_eq!(with(&l, Some("abc"), None, post_decision).unwrap(), PostDecision::Unable, "anonymous");
        assert_eq!(with(&l, Some("abc"), Some(&c), post_decision).unwrap(), PostDecision::Accept);
        assert_eq!(
            with(&l, Some("abd"), Some(&c), post_decision).unwrap(),
            PostDecision::Unable,
            "bad token"
        );

        let mut o = org();
        o.auth_provider = Some(AuthProvider {
            id: 3,
            provider: "idp".into(),
            name: "Friendly IdP".into(),
            allow_unlinked: false,
        });
        let l = lookup(o.clone(), Some(invite()), Some(user_with(None)));
        let checks = with(&l, Some("abc"), Some(&c), |h| {
            (
                h.member_pending(),
                h.invite_approved(),
                h.valid_token(),
                h.user_authenticated(),
                h.valid_request(),
            )
        })
        .unwrap();
        assert_eq!(checks, (true, true, true, true, false));
        let mut u = user_with(None);
        u.identities.insert(1);
        let l = lookup(o.clone(), Some(invite()), Some(u));
        assert!(with(&l, Some("abc"), Some(&c), |h| h.valid_request()).unwrap());
        o.auth_provider.as_mut().unwrap().allow_unlinked = true;
        let l = lookup(o, Some(invite()), Some(user_with(None)));
        assert!(with(&l, Some("abc"), Some(&c), |h| h.valid_request()).unwrap());
    }

    #[test]
    fn accepted_member_clears_invite_fields() {
        let a = Acceptance {
            invite: invite(),
            user_id: "42".into(),
            user_email: None,
            now_millis: NOW * 1000,
            ip_address: None,
            audit_id: "x".into(),
        };
        let m = a.accepted_member();
        assert_eq!(m.user_id.as_deref(), Some("42"));
        assert!(m.email.is_none() && m.token_hash.is_none() && m.token_expires_at.is_none());
        assert_eq!(m.audit_data()["user"], "42");
        assert_eq!(m.audit_data()["email"], Value::Null);
    }
}
