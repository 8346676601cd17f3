//! Lambda entry point: configuration, logging and SDK clients once per cold start; then the handler.

use std::sync::Arc;

use accept_invite::AcceptInvite;
use shared::adapters::aws::{DynamoRateLimiter, dynamodb_client, lambda_sdk_config};
use shared::adapters::dynamo_table::DynamoTable;
use shared::backends::Backends;
use shared::config::{Config, Requirements};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let config = Config::from_env(Requirements { stream: false, invite_cookie_key: true })?;
    // DynamoDB only: the Kinesis client is not built (nor linked into this binary).
    let dynamodb = dynamodb_client(&lambda_sdk_config()?, None);
    let backends = Backends::new(
        Arc::new(DynamoTable::new(dynamodb.clone(), &config.table_name)),
        Arc::new(DynamoRateLimiter::new(dynamodb, &config.table_name)),
    );
    let handler = Arc::new(AcceptInvite::build(Arc::new(config), &backends));
    shared::http::run(handler).await
}
