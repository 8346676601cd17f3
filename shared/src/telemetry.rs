//! Logging: JSON lines on stdout (what CloudWatch and Lambda's JSON log format expect), level from
//! `AWS_LAMBDA_LOG_LEVEL` (set by Lambda's advanced logging controls) or `RUST_LOG`, default `info`.
//!
//! The filter is tracing-subscriber's [`Targets`]: a default level and `target=level` directives, the
//! longest matching target winning (what `RUST_LOG` is used for here). `EnvFilter`'s span and field
//! filters are not supported: they link a regex engine into every function (~0.3 MB of the smallest
//! binary) for a syntax nobody sets on a Lambda. A directive that does not parse falls back to `info`.
//!
//! `lambda_http`/`lambda_runtime` open a span per invocation carrying `requestId`; the JSON formatter
//! includes the current span's fields on every line, so each log line names its request.

use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Targets whose TRACE/DEBUG output carries request or response payloads — the raw Lambda event (invite
/// tokens in paths, OTPs and secrets in bodies, cookies, DSN keys) or DynamoDB/Kinesis HTTP bodies
/// (pending secrets, recovery salts). They are capped whatever level is asked for, so no log level can
/// leak a secret.
pub const PAYLOAD_CAPS: &[&str] = &[
    "lambda_runtime::layers::api_response=info",
    "lambda_runtime=debug",
    "aws_smithy_runtime=info",
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

/// The filter of a directive from [`filter_directive`]; one that does not parse is `info` with the caps.
pub fn filter(directive: &str) -> Targets {
    directive.parse().unwrap_or_else(|_| {
        filter_directive(None, None)
            .parse()
            .unwrap_or_else(|_| Targets::new().with_default(tracing::Level::INFO))
    })
}

/// The JSON lines layer every function logs through, writing to `writer` (stdout in [`init`]).
pub fn json_layer<S, W>(writer: W) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_writer(writer)
}

/// Installs the global JSON subscriber. Safe to call more than once (later calls are ignored).
pub fn init() {
    let directive =
        filter_directive(std::env::var("AWS_LAMBDA_LOG_LEVEL").ok(), std::env::var("RUST_LOG").ok());
    let _ = tracing_subscriber::registry()
        .with(json_layer(std::io::stdout).with_filter(filter(&directive)))
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
        use tracing::Level;
        let f = filter(&filter_directive(Some("TRACE".into()), None));
        assert!(!f.would_enable("lambda_runtime::layers::api_response", &Level::DEBUG));
        assert!(f.would_enable("lambda_runtime::layers::api_response", &Level::INFO));
        assert!(!f.would_enable("lambda_runtime", &Level::TRACE));
        assert!(!f.would_enable("aws_smithy_runtime::client::orchestrator", &Level::DEBUG));
        assert!(!f.would_enable("hyper_util::client", &Level::TRACE));
        assert!(f.would_enable("shared::save", &Level::TRACE), "our own code still logs at trace");
        assert!(f.would_enable("save_event", &Level::TRACE));
    }

    /// A directive for one target of ours; the caps still apply; nonsense falls back to `info`.
    #[test]
    fn directives_parse_or_fall_back_to_info() {
        use tracing::Level;
        let f = filter(&filter_directive(None, Some("warn,shared=debug".into())));
        assert!(f.would_enable("shared::ingest", &Level::DEBUG));
        assert!(!f.would_enable("save_event", &Level::INFO));
        assert!(f.would_enable("save_event", &Level::WARN));
        let f = filter(&filter_directive(None, Some("shared[span{x=1}]=debug".into())));
        assert!(f.would_enable("save_event", &Level::INFO));
        assert!(!f.would_enable("save_event", &Level::DEBUG));
        assert!(!f.would_enable("aws_smithy_runtime", &Level::DEBUG));
    }
}
