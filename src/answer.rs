//! Upstream answers for downscoped tokens: redacted, and their URLs
//! pointed at the gateway.
//!
//! A route's answer is rewritten when the policy says it is JSON (every
//! route but those with `answer = "bytes"`) and the token is downscoped, or
//! on routes with `response = "upload_url"` for every token. Everything
//! else streams through untouched: no buffering, no parse.
//!
//! A rewritten answer is read whole under `[limits] answer_json` and run
//! through [`crate::redact`]: the `[fields]` the token may not see are
//! removed at any depth, and each absolute URL is mapped by [`map_url`].
//! An answer that cannot be read that way (not JSON, too large, a content
//! coding: the gateway asks for `identity`, a broken body) is a 502, never
//! passed on unredacted.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, StatusCode, Uri};

use crate::body::{self, Body};
use crate::config::Upstream;
use crate::policy::{OriginKind, Policy};
use crate::redact::{Rules, UrlAction};
use crate::target::Target;

/// The upstream bases, as the text an absolute URL in an answer starts
/// with (`https://dl.boxcloud.com`), lower-case, default port left out.
#[derive(Debug, Clone)]
pub struct Origins {
    list: Vec<(OriginKind, String)>,
}

impl Origins {
    pub fn new(u: &Upstream) -> Origins {
        let list = OriginKind::ALL
            .into_iter()
            .map(|k| {
                let base = match k {
                    OriginKind::Api => &u.api,
                    OriginKind::Upload => &u.upload,
                    OriginKind::Download => &u.download,
                    OriginKind::PublicDownload => &u.public_download,
                };
                (k, origin_text(base))
            })
            .collect();
        Origins { list }
    }

    /// The kinds whose base is this origin (several when they share a host).
    fn kinds(&self, origin: &str) -> impl Iterator<Item = OriginKind> + '_ {
        let origin = normalise(origin);
        self.list
            .iter()
            .filter(move |(_, o)| *o == origin)
            .map(|(k, _)| *k)
    }
}

fn origin_text(u: &Uri) -> String {
    normalise(&format!(
        "{}://{}",
        u.scheme_str().unwrap_or("http"),
        u.authority().map_or("", |a| a.as_str())
    ))
}

/// `scheme://authority` in one spelling: lower-case, no default port.
fn normalise(origin: &str) -> String {
    let o = origin.to_ascii_lowercase();
    for (scheme, port) in [("http://", ":80"), ("https://", ":443")] {
        if o.starts_with(scheme)
            && let Some(stripped) = o.strip_suffix(port)
        {
            return stripped.to_string();
        }
    }
    o
}

/// What one permitted request's answer needs.
pub struct Plan {
    pub(crate) policy: Arc<Policy>,
    /// [`Policy::hidden_fields`] of the token (0: nothing hidden).
    pub(crate) hidden: u64,
    pub(crate) origins: Arc<Origins>,
    /// `[limits] answer_json`.
    pub(crate) limit: usize,
}

impl Plan {
    /// A plan for a token with these `hidden` fields (see
    /// [`Policy::hidden_fields`]); `enforce` builds one per permitted request
    /// whose answer is rewritten.
    pub fn new(policy: Arc<Policy>, hidden: u64, origins: Arc<Origins>, limit: usize) -> Plan {
        Plan {
            policy,
            hidden,
            origins,
            limit,
        }
    }
}

/// Members whose value is a URL a client calls back with its token: one on
/// a host the gateway does not know is removed, never passed on.
fn is_callback(name: Option<&str>) -> bool {
    matches!(
        name,
        Some(
            "authenticated_download_url"
                | "upload_url"
                | "url_template"
                | "upload_part"
                | "commit"
                | "abort"
                | "list_parts"
                | "status"
                | "log_event"
        )
    )
}

/// Maps one absolute URL of an answer. A URL on a known upstream origin
/// becomes the same path and query on the gateway (`gateway`: scheme and
/// authority, no path), but only if that path is canonical and the policy
/// routes it back to that same origin for the method a client uses on it
/// (`POST` for `upload_url` and a session's `commit`, `PUT` for its
/// `upload_part`, `DELETE` for its `abort`, `GET` for everything else): so the gateway
/// URL reaches exactly the upstream URL it replaced. A known-origin URL that does not round
/// trip, or any URL when the gateway's own address is unknown, is dropped;
/// a URL on another host is dropped under a callback member
/// ([`is_callback`]) and kept elsewhere (a shared link's web page, say).
pub fn map_url(
    policy: &Policy,
    origins: &Origins,
    gateway: Option<&str>,
    name: Option<&str>,
    url: &str,
) -> UrlAction {
    let other_host = || {
        if is_callback(name) {
            UrlAction::Drop
        } else {
            UrlAction::Keep
        }
    };
    let Some(scheme_end) = url.find("://") else {
        return other_host();
    };
    let after = &url[scheme_end + 3..];
    let auth_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (origin, rest) = url.split_at(scheme_end + 3 + auth_end);
    if after[..auth_end].contains('@') {
        // userinfo: not a URL Box writes, and hosts hide behind it.
        return UrlAction::Drop;
    }
    let mut kinds = origins.kinds(origin).peekable();
    if kinds.peek().is_none() {
        return other_host();
    }
    let Some(gateway) = gateway else {
        return UrlAction::Drop;
    };
    // The method a client uses on the URL: the upload preflight's and an
    // upload session's endpoints (`session_endpoints`) are not GETs.
    let method = match name {
        Some("upload_url" | "commit") => Method::POST,
        Some("upload_part") => Method::PUT,
        Some("abort") => Method::DELETE,
        _ => Method::GET,
    };
    if routes_back(policy, &method, rest, kinds) {
        UrlAction::Replace(format!("{gateway}{rest}"))
    } else {
        UrlAction::Drop
    }
}

/// Does `rest` (path and query of a URL on an origin of `kinds`) name a
/// route of one of those kinds, spelled as the gateway forwards it?
fn routes_back(
    policy: &Policy,
    method: &Method,
    rest: &str,
    kinds: impl Iterator<Item = OriginKind>,
) -> bool {
    if rest.contains('#') {
        return false;
    }
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    // Box's representation template: the client puts the asset path in
    // place of `{+asset_path}` (empty for a single-asset representation).
    let path = path.strip_suffix("{+asset_path}").unwrap_or(path);
    let (path, slash) = match path.strip_suffix('/') {
        Some(p) if !p.is_empty() => (p, true),
        _ => (path, false),
    };
    let Ok(t) = Target::parse_parts(path, query) else {
        return false;
    };
    if t.path() != path {
        return false;
    }
    let kinds: Vec<OriginKind> = kinds.collect();
    policy
        .find_slash(method, path, slash)
        .is_some_and(|m| kinds.contains(&m.route.origin))
}

/// The gateway as clients reach it: `[listen] public_url`, or the scheme
/// and `Host` of this request. No trailing slash.
pub fn gateway_base(
    public_url: Option<&Uri>,
    host: Option<&HeaderValue>,
    tls: bool,
) -> Option<String> {
    match (public_url, host.and_then(|h| h.to_str().ok())) {
        (Some(u), _) => Some(origin_text(u)),
        (None, Some(host)) if !host.is_empty() && !host.contains(['/', '@', '?', '#', ' ']) => {
            Some(format!("{}://{host}", if tls { "https" } else { "http" }))
        }
        _ => None,
    }
}

struct AnswerRules<'a> {
    plan: &'a Plan,
    gateway: Option<&'a str>,
}

impl Rules for AnswerRules<'_> {
    fn hidden(&self, name: &str) -> bool {
        self.plan.policy.is_hidden(self.plan.hidden, name)
    }

    fn url(&mut self, name: Option<&str>, url: &str) -> UrlAction {
        map_url(
            &self.plan.policy,
            &self.plan.origins,
            self.gateway,
            name,
            url,
        )
    }
}

/// Why an answer could not be rewritten (each is a 502).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    Encoded,
    TooLarge,
    Broken,
    NotJson,
}

/// Rewrites a JSON body whole (pure: the caller read it).
pub fn rewrite_json(
    plan: &Plan,
    gateway: Option<&str>,
    json: &[u8],
) -> Result<Vec<u8>, Unreadable> {
    let mut rules = AnswerRules { plan, gateway };
    crate::redact::redact(json, &mut rules).map_err(|_| Unreadable::NotJson)
}

fn is_json(ct: Option<&HeaderValue>) -> bool {
    let Some(ct) = ct.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mime = ct.split(';').next().unwrap_or("").trim();
    mime.eq_ignore_ascii_case("application/json")
        || (mime.len() > 5
            && mime[..mime.len() - 5].starts_with("application/")
            && mime[mime.len() - 5..].eq_ignore_ascii_case("+json"))
}

/// Reads and rewrites one answer's body; the headers are fixed up to match.
pub async fn rewrite(
    plan: &Plan,
    gateway: Option<&str>,
    parts: &mut http::response::Parts,
    body: Body,
) -> Result<Body, Unreadable> {
    if parts.status == StatusCode::NO_CONTENT || parts.status == StatusCode::NOT_MODIFIED {
        return Ok(body);
    }
    if let Some(enc) = parts.headers.get(header::CONTENT_ENCODING)
        && !enc.as_bytes().eq_ignore_ascii_case(b"identity")
    {
        return Err(Unreadable::Encoded);
    }
    let bytes: Bytes = body::read_limited(body, plan.limit)
        .await
        .map_err(|e| match e {
            body::ReadError::TooLarge => Unreadable::TooLarge,
            body::ReadError::Broken => Unreadable::Broken,
        })?;
    parts.headers.remove(header::CONTENT_LENGTH);
    if bytes.is_empty() {
        return Ok(body::empty());
    }
    if !is_json(parts.headers.get(header::CONTENT_TYPE)) {
        return Err(Unreadable::NotJson);
    }
    let out = rewrite_json(plan, gateway, &bytes)?;
    Ok(body::full(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const POLICY: &str = r#"
[fields]
shared_link = "item_share"
upload_token = "never"

[[route]]
name = "file.get"
method = "GET"
path = "/2.0/files/{id}"
scopes = ["item_read"]
object = "file:path.id"

[[route]]
name = "upload"
method = "POST"
path = "/api/2.0/files/content"
scopes = ["item_upload"]
object = "folder:upload.parent.id"
origin = "upload"

[[route]]
name = "rep"
method = "GET"
path = "/api/2.0/internal_files/{id}/versions/{v}/representations/{rep}/content/{asset*}"
scopes = ["item_preview"]
object = "file:path.id"
origin = "download"
answer = "bytes"

[[route]]
name = "dl"
method = "GET"
path = "/api/2.0/files/{id}/content"
scopes = ["item_download"]
object = "file:path.id"
origin = "public_download"
answer = "bytes"

[[route]]
name = "session.part"
method = "PUT"
path = "/api/2.0/files/upload_sessions/{s}"
scopes = ["item_upload"]
object = "none"
body = "bytes"
origin = "upload"

[[route]]
name = "session.commit"
method = "POST"
path = "/api/2.0/files/upload_sessions/{s}/commit"
scopes = ["item_upload"]
object = "none"
body = "json"
fields = { parts = "route" }
origin = "upload"
"#;

    fn setup() -> (Policy, Origins) {
        let policy =
            Policy::from_toml(POLICY, crate::config::Problems::new(Path::new("p.toml"))).unwrap();
        let u = Upstream {
            api: "https://api.box.com".parse().unwrap(),
            upload: "https://upload.box.com".parse().unwrap(),
            download: "https://dl.boxcloud.com".parse().unwrap(),
            public_download: "https://public.boxcloud.com:443".parse().unwrap(),
            token_endpoint: None,
            revoke_endpoint: None,
            connect_timeout: std::time::Duration::from_secs(1),
            timeout: std::time::Duration::from_secs(1),
            ca_bundle: None,
            pool: Default::default(),
        };
        (policy, Origins::new(&u))
    }

    fn map(url: &str, name: &str) -> UrlAction {
        let (p, o) = setup();
        map_url(&p, &o, Some("https://gw.example"), Some(name), url)
    }

    /// The gateway URL a URL becomes, and the upstream URL the gateway
    /// sends that path to (the route's origin plus the same path and query).
    fn round_trip(url: &str) -> Option<String> {
        let (p, o) = setup();
        let name = url.contains("files/content").then_some("upload_url");
        let method = if name.is_some() {
            Method::POST
        } else {
            Method::GET
        };
        let UrlAction::Replace(gw) = map_url(&p, &o, Some("https://gw.example"), name, url) else {
            return None;
        };
        let rest = gw.strip_prefix("https://gw.example").unwrap();
        let path = rest.split('?').next().unwrap().replace("{+asset_path}", "");
        let (path, slash) = match path.strip_suffix('/') {
            Some(p) => (p.to_string(), true),
            None => (path.clone(), false),
        };
        let route = p.find_slash(&method, &path, slash)?.route;
        let base = o.list.iter().find(|(k, _)| *k == route.origin)?.1.clone();
        Some(format!("{base}{rest}"))
    }

    #[test]
    fn upload_session_endpoints_map_by_the_method_a_client_uses_on_them() {
        let base = "https://upload.box.com/api/2.0/files/upload_sessions/F1";
        let gw = "https://gw.example/api/2.0/files/upload_sessions/F1";
        assert_eq!(map(base, "upload_part"), UrlAction::Replace(gw.into()));
        assert_eq!(
            map(&format!("{base}/commit"), "commit"),
            UrlAction::Replace(format!("{gw}/commit"))
        );
        // No route takes a GET of the part URL, nor a DELETE here: dropped,
        // never passed on pointing at the upstream.
        assert_eq!(map(base, "status"), UrlAction::Drop);
        assert_eq!(map(base, "abort"), UrlAction::Drop);
        assert_eq!(
            map("https://elsewhere.example/x", "commit"),
            UrlAction::Drop
        );
    }

    #[test]
    fn urls_round_trip_through_the_gateway() {
        for url in [
            "https://api.box.com/2.0/files/12?fields=name",
            "https://upload.box.com/api/2.0/files/content?upload_session_id=7",
            "https://dl.boxcloud.com/api/2.0/internal_files/1/versions/2/representations/jpg_32x32/content/",
            "https://dl.boxcloud.com/api/2.0/internal_files/1/versions/2/representations/pdf/content/{+asset_path}",
            "https://dl.boxcloud.com/api/2.0/internal_files/1/versions/2/representations/pdf/content/3.pdf",
            "https://public.boxcloud.com/api/2.0/files/12/content",
            "HTTPS://Public.BoxCloud.com:443/api/2.0/files/12/content",
        ] {
            let back = round_trip(url).unwrap_or_else(|| panic!("{url} was not rewritten"));
            let want = url.replace(
                "HTTPS://Public.BoxCloud.com:443",
                "https://public.boxcloud.com",
            );
            assert_eq!(back, want);
        }
    }

    #[test]
    fn urls_that_would_not_come_back_are_dropped() {
        for url in [
            // Right path, wrong host for its route.
            "https://api.box.com/api/2.0/files/12/content",
            "https://dl.boxcloud.com/2.0/files/12",
            // No route at all.
            "https://api.box.com/2.0/users/9/avatar",
            // Not canonical: the gateway would refuse or respell it.
            "https://api.box.com/2.0/files/%31",
            "https://api.box.com/2.0/files/1/../2",
            "https://api.box.com/2.0/files//1",
            "https://api.box.com/2.0/files/1#x",
            // Trailing slash where the route has no tail.
            "https://api.box.com/2.0/files/1/",
            "https://api.box.com@evil.example/2.0/files/1",
        ] {
            assert_eq!(map(url, "url"), UrlAction::Drop, "{url}");
        }
    }

    #[test]
    fn other_hosts_are_dropped_only_where_a_client_calls_back() {
        let shared = "https://app.box.com/s/abc";
        assert_eq!(map(shared, "url"), UrlAction::Keep);
        for name in ["authenticated_download_url", "upload_url", "url_template"] {
            assert_eq!(map("https://evil.example/x", name), UrlAction::Drop);
        }
        let (p, o) = setup();
        assert_eq!(
            map_url(&p, &o, None, Some("url"), "https://api.box.com/2.0/files/1"),
            UrlAction::Drop
        );
    }

    #[test]
    fn answers_are_redacted_and_pointed_at_the_gateway() {
        let (p, o) = setup();
        let scopes = p.scopes.exact(["item_read"]).unwrap();
        let plan = Plan {
            hidden: p.hidden_fields(scopes),
            policy: Arc::new(p),
            origins: Arc::new(o),
            limit: 1 << 20,
        };
        let out = rewrite_json(
            &plan,
            Some("http://gw:8080"),
            br#"{"upload_url":"https://upload.box.com/api/2.0/files/content","upload_token":"t","entries":[{"shared_link":{"url":"x"},"id":"1"}]}"#,
        )
        .unwrap();
        assert_eq!(
            out,
            br#"{"upload_url":"http://gw:8080/api/2.0/files/content","entries":[{"id":"1"}]}"#
        );
        assert_eq!(
            rewrite_json(&plan, None, b"{\"a\":"),
            Err(Unreadable::NotJson)
        );
    }

    #[test]
    fn json_is_known_by_its_media_type() {
        let v = |s: &'static str| Some(HeaderValue::from_static(s));
        assert!(is_json(v("application/json").as_ref()));
        assert!(is_json(v("Application/JSON; charset=utf-8").as_ref()));
        assert!(is_json(v("application/problem+json").as_ref()));
        assert!(!is_json(v("text/html").as_ref()));
        assert!(!is_json(v("image/png").as_ref()));
        assert!(!is_json(None));
    }
}
