//! The HTTP client under every AWS SDK client of ours: hyper's HTTP/1.1 client, rustls over ring with
//! the system's root certificates (`SSL_CERT_FILE` is honoured), and plain HTTP for the local
//! emulators' `http://` endpoints.
//!
//! Why not the SDK's own (`aws-smithy-http-client`): it builds hyper and rustls with HTTP/2 and the
//! `h2` crate whatever the caller uses — about 0.6 MB of each Lambda binary (BENCHMARKS §11) — while
//! DynamoDB, Kinesis `PutRecords` and SNS are all spoken over HTTP/1.1 here. What this client keeps of
//! the SDK's: one connection pool per timeout setting, `TCP_NODELAY`, the connect timeout around the
//! TCP connection *and* the TLS handshake, the read timeout around the whole call, and the same
//! classification of failures, which the SDK's retry strategy reads: connection failures, resets and
//! closed connections are I/O errors (retried), timeouts are timeouts (retried), a request the client
//! refused is a user error (not retried), a response cut short is transient.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::retries::ErrorKind;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

type BoxError = Box<dyn StdError + Send + Sync>;
type Tls = hyper_rustls::HttpsConnector<TcpConnector>;

/// The client for [`aws_config::SdkConfig`]'s `http_client`. Loads the root certificates once, here
/// (at cold start, not on the first request); without any, HTTPS calls fail on the certificate and
/// plain HTTP still works.
pub fn https_client() -> SharedHttpClient {
    SharedHttpClient::new(Client { tls: tls(), connectors: Arc::default() })
}

/// TLS 1.2 and 1.3 over ring with the system's roots (an empty set, logged, when there are none).
fn tls() -> Option<rustls::ClientConfig> {
    use hyper_rustls::ConfigBuilderExt;
    let builder = || {
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
    };
    let roots = match builder() {
        Ok(b) => b.with_native_roots(),
        Err(e) => {
            tracing::error!(error = %e, "TLS configuration: HTTPS calls will fail");
            return None;
        }
    };
    match roots {
        Ok(b) => Some(b.with_no_client_auth()),
        Err(e) => {
            tracing::warn!(error = %e, "no root certificates: HTTPS calls will fail");
            builder()
                .ok()
                .map(|b| b.with_root_certificates(rustls::RootCertStore::empty()).with_no_client_auth())
        }
    }
}

#[derive(Clone, Debug)]
struct Client {
    tls: Option<rustls::ClientConfig>,
    /// One connector (and connection pool) per (connect timeout, read timeout), as the SDK's client.
    connectors: Arc<RwLock<HashMap<Timeouts, SharedHttpConnector>>>,
}

/// (connect timeout, read timeout).
type Timeouts = (Option<Duration>, Option<Duration>);

impl HttpClient for Client {
    fn http_connector(&self, settings: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
        self.connector((settings.connect_timeout(), settings.read_timeout()))
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        Some(ConnectorMetadata::new("hyper", Some(std::borrow::Cow::Borrowed("1.x"))))
    }
}

impl Client {
    fn connector(&self, key: Timeouts) -> SharedHttpConnector {
        if let Some(c) = self.connectors.read().ok().and_then(|m| m.get(&key).cloned()) {
            return c;
        }
        let connector = SharedHttpConnector::new(Connector::new(self.tls.clone(), key.0, key.1));
        match self.connectors.write() {
            Ok(mut m) => m.entry(key).or_insert(connector).clone(),
            Err(_) => connector,
        }
    }
}

#[derive(Debug)]
struct Connector {
    client: hyper_util::client::legacy::Client<TimedConnect, SdkBody>,
    read_timeout: Option<Duration>,
}

impl Connector {
    fn new(
        tls: Option<rustls::ClientConfig>,
        connect_timeout: Option<Duration>,
        read_timeout: Option<Duration>,
    ) -> Self {
        let mut tcp = TcpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        let tls = tls.map(|config| {
            hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(config)
                .https_or_http()
                .enable_http1()
                .wrap_connector(tcp.clone())
        });
        let mut builder = hyper_util::client::legacy::Client::builder(TokioExecutor::new());
        builder.pool_timer(TokioTimer::new());
        Self { client: builder.build(TimedConnect { tcp, tls, timeout: connect_timeout }), read_timeout }
    }
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(r) => r,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        let call = self.client.request(request);
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let answer =
                within("read", read_timeout, call).await.map_err(|t| ConnectorError::timeout(Box::new(t)))?;
            match answer {
                Ok(response) => HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                    .map_err(|e| ConnectorError::other(e.into(), None)),
                Err(e) => Err(classify(Box::new(e))),
            }
        })
    }
}

/// The connector: TLS when the URL is `https` (the connect timeout around the TCP connection and the
/// handshake), plain TCP for `http` (the emulators).
#[derive(Clone, Debug)]
struct TimedConnect {
    tcp: TcpConnector,
    tls: Option<Tls>,
    timeout: Option<Duration>,
}

type Stream = hyper_rustls::MaybeHttpsStream<hyper_util::rt::TokioIo<tokio::net::TcpStream>>;
type Connecting = Pin<Box<dyn Future<Output = Result<Stream, BoxError>> + Send>>;

impl tower_service::Service<http::Uri> for TimedConnect {
    type Response = Stream;
    type Error = BoxError;
    type Future = Connecting;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Both connectors are always ready (hyper-util's and hyper-rustls's answer Ready at once).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let timeout = self.timeout;
        let connecting: Connecting = match (&mut self.tls, uri.scheme_str()) {
            (Some(tls), _) => Box::pin(tls.call(uri)),
            (None, Some("http")) => {
                let tcp = self.tcp.call(uri);
                Box::pin(async move { Ok(hyper_rustls::MaybeHttpsStream::Http(tcp.await?)) })
            }
            (None, _) => {
                Box::pin(async { Err(BoxError::from("no TLS configuration: see the log at start")) })
            }
        };
        Box::pin(
            async move { within("connect", timeout, connecting).await.map_err(|t| Box::new(t) as BoxError)? },
        )
    }
}

/// The output of `f`, or [`TimedOut`] (`what`) once `timeout`, when there is one, has elapsed.
async fn within<T>(
    what: &'static str,
    timeout: Option<Duration>,
    f: impl Future<Output = T>,
) -> Result<T, TimedOut> {
    match timeout {
        Some(t) => tokio::time::timeout(t, f).await.map_err(|_| TimedOut(what, t)),
        None => Ok(f.await),
    }
}

/// A connect or read timeout that elapsed.
#[derive(Debug)]
struct TimedOut(&'static str, Duration);

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} timeout of {:?} elapsed", self.0, self.1)
    }
}

impl StdError for TimedOut {}

/// What a failed call was, for the SDK's retry strategy (the rules of the SDK's own client, less
/// HTTP/2's).
fn classify(e: BoxError) -> ConnectorError {
    if source::<TimedOut>(e.as_ref()).is_some() {
        return ConnectorError::timeout(e);
    }
    if let Some(h) = source::<hyper::Error>(e.as_ref()) {
        if h.is_timeout() {
            return ConnectorError::timeout(e);
        }
        if h.is_user() {
            return ConnectorError::user(e);
        }
        if h.is_closed() || h.is_canceled() || source::<std::io::Error>(h).is_some() {
            return ConnectorError::io(e);
        }
        if h.is_incomplete_message() {
            return ConnectorError::other(e, Some(ErrorKind::TransientError));
        }
        return ConnectorError::other(e, None);
    }
    if let Some(u) = source::<hyper_util::client::legacy::Error>(e.as_ref())
        && (u.is_connect() || source::<std::io::Error>(u).is_some())
    {
        return ConnectorError::io(e);
    }
    ConnectorError::other(e, None)
}

fn source<'a, E: StdError + 'static>(e: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn connector(connect: Option<Duration>, read: Option<Duration>) -> Connector {
        Connector::new(tls(), connect, read)
    }

    fn get(url: String) -> HttpRequest {
        HttpRequest::try_from(http::Request::get(url).body(SdkBody::empty()).unwrap()).unwrap()
    }

    /// A server that answers each connection with `answer` (after `delay`), or closes it unanswered.
    async fn server(answer: Option<&'static [u8]>, delay: Duration) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    tokio::time::sleep(delay).await;
                    if let Some(a) = answer {
                        let _ = s.write_all(a).await;
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_response_comes_back_with_its_status_headers_and_body() {
        let addr = server(
            Some(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-amzn-requestid: r1\r\n\r\nok"),
            Duration::ZERO,
        )
        .await;
        let response = connector(None, None).call(get(format!("http://{addr}/x"))).await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(response.headers().get("x-amzn-requestid"), Some("r1"));
        use http_body_util::BodyExt;
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ok");
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_io_error() {
        // Bind, note the port, and close the listener: nothing listens there any more.
        let addr = {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap()
        };
        let e = connector(None, None).call(get(format!("http://{addr}/x"))).await.unwrap_err();
        assert!(e.is_io(), "{e:?}");
    }

    #[tokio::test]
    async fn a_connection_closed_unanswered_is_retryable() {
        let addr = server(None, Duration::ZERO).await;
        let e = connector(None, None).call(get(format!("http://{addr}/x"))).await.unwrap_err();
        assert!(e.is_io() || e.as_other() == Some(ErrorKind::TransientError), "{e:?}");
    }

    #[tokio::test]
    async fn the_read_timeout_is_a_timeout() {
        let addr =
            server(Some(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"), Duration::from_secs(5)).await;
        let started = std::time::Instant::now();
        let e = connector(None, Some(Duration::from_millis(200)))
            .call(get(format!("http://{addr}/x")))
            .await
            .unwrap_err();
        assert!(e.is_timeout(), "{e:?}");
        assert!(started.elapsed() < Duration::from_secs(4));
    }

    #[tokio::test]
    async fn the_connect_timeout_covers_the_tls_handshake() {
        // A server that accepts the TCP connection and never says a word: the TLS handshake hangs.
        let addr = server(None, Duration::from_secs(30)).await;
        let request = get(format!("https://{addr}/x"));
        let started = std::time::Instant::now();
        let e = connector(Some(Duration::from_millis(200)), None).call(request).await.unwrap_err();
        assert!(e.is_timeout(), "{e:?}");
        assert!(started.elapsed() < Duration::from_secs(4));
    }

    #[test]
    fn one_connector_per_timeout_setting() {
        let client = Client { tls: None, connectors: Arc::default() };
        let a = (Some(Duration::from_secs(2)), None);
        let b = (Some(Duration::from_secs(3)), None);
        let _ = client.connector(a);
        let _ = client.connector(a);
        let _ = client.connector(b);
        assert_eq!(client.connectors.read().map(|m| m.len()).unwrap_or(0), 2);
    }
}
