//! The SMS interface (Sentry's `SmsInterface`): phone numbers as E.164, the enrollment text, and the
//! per-number send limit. The code in the text is TOTP with a 45 s step ([`super::otp::Totp::sms`]),
//! checked ±1 step, over a key the client never sees: [`code_key`] derives it from a server-only key
//! issued with the pending secret and the number the code goes to. (Sentry uses the client-held secret,
//! so a client can compute the texted code without owning the phone; and a code texted to one number
//! cannot enroll another here.)

use crate::secret::Secret;

// The SMS settings are configuration: they live in `config` (compiled into every function), the
// numbers are checked here.
pub use crate::config::{AllowedCountries, DEFAULT_ALLOWED_COUNTRIES, DEFAULT_DAILY_CAP};

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

/// The account-wide daily counter's rate-limit key.
pub const DAILY_CAP_KEY: &str = "sms:account:daily";

/// Why a number is refused before anything is texted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("invalid phone number")]
    Invalid,
    /// A country outside `SMS_ALLOWED_COUNTRIES`.
    #[error("texts are not sent to this country")]
    Country,
    /// Premium-rate, shared-cost and other number types that cannot receive texts or that SMS pumping
    /// uses (personal numbers, UAN, pagers, voicemail access, short codes, emergency, toll-free, and
    /// numbers whose type the metadata does not know).
    #[error("this number type cannot receive texts")]
    NumberType,
}

impl Refusal {
    /// The message of Sentry's form error on `phone` (`{"phone": [message]}`).
    pub fn message(&self) -> &'static str {
        match self {
            Self::Invalid => "Enter a valid phone number.",
            Self::Country => "Text messages cannot be sent to this country.",
            Self::NumberType => "This phone number cannot receive text messages.",
        }
    }
}

/// The E.164 form of a number that may be texted: valid ([`phone_number_as_e164`]), in an allowed
/// country, and of a type that receives texts at a normal price (mobile, fixed line or mobile, fixed
/// line, VoIP).
pub fn textable_e164(raw: &str, allowed: &AllowedCountries) -> Result<String, Refusal> {
    use phonenumber::Type;
    let e164 = phone_number_as_e164(raw).map_err(|_| Refusal::Invalid)?;
    let number = phonenumber::parse(None, &e164).map_err(|_| Refusal::Invalid)?;
    let country = number.country().id().map(|id| format!("{id:?}")).unwrap_or_default();
    if !allowed.allows(&country) {
        return Err(Refusal::Country);
    }
    match number.number_type(&phonenumber::metadata::DATABASE) {
        Type::Mobile | Type::FixedLineOrMobile | Type::FixedLine | Type::Voip => Ok(e164),
        _ => Err(Refusal::NumberType),
    }
}

/// The enrollment text, verbatim from Sentry (`send_text(for_enrollment=True, request=…)` appends a
/// newline when a request is given, which is always the case here).
pub fn enrollment_text(code: &str) -> Secret {
    Secret::new(format!(
        "{code} is your Sentry two-factor enrollment code. You are about to set up text message based two-factor authentication.\n"
    ))
}

/// The TOTP key of an SMS enrollment: HMAC-SHA256(server key, E.164 number), first 20 bytes, as a
/// base32 secret. It becomes the enrolled authenticator's secret.
pub fn code_key(server_key: &Secret, e164: &str) -> Secret {
    use hmac::{Hmac, Mac};
    let mut mac = match Hmac::<sha2::Sha256>::new_from_slice(server_key.expose().as_bytes()) {
        Ok(m) => m,
        // HMAC accepts keys of any length; this arm cannot be taken.
        Err(_) => return Secret::new(String::new()),
    };
    mac.update(e164.as_bytes());
    let digest = mac.finalize().into_bytes();
    Secret::new(data_encoding::BASE32_NOPAD.encode(&digest[..20]))
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

    /// SMS pumping: premium-rate and other high-cost ranges, and countries outside the allow-list,
    /// are refused before anything is texted.
    #[test]
    fn textable_numbers() {
        let default = AllowedCountries::parse(DEFAULT_ALLOWED_COUNTRIES).unwrap();
        assert_eq!(textable_e164("2345678900", &default).unwrap(), "+12345678900");
        assert_eq!(textable_e164("+44 7400 123456", &default).unwrap(), "+447400123456", "UK mobile");
        assert_eq!(textable_e164("+44 20 7946 0958", &default).unwrap(), "+442079460958", "UK fixed line");
        for premium in
            ["+1 900 555 0123", "+1 900 234 5678", "+44 909 879 0000", "+44 871 234 5678", "+49 900 1234567"]
        {
            assert_eq!(textable_e164(premium, &default), Err(Refusal::NumberType), "{premium}");
        }
        assert_eq!(textable_e164("+1 800 234 5678", &default), Err(Refusal::NumberType), "toll-free");
        assert_eq!(
            textable_e164("+44 70 1234 5678", &default),
            Err(Refusal::NumberType),
            "UK personal number"
        );
        // Countries outside the list (a valid mobile in Latvia, in Sierra Leone); allowed with `*`.
        for far in ["+371 2123 4567", "+232 25 123456"] {
            assert_eq!(textable_e164(far, &default), Err(Refusal::Country), "{far}");
            assert!(textable_e164(far, &AllowedCountries::All).is_ok(), "{far}");
        }
        assert_eq!(textable_e164("1231234", &default), Err(Refusal::Invalid));
        assert_eq!(AllowedCountries::parse("us, gb"), AllowedCountries::parse("GB,US"));
        for bad in ["", "USA", "U1", ",", "US;GB"] {
            assert_eq!(AllowedCountries::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Refusal::NumberType.message(), "This phone number cannot receive text messages.");
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
    fn code_keys_depend_on_the_server_key_and_the_number() {
        let k = Secret::new("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP");
        let a = code_key(&k, "+12345678900");
        assert_eq!(a.expose().len(), 32);
        assert!(super::super::otp::Totp::sms(&a).is_some(), "a usable base32 TOTP secret");
        assert_eq!(a, code_key(&k, "+12345678900"), "deterministic");
        assert_ne!(a, code_key(&k, "+12345678901"), "another number, another key");
        assert_ne!(a, code_key(&Secret::new("KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU"), "+12345678900"));
    }

    #[test]
    fn limit_key_hides_the_number() {
        let k = rate_limit_key("+12345678900");
        assert!(k.starts_with("sms:") && k.len() == 36 && !k.contains("2345678900"));
    }
}
