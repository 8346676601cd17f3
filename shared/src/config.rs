//! Typed configuration, read once from the environment at cold start.
//!
//! Every function calls [`Config::from_env`] in `main.rs` and fails fast with a message naming the missing
//! or malformed variable. Tests and the local CLI build a [`Config`] with [`Config::for_local`] or from an
//! explicit lookup function ([`Config::from_lookup`]).
//!
//! | variable | required | default | meaning |
//! |---|---|---|---|
//! | `TABLE_NAME` | yes | – | the single DynamoDB table |
//! | `STREAM_NAME` | save-event only | – | the Kinesis event stream |
//! | `INVITE_COOKIE_KEY` | accept/enroll | – | HMAC key for the `postflow-invite` cookie, ≥ 32 bytes |
//! | `SUDO_WINDOW_SECS` | no | 10800 | a request is "sudo" when `now - auth_time` is within this window |
//! | `SUPERUSER_CLAIM` | no | `postflow:superuser` | JWT claim that marks a superuser (`true`/`"true"`) |
//! | `TOTP_ISSUER` | no | `Sentry` | issuer in the otpauth URI |
//! | `ENROLL_RATE_LIMIT` | no | 10 | enrollment POSTs per user and interface per window |
//! | `ENROLL_RATE_WINDOW_SECS` | no | 86400 | the window of that limit (UTC-aligned) |
//! | `DISALLOW_NEW_ENROLLMENT` | no | empty | comma-separated interface ids (`totp,sms,u2f`) |
//! | `STREAM_MAX_ATTEMPTS` | no | 5 | attempts for the failed entries of a `PutRecords` call |
//! | `EVENT_LEASE_SECS` | no | 30 | save-event's publishing lease on an event id; longer than the function timeout |
//! | `EVENT_DEDUPE_SECS` | no | 3600 | how long an event id is remembered (the marker's TTL; never below the lease) |
//! | `INGEST_RATE_LIMIT` | no | 0 (off) | save-event requests per project per minute; above it 429 + `Retry-After` |
//! | `SMS_SENDER` | no | `none` | `sns`: the SMS interface is available and texts go through Amazon SNS (Sentry: `sms.twilio-account`) |
//! | `SMS_SENDER_ID` | no | – | alphanumeric sender id of the texts, where carriers support one |
//! | `SMS_ALLOWED_COUNTRIES` | no | [`DEFAULT_ALLOWED_COUNTRIES`] | ISO codes texts may go to, comma separated; `*` = all (a warning at cold start) |
//! | `SMS_DAILY_CAP` | no | 1000 | texts per account and UTC day, all users together (0 = no cap) |
//! | `SMS_MAX_PRICE` | no | – | SNS `AWS.SNS.SMS.MaxPrice` (USD) of one text: SNS does not send a text that would cost more |
//! | `WEBAUTHN_ORIGIN` | no | – | the site's `https://` origin (Sentry: `system.url-prefix`); set → the u2f interface is available |
//! | `WEBAUTHN_RP_ID` | no | the origin's host | WebAuthn relying party id (a registrable suffix of the origin's host) |
//! | `WEBAUTHN_RP_NAME` | no | `Sentry` | relying party name shown by authenticators |
//! | `AWS_REGION` | no | SDK default chain | region of the SDK clients |

use std::collections::BTreeSet;

use crate::secret::Secret;

/// Countries texts may go to (ISO 3166-1 alpha-2), the default of `SMS_ALLOWED_COUNTRIES`: where
/// SMS fraud ("pumping") through premium and high-cost ranges is least profitable and where most
/// users are. `*` allows every country (the function logs a warning at cold start).
pub const DEFAULT_ALLOWED_COUNTRIES: &str =
    "US,CA,GB,IE,DE,FR,NL,BE,LU,AT,CH,SE,NO,DK,FI,IS,ES,PT,IT,PL,CZ,AU,NZ,JP";

/// Texts per account (all users) and UTC day, the default of `SMS_DAILY_CAP` (0 = no cap).
pub const DEFAULT_DAILY_CAP: u64 = 1000;

/// Where texts may go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowedCountries {
    All,
    Only(std::collections::BTreeSet<String>),
}

impl AllowedCountries {
    /// `*`, or comma-separated ISO codes (case-insensitive); `None` for a malformed list.
    pub fn parse(list: &str) -> Option<Self> {
        let list = list.trim();
        if list == "*" {
            return Some(Self::All);
        }
        let codes: std::collections::BTreeSet<String> =
            list.split(',').map(|c| c.trim().to_ascii_uppercase()).filter(|c| !c.is_empty()).collect();
        if codes.is_empty()
            || codes.iter().any(|c| c.len() != 2 || !c.chars().all(|ch| ch.is_ascii_uppercase()))
        {
            return None;
        }
        Some(Self::Only(codes))
    }

    pub fn allows(&self, country: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(codes) => codes.contains(country),
        }
    }
}

/// Configuration errors name the variable and what was wrong with it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("missing required environment variable {0}")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

#[derive(Clone, Debug)]
pub struct Config {
    pub table_name: String,
    pub stream_name: Option<String>,
    pub region: Option<String>,
    pub sudo_window_secs: i64,
    pub superuser_claim: String,
    pub invite_cookie_key: Option<Secret>,
    pub totp_issuer: String,
    pub enroll_rate_limit: u64,
    pub enroll_rate_window_secs: u64,
    pub disallow_new_enrollment: BTreeSet<String>,
    pub stream_max_attempts: u32,
    pub ingest_rate_limit: u64,
    pub event_lease_secs: i64,
    /// How long an event id is remembered for de-duplication (`EVENT_DEDUPE_SECS`, default 3600 as
    /// Sentry); also how long the embedded store keeps each event's marker.
    pub event_dedupe_secs: i64,
    /// Where enrollment texts go; `None`: the SMS interface is unavailable.
    pub sms_sender: Option<SmsDelivery>,
    pub sms_sender_id: Option<String>,
    /// Where texts may go (SMS pumping).
    pub sms_allowed_countries: AllowedCountries,
    /// Texts per account and UTC day (0 = no cap).
    pub sms_daily_cap: u64,
    /// The most one text may cost (USD, SNS `MaxPrice`).
    pub sms_max_price: Option<String>,
    /// WebAuthn relying party; `None`: the u2f interface is unavailable.
    pub webauthn: Option<WebAuthnRp>,
}

/// How enrollment texts are delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmsDelivery {
    /// Amazon SNS `Publish` to a phone number.
    Sns,
    /// The in-memory outbox (local CLI and tests).
    Outbox,
}

/// The WebAuthn relying party: the site origin (an `https://` URL, as Sentry requires of
/// `system.url-prefix`), its id and display name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebAuthnRp {
    pub origin: String,
    pub rp_id: String,
    pub rp_name: String,
}

impl WebAuthnRp {
    /// Validates the origin (`https://host[:port]`, nothing else) and derives the id from its host.
    pub fn new(origin: &str, rp_id: Option<&str>, rp_name: &str) -> Result<Self, String> {
        let url = url::Url::parse(origin).map_err(|e| format!("not a URL: {e}"))?;
        if url.scheme() != "https" {
            return Err("must start with https:// (WebAuthn needs a secure origin)".into());
        }
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or("has no host")?.to_owned();
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err("must be an origin (scheme, host, optional port), without a path".into());
        }
        let rp_id = rp_id.map_or(host.clone(), str::to_owned);
        if !(host == rp_id || host.ends_with(&format!(".{rp_id}"))) {
            return Err(format!("the relying party id {rp_id:?} is not a suffix of the origin's host"));
        }
        Ok(Self { origin: url.origin().ascii_serialization(), rp_id, rp_name: rp_name.to_owned() })
    }
}

/// Which optional settings a function needs; missing ones are then reported at cold start.
#[derive(Clone, Copy, Debug, Default)]
pub struct Requirements {
    pub stream: bool,
    pub invite_cookie_key: bool,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env(req: Requirements) -> Result<Self, ConfigError> {
        Self::from_lookup(req, |name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(
        req: Requirements,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let table_name = get("TABLE_NAME").ok_or(ConfigError::Missing("TABLE_NAME"))?;
        let stream_name = get("STREAM_NAME");
        if req.stream && stream_name.is_none() {
            return Err(ConfigError::Missing("STREAM_NAME"));
        }
        let invite_cookie_key = match get("INVITE_COOKIE_KEY") {
            Some(k) if k.len() < 32 => {
                return Err(ConfigError::Invalid {
                    name: "INVITE_COOKIE_KEY",
                    reason: format!("must be at least 32 bytes, got {}", k.len()),
                });
            }
            Some(k) => Some(Secret::new(k)),
            None if req.invite_cookie_key => return Err(ConfigError::Missing("INVITE_COOKIE_KEY")),
            None => None,
        };
        Ok(Self {
            table_name,
            stream_name,
            region: get("AWS_REGION"),
            sudo_window_secs: parse(&get, "SUDO_WINDOW_SECS", 10_800)?,
            superuser_claim: get("SUPERUSER_CLAIM").unwrap_or_else(|| "postflow:superuser".into()),
            invite_cookie_key,
            totp_issuer: get("TOTP_ISSUER").unwrap_or_else(|| "Sentry".into()),
            enroll_rate_limit: parse(&get, "ENROLL_RATE_LIMIT", 10)?,
            enroll_rate_window_secs: positive(
                parse(&get, "ENROLL_RATE_WINDOW_SECS", 86_400)?,
                "ENROLL_RATE_WINDOW_SECS",
            )?,
            disallow_new_enrollment: get("DISALLOW_NEW_ENROLLMENT")
                .map(|v| {
                    v.split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()).collect()
                })
                .unwrap_or_default(),
            stream_max_attempts: positive(parse(&get, "STREAM_MAX_ATTEMPTS", 5)?, "STREAM_MAX_ATTEMPTS")?,
            ingest_rate_limit: parse(&get, "INGEST_RATE_LIMIT", 0)?,
            event_lease_secs: positive(parse(&get, "EVENT_LEASE_SECS", 30)?, "EVENT_LEASE_SECS")?,
            event_dedupe_secs: positive(parse(&get, "EVENT_DEDUPE_SECS", 3600)?, "EVENT_DEDUPE_SECS")?,
            sms_sender: match get("SMS_SENDER").map(|v| v.to_ascii_lowercase()).as_deref() {
                None | Some("none") => None,
                Some("sns") => Some(SmsDelivery::Sns),
                Some(other) => {
                    return Err(ConfigError::Invalid {
                        name: "SMS_SENDER",
                        reason: format!("expected `sns` or `none`, got {other:?}"),
                    });
                }
            },
            sms_sender_id: get("SMS_SENDER_ID"),
            sms_allowed_countries: {
                let list =
                    get("SMS_ALLOWED_COUNTRIES").unwrap_or_else(|| DEFAULT_ALLOWED_COUNTRIES.to_owned());
                AllowedCountries::parse(&list).ok_or(ConfigError::Invalid {
                    name: "SMS_ALLOWED_COUNTRIES",
                    reason: "expected `*` or comma-separated ISO 3166 codes such as `US,GB`".into(),
                })?
            },
            sms_daily_cap: parse(&get, "SMS_DAILY_CAP", DEFAULT_DAILY_CAP)?,
            sms_max_price: match get("SMS_MAX_PRICE") {
                None => None,
                Some(p) if p.parse::<f64>().is_ok_and(|v| v > 0.0 && v.is_finite()) => Some(p),
                Some(_) => {
                    return Err(ConfigError::Invalid {
                        name: "SMS_MAX_PRICE",
                        reason: "expected a price in USD greater than zero, such as `0.50`".into(),
                    });
                }
            },
            webauthn: match get("WEBAUTHN_ORIGIN") {
                None => None,
                Some(origin) => Some(
                    WebAuthnRp::new(
                        &origin,
                        get("WEBAUTHN_RP_ID").as_deref(),
                        &get("WEBAUTHN_RP_NAME").unwrap_or_else(|| "Sentry".into()),
                    )
                    .map_err(|reason| ConfigError::Invalid { name: "WEBAUTHN_ORIGIN", reason })?,
                ),
            },
        })
    }

    /// Configuration for the local CLI and tests: a fixed table/stream name, a development cookie key,
    /// texts into the in-memory outbox, and WebAuthn for `https://localhost`.
    pub fn for_local(table_name: &str, stream_name: &str) -> Self {
        Self {
            table_name: table_name.into(),
            stream_name: Some(stream_name.into()),
            region: None,
            sudo_window_secs: 10_800,
            superuser_claim: "postflow:superuser".into(),
            invite_cookie_key: Some(Secret::new("local-development-cookie-key-not-for-production")),
            totp_issuer: "Sentry".into(),
            enroll_rate_limit: 10,
            enroll_rate_window_secs: 86_400,
            disallow_new_enrollment: BTreeSet::new(),
            stream_max_attempts: 5,
            ingest_rate_limit: 0,
            event_lease_secs: 30,
            event_dedupe_secs: 3600,
            sms_sender: Some(SmsDelivery::Outbox),
            sms_sender_id: None,
            sms_allowed_countries: AllowedCountries::parse(DEFAULT_ALLOWED_COUNTRIES)
                .unwrap_or(AllowedCountries::All),
            sms_daily_cap: DEFAULT_DAILY_CAP,
            sms_max_price: None,
            webauthn: Some(WebAuthnRp {
                origin: "https://localhost".into(),
                rp_id: "localhost".into(),
                rp_name: "Sentry".into(),
            }),
        }
    }

    /// Whether an authenticator interface is available (Sentry's `is_available`): recovery codes and
    /// TOTP always; SMS when a sender is configured (Sentry: a Twilio account); u2f when a WebAuthn
    /// origin is configured (Sentry: an `https://` URL prefix).
    pub fn interface_available(&self, kind: crate::domain::user::InterfaceType) -> bool {
        use crate::domain::user::InterfaceType::*;
        match kind {
            Recovery | Totp => true,
            Sms => self.sms_sender.is_some(),
            U2f => self.webauthn.is_some(),
        }
    }
}

fn parse<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match get(name) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|e: T::Err| ConfigError::Invalid { name, reason: e.to_string() }),
    }
}

fn positive<T: PartialOrd + Default>(v: T, name: &'static str) -> Result<T, ConfigError> {
    if v > T::default() {
        Ok(v)
    } else {
        Err(ConfigError::Invalid { name, reason: "must be greater than zero".into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn missing_table_is_named() {
        let err = Config::from_lookup(Requirements::default(), lookup(&[])).unwrap_err();
        assert_eq!(err, ConfigError::Missing("TABLE_NAME"));
        assert_eq!(err.to_string(), "missing required environment variable TABLE_NAME");
    }

    #[test]
    fn requirements_are_enforced() {
        let req = Requirements { stream: true, invite_cookie_key: false };
        let err = Config::from_lookup(req, lookup(&[("TABLE_NAME", "t")])).unwrap_err();
        assert_eq!(err, ConfigError::Missing("STREAM_NAME"));
        let req = Requirements { stream: false, invite_cookie_key: true };
        let err = Config::from_lookup(req, lookup(&[("TABLE_NAME", "t")])).unwrap_err();
        assert_eq!(err, ConfigError::Missing("INVITE_COOKIE_KEY"));
    }

    #[test]
    fn the_dedupe_window_is_read_and_refused_when_not_positive() {
        let c = Config::from_lookup(Requirements::default(), lookup(&[("TABLE_NAME", "t")])).unwrap();
        assert_eq!(c.event_dedupe_secs, 3600);
        let c = Config::from_lookup(
            Requirements::default(),
            lookup(&[("TABLE_NAME", "t"), ("EVENT_DEDUPE_SECS", "60")]),
        )
        .unwrap();
        assert_eq!(c.event_dedupe_secs, 60);
        for bad in ["0", "-5", "an hour"] {
            let err = Config::from_lookup(
                Requirements::default(),
                lookup(&[("TABLE_NAME", "t"), ("EVENT_DEDUPE_SECS", bad)]),
            )
            .unwrap_err();
            assert!(err.to_string().contains("EVENT_DEDUPE_SECS"), "{bad}: {err}");
        }
    }

    #[test]
    fn short_cookie_key_is_rejected_without_echoing_it() {
        let err = Config::from_lookup(
            Requirements::default(),
            lookup(&[("TABLE_NAME", "t"), ("INVITE_COOKIE_KEY", "tooshort-secret")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("INVITE_COOKIE_KEY"));
        assert!(!err.to_string().contains("tooshort-secret"));
    }

    #[test]
    fn sms_pumping_limits() {
        use AllowedCountries;
        let c = Config::from_lookup(Requirements::default(), lookup(&[("TABLE_NAME", "t")])).unwrap();
        assert!(c.sms_allowed_countries.allows("US") && !c.sms_allowed_countries.allows("LV"));
        assert_eq!((c.sms_daily_cap, c.sms_max_price.as_deref()), (1000, None));
        let c = Config::from_lookup(
            Requirements::default(),
            lookup(&[
                ("TABLE_NAME", "t"),
                ("SMS_ALLOWED_COUNTRIES", "*"),
                ("SMS_DAILY_CAP", "50"),
                ("SMS_MAX_PRICE", "0.25"),
            ]),
        )
        .unwrap();
        assert_eq!(c.sms_allowed_countries, AllowedCountries::All);
        assert_eq!((c.sms_daily_cap, c.sms_max_price.as_deref()), (50, Some("0.25")));
        for (name, bad) in [
            ("SMS_ALLOWED_COUNTRIES", "USA"),
            ("SMS_DAILY_CAP", "-1"),
            ("SMS_MAX_PRICE", "free"),
            ("SMS_MAX_PRICE", "0"),
        ] {
            let err =
                Config::from_lookup(Requirements::default(), lookup(&[("TABLE_NAME", "t"), (name, bad)]))
                    .unwrap_err();
            assert!(
                matches!(err, ConfigError::Invalid { name: n, .. } if n == name),
                "{name}={bad}: {err:?}"
            );
        }
    }

    #[test]
    fn sms_and_webauthn_availability() {
        use crate::domain::user::InterfaceType;
        let c = Config::from_lookup(Requirements::default(), lookup(&[("TABLE_NAME", "t")])).unwrap();
        assert!(c.interface_available(InterfaceType::Totp));
        assert!(!c.interface_available(InterfaceType::Sms) && !c.interface_available(InterfaceType::U2f));
        let c = Config::from_lookup(
            Requirements::default(),
            lookup(&[
                ("TABLE_NAME", "t"),
                ("SMS_SENDER", "SNS"),
                ("WEBAUTHN_ORIGIN", "https://sentry.example.com:8443"),
            ]),
        )
        .unwrap();
        assert_eq!(c.sms_sender, Some(SmsDelivery::Sns));
        let rp = c.webauthn.clone().unwrap();
        assert_eq!(
            (rp.origin.as_str(), rp.rp_id.as_str(), rp.rp_name.as_str()),
            ("https://sentry.example.com:8443", "sentry.example.com", "Sentry")
        );
        assert!(c.interface_available(InterfaceType::Sms) && c.interface_available(InterfaceType::U2f));
        let bad = |pairs: &[(&str, &str)]| {
            let mut all = vec![("TABLE_NAME", "t")];
            all.extend_from_slice(pairs);
            Config::from_lookup(Requirements::default(), lookup(&all)).unwrap_err()
        };
        // Sentry: u2f needs an https:// URL prefix.
        assert!(bad(&[("WEBAUTHN_ORIGIN", "http://sentry.example.com")]).to_string().contains("https://"));
        assert!(bad(&[("WEBAUTHN_ORIGIN", "https://sentry.example.com/app")]).to_string().contains("path"));
        assert!(
            bad(&[("WEBAUTHN_ORIGIN", "https://sentry.example.com"), ("WEBAUTHN_RP_ID", "other.com")])
                .to_string()
                .contains("suffix")
        );
        assert!(bad(&[("SMS_SENDER", "twilio")]).to_string().contains("SMS_SENDER"));
        let c = Config::from_lookup(
            Requirements::default(),
            lookup(&[
                ("TABLE_NAME", "t"),
                ("WEBAUTHN_ORIGIN", "https://sentry.example.com"),
                ("WEBAUTHN_RP_ID", "example.com"),
            ]),
        )
        .unwrap();
        assert_eq!(c.webauthn.unwrap().rp_id, "example.com", "a registrable suffix is allowed");
    }

    #[test]
    fn defaults_and_overrides() {
        let c = Config::from_lookup(Requirements::default(), lookup(&[("TABLE_NAME", "t")])).unwrap();
        assert_eq!(c.sudo_window_secs, 10_800);
        assert_eq!(c.enroll_rate_limit, 10);
        assert_eq!(c.enroll_rate_window_secs, 86_400);
        assert_eq!(c.totp_issuer, "Sentry");
        assert!(c.disallow_new_enrollment.is_empty());
        let c = Config::from_lookup(
            Requirements::default(),
            lookup(&[
                ("TABLE_NAME", "t"),
                ("SUDO_WINDOW_SECS", "60"),
                ("DISALLOW_NEW_ENROLLMENT", " TOTP, sms ,"),
            ]),
        )
        .unwrap();
        assert_eq!(c.sudo_window_secs, 60);
        assert_eq!(c.disallow_new_enrollment.iter().cloned().collect::<Vec<_>>(), ["sms", "totp"]);
    }

    #[test]
    fn malformed_numbers_are_named() {
        let err = Config::from_lookup(
            Requirements::default(),
            lookup(&[("TABLE_NAME", "t"), ("ENROLL_RATE_LIMIT", "ten")]),
        )
        .unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { name: "ENROLL_RATE_LIMIT", .. }));
        let err = Config::from_lookup(
            Requirements::default(),
            lookup(&[("TABLE_NAME", "t"), ("ENROLL_RATE_WINDOW_SECS", "0")]),
        )
        .unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { name: "ENROLL_RATE_WINDOW_SECS", .. }));
    }
}
