//! Logging: JSON lines on stdout (what CloudWatch and Lambda's JSON log format expect), level from
//! `AWS_LAMBDA_LOG_LEVEL` (set by Lambda's advanced logging controls) or `RUST_LOG`, default `info`.
//!
//! `lambda_http`/`lambda_runtime` open a span per invocation carrying `requestId`; the JSON formatter
//! includes the current span's fields on every line, so each log line names its request.

use tracing_subscriber::EnvFilter;

/// Targets whose TRACE/DEBUG output carries request or response payloads — the raw Lambda event (invite
/// tokens in paths, OTPs and secrets in bodies, cookies, DSN keys) or DynamoDB/Kinesis HTTP bodies
/// (pending secrets, recovery salts). They are capped whatever level is asked for, so no log level can
/// leak a secret.
pub const PAYLOAD_CAPS: &[&str] = &[
    "lambda_runtime::layers::api_response=info",
    "lambda_runtime=debug",
    "aws_smithy_runtime=info",
    "aws_smithy_http_client=info",
    "aws_smithy_runtime_api=info",
    "hyper=info",
    "hyper_util=info",
    "h2=info",
    "rustls=info",
];

/// The filter directive: `AWS_LAMBDA_LOG_LEVEL` wins (Lambda sets it from `LoggingConfig`), then `RUST_LOG`,
/// followed by the [`PAYLOAD_CAPS`].
pub fn filter_directive(lambda_level: Option<String>, rust_log: Option<String>) -> String {
    let base = lambda_level
        .map(|l| l.to_ascii_lowercase())
        .filter(|l| !l.trim().is_empty())
        .or(rust_log.filter(|l| !l.trim().is_empty()))
        .unwrap_or_else(|| "info".into());
    let mut d = base;
    for cap in PAYLOAD_CAPS {
        d.push(',');
        d.push_str(cap);
    }
    d
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
        assert!(filter_directive(Some("DEBUG".into()), Some("warn".into())).starts_with("debug,"));
        assert!(filter_directive(None, Some("shared=trace".into())).starts_with("shared=trace,"));
        assert!(filter_directive(Some(" ".into()), None).starts_with("info,"));
        assert!(filter_directive(None, None).starts_with("info,"));
    }

    /// Even at TRACE, the raw-event line of lambda_runtime and the SDK's HTTP payload logs are off.
    #[test]
    fn payload_targets_are_capped_at_every_level() {
        use tracing_subscriber::filter::LevelFilter;
        let f = EnvFilter::try_new(filter_directive(Some("TRACE".into()), None)).unwrap();
        let rendered = f.to_string();
        assert!(rendered.contains("lambda_runtime::layers::api_response=info"), "{rendered}");
        assert!(rendered.contains("aws_smithy_runtime=info"), "{rendered}");
        assert_eq!(f.max_level_hint(), Some(LevelFilter::TRACE), "our own code still logs at trace");
    }
}
