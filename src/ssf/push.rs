//! Push delivery (RFC 8935): the transmitter `POST`s one SET
//! (`Content-Type: application/secevent+jwt`) to the configured path on the
//! public listener, with the `Authorization` header it was configured with.
//!
//! Answers: 202 once every revocation the SET causes is durable; 400 with
//! `{"err": ..., "description": ...}` for a SET (or a delivery) that is
//! refused; 503 when a revocation could not be stored (the transmitter
//! retries); 405 for other methods. A delivery without credentials is
//! `authentication_failed`; one with credentials that are not the configured
//! ones is `access_denied`.

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::json;

use super::verify::{MAX_SET_LEN, Refusal};
use super::{NotAccepted, Receiver};
use crate::body::{self, Body};

/// Constant-time equality, so the credential cannot be guessed byte by byte.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn answer(status: StatusCode, body: Option<serde_json::Value>) -> Response<Body> {
    let mut r = match body {
        Some(b) => {
            let mut r = Response::new(body::full(b.to_string()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        None => Response::new(body::full(String::new())),
    };
    *r.status_mut() = status;
    r
}

fn refused(n: NotAccepted) -> Response<Body> {
    match n {
        NotAccepted::Refused(r) => answer(
            StatusCode::BAD_REQUEST,
            Some(json!({"err": r.refusal.err(), "description": r.description})),
        ),
        NotAccepted::Unavailable => {
            let mut r = answer(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(json!({"description": "the revocation could not be stored; retry"})),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
    }
}

/// Handles one push request on the receiver's path.
pub async fn handle(rx: &Receiver, req: Request<Incoming>) -> Response<Body> {
    if req.method() != Method::POST {
        let mut r = answer(
            StatusCode::METHOD_NOT_ALLOWED,
            Some(json!({"description": "use POST"})),
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    let Some(push) = &rx.cfg.push else {
        return answer(StatusCode::NOT_FOUND, None);
    };
    let auth = req.headers().get_all(header::AUTHORIZATION);
    let mut values = auth.iter();
    let (first, second) = (values.next(), values.next());
    match (first, second) {
        (None, _) => {
            return refused(rx.refuse(Refusal::Authentication, "no Authorization header"));
        }
        (Some(_), Some(_)) => {
            return refused(rx.refuse(
                Refusal::Authentication,
                "more than one Authorization header",
            ));
        }
        (Some(v), None) if !same(v.as_bytes(), push.authorization.as_bytes()) => {
            return refused(rx.refuse(
                Refusal::Access,
                "these credentials may not deliver SETs here",
            ));
        }
        _ => {}
    }
    let ctype = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    if ctype.as_deref() != Some("application/secevent+jwt") {
        return refused(rx.refuse(
            Refusal::Malformed,
            "Content-Type must be application/secevent+jwt",
        ));
    }
    let bytes = match body::read_limited(req.into_body(), MAX_SET_LEN).await {
        Ok(b) => b,
        Err(_) => return refused(rx.refuse(Refusal::Malformed, "the body is too large or broken")),
    };
    match rx.receive(&bytes).await {
        Ok(()) => answer(StatusCode::ACCEPTED, None),
        Err(n) => refused(n),
    }
}
