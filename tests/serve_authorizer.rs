//! `postflow serve` answers for API Gateway's JWT authorizer: a route that requires a JWT gets
//! `401 {"message":"Unauthorized"}` without claims, and the function never runs (nothing written);
//! anonymous routes (accept-invite GET, save-event) reach their function.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use postflow::backend::{App, Backend};
use shared::config::Config;

async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    shared::testing::http_request(&addr.to_string(), method, path, headers, "{}").await.unwrap()
}

#[tokio::test]
async fn jwt_routes_need_claims_anonymous_routes_do_not() {
    let backend = Backend::embedded();
    let app = Arc::new(App::new(&backend, Config::for_local("postflow", "postflow-events")));
    let listener = postflow::serve::bind(0).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(postflow::serve::serve(listener, app));
    let token = "5f0a9c1e2b3d4f5061728394a5b6c7d8e9f00112233445566778899aabbccddee";
    let accept = format!("/api/0/accept-invite/acme/10/{token}/");
    let enroll = "/api/0/users/me/authenticators/totp/enroll/";

    for (method, path) in [("POST", accept.as_str()), ("GET", enroll), ("POST", enroll)] {
        let (status, body) = http(addr, method, path, &[]).await;
        assert_eq!((status, body.as_str()), (401, r#"{"message":"Unauthorized"}"#), "{method} {path}");
    }
    assert!(backend.memory.as_ref().unwrap().dump().unwrap().is_empty(), "the functions never ran");

    // With (local) claims the function answers itself.
    let claims = r#"{"sub": "42", "email": "a@b.c", "email_verified": true, "auth_time": 1}"#;
    let (status, body) = http(addr, "POST", &accept, &[("X-Postflow-Claims", claims)]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("details"), "{body}");
    // Anonymous routes reach their function: accept GET (unknown invite → its 400) and save-event (401
    // from the DSN check, in Relay's shape, not the authorizer's).
    let (status, body) = http(addr, "GET", &accept, &[]).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = http(addr, "POST", "/api/42/store/", &[]).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("detail"), "{body}");
}
