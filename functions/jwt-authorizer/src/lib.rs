//! # jwt-authorizer
//!
//! An **optional** JWT authorizer: an API Gateway HTTP API Lambda authorizer (payload format 2.0,
//! simple responses, no identity source and no caching) for routes that anonymous callers may use
//! too — accept-invite GET, which Sentry answers differently for a logged-in user (an existing
//! membership, the invite cookie bound to the user). HTTP API JWT authorizers cannot be optional: a
//! request without a token is refused before the function runs. This one verifies the same tokens as
//! the API's JWT authorizer (RS256/384/512 with the issuer's keys from its OIDC discovery document;
//! `iss`, `aud`, `exp`, `nbf`) and lets every request through, saying what it found in the context
//! that API Gateway hands the function (`requestContext.authorizer.lambda`):
//!
//! | request | answer | the function sees |
//! |---|---|---|
//! | no `Authorization` header (or an empty one) | authorized, empty context | an anonymous caller |
//! | a token that verifies | authorized, context = its claims as strings (what the JWT authorizer delivers under `jwt.claims`) | the caller |
//! | a token that does not verify (foreign key, wrong `aud`/`iss`, expired, malformed) | authorized, context `{"postflow_token": "invalid"}` | nothing: [`shared::http`] answers 401 `{"message":"Unauthorized"}`, as the JWT authorizer would (API Gateway answers 403 to `isAuthorized: false`) |
//!
//! When the issuer's keys cannot be fetched, a request carrying a token is an authorizer error (API
//! Gateway answers 500): it is neither let in as anonymous nor told its token is bad. Keys are cached
//! for ten minutes per warm instance; a token naming a key id the cache lacks refreshes it at most
//! every 30 s (key rotation without a fetch per forged `kid`).
//!
//! `main.rs` is wiring; [`Authorizer::authorize`] is the whole decision and is tested without HTTP
//! ([`KeySource`] is the port; [`OidcKeySource`] fetches over HTTPS).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;

/// The context key that marks a token that did not verify (read by [`shared::http`]).
pub const TOKEN_MARK: &str = shared::http::LAMBDA_AUTHORIZER_TOKEN_MARK;

/// How long fetched keys are used before they are fetched again.
const KEYS_TTL: Duration = Duration::from_secs(600);
/// The shortest interval between two fetches caused by an unknown key id.
const REFRESH_FLOOR: Duration = Duration::from_secs(30);

/// Configuration, read once at cold start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizerConfig {
    /// `iss` of accepted tokens; `{issuer}/.well-known/openid-configuration` names the keys.
    pub issuer: String,
    /// Accepted `aud` values (a token must carry one of them).
    pub audiences: Vec<String>,
}

/// Configuration failures (cold start).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("JWT_ISSUER must be an https:// URL")]
    NotHttps,
}

impl AuthorizerConfig {
    /// `JWT_ISSUER` (https URL) and `JWT_AUDIENCE` (comma separated), as the template passes its
    /// `JwtIssuer` and `JwtAudience` parameters.
    pub fn from_env() -> Result<Self, ConfigError> {
        let var = |name: &'static str| {
            std::env::var(name)
                .ok()
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .ok_or(ConfigError::Missing(name))
        };
        let issuer = var("JWT_ISSUER")?;
        if !issuer.starts_with("https://") {
            return Err(ConfigError::NotHttps);
        }
        let audiences: Vec<String> =
            var("JWT_AUDIENCE")?.split(',').map(|a| a.trim().to_owned()).filter(|a| !a.is_empty()).collect();
        if audiences.is_empty() {
            return Err(ConfigError::Missing("JWT_AUDIENCE"));
        }
        Ok(Self { issuer, audiences })
    }
}

/// Why the keys could not be had.
#[derive(Debug, thiserror::Error)]
#[error("signing keys unavailable: {0}")]
pub struct KeyError(pub String);

/// Where the issuer's signing keys come from.
#[async_trait::async_trait]
pub trait KeySource: Send + Sync {
    async fn fetch(&self) -> Result<JwkSet, KeyError>;
}

/// Keys cached per warm instance (see the module docs for the refresh rules).
pub struct Keys {
    source: Arc<dyn KeySource>,
    state: Mutex<Option<(Arc<JwkSet>, Instant)>>,
}

impl Keys {
    pub fn new(source: Arc<dyn KeySource>) -> Self {
        Self { source, state: Mutex::new(None) }
    }

    /// The key set to verify a token naming `kid` with: the cached one while it is fresh and knows
    /// `kid` (or was fetched less than [`REFRESH_FLOOR`] ago), else a fresh fetch.
    async fn for_kid(&self, kid: Option<&str>) -> Result<Arc<JwkSet>, KeyError> {
        let mut state = self.state.lock().await;
        if let Some((set, at)) = state.as_ref() {
            let knows = kid.is_none_or(|k| set.find(k).is_some());
            let age = at.elapsed();
            if age < KEYS_TTL && (knows || age < REFRESH_FLOOR) {
                return Ok(set.clone());
            }
        }
        let set = Arc::new(self.source.fetch().await?);
        *state = Some((set.clone(), Instant::now()));
        Ok(set)
    }
}

/// Why a token was refused (logged by kind only; the token never is).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("no signing key with this key id")]
    UnknownKey,
    #[error("token refused: {0}")]
    Invalid(String),
}

/// The authorizer: configuration and keys.
pub struct Authorizer {
    pub config: AuthorizerConfig,
    pub keys: Keys,
}

impl Authorizer {
    /// The composition root.
    pub fn build(config: AuthorizerConfig, source: Arc<dyn KeySource>) -> Self {
        Self { config, keys: Keys::new(source) }
    }

    /// The simple response for one authorizer event (payload 2.0): see the module docs.
    pub async fn authorize(&self, event: &Value) -> Result<Value, KeyError> {
        let Some(token) = bearer(event) else {
            return Ok(json!({ "isAuthorized": true, "context": {} }));
        };
        match self.verify(token).await {
            Ok(claims) => Ok(json!({ "isAuthorized": true, "context": claims })),
            Err(TokenKeys::Keys(e)) => Err(e),
            Err(TokenKeys::Token(e)) => {
                tracing::info!(reason = %e, "token refused");
                Ok(json!({ "isAuthorized": true, "context": { TOKEN_MARK: "invalid" } }))
            }
        }
    }

    /// Verifies `token`; its claims as strings.
    pub async fn verify(&self, token: &str) -> Result<Map<String, Value>, TokenKeys> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| TokenError::Malformed(kind_name(&e)))?;
        let alg = header.alg;
        if !matches!(alg, Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512) {
            return Err(TokenError::Invalid(format!("algorithm {alg:?} not accepted")).into());
        }
        let keys = self.keys.for_kid(header.kid.as_deref()).await.map_err(TokenKeys::Keys)?;
        let jwk = match header.kid.as_deref() {
            Some(kid) => keys.find(kid),
            None if keys.keys.len() == 1 => keys.keys.first(),
            None => None,
        }
        .ok_or(TokenError::UnknownKey)?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| TokenError::Invalid(kind_name(&e)))?;
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[self.config.issuer.as_str()]);
        validation.set_audience(&self.config.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        // As API Gateway's JWT authorizer: no leeway on `exp` and `nbf`.
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<HashMap<String, Value>>(token, &key, &validation)
            .map_err(|e| TokenError::Invalid(kind_name(&e)))?;
        Ok(data
            .claims
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(shared::http::claim_string(v))))
            .collect())
    }
}

/// A token error or a key outage (which is not the token's fault).
#[derive(Debug, thiserror::Error)]
pub enum TokenKeys {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Keys(KeyError),
}

/// A `jsonwebtoken` error's kind without any token content (`ExpiredSignature`, `InvalidAudience`, …).
fn kind_name(e: &jsonwebtoken::errors::Error) -> String {
    let kind = format!("{:?}", e.kind());
    kind.split(['(', ' ']).next().unwrap_or_default().to_owned()
}

/// The bearer token of the event's `Authorization` header, if any (the scheme is optional, as for
/// API Gateway's JWT authorizer).
pub fn bearer(event: &Value) -> Option<&str> {
    let headers = event.get("headers")?.as_object()?;
    let value = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("authorization"))?.1.as_str()?.trim();
    let token = match value.get(..6) {
        Some(scheme)
            if scheme.eq_ignore_ascii_case("bearer")
                && value[6..].chars().next().is_none_or(char::is_whitespace) =>
        {
            value[6..].trim()
        }
        _ => value,
    };
    (!token.is_empty()).then_some(token)
}

/// The issuer's keys over HTTPS: `{issuer}/.well-known/openid-configuration`, then its `jwks_uri`
/// (which must be https too). Trusts the system's roots (`SSL_CERT_FILE` is honoured).
pub struct OidcKeySource {
    issuer: String,
    client: hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        http_body_util::Empty<hyper::body::Bytes>,
    >,
}

impl OidcKeySource {
    pub fn new(issuer: &str) -> Result<Self, KeyError> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(|e| KeyError(format!("TLS roots: {e}")))?
            .https_only()
            .enable_http1()
            .build();
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(https);
        Ok(Self { issuer: issuer.trim_end_matches('/').to_owned(), client })
    }

    async fn get_json(&self, url: &str) -> Result<Value, KeyError> {
        use http_body_util::BodyExt;
        let uri: hyper::Uri = url.parse().map_err(|e| KeyError(format!("{url}: {e}")))?;
        let request = hyper::Request::get(uri)
            .header("accept", "application/json")
            .body(http_body_util::Empty::new())
            .map_err(|e| KeyError(e.to_string()))?;
        let response = tokio::time::timeout(Duration::from_secs(5), self.client.request(request))
            .await
            .map_err(|_| KeyError(format!("{url}: timed out")))?
            .map_err(|e| KeyError(format!("{url}: {e}")))?;
        if !response.status().is_success() {
            return Err(KeyError(format!("{url}: HTTP {}", response.status())));
        }
        let body = http_body_util::Limited::new(response.into_body(), 256 << 10)
            .collect()
            .await
            .map_err(|e| KeyError(format!("{url}: {e}")))?
            .to_bytes();
        serde_json::from_slice(&body).map_err(|e| KeyError(format!("{url}: {e}")))
    }
}

#[async_trait::async_trait]
impl KeySource for OidcKeySource {
    async fn fetch(&self) -> Result<JwkSet, KeyError> {
        let discovery = self.get_json(&format!("{}/.well-known/openid-configuration", self.issuer)).await?;
        let jwks_uri = discovery
            .get("jwks_uri")
            .and_then(Value::as_str)
            .filter(|u| u.starts_with("https://"))
            .ok_or_else(|| KeyError("the discovery document has no https jwks_uri".into()))?;
        let jwks = self.get_json(jwks_uri).await?;
        serde_json::from_value(jwks).map_err(|e| KeyError(format!("{jwks_uri}: {e}")))
    }
}
