//! The HTTP client toward the content API and its OAuth endpoints.
//!
//! Over rustls (trusting the system's roots plus an optional CA bundle),
//! HTTP/1.1, and HTTP/2 where TLS ALPN offers it. Proxied requests go
//! through a lean [`pool::Pool`] per [`Origin`], those without a body by
//! the in-task HTTP/1.1 exchange of `h1`; the gateway's own calls
//! (introspection, token endpoints, ancestry lookups), which may go to any
//! URL, through hyper-util's general pooled client. Every call is bounded by
//! the configured response-head timeout, and a proxied body in flight (an
//! answer coming down, an upload going up) by `body_idle_timeout` between
//! two bytes ([`watch`]); the gateway maps a timeout to 504, a pool with no
//! connection free within `connection_wait` to 503, and any other failure
//! to 502, and never shows the client the upstream's error text.

mod h1;
pub mod pool;
mod watch;

#[doc(hidden)]
pub mod fuzzing;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderValue, Request, Response, Uri, header};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::body::{self, Body};
use crate::config::{Problems, Upstream};

/// True when an error's chain holds the upload guard's refusal.
fn caused_by_upload_check(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.downcast_ref::<crate::upload::UploadError>().is_some() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Why an upstream call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream unreachable or connection broken")]
    Unreachable,
    #[error("upstream timed out")]
    Timeout,
    #[error("upstream answer malformed")]
    Malformed,
    /// The client's body failed the gateway's own check while streaming
    /// (an upload part after the checked ones): the client's fault.
    #[error("request body refused while streaming")]
    RefusedBody,
    /// The origin is at `[upstream] max_connections` and none came free
    /// within `connection_wait`.
    #[error("no upstream connection came free in time")]
    Busy,
}

impl UpstreamError {
    /// The `kind` label of `scopegate_upstream_errors_total`.
    pub fn kind(self) -> &'static str {
        match self {
            UpstreamError::Timeout => "timeout",
            UpstreamError::Busy => "busy",
            UpstreamError::Unreachable | UpstreamError::Malformed | UpstreamError::RefusedBody => {
                "unreachable"
            }
        }
    }
}

/// True when `e` is the pool's refusal for want of a connection.
fn is_busy(e: &(dyn std::error::Error + 'static)) -> bool {
    matches!(
        e.downcast_ref::<pool::PoolError>(),
        Some(pool::PoolError::Busy)
    )
}

/// True when an error's chain holds an `E`.
fn caused_by<E: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.downcast_ref::<E>().is_some() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Cheap to clone; shares the connection pool.
#[derive(Clone)]
pub struct Client {
    inner: HyperClient<HttpsConnector<HttpConnector>, Body>,
    /// The same connector, for the proxy's per-origin pools.
    connector: HttpsConnector<HttpConnector>,
    timeout: Duration,
    /// How the per-origin pools treat their connections.
    pool: pool::Settings,
    /// `scopegate_upstream_errors_total`, for the failures the pools see
    /// after an answer began (stalled bodies).
    errors: Option<prometheus::IntCounterVec>,
}

impl Client {
    pub fn new(cfg: &Upstream) -> Result<Client, Problems> {
        let mut problems = Problems::new(&cfg.ca_bundle.clone().unwrap_or_default());
        let mut roots = rustls::RootCertStore::empty();
        // A machine without system roots can still talk to http:// or to a
        // configured bundle; a bad single system cert is skipped, as browsers do.
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        if let Some(path) = &cfg.ca_bundle {
            match CertificateDer::pem_file_iter(path) {
                Ok(iter) => {
                    for (i, cert) in iter.enumerate() {
                        match cert
                            .map_err(|e| e.to_string())
                            .and_then(|c| roots.add(c).map_err(|e| e.to_string()))
                        {
                            Ok(()) => {}
                            Err(e) => problems.push(&format!("certificate {i}"), e),
                        }
                    }
                }
                Err(e) => problems.push("", format!("cannot read the CA bundle: {e}")),
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(cfg.connect_timeout));
        // A peer that vanished without a FIN or RST (a dropped NAT entry, a
        // dead host) is found by the kernel instead of by a request timing out.
        http.set_keepalive(Some(cfg.pool.tcp_keepalive));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http);
        let inner = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(cfg.pool.idle_timeout)
            .build(https.clone());
        problems.into_result(Client {
            inner,
            connector: https,
            timeout: cfg.timeout,
            pool: cfg.pool.clone(),
            errors: None,
        })
    }

    /// Counts the failures only the pools see (stalled bodies) into
    /// `errors` (`scopegate_upstream_errors_total`). Set before the
    /// [`Origin`]s are made.
    pub fn count_errors_into(mut self, errors: prometheus::IntCounterVec) -> Client {
        self.errors = Some(errors);
        self
    }

    /// Sends a request; the answer's body streams.
    ///
    /// The timeout is time without progress: it counts from the last chunk
    /// of the request body that went out (or from the start, for a request
    /// without one) to the response head. A multi-GB upload that streams
    /// for longer than the timeout is not cut off while its bytes flow, and
    /// one that stalls still ends with 504.
    pub async fn send(&self, req: Request<Body>) -> Result<Response<Incoming>, UpstreamError> {
        self.timed(req, |r| self.inner.request(r)).await
    }

    /// Like [`Client::send`], through `origin`'s own pool (the proxy path).
    pub async fn send_to(
        &self,
        origin: &Origin,
        req: Request<Body>,
    ) -> Result<Response<Body>, UpstreamError> {
        self.timed(req, |r| origin.pool.send(r)).await
    }

    /// Runs `send` under the timeout (see [`Client::send`]) and sorts its
    /// failure into an [`UpstreamError`].
    async fn timed<R, E, F>(
        &self,
        req: Request<Body>,
        send: impl FnOnce(Request<Body>) -> F,
    ) -> Result<R, UpstreamError>
    where
        F: Future<Output = Result<R, E>>,
        E: std::error::Error + 'static,
    {
        let result = if http_body::Body::is_end_stream(req.body()) {
            // Nothing to stream (most API calls): the timeout runs from now.
            tokio::time::timeout(self.timeout, send(req))
                .await
                .map_err(|_| ())
        } else {
            self.send_streaming(req, send).await
        };
        match result {
            Err(()) => Err(UpstreamError::Timeout),
            Ok(Err(e)) if caused_by_upload_check(&e) => Err(UpstreamError::RefusedBody),
            Ok(Err(e)) if caused_by::<watch::Stalled>(&e) => Err(UpstreamError::Timeout),
            Ok(Err(e)) if is_busy(&e) => Err(UpstreamError::Busy),
            Ok(Err(_)) => Err(UpstreamError::Unreachable),
            Ok(Ok(resp)) => Ok(resp),
        }
    }

    /// A request with a body: `Err(())` when no chunk went out for the
    /// whole timeout before the answer's head arrived.
    async fn send_streaming<R, E, F>(
        &self,
        req: Request<Body>,
        send: impl FnOnce(Request<Body>) -> F,
    ) -> Result<Result<R, E>, ()>
    where
        F: Future<Output = Result<R, E>>,
    {
        let (parts, body) = req.into_parts();
        let origin = tokio::time::Instant::now();
        let last = Arc::new(AtomicU64::new(0));
        let body = body::boxed(Progress {
            inner: body,
            last: last.clone(),
            origin,
        });
        let request = send(Request::from_parts(parts, body));
        tokio::pin!(request);
        loop {
            let since = Duration::from_millis(last.load(Ordering::Relaxed));
            let deadline = origin + since + self.timeout;
            tokio::select! {
                r = &mut request => return Ok(r),
                () = tokio::time::sleep_until(deadline) => {
                    // No chunk went out since `deadline` was set: give up.
                    if Duration::from_millis(last.load(Ordering::Relaxed)) == since {
                        return Err(());
                    }
                }
            }
        }
    }

    /// `GET base+path` with a bearer token; returns the status and the JSON
    /// body (Null when it is not JSON). Bodies over 1 MiB are refused.
    pub async fn get_json(
        &self,
        base: &Uri,
        path: &str,
        bearer: &str,
    ) -> Result<(u16, serde_json::Value), UpstreamError> {
        let req = Request::get(join(base, path)?)
            .header(header::AUTHORIZATION, bearer_value(bearer)?)
            .header(header::ACCEPT, "application/json")
            .body(body::empty())
            .map_err(|_| UpstreamError::Malformed)?;
        self.json_answer(req).await
    }

    /// [`Client::get_json`] with one more request header (Box's `BoxApi`
    /// when the exchange resolves a shared link).
    pub async fn get_json_with(
        &self,
        base: &Uri,
        path: &str,
        bearer: &str,
        extra: (http::HeaderName, HeaderValue),
    ) -> Result<(u16, serde_json::Value), UpstreamError> {
        let req = Request::get(join(base, path)?)
            .header(header::AUTHORIZATION, bearer_value(bearer)?)
            .header(header::ACCEPT, "application/json")
            .header(extra.0, extra.1)
            .body(body::empty())
            .map_err(|_| UpstreamError::Malformed)?;
        self.json_answer(req).await
    }

    /// `POST` a form to a full URL; returns the status and the JSON body.
    pub async fn post_form(
        &self,
        url: &Uri,
        form: String,
    ) -> Result<(u16, serde_json::Value), UpstreamError> {
        let req = Request::post(url.clone())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .body(body::full(form))
            .map_err(|_| UpstreamError::Malformed)?;
        self.json_answer(req).await
    }

    async fn json_answer(
        &self,
        req: Request<Body>,
    ) -> Result<(u16, serde_json::Value), UpstreamError> {
        let resp = self.send(req).await?;
        let status = resp.status().as_u16();
        let bytes =
            tokio::time::timeout(self.timeout, body::read_limited(resp.into_body(), 1 << 20))
                .await
                .map_err(|_| UpstreamError::Timeout)?
                .map_err(|_| UpstreamError::Malformed)?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        ))
    }
}

/// A request body that records, in milliseconds since `origin`, when it
/// last yielded a frame or ended: the progress [`Client::send`] times.
struct Progress {
    inner: Body,
    last: Arc<AtomicU64>,
    origin: tokio::time::Instant,
}

impl http_body::Body for Progress {
    type Data = bytes::Bytes;
    type Error = body::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if polled.is_ready() {
            let ms = self.origin.elapsed().as_millis() as u64;
            self.last.store(ms, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// An upstream the proxy forwards to: its pool, and the `Host` value for
/// it, made once (the pooled client would format one per request).
pub struct Origin {
    pub host: Option<HeaderValue>,
    pool: Arc<pool::Pool>,
}

impl Origin {
    pub fn new(base: &Uri, client: &Client) -> Origin {
        let default_port = match base.scheme_str() {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        };
        let host = base.host().and_then(|h| {
            let value = match base.port_u16() {
                Some(p) if Some(p) != default_port => format!("{h}:{p}"),
                _ => h.to_string(),
            };
            HeaderValue::from_str(&value).ok()
        });
        Origin {
            host,
            pool: pool::Pool::new(
                base.clone(),
                client.connector.clone(),
                client.pool.clone(),
                client.errors.clone(),
            ),
        }
    }

    /// The origin's open connections (idle or busy).
    pub fn open_connections(&self) -> usize {
        self.pool.open_connections()
    }
}

/// `base` (scheme and authority) joined with an origin-form path.
pub fn join(base: &Uri, path_and_query: &str) -> Result<Uri, UpstreamError> {
    let pq = path_and_query
        .parse()
        .map_err(|_| UpstreamError::Malformed)?;
    with_path(base, pq)
}

/// `base`'s scheme and authority with `path_and_query`.
pub(crate) fn with_path(
    base: &Uri,
    path_and_query: http::uri::PathAndQuery,
) -> Result<Uri, UpstreamError> {
    let mut parts = http::uri::Parts::default();
    parts.scheme = base.scheme().cloned();
    parts.authority = base.authority().cloned();
    parts.path_and_query = Some(path_and_query);
    Uri::from_parts(parts).map_err(|_| UpstreamError::Malformed)
}

/// `Bearer <token>`, marked sensitive so hyper never logs or indexes it.
pub fn bearer_value(token: &str) -> Result<HeaderValue, UpstreamError> {
    let mut v =
        HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| UpstreamError::Malformed)?;
    v.set_sensitive(true);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn origins_name_their_host_as_a_client_would() {
        let c = client(Duration::from_secs(1));
        let host = |u: &str| Origin::new(&u.parse().unwrap(), &c).host.unwrap();
        assert_eq!(host("http://127.0.0.1:8080"), "127.0.0.1:8080");
        assert_eq!(host("https://api.box.com"), "api.box.com");
        assert_eq!(host("https://api.box.com:443"), "api.box.com");
        assert_eq!(host("http://api.example:443"), "api.example:443");
        let base: Uri = "https://api.box.com".parse().unwrap();
        let url = with_path(&base, "/2.0/files/1?fields=name".parse().unwrap()).unwrap();
        assert_eq!(url, "https://api.box.com/2.0/files/1?fields=name");
    }
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn client(timeout: Duration) -> Client {
        Client::new(&Upstream {
            api: "http://127.0.0.1".parse().unwrap(),
            upload: "http://127.0.0.1".parse().unwrap(),
            download: "http://127.0.0.1".parse().unwrap(),
            public_download: "http://127.0.0.1".parse().unwrap(),
            token_endpoint: None,
            revoke_endpoint: None,
            connect_timeout: Duration::from_secs(2),
            timeout,
            ca_bundle: None,
            pool: Default::default(),
        })
        .unwrap()
    }

    /// An upstream that reads until the chunked body's last chunk, then
    /// answers 201, as an upload endpoint does.
    async fn answer_after_body() -> std::net::SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            while !seen.ends_with(b"0\r\n\r\n") {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    return;
                }
                seen.extend_from_slice(&buf[..n]);
            }
            let _ = s
                .write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n")
                .await;
        });
        addr
    }

    /// Five chunks 120 ms apart, then (with `stall`) nothing, forever.
    fn slow_body(stall: bool) -> Body {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
        tokio::spawn(async move {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(120)).await;
                let _ = tx.send(Bytes::from_static(b"chunk")).await;
            }
            if stall {
                std::future::pending::<()>().await;
            }
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|b| (Ok::<_, body::BoxError>(http_body::Frame::data(b)), rx))
        });
        body::boxed(http_body_util::StreamBody::new(stream))
    }

    #[tokio::test]
    async fn an_upload_streaming_longer_than_the_timeout_is_not_cut() {
        let addr = answer_after_body().await;
        // 600 ms of body against a 300 ms timeout: still progress, so no 504.
        let req = Request::post(format!("http://{addr}/api/2.0/files/content"))
            .body(slow_body(false))
            .unwrap();
        let r = client(Duration::from_millis(300)).send(req).await;
        assert_eq!(r.map(|r| r.status().as_u16()), Ok(201));
    }

    #[tokio::test]
    async fn a_body_that_stalls_still_times_out() {
        let addr = answer_after_body().await;
        let started = std::time::Instant::now();
        let req = Request::post(format!("http://{addr}/api/2.0/files/content"))
            .body(slow_body(true))
            .unwrap();
        let r = client(Duration::from_millis(300)).send(req).await;
        assert_eq!(r.err(), Some(UpstreamError::Timeout));
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    /// A raw HTTP/1.1 upstream answering every request with `answer`;
    /// with `close_each` it closes the socket after each answer without
    /// saying so (as a keep-alive timeout does). Counts accepted connections.
    /// Every request head it read must start with `GET /2.0/users/me HTTP/1.1`
    /// (origin form, as RFC 9112 3.2.1 asks of a client); it answers 400
    /// otherwise.
    async fn raw_upstream(
        answer: &'static str,
        close_each: bool,
    ) -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    const BAD: &str = "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 4096];
                    loop {
                        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                            match s.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => seen.extend_from_slice(&buf[..n]),
                            }
                        }
                        let origin_form = seen.starts_with(b"GET /2.0/users/me HTTP/1.1\r\n");
                        seen.clear();
                        let out = if origin_form { answer } else { BAD };
                        if s.write_all(out.as_bytes()).await.is_err() || close_each {
                            return;
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    async fn get_via(c: &Client, o: &Origin) -> (u16, Bytes) {
        // Origin form, as `proxy::forward` hands it over.
        let req = Request::get("/2.0/users/me")
            .header(header::HOST, o.host.clone().unwrap())
            .body(body::empty())
            .unwrap();
        let resp = c.send_to(o, req).await.unwrap();
        let status = resp.status().as_u16();
        (
            status,
            body::read_limited(resp.into_body(), 1024).await.unwrap(),
        )
    }

    fn origin_at(addr: std::net::SocketAddr, c: &Client) -> Origin {
        Origin::new(&format!("http://{addr}").parse().unwrap(), c)
    }

    const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

    #[tokio::test]
    async fn the_proxy_pool_reuses_one_connection_for_sequential_requests() {
        let (addr, accepted) = raw_upstream(OK, false).await;
        let c = client(Duration::from_secs(5));
        let o = origin_at(addr, &c);
        for _ in 0..5 {
            assert_eq!(get_via(&c, &o).await, (200, Bytes::from_static(b"ok")));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_answer_without_a_body_hands_its_connection_back_at_once() {
        let (addr, accepted) = raw_upstream("HTTP/1.1 204 No Content\r\n\r\n", false).await;
        let c = client(Duration::from_secs(5));
        let o = origin_at(addr, &c);
        for _ in 0..3 {
            assert_eq!(get_via(&c, &o).await, (204, Bytes::new()));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_is_replaced_without_an_error() {
        let (addr, accepted) = raw_upstream(OK, true).await;
        let c = client(Duration::from_secs(5));
        let o = origin_at(addr, &c);
        for _ in 0..4 {
            assert_eq!(get_via(&c, &o).await, (200, Bytes::from_static(b"ok")));
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn concurrent_requests_get_their_own_connections_and_keep_them() {
        let (addr, accepted) = raw_upstream(OK, false).await;
        let c = client(Duration::from_secs(5));
        let o = Arc::new(origin_at(addr, &c));
        for _ in 0..2 {
            let all = (0..16).map(|_| {
                let (c, o) = (c.clone(), o.clone());
                tokio::spawn(async move { get_via(&c, &o).await })
            });
            for r in futures_util::future::join_all(all).await {
                assert_eq!(r.unwrap(), (200, Bytes::from_static(b"ok")));
            }
        }
        let n = accepted.load(Ordering::SeqCst);
        assert!(
            (1..=16).contains(&n),
            "the second burst reused the first's: {n}"
        );
    }

    /// Sequential GETs against a raw upstream answering `answer`: what each
    /// got, and how many connections the upstream accepted.
    async fn lean_gets(
        answer: &'static str,
        close_each: bool,
        n: usize,
    ) -> (Vec<Result<(u16, Bytes), UpstreamError>>, usize) {
        let (addr, accepted) = raw_upstream(answer, close_each).await;
        let c = client(Duration::from_secs(5));
        let o = origin_at(addr, &c);
        let mut got = Vec::new();
        for _ in 0..n {
            let req = Request::get("/2.0/users/me")
                .header(header::HOST, o.host.clone().unwrap())
                .body(body::empty())
                .unwrap();
            got.push(match c.send_to(&o, req).await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    match body::read_limited(resp.into_body(), 1 << 16).await {
                        Ok(b) => Ok((status, b)),
                        Err(_) => Err(UpstreamError::Malformed),
                    }
                }
                Err(e) => Err(e),
            });
        }
        (got, accepted.load(Ordering::SeqCst))
    }

    fn ok(body: &'static str) -> Result<(u16, Bytes), UpstreamError> {
        Ok((200, Bytes::from_static(body.as_bytes())))
    }

    /// How the lean path reads each kind of answer, and whether the
    /// connection carries the next request: (answer, upstream closes after
    /// each, body every request gets, connections the upstream accepts for
    /// three requests).
    #[tokio::test]
    async fn answers_are_framed_and_connections_reused_only_when_clean() {
        let cases: [(&str, &'static str, bool, &'static str, usize); 5] = [
            (
                "chunked, with extensions and a trailer: decoded, reused",
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=1\r\n world\r\n0\r\nx-t: 1\r\n\r\n",
                false,
                "hello world",
                1,
            ),
            (
                "Connection: close is never followed by another request",
                "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok",
                false,
                "ok",
                3,
            ),
            (
                "no length: the body runs to the end of the connection",
                "HTTP/1.1 200 OK\r\n\r\nall of it",
                true,
                "all of it",
                3,
            ),
            (
                // They may be the start of someone else's answer.
                "bytes past the answer: the connection is not reused",
                "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nforgd",
                false,
                "ok",
                3,
            ),
            (
                "informational answers are skipped",
                "HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
                false,
                "ok",
                1,
            ),
        ];
        for (what, answer, close_each, body, conns) in cases {
            let (got, accepted) = lean_gets(answer, close_each, 3).await;
            assert_eq!(got, vec![ok(body), ok(body), ok(body)], "{what}");
            assert_eq!(accepted, conns, "{what}");
        }
    }

    #[tokio::test]
    async fn a_chunked_answers_trailers_are_dropped() {
        use http_body_util::BodyExt;
        let (addr, _) = raw_upstream(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nx-secret-trailer: 1\r\n\r\n",
            false,
        )
        .await;
        let c = client(Duration::from_secs(5));
        let o = origin_at(addr, &c);
        let req = Request::get("/2.0/users/me")
            .header(header::HOST, o.host.clone().unwrap())
            .body(body::empty())
            .unwrap();
        let got = c
            .send_to(&o, req)
            .await
            .unwrap()
            .into_body()
            .collect()
            .await
            .unwrap();
        assert!(got.trailers().is_none());
        assert_eq!(got.to_bytes(), Bytes::from_static(b"ok"));
    }

    #[tokio::test]
    async fn answers_of_uncertain_length_are_refused_not_guessed() {
        for answer in [
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok!",
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 2\r\n\r\n2\r\nok\r\n0\r\n\r\n",
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n",
            "HTTP/1.1 2000 Odd\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
        ] {
            let (got, _) = lean_gets(answer, false, 1).await;
            assert_eq!(got, vec![Err(UpstreamError::Unreachable)], "{answer:?}");
        }
        // A chunked body that breaks off mid-way is an error to the reader, not an end.
        let (got, _) = lean_gets(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel",
            true,
            1,
        )
        .await;
        assert_eq!(got, vec![Err(UpstreamError::Malformed)]);
        let (got, _) = lean_gets("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhel", true, 1).await;
        assert_eq!(got, vec![Err(UpstreamError::Malformed)]);
    }

    #[tokio::test]
    async fn an_unreachable_origin_is_an_error_not_a_hang() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let c = client(Duration::from_secs(5));
        let o = origin_at(addr, &c);
        let req = Request::get("/").body(body::empty()).unwrap();
        assert_eq!(
            c.send_to(&o, req).await.err(),
            Some(UpstreamError::Unreachable)
        );
    }
}
