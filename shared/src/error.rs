//! Errors per layer and the one mapping from errors to HTTP.
//!
//! - [`StoreError`]: what an adapter (DynamoDB, Kinesis, in-memory) reports. Business outcomes such as "lost
//!   a conditional write" are *not* errors: adapters return them as typed outcomes.
//! - [`ApiError`]: every non-2xx answer a function gives, in Sentry's body shapes. [`ApiError::status`] and
//!   [`ApiError::body`] are the single mapping; `http::Reply::from(ApiError)` renders it.
//!
//! 5xx bodies never carry internal text: [`ApiError::Internal`] and [`ApiError::Unavailable`] have fixed
//! bodies, and the cause is logged (without secrets) where the error is converted.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// Failures of a storage or stream adapter.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The service throttled us (provisioned throughput, request limits, Kinesis shard limits).
    #[error("throttled by {service}")]
    Throttled { service: &'static str },
    /// The dependency failed or could not be reached (5xx, timeout, connection).
    #[error("{service} unavailable: {message}")]
    Unavailable { service: &'static str, message: String },
    /// A request we refuse to send because it would break a service limit (record too large, …).
    #[error("rejected before sending: {0}")]
    Rejected(String),
    /// Stored data we cannot read back (a bug or manual edit); never shown to clients.
    #[error("corrupt item: {0}")]
    Corrupt(String),
    /// Anything else from the SDK that is not the caller's fault.
    #[error("{service} error: {message}")]
    Other { service: &'static str, message: String },
}

impl StoreError {
    pub fn corrupt(what: impl Into<String>) -> Self {
        Self::Corrupt(what.into())
    }

    /// Whether retrying the same request later may succeed (maps to 503 + `Retry-After`).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Throttled { .. } | Self::Unavailable { .. })
    }
}

/// Every error answer of the HTTP API.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// 401 `{"detail": "Authentication credentials were not provided."}` (DRF).
    NotAuthenticated,
    /// 404 `{"detail": "The requested resource does not exist"}`.
    ResourceDoesNotExist,
    /// 404 with an empty body (Sentry's enroll POST for an interface without a serializer).
    NotFoundEmpty,
    /// 403 `{"detail": "You do not have permission to perform this action."}`.
    PermissionDenied,
    /// `SentryAPIException`: `{"detail": {"code", "message", "extra"}}`.
    Coded { status: u16, code: &'static str, message: &'static str, extra: Value },
    /// `{"details": "..."}` (note the plural key, as in Sentry's enroll and invite endpoints).
    Details { status: u16, details: String },
    /// `{"detail": "..."}` with a chosen status (Relay-style ingest errors, malformed requests).
    Detail { status: u16, detail: String },
    /// 400 DRF field-error map, e.g. `{"otp": ["This field is required."]}`.
    FieldErrors(BTreeMap<String, Vec<String>>),
    /// 400 `[{"details": "Invalid OTP"}]`: an array, as Sentry answers (clients depend on it).
    InvalidOtp,
    /// 429 `text/plain` with a sentence (Sentry's enroll rate limit).
    TooManyRequestsText(&'static str),
    /// 429 JSON with `Retry-After`.
    RateLimited { retry_after_secs: u64, detail: String },
    /// 503 with `Retry-After`: a dependency failed or throttled; the client should retry.
    Unavailable { retry_after_secs: u64 },
    /// 500 `{"detail": "Internal Error"}`: never carries the cause.
    Internal,
}

impl ApiError {
    pub fn details(status: u16, details: impl Into<String>) -> Self {
        Self::Details { status, details: details.into() }
    }

    pub fn detail(status: u16, detail: impl Into<String>) -> Self {
        Self::Detail { status, detail: detail.into() }
    }

    pub fn field_error(field: &str, message: &str) -> Self {
        let mut map = BTreeMap::new();
        map.insert(field.to_owned(), vec![message.to_owned()]);
        Self::FieldErrors(map)
    }

    pub fn status(&self) -> u16 {
        match self {
            Self::NotAuthenticated => 401,
            Self::ResourceDoesNotExist | Self::NotFoundEmpty => 404,
            Self::PermissionDenied => 403,
            Self::Coded { status, .. } | Self::Details { status, .. } | Self::Detail { status, .. } => {
                *status
            }
            Self::FieldErrors(_) | Self::InvalidOtp => 400,
            Self::TooManyRequestsText(_) | Self::RateLimited { .. } => 429,
            Self::Unavailable { .. } => 503,
            Self::Internal => 500,
        }
    }

    /// The JSON body, or `None` for an empty body. Text bodies are handled by [`ApiError::text_body`].
    pub fn body(&self) -> Option<Value> {
        Some(match self {
            Self::NotAuthenticated => json!({"detail": "Authentication credentials were not provided."}),
            Self::ResourceDoesNotExist => json!({"detail": "The requested resource does not exist"}),
            Self::NotFoundEmpty | Self::TooManyRequestsText(_) => return None,
            Self::PermissionDenied => json!({"detail": "You do not have permission to perform this action."}),
            Self::Coded { code, message, extra, .. } => {
                json!({"detail": {"code": code, "message": message, "extra": extra}})
            }
            Self::Details { details, .. } => json!({ "details": details }),
            Self::Detail { detail, .. } | Self::RateLimited { detail, .. } => json!({ "detail": detail }),
            Self::FieldErrors(map) => json!(map),
            Self::InvalidOtp => json!([{"details": "Invalid OTP"}]),
            Self::Unavailable { .. } => json!({"detail": "Service temporarily unavailable, please retry"}),
            Self::Internal => json!({"detail": "Internal Error"}),
        })
    }

    pub fn text_body(&self) -> Option<&'static str> {
        match self {
            Self::TooManyRequestsText(text) => Some(text),
            _ => None,
        }
    }

    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after_secs, .. } | Self::Unavailable { retry_after_secs } => {
                Some(*retry_after_secs)
            }
            _ => None,
        }
    }
}

impl From<StoreError> for ApiError {
    /// Dependency failures become 503 + `Retry-After` (the client retries); everything else is a 500. The
    /// cause is logged here, once, and never put in the body.
    fn from(err: StoreError) -> Self {
        if err.is_retryable() {
            tracing::warn!(error = %err, "dependency failure, answering 503");
            Self::Unavailable { retry_after_secs: 1 }
        } else {
            tracing::error!(error = %err, "internal error, answering 500");
            Self::Internal
        }
    }
}

#[cfg(feature = "enroll")]
impl From<crate::domain::enroll::FieldErrors> for ApiError {
    /// A body that failed the domain's validation: 400 with DRF's field-error map.
    fn from(e: crate::domain::enroll::FieldErrors) -> Self {
        Self::FieldErrors(e.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_bodies_match_sentry() {
        let cases: Vec<(ApiError, u16, Option<Value>)> = vec![
            (
                ApiError::NotAuthenticated,
                401,
                Some(json!({"detail": "Authentication credentials were not provided."})),
            ),
            (
                ApiError::ResourceDoesNotExist,
                404,
                Some(json!({"detail": "The requested resource does not exist"})),
            ),
            (ApiError::NotFoundEmpty, 404, None),
            (
                ApiError::PermissionDenied,
                403,
                Some(json!({"detail": "You do not have permission to perform this action."})),
            ),
            (ApiError::details(400, "Already enrolled"), 400, Some(json!({"details": "Already enrolled"}))),
            (ApiError::InvalidOtp, 400, Some(json!([{"details": "Invalid OTP"}]))),
            (
                ApiError::field_error("otp", "This field is required."),
                400,
                Some(json!({"otp": ["This field is required."]})),
            ),
            (
                ApiError::Coded {
                    status: 401,
                    code: "sudo-required",
                    message: "Account verification required.",
                    extra: json!({"username": "a"}),
                },
                401,
                Some(
                    json!({"detail": {"code": "sudo-required", "message": "Account verification required.", "extra": {"username": "a"}}}),
                ),
            ),
            (ApiError::Internal, 500, Some(json!({"detail": "Internal Error"}))),
        ];
        for (err, status, body) in cases {
            assert_eq!(err.status(), status, "{err:?}");
            assert_eq!(err.body(), body, "{err:?}");
        }
        let text = ApiError::TooManyRequestsText("slow down");
        assert_eq!((text.status(), text.text_body(), text.body()), (429, Some("slow down"), None));
    }

    #[test]
    fn dependency_failures_are_503_without_internals() {
        let err: ApiError =
            StoreError::Unavailable { service: "dynamodb", message: "connection reset by 10.0.0.1".into() }
                .into();
        assert_eq!(err.status(), 503);
        assert_eq!(err.retry_after_secs(), Some(1));
        assert!(!err.body().unwrap().to_string().contains("10.0.0.1"));
        let err: ApiError = StoreError::Throttled { service: "kinesis" }.into();
        assert_eq!(err.status(), 503);
        let err: ApiError = StoreError::corrupt("member item without org_id").into();
        assert_eq!(err, ApiError::Internal);
        assert!(!err.body().unwrap().to_string().contains("org_id"));
    }
}
