//! `postflow serve`: an API Gateway HTTP API emulation on 127.0.0.1, built from the routes of
//! `template.yaml`. Each HTTP request becomes a payload-2.0 event (raw path, query, headers, cookies,
//! path parameters, body base64-encoded) and goes through the same handlers as in Lambda; the response
//! is written back. Real Sentry SDKs can point their DSN at it (`http://<key>@127.0.0.1:<port>/<project>`).
//!
//! **Local only — no JWT verification.** API Gateway's JWT authorizer checks signatures; this emulation
//! does not. It takes the claims from an `X-Postflow-Claims: {json}` header, or from the payload of an
//! `Authorization: Bearer <jwt>` token *without checking its signature*. It binds to loopback only.
//! Like the authorizer, it answers `401 {"message":"Unauthorized"}` without calling the function when a
//! route that requires a JWT gets no claims.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;

use crate::backend::{App, route};
use shared::http::ApiRequest;

/// API Gateway's payload limit is 10 MB; SDK envelopes are bounded well below.
const MAX_BODY: usize = 10 * 1024 * 1024;

/// Binds 127.0.0.1:`port` (0 = any free port) and serves until the task is dropped.
pub async fn bind(port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await
}

pub async fn serve(listener: TcpListener, app: Arc<App>) -> std::io::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        let app = app.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(handle(&app, req, peer).await) }
            });
            if let Err(e) = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await {
                tracing::debug!(error = %e, "connection closed");
            }
        });
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_owned())));
    *r.status_mut() = status;
    r.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    r
}

async fn handle(app: &App, req: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return text(StatusCode::PAYLOAD_TOO_LARGE, r#"{"message":"Request Entity Too Large"}"#),
    };
    let method = parts.method.as_str().to_owned();
    let path = parts.uri.path().to_owned();
    if method == "GET" && path == "/_postflow/stats" {
        // Local only: what the embedded stream holds, for benchmarks to check every 200 was streamed.
        let appended = app.memory_stream.as_ref().map(|s| s.sink().appended());
        let retained = app.memory_stream.as_ref().map(|s| s.sink().records().len());
        // The embedded table's items by partition-key prefix (what grows under a long load).
        let table = app.memory_table.as_ref().map(|t| t.count_by_pk_prefix());
        let body = json!({ "stream_records": appended, "stream_retained": retained, "table_items": table });
        return text(StatusCode::OK, &body.to_string());
    }
    let Some((function, params)) = route(&method, &path) else {
        // API Gateway's answer for an unknown route.
        return text(StatusCode::NOT_FOUND, r#"{"message":"Not Found"}"#);
    };
    if function.requires_jwt(&method) && local_claims(&parts.headers).is_none() {
        return text(StatusCode::UNAUTHORIZED, r#"{"message":"Unauthorized"}"#);
    }
    // The request as the handlers see it, built directly (the same fields `ApiRequest::from_lambda`
    // reads from the payload-2.0 event API Gateway would deliver; `tests::direct_request_equals_the_event_path`).
    let api = api_request(&parts, body.to_vec(), &params, peer, &app.config.superuser_claim);
    let texts_before = app.outbox.sent().len();
    let resp = app.invoke_api(function, &api).await.into_response();
    // The local SMS outbox is the console's: print what this request texted (like a console mail
    // backend), so a developer can type the code. Nothing is sent anywhere.
    for m in app.outbox.sent().iter().skip(texts_before) {
        eprintln!("[sms outbox] to {}: {}", m.to_e164, m.text.expose().trim_end());
    }
    let (rparts, rbody) = resp.into_parts();
    let bytes = match rbody {
        lambda_http::Body::Empty => Bytes::new(),
        lambda_http::Body::Text(t) => Bytes::from(t),
        lambda_http::Body::Binary(b) => Bytes::from(b),
        _ => Bytes::new(),
    };
    let mut out = Response::new(Full::new(bytes));
    *out.status_mut() = rparts.status;
    *out.headers_mut() = rparts.headers;
    out
}

/// The [`ApiRequest`] a handler gets for this HTTP request: what the payload-2.0 event API Gateway would deliver
/// becomes through `ApiRequest::from_lambda`, without building and parsing that event (headers
/// lower-cased, repeated ones joined with commas as API Gateway does, cookies from the `Cookie`
/// headers, the query percent-decoded, the local claims).
pub fn api_request(
    parts: &hyper::http::request::Parts,
    body: Vec<u8>,
    params: &[(String, String)],
    peer: SocketAddr,
    superuser_claim: &str,
) -> ApiRequest {
    let mut headers: Vec<(String, String)> = Vec::with_capacity(parts.headers.len());
    let mut cookie_values: Vec<String> = Vec::new();
    for (k, v) in &parts.headers {
        let (k, v) = (k.as_str().to_ascii_lowercase(), v.to_str().unwrap_or_default());
        if k == "cookie" {
            cookie_values.extend(v.split(';').map(|c| c.trim().to_owned()).filter(|c| !c.is_empty()));
            continue;
        }
        match headers.iter_mut().find(|(name, _)| *name == k) {
            Some((_, prev)) => {
                prev.push(',');
                prev.push_str(v);
            }
            None => headers.push((k, v.to_owned())),
        }
    }
    if !cookie_values.is_empty() {
        headers.push(("cookie".to_owned(), cookie_values.join("; ")));
    }
    let cookies =
        shared::http::parse_cookies(headers.iter().filter(|(k, _)| k == "cookie").map(|(_, v)| v.as_str()));
    let raw_query = parts.uri.query().unwrap_or_default().to_owned();
    let mut query: Vec<(String, String)> = Vec::new();
    for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        query.push((percent_decode(k), percent_decode(v)));
    }
    let claims = local_claims(&parts.headers).and_then(|c| {
        let map: std::collections::HashMap<String, String> =
            c.into_iter().map(|(k, v)| (k, v.as_str().unwrap_or_default().to_owned())).collect();
        shared::http::Claims::from_map(&map, superuser_claim)
    });
    let user_agent =
        headers.iter().find(|(k, _)| k == "user-agent").map(|(_, v)| v.clone()).unwrap_or_default();
    ApiRequest {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        path_params: params.iter().cloned().collect(),
        raw_query,
        query,
        headers,
        cookies,
        body,
        claims,
        token_rejected: false,
        source_ip: Some(peer.ip().to_string()),
        user_agent: Some(user_agent),
        request_id: Some(format!("local-{}", shared::ports::random_hex_id(&shared::ports::OsRandom))),
        deadline_ms: None,
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// LOCAL ONLY: claims from `X-Postflow-Claims` or an unverified bearer token's payload. Values become
/// strings, as API Gateway delivers JWT claims.
fn local_claims(headers: &hyper::HeaderMap) -> Option<Map<String, Value>> {
    let raw: Value = if let Some(h) = headers.get("x-postflow-claims") {
        serde_json::from_slice(h.as_bytes()).ok()?
    } else {
        let auth = headers.get("authorization")?.to_str().ok()?;
        let token = auth.strip_prefix("Bearer ").or_else(|| auth.strip_prefix("bearer "))?;
        let payload = token.split('.').nth(1)?;
        let bytes =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
        serde_json::from_slice(&bytes).ok()?
    };
    let obj = raw.as_object()?;
    Some(obj.iter().map(|(k, v)| (k.clone(), Value::String(shared::http::claim_string(v)))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The payload-2.0 event API Gateway would deliver for this request.
    fn build_event(
        parts: &hyper::http::request::Parts,
        body: &[u8],
        params: &[(String, String)],
        peer: SocketAddr,
    ) -> Value {
        let mut headers = Map::new();
        let mut cookies = Vec::new();
        for (k, v) in &parts.headers {
            let (k, v) = (k.as_str().to_ascii_lowercase(), v.to_str().unwrap_or_default().to_owned());
            if k == "cookie" {
                cookies.extend(v.split(';').map(|c| Value::String(c.trim().to_owned())).filter(|c| c != ""));
                continue;
            }
            // API Gateway joins repeated headers with commas.
            match headers.get_mut(&k) {
                Some(Value::String(prev)) => {
                    prev.push(',');
                    prev.push_str(&v);
                }
                _ => {
                    headers.insert(k, Value::String(v));
                }
            }
        }
        let raw_query = parts.uri.query().unwrap_or_default().to_owned();
        let mut query = Map::new();
        for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            query.insert(percent_decode(k), Value::String(percent_decode(v)));
        }
        let method = parts.method.as_str();
        let path = parts.uri.path();
        let user_agent = headers.get("user-agent").cloned().unwrap_or(Value::String(String::new()));
        let mut ctx = json!({
            "accountId": "local", "apiId": "postflow-serve", "domainName": "127.0.0.1", "domainPrefix": "local",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": peer.ip().to_string(), "userAgent": user_agent},
            "requestId": format!("local-{}", shared::ports::random_hex_id(&shared::ports::OsRandom)), "routeKey": format!("{method} {path}"), "stage": "$default",
            "time": "", "timeEpoch": crate::scenario::now_secs() * 1000
        });
        if let Some(claims) = local_claims(&parts.headers) {
            ctx["authorizer"] = json!({"jwt": {"claims": claims, "scopes": null}});
        }
        let mut event = json!({
            "version": "2.0",
            "routeKey": format!("{method} {path}"),
            "rawPath": path,
            "rawQueryString": raw_query,
            "headers": headers,
            "requestContext": ctx,
            "pathParameters": params.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<Map<_, _>>(),
            "isBase64Encoded": true,
            "body": base64::engine::general_purpose::STANDARD.encode(body),
        });
        if !query.is_empty() {
            event["queryStringParameters"] = Value::Object(query);
        }
        if !cookies.is_empty() {
            event["cookies"] = Value::Array(cookies);
        }
        event
    }

    /// The request `serve` hands the handlers directly equals the one the handlers would read from the
    /// payload-2.0 event of the same HTTP request (`build_event` → `ApiRequest::from_lambda`), but for
    /// the request id, which is fresh each time.
    #[test]
    fn direct_request_equals_the_event_path() {
        let claims = r#"{"sub": "42", "email": "a@b.c", "email_verified": true, "auth_time": 1700000000}"#;
        let requests = [
            hyper::Request::builder()
                .method("POST")
                .uri("/api/42/envelope/?sentry_key=abc&sentry_version=7&x=%2Fa+b&x=2")
                .header("Content-Type", "application/x-sentry-envelope")
                .header("Content-Encoding", "gzip")
                .header("X-Forwarded-For", "203.0.113.9")
                .header("X-Forwarded-For", "10.0.0.1")
                .header("User-Agent", "sentry.python/2.75.0")
                .body(())
                .unwrap(),
            hyper::Request::builder()
                .method("GET")
                .uri("/api/0/accept-invite/acme/10/abc/")
                .header("Cookie", "postflow-invite=xyz; other=1")
                .header("Cookie", "third=3")
                .header("X-Postflow-Claims", claims)
                .body(())
                .unwrap(),
            hyper::Request::builder().method("POST").uri("/api/42/store/").body(()).unwrap(),
        ];
        let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        for req in requests {
            let (parts, ()) = req.into_parts();
            let params = vec![("project_id".to_owned(), "42".to_owned())];
            let body = br#"{"a": 1}"#.to_vec();
            let event = build_event(&parts, &body, &params, peer);
            let via_event = ApiRequest::from_lambda(
                &crate::apigw::request_from_event(&event).unwrap(),
                "postflow:superuser",
            );
            let direct = api_request(&parts, body, &params, peer, "postflow:superuser");
            let normalized = |r: &ApiRequest| {
                let mut r = r.clone();
                r.request_id = None;
                r.query.sort();
                r.headers.sort();
                format!("{r:?}")
            };
            assert_eq!(normalized(&direct), normalized(&via_event), "{} {}", parts.method, parts.uri);
        }
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("sentry.javascript.node%2F11.12.0"), "sentry.javascript.node/11.12.0");
        assert_eq!(percent_decode("a+b%zz%4"), "a b%zz%4");
    }

    #[test]
    fn claims_from_headers() {
        let mut h = hyper::HeaderMap::new();
        h.insert(
            "x-postflow-claims",
            r#"{"sub": "42", "auth_time": 1700000000, "email_verified": true}"#.parse().unwrap(),
        );
        let c = local_claims(&h).unwrap();
        assert_eq!(c["sub"], "42");
        assert_eq!(c["auth_time"], "1700000000");
        assert_eq!(c["email_verified"], "true");
        let mut h = hyper::HeaderMap::new();
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"sub":"7"}"#);
        h.insert("authorization", format!("Bearer x.{payload}.sig").parse().unwrap());
        assert_eq!(local_claims(&h).unwrap()["sub"], "7");
        assert!(local_claims(&hyper::HeaderMap::new()).is_none());
    }
}
