//! The HTTP client toward the content API and its OAuth endpoints.
//!
//! One pooled hyper client (HTTP/1.1, and HTTP/2 where TLS ALPN offers it)
//! over rustls, trusting the system's roots plus an optional CA bundle. Every
//! call is bounded by the configured response-head timeout; the gateway maps
//! a timeout to 504 and any other failure to 502, and never shows the
//! client the upstream's error text.

use std::sync::Arc;
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
    pub async fn send(&self, req: Request<Body>) -> Result<Response<Incoming>, UpstreamError> {
        match tokio::time::timeout(self.timeout, self.inner.request(req)).await {
            Err(_) => Err(UpstreamError::Timeout),
            Ok(Err(e)) if caused_by_upload_check(&e) => Err(UpstreamError::RefusedBody),
            Ok(Err(_)) => Err(UpstreamError::Unreachable),
            Ok(Ok(resp)) => Ok(resp),
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
