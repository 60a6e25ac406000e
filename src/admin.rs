//! The admin listener: `/healthz`, `/readyz`, `/metrics` and
//! `POST /admin/revocations`.
//!
//! It binds loopback by default and is never the public address. The
//! revocation endpoint needs `Authorization: Bearer <admin.secret>`,
//! compared in constant time; without a configured secret it is closed.

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;

use crate::body::{self, Body};
use crate::clock::{unix_now, unix_now_ms};
use crate::digest::Digest;
use crate::error::json_response;
use crate::gateway::Gateway;
use crate::revocation::{Event, Source, Target};

pub async fn handle(gw: Arc<Gateway>, req: Request<Incoming>) -> Response<Body> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/readyz") => {
            if gw.is_ready() {
                text(StatusCode::OK, "ready\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
            }
        }
        (&Method::GET, "/metrics") => {
            gw.metrics
                .grant_cache_entries
                .set(gw.grants.cached_entries() as i64);
            gw.metrics
                .revocation_entries
                .set(gw.revocations.state().len() as i64);
            let mut r = text(StatusCode::OK, &gw.metrics.render());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        (&Method::POST, "/admin/revocations") => revocations(&gw, req).await,
        _ => error(StatusCode::NOT_FOUND, "no such admin endpoint"),
    }
}

fn text(status: StatusCode, s: &str) -> Response<Body> {
    let mut r = Response::new(body::full(s.to_string()));
    *r.status_mut() = status;
    r
}

fn error(status: StatusCode, message: &str) -> Response<Body> {
    json_response(status, json!({ "error": message }).to_string())
}

/// Constant-time equality, so the secret cannot be guessed byte by byte.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The body of `POST /admin/revocations`: exactly one of its fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Revoke {
    /// A token as presented (minted or external).
    token: Option<String>,
    /// Or its digest (32 hex), as logs and events show it.
    token_hash: Option<String>,
    /// A parent token: revokes every token minted from it.
    parent_token: Option<String>,
    /// Or the family digest (32 hex).
    family: Option<String>,
    /// A user id: revokes that user's tokens issued up to now.
    subject: Option<String>,
    /// Unix seconds: revokes every token issued before it.
    issued_before: Option<u64>,
}

async fn revocations(gw: &Gateway, req: Request<Incoming>) -> Response<Body> {
    let Some(secret) = &gw.config.admin_secret else {
        return error(
            StatusCode::FORBIDDEN,
            "admin revocations are disabled: no admin.secret configured",
        );
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !same_secret(presented.as_bytes(), secret.as_bytes()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "the admin secret is missing or wrong",
        );
    }
    let bytes = match body::read_limited(req.into_body(), 16 * 1024).await {
        Ok(b) => b,
        Err(_) => return error(StatusCode::BAD_REQUEST, "the body is too large or broken"),
    };
    let r: Revoke = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("the body is not a revocation: {e}"),
            );
        }
    };
    let ev = match event(gw, r).await {
        Ok(ev) => ev,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    gw.grants.evict(&ev).await;
    match gw.revocations.revoke(ev.clone(), &gw.metrics).await {
        Ok(()) => {
            let ev_json: serde_json::Value =
                serde_json::from_str(&ev.to_json()).unwrap_or_default();
            json_response(StatusCode::OK, json!({ "revoked": ev_json }).to_string())
        }
        Err(e) => {
            tracing::error!(error = %e, "admin revocation could not be made durable");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the revocation could not be stored; retry",
            )
        }
    }
}

async fn event(gw: &Gateway, r: Revoke) -> Result<Event, &'static str> {
    let now = unix_now();
    let horizon = gw.revocation_horizon(now);
    let given = [
        r.token.is_some(),
        r.token_hash.is_some(),
        r.parent_token.is_some(),
        r.family.is_some(),
        r.subject.is_some(),
        r.issued_before.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(
            "name exactly one of token, token_hash, parent_token, family, subject, issued_before",
        );
    }
    let hex = |s: &str| Digest::from_hex(s).ok_or("a digest must be 32 hex digits");
    let (target, keep_until) = if let Some(t) = r.token {
        let minted_exp = gw.grants.keyring().open(&t).map(|c| c.exp).ok();
        let keep = match minted_exp {
            Some(exp) => exp,
            None => gw.external_keep_until(&t, now).await,
        };
        (Target::Token(Digest::of(t.as_bytes())), keep)
    } else if let Some(h) = r.token_hash {
        (Target::Token(hex(&h)?), horizon)
    } else if let Some(p) = r.parent_token {
        let keep = gw.external_keep_until(&p, now).await;
        (Target::Family(Digest::of(p.as_bytes())), keep)
    } else if let Some(f) = r.family {
        (Target::Family(hex(&f)?), horizon)
    } else if let Some(s) = r.subject {
        crate::revocation::event::validate_subject(&s)
            .map_err(|_| "subject must be 1-256 bytes without control characters")?;
        (Target::Subject(s), horizon)
    } else {
        let before = r.issued_before.unwrap_or(now);
        if before > now + 1 {
            return Err("issued_before must not be in the future");
        }
        (
            Target::Cutoff {
                issued_before: before,
            },
            before + (horizon - now),
        )
    };
    Ok(Event {
        target,
        revoked_at_ms: unix_now_ms(),
        keep_until,
        source: Source::Admin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_comparison() {
        assert!(same_secret(b"abcdefabcdefabcdef", b"abcdefabcdefabcdef"));
        assert!(!same_secret(b"abcdefabcdefabcdef", b"abcdefabcdefabcdeX"));
        assert!(!same_secret(b"abc", b"abcd"));
    }
}
