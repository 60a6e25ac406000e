//! The HTTP client toward the content API and its OAuth endpoints.
//!
//! One pooled hyper client (HTTP/1.1, and HTTP/2 where TLS ALPN offers it)
//! over rustls, trusting the system's roots plus an optional CA bundle. Every
//! call is bounded by the configured response-head timeout; the gateway maps
//! a timeout to 504 and any other failure to 502, and never shows the
//! client the upstream's error text.

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
}

/// Cheap to clone; shares the connection pool.
#[derive(Clone)]
pub struct Client {
    inner: HyperClient<HttpsConnector<HttpConnector>, Body>,
    timeout: Duration,
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
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http);
        let inner = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(https);
        problems.into_result(Client {
            inner,
            timeout: cfg.timeout,
        })
    }

    /// Sends a request; the answer's body streams.
    ///
    /// The timeout is time without progress: it counts from the last chunk
    /// of the request body that went out (or from the start, for a request
    /// without one) to the response head. A multi-GB upload that streams
    /// for longer than the timeout is not cut off while its bytes flow, and
    /// one that stalls still ends with 504.
    pub async fn send(&self, req: Request<Body>) -> Result<Response<Incoming>, UpstreamError> {
        let result = if http_body::Body::is_end_stream(req.body()) {
            // Nothing to stream (most API calls): the timeout runs from now.
            tokio::time::timeout(self.timeout, self.inner.request(req))
                .await
                .map_err(|_| ())
        } else {
            self.send_streaming(req).await
        };
        match result {
            Err(()) => Err(UpstreamError::Timeout),
            Ok(Err(e)) if caused_by_upload_check(&e) => Err(UpstreamError::RefusedBody),
            Ok(Err(_)) => Err(UpstreamError::Unreachable),
            Ok(Ok(resp)) => Ok(resp),
        }
    }

    /// A request with a body: `Err(())` when no chunk went out for the
    /// whole timeout before the answer's head arrived.
    async fn send_streaming(
        &self,
        req: Request<Body>,
    ) -> Result<Result<Response<Incoming>, hyper_util::client::legacy::Error>, ()> {
        let (parts, body) = req.into_parts();
        let origin = tokio::time::Instant::now();
        let last = Arc::new(AtomicU64::new(0));
        let body = body::boxed(Progress {
            inner: body,
            last: last.clone(),
            origin,
        });
        let request = self.inner.request(Request::from_parts(parts, body));
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

/// `base` (scheme and authority) joined with an origin-form path.
pub fn join(base: &Uri, path_and_query: &str) -> Result<Uri, UpstreamError> {
    let mut parts = http::uri::Parts::default();
    parts.scheme = base.scheme().cloned();
    parts.authority = base.authority().cloned();
    parts.path_and_query = Some(
        path_and_query
            .parse()
            .map_err(|_| UpstreamError::Malformed)?,
    );
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn client(timeout: Duration) -> Client {
        Client::new(&Upstream {
            api: "http://127.0.0.1".parse().unwrap(),
            upload: "http://127.0.0.1".parse().unwrap(),
            token_endpoint: None,
            revoke_endpoint: None,
            connect_timeout: Duration::from_secs(2),
            timeout,
            ca_bundle: None,
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
}
