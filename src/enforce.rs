//! The decision: may this API request pass, and as what?
//!
//! The phases run in this order, each able to stop the request:
//! 1. canonicalise the target ([`crate::target`]) and refuse ambiguous headers;
//! 2. match the route ([`crate::policy`]);
//! 3. read the bearer token and resolve it to a grant ([`crate::grant`]);
//! 4. check revocation (every request, cached grant or not; a cached grant
//!    skips the lookups while nothing was revoked since its last check);
//! 5. check the route's scopes against the grant;
//! 6. check the route's object against the grant's restriction, reading
//!    only as much of the body as the route's object rule needs;
//! 7. hand a [`Permit`] and the (possibly re-assembled) body to the forwarder.

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderName, header};
use hyper::body::Incoming;

use crate::ancestry::AncestryError;
use crate::body::{self, Body};
use crate::error::Rejection;
use crate::gateway::Gateway;
use crate::grant::{Forward, Grant, Item};
use crate::policy::{ItemKind, ObjectRule, Route};
use crate::proxy::{Permit, rewriting};
use crate::scope::{ScopeSet, ScopeTable};
use crate::target::Target;
use serde_json::Value;

/// Headers that change whom the upstream acts for. Box honours `As-User`
/// (act as another user) and `BoxApi: shared_link=...` (act through a shared
/// link); a downscoped token must not reach past its parent's own view.
fn impersonating(n: &HeaderName) -> bool {
    matches!(n.as_str(), "as-user" | "boxapi")
}

/// The outcome the logs and metrics need besides the permit.
pub struct Allowed {
    pub permit: Permit,
    pub body: Body,
    pub grant: Arc<Grant>,
    pub cache_hit: bool,
    /// The route opens a chunked upload session for this checked item: the
    /// session id in the answer is to be recorded with it.
    pub opens_upload_session: Option<Item>,
}

/// Phase 1 on headers: the ones that could make the upstream read the
/// request differently from the gateway.
fn check_headers(h: &HeaderMap) -> Result<(), Rejection> {
    // One pass over the names present (a handful) instead of a lookup per
    // refused name.
    if h.keys().any(rewriting) {
        return Err(Rejection::BadRequest(
            "method or URL override headers are not accepted",
        ));
    }
    if h.get_all(header::AUTHORIZATION).iter().nth(1).is_some() {
        return Err(Rejection::BadRequest("more than one Authorization header"));
    }
    Ok(())
}

/// `Authorization: Bearer <token>` (RFC 6750 2.1), scheme case-insensitive.
pub fn bearer(h: &HeaderMap) -> Result<&str, Rejection> {
    let Some(v) = h.get(header::AUTHORIZATION) else {
        return Err(Rejection::NoToken);
    };
    // A header value holds only tab, visible ASCII and obs-text (0x80 and
    // up). The scheme is a few bytes: a plain scan, not a string searcher.
    let v = v.as_bytes();
    let not_ascii = || Rejection::BadRequest("the Authorization header is not ASCII");
    let Some(space) = v.iter().position(|&b| b == b' ') else {
        return Err(if v.is_ascii() {
            Rejection::BadRequest("the Authorization header is not `Bearer <token>`")
        } else {
            not_ascii()
        });
    };
    if !v[..space].eq_ignore_ascii_case(b"bearer") {
        return Err(if v.is_ascii() {
            Rejection::NoToken
        } else {
            not_ascii()
        });
    }
    // "bearer " is ASCII, so the token decides the rest. Its smallest and
    // largest bytes tell both checks in one pass the compiler vectorises
    // (a token is a few hundred bytes on every request): non-ASCII first,
    // then RFC 6750's b64token (no spaces, nothing after the token).
    let token = &v[space + 1..];
    let (low, high) = token
        .iter()
        .fold((u8::MAX, 0u8), |(lo, hi), &b| (lo.min(b), hi.max(b)));
    if high >= 0x80 {
        return Err(not_ascii());
    }
    if token.is_empty() || low <= b' ' {
        return Err(Rejection::BadRequest(
            "the bearer token is empty or holds spaces or control bytes",
        ));
    }
    // ASCII throughout, so this cannot fail.
    let token = std::str::from_utf8(token).map_err(|_| not_ascii())?;
    Ok(token)
}

/// Runs every phase. `Ok` carries the only value the forwarder accepts.
pub async fn decide(
    gw: &Gateway,
    parts: &Parts,
    body: Incoming,
) -> (Option<Arc<str>>, Result<Allowed, Rejection>) {
    let policy = gw.policy();
    let target = match Target::parse_request(&parts.uri, parts.version) {
        Ok(t) => t,
        Err(e) => return (None, Err(Rejection::BadRequest(target_reason(e)))),
    };
    if let Err(r) = check_headers(&parts.headers) {
        return (None, Err(r));
    }
    // hyper's read buffer bounds the head only roughly; this is the exact limit.
    let head_bytes: usize = parts
        .headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if head_bytes + uri_len(&parts.uri) > gw.config.limits.header_bytes {
        return (None, Err(Rejection::HeadersTooLarge));
    }
    let mut route_name = None;
    let result = async {
        // Matched in here: the match borrows the target, which the permit
        // takes over at the end (no copy of the path per request).
        let route = policy.find(&parts.method, target.path());
        route_name = route.as_ref().map(|m| m.route.name.clone());
        let token = bearer(&parts.headers)?;
        if token.len() > gw.config.limits.token_bytes {
            return Err(Rejection::InvalidToken("malformed"));
        }
        if route.is_none() && !gw.config.unmatched_pass {
            return Err(Rejection::NoRoute);
        }
        let now = crate::clock::unix_now();
        let (grant, cache_hit) = gw.grants.resolve(token, &policy.scopes, now).await?;
        if grant.is_minted() && gw.revocations.must_refuse_minted() {
            return Err(Rejection::Unavailable(
                "the revocation stream is not confirmed live",
            ));
        }
        if gw.revocations.is_revoked_checked(
            grant.checked(),
            grant.token_hash(),
            grant.family(),
            grant.subject(),
            grant.iat(),
        ) {
            return Err(Rejection::InvalidToken("revoked"));
        }
        let Some(m) = route else {
            // unmatched = "pass": never with a downscoped token, whose parent
            // would otherwise reach routes nobody reviewed.
            if grant.is_minted() {
                return Err(Rejection::NoRoute);
            }
            let permit = Permit::new("unmatched".into(), target, grant.forward());
            return Ok(Allowed {
                permit,
                body: body::boxed(body),
                grant,
                cache_hit,
                opens_upload_session: None,
            });
        };
        let r = m.route;
        if !grant.scopes().intersects(r.scopes) {
            return Err(Rejection::InsufficientScope {
                needed: r.scope_names.clone(),
            });
        }
        if grant.is_minted() && parts.headers.keys().any(impersonating) {
            return Err(Rejection::Forbidden(
                "As-User and BoxApi headers are not accepted with a downscoped token",
            ));
        }
        if grant.is_minted()
            && let Some(q) = target.query()
        {
            check_fields(&policy.scopes, grant.scopes(), q)?;
        }
        let (body, named) =
            check_object(gw, r, &grant, |i| m.param(i), &parts.headers, body).await?;
        let mut permit = Permit::new(r.name.clone(), target, grant.forward());
        permit.rewrite_upload_url = r.rewrite_upload_url;
        Ok(Allowed {
            permit,
            body,
            grant,
            cache_hit,
            opens_upload_session: named.filter(|_| r.opens_upload_session),
        })
    }
    .await;
    (route_name, result)
}

/// The length of `uri` as written (`scheme://authority` + path and query),
/// without formatting it into a new string on every request.
fn uri_len(uri: &http::Uri) -> usize {
    uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(0, |pq| pq.as_str().len())
}

/// `?fields=` values that hand out more than the route's scope: a token-less
/// preview URL, representation URLs, an existing shared link, a direct
/// download URL. A downscoped token may ask for one only when it holds the
/// scope that capability needs (Box answers as the parent, so the gateway
/// is the only check).
const FIELD_SCOPES: &[(&str, &str)] = &[
    ("expiring_embed_link", "item_preview"),
    ("representations", "item_preview"),
    ("shared_link", "item_share"),
    ("download_url", "item_download"),
];

fn check_fields(table: &ScopeTable, held: ScopeSet, query: &str) -> Result<(), Rejection> {
    if !query.contains("fields") {
        return Ok(());
    }
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if k != "fields" {
            continue;
        }
        for field in v.split(',').map(str::trim) {
            for (name, scope) in FIELD_SCOPES {
                if field.eq_ignore_ascii_case(name) {
                    // A policy without that scope: nobody may ask (fail closed).
                    let ok = table.exact([*scope]).is_ok_and(|s| held.intersects(s));
                    if !ok {
                        return Err(Rejection::InsufficientScope {
                            needed: (*scope).to_string(),
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

fn target_reason(e: crate::target::TargetError) -> &'static str {
    use crate::target::TargetError::*;
    match e {
        NotOriginForm => "the request target must be a path",
        EmptySegment => "the path holds an empty segment or a trailing slash",
        DotSegment => "the path holds a dot segment",
        EncodedDelimiter => "the path holds an encoded delimiter",
        ForbiddenByte => "the path holds a forbidden byte",
        BadEscape => "the path holds a malformed percent-escape",
        NotUtf8 => "the path is not UTF-8",
        BadQuery => "the query holds a forbidden byte",
        TooLong => "the request target is too long",
    }
}

/// An id safe to put in an upstream path: Box ids are digits; we allow a
/// little more, never a delimiter.
fn plain_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Does the restriction cover `named`? The same item, or for a folder
/// restriction anything below it (asked of the upstream with the parent).
async fn covers(
    gw: &Gateway,
    restriction: &Item,
    named: &Item,
    grant: &Grant,
) -> Result<bool, Rejection> {
    if restriction == named {
        return Ok(true);
    }
    if restriction.kind != ItemKind::Folder || !plain_id(&named.id) {
        return Ok(false);
    }
    let Forward::Parent(parent) = grant.forward() else {
        return Ok(false);
    };
    match gw.ancestry.is_within(named, &restriction.id, parent).await {
        Ok(within) => Ok(within),
        Err(AncestryError::NotVisible) => Ok(false),
        Err(AncestryError::Unavailable) => Err(Rejection::Unavailable(
            "the upstream could not tell where the item is",
        )),
    }
}

async fn read_json(gw: &Gateway, body: Incoming) -> Result<(Bytes, Value), Rejection> {
    let bytes = body::read_limited(body, gw.config.json_body_limit)
        .await
        .map_err(|e| match e {
            body::ReadError::TooLarge => Rejection::TooLarge,
            body::ReadError::Broken => Rejection::BadRequest("the request body could not be read"),
        })?;
    if bytes.is_empty() {
        return Ok((bytes, Value::Null));
    }
    let json = crate::json::parse_strict(&bytes)
        .map_err(|_| Rejection::BadRequest("the body is not JSON without duplicate keys"))?;
    Ok((bytes, json))
}

const NAMES_NO_ITEM: Rejection =
    Rejection::BadRequest("the body does not name the item this route acts on");

/// Phase 6 for a grant restricted to an item. Returns the body to forward
/// and, for a restricted grant, the item the request was checked against.
async fn check_object<'p>(
    gw: &Gateway,
    route: &Route,
    grant: &Grant,
    param: impl Fn(usize) -> Option<&'p str>,
    headers: &HeaderMap,
    body: Incoming,
) -> Result<(Body, Option<Item>), Rejection> {
    let Some(restriction) = grant.restricted_to() else {
        return Ok((body::boxed(body), None));
    };
    let outside = |why| Rejection::OutsideRestriction {
        needed: route.scope_names.clone(),
        why,
    };
    // The JSON body, when this route's rules need it (read once, forwarded as read).
    let mut json: Option<(Bytes, Value)> = None;
    let mut forward_body: Option<Body> = None;
    let named = match &route.object {
        ObjectRule::None {
            restricted_ok: true,
        } => return Ok((body::boxed(body), None)),
        ObjectRule::None {
            restricted_ok: false,
        } => {
            return Err(outside(
                "this endpoint is not open to item-restricted tokens",
            ));
        }
        ObjectRule::Path { kind, param: i } => {
            if route.destination.is_some() {
                json = Some(read_json(gw, body).await?);
            } else {
                forward_body = Some(body::boxed(body));
            }
            Item {
                kind: *kind,
                id: param(*i).ok_or(Rejection::NoRoute)?.into(),
            }
        }
        ObjectRule::UploadSession { param: i } => {
            if route.destination.is_some() {
                json = Some(read_json(gw, body).await?);
            } else {
                forward_body = Some(body::boxed(body));
            }
            let id = param(*i).ok_or(Rejection::NoRoute)?;
            gw.upload_sessions
                .item_of(id, crate::clock::unix_now())
                .ok_or_else(|| {
                    outside("the upload session was not opened through this gateway by a token restricted to an item")
                })?
        }
        ObjectRule::Body { kind, field } => {
            let (bytes, value) = read_json(gw, body).await?;
            let named = crate::json::field(&value, field)
                .and_then(crate::json::id_of)
                .map(|id| Item {
                    kind: *kind,
                    id: id.into(),
                });
            json = Some((bytes, value));
            named.ok_or(NAMES_NO_ITEM)?
        }
        ObjectRule::BodyItem { field } => {
            let (bytes, value) = read_json(gw, body).await?;
            let named = crate::json::field(&value, field).and_then(|v| {
                let kind = ItemKind::parse(v.get("type")?.as_str()?)?;
                Some(Item {
                    kind,
                    id: crate::json::id_of(v.get("id")?)?.into(),
                })
            });
            json = Some((bytes, value));
            named.ok_or(NAMES_NO_ITEM)?
        }
        ObjectRule::Upload { kind, field } => {
            // Two Content-Types could give the upstream another boundary,
            // and so other parts, than the one checked here.
            if headers.get_all(header::CONTENT_TYPE).iter().count() > 1 {
                return Err(Rejection::BadRequest(
                    "an upload must have one Content-Type",
                ));
            }
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let boundary = crate::upload::boundary(ct).ok_or(Rejection::BadRequest(
                "an upload must be multipart/form-data",
            ))?;
            let (attrs, replay) = crate::upload::read_attributes(body, &boundary)
                .await
                .map_err(|e| match e {
                    crate::upload::UploadError::TooLong => Rejection::TooLarge,
                    crate::upload::UploadError::ExtraPart => Rejection::BadRequest(
                        "an upload must be its attributes part and one file part",
                    ),
                    _ => {
                        Rejection::BadRequest("the upload's first part must be its JSON attributes")
                    }
                })?;
            forward_body = Some(body::boxed(replay));
            let id = crate::json::field(&attrs, field)
                .and_then(crate::json::id_of)
                .ok_or(Rejection::BadRequest(
                    "the upload attributes name no parent folder",
                ))?;
            Item {
                kind: *kind,
                id: id.into(),
            }
        }
    };
    if !covers(gw, restriction, &named, grant).await? {
        return Err(outside(
            "the request names an item outside the token's restriction",
        ));
    }
    if let Some(field) = &route.destination
        && let Some((_, value)) = &json
        && let Some(dest) = crate::json::field(value, field)
    {
        let id = crate::json::id_of(dest).ok_or(Rejection::BadRequest(
            "the destination folder id is not an id",
        ))?;
        let dest = Item {
            kind: ItemKind::Folder,
            id: id.into(),
        };
        if !covers(gw, restriction, &dest, grant).await? {
            return Err(outside(
                "the destination folder is outside the token's restriction",
            ));
        }
    }
    let body = match (json, forward_body) {
        (Some((bytes, _)), _) => body::full(bytes),
        (None, Some(b)) => b,
        (None, None) => body::empty(),
    };
    Ok((body, Some(named)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn bearer_parsing_follows_rfc_6750() {
        assert_eq!(
            bearer(&headers(&[("authorization", "Bearer abc")])),
            Ok("abc")
        );
        assert_eq!(
            bearer(&headers(&[("authorization", "bearer abc")])),
            Ok("abc")
        );
        assert_eq!(bearer(&headers(&[])), Err(Rejection::NoToken));
        assert_eq!(
            bearer(&headers(&[("authorization", "Basic abc")])),
            Err(Rejection::NoToken)
        );
        assert!(matches!(
            bearer(&headers(&[("authorization", "Bearer a b")])),
            Err(Rejection::BadRequest(_))
        ));
        assert!(matches!(
            bearer(&headers(&[("authorization", "Bearer ")])),
            Err(Rejection::BadRequest(_))
        ));
        assert!(matches!(
            bearer(&headers(&[("authorization", "Bearer a\tb")])),
            Err(Rejection::BadRequest(_))
        ));
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            http::HeaderValue::from_bytes(b"Bearer abc\xe9").unwrap(),
        );
        assert_eq!(
            bearer(&h),
            Err(Rejection::BadRequest(
                "the Authorization header is not ASCII"
            ))
        );
        // Non-ASCII is named first, wherever it is and whatever else is wrong.
        for raw in [
            &b"Basic\xe9 abc"[..],
            b"Bearer\xe9abc",
            b"Bearer a\xe9 b",
            b"B\xe9arer abc",
        ] {
            let mut h = HeaderMap::new();
            h.insert(
                header::AUTHORIZATION,
                http::HeaderValue::from_bytes(raw).unwrap(),
            );
            assert_eq!(
                bearer(&h),
                Err(Rejection::BadRequest(
                    "the Authorization header is not ASCII"
                )),
                "{raw:?}"
            );
        }
        assert_eq!(
            bearer(&headers(&[("authorization", "Bearerabc")])),
            Err(Rejection::BadRequest(
                "the Authorization header is not `Bearer <token>`"
            ))
        );
    }

    #[test]
    fn fields_that_widen_a_token_need_their_scope() {
        let t = ScopeTable::new(&[], &[]).unwrap();
        let read = t.exact(["item_read"]).unwrap();
        let preview = t.exact(["item_read", "item_preview"]).unwrap();
        assert!(check_fields(&t, read, "fields=name,size").is_ok());
        assert!(check_fields(&t, read, "fields=name,expiring_embed_link").is_err());
        assert!(check_fields(&t, read, "fields=Expiring_Embed_Link").is_err());
        assert!(check_fields(&t, read, "fields=name%2Cexpiring_embed_link").is_err());
        assert!(check_fields(&t, preview, "fields=name,expiring_embed_link").is_ok());
        assert!(check_fields(&t, preview, "limit=5&fields=shared_link").is_err());
        assert!(check_fields(&t, read, "x=fields").is_ok());
    }

    #[test]
    fn override_and_duplicate_auth_headers_are_refused() {
        assert!(check_headers(&headers(&[("x-http-method-override", "DELETE")])).is_err());
        assert!(check_headers(&headers(&[("x-original-url", "/2.0/folders/0")])).is_err());
        assert!(
            check_headers(&headers(&[
                ("authorization", "Bearer a"),
                ("authorization", "Bearer b")
            ]))
            .is_err()
        );
        assert!(check_headers(&headers(&[("authorization", "Bearer a")])).is_ok());
    }
}
