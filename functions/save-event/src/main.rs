//! Lambda entry point: configuration, logging and SDK clients once per cold start; then the handler.

use std::sync::Arc;

use save_event::SaveEvent;
use shared::adapters::aws::{AwsClients, DynamoRateLimiter, kinesis_stream, lambda_sdk_config};
use shared::adapters::dynamo_table::DynamoTable;
use shared::backends::Backends;
use shared::config::{Config, Requirements};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    // A build check, not a Lambda path: every built-in pattern compiles with this binary's `regex`.
    if std::env::var_os("POSTFLOW_CHECK_PATTERNS").is_some() {
        let all = shared::grouping::builtin_patterns();
        let failed: Vec<&str> = all.iter().filter(|(_, ok)| !ok).map(|(name, _)| *name).collect();
        println!("{} built-in patterns, {} failed to compile: {failed:?}", all.len(), failed.len());
        return if failed.is_empty() { Ok(()) } else { Err(format!("patterns failed: {failed:?}").into()) };
    }
    shared::telemetry::init();
    let config = Config::from_env(Requirements { stream: true, invite_cookie_key: false })?;
    let clients = AwsClients::new(&lambda_sdk_config()?, None);
    let backends = Backends::new(
        Arc::new(DynamoTable::new(clients.dynamodb.clone(), &config.table_name)),
        Arc::new(DynamoRateLimiter::new(clients.dynamodb, &config.table_name)),
    );
    let stream_name = config.stream_name.clone().unwrap_or_default();
    let stream = Arc::new(kinesis_stream(clients.kinesis, &stream_name, config.stream_max_attempts));
    let handler = Arc::new(SaveEvent::build(Arc::new(config), &backends, stream));
    shared::http::run(handler).await
}
