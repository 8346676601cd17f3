//! Lambda entry point: configuration, logging and SDK clients once per cold start; then the handler.

use std::sync::Arc;

use accept_invite::AcceptInvite;
use shared::adapters::aws::{dynamodb_client, sdk_config};
use shared::adapters::dynamo_table::DynamoTable;
use shared::config::{Config, Requirements};
use shared::ports::{OsRandom, SystemClock};
use shared::storage::orgs::TableInviteStore;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let config = Config::from_env(Requirements { stream: false, invite_cookie_key: true })?;
    // DynamoDB only: the Kinesis client is not built (nor linked into this binary).
    let dynamodb = dynamodb_client(&sdk_config().await, None);
    let table = Arc::new(DynamoTable::new(dynamodb, &config.table_name));
    let handler = Arc::new(AcceptInvite {
        store: Arc::new(TableInviteStore::new(table)),
        clock: Arc::new(SystemClock),
        random: Arc::new(OsRandom),
        config: Arc::new(config),
    });
    shared::http::run(handler).await
}
