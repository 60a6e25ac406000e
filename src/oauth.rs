//! `POST /oauth2/token` (RFC 8693 token exchange, Box's wire format) and
//! `POST /oauth2/revoke` (RFC 7009, in [`revoke`], with the rate limit).
//!
//! Exchange: parse the form strictly, refuse a revoked parent, validate the
//! parent (probe or introspection), check the requested scopes against the
//! parent's implication closure, look the resource up at the upstream with
//! the parent, cap the expiry, seal. Every failure is an OAuth error body;
//! bad input is never a 5xx. Other grant types are forwarded untouched to the
//! upstream token endpoint, so the gateway can front the whole API.

use std::collections::HashMap;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::body::{self, Body};
use crate::clock::unix_now;
use crate::config::ParentCheck;
use crate::digest::Digest;
use crate::error::{OAuthError, json_response};
use crate::gateway::Gateway;
use crate::policy::ItemKind;
use crate::scope::ScopeSet;
use crate::token::{self, Claims, Restriction, SealError};
use crate::upstream::UpstreamError;

pub mod revoke;
pub use revoke::{OAuthState, revoke};
mod shared_link;

pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// A form with each parameter at most once (RFC 6749 section 3.2).
struct Form(HashMap<String, String>);

impl Form {
    fn parse(bytes: &[u8]) -> Result<Form, OAuthError> {
        let mut map = HashMap::new();
        for (k, v) in form_urlencoded::parse(bytes) {
            if map.insert(k.to_string(), v.to_string()).is_some() {
                return Err(OAuthError::invalid_request(format!(
                    "parameter `{k}` appears more than once"
                )));
            }
        }
        Ok(Form(map))
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }

    fn require(&self, k: &str) -> Result<&str, OAuthError> {
        self.get(k)
            .ok_or_else(|| OAuthError::invalid_request(format!("missing parameter `{k}`")))
    }
}

/// The parent as validated: its scopes (closure), subject and remaining life.
struct Parent {
    scopes: ScopeSet,
    subject: Option<String>,
    /// The login the probe returned (Box's `login`), for SSF subject matching.
    login: Option<String>,
    remaining: u64,
}

/// Reads the form body of an `/oauth2/*` request.
pub async fn read_form(
    gw: &Gateway,
    req: http::Request<hyper::body::Incoming>,
) -> Result<Bytes, OAuthError> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    body::read_limited(req.into_body(), gw.config.oauth_body_limit)
        .await
        .map_err(|e| match e {
            body::ReadError::TooLarge => {
                OAuthError::invalid_request("the request body is too large")
            }
            body::ReadError::Broken => {
                OAuthError::invalid_request("the request body could not be read")
            }
        })
}

/// `POST /oauth2/token`.
pub async fn token(gw: &Gateway, raw: Bytes) -> Response<Body> {
    let result = match Form::parse(&raw) {
        Err(e) => Err(e),
        Ok(form) => match form.get("grant_type") {
            Some(TOKEN_EXCHANGE) => exchange(gw, &form).await,
            Some(_) => return forward_grant(gw, raw).await,
            None => Err(OAuthError::invalid_request(
                "missing parameter `grant_type`",
            )),
        },
    };
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.code,
    };
    gw.metrics
        .oauth_requests
        .with_label_values(&["exchange", outcome])
        .inc();
    match result {
        Ok(json) => {
            let mut r = json_response(StatusCode::OK, json.to_string());
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => e.into_response(),
    }
}

async fn exchange(gw: &Gateway, form: &Form) -> Result<Value, OAuthError> {
    shared_link::check_parameters(form.0.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    let parent_token = form.require("subject_token")?;
    if form.require("subject_token_type")? != ACCESS_TOKEN_TYPE {
        return Err(OAuthError::invalid_request(format!(
            "`subject_token_type` must be {ACCESS_TOKEN_TYPE}"
        )));
    }
    let scope_param = form.require("scope")?;
    if parent_token.len() > token::MAX_TOKEN_LEN
        || parent_token.bytes().any(|b| !(0x21..0x7f).contains(&b))
    {
        return Err(OAuthError::invalid_grant("the subject token is malformed"));
    }
    if parent_token.starts_with(token::PREFIX) {
        return Err(OAuthError::invalid_grant(
            "a downscoped token cannot be exchanged again; use the parent token",
        ));
    }
    let family = Digest::of(parent_token.as_bytes());
    let now = unix_now();
    if gw.revocations.is_revoked(&family, &family, None, Some(now)) {
        return Err(OAuthError::invalid_grant(
            "the subject token has been revoked",
        ));
    }
    let policy = gw.policy();
    let table = &policy.scopes;

    let mut names: Vec<&str> = Vec::new();
    for s in scope_param.split(' ').filter(|s| !s.is_empty()) {
        if !table.is_known(s) {
            return Err(OAuthError::invalid_scope(format!("unknown scope `{s}`")));
        }
        if !names.contains(&s) {
            names.push(s);
        }
    }
    if names.is_empty() {
        return Err(OAuthError::invalid_request("`scope` names no scope"));
    }
    let requested = table
        .exact(names.iter().copied())
        .map_err(|e| OAuthError::invalid_scope(e.to_string()))?;

    if form.get("resource").is_some() && form.get("box_shared_link").is_some() {
        return Err(OAuthError::invalid_request(
            "`box_shared_link` cannot be combined with `resource`",
        ));
    }
    let mut resource = form.get("resource").map(parse_resource).transpose()?;
    let link = form
        .get("box_shared_link")
        .map(|l| shared_link::parse(l).map(|h| (l, h)))
        .transpose()?;
    let parent = validate_parent(gw, parent_token, now).await?;
    if !parent.scopes.contains_all(requested) {
        let missing: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| {
                table
                    .exact([*n])
                    .is_ok_and(|s| !parent.scopes.contains_all(s))
            })
            .collect();
        return Err(OAuthError::invalid_scope(format!(
            "the subject token does not hold: {}",
            missing.join(" ")
        )));
    }
    let object = match (&resource, &link) {
        (Some((kind, id)), _) => Some(lookup(gw, parent_token, *kind, id).await?),
        (None, Some((_, box_api))) => {
            let (kind, id, object) = shared_link::resolve(gw, parent_token, box_api).await?;
            resource = Some((kind, id));
            Some(object)
        }
        (None, None) => None,
    };

    let expires_in = gw.config.max_expires_in.as_secs().min(parent.remaining);
    if expires_in == 0 {
        return Err(OAuthError::invalid_grant("the subject token has expired"));
    }
    let claims = Claims {
        p: parent_token.to_string(),
        s: names.iter().map(|s| s.to_string()).collect(),
        r: resource.as_ref().map(|(k, id)| Restriction {
            k: k.as_str().into(),
            id: id.clone(),
        }),
        l: link.map(|(l, _)| l.to_string()),
        sub: parent.subject,
        lg: parent.login,
        iat: now,
        exp: now + expires_in,
        jti: gw.grants.keyring().random_hex(16),
        fam: family,
    };
    // A token longer than the bearer limit ([limits] token_bytes) would be
    // refused on every request: refuse to mint it instead.
    let too_long = || OAuthError::invalid_grant("the subject token is too long to be downscoped");
    let access_token = match gw.grants.keyring().seal_checked(&claims) {
        Ok(t) if t.len() <= gw.config.limits.token_bytes => t,
        Ok(_) | Err(SealError::TooLong) => return Err(too_long()),
        Err(SealError::NoRandom) => {
            tracing::error!("the OS random source failed: no token minted");
            return Err(OAuthError::unavailable("no token could be minted; retry"));
        }
    };
    gw.metrics.tokens_minted.inc();
    let restricted_to: Vec<Value> = names
        .iter()
        .map(|s| match &object {
            Some(o) => json!({ "scope": s, "object": o }),
            None => json!({ "scope": s }),
        })
        .collect();
    Ok(json!({
        "access_token": access_token,
        "expires_in": expires_in,
        "token_type": "bearer",
        "restricted_to": restricted_to,
        "issued_token_type": ACCESS_TOKEN_TYPE,
    }))
}

/// `https://any.host/2.0/files/123` or `.../2.0/folders/45`.
fn parse_resource(url: &str) -> Result<(ItemKind, String), OAuthError> {
    let bad = || {
        OAuthError::invalid_resource(
            "`resource` must be a file or folder URL like https://api.box.com/2.0/files/123",
        )
    };
    let uri: http::Uri = url.parse().map_err(|_| bad())?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.query().is_some() {
        return Err(bad());
    }
    let path = uri.path().strip_prefix("/2.0/").ok_or_else(bad)?;
    let (kind, id) = path.split_once('/').ok_or_else(bad)?;
    let kind = match kind {
        "files" => ItemKind::File,
        "folders" => ItemKind::Folder,
        _ => return Err(bad()),
    };
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(bad());
    }
    Ok((kind, id.to_string()))
}

/// Entry point for `fuzz/` (not an API): runs the strict form parser on
/// arbitrary bytes, then the `resource` and `scope` handling of an exchange
/// on what it found. Returns whether the form parsed.
#[doc(hidden)]
pub fn fuzz_form(bytes: &[u8]) -> bool {
    let Ok(form) = Form::parse(bytes) else {
        return false;
    };
    if let Some(r) = form.get("resource")
        && let Ok((_, id)) = parse_resource(r)
    {
        assert!(
            !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        );
    }
    if let Some(s) = form.get("scope") {
        for name in s.split(' ').filter(|s| !s.is_empty()) {
            assert!(!name.contains(' '));
        }
    }
    let _ = shared_link::check_parameters(form.0.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    if let Some(l) = form.get("box_shared_link")
        && let Ok(h) = shared_link::parse(l)
    {
        // One BoxApi parameter, the link as given: nothing can ride along.
        let v = h.to_str().expect("a plain link is ASCII");
        assert_eq!(v.strip_prefix("shared_link="), Some(l));
        assert!(!l.contains(['&', '=', ' ', '?', '#']));
    }
    for k in ["grant_type", "subject_token", "subject_token_type", "token"] {
        if let Ok(v) = form.require(k) {
            assert!(!v.is_empty());
        }
    }
    true
}

async fn validate_parent(gw: &Gateway, parent: &str, now: u64) -> Result<Parent, OAuthError> {
    let policy = gw.policy();
    match &gw.config.parent {
        ParentCheck::Probe { path } => {
            let (status, json) = gw
                .client
                .get_json(&gw.config.upstream.api, path, parent)
                .await
                .map_err(unavailable)?;
            match status {
                200..=299 => {}
                401 | 403 => {
                    return Err(OAuthError::invalid_grant(
                        "the subject token is not valid at the upstream",
                    ));
                }
                _ => {
                    return Err(OAuthError::unavailable(
                        "the upstream could not validate the subject token",
                    ));
                }
            }
            let subject = crate::json::id_of(json.get("id").unwrap_or(&Value::Null));
            let login = json
                .get("login")
                .and_then(Value::as_str)
                .filter(|l| !l.is_empty() && l.len() <= 200)
                .map(str::to_owned);
            Ok(Parent {
                login,
                scopes: policy
                    .scopes
                    .expand_lenient(gw.config.parent_scopes.iter().map(String::as_str)),
                subject,
                remaining: gw.config.parent_lifetime.as_secs(),
            })
        }
        ParentCheck::Introspect => {
            let i = gw
                .introspector
                .as_ref()
                .ok_or_else(|| OAuthError::unavailable("no introspection configured"))?;
            let answer = i.introspect(parent).await.map_err(|e| {
                gw.metrics.introspection_errors.inc();
                unavailable(e)
            })?;
            let a = answer
                .ok_or_else(|| OAuthError::invalid_grant("the subject token is not active"))?;
            if gw.revocations.is_revoked(
                &Digest::of(parent.as_bytes()),
                &Digest::of(parent.as_bytes()),
                a.sub.as_deref(),
                a.iat,
            ) {
                return Err(OAuthError::invalid_grant(
                    "the subject token has been revoked",
                ));
            }
            let remaining = match a.exp {
                Some(exp) => exp.saturating_sub(now),
                None => gw.config.parent_lifetime.as_secs(),
            };
            Ok(Parent {
                scopes: policy
                    .scopes
                    .expand_lenient(a.scope.as_deref().unwrap_or("").split(' ')),
                subject: a.sub,
                login: None,
                remaining,
            })
        }
    }
}

fn unavailable(e: UpstreamError) -> OAuthError {
    OAuthError::unavailable(match e {
        UpstreamError::Timeout => "the upstream did not answer in time",
        _ => "the upstream could not be reached",
    })
}

/// Asks the upstream, as the parent, for the item; its answer fills
/// `restricted_to[].object`.
async fn lookup(gw: &Gateway, parent: &str, kind: ItemKind, id: &str) -> Result<Value, OAuthError> {
    let path = format!("/2.0/{}s/{id}", kind.as_str());
    let (status, json) = gw
        .client
        .get_json(&gw.config.upstream.api, &path, parent)
        .await
        .map_err(unavailable)?;
    match status {
        200 => {}
        401 => {
            return Err(OAuthError::invalid_grant(
                "the subject token is not valid at the upstream",
            ));
        }
        400..=499 => {
            return Err(OAuthError::invalid_resource(
                "the resource does not exist or the subject token cannot see it",
            ));
        }
        _ => {
            return Err(OAuthError::unavailable(
                "the upstream could not look up the resource",
            ));
        }
    }
    if json.get("type").and_then(Value::as_str) != Some(kind.as_str())
        || json.get("id").and_then(crate::json::id_of).as_deref() != Some(id)
    {
        return Err(OAuthError::invalid_resource(
            "the upstream answered with another item",
        ));
    }
    Ok(restricted_object(kind, &json))
}

/// The `restricted_to[].object` of an exchange answer, from the upstream's
/// item: type, id, name, etag, sequence_id and, for files, sha1 and
/// file_version.
fn restricted_object(kind: ItemKind, json: &Value) -> Value {
    let mut object = serde_json::Map::new();
    let keys: &[&str] = match kind {
        ItemKind::File => &[
            "type",
            "id",
            "name",
            "etag",
            "sequence_id",
            "sha1",
            "file_version",
        ],
        ItemKind::Folder => &["type", "id", "name", "etag", "sequence_id"],
    };
    for k in keys {
        if let Some(v) = json.get(*k) {
            object.insert(k.to_string(), v.clone());
        }
    }
    Value::Object(object)
}

/// Other grant types go to the upstream token endpoint unchanged.
async fn forward_grant(gw: &Gateway, raw: Bytes) -> Response<Body> {
    let Some(url) = &gw.config.upstream.token_endpoint else {
        gw.metrics
            .oauth_requests
            .with_label_values(&["exchange", "unsupported_grant_type"])
            .inc();
        return OAuthError::new(
            "unsupported_grant_type",
            "only token exchange is handled here",
        )
        .into_response();
    };
    let req = http::Request::post(url.clone())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body::full(raw));
    let Ok(req) = req else {
        return OAuthError::unavailable("the token endpoint is misconfigured").into_response();
    };
    gw.metrics
        .oauth_requests
        .with_label_values(&["forward", "sent"])
        .inc();
    match gw.client.send(req).await {
        Ok(resp) => {
            let (mut parts, b) = resp.into_parts();
            crate::proxy::strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, body::boxed(b))
        }
        Err(e) => unavailable(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_parse_from_any_host() {
        assert_eq!(
            parse_resource("https://api.box.com/2.0/files/123").unwrap(),
            (ItemKind::File, "123".into())
        );
        assert_eq!(
            parse_resource("http://x/2.0/folders/0").unwrap(),
            (ItemKind::Folder, "0".into())
        );
        for bad in [
            "https://api.box.com/2.0/files/",
            "https://api.box.com/2.0/files/1/content",
            "https://api.box.com/2.0/users/1",
            "/2.0/files/1",
            "https://api.box.com/2.0/files/1?x=1",
            "https://api.box.com/2.0/files/%2e%2e",
        ] {
            assert_eq!(
                parse_resource(bad).unwrap_err().code,
                "invalid_resource",
                "{bad}"
            );
        }
    }

    #[test]
    fn repeated_parameters_are_refused() {
        assert!(Form::parse(b"scope=a&scope=b").is_err());
        assert_eq!(Form::parse(b"scope=a+b").unwrap().get("scope"), Some("a b"));
    }
}
