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
//! | `INGEST_RATE_LIMIT` | no | 0 (off) | save-event requests per project per minute; above it 429 + `Retry-After` |
//! | `AWS_REGION` | no | SDK default chain | region of the SDK clients |

use std::collections::BTreeSet;

use crate::secret::Secret;

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
        })
    }

    /// Configuration for the local CLI and tests: a fixed table/stream name and a development cookie key.
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
        }
    }

    /// Whether an authenticator interface is available (Sentry's `is_available`). Recovery codes and
    /// TOTP are; SMS and WebAuthn (u2f) are not implemented in this build (their issue adds the sender
    /// and the WebAuthn ceremony), so they are unavailable, which Sentry also answers for an SMS
    /// interface without Twilio or u2f without an `https://` URL prefix.
    pub fn interface_available(&self, kind: crate::domain::user::InterfaceType) -> bool {
        use crate::domain::user::InterfaceType::*;
        matches!(kind, Recovery | Totp)
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
