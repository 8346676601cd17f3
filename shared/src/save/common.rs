//! What the event saver and the aggregation of counters both know: the marker's version and default
//! TTL, Sentry's numeric levels and its placeholder titles. Here rather than in `saver` or `grouping`,
//! which aggregate-events does not compile.

/// De-duplication window (Sentry's ingest consumer remembers event ids for one hour).
pub const DEDUPE_TTL_SECS: i64 = 3600;
/// Version of the marker written by this release (`v`).
pub const MARKER_VERSION: i64 = 2;

/// Titles Sentry uses when it has no real title (`PLACEHOLDER_EVENT_TITLES`).
pub const PLACEHOLDER_EVENT_TITLES: [&str; 4] = ["<untitled>", "<unknown>", "<unlabeled event>", "Error"];

/// Whether `title` is one of Sentry's placeholder titles.
pub fn is_placeholder_title(title: &str) -> bool {
    PLACEHOLDER_EVENT_TITLES.contains(&title)
}

/// `LOG_LEVELS_MAP`: `sample` 0, `debug` 10, `info` 20, `warning` 30, `error` 40, `fatal` 50.
/// Unknown levels (Relay never emits them) map to 40, the Group model's default.
pub fn level_num(level: &str) -> i64 {
    match level {
        "sample" => 0,
        "debug" => 10,
        "info" => 20,
        "warning" => 30,
        "fatal" => 50,
        _ => 40,
    }
}
