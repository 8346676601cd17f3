//! Helpers shared by the cross-function tests that call the handlers directly.

#![allow(dead_code)]

use serde_json::Value;
use shared::http::{ApiRequest, Claims};

/// A verified, recently authenticated caller (sudo holds).
pub fn claims(sub: &str) -> Claims {
    Claims {
        sub: sub.into(),
        email: Some(format!("{sub}@example.com")),
        email_verified: true,
        auth_time: Some(postflow::scenario::now_secs() - 60),
        superuser: false,
    }
}

/// An API request as API Gateway would hand it to a function (JSON body unless `body` is null).
pub fn request(
    method: &str,
    path: &str,
    params: &[(&str, &str)],
    caller: Option<Claims>,
    body: &Value,
) -> ApiRequest {
    ApiRequest {
        method: method.into(),
        path: path.into(),
        path_params: params.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: if body.is_null() { Vec::new() } else { body.to_string().into_bytes() },
        claims: caller,
        source_ip: Some("127.0.0.1".into()),
        user_agent: Some("postflow-tests/1.0".into()),
        ..Default::default()
    }
}
