//! Reading a user's partition into [`UserState`] (one `Query`), and the items written for users.

use super::item::{Item, ItemExt, Val, item};
use super::keys::{self, UserItem};
use super::table::Table;
use crate::domain::user::{Authenticator, InterfaceType, Membership, PendingSecret, UserState};
use crate::error::StoreError;
use crate::secret::Secret;

/// Loads everything in `USER#{id}`.
pub async fn load_user(table: &dyn Table, user_id: &str) -> Result<UserState, StoreError> {
    let items = table.query(&keys::user_pk(user_id), None).await?;
    parse_user(user_id, &items)
}

pub fn parse_user(user_id: &str, items: &[Item]) -> Result<UserState, StoreError> {
    let mut u = UserState::empty(user_id);
    for it in items {
        let sk = it.s(super::attr::SK)?;
        match keys::user_item(sk) {
            Some(UserItem::Profile) => {
                u.exists = true;
                u.email = it.opt_s("email").map(str::to_owned);
            }
            Some(UserItem::Authenticator) => u.authenticators.push(parse_authenticator(it)?),
            Some(UserItem::Membership) => {
                let org_id = it.n("org_id")? as u64;
                u.memberships.insert(
                    org_id,
                    Membership {
                        org_id,
                        member_id: it.n("member_id")? as u64,
                        role: it.opt_s("role").unwrap_or("member").to_owned(),
                    },
                );
            }
            Some(UserItem::Identity) => {
                u.identities.insert(it.n("org_id")? as u64);
            }
            Some(UserItem::PendingSecret { interface }) => {
                let interface = InterfaceType::from_id(interface)
                    .ok_or_else(|| StoreError::corrupt("pending secret of unknown interface"))?;
                u.pending.push(PendingSecret {
                    interface,
                    secret: Secret::new(it.s("secret")?),
                    expires_at: it.n(super::attr::TTL)?,
                    phone: it.opt_s("phone").map(str::to_owned),
                    code_key: it.opt_s("code_key").map(Secret::new),
                });
            }
            Some(UserItem::UsedOtp { interface, counter }) => {
                let counter = counter.ok_or_else(|| StoreError::corrupt("bad OTP counter"))?;
                u.used_otp.insert((interface.to_owned(), counter), it.n(super::attr::TTL)?);
            }
            Some(UserItem::WebauthnState) => {
                u.webauthn_state = Some((it.s("state")?.to_owned(), it.n(super::attr::TTL)?));
            }
            None => {}
        }
    }
    u.authenticators.sort_by_key(|a| (a.kind == InterfaceType::Recovery, a.kind));
    Ok(u)
}

pub fn parse_authenticator(it: &Item) -> Result<Authenticator, StoreError> {
    Ok(Authenticator {
        id: it.s("auth_id")?.to_owned(),
        kind: InterfaceType::from_code(it.n("type")?)
            .ok_or_else(|| StoreError::corrupt("unknown authenticator type"))?,
        config: serde_json::from_str(it.s("config")?)
            .map_err(|_| StoreError::corrupt("authenticator config is not JSON"))?,
        created_at: it.n("created_at")?,
        last_used_at: it.opt_n("last_used_at"),
        version: it.opt_n("version").unwrap_or(0),
    })
}

pub fn authenticator_item(user_id: &str, a: &Authenticator) -> Item {
    let mut i = item(&keys::authenticator(user_id, a.kind));
    i.insert("auth_id".into(), Val::S(a.id.clone()));
    i.insert("user_id".into(), Val::S(user_id.to_owned()));
    i.insert("type".into(), Val::N(a.kind.code()));
    i.insert("config".into(), Val::S(a.config.to_string()));
    i.insert("created_at".into(), Val::N(a.created_at));
    if let Some(t) = a.last_used_at {
        i.insert("last_used_at".into(), Val::N(t));
    }
    i.insert("version".into(), Val::N(a.version));
    i
}
