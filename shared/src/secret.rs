//! Wrappers for values that must never reach a log line or an error body (TOTP secrets, OTPs, invite
//! tokens, recovery-code salts, cookie keys, DSN keys in some contexts).
//!
//! `Debug` prints a fixed placeholder and there is no `Display`, so `tracing` fields and `{:?}` formatting
//! cannot leak the value by accident. Equality is constant time ([`subtle`]).

use subtle::ConstantTimeEq;

/// A secret string. Read it deliberately with [`Secret::expose`].
#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value. Call sites are easy to audit with `grep expose`.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        constant_time_eq(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl Eq for Secret {}

/// Constant-time comparison of two byte strings (the length is not hidden, which is public anyway for
/// fixed-format tokens and codes).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_value() {
        let s = Secret::new("JBSWY3DPEHPK3PXP");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert!(!format!("{s:?}").contains("JBSW"));
    }

    #[test]
    fn equality_is_by_value() {
        assert_eq!(Secret::new("abc"), Secret::new("abc"));
        assert_ne!(Secret::new("abc"), Secret::new("abd"));
        assert_ne!(Secret::new("abc"), Secret::new("abcd"));
        assert!(constant_time_eq(b"", b""));
    }
}
