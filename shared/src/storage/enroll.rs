//! The enrollment transaction: one `TransactWriteItems` that
//!
//! 0. creates the authenticator (`attribute_not_exists`: one per user and type), rotates it in place,
//!    or appends a WebAuthn device (both conditional on the `version` that was read),
//! 1. consumes what GET issued (condition: the same value, not expired): the pending secret (TOTP, SMS —
//!    for SMS also the number the code was texted to) or the WebAuthn registration state,
//! 2. marks the OTP counter used (`attribute_not_exists`: a code is accepted once),
//! 3. records the `mfa-added` security activity,
//! 4. creates/refreshes the user profile,
//! 5. adds recovery codes when the user has no backup interface (`attribute_not_exists`),
//! 6. u2f: claims the credential id (`attribute_not_exists`: a key registers to one account once),
//! 7. … and, when the request carries a pending invite, accepts it (the accept-invite operations) or
//!    drops a still-pending invite when the user is already a member.
//!
//! All or nothing. When only the recovery-codes or invite part lost a race (codes created by a parallel
//! enrollment of another interface, invite accepted elsewhere), the enrollment is retried without that
//! part, so an enrollment never fails because of a side effect.

use std::sync::Arc;

use async_trait::async_trait;

use super::item::{Val, item};
use super::keys;
use super::orgs::{acceptance_ops, acceptance_outcome, delete_pending_ops, profile_op};
use super::table::{Cond, Table, TxOutcome, Update, WriteOp};
use super::users::{authenticator_item, load_user};
use crate::domain::enroll::SecurityActivity;
use crate::domain::invite::AcceptOutcome;
use crate::domain::user::{InterfaceType, UserState};
use crate::error::StoreError;
use crate::ports::EnrollmentStore;
use crate::secret::Secret;

// The command and outcome types are the domain's (the port speaks them); re-exported for callers.
pub use crate::domain::enroll::{Consume, EnrollOutcome, Enrollment, InviteAction, InviteResult, Mode};

fn activity_item(a: &SecurityActivity) -> super::item::Item {
    let mut i = item(&keys::security_activity(&a.user_id, a.at_millis, &a.id));
    i.insert("type".into(), Val::S(a.kind.into()));
    i.insert("user_id".into(), Val::S(a.user_id.clone()));
    i.insert("actor_id".into(), Val::S(a.user_id.clone()));
    i.insert("authenticator_id".into(), Val::S(a.authenticator_id.clone()));
    i.insert("interface".into(), Val::S(a.interface.id().into()));
    i.insert("datetime".into(), Val::N(a.at_millis));
    if let Some(ip) = &a.ip_address {
        i.insert("ip_address".into(), Val::S(ip.clone()));
    }
    if let Some(ua) = &a.user_agent {
        i.insert("user_agent".into(), Val::S(ua.chars().take(512).collect()));
    }
    if let Some(name) = &a.device_name {
        i.insert("device_name".into(), Val::S(name.clone()));
    }
    i
}

/// Builds the operations; returns them with the index of the recovery op and the range of invite ops.
fn ops(
    e: &Enrollment,
    with_recovery: bool,
    with_invite: bool,
) -> (Vec<WriteOp>, Option<usize>, std::ops::Range<usize>) {
    let a = &e.authenticator;
    let mut ops = Vec::new();
    ops.push(match e.mode {
        Mode::New => WriteOp::Put { item: authenticator_item(&e.user_id, a), cond: Some(Cond::NotExists) },
        Mode::Rotate { version } => WriteOp::Update {
            key: keys::authenticator(&e.user_id, a.kind),
            update: Update::default()
                .set("config", a.config.to_string())
                .set("created_at", a.created_at)
                .remove("last_used_at")
                .add("version", 1),
            cond: Some(Cond::eq("version", version)),
        },
        Mode::Append { version } => WriteOp::Update {
            key: keys::authenticator(&e.user_id, a.kind),
            update: Update::default().set("config", a.config.to_string()).add("version", 1),
            cond: Some(Cond::eq("version", version)),
        },
    });
    let not_expired = Cond::Gt(super::attr::TTL.into(), e.now_secs);
    match &e.consume {
        Some(Consume::Secret { interface, secret, phone }) => {
            let mut conds = vec![Cond::eq("secret", secret.expose()), not_expired];
            if let Some(p) = phone {
                conds.push(Cond::eq("phone", p.as_str()));
            }
            ops.push(WriteOp::Delete {
                key: keys::pending_secret(&e.user_id, *interface),
                cond: Some(Cond::And(conds)),
            });
        }
        Some(Consume::WebAuthnState(state)) => ops.push(WriteOp::Delete {
            key: keys::webauthn_state(&e.user_id),
            cond: Some(Cond::And(vec![Cond::eq("state", state.as_str()), not_expired])),
        }),
        None => {}
    }
    if let Some((iface, counter, expires)) = &e.otp_counter {
        let mut it = item(&keys::used_otp(&e.user_id, iface, *counter));
        it.insert(super::attr::TTL.into(), Val::N(*expires));
        ops.push(WriteOp::Put { item: it, cond: Some(Cond::NotExists) });
    }
    if let Some(handle) = &e.credential {
        let mut it = item(&keys::webauthn_credential(handle));
        it.insert("user_id".into(), Val::S(e.user_id.clone()));
        it.insert("auth_id".into(), Val::S(a.id.clone()));
        ops.push(WriteOp::Put { item: it, cond: Some(Cond::NotExists) });
    }
    ops.push(WriteOp::Put { item: activity_item(&e.activity), cond: Some(Cond::NotExists) });
    ops.push(profile_op(&e.user_id, e.email.as_deref(), e.activity.at_millis));
    let mut recovery_at = None;
    if let (true, Some(r)) = (with_recovery, &e.recovery) {
        recovery_at = Some(ops.len());
        ops.push(WriteOp::Put { item: authenticator_item(&e.user_id, r), cond: Some(Cond::NotExists) });
    }
    let start = ops.len();
    if with_invite {
        match &e.invite {
            InviteAction::None => {}
            InviteAction::Accept(acc) => ops.extend(acceptance_ops(acc, false)),
            InviteAction::DropPending(m) => ops.extend(delete_pending_ops(m)),
        }
    }
    let end = ops.len();
    (ops, recovery_at, start..end)
}

/// Runs the enrollment transaction with the retry rules described in the module docs.
pub async fn enroll(table: &dyn Table, e: &Enrollment) -> Result<EnrollOutcome, StoreError> {
    let (mut with_recovery, mut with_invite) =
        (e.recovery.is_some(), !matches!(e.invite, InviteAction::None));
    for _ in 0..3 {
        let (ops, recovery_at, invite_ops) = ops(e, with_recovery, with_invite);
        let has_secret = usize::from(e.consume.is_some());
        let otp_at = e.otp_counter.as_ref().map(|_| 1 + has_secret);
        let credential_at = e.credential.as_ref().map(|_| 1 + has_secret + usize::from(otp_at.is_some()));
        let out = table.transact(ops).await?;
        let failed = match &out {
            TxOutcome::Committed => {
                let invite = match (&e.invite, with_invite) {
                    (InviteAction::None, _) => InviteResult::None,
                    (_, false) => InviteResult::NotCompleted,
                    (InviteAction::Accept(acc), true) => match acceptance_outcome(&out, acc) {
                        AcceptOutcome::Accepted(m) => InviteResult::Accepted(m),
                        _ => InviteResult::NotCompleted,
                    },
                    (InviteAction::DropPending(_), true) => InviteResult::Dropped,
                };
                return Ok(EnrollOutcome::Enrolled { recovery_added: with_recovery, invite });
            }
            TxOutcome::ConditionFailed { failed } => failed.clone(),
        };
        // An emulator may report fewer reasons than operations: a missing one is "did not fail".
        let failed_at = |i: usize| failed.get(i).copied().unwrap_or(false);
        // What GET issued was consumed by a concurrent enrollment: that one won (checked first, as the
        // authenticator's version then failed too).
        if has_secret == 1 && failed_at(1) {
            return Ok(EnrollOutcome::SecretGone);
        }
        if failed_at(0) {
            return Ok(EnrollOutcome::AlreadyEnrolled);
        }
        if otp_at.is_some_and(failed_at) {
            return Ok(EnrollOutcome::OtpReplayed);
        }
        if credential_at.is_some_and(failed_at) {
            return Ok(EnrollOutcome::CredentialTaken);
        }
        let mut retried = false;
        if recovery_at.is_some_and(failed_at) {
            with_recovery = false;
            retried = true;
        }
        if invite_ops.clone().any(failed_at) {
            with_invite = false;
            retried = true;
        }
        if !retried {
            return Err(StoreError::Other {
                service: "dynamodb",
                message: format!("enrollment transaction failed: {failed:?}"),
            });
        }
    }
    Err(StoreError::Unavailable {
        service: "dynamodb",
        message: "enrollment transaction kept conflicting".into(),
    })
}

/// The enrollment store over any [`Table`].
#[derive(Clone)]
pub struct TableEnrollmentStore {
    table: Arc<dyn Table>,
}

impl TableEnrollmentStore {
    pub fn new(table: Arc<dyn Table>) -> Self {
        Self { table }
    }
}

#[async_trait]
impl EnrollmentStore for TableEnrollmentStore {
    async fn load_user(&self, user_id: &str) -> Result<UserState, StoreError> {
        load_user(self.table.as_ref(), user_id).await
    }

    async fn put_pending_secret(
        &self,
        user_id: &str,
        interface: InterfaceType,
        secret: &Secret,
        code_key: Option<&Secret>,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let mut it = item(&keys::pending_secret(user_id, interface));
        it.insert("secret".into(), Val::S(secret.expose().to_owned()));
        if let Some(k) = code_key {
            it.insert("code_key".into(), Val::S(k.expose().to_owned()));
        }
        it.insert(super::attr::TTL.into(), Val::N(expires_at));
        self.table.transact(vec![WriteOp::Put { item: it, cond: None }]).await?;
        Ok(())
    }

    async fn bind_pending_phone(
        &self,
        user_id: &str,
        interface: InterfaceType,
        secret: &Secret,
        phone: &str,
        now_secs: i64,
    ) -> Result<bool, StoreError> {
        let op = WriteOp::Update {
            key: keys::pending_secret(user_id, interface),
            update: Update::default().set("phone", phone),
            cond: Some(Cond::And(vec![
                Cond::eq("secret", secret.expose()),
                Cond::Gt(super::attr::TTL.into(), now_secs),
            ])),
        };
        Ok(matches!(self.table.transact(vec![op]).await?, TxOutcome::Committed))
    }

    async fn put_webauthn_state(
        &self,
        user_id: &str,
        state: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let mut it = item(&keys::webauthn_state(user_id));
        it.insert("state".into(), Val::S(state.to_owned()));
        it.insert(super::attr::TTL.into(), Val::N(expires_at));
        self.table.transact(vec![WriteOp::Put { item: it, cond: None }]).await?;
        Ok(())
    }

    async fn enroll(&self, e: &Enrollment) -> Result<EnrollOutcome, StoreError> {
        enroll(self.table.as_ref(), e).await
    }
}
