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
//! | user profile | `USER#{user}` | `PROFILE` | – | – | created just in time (JWT claims) inside the user's first write |
//! | authenticator | `USER#{user}` | `AUTH#{type}` | – | – | one per (user, type): `attribute_not_exists` on create, `version` on rotation |
//! | membership (org, user) | `USER#{user}` | `MEMBERSHIP#{org:020}` | – | – | uniqueness of (org, user); "the caller's membership" without knowing the member id |
//! | SSO identity | `USER#{user}` | `IDENTITY#{org:020}` | – | – | "has an identity for the org's provider" |
//! | pending enrollment secret | `USER#{user}` | `PENDING#{interface}` | – | 15 min | issued by enroll GET, consumed (conditional delete) by POST; SMS: `phone` = the number texted |
//! | used OTP counter | `USER#{user}` | `OTP#{interface}#{counter}` | – | window end | replay protection: `attribute_not_exists` inside the enroll transaction |
//! | WebAuthn registration state | `USER#{user}` | `WEBAUTHN#REGISTER` | – | 15 min | ceremony state between enroll GET and POST, consumed (conditional delete) by POST |
//! | WebAuthn credential | `WACRED#{sha256(credential id)}` | `CRED` | – | – | a security key registers to one account once: `attribute_not_exists` in the enroll transaction |
//! | security activity | `USERSEC#{user}` | `{millis:015}#{id}` | – | – | `mfa-added` records (what a mailer reads) |
//! | organization | `ORG#{org}` | `ORG` | – | – | by id; the auth provider is embedded |
//! | organization by slug | `ORGSLUG#{slug}` | `ORG` | – | – | same attributes as by id (written together), so a slug lookup is one read |
//! | member / invite | `MEMBER#{member}` | `MEMBER` | `ORG#{org}` / `MEMBER#{member:020}` | – | by member id (member ids are global); GSI lists an org's members |
//! | invite e-mail (org, email) | `ORG#{org}` | `EMAIL#{lowercase email}` | – | – | uniqueness of (org, email) for pending invites |
//! | audit entry | `ORG#{org}` | `AUDIT#{millis:015}#{id}` | – | – | `MEMBER_ACCEPT` (event 3) entries, in time order |
//! | member joined | `ORG#{org}` | `JOINED#{member:020}` | – | – | `member_joined` records (onboarding), at most one per member |
//!
//! | project | `PROJECT#{project}` | `PROJECT` | – | – | by id (organization, slug, platform) |
//! | DSN key | `DSNKEY#{public key}` | `KEY` | – | – | save-event's key check (cached per warm Lambda) |
//! | event marker | `EVT#{project}#{event_id}` | `MARK` | – | 1 h | de-duplication and the publishing lease: `attribute_not_exists` put per event (returns the old item); claimed (`counted`, `state = streamed`) by the aggregation |
//! | group hash | `HASH#{project}#{hash}` | `HASH` | – | – | hash → group (`first_event` stamps `is_new`); its own partition so a storm of new groups spreads; the previous release's `PROJECT#{project}`/`HASH#{hash}` is still read |
//! | group | `GROUP#{group}` | `GROUP` | – | – | creation values, status, `regressed_by` (stamps `is_regression`), short id |
//! | group aggregate | `GROUP#{group}` | `GROUP#AGG#{shard}` | – | – | `times_seen`, `first_seen`, `last_seen`, newest values, from one stream shard, with its watermark `w`; a reader sums them with the row (`Query` prefix `GROUP`) |
//! | group environment | `GROUP#{group}` | `ENV#{md5(env)}` | – | – | put-if-absent stamped `first_event` (`is_new_group_environment`) |
//! | group release | `GROUP#{group}` | `REL#{md5(version)}#{md5(env)}` | – | – | first/last seen (throttled upsert) |
//! | release | `ORG#{org}` | `RELEASE#{md5(version)}` | – | – | upsert (throttled per warm Lambda) |
//! | environment | `ORG#{org}` | `ENV#{md5(name)}` | – | – | upsert |
//! | release environment | `ORG#{org}` | `RELENV#{md5(version)}#{md5(env)}` | – | – | upsert |
//! | release of a project | `PROJECT#{project}` | `RELEASE#{md5(version)}` (+ `#AGG#{shard}`) | – | – | upsert; `new_groups` in the aggregate items |
//! | environment of a project | `PROJECT#{project}` | `ENV#{md5(name)}` | – | – | upsert |
//! | release project environment | `PROJECT#{project}` | `RPE#{md5(version)}#{md5(env)}` (+ `#AGG#{shard}`) | – | – | upsert; `new_issues_count` in the aggregate items |
//! | short-id counter | `PROJECT#{project}` | `SHORTID` | – | – | `ADD counter 100`: a block of short ids for one aggregation instance |
//!
//! Everything a request needs about one user is in the `USER#{user}` partition, so one `Query` reads it.
//! No save-event row is written by every event of a group, release, environment or project: per event,
//! only its marker (see `save::saver` and `save::aggregate`).

#[cfg(feature = "aws-model")]
pub mod counting;
#[cfg(feature = "enroll")]
pub mod enroll;
pub mod item;
pub mod keys;
pub mod orgs;
pub mod projects;
#[cfg(feature = "aws")]
pub mod provision;
#[cfg(feature = "events")]
pub mod seed;
pub mod table;
pub mod users;

/// Names of the key attributes (shared by every adapter and by `template.yaml`).
pub mod attr {
    pub const PK: &str = "pk";
    pub const SK: &str = "sk";
    pub const GSI1_PK: &str = "gsi1pk";
    pub const GSI1_SK: &str = "gsi1sk";
    pub const GSI1: &str = "gsi1";
    pub const TTL: &str = "expires_at";
}

/// Key of a rate-limit counter item, as (pk, sk).
pub fn rate_limit_key(key: &str, window_secs: u64, bucket: i64) -> (String, String) {
    let k = keys::rate_limit(key, window_secs, bucket);
    (k.pk, k.sk)
}
