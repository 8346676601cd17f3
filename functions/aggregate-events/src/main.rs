//! Lambda entry point: configuration, logging and the DynamoDB client once per cold start; then the
//! handler (a Kinesis event-source mapping invokes it).

use std::sync::Arc;

use aggregate_events::AggregateEvents;
use aws_lambda_events::event::kinesis::KinesisEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use shared::adapters::aws::{dynamodb_client, lambda_sdk_config};
use shared::adapters::dynamo_table::DynamoTable;
use shared::config::{Config, Requirements};
use shared::ports::SystemClock;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let config = Config::from_env(Requirements { stream: false, invite_cookie_key: false })?;
    // DynamoDB only: the event-source mapping reads the stream, so no Kinesis client is built or linked.
    let dynamodb = dynamodb_client(&lambda_sdk_config()?, None);
    let table = Arc::new(DynamoTable::new(dynamodb, &config.table_name));
    let handler = Arc::new(AggregateEvents::build(table, Arc::new(SystemClock)));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<KinesisEvent>| {
        let handler = handler.clone();
        async move { handler.handle(event.payload).await.map_err(lambda_runtime::Error::from) }
    }))
    .await
}
