//! # Grouping and save-event payload functions
//!
//! Pure functions over the normalized event (`serde_json::Value` as Relay outputs it) that Sentry's
//! `EventManager.save` applies before it writes adjacent models and the eventstream
//! (`../shared/spec/sentry-save-event.md` §4–§9). Nothing here does I/O.
//!
//! - [`hashing`]: grouping hashes (checksum, fingerprints, exception / stack-trace / threads /
//!   security / message strategies, salting, fallback), written into `hashes`.
//! - [`metadata`]: event type, metadata, title, culprit, location, search message, level numbers,
//!   placeholder-title rules for group updates.
//! - [`tags`]: `set_tag` / `pop_tag` / `get_tag` and the tags the save step adds
//!   (`level`, `logger`, `environment`, `transaction`, `sentry:release`, `sentry:dist`,
//!   `sentry:user`).
//! - [`spans`]: span grouping hashes of transactions (`default:2022-10-27`).
//! - [`eventstream`]: the Kinesis record (`[2, "insert", …]`), partition key and Kafka-equivalent
//!   headers.
//! - [`parameterization`]: message normalization used by grouping.
//!
//! Typical order for an error event (Sentry's `save_error_events`):
//! `tags::apply_save_tags` → `hashing::calculate_hashes` → group assignment (storage) →
//! `metadata::materialize_metadata(..).write_into(..)` → `eventstream::insert_message`.
//! For a transaction: `tags::apply_save_tags` → `spans::calculate_span_grouping` →
//! `metadata::materialize_metadata(..).write_into(..)` → `eventstream::insert_message`.
//!
//! Modules refer to each other through `super::` so the folder can move into
//! `shared/src/grouping/` unchanged (this file becoming its `mod.rs`).

pub(crate) mod compat;
pub mod hashing;
pub mod metadata;
pub mod parameterization;
pub mod spans;
mod strategies;
pub mod tags;

#[cfg(test)]
mod tests;
