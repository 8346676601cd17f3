//! The capabilities the domain depends on, one small trait each. Every trait has a DynamoDB/Kinesis
//! adapter and an in-memory adapter in [`crate::adapters`], and one contract test suite
//! (`shared/tests/contract_*.rs`) runs against both.

use async_trait::async_trait;

use crate::error::StoreError;

// Test doubles live in `crate::doubles` (tests, benches and the AWS limits model only); re-exported
// here, where the traits they implement are.
#[cfg(any(test, feature = "aws-model"))]
pub use crate::doubles::{ManualClock, SeqRandom};

/// Wall-clock time, injectable so tests can cross rate-limit buckets and token expiries.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> i64;

    fn now_secs(&self) -> i64 {
        self.now_millis().div_euclid(1000)
    }
}

/// The real clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

/// Randomness for secrets, salts, tokens and ids. The real source is the OS CSPRNG.
pub trait Random: Send + Sync {
    fn fill(&self, buf: &mut [u8]);

    fn bytes<const N: usize>(&self) -> [u8; N]
    where
        Self: Sized,
    {
        let mut b = [0u8; N];
        self.fill(&mut b);
        b
    }
}

/// A cryptographically secure generator seeded from the operating system (`rand::rng()`).
#[derive(Clone, Copy, Debug, Default)]
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&self, buf: &mut [u8]) {
        // `rand::rng()` is a ChaCha12 CSPRNG seeded from the OS and reseeded periodically.
        use rand::RngCore;
        rand::rng().fill_bytes(buf);
    }
}

/// A random 128-bit id as 32 lowercase hex characters: the unique part of audit entries, security
/// activities and other append-only rows (and request ids of the local emulation).
pub fn random_hex_id(rng: &dyn Random) -> String {
    let mut b = [0u8; 16];
    rng.fill(&mut b);
    hex::encode(b)
}

/// Outcome of one rate-limited call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateDecision {
    Allowed { count: u64 },
    Limited { count: u64, retry_after_secs: u64 },
}

impl RateDecision {
    pub fn is_limited(&self) -> bool {
        matches!(self, Self::Limited { .. })
    }
}

/// A fixed-window rate limiter with UTC-aligned buckets, as Sentry's Redis limiter: bucket =
/// `floor(now / window)`; every call increments the bucket's counter; a call is limited iff the new
/// count exceeds `limit`. Counter items carry a TTL so they disappear after their bucket.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    async fn hit(
        &self,
        key: &str,
        limit: u64,
        window_secs: u64,
        now_secs: i64,
    ) -> Result<RateDecision, StoreError> {
        self.hit_n(key, 1, limit, window_secs, now_secs).await
    }

    /// Counts `n` hits at once (a block of quota taken by one instance); `count` is the bucket's
    /// count after adding them, limited iff it exceeds `limit`.
    async fn hit_n(
        &self,
        key: &str,
        n: u64,
        limit: u64,
        window_secs: u64,
        now_secs: i64,
    ) -> Result<RateDecision, StoreError>;
}

/// The bucket number and the seconds left in it, for a UTC-aligned fixed window.
pub fn bucket(now_secs: i64, window_secs: u64) -> (i64, u64) {
    let w = window_secs.max(1) as i64;
    let b = now_secs.div_euclid(w);
    (b, (w - now_secs.rem_euclid(w)) as u64)
}

/// One record for the event stream.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StreamRecord {
    pub partition_key: String,
    pub data: Vec<u8>,
}

/// A record read back from the stream (tests, `postflow tail`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredRecord {
    pub sequence_number: String,
    pub partition_key: String,
    pub data: Vec<u8>,
}

/// Kinesis service limits that the publisher enforces before calling.
pub mod stream_limits {
    /// Data plus partition key of one record.
    pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
    pub const MAX_PARTITION_KEY_CHARS: usize = 256;
    pub const MAX_RECORDS_PER_CALL: usize = 500;
    pub const MAX_BYTES_PER_CALL: usize = 5 * 1024 * 1024;
}

/// Checks one record against the Kinesis limits.
pub fn validate_record(r: &StreamRecord) -> Result<(), StoreError> {
    use stream_limits::*;
    let pk_chars = r.partition_key.chars().count();
    if pk_chars == 0 || pk_chars > MAX_PARTITION_KEY_CHARS {
        return Err(StoreError::Rejected(format!(
            "partition key must be 1..=256 characters, got {pk_chars}"
        )));
    }
    let size = r.data.len() + r.partition_key.len();
    if size > MAX_RECORD_BYTES {
        return Err(StoreError::Rejected(format!("record of {size} bytes exceeds the 1 MiB Kinesis limit")));
    }
    Ok(())
}

/// Splits records into `PutRecords` calls of at most 500 records and 5 MiB, keeping their order.
pub fn batches(records: &[StreamRecord]) -> Vec<std::ops::Range<usize>> {
    use stream_limits::*;
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0usize, 0usize);
    for (i, r) in records.iter().enumerate() {
        let size = r.data.len() + r.partition_key.len();
        if i > start && (i - start == MAX_RECORDS_PER_CALL || bytes + size > MAX_BYTES_PER_CALL) {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < records.len() {
        out.push(start..records.len());
    }
    out
}

/// Publishes records onto the event stream. All records are validated before anything is sent; within a
/// `PutRecords` call, entries that failed are retried (only those, in their original order) with backoff,
/// a bounded number of times. An error means some records may not have been written; callers must make
/// the whole publish idempotent (the save-event marker does).
#[async_trait]
pub trait EventStream: Send + Sync {
    async fn publish(&self, records: Vec<StreamRecord>) -> Result<(), StoreError>;

    /// [`EventStream::publish`], retrying failed entries only while `deadline` (the Lambda's remaining
    /// time, minus a margin) allows another attempt.
    async fn publish_until(
        &self,
        records: Vec<StreamRecord>,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<(), StoreError> {
        let _ = deadline;
        self.publish(records).await
    }
}

/// Organization invites: the accept-invite capability (also used by enroll, which accepts a pending
/// invite after enrollment).
#[async_trait]
pub trait InviteStore: Send + Sync {
    /// Reads the organization (by id or slug), the member with `member_id`, and — when the caller is
    /// authenticated — the caller's partition, concurrently (one sequential round trip).
    async fn lookup_invite(
        &self,
        org: &crate::domain::org::OrgRef,
        member_id: u64,
        user_id: Option<&str>,
    ) -> Result<crate::domain::invite::InviteLookup, StoreError>;

    /// Binds the user to the invite in one transaction (member update, `(org, user)` uniqueness, audit
    /// entry, `member_joined`, e-mail slot release, user profile); a lost race reports who won.
    async fn accept_invite(
        &self,
        acceptance: &crate::domain::invite::Acceptance,
    ) -> Result<crate::domain::invite::AcceptOutcome, StoreError>;

    /// Deletes the invite row if it is still pending; `false` when it was already gone or accepted.
    async fn delete_pending_invite(&self, member: &crate::domain::org::Member) -> Result<bool, StoreError>;
}

/// Authenticator enrollment: the enroll capability.
#[cfg(feature = "enroll")]
#[async_trait]
pub trait EnrollmentStore: Send + Sync {
    /// Everything in the user's partition (one `Query`).
    async fn load_user(&self, user_id: &str) -> Result<crate::domain::user::UserState, StoreError>;

    /// Stores the secret issued by enroll GET for `(user, interface)` (replacing an older one), with the
    /// server-only SMS code key when there is one.
    async fn put_pending_secret(
        &self,
        user_id: &str,
        interface: crate::domain::user::InterfaceType,
        secret: &crate::secret::Secret,
        code_key: Option<&crate::secret::Secret>,
        expires_at: i64,
    ) -> Result<(), StoreError>;

    /// SMS: records the number the code is texted to on the pending secret, if that secret is still
    /// pending (`false` otherwise: consumed, replaced or expired).
    async fn bind_pending_phone(
        &self,
        user_id: &str,
        interface: crate::domain::user::InterfaceType,
        secret: &crate::secret::Secret,
        phone: &str,
        now_secs: i64,
    ) -> Result<bool, StoreError>;

    /// Stores the WebAuthn registration state issued by enroll GET (replacing an older one).
    async fn put_webauthn_state(&self, user_id: &str, state: &str, expires_at: i64)
    -> Result<(), StoreError>;

    /// The enrollment transaction (see `storage::enroll`).
    async fn enroll(
        &self,
        enrollment: &crate::domain::enroll::Enrollment,
    ) -> Result<crate::domain::enroll::EnrollOutcome, StoreError>;
}

/// One text message to a phone number (E.164). The text carries a one-time code, so it is a
/// [`Secret`](crate::secret::Secret): never logged, never `Debug`-printed.
#[cfg(feature = "enroll")]
#[derive(Clone, Debug)]
pub struct TextMessage {
    pub to_e164: String,
    pub text: crate::secret::Secret,
}

/// Sends text messages (Sentry's `send_sms` over Twilio). Adapters: Amazon SNS
/// ([`crate::adapters::sns::SnsSmsSender`]), the in-memory outbox
/// ([`crate::adapters::memory::MemorySmsOutbox`], the local CLI's) and the null sender of a deployment
/// without texts ([`crate::adapters::disabled::DisabledSms`]).
#[cfg(feature = "enroll")]
#[async_trait]
pub trait SmsSender: Send + Sync {
    /// Delivers one message or reports why not. Errors never carry the text.
    async fn send(&self, message: &TextMessage) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_utc_aligned() {
        assert_eq!(bucket(0, 86_400), (0, 86_400));
        assert_eq!(bucket(86_399, 86_400), (0, 1));
        assert_eq!(bucket(86_400, 86_400), (1, 86_400));
        assert_eq!(bucket(1_700_000_000, 300), (5_666_666, 100));
    }

    #[test]
    fn record_validation() {
        let ok = StreamRecord { partition_key: "42".into(), data: vec![0; 1024 * 1024 - 2] };
        assert!(validate_record(&ok).is_ok());
        let big = StreamRecord { partition_key: "42".into(), data: vec![0; 1024 * 1024 - 1] };
        assert!(matches!(validate_record(&big), Err(StoreError::Rejected(_))));
        let empty_key = StreamRecord { partition_key: String::new(), data: vec![1] };
        assert!(validate_record(&empty_key).is_err());
        let long_key = StreamRecord { partition_key: "k".repeat(257), data: vec![1] };
        assert!(validate_record(&long_key).is_err());
    }

    #[test]
    fn batching_respects_count_and_bytes() {
        let small: Vec<_> =
            (0..1201).map(|i| StreamRecord { partition_key: i.to_string(), data: vec![1] }).collect();
        let b = batches(&small);
        assert_eq!(b, vec![0..500, 500..1000, 1000..1201]);
        let big: Vec<_> = (0..12)
            .map(|_| StreamRecord { partition_key: "p".into(), data: vec![0; 1024 * 1024 - 1] })
            .collect();
        let b = batches(&big);
        assert_eq!(b, vec![0..5, 5..10, 10..12]);
        assert!(batches(&[]).is_empty());
    }

    #[test]
    fn seq_random_is_deterministic_and_os_random_varies() {
        let a = SeqRandom::default().bytes::<16>();
        let b = SeqRandom::default().bytes::<16>();
        assert_eq!(a, b);
        assert_ne!(OsRandom.bytes::<16>(), OsRandom.bytes::<16>());
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::at_secs(100);
        assert_eq!(c.now_secs(), 100);
        c.advance_secs(5);
        assert_eq!(c.now_secs(), 105);
        c.set_secs(1);
        assert_eq!(c.now_millis(), 1000);
        c.advance_millis(1500);
        assert_eq!(c.now_millis(), 2500);
        c.set_millis(7);
        assert_eq!(c.now_millis(), 7);
    }
}
