//! # Postflow shared crate
//!
//! Everything the three Lambda functions (`enroll-authenticator`, `accept-invite`, `save-event`) have in
//! common lives here:
//!
//! - [`config`]: the typed configuration read once from the environment at cold start.
//! - [`http`]: helpers over API Gateway HTTP API (payload 2.0) requests and the one response helper that
//!   renders every outcome in Sentry's body shapes. The only module that knows `lambda_http`.
//! - [`error`]: the error enums per layer and the single mapping from errors to HTTP.
//! - [`telemetry`]: JSON logs with the Lambda request id on every line.
//! - [`ports`]: the small capability traits the domain depends on (clock, randomness, rate limiter, event
//!   stream, and the stores added by each function's issue).
//! - [`adapters`]: DynamoDB / Kinesis implementations and in-memory implementations with the same semantics.
//! - [`grouping`]: grouping hashes, metadata/title/culprit, save tags, span grouping, and Sentry's grouping hashes.
//! - [`save`]: the save pipeline: prepare (grouping, tags, metadata), the event saver (marker protocol,
//!   group decisions), the eventstream record, and the aggregation of counters from the stream.
//! - [`ingest`]: the Sentry ingestion edge (DSN auth, decoding, envelopes, Relay-compatible normalization).
//! - [`tree`]: field lookups in the event tree (small objects scanned, not hashed).
//! - [`storage`]: the single-table key schema (documented there, in one table) and table/stream provisioning.
//!
//! Domain code never sees `lambda_http` or AWS SDK types; adapters never make business decisions.
//!
//! ## Features: each function compiles only its part
//!
//! | feature | adds | dependencies | used by |
//! |---|---|---|---|
//! | (none) | configuration, HTTP, errors, logging, the table engine (in memory), users, organizations, invites, cookies, projects | – | jwt-authorizer |
//! | `aws` | the DynamoDB table ([`adapters::dynamo_table`]) and limiter, the SDK configuration ([`adapters::aws`]), provisioning | AWS SDK for DynamoDB | accept-invite |
//! | `enroll` (+ `aws`) | authenticator interfaces: [`domain::otp`], [`domain::sms`], [`domain::webauthn`], [`domain::enroll`], [`domain::interfaces`], the enrollment store, SNS texts | `totp-rs`, `rlibphonenumber`, `webauthn-rs`, CBOR, AWS SDK for SNS | enroll-authenticator |
//! | `aggregate` | [`save::aggregate`]: counters aggregated from the event stream | – | aggregate-events |
//! | `stream` (+ `aws`, `aggregate`) | the event stream on Kinesis ([`adapters::kinesis`]) | AWS SDK for Kinesis | save-event |
//! | `events` (+ `stream`) | [`ingest`], [`grouping`], the event saver and record ([`save`]), seeding | gzip/deflate, brotli, zstd, `regex`, `sentry-release-parser` | save-event |
//! | `testing`, `aws-model`, `fuzzing` | test support, the AWS limits model, fuzz target bodies (all of the above) | – | tests, the local CLI, `fuzz/` |
//!
//! `scripts/lambda-tooling` (in the test command) fails when a function's dependency graph holds a
//! crate of a part it does not use, or a test feature.

pub mod adapters;
#[cfg(feature = "aws-model")]
pub mod aws_model;
pub mod backends;
pub mod config;
pub mod domain;
#[cfg(any(test, feature = "aws-model"))]
pub mod doubles;
pub mod error;
#[cfg(feature = "testing")]
pub mod faults;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
#[cfg(feature = "events")]
pub mod grouping;
pub mod http;
#[cfg(feature = "events")]
pub mod ingest;
pub mod ports;
#[cfg(feature = "aggregate")]
pub mod save;
pub mod secret;
pub mod storage;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(feature = "events")]
pub mod tree;
