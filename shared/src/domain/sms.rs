//! The SMS interface (Sentry's `SmsInterface`): phone numbers as E.164, the enrollment text, and the
//! per-number send limit. The code in the text is TOTP with a 45 s step ([`super::otp::Totp::sms`]),
//! checked ±1 step, over a key the client never sees: [`code_key`] derives it from a server-only key
//! issued with the pending secret and the number the code goes to. (Sentry uses the client-held secret,
//! so a client can compute the texted code without owning the phone; and a code texted to one number
//! cannot enroll another here.)

use crate::secret::Secret;
use rlibphonenumber::{PHONE_NUMBER_UTIL, PhoneNumber, PhoneNumberFormat, PhoneNumberType, Region};

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

/// A number libphonenumber accepts as valid, parsed with default region US (as Sentry's
/// `phone_number_as_e164`).
fn parse_valid(raw: &str) -> Result<PhoneNumber, InvalidPhoneNumber> {
    let raw = raw.trim();
    // Counted in characters: a number typed in full-width digits takes three bytes a digit.
    if raw.is_empty() || raw.chars().count() > 32 {
        return Err(InvalidPhoneNumber);
    }
    let number = PHONE_NUMBER_UTIL.parse(raw, Some(Region::US)).map_err(|_| InvalidPhoneNumber)?;
    if !number.is_valid() {
        return Err(InvalidPhoneNumber);
    }
    Ok(number)
}

/// `phone_number_as_e164`: parse with default region US; the number must be valid (which implies
/// possible); the E.164 form (`+12345678900`).
pub fn phone_number_as_e164(raw: &str) -> Result<String, InvalidPhoneNumber> {
    parse_valid(raw).map(|number| number.format_as(PhoneNumberFormat::E164).into_owned())
}

/// A valid number's E.164 form, its region (ISO 3166 alpha-2, `001` for non-geographic numbers,
/// empty when no region has it) and its type, by libphonenumber's metadata.
fn classify(raw: &str) -> Result<(String, String, PhoneNumberType), InvalidPhoneNumber> {
    let number = parse_valid(raw)?;
    let region = number.get_region_code().map(|r| r.as_region_str().to_string()).unwrap_or_default();
    Ok((number.format_as(PhoneNumberFormat::E164).into_owned(), region, number.get_type()))
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
    let (e164, country, kind) = classify(raw).map_err(|_| Refusal::Invalid)?;
    if !allowed.allows(&country) {
        return Err(Refusal::Country);
    }
    match kind {
        PhoneNumberType::Mobile
        | PhoneNumberType::FixedLineOrMobile
        | PhoneNumberType::FixedLine
        | PhoneNumberType::VoIP => Ok(e164),
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

    /// Fidelity to the library Sentry calls: Python's `phonenumbers` (Google's libphonenumber) judges
    /// 20,000 generated numbers — international with 60 country codes (non-geographic ones among
    /// them) and national with default region US, some in full-width digits, some written with
    /// separators and an extension — and we must agree on validity, the E.164 form, the
    /// region and the number type (which decides SMS pumping refusals) for at least 99.9 % of them,
    /// with at least 1,000 valid numbers among them. The metadata releases may differ by a version.
    /// Runs when `PHONENUMBERS_PYTHON` names a Python with `phonenumbers` (the test command installs
    /// it; mandatory in CI).
    #[test]
    fn agrees_with_pythons_phonenumbers() {
        let Some(python) =
            crate::testing::required_tool("PHONENUMBERS_PYTHON", "agrees_with_pythons_phonenumbers")
        else {
            return;
        };
        const CODES: [u32; 60] = [
            1, 7, 20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49, 51, 52, 54, 55, 56,
            57, 58, 60, 61, 62, 63, 64, 65, 66, 81, 82, 84, 86, 90, 91, 212, 232, 234, 351, 353, 358, 359,
            371, 380, 381, 385, 420, 502, 800, 808, 852, 870, 882, 886, 979,
        ];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let numbers: Vec<String> = (0..20_000)
            .map(|i| {
                let mut s = String::new();
                if i % 3 != 0 {
                    s.push_str(&format!("+{}", CODES[(next() % CODES.len() as u64) as usize]));
                }
                for _ in 0..6 + next() % 8 {
                    s.push(char::from(b'0' + (next() % 10) as u8));
                }
                match i % 10 {
                    // Full-width digits (typed with a Japanese or Chinese input method).
                    5 => s
                        .chars()
                        .map(|c| c.to_digit(10).and_then(|d| char::from_u32(0xFF10 + d)).unwrap_or(c))
                        .collect(),
                    // Written with separators and an extension.
                    7 => format!("({}) {}-{} ext. 12", &s[..3], &s[3..6], &s[6..]),
                    _ => s,
                }
            })
            .collect();
        let script = "import sys, phonenumbers as p\n\
            names = {v: k for k, v in vars(p.PhoneNumberType).items() if k.isupper()}\n\
            for s in sys.stdin.buffer.read().decode('utf-8').split('\\n'):\n\
            \x20   try:\n\
            \x20       n = p.parse(s, 'US')\n\
            \x20   except p.NumberParseException:\n\
            \x20       print('-'); continue\n\
            \x20   if not p.is_valid_number(n): print('-'); continue\n\
            \x20   print('\\t'.join([p.format_number(n, p.PhoneNumberFormat.E164), p.region_code_for_number(n) or '', names[p.number_type(n)].lower().replace('_', '')]))\n";
        let mut child = std::process::Command::new(python)
            .args(["-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run python");
        {
            // A Python that fails (no `phonenumbers`) may exit before reading: its status and stderr
            // below say why, not a broken pipe here.
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            let _ = stdin.write_all(numbers.join("\n").as_bytes());
        }
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let theirs: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
        assert_eq!(theirs.len(), numbers.len());
        let (mut valid, mut differ) = (0, Vec::new());
        for (number, theirs) in numbers.iter().zip(theirs) {
            let ours = match classify(number) {
                Ok((e164, region, kind)) => {
                    format!("{e164}\t{region}\t{}", format!("{kind:?}").to_lowercase())
                }
                Err(InvalidPhoneNumber) => "-".to_owned(),
            };
            valid += usize::from(theirs != "-");
            if ours != theirs {
                differ.push(format!("{number}: ours {ours:?}, phonenumbers {theirs:?}"));
            }
        }
        assert!(valid >= 1_000, "only {valid} valid numbers: the sample tests too little");
        assert!(
            differ.len() * 1_000 <= numbers.len(),
            "{} of {} numbers judged differently ({valid} valid):\n{}",
            differ.len(),
            numbers.len(),
            differ.join("\n")
        );
    }

    /// Every region's and every non-geographic entity's example number, of every type its metadata
    /// has, is valid and classified as that type (a fixed-line or mobile example may be "fixed line or
    /// mobile" where the two ranges overlap, as libphonenumber's own example-number test allows). This
    /// runs each region's patterns through the `regex-lite` build, which compiles them on first use
    /// and would panic on one it cannot compile.
    #[test]
    fn every_regions_example_numbers_classify() {
        use rlibphonenumber::PhoneNumberType as T;
        let util = &*PHONE_NUMBER_UTIL;
        let mut examples = Vec::new();
        for region in util.get_supported_regions() {
            for kind in util.get_supported_types_for_region(region).unwrap_or_default() {
                if let Ok(number) = util.get_example_number_for_type_and_region(region, kind) {
                    examples.push((region.as_region_str().to_string(), kind, number));
                }
            }
        }
        let regions = examples.len();
        for code in util.get_supported_global_network_calling_codes() {
            if let Ok(number) = util.get_example_number_for_non_geo_entity(code) {
                examples.push((format!("+{code}"), number.get_type(), number));
            }
        }
        let mut wrong = Vec::new();
        for (place, kind, number) in &examples {
            let e164 = number.format_as(PhoneNumberFormat::E164).into_owned();
            match classify(&e164) {
                Ok((ours, _, got))
                    if ours == e164
                        && (got == *kind
                            || (matches!(kind, T::FixedLine | T::Mobile) && got == T::FixedLineOrMobile)) => {
                }
                other => wrong.push(format!("{place} {kind:?} {e164}: {other:?}")),
            }
        }
        assert!(
            regions > 1_000 && examples.len() > regions,
            "{regions} region examples, {} in all",
            examples.len()
        );
        assert!(wrong.is_empty(), "{} of {} examples:\n{}", wrong.len(), examples.len(), wrong.join("\n"));
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
