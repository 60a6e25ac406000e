//! Forwarding an allowed request, and the header rules on both sides.
//!
//! Forwarding needs a [`Permit`], which only [`crate::enforce`] builds: there
//! is no way to send a request upstream that the policy did not pass. The
//! request is rebuilt rather than patched: the canonical target, the
//! upstream chosen by the route's prefix, the client's end-to-end headers
//! minus everything that could change who the upstream thinks is asking
//! (hop-by-hop headers, the client's `X-Forwarded-*`, `Host`), then the
//! gateway's own `Authorization`, `X-Forwarded-*` and `X-Request-Id`.

use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, Uri};

use crate::body::{self, Body};
use crate::error::Rejection;
use crate::grant::Forward;
use crate::metrics::Metrics;
use crate::target::Target;
use crate::upstream::{Client, Origin, UpstreamError};

/// Proof that the policy allowed this request. Only `enforce` constructs one.
pub struct Permit {
    pub(crate) route: Arc<str>,
    pub(crate) target: Target,
    pub(crate) authorization: Option<HeaderValue>,
    /// Point the answer's `upload_url` at the gateway (upload preflight).
    pub(crate) rewrite_upload_url: bool,
}

impl Permit {
    pub(crate) fn new(route: Arc<str>, target: Target, forward: &Forward) -> Permit {
        Permit {
            route,
            target,
            rewrite_upload_url: false,
            authorization: match forward {
                Forward::Parent(v) => Some(v.clone()),
                Forward::AsIs => None,
            },
        }
    }
}

/// Headers that name the connection, not the message (RFC 9110 7.6.1), plus
/// the proxy ones. Never forwarded in either direction. (Names, not strings:
/// a `&str` is parsed into a name on every lookup, a measurable cost here.)
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

// The gateway's own headers toward the upstream.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Client headers that would let it speak for the gateway; replaced.
static SPOOFABLE: [HeaderName; 8] = [
    header::HOST,
    header::FORWARDED,
    X_FORWARDED_FOR,
    X_FORWARDED_HOST,
    X_FORWARDED_PROTO,
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-real-ip"),
    X_REQUEST_ID,
];

/// Headers that ask a server to treat the request as another method or
/// path than the one checked. Refused outright (400), not stripped, so a
/// client that relies on one learns at once.
pub static REWRITING: [HeaderName; 7] = [
    HeaderName::from_static("x-http-method-override"),
    HeaderName::from_static("x-http-method"),
    HeaderName::from_static("x-method-override"),
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
    HeaderName::from_static("x-original-method"),
    HeaderName::from_static("x-override-url"),
];

/// Removes hop-by-hop headers and every header the `Connection` header
/// names; `Authorization` is set again by the caller afterwards, so naming it
/// in `Connection` cannot drop or smuggle the checked token.
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    remove_where(h, |n| HOP_BY_HOP.contains(n));
}

/// Removes every header `doomed` picks, and (hop by hop) every header the
/// `Connection` header names. One pass over the names present, a handful,
/// instead of a hash lookup per name on the lists.
fn remove_where(h: &mut HeaderMap, doomed: impl Fn(&HeaderName) -> bool) {
    let mut names: Vec<HeaderName> = h.keys().filter(|n| doomed(n)).cloned().collect();
    if h.contains_key(header::CONNECTION) {
        names.extend(
            h.get_all(header::CONNECTION)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok()),
        );
    }
    for n in names {
        h.remove(n);
    }
}

/// What the forwarder needs to know about the client side.
pub struct ClientSide<'a> {
    /// The client's address, as a header value.
    pub forwarded_for: &'a HeaderValue,
    pub tls: bool,
    pub request_id: &'a HeaderValue,
    /// `[listen] public_url`: how clients reach the gateway.
    pub public_url: Option<&'a Uri>,
}

/// Sends the permitted request to the upstream and streams the answer back.
pub async fn forward(
    client: &Client,
    upstream: &Origin,
    permit: Permit,
    mut parts: http::request::Parts,
    body: Body,
    side: ClientSide<'_>,
    metrics: &Metrics,
) -> Result<Response<Body>, Rejection> {
    let pq = permit
        .target
        .into_path_and_query()
        .map_err(|_| Rejection::BadGateway)?;
    let uri = upstream.url(pq).map_err(|_| Rejection::BadGateway)?;
    let original_host = parts.headers.get(header::HOST).cloned().or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    let h = &mut parts.headers;
    remove_where(h, |n| HOP_BY_HOP.contains(n) || SPOOFABLE.contains(n));
    if let Some(host) = &upstream.host {
        h.insert(header::HOST, host.clone());
    }
    if let Some(auth) = permit.authorization {
        h.insert(header::AUTHORIZATION, auth);
    }
    h.insert(X_FORWARDED_FOR, side.forwarded_for.clone());
    h.insert(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(if side.tls { "https" } else { "http" }),
    );
    if let Some(host) = &original_host {
        h.insert(X_FORWARDED_HOST, host.clone());
    }
    h.insert(X_REQUEST_ID, side.request_id.clone());

    let mut req = Request::new(body);
    *req.method_mut() = parts.method;
    *req.uri_mut() = uri;
    *req.headers_mut() = parts.headers;
    *req.extensions_mut() = http::Extensions::new();

    let started = Instant::now();
    let result = client.send_to(upstream, req).await;
    metrics
        .upstream_seconds
        .with_label_values(&[&*permit.route])
        .observe(started.elapsed().as_secs_f64());
    let resp = match result {
        Ok(r) => r,
        Err(UpstreamError::RefusedBody) => {
            return Err(Rejection::BadRequest(
                "an upload must be its attributes part and one file part",
            ));
        }
        Err(e) => {
            let kind = match e {
                UpstreamError::Timeout => "timeout",
                _ => "unreachable",
            };
            metrics.upstream_errors.with_label_values(&[kind]).inc();
            return Err(match e {
                UpstreamError::Timeout => Rejection::GatewayTimeout,
                _ => Rejection::BadGateway,
            });
        }
    };
    let (mut rparts, rbody) = resp.into_parts();
    strip_hop_by_hop(&mut rparts.headers);
    if permit.rewrite_upload_url && rparts.status.is_success() {
        // The client reaches the gateway at the configured public URL, or
        // at the scheme and Host it used for this request.
        let base = match (
            side.public_url,
            original_host.as_ref().and_then(|h| h.to_str().ok()),
        ) {
            (Some(u), _) => Some(u.clone()),
            (None, Some(host)) => format!("{}://{host}", if side.tls { "https" } else { "http" })
                .parse()
                .ok(),
            (None, None) => None,
        };
        let bytes = body::read_limited(rbody, 64 * 1024)
            .await
            .map_err(|_| Rejection::BadGateway)?;
        let out = base
            .and_then(|b| rewrite_upload_url(&bytes, &b))
            .unwrap_or(bytes);
        rparts.headers.remove(header::CONTENT_LENGTH);
        return Ok(Response::from_parts(rparts, body::full(out)));
    }
    Ok(Response::from_parts(rparts, rbody))
}

/// `upload_url` of a JSON answer with its scheme and authority replaced by
/// `base`'s; `None` when there is nothing to rewrite.
fn rewrite_upload_url(json: &[u8], base: &Uri) -> Option<bytes::Bytes> {
    let mut v: serde_json::Value = serde_json::from_slice(json).ok()?;
    let url: Uri = v.get("upload_url")?.as_str()?.parse().ok()?;
    let pq = url.path_and_query()?.as_str();
    let new = crate::upstream::join(base, pq).ok()?;
    v["upload_url"] = serde_json::Value::String(new.to_string());
    Some(bytes::Bytes::from(v.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_urls_point_at_the_gateway() {
        let base: Uri = "https://gw.example.com".parse().unwrap();
        let out = rewrite_upload_url(
            br#"{"upload_url":"https://upload-las.app.box.com/api/2.0/files/content?upload_session_id=7","upload_token":null}"#,
            &base,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v["upload_url"],
            "https://gw.example.com/api/2.0/files/content?upload_session_id=7"
        );
        assert!(rewrite_upload_url(br#"{"other":1}"#, &base).is_none());
    }

    #[test]
    fn connection_named_headers_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "close, x-secret".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("keep-alive", "5".parse().unwrap());
        h.insert("x-kept", "1".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert!(!h.contains_key("x-secret"));
        assert!(!h.contains_key("keep-alive"));
        assert!(!h.contains_key(header::CONNECTION));
        assert!(h.contains_key("x-kept"));
    }
}
