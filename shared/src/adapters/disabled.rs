//! The SMS sender of a deployment without texts (`SMS_SENDER` unset): the `sms` interface is then
//! unavailable and no request reaches a send, but should one, it is refused — nothing is delivered and
//! nothing is kept (unlike the local CLI's outbox, which keeps what it "sends" for the developer).

use async_trait::async_trait;

use crate::error::StoreError;
use crate::ports::{SmsSender, TextMessage};

/// Refuses every text.
#[derive(Clone, Copy, Debug, Default)]
pub struct DisabledSms;

#[async_trait]
impl SmsSender for DisabledSms {
    async fn send(&self, _message: &TextMessage) -> Result<(), StoreError> {
        Err(StoreError::Rejected("SMS delivery is not configured (SMS_SENDER)".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_every_text() {
        let msg =
            TextMessage { to_e164: "+14155550100".into(), text: crate::secret::Secret::new("code 123456") };
        assert!(matches!(DisabledSms.send(&msg).await, Err(StoreError::Rejected(_))));
    }
}
