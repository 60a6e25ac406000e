//! The receiver's own small HTTP client for the transmitter: metadata, JWKS,
//! stream status, verification requests and polls. JSON in, JSON out, every
//! call under a timeout and a body size limit.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// Largest answer read from the transmitter (a poll of 1000 SETs fits).
const MAX_ANSWER: usize = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("no answer in time")]
    Timeout,
    #[error("answered {0}")]
    Status(u16),
    #[error("the answer is not JSON or too large")]
    Malformed,
}

impl HttpError {
    /// A bounded metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            HttpError::Unreachable(_) => "unreachable",
            HttpError::Timeout => "timeout",
            HttpError::Status(_) => "status",
            HttpError::Malformed => "malformed",
        }
    }
}

#[derive(Clone)]
pub struct Http {
    inner: HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
    bearer: Option<String>,
}

impl Http {
    /// `bearer`: the credential presented to the transmitter, if any.
    pub fn new(bearer: Option<String>) -> Http {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(5)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Http {
            inner: HyperClient::builder(TokioExecutor::new()).build(https),
            bearer,
        }
    }

    /// `GET` a JSON document.
    pub async fn get(&self, url: &Uri, timeout: Duration) -> Result<Value, HttpError> {
        self.call(Method::GET, url, None, timeout).await
    }

    /// `POST` a JSON body; returns the JSON answer.
    pub async fn post(
        &self,
        url: &Uri,
        body: &Value,
        timeout: Duration,
    ) -> Result<Value, HttpError> {
        self.call(Method::POST, url, Some(body), timeout).await
    }

    async fn call(
        &self,
        method: Method,
        url: &Uri,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<Value, HttpError> {
        let mut b = Request::builder()
            .method(method)
            .uri(url.clone())
            .header(header::ACCEPT, "application/json");
        if let Some(t) = &self.bearer {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let bytes = match body {
            Some(v) => {
                b = b.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(v.to_string())
            }
            None => Bytes::new(),
        };
        let req = b
            .body(Full::new(bytes))
            .map_err(|e| HttpError::Unreachable(e.to_string()))?;
        let work = async {
            let resp = self
                .inner
                .request(req)
                .await
                .map_err(|e| HttpError::Unreachable(e.to_string()))?;
            let status = resp.status().as_u16();
            let body = Limited::new(resp.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|_| HttpError::Malformed)?
                .to_bytes();
            if !(200..300).contains(&status) {
                return Err(HttpError::Status(status));
            }
            if body.is_empty() {
                return Ok(Value::Null);
            }
            serde_json::from_slice(&body).map_err(|_| HttpError::Malformed)
        };
        tokio::time::timeout(timeout, work)
            .await
            .unwrap_or(Err(HttpError::Timeout))
    }
}

/// `url` with `?stream_id=<id>` (percent-encoded) added.
pub fn with_stream_id(url: &Uri, id: &str) -> Option<Uri> {
    let enc: String = form_urlencoded::byte_serialize(id.as_bytes()).collect();
    let s = url.to_string();
    let sep = if url.query().is_some() { '&' } else { '?' };
    format!("{s}{sep}stream_id={enc}").parse().ok()
}
