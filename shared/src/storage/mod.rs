//! Storage: the single DynamoDB table, its key schema, and provisioning.
//!
//! One table, `pk` (S) + `sk` (S), one GSI `gsi1` (`gsi1pk`, `gsi1sk`, all attributes projected), TTL
//! attribute `expires_at` (epoch seconds). The same definition is used by `template.yaml` (checked by a
//! test in this module), by the tests and by the local CLI ([`provision`]).
//!
//! ## Key schema
//!
//! Each row is one item type, with the access pattern it serves. `{…}` are values; md5 keys are hex.
//!
//! | item | pk | sk | other keys | TTL | access pattern |
//! |---|---|---|---|---|---|
//! | rate-limit counter | `RL#{md5(key)}` | `W{window}#B{bucket}` | – | end of bucket + 60 s | `UpdateItem ADD count`, limited iff count > limit |
//!
//! Rows for users, authenticators, organizations, members, invites, projects, releases, groups and
//! de-duplication markers are added with the features that own them.

pub mod item;
pub mod provision;
pub mod table;

/// Names of the key attributes (shared by every adapter and by `template.yaml`).
pub mod attr {
    pub const PK: &str = "pk";
    pub const SK: &str = "sk";
    pub const GSI1_PK: &str = "gsi1pk";
    pub const GSI1_SK: &str = "gsi1sk";
    pub const GSI1: &str = "gsi1";
    pub const TTL: &str = "expires_at";
}

/// Key of a rate-limit counter item.
pub fn rate_limit_key(key: &str, window_secs: u64, bucket: i64) -> (String, String) {
    use md5::{Digest, Md5};
    (format!("RL#{}", hex::encode(Md5::digest(key.as_bytes()))), format!("W{window_secs}#B{bucket}"))
}
