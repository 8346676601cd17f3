//! Amazon SNS adapter of [`SmsSender`]: one `Publish` to a phone number per text, marked
//! `Transactional` (SNS's class for one-time codes: higher delivery priority than promotional).
//!
//! `AWS_ENDPOINT_URL_SNS` points the client at a local emulator (ministack serves SNS and records
//! texts at `/_ministack/sns/sms-messages`; the contract test reads them there).

use async_trait::async_trait;
use aws_sdk_sns::types::MessageAttributeValue;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::error::StoreError;
use crate::ports::{SmsSender, TextMessage};

/// An SNS client for the shared SDK configuration.
pub fn sns_client(
    sdk: &aws_config::SdkConfig,
    recorder: Option<super::aws::CallRecorder>,
) -> aws_sdk_sns::Client {
    let mut b = aws_sdk_sns::config::Builder::from(sdk);
    if let Some(r) = recorder {
        b = b.interceptor(r);
    }
    aws_sdk_sns::Client::from_conf(b.build())
}

#[derive(Clone, Debug)]
pub struct SnsSmsSender {
    client: aws_sdk_sns::Client,
    sender_id: Option<String>,
    max_price: Option<String>,
}

impl SnsSmsSender {
    /// `sender_id`: the alphanumeric sender id shown where carriers support it (e.g. "Sentry").
    pub fn new(client: aws_sdk_sns::Client, sender_id: Option<String>) -> Self {
        Self { client, sender_id, max_price: None }
    }

    /// `AWS.SNS.SMS.MaxPrice` (USD): SNS does not send a text that would cost more.
    pub fn with_max_price(mut self, max_price: Option<String>) -> Self {
        self.max_price = max_price;
        self
    }
}

fn string_attr(value: &str) -> Result<MessageAttributeValue, StoreError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| StoreError::Rejected(format!("SNS message attribute: {e}")))
}

#[async_trait]
impl SmsSender for SnsSmsSender {
    async fn send(&self, message: &TextMessage) -> Result<(), StoreError> {
        let mut req = self
            .client
            .publish()
            .phone_number(&message.to_e164)
            .message(message.text.expose())
            .message_attributes("AWS.SNS.SMS.SMSType", string_attr("Transactional")?);
        if let Some(id) = &self.sender_id {
            req = req.message_attributes("AWS.SNS.SMS.SenderID", string_attr(id)?);
        }
        if let Some(price) = &self.max_price {
            req = req.message_attributes("AWS.SNS.SMS.MaxPrice", string_attr(price)?);
        }
        match req.send().await {
            Ok(_) => Ok(()),
            // Only the error code and kind: the request (and so the code in the text) is never echoed.
            Err(err) => {
                let retryable = matches!(
                    err,
                    SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
                ) || err.raw_response().is_some_and(|r| r.status().is_server_error());
                let message = err.code().unwrap_or("no error code").to_owned();
                Err(if retryable {
                    StoreError::Unavailable { service: "sns", message }
                } else {
                    StoreError::Other { service: "sns", message }
                })
            }
        }
    }
}
