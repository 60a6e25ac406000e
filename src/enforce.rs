//! The decision: may this API request pass, and as what?
//!
//! The phases run in this order, each able to stop the request:
//! 1. canonicalise the target and read its query ([`crate::target`],
//!    [`crate::query`]) and refuse ambiguous headers;
//! 2. match the route ([`crate::policy`]);
//! 3. read the bearer token (the `Authorization` header, or `access_token`
//!    in the query on routes the policy marks for it) and resolve it to a
//!    grant ([`crate::grant`]);
//! 4. check revocation (every request, cached grant or not; a cached grant
//!    skips the lookups while nothing was revoked since its last check);
//! 5. check the route's scopes against the grant;
//! 6. check the route's object against the grant's restriction, reading
//!    only as much of the body as the route's object rule needs;
//! 7. hand a [`Permit`] and the (possibly re-assembled) body to the forwarder.

use std::borrow::Cow;
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
use crate::policy::{BodyKind, ItemKind, ObjectRule, Route};
use crate::proxy::{Permit, rewriting};
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
    // Which host a request is for decides, for some servers, which site or
    // tenant answers it; two are two answers.
    if h.get_all(header::HOST).iter().nth(1).is_some() {
        return Err(Rejection::BadRequest("more than one Host header"));
    }
    // RFC 9112 6.3: a request with both may be refused, and a front end and
    // a back end that pick differently are how requests are smuggled.
    // HTTP/2 cannot carry Transfer-Encoding at all (h2 refuses the stream);
    // over HTTP/1.1 hyper drops the Content-Length before the gateway sees
    // the request, so `crate::framing` reports it from the head as sent.
    if h.contains_key(header::TRANSFER_ENCODING) && h.contains_key(header::CONTENT_LENGTH) {
        return Err(TE_AND_CL);
    }
    Ok(())
}

/// The refusal of a request framed both by `Transfer-Encoding` and by
/// `Content-Length`.
pub const TE_AND_CL: Rejection =
    Rejection::BadRequest("Transfer-Encoding and Content-Length together");

/// HTTP/2 names the host twice when a client sends `host` besides
/// `:authority`; RFC 9113 8.3.1: they must agree.
fn check_authority(parts: &Parts) -> Result<(), Rejection> {
    if let (Some(host), Some(authority)) = (parts.headers.get(header::HOST), parts.uri.authority())
        && host.as_bytes() != authority.as_str().as_bytes()
    {
        return Err(Rejection::BadRequest(
            "the Host header and the :authority differ",
        ));
    }
    Ok(())
}

/// The query parameter that may carry the bearer token (RFC 6750 2.3).
const QUERY_TOKEN: &str = "access_token";

/// The bearer token of a request: the `Authorization` header, or
/// `access_token` in the query where `query_ok` (the matched route is marked
/// for it), never both. A token in the query is never forwarded: the caller
/// removes it from the target, so the token is copied out of it. The flag
/// says where the token came from (`true`: the query).
fn request_token<'h>(
    h: &'h HeaderMap,
    target: &Target,
    query_ok: bool,
) -> Result<(Cow<'h, str>, bool), Rejection> {
    // Canonical queries spell a name only one way: no parse without it.
    let in_query = target
        .query()
        .is_some_and(|q| q.contains(QUERY_TOKEN))
        .then(|| target.query_value(QUERY_TOKEN))
        .flatten();
    let Some(token) = in_query else {
        return bearer(h).map(|t| (Cow::Borrowed(t), false));
    };
    if h.contains_key(header::AUTHORIZATION) {
        return Err(Rejection::BadRequest(
            "a token in the query and an Authorization header",
        ));
    }
    if !query_ok {
        return Err(Rejection::BadRequest(
            "access_token in the query is not accepted on this route",
        ));
    }
    if token.is_empty() || token.bytes().any(|b| b <= b' ' || b >= 0x7f) {
        return Err(Rejection::BadRequest(
            "the access_token is empty or holds spaces, control or non-ASCII bytes",
        ));
    }
    Ok((Cow::Owned(token.into_owned()), true))
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
    let (mut target, slash) = match parse_target(parts) {
        Ok(t) => t,
        Err(e) => return (None, Err(Rejection::BadRequest(target_reason(e)))),
    };
    if let Err(r) = check_headers(&parts.headers) {
        return (None, Err(r));
    }
    if parts.version >= http::Version::HTTP_2
        && let Err(r) = check_authority(parts)
    {
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
        let route = policy.find_slash(&parts.method, target.path(), slash);
        if slash && route.is_none() {
            // A trailing slash is refused (as `target` does) unless the
            // route's `{name*}` tail takes exactly that shape.
            return Err(Rejection::BadRequest(target_reason(
                crate::target::TargetError::EmptySegment,
            )));
        }
        route_name = route.as_ref().map(|m| m.route.name.clone());
        let query_ok = route.as_ref().is_some_and(|m| m.route.query_token);
        let (token, from_query) = request_token(&parts.headers, &target, query_ok)?;
        let token: &str = &token;
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
        ) || grant.login_key().is_some_and(|login| {
            gw.revocations.is_revoked_checked(
                grant.login_checked(),
                grant.token_hash(),
                grant.family(),
                Some(login),
                grant.iat(),
            )
        }) {
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
        // What the token may not see is taken out of `?fields=` and of the
        // answer (see `crate::fields` and `crate::answer`).
        let hidden = if grant.is_minted() {
            policy.hidden_fields(grant.scopes())
        } else {
            0
        };
        let (body, named) =
            check_object(gw, r, &grant, |i| m.param(i), &target, &parts.headers, body).await?;
        let mut forward_token = None;
        if from_query {
            // Never forwarded in a URL: the upstream gets the parent (or, for
            // an external token passed as it is, the token in a header).
            forward_token = Some(token.to_owned());
            target
                .remove_query_param(QUERY_TOKEN)
                .map_err(|e| Rejection::BadRequest(target_reason(e)))?;
        }
        let query = match target.query() {
            Some(q) if hidden != 0 => {
                crate::fields::forwarded_query(q, |f| policy.is_hidden(hidden, f))
            }
            _ => None,
        };
        let (name, origin) = (r.name.clone(), r.origin);
        let rewrite = (grant.is_minted() && !r.answer_bytes) || r.rewrite_upload_url;
        let target = match query {
            Some(q) => Target::parse_parts(target.path(), Some(&q))
                .map_err(|e| Rejection::BadRequest(target_reason(e)))?,
            None => target,
        };
        let target = if slash {
            target.with_trailing_slash()
        } else {
            target
        };
        let mut permit = Permit::new(name, target, grant.forward());
        permit.origin = origin;
        permit.box_api = grant.box_api().cloned();
        permit.answer = rewrite.then(|| crate::answer::Plan {
            policy: policy.clone(),
            hidden,
            origins: gw.answer_origins.clone(),
            limit: gw.config.answer_json_limit,
        });
        if let (Some(t), Forward::AsIs) = (forward_token, grant.forward()) {
            permit.authorization = Some(
                http::HeaderValue::from_str(&format!("Bearer {t}"))
                    .map_err(|_| Rejection::BadRequest("the access_token is not a header value"))?,
            );
        }
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

/// The request target; `true` when the client's path ended in one `/`
/// after an otherwise canonical path. That shape is read with the slash
/// taken off and allowed only on a route whose `{name*}` tail takes it
/// (Box's representation content with an empty asset path); every other
/// route refuses it as [`Target`] always did.
fn parse_target(parts: &Parts) -> Result<(Target, bool), crate::target::TargetError> {
    let path = parts.uri.path();
    if path.len() > 1 && path.ends_with('/') {
        if parts.version < http::Version::HTTP_2
            && (parts.uri.scheme().is_some() || parts.uri.authority().is_some())
        {
            return Err(crate::target::TargetError::NotOriginForm);
        }
        let t = Target::parse_parts(&path[..path.len() - 1], parts.uri.query())?;
        return Ok((t, true));
    }
    Ok((Target::parse_request(&parts.uri, parts.version)?, false))
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
        Query(q) => query_reason(q),
        TooLong => "the request target is too long",
    }
}

fn query_reason(e: crate::query::QueryError) -> &'static str {
    use crate::query::QueryError::*;
    match e {
        ForbiddenByte => "the query holds a semicolon, fragment, control or non-ASCII byte",
        BadEscape => "the query holds a malformed percent-escape",
        BadDecoded => "the query holds an escaped control byte or is not UTF-8",
        BadName => "a query parameter name is empty or holds a space, %, &, +, ;, = or #",
        Ambiguous => "a query parameter the gateway reads is repeated or spelled another way",
        DoubleEncoded => "a query parameter the gateway reads holds an encoded percent sign",
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

/// Most ids one query parameter may name (each may cost an ancestry lookup).
const MAX_QUERY_ITEMS: usize = 100;

/// A query parameter naming a comma-separated list of items (search's
/// `ancestor_folder_ids`): present, every entry an id, every item inside
/// the restriction. Without it the request would reach past the restriction
/// (a search of everything the parent sees), so it is refused.
async fn check_query_items(
    gw: &Gateway,
    route: &Route,
    restriction: &Item,
    grant: &Grant,
    kind: ItemKind,
    param: &str,
    target: &Target,
) -> Result<(), Rejection> {
    let Some(list) = target.query_value(param) else {
        return Err(Rejection::OutsideRestriction {
            needed: route.scope_names.clone(),
            why: "an item-restricted token must name the folder it searches in",
        });
    };
    let ids: Vec<&str> = list.split(',').collect();
    if ids.len() > MAX_QUERY_ITEMS {
        return Err(Rejection::BadRequest("the query names too many items"));
    }
    if !ids.iter().all(|id| plain_id(id)) {
        return Err(Rejection::BadRequest(
            "the query names an item by something not an id",
        ));
    }
    for id in ids {
        let named = Item {
            kind,
            id: id.into(),
        };
        if !covers(gw, restriction, &named, grant).await? {
            return Err(Rejection::OutsideRestriction {
                needed: route.scope_names.clone(),
                why: "the request names an item outside the token's restriction",
            });
        }
    }
    Ok(())
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

/// Reads an upload's envelope strictly ([`crate::upload`]); returns the
/// attributes and the body to forward.
async fn read_upload(
    headers: &HeaderMap,
    body: Incoming,
) -> Result<(Value, crate::upload::Prefixed<Incoming>), Rejection> {
    // Two Content-Types could give the upstream another boundary, and so
    // other parts, than the one checked here.
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
        "an upload must be multipart/form-data with one plain boundary",
    ))?;
    crate::upload::read_attributes(body, &boundary)
        .await
        .map_err(upload_rejection)
}

/// A request that says it has a body: a non-zero length or a transfer coding.
fn declares_body(h: &HeaderMap) -> bool {
    h.contains_key(header::TRANSFER_ENCODING)
        || h.get_all(header::CONTENT_LENGTH)
            .iter()
            .any(|v| v.as_bytes() != b"0")
}

fn field_rejection(r: crate::body_fields::FieldRefusal) -> Rejection {
    use crate::body_fields::FieldRefusal::*;
    match r {
        NotAnObject => Rejection::BadRequest("the body must be a JSON object"),
        Unlisted(_) => Rejection::Forbidden(
            "the body sets a field this endpoint does not take from a downscoped token",
        ),
        NeedsScope(scope) => Rejection::InsufficientScope { needed: scope },
    }
}

fn upload_rejection(e: crate::upload::UploadError) -> Rejection {
    use crate::upload::UploadError::*;
    match e {
        TooLong => Rejection::TooLarge,
        ExtraPart => {
            Rejection::BadRequest("an upload must be its attributes part and one file part")
        }
        Envelope(why) => Rejection::BadRequest(why),
        Truncated => Rejection::BadRequest("the upload body ended before its closing boundary"),
        NotMultipart | AttributesNotFirst | BadAttributes => {
            Rejection::BadRequest("the upload's first part must be its JSON attributes")
        }
    }
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
    target: &Target,
    headers: &HeaderMap,
    body: Incoming,
) -> Result<(Body, Option<Item>), Rejection> {
    // A downscoped token's body is read under the route's body rules
    // first, restricted or not: the JSON fields it may set, the upload
    // envelope, or no body at all.
    let mut json: Option<(Bytes, Value)> = None;
    let mut body = Some(body);
    if grant.is_minted() {
        match route.body {
            BodyKind::Json => {
                let (bytes, value) = read_json(gw, body.take().ok_or(NAMES_NO_ITEM)?).await?;
                if let Some(fields) = &route.fields {
                    fields
                        .check(grant.scopes(), &value)
                        .map_err(field_rejection)?;
                }
                json = Some((bytes, value));
            }
            BodyKind::None if declares_body(headers) => {
                return Err(Rejection::BadRequest("this endpoint takes no request body"));
            }
            BodyKind::None => {}
            BodyKind::Upload if grant.restricted_to().is_none() => {
                let b = body.take().ok_or(NAMES_NO_ITEM)?;
                let (_, replay) = read_upload(headers, b).await?;
                return Ok((body::boxed(replay), None));
            }
            BodyKind::Upload | BodyKind::Bytes => {}
        }
    }
    let pending = |json: Option<(Bytes, Value)>, body: Option<Incoming>| match (json, body) {
        (Some((bytes, _)), _) => body::full(bytes),
        (None, Some(b)) => body::boxed(b),
        (None, None) => body::empty(),
    };
    let Some(restriction) = grant.restricted_to() else {
        return Ok((pending(json, body), None));
    };
    let outside = |why| Rejection::OutsideRestriction {
        needed: route.scope_names.clone(),
        why,
    };
    // The JSON body, when this route's rules need it (read once, forwarded as read).
    let mut forward_body: Option<Body> = None;
    let named = match &route.object {
        ObjectRule::None {
            restricted_ok: true,
        } => return Ok((pending(json, body), None)),
        ObjectRule::None {
            restricted_ok: false,
        } => {
            return Err(outside(
                "this endpoint is not open to item-restricted tokens",
            ));
        }
        ObjectRule::Path { kind, param: i } => {
            if let Some(b) = body.take() {
                if route.destination.is_some() && json.is_none() {
                    json = Some(read_json(gw, b).await?);
                } else if route.body == BodyKind::Upload {
                    forward_body = Some(body::boxed(read_upload(headers, b).await?.1));
                } else {
                    forward_body = Some(body::boxed(b));
                }
            }
            Item {
                kind: *kind,
                id: param(*i).ok_or(Rejection::NoRoute)?.into(),
            }
        }
        ObjectRule::UploadSession { param: i } => {
            if let Some(b) = body.take() {
                if route.destination.is_some() && json.is_none() {
                    json = Some(read_json(gw, b).await?);
                } else {
                    forward_body = Some(body::boxed(b));
                }
            }
            let id = param(*i).ok_or(Rejection::NoRoute)?;
            gw.upload_sessions
                .item_of(id, crate::clock::unix_now())
                .ok_or_else(|| {
                    outside("the upload session was not opened through this gateway by a token restricted to an item")
                })?
        }
        ObjectRule::Body { kind, field } => {
            let (bytes, value) = match (json.take(), body.take()) {
                (Some(j), _) => j,
                (None, Some(b)) => read_json(gw, b).await?,
                (None, None) => return Err(NAMES_NO_ITEM),
            };
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
            let (bytes, value) = match (json.take(), body.take()) {
                (Some(j), _) => j,
                (None, Some(b)) => read_json(gw, b).await?,
                (None, None) => return Err(NAMES_NO_ITEM),
            };
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
            let (attrs, replay) = read_upload(headers, body.take().ok_or(NAMES_NO_ITEM)?).await?;
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
        ObjectRule::Query { kind, param } => {
            check_query_items(gw, route, restriction, grant, *kind, param, target).await?;
            return Ok((pending(json, body), None));
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
