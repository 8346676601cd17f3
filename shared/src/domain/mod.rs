//! Domain types and rules. No `lambda_http`, no AWS SDK: handlers feed it plain data, stores persist it.
//!
//! - [`identity`]: the caller's verified claims (user id, e-mail, sudo, superuser).
//! - [`enroll`]: DRF's field validation (each interface's body is validated in its module of the enroll
//!   function), security activity, and the enrollment command/outcome the enrollment store takes and
//!   returns.
//! - [`interfaces`]: what every interface's GET shows (attributes, status, Sentry's serializer shape).
//! - [`org`]: organizations, auth providers, members and invites.
//! - [`user`]: what Postflow knows about a user (profile, authenticators, memberships, identities).
//! - [`invite`]: the `ApiInviteHelper` rules (pending, approved, token, onboarding steps, SSO) and the
//!   accept-invite outcomes.
//! - [`cookie`]: the signed `postflow-invite` cookie that replaces Sentry's session keys.
//! - [`sms`]: the SMS interface (E.164 numbers, the enrollment text, the per-number limit).
//! - [`webauthn`]: the u2f interface (WebAuthn registration ceremonies, the device list).

pub mod cookie;
#[cfg(feature = "enroll")]
pub mod enroll;
pub mod identity;
#[cfg(feature = "enroll")]
pub mod interfaces;
pub mod invite;
pub mod org;
#[cfg(feature = "enroll")]
pub mod otp;
pub mod project;
#[cfg(feature = "enroll")]
pub mod sms;
pub mod user;
#[cfg(feature = "enroll")]
pub mod webauthn;
