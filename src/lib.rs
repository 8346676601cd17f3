//! # postflow — the local CLI
//!
//! Runs the real Lambda handlers in-process, on the embedded in-memory store (default) or on DynamoDB
//! and Kinesis (`--aws`: real AWS, or the local emulators through `AWS_ENDPOINT_URL_*`).
//!
//! - [`backend`]: builds the adapters and the handlers, and routes an API Gateway event to its function
//!   (the routes of `template.yaml`).
//! - [`bench`]: `postflow bench …` (pipeline CPU, growth, cold start).
//! - [`bench_storm`]: `postflow bench storm`, an error storm on the AWS limits model.
//! - [`apigw`]: API Gateway HTTP API (payload 2.0) events in and responses out, as `sam local invoke`
//!   prints them.
//! - [`session`]: what a browser would keep between steps (cookies, the last issued TOTP secret) and
//!   the placeholders it fills into sample events (`{{totp}}`, `{{secret}}`, `{{now}}`).
//! - [`scenario`]: replaying sample events and scenario files with expectations.
//! - [`serve`]: the local API Gateway emulation (`postflow serve`).
//! - [`state`]: saving and loading the embedded store, so separate `invoke` runs share it.

pub mod apigw;
pub mod backend;
pub mod bench;
pub mod bench_limits;
pub mod bench_storm;
pub mod invariants;
pub mod scenario;
pub mod serve;
pub mod session;
pub mod state;
