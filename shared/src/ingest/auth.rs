//! DSN authentication of ingest requests (ingest-protocol.md §3).
//!
//! Owns *where* the public key comes from, never whether it is valid for the project: the caller
//! looks the returned [`Auth::public_key`] up and answers 403 for unknown keys.
//!
//! Sources, in Relay's order (`relay-server/src/extractors/request_meta.rs`):
//! 1. `X-Sentry-Auth: Sentry sentry_key=…, sentry_version=7, sentry_client=…`
//! 2. `Authorization: Sentry …` (same syntax; other schemes such as `Bearer` are ignored)
//! 3. the query string, when it mentions `sentry_` (`?sentry_key=…&sentry_version=7`)
//! 4. the envelope header `dsn` (envelope endpoint only), combined in [`combine_with_dsn`].
//!
//! Several sources carrying the *same* key are tolerated; different keys are rejected with
//! Relay's "multiple authorization payloads detected", no key at all with "missing authorization
//! information".

use std::borrow::Cow;

/// Where the public key was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthSource {
    /// `X-Sentry-Auth` header.
    SentryAuthHeader,
    /// `Authorization: Sentry …` header.
    AuthorizationHeader,
    /// `sentry_key` query parameter.
    QueryString,
    /// The `dsn` envelope header.
    EnvelopeDsn,
}

/// Authentication information of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// The DSN public key (lowercase; a `.flag` suffix such as `.no-cache` is stripped).
    pub public_key: String,
    /// `sentry_client`, falling back to the `User-Agent` header.
    pub client: Option<String>,
    /// `sentry_version` (protocol version, `7` today).
    pub version: Option<String>,
    /// Which source supplied the key.
    pub source: AuthSource,
}

/// Authentication failures; all but [`AuthError::ProjectMismatch`] answer 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No source carried a key.
    #[error("missing authorization information")]
    Missing,
    /// Two sources carried different keys.
    #[error("multiple authorization payloads detected")]
    Multiple,
    /// An `X-Sentry-Auth`/`Authorization` header or the query string could not be parsed, or had
    /// no `sentry_key`.
    #[error("bad x-sentry-auth header")]
    BadHeader,
    /// The key is not a plausible DSN public key.
    #[error("bad public key")]
    BadPublicKey,
    /// The envelope `dsn` header is not a DSN.
    #[error("bad envelope authentication header")]
    BadDsn,
    /// The envelope `dsn` names another project than the request path.
    #[error("project id in the DSN does not match the request path")]
    ProjectMismatch,
}

impl AuthError {
    /// HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            AuthError::ProjectMismatch => 403,
            _ => 401,
        }
    }
}

/// The parts of a DSN this edge needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dsn {
    /// Public key (user part of the URL).
    pub public_key: String,
    /// Project id (last path segment).
    pub project_id: u64,
}

/// Extracts authentication from request headers (lowercase names, as API Gateway v2 delivers
/// them; matched case-insensitively anyway) and the raw query string.
///
/// `Ok(None)` means no request-level source was present; the envelope `dsn` header may still
/// supply one (see [`combine_with_dsn`]).
pub fn from_request(headers: &[(String, String)], query: &str) -> Result<Option<Auth>, AuthError> {
    let mut found: Option<Auth> = None;
    let user_agent = header(headers, "user-agent");

    if let Some(value) = header(headers, "x-sentry-auth") {
        let auth = parse_auth_header(value, AuthSource::SentryAuthHeader)?;
        merge(&mut found, auth)?;
    }
    if let Some(value) = header(headers, "authorization")
        && has_sentry_scheme(value)
    {
        let auth = parse_auth_header(value, AuthSource::AuthorizationHeader)?;
        merge(&mut found, auth)?;
    }
    if query.contains("sentry_") {
        let auth = from_pairs(query_pairs(query), AuthSource::QueryString)?;
        merge(&mut found, auth)?;
    }

    if let Some(auth) = found.as_mut()
        && auth.client.is_none()
    {
        auth.client = user_agent.map(str::to_owned);
    }
    Ok(found)
}

/// Combines request-level auth with the envelope `dsn` header and checks the DSN's project id
/// against the path's. Returns the final auth or an error (missing / multiple / mismatch).
pub fn combine_with_dsn(
    request: Option<Auth>,
    dsn: Option<&str>,
    path_project_id: u64,
) -> Result<Auth, AuthError> {
    let Some(dsn) = dsn else {
        return request.ok_or(AuthError::Missing);
    };
    let dsn = parse_dsn(dsn)?;
    if dsn.project_id != path_project_id {
        return Err(AuthError::ProjectMismatch);
    }
    match request {
        Some(auth) if auth.public_key == dsn.public_key => Ok(auth),
        Some(_) => Err(AuthError::Multiple),
        None => Ok(Auth {
            public_key: dsn.public_key,
            client: None,
            version: None,
            source: AuthSource::EnvelopeDsn,
        }),
    }
}

/// Parses `{scheme}://{public_key}[:{secret}]@{host}[:{port}]{path}/{project_id}`.
///
/// Hand-written: the allowed dependency set has no URL parser, and a DSN needs only the user
/// part and the last path segment.
pub fn parse_dsn(dsn: &str) -> Result<Dsn, AuthError> {
    let dsn = dsn.trim();
    let (scheme, rest) = dsn.split_once("://").ok_or(AuthError::BadDsn)?;
    if scheme.is_empty() || !scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+') {
        return Err(AuthError::BadDsn);
    }
    let (userinfo, host_and_path) = rest.split_once('@').ok_or(AuthError::BadDsn)?;
    let public_key = userinfo.split(':').next().unwrap_or_default();
    let public_key = validate_public_key(&percent_decode(public_key))?;
    let path = host_and_path.split(['?', '#']).next().unwrap_or_default().trim_end_matches('/');
    let (host, project) = path.rsplit_once('/').ok_or(AuthError::BadDsn)?;
    if host.is_empty() {
        return Err(AuthError::BadDsn);
    }
    let project_id = project.parse::<u64>().ok().filter(|id| *id > 0).ok_or(AuthError::BadDsn)?;
    Ok(Dsn { public_key, project_id })
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

fn has_sentry_scheme(value: &str) -> bool {
    let value = value.trim_start();
    value.len() >= 7 && value.as_bytes()[..7].eq_ignore_ascii_case(b"sentry ")
}

fn merge(found: &mut Option<Auth>, auth: Auth) -> Result<(), AuthError> {
    match found {
        Some(existing) if existing.public_key != auth.public_key => Err(AuthError::Multiple),
        Some(existing) => {
            // Same key twice: keep the first source, fill in what it lacked.
            if existing.client.is_none() {
                existing.client = auth.client;
            }
            if existing.version.is_none() {
                existing.version = auth.version;
            }
            Ok(())
        }
        None => {
            *found = Some(auth);
            Ok(())
        }
    }
}

/// `Sentry k=v, k=v` (scheme case-insensitive, Relay's `Auth::from_str`).
fn parse_auth_header(value: &str, source: AuthSource) -> Result<Auth, AuthError> {
    if !has_sentry_scheme(value) {
        return Err(AuthError::BadHeader);
    }
    let params = &value.trim_start()[7..];
    let pairs = params.split(',').filter_map(|item| {
        let item = item.trim();
        if item.is_empty() {
            return None;
        }
        let (k, v) = item.split_once('=').unwrap_or((item, ""));
        Some((Cow::Borrowed(k.trim()), Cow::Borrowed(v.trim())))
    });
    from_pairs(pairs, source)
}

fn from_pairs<'a>(
    pairs: impl Iterator<Item = (Cow<'a, str>, Cow<'a, str>)>,
    source: AuthSource,
) -> Result<Auth, AuthError> {
    let mut key = None;
    let mut client = None;
    let mut version = None;
    for (k, v) in pairs {
        // Relay accepts the keys with and without the `sentry_` prefix.
        match k.strip_prefix("sentry_").unwrap_or(&k) {
            "key" => key = Some(v.into_owned()),
            "client" if !v.is_empty() => client = Some(v.into_owned()),
            "version" if !v.is_empty() => version = Some(v.into_owned()),
            // `sentry_secret` and `sentry_timestamp` are deprecated and ignored.
            _ => {}
        }
    }
    let key = key.ok_or(AuthError::BadHeader)?;
    Ok(Auth { public_key: validate_public_key(&key)?, client, version, source })
}

/// Sentry keys are 32 hex characters; Relay's `ProjectKey::parse_with_flags` also accepts a
/// `.flag` suffix. We are lenient about the alphabet (the key lookup rejects unknown keys with
/// 403) but refuse empty, oversized or non-token keys.
fn validate_public_key(key: &str) -> Result<String, AuthError> {
    let key = key.split('.').next().unwrap_or_default().trim();
    let plausible = !key.is_empty()
        && key.len() <= 64
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plausible { Ok(key.to_ascii_lowercase()) } else { Err(AuthError::BadPublicKey) }
}

/// `application/x-www-form-urlencoded` pairs of a query string.
///
/// Hand-written: only `sentry_*` parameters are read, and pulling in `url`/`form_urlencoded`
/// for that is not worth a dependency on the hot path.
pub fn query_pairs(query: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k), percent_decode(v))
    })
}

fn percent_decode(input: &str) -> Cow<'_, str> {
    if !input.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(input);
    }
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const KEY: &str = "c0ffee0c0ffee0c0ffee0c0ffee0c0ff";

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn python_sdk_header() {
        let headers = h(&[
            (
                "x-sentry-auth",
                "Sentry sentry_key=c0ffee0c0ffee0c0ffee0c0ffee0c0ff, sentry_version=7, sentry_client=sentry.python/2.75.0",
            ),
            ("user-agent", "sentry.python/2.75.0"),
        ]);
        let auth = from_request(&headers, "").unwrap().unwrap();
        assert_eq!(auth.public_key, KEY);
        assert_eq!(auth.version.as_deref(), Some("7"));
        assert_eq!(auth.client.as_deref(), Some("sentry.python/2.75.0"));
        assert_eq!(auth.source, AuthSource::SentryAuthHeader);
    }

    #[test]
    fn header_name_and_scheme_are_case_insensitive_and_secret_ignored() {
        let headers = h(&[(
            "X-Sentry-AUTH",
            "sEnTrY sentry_key=C0FFEE0C0FFEE0C0FFEE0C0FFEE0C0FF,sentry_secret=s3cr3t, sentry_timestamp=1",
        )]);
        let auth = from_request(&headers, "").unwrap().unwrap();
        assert_eq!(auth.public_key, KEY);
        assert_eq!(auth.version, None);
    }

    #[test]
    fn client_falls_back_to_user_agent() {
        let headers = h(&[("x-sentry-auth", "Sentry sentry_key=abc"), ("user-agent", "curl/8")]);
        let auth = from_request(&headers, "").unwrap().unwrap();
        assert_eq!(auth.client.as_deref(), Some("curl/8"));
    }

    #[test]
    fn authorization_header() {
        let headers = h(&[("authorization", "Sentry sentry_key=abc, sentry_version=7")]);
        let auth = from_request(&headers, "").unwrap().unwrap();
        assert_eq!(auth.public_key, "abc");
        assert_eq!(auth.source, AuthSource::AuthorizationHeader);
        // Other schemes are not ours.
        let headers = h(&[("authorization", "Bearer xyz")]);
        assert_eq!(from_request(&headers, "").unwrap(), None);
    }

    #[test]
    fn node_sdk_query_string() {
        let q = "sentry_version=7&sentry_key=c0ffee0c0ffee0c0ffee0c0ffee0c0ff&sentry_client=sentry.javascript.node%2F11.12.0";
        let auth = from_request(&[], q).unwrap().unwrap();
        assert_eq!(auth.public_key, KEY);
        assert_eq!(auth.client.as_deref(), Some("sentry.javascript.node/11.12.0"));
        assert_eq!(auth.source, AuthSource::QueryString);
    }

    #[test]
    fn query_without_sentry_params_is_not_auth() {
        assert_eq!(from_request(&[], "foo=bar").unwrap(), None);
    }

    #[test]
    fn bad_headers() {
        for value in ["Basic abc", "Sentry sentry_version=7", "Sentry ", "Sentry sentry_key="] {
            let headers = h(&[("x-sentry-auth", value)]);
            let err = from_request(&headers, "").unwrap_err();
            assert!(matches!(err, AuthError::BadHeader | AuthError::BadPublicKey), "{value}: {err:?}");
            assert_eq!(err.status(), 401);
        }
        let headers = h(&[("x-sentry-auth", "Sentry sentry_key=a b c")]);
        assert_eq!(from_request(&headers, "").unwrap_err(), AuthError::BadPublicKey);
        assert_eq!(from_request(&[], "sentry_version=7").unwrap_err(), AuthError::BadHeader);
    }

    #[test]
    fn flag_suffix_is_stripped() {
        let headers = h(&[("x-sentry-auth", "Sentry sentry_key=abc.no-cache")]);
        assert_eq!(from_request(&headers, "").unwrap().unwrap().public_key, "abc");
    }

    #[test]
    fn same_key_twice_is_fine_different_keys_are_not() {
        let headers = h(&[("x-sentry-auth", "Sentry sentry_key=abc")]);
        let auth = from_request(&headers, "sentry_key=abc&sentry_version=7").unwrap().unwrap();
        assert_eq!(auth.version.as_deref(), Some("7"));
        let err = from_request(&headers, "sentry_key=def").unwrap_err();
        assert_eq!(err, AuthError::Multiple);
        assert_eq!(err.to_string(), "multiple authorization payloads detected");
    }

    #[test]
    fn dsn_parsing() {
        let dsn = parse_dsn("http://c0ffee0c0ffee0c0ffee0c0ffee0c0ff@127.0.0.1:8000/42").unwrap();
        assert_eq!(dsn.public_key, KEY);
        assert_eq!(dsn.project_id, 42);
        let dsn = parse_dsn("https://pub:secret@o1.ingest.example.com/sub/path/7/").unwrap();
        assert_eq!((dsn.public_key.as_str(), dsn.project_id), ("pub", 7));
        for bad in [
            "",
            "not a dsn",
            "https://example.com/1",
            "https://key@example.com/",
            "https://key@example.com/0",
            "https://key@/1",
            "://key@example.com/1",
        ] {
            assert!(parse_dsn(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn combine_rules() {
        let dsn = "https://abc@example.com/42";
        let auth = combine_with_dsn(None, Some(dsn), 42).unwrap();
        assert_eq!(auth.source, AuthSource::EnvelopeDsn);
        assert_eq!(auth.public_key, "abc");
        assert_eq!(combine_with_dsn(None, Some(dsn), 43).unwrap_err(), AuthError::ProjectMismatch);
        assert_eq!(AuthError::ProjectMismatch.status(), 403);
        let req = from_request(&[], "sentry_key=abc").unwrap();
        assert_eq!(combine_with_dsn(req.clone(), Some(dsn), 42).unwrap().source, AuthSource::QueryString);
        let other = from_request(&[], "sentry_key=def").unwrap();
        assert_eq!(combine_with_dsn(other, Some(dsn), 42).unwrap_err(), AuthError::Multiple);
        assert_eq!(combine_with_dsn(None, None, 42).unwrap_err(), AuthError::Missing);
        assert_eq!(AuthError::Missing.to_string(), "missing authorization information");
        assert_eq!(combine_with_dsn(None, Some("garbage"), 42).unwrap_err(), AuthError::BadDsn);
        assert_eq!(combine_with_dsn(req, None, 42).unwrap().public_key, "abc");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb+c"), "a/b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert!(matches!(percent_decode("plain"), Cow::Borrowed(_)));
    }
}
