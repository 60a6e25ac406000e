//! CORS for browser UI elements (Box UI Elements call the API from the page).
//!
//! Preflights from configured origins are answered here, with no token, and
//! never forwarded. Every answer to an allowed origin carries the CORS
//! headers, 401 and 403 included, with `WWW-Authenticate` exposed, so the
//! page can read why it was refused. Origins are compared exactly; no
//! wildcard is ever sent, and credentials (cookies) are not allowed: tokens
//! travel in `Authorization`.

use std::collections::HashSet;

use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};

use crate::body::{self, Body};
use crate::error::Rejection;

const ALLOW_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";
const EXPOSE: &str =
    "WWW-Authenticate, X-Request-Id, Retry-After, ETag, Location, Content-Length, Content-Type";

pub struct Cors {
    origins: HashSet<String>,
}

impl Cors {
    pub fn new(origins: &[String]) -> Cors {
        Cors {
            origins: origins.iter().cloned().collect(),
        }
    }

    /// The request's `Origin`, when it is one of the configured origins.
    pub fn allowed<'h>(&self, headers: &'h HeaderMap) -> Option<&'h HeaderValue> {
        let origin = headers.get(header::ORIGIN)?;
        self.origins
            .contains(origin.to_str().ok()?)
            .then_some(origin)
    }

    /// `Some` for a CORS preflight: 204 with the grants for an allowed
    /// origin, a 403 refusal for any other.
    pub fn preflight(
        &self,
        method: &Method,
        headers: &HeaderMap,
    ) -> Option<Result<Response<Body>, Rejection>> {
        if method != Method::OPTIONS || !headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return None;
        }
        let Some(origin) = self.allowed(headers) else {
            return Some(Err(Rejection::Forbidden(
                "this origin is not allowed to call the API",
            )));
        };
        let mut r = Response::new(body::empty());
        *r.status_mut() = StatusCode::NO_CONTENT;
        let h = r.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOW_METHODS),
        );
        // Echo the requested header names when they are plain tokens.
        if let Some(req) = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            let ok = req
                .as_bytes()
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_, ".contains(b));
            if ok && req.len() <= 1024 {
                h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, req.clone());
            }
        }
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        Some(Ok(r))
    }

    /// Adds the CORS headers of an actual (non-preflight) answer.
    pub fn decorate(&self, origin: Option<HeaderValue>, resp: &mut Response<Body>) {
        let h = resp.headers_mut();
        h.append(header::VARY, HeaderValue::from_static("Origin"));
        if let Some(origin) = origin {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            h.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSE),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors() -> Cors {
        Cors::new(&["https://app.example.com".into()])
    }

    fn preflight(origin: &str) -> Option<Result<Response<Body>, Rejection>> {
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, origin.parse().unwrap());
        h.insert(
            header::ACCESS_CONTROL_REQUEST_METHOD,
            "GET".parse().unwrap(),
        );
        h.insert(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "authorization, content-type".parse().unwrap(),
        );
        cors().preflight(&Method::OPTIONS, &h)
    }

    #[test]
    fn allowed_origin_preflight_is_answered() {
        let r = preflight("https://app.example.com").unwrap().unwrap();
        assert_eq!(r.status(), 204);
        assert_eq!(
            r.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.example.com"
        );
        assert_eq!(
            r.headers()[header::ACCESS_CONTROL_ALLOW_HEADERS],
            "authorization, content-type"
        );
    }

    #[test]
    fn other_origins_get_no_grant() {
        let r = preflight("https://evil.example.com")
            .unwrap()
            .unwrap_err()
            .into_response("scopegate", "abc");
        assert_eq!(r.status(), 403);
        assert!(
            !r.headers()
                .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        );
    }
}
