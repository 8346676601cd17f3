//! API Gateway HTTP API (payload format 2.0) events and responses.

use base64::Engine;
use lambda_http::{Body, Response};
use serde_json::{Value, json};

/// Parses an event file's JSON into a `lambda_http` request, exactly as the Lambda runtime would.
pub fn request_from_event(event: &Value) -> Result<lambda_http::Request, String> {
    let text = event.to_string();
    // lambda_http panics on a few malformed events (see `lambda_http_converts`); refuse them instead.
    if !shared::http::lambda_http_converts(&text) {
        return Err("the event's rawPath/rawQueryString/host do not form a URI, or its isBase64Encoded body is not base64".into());
    }
    lambda_http::request::from_str(&text).map_err(|e| format!("not an API Gateway v2 event: {e}"))
}

/// The response as the Lambda returns it to API Gateway (`sam local invoke` prints this shape).
pub fn response_json(resp: &Response<Body>) -> Value {
    let mut headers = serde_json::Map::new();
    let mut cookies = Vec::new();
    for (k, v) in resp.headers() {
        let v = v.to_str().unwrap_or_default().to_owned();
        if k.as_str().eq_ignore_ascii_case("set-cookie") {
            cookies.push(Value::String(v));
        } else {
            headers.insert(k.as_str().to_owned(), Value::String(v));
        }
    }
    let (body, b64) = match resp.body() {
        Body::Empty => (String::new(), false),
        Body::Text(t) => (t.clone(), false),
        Body::Binary(b) => (base64::engine::general_purpose::STANDARD.encode(b), true),
        _ => (String::new(), false),
    };
    json!({
        "statusCode": resp.status().as_u16(),
        "headers": headers,
        "cookies": cookies,
        "body": body,
        "isBase64Encoded": b64,
    })
}

/// The response body parsed as JSON (`Null` when empty or not JSON).
pub fn body_json(resp: &Response<Body>) -> Value {
    match resp.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap_or(Value::Null),
        Body::Binary(b) => serde_json::from_slice(b).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}
