//! The save pipeline of save-event, written once and used by the Lambda, the local CLI and the
//! benchmarks:
//!
//! 1. [`prepare`]: grouping, save tags and metadata of a normalized event → a [`SaveJob`] and the
//!    event as it will be stored and streamed (CPU only);
//! 2. [`saver`]: the table side — the de-duplication marker and the group decisions, with no write to
//!    a row that other events share (see its docs for the protocol and the round trips);
//! 3. [`record`]: the eventstream record (`[2, "insert", …]`) and its partition key;
//! 4. [`Pipeline::save_one`]: save, publish, and release the lease on a failed publish;
//! 5. [`aggregate`]: counters, `first_seen`/`last_seen` and short ids, aggregated from the stream per
//!    shard batch (the `aggregate-events` function; in-process locally).

pub mod aggregate;
pub mod common;
#[cfg(feature = "events")]
mod pipeline;
#[cfg(feature = "events")]
mod pyjson;
#[cfg(feature = "events")]
pub mod record;
#[cfg(feature = "events")]
pub mod saver;

#[cfg(feature = "events")]
pub use pipeline::*;
#[cfg(feature = "events")]
pub use saver::{Begin, EventSaver, GroupValues, Prefetch, SaveJob, SaveKind, SaveResult};
