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
//! - [`parameterization`]: message normalization used by grouping.
//! - [`enhancers`]: stack-trace rules (the built-in set of `newstyle:2023-01-11` and project rules):
//!   in-app, categories and which frames contribute.
//! - [`fingerprinting`]: server-side fingerprinting rules (a project's rules that set the fingerprint
//!   and title).
//! - [`config`]: a project's grouping configuration (both rule sets) and its per-Lambda cache.
//! - [`functions`]: native and C# function-name trimming.
//! - `frame`: a stack frame's fields, read in one pass for the stack-trace steps and the
//!   fingerprinting rules.
//!
//! The save pipeline that calls them in order lives in [`crate::save`] (`save::prepare`, then the
//! saver and `save::record::insert_message` for the eventstream record).

pub(crate) mod compat;
pub mod config;
mod cursor;
pub mod enhancers;
pub mod fingerprinting;
mod frame;
pub mod functions;
mod glob;
pub mod hashing;
pub mod metadata;
pub mod parameterization;
pub mod spans;
mod strategies;
pub mod tags;

#[cfg(test)]
mod tests;

/// Every built-in regular expression of grouping, by name, and whether it compiled. Each is built on
/// first use and is `None` if it does not compile — with a `regex` build that lacks a Unicode table
/// the pattern needs (the workspace builds `regex` with `unicode-perl` and `unicode-case` only, and
/// so do the tests while no other crate asks for more). `save-event` checks them on its own build:
/// `POSTFLOW_CHECK_PATTERNS=1 bootstrap` (run by `scripts/lambda-tooling` on what `sam build` made).
pub fn builtin_patterns() -> Vec<(&'static str, bool)> {
    let mut all = Vec::new();
    all.extend(functions::builtin_patterns());
    all.extend(parameterization::builtin_patterns());
    all.extend(spans::builtin_patterns());
    all.extend(strategies::builtin_patterns());
    all.push(("enhancers::NEWSTYLE_2023_01_11 (built-in rules)", enhancers::builtin_rules_parse()));
    all
}

#[cfg(test)]
#[test]
fn every_builtin_pattern_compiles() {
    let all = builtin_patterns();
    assert_eq!(all.len(), 15);
    assert!(all.iter().all(|(_, ok)| *ok), "{all:?}");
}
