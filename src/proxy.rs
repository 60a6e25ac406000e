//! Forwarding an allowed request, and the header rules on both sides.
//!
//! Forwarding needs a [`Permit`], which only [`crate::enforce`] builds: there
//! is no way to send a request upstream that the policy did not pass. The
//! request is rebuilt rather than patched: the canonical target, the
//! upstream the route names (its `origin`), the client's end-to-end headers
//! minus everything that could change who the upstream thinks is asking
//! (hop-by-hop headers, the client's `X-Forwarded-*`, `Host`), then the
//! gateway's own `Authorization`, `X-Forwarded-*` and `X-Request-Id`.

use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, Uri};

use crate::body::Body;
use crate::error::Rejection;
use crate::grant::Forward;
use crate::headers::list_elements;
use crate::metrics::Metrics;
use crate::policy::OriginKind;
use crate::target::Target;
use crate::upstream::{Client, Origin, UpstreamError};

/// Proof that the policy allowed this request. Only `enforce` constructs one.
pub struct Permit {
    pub(crate) route: Arc<str>,
    pub(crate) target: Target,
    pub(crate) authorization: Option<HeaderValue>,
    /// `BoxApi: shared_link=...` for a token minted from a shared link.
    pub(crate) box_api: Option<HeaderValue>,
    /// The upstream the route names.
    pub(crate) origin: OriginKind,
    /// The answer is read and rewritten (redaction, URLs to the gateway);
    /// `None`: it streams through untouched.
    pub(crate) answer: Option<crate::answer::Plan>,
}

impl Permit {
    pub(crate) fn new(route: Arc<str>, target: Target, forward: &Forward) -> Permit {
        Permit {
            route,
            target,
            box_api: None,
            origin: OriginKind::Api,
            answer: None,
            authorization: match forward {
                Forward::Parent(v) => Some(v.clone()),
                Forward::AsIs => None,
            },
        }
    }
}

// The header lists below are matched on a name's text: a `match` on
// strings dispatches on the length first, so checking the handful of names
// a request has costs a few compares each. (Comparing `HeaderName`s one by
// one against each list, or parsing a `&str` into a name per lookup, were
// both measurable on every request.)

/// Headers that name the connection, not the message (RFC 9110 7.6.1), plus
/// the proxy ones. Never forwarded in either direction.
fn hop_by_hop(n: &HeaderName) -> bool {
    matches!(
        n.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

// The gateway's own headers toward the upstream.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Box's header for acting through a shared link (`shared_link=<url>`).
pub const BOX_API: HeaderName = HeaderName::from_static("boxapi");

/// Client headers that would let it speak for the gateway: removed, or
/// replaced by the gateway's own (see [`forward`]).
fn spoofable(n: &HeaderName) -> bool {
    matches!(
        n.as_str(),
        "host"
            | "forwarded"
            | "x-forwarded-for"
            | "x-forwarded-host"
            | "x-forwarded-proto"
            | "x-forwarded-port"
            | "x-real-ip"
            | "x-request-id"
    )
}

/// Spoofable headers the gateway always sets itself (see [`forward`]).
fn gateway_sets(n: &HeaderName) -> bool {
    matches!(
        n.as_str(),
        "x-forwarded-for" | "x-forwarded-proto" | "x-request-id"
    )
}

/// Headers that ask a server to treat the request as another method or
/// path than the one checked. Refused outright (400), not stripped, so a
/// client that relies on one learns at once.
pub fn rewriting(n: &HeaderName) -> bool {
    matches!(
        n.as_str(),
        "x-http-method-override"
            | "x-http-method"
            | "x-method-override"
            | "x-original-url"
            | "x-rewrite-url"
            | "x-original-method"
            | "x-override-url"
    )
}

/// Removes hop-by-hop headers and every header the `Connection` header
/// names; `Authorization` is set again by the caller afterwards, so naming it
/// in `Connection` cannot drop or smuggle the checked token.
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    remove_where(h, |_| false);
}

/// Removes the hop-by-hop headers, every header the `Connection` header
/// names, and every header `also` picks. One pass over the names present, a
/// handful, instead of a hash lookup per name on the lists; no allocation
/// unless more than a few headers go.
fn remove_where(h: &mut HeaderMap, also: impl Fn(&HeaderName) -> bool) {
    let mut names = Doomed::default();
    for n in h.keys().filter(|n| hop_by_hop(n) || also(n)) {
        names.push(n.clone());
    }
    for option in list_elements(h, header::CONNECTION) {
        // `keep-alive` (what upstreams send) is hop by hop already:
        // not parsed into a name again on every answer.
        if option.is_empty() || option.eq_ignore_ascii_case(b"keep-alive") {
            continue;
        }
        if let Ok(n) = HeaderName::from_bytes(option) {
            names.push(n);
        }
    }
    for n in names.first.into_iter().flatten().chain(names.more) {
        h.remove(n);
    }
}

/// The names [`remove_where`] drops: the first few inline.
#[derive(Default)]
struct Doomed {
    first: [Option<HeaderName>; 4],
    more: Vec<HeaderName>,
}

impl Doomed {
    fn push(&mut self, n: HeaderName) {
        match self.first.iter_mut().find(|s| s.is_none()) {
            Some(slot) => *slot = Some(n),
            None => self.more.push(n),
        }
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
    // Origin-form: the pool adds the scheme and authority where the
    // protocol wants them (HTTP/2), and HTTP/1 sends just this.
    let uri = Uri::from(permit.target.into_path_and_query());
    let original_host = parts.headers.get(header::HOST).cloned().or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    let h = &mut parts.headers;
    // Every spoofable header goes: removed here, or replaced below by an
    // `insert` (which drops all of a name's values), so not removed twice.
    let (sets_host, sets_forwarded_host) = (upstream.host.is_some(), original_host.is_some());
    remove_where(h, |n| {
        spoofable(n)
            && !(gateway_sets(n)
                || (n == header::HOST && sets_host)
                || (n == X_FORWARDED_HOST && sets_forwarded_host))
    });
    if let Some(host) = &upstream.host {
        h.insert(header::HOST, host.clone());
    }
    if let Some(auth) = permit.authorization {
        h.insert(header::AUTHORIZATION, auth);
    }
    // A shared-link token acts through its link; the client's own `BoxApi`
    // was refused for it (enforce), so this is the only one.
    if let Some(v) = permit.box_api {
        h.insert(BOX_API, v);
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
    if permit.answer.is_some() {
        // An answer to rewrite must come as it is: a content coding would
        // be a 502 (see `crate::answer`).
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
    }

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
            metrics.upstream_errors.with_label_values(&[e.kind()]).inc();
            return Err(match e {
                UpstreamError::Timeout => Rejection::GatewayTimeout,
                UpstreamError::Busy => {
                    Rejection::Unavailable("the upstream has no connection free")
                }
                _ => Rejection::BadGateway,
            });
        }
    };
    let (mut rparts, rbody) = resp.into_parts();
    strip_hop_by_hop(&mut rparts.headers);
    if let Some(plan) = &permit.answer {
        let base = crate::answer::gateway_base(side.public_url, original_host.as_ref(), side.tls);
        let body = crate::answer::rewrite(plan, base.as_deref(), &mut rparts, rbody)
            .await
            .map_err(|_| {
                // Never passed on unread: the answer may hold what the
                // token may not see.
                metrics.upstream_errors.with_label_values(&["answer"]).inc();
                Rejection::BadGateway
            })?;
        return Ok(Response::from_parts(rparts, body));
    }
    Ok(Response::from_parts(rparts, rbody))
}

#[cfg(test)]
mod tests {
    use super::*;

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
