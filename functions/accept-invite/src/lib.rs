//! # accept-invite
//!
//! `GET` and `POST /api/0/accept-invite/{organization_id_or_slug}/{member_id}/{token}/`: Sentry's
//! `AcceptOrganizationInvite` endpoint. GET needs no authentication and tells the frontend what stands
//! between the caller and the organization (authentication, SSO, 2FA, e-mail verification); POST binds
//! the authenticated caller to the invite, exactly once under concurrency.
//!
//! The rules live in [`shared::domain::invite`]; this handler parses the request, reads once
//! ([`InviteStore::lookup_invite`]), decides with the domain, writes once, and renders the answer.
//! Sequential DynamoDB round trips: GET 1, POST 2 (read + transaction); counted by
//! `tests/concurrency.rs::round_trips_dynamodb`.

use std::sync::Arc;

use shared::backends::Backends;
use shared::config::Config;
use shared::domain::cookie::{InviteCookie, MAX_AGE_SECS};
use shared::domain::invite::{
    AcceptOutcome, Acceptance, InviteContext, InviteHelper, PostDecision, get_answer, post_decision,
    resolve_context,
};
use shared::domain::org::OrgRef;
use shared::domain::user::UserState;
use shared::error::ApiError;
use shared::http::{ApiHandler, ApiRequest, Reply};
use shared::ports::{Clock, InviteStore, Random, random_hex_id};
use shared::storage::orgs::TableInviteStore;

const INVALID_INVITE: &str = "Invalid invite code";
const UNABLE: &str = "unable to accept organization invite";
const ALREADY_MEMBER: &str = "member already exists";
/// Tokens are 64 hex characters; anything far longer is not worth hashing.
const MAX_TOKEN_LEN: usize = 256;

pub struct AcceptInvite {
    pub store: Arc<dyn InviteStore>,
    pub clock: Arc<dyn Clock>,
    pub random: Arc<dyn Random>,
    pub config: Arc<Config>,
}

impl AcceptInvite {
    /// The composition root: the invite store over the table, the clock and the random source.
    pub fn build(config: Arc<Config>, backends: &Backends) -> Self {
        Self {
            store: Arc::new(TableInviteStore::new(backends.table.clone())),
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
        let is_post = match req.method.as_str() {
            "GET" => false,
            "POST" => true,
            _ => return Err(ApiError::detail(405, format!("Method \"{}\" not allowed.", req.method))),
        };
        let invalid = || ApiError::details(400, INVALID_INVITE);
        let org = req.path_param("organization_id_or_slug").and_then(OrgRef::parse).ok_or_else(invalid)?;
        // Sentry answers 500 for a non-numeric member id (`int()` raises); that is a client mistake: 400.
        let member_id: u64 = req.path_param("member_id").and_then(|m| m.parse().ok()).ok_or_else(invalid)?;
        let token = req
            .path_param("token")
            .filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN_LEN)
            .ok_or_else(invalid)?;
        let caller = req.claims.as_ref();

        let lookup = self.store.lookup_invite(&org, member_id, caller.map(|c| c.sub.as_str())).await?;
        let ctx = resolve_context(&lookup, member_id).ok_or_else(invalid)?;
        let now_secs = self.clock.now_secs();
        let available = |k| self.config.interface_available(k);
        let helper = InviteHelper {
            ctx: &ctx,
            token: Some(token),
            caller,
            user: lookup.user.as_ref(),
            now_secs,
            available: &available,
        };

        if !is_post {
            let (body, remember) = get_answer(&helper).ok_or_else(invalid)?;
            let mut reply = Reply::json(200, body);
            if remember {
                reply = self.with_invite_cookie(reply, &ctx, token, caller.map(|c| c.sub.as_str()), now_secs);
            }
            return Ok(reply);
        }

        let clear = InviteCookie::clear_cookie_header();
        // A retry of an acceptance that already committed (its answer was lost) gets the same outcome
        // again, 204, nothing written: the invite's row names the caller, or the caller's membership in
        // the org is that very row (the lookup's two reads run concurrently, so one may already see an
        // acceptance the other does not).
        let accepted_by_caller = |ctx: &InviteContext, user: Option<&UserState>| {
            caller.is_some_and(|c| {
                ctx.invite.as_ref().is_some_and(|m| m.id == member_id && m.user_id.as_deref() == Some(&c.sub))
                    || user
                        .and_then(|u| u.memberships.get(&ctx.org.id))
                        .is_some_and(|m| m.member_id == member_id)
            })
        };
        let decision =
            if accepted_by_caller(&ctx, lookup.user.as_ref()) { None } else { Some(post_decision(&helper)) };
        match decision {
            None => {
                tracing::info!(
                    organization_id = ctx.org.id,
                    member_id,
                    "invite already accepted by the caller (retry)"
                );
                Ok(Reply::empty(204).with_header("set-cookie", clear))
            }
            Some(PostDecision::Unable) => Err(ApiError::details(400, UNABLE)),
            Some(PostDecision::AlreadyMember { drop_invite }) => {
                self.drop_pending_invite(&ctx, drop_invite).await?;
                Ok(Reply::from(ApiError::details(400, ALREADY_MEMBER)).with_header("set-cookie", clear))
            }
            Some(PostDecision::Accept) => {
                let Some(caller) = caller else { return Err(ApiError::details(400, UNABLE)) };
                let acceptance = Acceptance {
                    invite: ctx.member.clone(),
                    user_id: caller.sub.clone(),
                    user_email: caller.email.clone(),
                    now_millis: self.clock.now_millis(),
                    ip_address: req.source_ip.clone(),
                    audit_id: random_hex_id(self.random.as_ref()),
                };
                let outcome = self.store.accept_invite(&acceptance).await?;
                if !matches!(outcome, AcceptOutcome::Accepted(_)) {
                    // Lost a race — possibly against this very request sent earlier whose answer was lost
                    // (still in flight when this one read). If the row is the caller's now, that is the
                    // same outcome: 204. One more read, only on this path.
                    let again = self.store.lookup_invite(&org, member_id, Some(caller.sub.as_str())).await?;
                    if resolve_context(&again, member_id)
                        .is_some_and(|c| accepted_by_caller(&c, again.user.as_ref()))
                    {
                        tracing::info!(
                            organization_id = ctx.org.id,
                            member_id,
                            "invite accepted by the caller concurrently (retry)"
                        );
                        return Ok(Reply::empty(204).with_header("set-cookie", clear));
                    }
                }
                match outcome {
                    AcceptOutcome::Accepted(member) => {
                        tracing::info!(organization_id = ctx.org.id, member_id = member.id, user_id = %caller.sub, "organization invite accepted");
                        Ok(Reply::empty(204).with_header("set-cookie", clear))
                    }
                    AcceptOutcome::AlreadyMember => {
                        // Lost a race against another acceptance by the same user in this org (the
                        // request held a valid token: it was about to accept).
                        self.drop_pending_invite(&ctx, true).await?;
                        Ok(Reply::from(ApiError::details(400, ALREADY_MEMBER))
                            .with_header("set-cookie", clear))
                    }
                    AcceptOutcome::NoLongerValid => Err(ApiError::details(400, UNABLE)),
                }
            }
        }
    }

    /// "Member already exists": delete the requested invite row if it is still pending and the request
    /// proved it holds it (`drop`; an accepted membership is never deleted), and log as Sentry does.
    async fn drop_pending_invite(&self, ctx: &InviteContext, drop: bool) -> Result<(), ApiError> {
        tracing::info!(
            organization_id = ctx.org.id,
            member_id = ctx.invite_member_id,
            "Pending org invite not accepted - User already org member"
        );
        if let Some(invite) = ctx.invite.as_ref().filter(|m| drop && m.is_pending()) {
            self.store.delete_pending_invite(invite).await?;
        }
        Ok(())
    }

    fn with_invite_cookie(
        &self,
        reply: Reply,
        ctx: &InviteContext,
        token: &str,
        user: Option<&str>,
        now_secs: i64,
    ) -> Reply {
        let Some(key) = self.config.invite_cookie_key.as_ref() else {
            tracing::warn!("INVITE_COOKIE_KEY is not configured; the pending invite cannot be remembered");
            return reply;
        };
        let cookie = InviteCookie {
            member_id: ctx.member.id,
            org_id: ctx.org.id,
            token: token.to_owned(),
            user_id: user.map(str::to_owned),
            expires_at: now_secs + MAX_AGE_SECS,
        };
        match cookie.encode(key) {
            Some(v) => reply.with_header("set-cookie", InviteCookie::set_cookie_header(&v)),
            None => reply,
        }
    }
}

#[async_trait::async_trait]
impl ApiHandler for AcceptInvite {
    fn superuser_claim(&self) -> &str {
        &self.config.superuser_claim
    }

    async fn handle_api(&self, req: &ApiRequest) -> Reply {
        AcceptInvite::handle_api(self, req).await
    }
}
