//! Logging: JSON lines on stdout (what CloudWatch and Lambda's JSON log format expect), level from
//! `AWS_LAMBDA_LOG_LEVEL` (set by Lambda's advanced logging controls) or `RUST_LOG`, default `info`.
//!
//! `lambda_http`/`lambda_runtime` open a span per invocation carrying `requestId`; the JSON formatter
//! includes the current span's fields on every line, so each log line names its request.

use tracing_subscriber::EnvFilter;

/// The filter directive: `AWS_LAMBDA_LOG_LEVEL` wins (Lambda sets it from `LoggingConfig`), then `RUST_LOG`.
pub fn filter_directive(lambda_level: Option<String>, rust_log: Option<String>) -> String {
    lambda_level
        .map(|l| l.to_ascii_lowercase())
        .filter(|l| !l.trim().is_empty())
        .or(rust_log.filter(|l| !l.trim().is_empty()))
        .unwrap_or_else(|| "info".into())
}

/// Installs the global JSON subscriber. Safe to call more than once (later calls are ignored).
pub fn init() {
    let directive =
        filter_directive(std::env::var("AWS_LAMBDA_LOG_LEVEL").ok(), std::env::var("RUST_LOG").ok());
    let filter = EnvFilter::try_new(&directive).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_level_wins_over_rust_log() {
        assert_eq!(filter_directive(Some("DEBUG".into()), Some("warn".into())), "debug");
        assert_eq!(filter_directive(None, Some("shared=trace".into())), "shared=trace");
        assert_eq!(filter_directive(Some(" ".into()), None), "info");
        assert_eq!(filter_directive(None, None), "info");
    }
}
