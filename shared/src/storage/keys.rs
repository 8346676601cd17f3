//! Key builders for every item type (the schema table lives in the module docs of [`super`]): the
//! one place that spells a key.

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

pub fn project(id: u64) -> Key {
    Key::new(format!("PROJECT#{id}"), "PROJECT")
}

pub fn dsn_key(public_key: &str) -> Key {
    Key::new(format!("DSNKEY#{public_key}"), "KEY")
}

/// The GSI key that lists an organization's members in id order.
pub fn member_gsi_sk(member_id: u64) -> String {
    format!("MEMBER#{member_id:020}")
}

/// A rate-limit counter: `RL#{md5(key)}` / `W{window}#B{bucket}`.
pub fn rate_limit(key: &str, window_secs: u64, bucket: i64) -> Key {
    Key::new(format!("RL#{}", h(key)), format!("W{window_secs}#B{bucket}"))
}

/// MD5 hex of a free-text key part (release versions, environment names).
pub(crate) fn h(s: &str) -> String {
    use md5::{Digest, Md5};
    hex::encode(Md5::digest(s.as_bytes()))
}

// The save path.

pub fn marker(project: u64, event_id: &str) -> Key {
    Key::new(format!("EVT#{project}#{event_id}"), "MARK")
}
pub fn group(id: u64) -> Key {
    Key::new(format!("GROUP#{id}"), "GROUP")
}
/// A group hash, in a partition of its own (a storm of new groups spreads over partitions).
pub fn group_hash(project: u64, hash: &str) -> Key {
    Key::new(format!("HASH#{project}#{hash}"), "HASH")
}
/// Where the previous release kept group hashes (read, never written).
pub fn legacy_group_hash(project: u64, hash: &str) -> Key {
    Key::new(format!("PROJECT#{project}"), format!("HASH#{hash}"))
}
pub fn group_env(group: u64, env: &str) -> Key {
    Key::new(format!("GROUP#{group}"), format!("ENV#{}", h(env)))
}
pub fn group_release(group: u64, version: &str, env: &str) -> Key {
    Key::new(format!("GROUP#{group}"), format!("REL#{}#{}", h(version), h(env)))
}
pub fn release(org: u64, version: &str) -> Key {
    Key::new(format!("ORG#{org}"), format!("RELEASE#{}", h(version)))
}
pub fn release_project(project: u64, version: &str) -> Key {
    Key::new(format!("PROJECT#{project}"), format!("RELEASE#{}", h(version)))
}
pub fn environment(org: u64, name: &str) -> Key {
    Key::new(format!("ORG#{org}"), format!("ENV#{}", h(name)))
}
pub fn environment_project(project: u64, name: &str) -> Key {
    Key::new(format!("PROJECT#{project}"), format!("ENV#{}", h(name)))
}
pub fn release_environment(org: u64, version: &str, env: &str) -> Key {
    Key::new(format!("ORG#{org}"), format!("RELENV#{}#{}", h(version), h(env)))
}
pub fn release_project_environment(project: u64, version: &str, env: &str) -> Key {
    Key::new(format!("PROJECT#{project}"), format!("RPE#{}#{}", h(version), h(env)))
}
/// The project's short-id counter (allocated in blocks by the aggregation).
pub fn short_id_counter(project: u64) -> Key {
    Key::new(format!("PROJECT#{project}"), "SHORTID")
}
/// Suffix of an aggregate item: the counts one stream shard contributed to the row before it.
pub fn agg(base: &Key, shard: &str) -> Key {
    Key::new(base.pk.clone(), format!("{}#AGG#{shard}", base.sk))
}
/// The prefix that finds a row and all its aggregate items with one `Query`.
pub fn agg_prefix(base: &Key) -> String {
    base.sk.clone()
}

/// The items of a user's partition (`USER#{user}`), by their `sk`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserItem<'a> {
    Profile,
    Authenticator,
    Membership,
    Identity,
    PendingSecret {
        interface: &'a str,
    },
    /// `counter` is `None` when the key is malformed.
    UsedOtp {
        interface: &'a str,
        counter: Option<i64>,
    },
    WebauthnState,
}

/// Classifies an item of a user's partition by its sort key (`None` for unknown kinds).
pub fn user_item(sk: &str) -> Option<UserItem<'_>> {
    if sk == "PROFILE" {
        Some(UserItem::Profile)
    } else if sk.starts_with("AUTH#") {
        Some(UserItem::Authenticator)
    } else if sk.starts_with("MEMBERSHIP#") {
        Some(UserItem::Membership)
    } else if sk.starts_with("IDENTITY#") {
        Some(UserItem::Identity)
    } else if let Some(interface) = sk.strip_prefix("PENDING#") {
        Some(UserItem::PendingSecret { interface })
    } else if let Some(rest) = sk.strip_prefix("OTP#") {
        let (interface, counter) = rest.rsplit_once('#').unwrap_or((rest, ""));
        Some(UserItem::UsedOtp { interface, counter: counter.parse().ok() })
    } else if sk == "WEBAUTHN#REGISTER" {
        Some(UserItem::WebauthnState)
    } else {
        None
    }
}

/// What a stored key is, read back from its `pk`/`sk` — for code that scans the table (the
/// invariant checker, migrations), so no key is spelled or parsed outside this module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Row<'a> {
    Authenticator {
        user: &'a str,
    },
    Membership {
        user: &'a str,
    },
    Member,
    InviteEmail,
    Audit,
    MemberJoined {
        member: u64,
    },
    Group {
        id: u64,
    },
    /// Any other item of a group's or a project's partition (aggregates, environments, releases…).
    GroupOrProjectPartition,
}

/// Classifies a key (`None` for the kinds no scanner needs).
pub fn classify<'a>(pk: &'a str, sk: &'a str) -> Option<Row<'a>> {
    if let Some(user) = pk.strip_prefix("USER#") {
        return if sk.starts_with("AUTH#") {
            Some(Row::Authenticator { user })
        } else if sk.starts_with("MEMBERSHIP#") {
            Some(Row::Membership { user })
        } else {
            None
        };
    }
    if pk.starts_with("MEMBER#") {
        return (sk == "MEMBER").then_some(Row::Member);
    }
    if pk.starts_with("ORG#") {
        if sk.starts_with("EMAIL#") {
            return Some(Row::InviteEmail);
        }
        if sk.starts_with("AUDIT#") {
            return Some(Row::Audit);
        }
        return sk
            .strip_prefix("JOINED#")
            .and_then(|m| m.parse().ok())
            .map(|member| Row::MemberJoined { member });
    }
    if let Some(id) = pk.strip_prefix("GROUP#") {
        if sk == "GROUP" {
            return id.parse().ok().map(|id| Row::Group { id });
        }
        return Some(Row::GroupOrProjectPartition);
    }
    pk.starts_with("PROJECT#").then_some(Row::GroupOrProjectPartition)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_reads_back_what_the_builders_write() {
        let c = |k: Key| classify(&k.pk, &k.sk).map(|r| format!("{r:?}"));
        let kind = crate::domain::user::InterfaceType::Totp;
        assert_eq!(c(authenticator("u1", kind)), Some("Authenticator { user: \"u1\" }".into()));
        assert_eq!(c(membership("u1", 7)), Some("Membership { user: \"u1\" }".into()));
        assert_eq!(c(member(10)), Some("Member".into()));
        assert_eq!(c(member_email(1, "A@x")), Some("InviteEmail".into()));
        assert_eq!(c(audit(1, 5, "x")), Some("Audit".into()));
        assert_eq!(c(member_joined(1, 10)), Some("MemberJoined { member: 10 }".into()));
        assert_eq!(c(group(3)), Some("Group { id: 3 }".into()));
        assert_eq!(c(group_env(3, "prod")), Some("GroupOrProjectPartition".into()));
        assert_eq!(c(release_project(42, "1.0")), Some("GroupOrProjectPartition".into()));
        assert_eq!(c(profile("u1")), None);
        let u = |k: Key| user_item(&k.sk).map(|r| format!("{r:?}"));
        assert_eq!(u(profile("u")), Some("Profile".into()));
        assert_eq!(u(identity("u", 1)), Some("Identity".into()));
        assert_eq!(u(pending_secret("u", kind)), Some("PendingSecret { interface: \"totp\" }".into()));
        assert_eq!(
            u(used_otp("u", "totp", 42)),
            Some("UsedOtp { interface: \"totp\", counter: Some(42) }".into())
        );
        assert_eq!(u(webauthn_state("u")), Some("WebauthnState".into()));
        assert_eq!(c(org(1)), None);
    }
}
