//! The SMS interface (Sentry's `SmsInterface`): phone numbers as E.164, the enrollment text, and the
//! per-number send limit. The code in the text is TOTP over the server-issued secret with a 45 s step
//! ([`super::otp::Totp::sms`]), checked ±1 step.

use crate::secret::Secret;

/// Sentry's `SEND_SMS_ERR` body text (500 when sending failed, 429 when the number's limit is hit).
pub const SEND_SMS_ERR: &str = "Error sending SMS";
/// `is_limited(f"sms:{md5(e164)}", limit=3, window=300)`.
pub const TEXTS_PER_NUMBER: u64 = 3;
pub const TEXT_WINDOW_SECS: u64 = 300;

/// The phone number is not a valid, possible number (libphonenumber, default region US).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid phone number")]
pub struct InvalidPhoneNumber;

/// `phone_number_as_e164`: parse with default region US; the number must be valid (which implies
/// possible); the E.164 form (`+12345678900`).
pub fn phone_number_as_e164(raw: &str) -> Result<String, InvalidPhoneNumber> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > 32 {
        return Err(InvalidPhoneNumber);
    }
    let number =
        phonenumber::parse(Some(phonenumber::country::Id::US), raw).map_err(|_| InvalidPhoneNumber)?;
    if !phonenumber::is_valid(&number) {
        return Err(InvalidPhoneNumber);
    }
    Ok(number.format().mode(phonenumber::Mode::E164).to_string())
}

/// The enrollment text, verbatim from Sentry (`send_text(for_enrollment=True, request=…)` appends a
/// newline when a request is given, which is always the case here).
pub fn enrollment_text(code: &str) -> Secret {
    Secret::new(format!(
        "{code} is your Sentry two-factor enrollment code. You are about to set up text message based two-factor authentication.\n"
    ))
}

/// The rate-limit key of a number: `sms:{md5_hex(e164)}` (the number itself is not stored in keys).
pub fn rate_limit_key(e164: &str) -> String {
    use md5::{Digest, Md5};
    format!("sms:{}", hex::encode(Md5::digest(e164.as_bytes())))
}

/// Sentry's display mask of a number (`activate`): `(***) ***-**NN` for 10 digits, else all but the
/// last two characters as `*`.
pub fn mask(phone: &str) -> String {
    let n = phone.chars().count();
    let last2: String = phone.chars().skip(n.saturating_sub(2)).collect();
    if n == 10 {
        format!("(***) ***-**{last2}")
    } else {
        format!("{}{last2}", "*".repeat(n.saturating_sub(2)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SmsInterfaceTest.test_valid_phone_number / test_invalid_phone_number.
    #[test]
    fn e164_as_sentry() {
        assert_eq!(phone_number_as_e164("2345678900").unwrap(), "+12345678900");
        assert_eq!(phone_number_as_e164("(234) 567-8900").unwrap(), "+12345678900");
        assert_eq!(phone_number_as_e164("+44 20 7946 0958").unwrap(), "+442079460958");
        for bad in ["+15555555555", "1231234", "", "   ", "abc", "+1", "12345678901234567890123456789012345"]
        {
            assert_eq!(phone_number_as_e164(bad), Err(InvalidPhoneNumber), "{bad:?}");
        }
    }

    #[test]
    fn text_and_mask_verbatim() {
        assert_eq!(
            enrollment_text("123456").expose(),
            "123456 is your Sentry two-factor enrollment code. You are about to set up text message based two-factor authentication.\n"
        );
        // SmsInterfaceTest.test_activate's mask.
        assert_eq!(mask("2345678901"), "(***) ***-**01");
        assert_eq!(mask("+12345678900"), "**********00");
    }

    #[test]
    fn limit_key_hides_the_number() {
        let k = rate_limit_key("+12345678900");
        assert!(k.starts_with("sms:") && k.len() == 36 && !k.contains("2345678900"));
    }
}
