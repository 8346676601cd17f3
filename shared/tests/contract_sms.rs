//! Contract test for the SMS sender port: the in-memory outbox always, and the Amazon SNS adapter
//! against ministack's SNS when the emulators are up (mandatory in CI). ministack records every
//! direct-to-phone `Publish` at `/_ministack/sns/sms-messages`; the test reads the message back there.
//! A failing SNS (unreachable endpoint) is an error that never carries the text.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use shared::adapters::memory::MemorySmsOutbox;
use shared::adapters::sns::{SnsSmsSender, sns_client};
use shared::ports::{SmsSender, TextMessage};
use shared::secret::Secret;

fn message(to: &str, code: &str) -> TextMessage {
    TextMessage { to_e164: to.into(), text: shared::domain::sms::enrollment_text(code) }
}

#[tokio::test]
async fn outbox_keeps_messages_and_injects_failures() {
    let outbox = MemorySmsOutbox::default();
    outbox.send(&message("+12345678900", "123456")).await.unwrap();
    outbox.fail_next(1);
    let err = outbox.send(&message("+12345678900", "654321")).await.unwrap_err();
    assert!(!format!("{err} {err:?}").contains("654321"));
    outbox.send(&message("+12345678901", "111111")).await.unwrap();
    assert_eq!(outbox.sent().len(), 2);
    assert_eq!(outbox.sent_to("+12345678900").len(), 1);
    assert!(format!("{:?}", outbox.sent()).contains("redacted"), "texts are secrets in Debug output");
}

/// GET on ministack's SMS log.
async fn ministack_sms_log(endpoint: &str, phone: &str) -> serde_json::Value {
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let path = format!("/_ministack/sns/sms-messages?phoneNumber={}", phone.replace('+', "%2B"));
    let (status, body) = shared::testing::http_request(host, "GET", &path, &[], "").await.unwrap();
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn sns_publishes_to_the_phone_number() {
    if !shared::testing::emulators_configured("sns_publishes_to_the_phone_number") {
        return;
    }
    let endpoint = std::env::var("AWS_ENDPOINT_URL_SNS").expect("AWS_ENDPOINT_URL_SNS with the emulators");
    let sdk = shared::adapters::aws::sdk_config().await;
    let sender = SnsSmsSender::new(sns_client(&sdk, None), Some("Postflow".into()))
        .with_max_price(Some("0.25".into()));
    // A number unique to this run, so parallel or repeated runs do not see each other's texts.
    let n = std::process::id() % 10_000;
    let to = format!("+1234567{n:04}");
    sender.send(&message(&to, "246810")).await.unwrap();
    let log = ministack_sms_log(&endpoint, &to).await;
    let sent = log["sms_messages"][&to].as_array().unwrap_or_else(|| panic!("{log}"));
    let last = sent.last().unwrap();
    assert_eq!(last["PhoneNumber"], to.as_str());
    assert!(
        last["Message"].as_str().unwrap().starts_with("246810 is your Sentry two-factor enrollment code.")
    );
    assert_eq!(last["MessageAttributes"]["AWS.SNS.SMS.SMSType"]["StringValue"], "Transactional");
    // SMS pumping: SNS refuses a text that would cost more than this (USD).
    assert_eq!(last["MessageAttributes"]["AWS.SNS.SMS.MaxPrice"]["StringValue"], "0.25");
    assert_eq!(last["MessageAttributes"]["AWS.SNS.SMS.SenderID"]["StringValue"], "Postflow");
}

#[tokio::test]
async fn sns_failure_is_an_error_without_the_text() {
    // An endpoint nobody listens on: a dispatch failure, reported as retryable, without the text.
    let sdk = shared::adapters::aws::config_loader()
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sns::config::Credentials::new("test", "test", None, None, "test"))
        .endpoint_url("http://127.0.0.1:9")
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    let sender = SnsSmsSender::new(sns_client(&sdk, None), None);
    let err = sender
        .send(&TextMessage { to_e164: "+12345678900".into(), text: Secret::new("135790 secret text") })
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(!format!("{err} {err:?}").contains("135790"));
}
