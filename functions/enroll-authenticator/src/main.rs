//! Lambda entry point: configuration, logging and SDK clients once per cold start; then the handler.

use std::sync::Arc;

use enroll_authenticator::EnrollAuthenticator;
use shared::adapters::aws::{DynamoRateLimiter, dynamodb_client, sdk_config};
use shared::adapters::dynamo_table::DynamoTable;
use shared::config::{Config, Requirements};
use shared::ports::{OsRandom, SystemClock};
use shared::storage::enroll::TableEnrollmentStore;
use shared::storage::orgs::TableInviteStore;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let config = Config::from_env(Requirements { stream: false, invite_cookie_key: true })?;
    // DynamoDB only: the Kinesis client is not built (nor linked into this binary).
    let dynamodb = dynamodb_client(&sdk_config().await, None);
    let table = Arc::new(DynamoTable::new(dynamodb.clone(), &config.table_name));
    let handler = Arc::new(EnrollAuthenticator {
        enrollment: Arc::new(TableEnrollmentStore::new(table.clone())),
        invites: Arc::new(TableInviteStore::new(table)),
        limiter: Arc::new(DynamoRateLimiter::new(dynamodb, &config.table_name)),
        clock: Arc::new(SystemClock),
        random: Arc::new(OsRandom),
        config: Arc::new(config),
    });
    lambda_http::run(lambda_http::service_fn(move |req| {
        let handler = handler.clone();
        async move { Ok::<_, std::convert::Infallible>(handler.handle(req).await) }
    }))
    .await
}
