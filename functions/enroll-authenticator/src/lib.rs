//! # enroll-authenticator
//!
//! `GET` and `POST /api/0/users/{user_id}/authenticators/{interface_id}/enroll/`: Sentry's
//! `UserAuthenticatorEnrollEndpoint` for the `totp`, `sms` and `u2f` interfaces.
//!
//! GET describes the interface and issues what POST needs, bound to the caller server-side for 15
//! minutes: a TOTP/SMS secret (DECISIONS 2) or a WebAuthn registration ceremony. POST verifies (a TOTP
//! code, a texted code, a WebAuthn attestation; each code accepted once, DECISIONS 3), enrolls, rotates
//! in place (TOTP) or adds a device (u2f), adds recovery codes, records the `mfa-added` activity, and
//! completes a pending invite from the signed `postflow-invite` cookie — all in one transaction.
//! SMS POST without `otp` texts the code instead (per-number limit 3 per 5 minutes) and answers 204.
//!
//! Checks run in Sentry's order: authentication (401), user lookup (404), permission (403), sudo (401),
//! verified primary e-mail for POST (401), rate limit (429), interface (404), field validation (400),
//! disallowed new enrollment (403), already enrolled (400), invalid OTP (400).
//! Sequential DynamoDB round trips of POST: 2 (one concurrent read round — rate-limit counter, the
//! caller's partition, the pending invite — then one transaction), with or without a pending invite.

mod interfaces;

use std::sync::Arc;

use serde_json::json;
use shared::backends::Backends;
use shared::config::Config;
use shared::domain::cookie::{COOKIE_NAME, InviteCookie};
use shared::domain::enroll::{
    ALREADY_ENROLLED, DISALLOWED_NEW_ENROLLMENT, PENDING_TTL_SECS, RATE_LIMITED, SecurityActivity,
    new_authenticator, new_recovery_codes, recovery_codes_needed,
};
use shared::domain::enroll::{EnrollOutcome, Enrollment, InviteAction, InviteResult, Mode};
use shared::domain::invite::{
    Acceptance, InviteHelper, InviteLookup, PostDecision, post_decision, resolve_context,
};
use shared::domain::org::OrgRef;
use shared::domain::otp::generate_secret;
use shared::domain::user::{Authenticator, InterfaceType, UserState};
use shared::domain::webauthn::{self, Registrar};
use shared::error::ApiError;
use shared::http::{ApiHandler, ApiRequest, Claims, Reply};
use shared::ports::{Clock, EnrollmentStore, InviteStore, Random, RateLimiter, SmsSender, random_hex_id};
use shared::secret::Secret;
use shared::storage::enroll::TableEnrollmentStore;
use shared::storage::orgs::TableInviteStore;

use interfaces::{Posted, Shown, Step, interface};

pub struct EnrollAuthenticator {
    pub enrollment: Arc<dyn EnrollmentStore>,
    pub invites: Arc<dyn InviteStore>,
    pub limiter: Arc<dyn RateLimiter>,
    /// Enrollment texts (SMS interface).
    pub sms: Arc<dyn SmsSender>,
    /// The WebAuthn relying party (u2f interface); `None` when `WEBAUTHN_ORIGIN` is not configured.
    pub webauthn: Option<Arc<Registrar>>,
    pub clock: Arc<dyn Clock>,
    pub random: Arc<dyn Random>,
    pub config: Arc<Config>,
}

/// Whose authenticators the path names.
enum Target {
    Caller,
    /// Another, existing user (only superusers get past the permission check).
    Other(Box<UserState>),
}

impl EnrollAuthenticator {
    /// The composition root: the enrollment and invite stores over the table, the limiter, the
    /// clock and random source, `sms` for texts, and the WebAuthn relying party when the configuration
    /// names one (an invalid one is an error here, at cold start).
    pub fn build(config: Arc<Config>, backends: &Backends, sms: Arc<dyn SmsSender>) -> Result<Self, String> {
        let webauthn = match &config.webauthn {
            Some(rp) => Some(Arc::new(Registrar::new(rp)?)),
            None => None,
        };
        Ok(Self::with_relying_party(config, backends, sms, webauthn))
    }

    /// [`EnrollAuthenticator::build`] with the WebAuthn relying party already built (or `None`: u2f
    /// unavailable).
    pub fn with_relying_party(
        config: Arc<Config>,
        backends: &Backends,
        sms: Arc<dyn SmsSender>,
        webauthn: Option<Arc<Registrar>>,
    ) -> Self {
        Self {
            enrollment: Arc::new(TableEnrollmentStore::new(backends.table.clone())),
            invites: Arc::new(TableInviteStore::new(backends.table.clone())),
            limiter: backends.limiter.clone(),
            sms,
            webauthn,
            clock: backends.clock.clone(),
            random: backends.random.clone(),
            config,
        }
    }

    #[tracing::instrument(skip_all, fields(method = %req.method))]
    pub async fn handle_api(&self, req: &ApiRequest) -> Reply {
        match self.route(req).await {
            Ok(reply) => reply,
            Err(err) => err.into(),
        }
    }

    async fn route(&self, req: &ApiRequest) -> Result<Reply, ApiError> {
        let caller = req.claims.as_ref().ok_or(ApiError::NotAuthenticated)?;
        let interface_id = req.path_param("interface_id").unwrap_or_default();
        match req.method.as_str() {
            "GET" => {
                let target = self.target(req, caller).await?;
                self.require_sudo(caller)?;
                self.get(caller, target, interface_id).await
            }
            "POST" => {
                // Authorization first: nothing below writes before these checks pass.
                let _target = self.target(req, caller).await?;
                self.require_sudo(caller)?;
                if !caller.email_verified {
                    return Err(ApiError::Coded {
                        status: 401,
                        code: "primary-email-verification-required",
                        message: "Primary email verification required.",
                        extra: json!({"username": caller.email.clone().unwrap_or_else(|| caller.sub.clone())}),
                    });
                }
                self.post(req, caller, interface_id).await
            }
            m => Err(ApiError::detail(405, format!("Method \"{m}\" not allowed."))),
        }
    }

    /// `UserEndpoint.convert_args` + `UserPermission`: `me` or the caller's own id; another user must
    /// exist (404) and the caller must be a superuser (403).
    async fn target(&self, req: &ApiRequest, caller: &Claims) -> Result<Target, ApiError> {
        let user_id = req.path_param("user_id").unwrap_or_default();
        if user_id == "me" || user_id == caller.sub {
            return Ok(Target::Caller);
        }
        if user_id.is_empty() || user_id.len() > 128 {
            return Err(ApiError::ResourceDoesNotExist);
        }
        let state = self.enrollment.load_user(user_id).await?;
        if !state.exists && state.authenticators.is_empty() && state.memberships.is_empty() {
            return Err(ApiError::ResourceDoesNotExist);
        }
        if !caller.superuser {
            return Err(ApiError::PermissionDenied);
        }
        Ok(Target::Other(Box::new(state)))
    }

    fn require_sudo(&self, caller: &Claims) -> Result<(), ApiError> {
        if caller.is_sudo(self.clock.now_secs(), self.config.sudo_window_secs) {
            return Ok(());
        }
        Err(ApiError::Coded {
            status: 401,
            code: "sudo-required",
            message: "Account verification required.",
            extra: json!({"username": caller.email.clone().unwrap_or_else(|| caller.sub.clone())}),
        })
    }

    fn available(&self, kind: InterfaceType) -> bool {
        self.config.interface_available(kind)
    }

    async fn get(&self, caller: &Claims, target: Target, interface_id: &str) -> Result<Reply, ApiError> {
        // Sentry answers 500 (LookupError) for an unknown or unavailable interface; it is a 404 here.
        let kind = InterfaceType::from_id(interface_id)
            .filter(|k| self.available(*k))
            .ok_or(ApiError::ResourceDoesNotExist)?;
        let (state, email) = match target {
            Target::Caller => {
                let s = self.enrollment.load_user(&caller.sub).await?;
                let email = caller.email.clone().or_else(|| s.email.clone());
                (s, email)
            }
            Target::Other(s) => {
                let email = s.email.clone();
                (*s, email)
            }
        };
        let disallow = self.config.disallow_new_enrollment.contains(kind.id());
        interface(kind).show(self, Shown { caller, state, email, disallow }).await
    }

    /// Issues a secret bound to the caller for 15 minutes (DECISIONS 2), with a server-only code key
    /// when asked (SMS: the texted codes derive from it and the number, so the client, who holds
    /// `secret`, cannot compute them; see `shared::domain::sms`).
    pub(crate) async fn issue_secret(
        &self,
        caller: &Claims,
        kind: InterfaceType,
        with_code_key: bool,
    ) -> Result<Secret, ApiError> {
        let secret = generate_secret(self.random.as_ref());
        let code_key = with_code_key.then(|| generate_secret(self.random.as_ref()));
        let expires = self.clock.now_secs() + PENDING_TTL_SECS;
        self.enrollment.put_pending_secret(&caller.sub, kind, &secret, code_key.as_ref(), expires).await?;
        Ok(secret)
    }

    pub(crate) fn registrar(&self) -> Result<&Registrar, ApiError> {
        self.webauthn.as_deref().ok_or_else(|| {
            tracing::error!("u2f is available but no WebAuthn relying party was built");
            ApiError::Internal
        })
    }

    async fn post(&self, req: &ApiRequest, caller: &Claims, interface_id: &str) -> Result<Reply, ApiError> {
        let now_millis = self.clock.now_millis();
        let now = now_millis.div_euclid(1000);
        let cookie = self.invite_cookie(req, caller, now);

        // One concurrent read round: the rate-limit counter, the caller's partition, the pending invite.
        // The limiter key is the caller and the lower-cased interface id (case cannot open a new bucket).
        let limit_key =
            format!("auth:authenticator-enroll:{}:{}", caller.sub, interface_id.to_ascii_lowercase());
        let limit = self.limiter.hit(
            &limit_key,
            self.config.enroll_rate_limit,
            self.config.enroll_rate_window_secs,
            now,
        );
        let user = self.enrollment.load_user(&caller.sub);
        let invite = async {
            match &cookie {
                Some(c) => {
                    self.invites.lookup_invite(&OrgRef::Id(c.org_id), c.member_id, None).await.map(Some)
                }
                None => Ok(None),
            }
        };
        let (limit, user, invite) = tokio::join!(limit, user, invite);
        match limit {
            Ok(d) if d.is_limited() => return Err(ApiError::TooManyRequestsText(RATE_LIMITED)),
            Ok(_) => {}
            // Sentry's limiter fails open; so does this one (the enrollment itself still needs the table).
            Err(e) => tracing::warn!(error = %e, "rate limiter unavailable, failing open"),
        }
        let user = user?;
        let invite = invite?;

        let kind = InterfaceType::from_id(interface_id).ok_or(ApiError::NotFoundEmpty)?;
        let iface = interface(kind);
        if !iface.enrolls_here() {
            return Err(ApiError::NotFoundEmpty);
        }
        let body = req.json_object()?;
        let parsed = iface.validate(&body)?;
        if !self.available(kind) {
            return Err(ApiError::ResourceDoesNotExist);
        }
        if self.config.disallow_new_enrollment.contains(kind.id()) {
            return Err(ApiError::details(403, DISALLOWED_NEW_ENROLLMENT));
        }
        let existing = user.authenticator(kind).cloned();
        let info = iface.info();
        let mode = match &existing {
            Some(a) if info.allow_rotation_in_place => Mode::Rotate { version: a.version },
            Some(a) if info.allow_multi_enrollment => Mode::Append { version: a.version },
            Some(_) => return Err(ApiError::details(400, ALREADY_ENROLLED)),
            None => Mode::New,
        };
        if body.contains_key("phone") && kind != InterfaceType::Sms {
            // Sentry: AssertionError → 500. A phone number only belongs to the SMS interface.
            return Err(ApiError::field_error("phone", "This interface does not take a phone number."));
        }
        // A retry of an enrollment that already committed (its answer was lost: a timeout, a dropped
        // connection) finds the secret consumed and the authenticator holding that very secret: the
        // same outcome again, 204, and nothing written.
        if iface.repeats_enrollment(&user, &body, now) {
            tracing::info!(user_id = %caller.sub, interface = kind.id(), "enrollment already completed (retry)");
            return Ok(Reply::empty(204));
        }
        let posted = Posted { req, caller, body: &body, user: &user, existing: existing.as_ref(), now };
        let verified = match iface.verify(self, posted, parsed).await? {
            Step::Enroll(verified) => verified,
            Step::Answer(reply) => return Ok(reply),
        };
        let config = verified.config;

        let authenticator = match &existing {
            // A device added: same row, new config, timestamps kept.
            Some(a) if matches!(mode, Mode::Append { .. }) => {
                Authenticator { config, version: a.version + 1, ..a.clone() }
            }
            // Rotation in place: same row, new config, created_at = now, last_used_at cleared.
            Some(a) => Authenticator {
                config,
                created_at: now_millis,
                last_used_at: None,
                version: a.version + 1,
                ..a.clone()
            },
            None => new_authenticator(kind, config, now_millis, self.random.as_ref()),
        };
        let available = |k| self.available(k);
        let recovery = recovery_codes_needed(&user, available)
            .then(|| new_recovery_codes(now_millis, self.random.as_ref()));
        let mut after = user.clone();
        after.authenticators.retain(|a| a.kind != kind);
        after.authenticators.push(authenticator.clone());
        let invite_action = self.invite_action(req, caller, cookie.as_ref(), invite, &after, now_millis);
        let appending = matches!(mode, Mode::Append { .. });
        let enrollment = Enrollment {
            user_id: caller.sub.clone(),
            email: caller.email.clone(),
            activity: SecurityActivity {
                id: random_hex_id(self.random.as_ref()),
                user_id: caller.sub.clone(),
                kind: "mfa-added",
                at_millis: now_millis,
                ip_address: req.source_ip.clone(),
                user_agent: req.user_agent.clone(),
                authenticator_id: authenticator.id.clone(),
                interface: kind,
                device_name: verified.device_name,
            },
            authenticator,
            mode,
            consume: Some(verified.consume),
            credential: verified.credential,
            otp_counter: verified.otp_counter,
            recovery,
            invite: invite_action,
            now_secs: now,
        };
        match self.enrollment.enroll(&enrollment).await? {
            EnrollOutcome::Enrolled { recovery_added, invite } => {
                tracing::info!(user_id = %caller.sub, interface = kind.id(), recovery_added, "user.mfa-added");
                let reply = Reply::empty(204);
                Ok(match invite {
                    InviteResult::Accepted(m) => {
                        tracing::info!(organization_id = m.org_id, member_id = m.id, user_id = %caller.sub, "pending organization invite accepted after enrollment");
                        reply.with_header("set-cookie", InviteCookie::clear_cookie_header())
                    }
                    InviteResult::Dropped => {
                        reply.with_header("set-cookie", InviteCookie::clear_cookie_header())
                    }
                    InviteResult::None | InviteResult::NotCompleted => reply,
                })
            }
            // Another device was added concurrently; the ceremony state is intact, so a retry works.
            EnrollOutcome::AlreadyEnrolled if appending => Err(ApiError::Unavailable { retry_after_secs: 1 }),
            EnrollOutcome::AlreadyEnrolled => Err(ApiError::details(400, ALREADY_ENROLLED)),
            EnrollOutcome::SecretGone => {
                // Lost the race — possibly to this very request sent earlier, whose answer was lost and
                // which was still in flight when this one read: then it is the same outcome, 204.
                let now_user = self.enrollment.load_user(&caller.sub).await?;
                if iface.repeats_enrollment(&now_user, &body, now) {
                    tracing::info!(user_id = %caller.sub, interface = kind.id(), "enrollment completed concurrently (retry)");
                    return Ok(Reply::empty(204));
                }
                Err(iface.issued_gone())
            }
            EnrollOutcome::OtpReplayed => Err(ApiError::InvalidOtp),
            EnrollOutcome::CredentialTaken => Err(ApiError::details(400, webauthn::ALREADY_REGISTERED)),
        }
    }

    /// The pending invite from the signed cookie (tampered, expired or another user's → none).
    fn invite_cookie(&self, req: &ApiRequest, caller: &Claims, now: i64) -> Option<InviteCookie> {
        let key = self.config.invite_cookie_key.as_ref()?;
        InviteCookie::decode(req.cookie(COOKIE_NAME)?, key, now, Some(&caller.sub))
    }

    /// Step 19 of Sentry's POST: what happens to the pending invite once the user has 2FA.
    fn invite_action(
        &self,
        req: &ApiRequest,
        caller: &Claims,
        cookie: Option<&InviteCookie>,
        lookup: Option<InviteLookup>,
        after: &UserState,
        now_millis: i64,
    ) -> InviteAction {
        let (Some(cookie), Some(mut lookup)) = (cookie, lookup) else { return InviteAction::None };
        lookup.user = Some(after.clone());
        let Some(ctx) = resolve_context(&lookup, cookie.member_id) else {
            tracing::warn!(
                organization_id = cookie.org_id,
                member_id = cookie.member_id,
                "Invalid pending invite cookie"
            );
            return InviteAction::None;
        };
        let available = |k| self.available(k);
        let helper = InviteHelper {
            ctx: &ctx,
            token: Some(&cookie.token),
            caller: Some(caller),
            user: Some(after),
            now_secs: now_millis.div_euclid(1000),
            available: &available,
        };
        match post_decision(&helper) {
            PostDecision::AlreadyMember { drop_invite } => {
                tracing::info!(organization_id = ctx.org.id, user_id = %caller.sub, "Pending org invite not accepted - User already org member");
                match ctx.invite.filter(|m| drop_invite && m.is_pending()) {
                    Some(m) => InviteAction::DropPending(m),
                    None => InviteAction::None,
                }
            }
            PostDecision::Accept => InviteAction::Accept(Acceptance {
                invite: ctx.member.clone(),
                user_id: caller.sub.clone(),
                user_email: caller.email.clone(),
                now_millis,
                ip_address: req.source_ip.clone(),
                audit_id: random_hex_id(self.random.as_ref()),
            }),
            PostDecision::Unable => InviteAction::None,
        }
    }
}

#[async_trait::async_trait]
impl ApiHandler for EnrollAuthenticator {
    fn superuser_claim(&self) -> &str {
        &self.config.superuser_claim
    }

    async fn handle_api(&self, req: &ApiRequest) -> Reply {
        EnrollAuthenticator::handle_api(self, req).await
    }
}
