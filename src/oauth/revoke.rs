//! `POST /oauth2/revoke` (RFC 7009, Box's parameters) and the rate limit of
//! `/oauth2/*`.
//!
//! Who may revoke what:
//! - **A gateway-minted token** is its own proof of possession: whoever
//!   presents it may revoke it, authenticated or not. The entry lives until
//!   the token's expiry.
//! - **Any other string** is revoked as a parent (its whole family, and
//!   passed on to the upstream revoke endpoint) only when the caller is an
//!   authenticated client (`client_id` and `client_secret` of a configured
//!   `[[oauth.clients]]`), or when the gateway has established that the
//!   string is a live parent, by the same check as the exchange (probe or
//!   introspection), cached for `[oauth] live_parent_ttl` and made once for
//!   concurrent callers. A string the upstream does not accept leaves no
//!   trace: no entry, no log record, no cache change, no upstream revoke.
//! - Wrong client credentials are `invalid_client` (401); credentials when
//!   no client is configured are not checked here (they still go to the
//!   upstream with the pass-on, as Box's SDKs send them).
//!
//! The answer is `{}` as `application/json` (boxsdk reads a JSON body), sent
//! once the revocation is durable. The upstream pass-on waits at most
//! `[oauth] revoke_pass_on_deadline`, then goes on in the background.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use super::Form;
use crate::body::Body;
use crate::clock::unix_now;
use crate::config::OAuth;
use crate::digest::Digest;
use crate::error::{OAuthError, json_response};
use crate::gateway::Gateway;
use crate::ratelimit::{Key, Limit, RateLimiter, retry_after_secs};
use crate::revocation::{Event, Source, Target};
use crate::token;

/// How long a string found *not* to be a live parent is remembered.
const NOT_LIVE_TTL: Duration = Duration::from_secs(10);
/// Upstream pass-ons still running after their deadline, at most.
const PASS_ON_BACKLOG: usize = 256;

/// State of the OAuth endpoints that outlives a request.
pub struct OAuthState {
    limiter: RateLimiter,
    /// Parent digests checked at the upstream: live or not.
    live: moka::future::Cache<Digest, bool>,
    /// Bounds the pass-ons still running in the background.
    pass_on: Arc<tokio::sync::Semaphore>,
}

struct LiveExpiry {
    live: Duration,
}

impl moka::Expiry<Digest, bool> for LiveExpiry {
    fn expire_after_create(&self, _: &Digest, live: &bool, _: Instant) -> Option<Duration> {
        Some(if *live { self.live } else { NOT_LIVE_TTL })
    }
}

impl OAuthState {
    pub fn new(cfg: &OAuth) -> OAuthState {
        OAuthState {
            limiter: RateLimiter::new(
                Limit {
                    per_second: cfg.rate_per_second,
                    burst: f64::from(cfg.rate_burst),
                    max_keys: cfg.rate_clients,
                },
                Instant::now(),
            ),
            live: moka::future::Cache::builder()
                .max_capacity(100_000)
                .expire_after(LiveExpiry {
                    live: cfg.live_parent_ttl,
                })
                .build(),
            pass_on: Arc::new(tokio::sync::Semaphore::new(PASS_ON_BACKLOG)),
        }
    }
}

/// Counts one `/oauth2/*` request against `key`; the 429 to answer when over.
pub fn limit(gw: &Gateway, key: Key, endpoint: &str) -> Option<Response<Body>> {
    match gw.oauth.limiter.check(key, Instant::now()) {
        Ok(()) => None,
        Err(wait) => {
            gw.metrics
                .oauth_requests
                .with_label_values(&[endpoint, "rate_limited"])
                .inc();
            let mut r =
                OAuthError::new("slow_down", "too many requests; retry later").into_response();
            *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            r.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs(wait)),
            );
            Some(r)
        }
    }
}

/// `POST /oauth2/revoke` from `peer`.
pub async fn revoke(gw: &Gateway, raw: Bytes, peer: IpAddr) -> Response<Body> {
    let result = match revoke_inner(gw, &raw, peer).await {
        Err(Refused::Limited(r)) => return *r,
        Err(Refused::OAuth(e)) => Err(e),
        Ok(o) => Ok(o),
    };
    let outcome = match &result {
        Ok(o) => *o,
        Err(e) => e.code,
    };
    gw.metrics
        .oauth_requests
        .with_label_values(&["revoke", outcome])
        .inc();
    match result {
        Ok(_) => {
            let mut r = json_response(StatusCode::OK, "{}".into());
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => e.into_response(),
    }
}

enum Refused {
    Limited(Box<Response<Body>>),
    OAuth(OAuthError),
}

impl From<OAuthError> for Refused {
    fn from(e: OAuthError) -> Refused {
        Refused::OAuth(e)
    }
}

/// The outcome label of a 200: `ok` (recorded) or `ignored` (no trace).
async fn revoke_inner(gw: &Gateway, raw: &[u8], peer: IpAddr) -> Result<&'static str, Refused> {
    let form = Form::parse(raw)?;
    let client = authenticate(&gw.config.oauth, &form)?;
    let key = match client {
        Some(id) => Key::Client(id.into()),
        None => Key::peer(peer),
    };
    if let Some(r) = limit(gw, key, "revoke") {
        return Err(Refused::Limited(Box::new(r)));
    }
    let token = form.require("token")?;
    if token.len() > token::MAX_TOKEN_LEN {
        return Ok("ignored"); // Not a token this gateway could ever have accepted.
    }
    let now = unix_now();
    let hash = Digest::of(token.as_bytes());
    let (target, keep_until) = match gw.grants.keyring().open(token) {
        Ok(claims) => (Target::Token(hash), claims.exp),
        Err(_) => {
            if !could_be_parent(token) {
                return Ok("ignored");
            }
            // Already revoked as a family: nothing new to record. (Asked with
            // the latest issue time, so a subject or cut-off entry, which
            // covers only tokens issued before it, does not count.)
            if gw
                .revocations
                .is_revoked(&hash, &hash, None, Some(u64::MAX))
            {
                return Ok("ok");
            }
            if client.is_none() && !is_live_parent(gw, token, hash, now).await? {
                return Ok("ignored");
            }
            (
                Target::Family(hash),
                gw.external_keep_until(token, now).await,
            )
        }
    };
    if keep_until < now {
        return Ok("ignored"); // Already expired: nothing to remember.
    }
    let is_parent = matches!(target, Target::Family(_));
    let ev = Event {
        target,
        revoked_at_ms: crate::clock::unix_now_ms(),
        keep_until,
        source: Source::Api,
    };
    gw.grants.evict(&ev).await;
    gw.revocations.revoke(ev, &gw.metrics).await.map_err(|e| {
        tracing::error!(error = %e, "revocation could not be made durable");
        OAuthError::unavailable("the revocation could not be stored; retry")
    })?;
    if is_parent {
        pass_on(gw, raw).await;
    }
    Ok("ok")
}

/// A string the exchange would accept as a parent: visible ASCII, not a
/// gateway token (those either open here or are forged).
fn could_be_parent(token: &str) -> bool {
    !token.starts_with(token::PREFIX) && token.bytes().all(|b| (0x21..0x7f).contains(&b))
}

/// The client id if the form carries credentials of a configured client;
/// `invalid_client` if it carries wrong ones. Every configured secret is
/// compared (constant time, equal work whichever id matched).
fn authenticate<'a>(cfg: &'a OAuth, form: &Form) -> Result<Option<&'a str>, OAuthError> {
    if cfg.clients.is_empty() {
        return Ok(None);
    }
    let (id, secret) = match (form.get("client_id"), form.get("client_secret")) {
        (None, None) => return Ok(None),
        (Some(id), Some(secret)) => (id, secret),
        _ => {
            return Err(OAuthError::new(
                "invalid_client",
                "client authentication failed",
            ));
        }
    };
    let presented = Digest::of(secret.as_bytes());
    let mut found = None;
    for c in &cfg.clients {
        let same_secret = constant_time_eq(&presented, &Digest::of(c.secret.as_bytes()));
        if same_secret & (c.id == id) {
            found = Some(c.id.as_str());
        }
    }
    found.map(Some).ok_or_else(|| {
        tracing::info!(
            client = %Digest::of(id.as_bytes()).short().as_str(),
            "oauth client authentication failed"
        );
        OAuthError::new("invalid_client", "client authentication failed")
    })
}

/// Digests compared without an early exit.
fn constant_time_eq(a: &Digest, b: &Digest) -> bool {
    let diff =
        a.0.iter()
            .zip(b.0.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Whether the upstream accepts `token` as a parent (the exchange's own
/// check), remembered for a while and asked once for concurrent callers.
/// An upstream that cannot answer is 503: nothing is recorded, retry.
async fn is_live_parent(
    gw: &Gateway,
    token: &str,
    hash: Digest,
    now: u64,
) -> Result<bool, OAuthError> {
    let check = async {
        match super::validate_parent(gw, token, now).await {
            Ok(_) => Ok(true),
            Err(e) if e.code == "temporarily_unavailable" => Err(e),
            Err(_) => Ok(false),
        }
    };
    gw.oauth
        .live
        .try_get_with(hash, check)
        .await
        .map_err(|e: Arc<OAuthError>| (*e).clone())
}

/// Passes a revoked parent on to the upstream revoke endpoint, waiting at
/// most the configured deadline; a slower upstream finishes in the
/// background (at most [`PASS_ON_BACKLOG`] at once, later ones are dropped
/// with a warning: the family is revoked here whatever the upstream says).
async fn pass_on(gw: &Gateway, raw: &[u8]) {
    let Some(url) = gw.config.upstream.revoke_endpoint.clone() else {
        return;
    };
    let Ok(permit) = gw.oauth.pass_on.clone().try_acquire_owned() else {
        tracing::warn!("upstream revoke pass-on skipped: too many still running");
        return;
    };
    let client = gw.client.clone();
    let form = String::from_utf8_lossy(raw).into_owned();
    let task = tokio::spawn(async move {
        let r = client.post_form(&url, form).await;
        drop(permit);
        if let Err(e) = r {
            tracing::warn!(error = %e, "upstream revoke endpoint failed");
        }
    });
    if tokio::time::timeout(gw.config.oauth.revoke_pass_on_deadline, task)
        .await
        .is_err()
    {
        tracing::info!(
            "upstream revoke endpoint slower than the deadline; finishing in the background"
        );
    }
}
