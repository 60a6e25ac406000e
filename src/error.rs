//! Every way the gateway refuses a request, and the one place that turns a
//! refusal into an HTTP answer.
//!
//! Other modules return a [`Rejection`] (API traffic) or an [`OAuthError`]
//! (the `/oauth2/*` endpoints); neither carries internals or secrets, so the
//! bodies built here can never leak a token or an upstream error text.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::body::{self, Body};

/// Why an API request was not forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The request target or a header cannot be read one way only.
    BadRequest(&'static str),
    /// No `Authorization: Bearer` header at all (RFC 6750 3.1: no error code).
    NoToken,
    /// Unknown, forged, expired or revoked token.
    InvalidToken(&'static str),
    /// The token lacks every scope the route accepts; `needed` names them.
    InsufficientScope { needed: String },
    /// The token is restricted to another item than the one the request names.
    /// `needed` is the route's scopes, which the token holds: the challenge
    /// names the restriction (`why`), not a scope.
    OutsideRestriction { needed: String, why: &'static str },
    /// The request is of a kind the gateway refuses for this token.
    Forbidden(&'static str),
    /// No route of the policy matches (fail closed).
    NoRoute,
    /// A body the gateway must read is larger than it will read.
    TooLarge,
    /// The request head is larger than `[limits] header_bytes`.
    HeadersTooLarge,
    /// The gateway cannot decide right now (introspection down, stream stale).
    Unavailable(&'static str),
    /// The upstream could not be reached or broke the exchange.
    BadGateway,
    /// The upstream did not answer in time.
    GatewayTimeout,
}

impl Rejection {
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::BadRequest(_) => StatusCode::BAD_REQUEST,
            Rejection::NoToken | Rejection::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Rejection::InsufficientScope { .. }
            | Rejection::OutsideRestriction { .. }
            | Rejection::Forbidden(_)
            | Rejection::NoRoute => StatusCode::FORBIDDEN,
            Rejection::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Rejection::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::BadGateway => StatusCode::BAD_GATEWAY,
            Rejection::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The `reason` label of `scopegate_requests_total`: a small fixed set.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::BadRequest(_) => "bad_request",
            Rejection::NoToken => "no_token",
            Rejection::InvalidToken(_) => "invalid_token",
            Rejection::InsufficientScope { .. } => "insufficient_scope",
            Rejection::OutsideRestriction { .. } => "outside_restriction",
            Rejection::Forbidden(_) => "forbidden",
            Rejection::NoRoute => "no_route",
            Rejection::TooLarge | Rejection::HeadersTooLarge => "too_large",
            Rejection::Unavailable(_) => "unavailable",
            Rejection::BadGateway => "upstream_error",
            Rejection::GatewayTimeout => "upstream_timeout",
        }
    }

    /// The `code` of the JSON body, in the content API's error vocabulary.
    fn code(&self) -> &'static str {
        match self {
            Rejection::BadRequest(_) => "invalid_request",
            Rejection::NoToken => "unauthorized",
            Rejection::InvalidToken(_) => "invalid_token",
            Rejection::InsufficientScope { .. } | Rejection::OutsideRestriction { .. } => {
                "insufficient_scope"
            }
            Rejection::Forbidden(_) | Rejection::NoRoute => "forbidden",
            Rejection::TooLarge => "request_too_large",
            Rejection::HeadersTooLarge => "headers_too_large",
            Rejection::Unavailable(_) => "unavailable",
            Rejection::BadGateway => "bad_gateway",
            Rejection::GatewayTimeout => "gateway_timeout",
        }
    }

    fn message(&self) -> String {
        match self {
            Rejection::BadRequest(why) => format!("Malformed request: {why}"),
            Rejection::NoToken => "An access token is required".into(),
            Rejection::InvalidToken(why) => format!("The access token is {why}"),
            Rejection::InsufficientScope { needed } => {
                format!("The token lacks the scope this request needs (one of: {needed})")
            }
            Rejection::OutsideRestriction { why, .. } => {
                format!("The token does not cover this item: {why}")
            }
            Rejection::Forbidden(why) => format!("Not allowed: {why}"),
            Rejection::NoRoute => "This endpoint is not open through the gateway".into(),
            Rejection::TooLarge => {
                "The request body is larger than the gateway accepts here".into()
            }
            Rejection::HeadersTooLarge => {
                "The request headers are larger than the gateway accepts".into()
            }
            Rejection::Unavailable(why) => format!("The gateway cannot decide right now: {why}"),
            Rejection::BadGateway => "The upstream API could not be reached".into(),
            Rejection::GatewayTimeout => "The upstream API did not answer in time".into(),
        }
    }

    /// RFC 6750 section 3: the challenge of every 400, 401 and 403. It says
    /// what is true: `scope` only when a scope is what the token lacks; a
    /// token that holds the scope but not the item is told about the item.
    fn challenge(&self, realm: &str) -> Option<String> {
        let esc = |s: &str| s.replace(['"', '\\'], "");
        let error = |code: &str, why: &str| {
            format!(
                "Bearer realm=\"{realm}\", error=\"{code}\", error_description=\"{}\"",
                esc(why)
            )
        };
        match self {
            Rejection::NoToken => Some(format!("Bearer realm=\"{realm}\"")),
            Rejection::BadRequest(why) => Some(error("invalid_request", why)),
            Rejection::InvalidToken(why) => Some(error(
                "invalid_token",
                &format!("The access token is {why}"),
            )),
            Rejection::InsufficientScope { needed } => Some(format!(
                "Bearer realm=\"{realm}\", error=\"insufficient_scope\", scope=\"{}\"",
                esc(needed)
            )),
            Rejection::OutsideRestriction { why, .. } => Some(error("insufficient_scope", why)),
            Rejection::Forbidden(why) => Some(error("insufficient_scope", why)),
            Rejection::NoRoute => Some(error(
                "insufficient_scope",
                "this endpoint is not open through the gateway",
            )),
            Rejection::TooLarge
            | Rejection::HeadersTooLarge
            | Rejection::Unavailable(_)
            | Rejection::BadGateway
            | Rejection::GatewayTimeout => None,
        }
    }

    /// The whole answer: status, challenge and the JSON error body.
    pub fn into_response(self, realm: &str, request_id: &str) -> Response<Body> {
        let status = self.status();
        let json = serde_json::json!({
            "type": "error",
            "status": status.as_u16(),
            "code": self.code(),
            "message": self.message(),
            "request_id": request_id,
        });
        let mut resp = json_response(status, json.to_string());
        if let Some(c) = self
            .challenge(realm)
            .and_then(|c| HeaderValue::from_str(&c).ok())
        {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, c);
        }
        resp
    }
}

/// An error of the OAuth endpoints, in RFC 6749 section 5.2's shape, which
/// is also Box's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub status: StatusCode,
    pub code: &'static str,
    pub description: String,
}

impl OAuthError {
    pub fn new(code: &'static str, description: impl Into<String>) -> OAuthError {
        let status = match code {
            "invalid_client" => StatusCode::UNAUTHORIZED,
            "temporarily_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            "server_error" => StatusCode::BAD_GATEWAY,
            _ => StatusCode::BAD_REQUEST,
        };
        OAuthError {
            status,
            code,
            description: description.into(),
        }
    }

    pub fn invalid_request(d: impl Into<String>) -> OAuthError {
        OAuthError::new("invalid_request", d)
    }
    pub fn invalid_grant(d: impl Into<String>) -> OAuthError {
        OAuthError::new("invalid_grant", d)
    }
    pub fn invalid_scope(d: impl Into<String>) -> OAuthError {
        OAuthError::new("invalid_scope", d)
    }
    pub fn invalid_resource(d: impl Into<String>) -> OAuthError {
        OAuthError::new("invalid_resource", d)
    }
    pub fn unavailable(d: impl Into<String>) -> OAuthError {
        OAuthError::new("temporarily_unavailable", d)
    }

    pub fn into_response(self) -> Response<Body> {
        let json = serde_json::json!({ "error": self.code, "error_description": self.description });
        let mut resp = json_response(self.status, json.to_string());
        // RFC 6749 5.1: token endpoint answers must not be cached.
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }
}

/// A JSON answer with the given status.
pub fn json_response(status: StatusCode, json: String) -> Response<Body> {
    let mut resp = Response::new(body::full(Bytes::from(json)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insufficient_scope_names_the_scope_in_the_challenge() {
        let r = Rejection::InsufficientScope {
            needed: "item_download".into(),
        }
        .into_response("scopegate", "abc");
        assert_eq!(r.status(), 403);
        let c = r.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert_eq!(
            c,
            "Bearer realm=\"scopegate\", error=\"insufficient_scope\", scope=\"item_download\""
        );
    }

    /// Every 400, 401 and 403 carries a challenge and the JSON body; a token
    /// outside its restriction is not told it lacks a scope it holds.
    #[test]
    fn every_client_error_has_a_truthful_challenge() {
        let all = [
            Rejection::BadRequest("x"),
            Rejection::NoToken,
            Rejection::InvalidToken("revoked"),
            Rejection::InsufficientScope {
                needed: "item_read".into(),
            },
            Rejection::OutsideRestriction {
                needed: "item_read".into(),
                why: "the request names an item outside the token's restriction",
            },
            Rejection::Forbidden("As-User is not accepted"),
            Rejection::NoRoute,
            Rejection::TooLarge,
            Rejection::HeadersTooLarge,
            Rejection::Unavailable("x"),
            Rejection::BadGateway,
            Rejection::GatewayTimeout,
        ];
        for rej in all {
            let status = rej.status();
            let r = rej.clone().into_response("scopegate", "abc");
            let challenge = r.headers().get(header::WWW_AUTHENTICATE);
            if matches!(status.as_u16(), 400 | 401 | 403) {
                let c = challenge.unwrap_or_else(|| panic!("{rej:?}: no challenge"));
                assert!(
                    c.to_str()
                        .unwrap()
                        .starts_with("Bearer realm=\"scopegate\"")
                );
            } else {
                assert!(challenge.is_none(), "{rej:?}");
            }
            assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        }
        let r = Rejection::OutsideRestriction {
            needed: "item_read".into(),
            why: "the request names an item outside the token's restriction",
        }
        .into_response("scopegate", "abc");
        assert_eq!(
            r.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"scopegate\", error=\"insufficient_scope\", error_description=\"the request names an item outside the token's restriction\""
        );
    }

    #[test]
    fn missing_token_challenge_has_no_error_code() {
        let r = Rejection::NoToken.into_response("scopegate", "abc");
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"scopegate\""
        );
    }

    #[test]
    fn oauth_errors_map_to_rfc_statuses() {
        assert_eq!(OAuthError::invalid_grant("x").status, 400);
        assert_eq!(OAuthError::new("invalid_client", "x").status, 401);
        assert_eq!(OAuthError::unavailable("x").status, 503);
    }
}
