//! The gateway: shared state, and the handler every public request enters.
//!
//! [`Gateway::handle`] answers CORS preflights, sends `/oauth2/*` to
//! [`crate::oauth`], and runs every other request through
//! [`crate::enforce::decide`] and then [`crate::proxy::forward`]. It adds
//! the request id and CORS headers to every answer, counts it, and writes
//! the one log line per request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use arc_swap::ArcSwap;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::ancestry::Ancestry;
use crate::body::Body;
use crate::config::{Config, Problems};
use crate::cors::Cors;
use crate::error::{OAuthError, Rejection};
use crate::grant::{Grants, Item};
use crate::introspect::Introspector;
use crate::metrics::Metrics;
use crate::policy::Policy;
use crate::proxy::{ClientSide, X_REQUEST_ID};
use crate::revocation::Revocations;
use crate::token::Keyring;
use crate::upstream::{Client, Origin};

/// The `realm` of every `WWW-Authenticate` challenge.
pub const REALM: &str = "scopegate";

/// Where a connection came from.
#[derive(Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub tls: bool,
    /// The peer's address as the `X-Forwarded-For` value: made once per
    /// connection, not per request.
    pub forwarded_for: HeaderValue,
    /// HTTP/1: the framing of each request head as sent (hyper hides a
    /// `Content-Length` sent beside `Transfer-Encoding`).
    pub heads: Option<Arc<crate::framing::Heads>>,
}

impl ConnInfo {
    pub fn new(peer: SocketAddr, tls: bool) -> ConnInfo {
        ConnInfo {
            peer,
            tls,
            forwarded_for: HeaderValue::from_str(&peer.ip().to_string())
                .expect("an IP address is a valid header value"),
            heads: None,
        }
    }

    /// A request framed both ways, or one with `Transfer-Encoding` whose
    /// head could not be followed (see [`crate::framing`]).
    fn smuggling(&self, req: &Request<Incoming>) -> bool {
        let Some(heads) = &self.heads else {
            return false;
        };
        match heads.take(req.method(), req.uri(), req.headers().len()) {
            crate::framing::Framing::Plain => false,
            crate::framing::Framing::Both => true,
            crate::framing::Framing::Unknown => {
                req.headers().contains_key(http::header::TRANSFER_ENCODING)
            }
        }
    }
}

pub struct Gateway {
    pub config: Config,
    policy: ArcSwap<Policy>,
    pub grants: Grants,
    pub revocations: Arc<Revocations>,
    pub client: Client,
    /// Where requests go, by the route's origin (`[upstream] api`,
    /// `upload`, `download`, `public_download`), in `OriginKind::ALL` order.
    origins: [Origin; 4],
    /// The same bases as text, to map URLs in answers back to them.
    pub(crate) answer_origins: Arc<crate::answer::Origins>,
    pub introspector: Option<Arc<Introspector>>,
    pub metrics: Metrics,
    pub ancestry: Ancestry,
    /// Which item each chunked upload session was opened for.
    pub upload_sessions: crate::upload_session::UploadSessions,
    cors: Cors,
    /// Wakes the reload watcher (SIGHUP).
    reload: tokio::sync::Notify,
    /// Set once the revocation history has been replayed (and, in fleet
    /// mode, the stream is live); `/readyz` reports it.
    ready: AtomicBool,
    request_ids: RequestIds,
    /// The Shared Signals receiver, set once by the assembly (`app::build`) when
    /// `[ssf]` is configured; its push path is served here.
    pub ssf: std::sync::OnceLock<Arc<crate::ssf::Receiver>>,
    /// Rate limits and the live-parent cache of `/oauth2/*`.
    pub oauth: crate::oauth::OAuthState,
}

/// Request ids: 16 hex digits, unique per process and unlikely to repeat
/// across replicas (a random 64-bit key per process). They name requests in
/// logs and answers; they are not secrets, so they come from a counter
/// through a bijective mixer instead of the OS random source: no syscall and
/// no formatting machinery per request (both showed up in the load benchmark).
struct RequestIds {
    key: u64,
    next: AtomicU64,
}

/// One request's id, as text.
type RequestId = crate::digest::HexText<16>;

impl RequestIds {
    fn new(keyring: &Keyring) -> RequestIds {
        let seed = u64::from_str_radix(&keyring.random_hex(8), 16).unwrap_or(0);
        RequestIds {
            key: seed,
            next: AtomicU64::new(0),
        }
    }

    fn next(&self) -> RequestId {
        // splitmix64's finaliser: a bijection, so distinct counters give distinct ids.
        let mut z = self.key.wrapping_add(
            self.next
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        RequestId::of(&z.to_be_bytes())
    }
}

impl Gateway {
    pub fn new(
        config: Config,
        policy: Policy,
        keyring: Keyring,
        revocations: Arc<Revocations>,
        metrics: Metrics,
    ) -> Result<Gateway, Problems> {
        let mut problems = Problems::new(&config.source);
        for s in &config.parent_scopes {
            if !policy.scopes.is_known(s) {
                problems.push("parent.scopes", format!("unknown scope `{s}`"));
            }
        }
        let client =
            Client::new(&config.upstream)?.count_errors_into(metrics.upstream_errors.clone());
        metrics.export_routes(policy.routes().iter().map(|r| &*r.name));
        let introspector = config
            .introspection
            .clone()
            .map(|i| Arc::new(Introspector::new(i, client.clone())));
        let keyring = Arc::new(keyring);
        let request_ids = RequestIds::new(&keyring);
        let grants = Grants::new(
            keyring,
            config.external,
            introspector.clone(),
            config.grant_cache_entries,
        );
        let ancestry = Ancestry::new(
            &config.subtree,
            client.clone(),
            config.upstream.api.clone(),
            metrics.clone(),
        );
        let gw = Gateway {
            origins: [
                Origin::new(&config.upstream.api, &client),
                Origin::new(&config.upstream.upload, &client),
                Origin::new(&config.upstream.download, &client),
                Origin::new(&config.upstream.public_download, &client),
            ],
            answer_origins: Arc::new(crate::answer::Origins::new(&config.upstream)),
            request_ids,
            oauth: crate::oauth::OAuthState::new(&config.oauth),
            ancestry,
            upload_sessions: crate::upload_session::UploadSessions::new(),
            cors: Cors::new(&config.cors_origins),
            policy: ArcSwap::from_pointee(policy),
            grants,
            revocations,
            client,
            introspector,
            metrics,
            ready: AtomicBool::new(false),
            reload: tokio::sync::Notify::new(),
            ssf: std::sync::OnceLock::new(),
            config,
        };
        problems.into_result(gw)
    }

    /// The policy in force (replaced whole on reload).
    pub fn policy(&self) -> Arc<Policy> {
        self.policy.load_full()
    }

    /// Replaces the policy. Cached grants are dropped, since scope bits are
    /// numbered per policy.
    pub fn replace_policy(&self, policy: Policy) {
        self.policy.store(Arc::new(policy));
        self.grants.forget_all();
    }

    /// The longest any token this gateway accepts can still live at `now`:
    /// minted tokens are capped by `max_expires_in`, probed parents by
    /// `parent.lifetime`. Revocations without a known expiry are kept this long.
    pub fn revocation_horizon(&self, now: u64) -> u64 {
        now + self
            .config
            .max_expires_in
            .as_secs()
            .max(self.config.parent_lifetime.as_secs())
    }

    /// How long a revocation must be kept for tokens this gateway did not
    /// mint (a parent, or an external token): the longest life a minted
    /// token or a probed parent can have, or the token's own `exp` if
    /// introspection says it lives longer (best effort, bounded wait).
    pub async fn external_keep_until(&self, token: &str, now: u64) -> u64 {
        let horizon = self.revocation_horizon(now);
        let Some(i) = &self.introspector else {
            return horizon;
        };
        match tokio::time::timeout(std::time::Duration::from_secs(2), i.introspect(token)).await {
            Ok(Ok(Some(answer))) => answer.exp.map_or(horizon, |exp| exp.max(horizon)),
            _ => horizon,
        }
    }

    /// Asks the reload watcher to reload every file now.
    pub fn request_reload(&self) {
        self.reload.notify_one();
    }

    pub(crate) async fn reload_requested(&self) {
        self.reload.notified().await
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Serving, history replayed, and (fleet mode) the stream live.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && self.revocations.is_ready()
    }

    /// Every public request enters here; never fails, never panics on input.
    pub async fn handle(&self, req: Request<Incoming>, conn: &ConnInfo) -> Response<Body> {
        let started = Instant::now();
        let id = self.request_ids.next();
        let rid = id.as_str();
        let rid_value =
            HeaderValue::from_bytes(id.as_bytes()).expect("hex is a valid header value");
        let origin = self.cors.allowed(req.headers()).cloned();
        let mut resp = if conn.smuggling(&req) {
            let method = req.method().clone();
            self.refuse(
                crate::enforce::TE_AND_CL,
                "unmatched",
                &method,
                rid,
                None,
                started.elapsed(),
            )
        } else if let Some(pre) = self.cors.preflight(req.method(), req.headers()) {
            pre.unwrap_or_else(|rej| rej.into_response(REALM, rid))
        } else {
            match req.uri().path() {
                // SSF push (RFC 8935): on the public listener, because that is
                // the address the identity provider can reach.
                p if self.ssf.get().and_then(|r| r.push_path()) == Some(p) => {
                    match self.ssf.get() {
                        Some(rx) => crate::ssf::push::handle(rx, req).await,
                        None => self.api(req, conn, rid, &rid_value, started).await,
                    }
                }
                "/oauth2/token" | "/oauth2/revoke" => self.oauth(req, conn).await,
                _ => self.api(req, conn, rid, &rid_value, started).await,
            }
        };
        resp.headers_mut().insert(X_REQUEST_ID, rid_value);
        self.cors.decorate(origin, &mut resp);
        resp
    }

    async fn oauth(&self, req: Request<Incoming>, conn: &ConnInfo) -> Response<Body> {
        if req.method() != Method::POST {
            let mut r = OAuthError::invalid_request("use POST").into_response();
            *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            r.headers_mut()
                .insert(http::header::ALLOW, HeaderValue::from_static("POST"));
            return r;
        }
        let revoke = req.uri().path() == "/oauth2/revoke";
        // The token endpoint is limited by address; revoke by client once
        // its credentials are read (in `oauth::revoke`).
        if !revoke
            && let Some(r) = crate::oauth::revoke::limit(
                self,
                crate::ratelimit::Key::peer(conn.peer.ip()),
                "exchange",
            )
        {
            return r;
        }
        let raw = match crate::oauth::read_form(self, req).await {
            Ok(b) => b,
            Err(e) => return e.into_response(),
        };
        if revoke {
            crate::oauth::revoke(self, raw, conn.peer.ip()).await
        } else {
            crate::oauth::token(self, raw).await
        }
    }

    async fn api(
        &self,
        req: Request<Incoming>,
        conn: &ConnInfo,
        rid: &str,
        rid_value: &HeaderValue,
        started: Instant,
    ) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let method = parts.method.clone();
        let (route, decision) = crate::enforce::decide(self, &parts, body).await;
        let route = route.unwrap_or_else(|| Arc::from("unmatched"));
        let decided = started.elapsed();
        self.metrics.decision_seconds.observe(decided.as_secs_f64());
        let allowed = match decision {
            Ok(a) => a,
            Err(rej) => {
                // Refusals are correlated by the token's short hash too (never the token).
                let token = crate::enforce::bearer(&parts.headers)
                    .ok()
                    .filter(|t| t.len() <= self.config.limits.token_bytes)
                    .map(|t| crate::digest::Digest::of(t.as_bytes()).short());
                let token = token.as_ref().map(crate::digest::Short::as_str);
                return self.refuse(rej, &route, &method, rid, token, decided);
            }
        };
        if allowed.cache_hit {
            self.metrics.grant_cache_hits.inc();
        } else {
            self.metrics.grant_cache_misses.inc();
            self.metrics
                .grant_cache_entries
                .set(self.grants.cached_entries() as i64);
        }
        let token = allowed.grant.token_hash().short();
        let opens_upload_session = allowed.opens_upload_session;
        let upstream = &self.origins[allowed.permit.origin as usize];
        let side = ClientSide {
            forwarded_for: &conn.forwarded_for,
            tls: conn.tls,
            request_id: rid_value,
            public_url: self.config.public_url.as_ref(),
        };
        match crate::proxy::forward(
            &self.client,
            upstream,
            allowed.permit,
            parts,
            allowed.body,
            side,
            &self.metrics,
        )
        .await
        {
            Ok(resp) => {
                let resp = match opens_upload_session {
                    Some(item) => self.record_upload_session(resp, item).await,
                    None => resp,
                };
                self.metrics
                    .requests
                    .with_label_values(&[&route, "allow", "ok"])
                    .inc();
                crate::access_log::write(&crate::access_log::Line {
                    request_id: rid,
                    route: &route,
                    method: &method,
                    decision: "allow",
                    reason: "ok",
                    status: resp.status().as_u16(),
                    decision_us: decided.as_micros() as u64,
                    total_us: Some(started.elapsed().as_micros() as u64),
                    token: token.as_str(),
                });
                resp
            }
            Err(rej) => self.refuse(rej, &route, &method, rid, Some(token.as_str()), decided),
        }
    }

    /// Reads the answer that opened a chunked upload session and records
    /// its `id` with the item the request was checked against, so later
    /// calls naming the session can be checked too. The answer is a small
    /// JSON object; one that cannot be read is passed on as read (the
    /// session then stays unknown, and restricted tokens cannot use it).
    async fn record_upload_session(&self, resp: Response<Body>, item: Item) -> Response<Body> {
        if !resp.status().is_success() {
            return resp;
        }
        let (mut parts, body) = resp.into_parts();
        let Ok(bytes) = crate::body::read_limited(body, 64 * 1024).await else {
            parts.headers.remove(http::header::CONTENT_LENGTH);
            return Response::from_parts(parts, crate::body::empty());
        };
        let id = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("id")?.as_str().map(str::to_owned));
        if let Some(id) = id {
            self.upload_sessions
                .remember(&id, item, crate::clock::unix_now());
        }
        Response::from_parts(parts, crate::body::full(bytes))
    }

    fn refuse(
        &self,
        rej: Rejection,
        route: &str,
        method: &Method,
        rid: &str,
        token: Option<&str>,
        decided: std::time::Duration,
    ) -> Response<Body> {
        let decision = if rej.status().is_server_error() {
            "error"
        } else {
            "deny"
        };
        self.metrics
            .requests
            .with_label_values(&[route, decision, rej.reason()])
            .inc();
        crate::access_log::write(&crate::access_log::Line {
            request_id: rid,
            route,
            method,
            decision,
            reason: rej.reason(),
            status: rej.status().as_u16(),
            decision_us: decided.as_micros() as u64,
            total_us: None,
            token: token.unwrap_or("-"),
        });
        rej.into_response(REALM, rid)
    }
}
