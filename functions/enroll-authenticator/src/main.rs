//! Lambda entry point: configuration, logging and SDK clients once per cold start; then the handler.

use std::sync::Arc;

use enroll_authenticator::EnrollAuthenticator;
use shared::adapters::aws::{DynamoRateLimiter, dynamodb_client, lambda_sdk_config};
use shared::adapters::disabled::DisabledSms;
use shared::adapters::dynamo_table::DynamoTable;
use shared::adapters::memory::MemorySmsOutbox;
use shared::adapters::sns::{SnsSmsSender, sns_client};
use shared::backends::Backends;
use shared::config::{Config, Requirements, SmsDelivery};
use shared::ports::SmsSender;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let config = Config::from_env(Requirements { stream: false, invite_cookie_key: true })?;
    // DynamoDB (+ SNS when texts are enabled): the Kinesis client is not built (nor linked in).
    let sdk = lambda_sdk_config()?;
    let dynamodb = dynamodb_client(&sdk, None);
    let backends = Backends::new(
        Arc::new(DynamoTable::new(dynamodb.clone(), &config.table_name)),
        Arc::new(DynamoRateLimiter::new(dynamodb, &config.table_name)),
    );
    let sms: Arc<dyn SmsSender> = match config.sms_sender {
        Some(SmsDelivery::Sns) => {
            if config.sms_allowed_countries == shared::domain::sms::AllowedCountries::All {
                tracing::warn!(
                    "SMS_ALLOWED_COUNTRIES is `*`: texts may go to every country (SMS pumping risk)"
                );
            }
            Arc::new(
                SnsSmsSender::new(sns_client(&sdk, None), config.sms_sender_id.clone())
                    .with_max_price(config.sms_max_price.clone()),
            )
        }
        // The local outbox (`SMS_SENDER=outbox`): texts are kept in memory, never delivered.
        Some(SmsDelivery::Outbox) => Arc::new(MemorySmsOutbox::default()),
        // No texts: the sms interface is unavailable, and a send would be refused.
        None => Arc::new(DisabledSms),
    };
    let handler = Arc::new(EnrollAuthenticator::build(Arc::new(config), &backends, sms)?);
    shared::http::run(handler).await
}
