//! The route policy: which scope and which object each API route needs.
//!
//! The policy file (see `config/policy-box.toml`) is read into [`Policy`]:
//! the scope table with its implications, and a segment trie of routes.
//! Matching walks the canonical path once; a literal segment beats a
//! parameter in the same place, and there is no backtracking, so a path has
//! exactly one candidate node and a method either has a route there or not.
//! Two routes with the same method and the same shape are refused when the
//! policy is built, so no request is ever matched by order of declaration.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasherDefault;
use std::path::Path;
use std::sync::Arc;

use http::Method;
use serde::Deserialize;

use crate::config::Problems;
use crate::scope::{ScopeSet, ScopeTable};

/// Most `{param}` segments one route may have.
pub const MAX_PARAMS: usize = 8;

/// The kind of item a restriction or a route names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItemKind {
    File,
    Folder,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::File => "file",
            ItemKind::Folder => "folder",
        }
    }

    pub fn parse(s: &str) -> Option<ItemKind> {
        match s {
            "file" => Some(ItemKind::File),
            "folder" => Some(ItemKind::Folder),
            _ => None,
        }
    }
}

/// Where a route's object is found in the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectRule {
    /// The route names no single item; `restricted_ok` says whether a token
    /// restricted to one item may still use it.
    None { restricted_ok: bool },
    /// The n-th path parameter is an id of this kind.
    Path { kind: ItemKind, param: usize },
    /// A dotted field of the JSON body is an id of this kind.
    Body { kind: ItemKind, field: Vec<String> },
    /// A dotted field of the JSON body is `{"type": "file"|"folder", "id": ..}`.
    BodyItem { field: Vec<String> },
    /// A dotted field of the `attributes` part of a multipart upload.
    Upload { kind: ItemKind, field: Vec<String> },
    /// The n-th path parameter is a chunked upload session id; the object
    /// is the item the session was opened for ([`crate::upload_session`]).
    UploadSession { param: usize },
}

/// One compiled route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Unique name; the `route` label of every metric.
    pub name: Arc<str>,
    pub method: Method,
    /// The path template as written, for `check-config` and logs.
    pub template: String,
    /// Any one of these (after the grant's implication closure) allows it.
    pub scopes: ScopeSet,
    /// The scope names, space-separated, for 403 challenges.
    pub scope_names: String,
    pub object: ObjectRule,
    /// A dotted JSON body field naming a destination folder (moves, copies).
    pub destination: Option<Vec<String>>,
    /// The answer's `upload_url` is rewritten to point at the gateway
    /// (Box's upload preflight names its own upload host otherwise).
    pub rewrite_upload_url: bool,
    /// The answer opens a chunked upload session: its `id` is recorded
    /// with the item this request was checked against.
    pub opens_upload_session: bool,
}

/// A matched route with its path parameters.
#[derive(Debug)]
pub struct Match<'a, 'p> {
    pub route: &'a Route,
    params: [&'p str; MAX_PARAMS],
    count: usize,
}

impl<'p> Match<'_, 'p> {
    pub fn param(&self, i: usize) -> Option<&'p str> {
        (i < self.count).then(|| self.params[i])
    }
}

#[derive(Debug, Default)]
struct Node {
    literal: HashMap<Box<str>, Node, BuildHasherDefault<Fnv>>,
    param: Option<Box<Node>>,
    methods: Vec<(Method, usize)>,
}

/// FNV-1a for the literal segments. The tables are fixed when the policy
/// loads and a lookup never inserts, so a keyed hash (SipHash, ~4 times the
/// work on a short segment, several lookups per request) guards against
/// nothing here: a segment chosen to collide costs one more compare.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The compiled policy file.
#[derive(Debug)]
pub struct Policy {
    pub scopes: ScopeTable,
    routes: Vec<Route>,
    root: Node,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    scopes: RawScopes,
    #[serde(default)]
    route: Vec<RawRoute>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawScopes {
    #[serde(default)]
    extra: Vec<String>,
    #[serde(default)]
    implies: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    name: String,
    method: String,
    path: String,
    scopes: Vec<String>,
    object: String,
    restricted: Option<String>,
    destination: Option<String>,
    response: Option<String>,
}

impl Policy {
    /// Reads and compiles a policy file; every problem is reported with the
    /// file and the key.
    pub fn load(path: &Path) -> Result<Policy, Problems> {
        let mut problems = Problems::new(path);
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                problems.push("", format!("cannot read the policy file: {e}"));
                return Err(problems);
            }
        };
        Policy::from_toml(&text, problems)
    }

    /// Compiles policy text; `problems` names the file in each message.
    pub fn from_toml(text: &str, mut problems: Problems) -> Result<Policy, Problems> {
        let raw: RawPolicy = match toml::from_str(text) {
            Ok(r) => r,
            Err(e) => {
                problems.push_toml(&e, text);
                return Err(problems);
            }
        };
        let implies: Vec<(String, Vec<String>)> = raw.scopes.implies.into_iter().collect();
        let scopes = match ScopeTable::new(&raw.scopes.extra, &implies) {
            Ok(t) => t,
            Err(e) => {
                problems.push("scopes", e.to_string());
                return Err(problems);
            }
        };
        let mut policy = Policy {
            scopes,
            routes: Vec::new(),
            root: Node::default(),
        };
        let mut names = HashMap::new();
        for (i, r) in raw.route.into_iter().enumerate() {
            let key = format!("route[{i}]");
            if let Some(prev) = names.insert(r.name.clone(), i) {
                problems.push(
                    &format!("{key}.name"),
                    format!("`{}` is also the name of route[{prev}]", r.name),
                );
                continue;
            }
            match policy.compile(r) {
                Ok(route) => {
                    if let Err(msg) = policy.insert(route) {
                        problems.push(&format!("{key}.path"), msg);
                    }
                }
                Err((field, msg)) => problems.push(&format!("{key}.{field}"), msg),
            }
        }
        problems.into_result(policy)
    }

    fn compile(&self, r: RawRoute) -> Result<Route, (&'static str, String)> {
        if r.name.is_empty()
            || !r
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        {
            return Err((
                "name",
                format!(
                    "`{}` must be non-empty lower-case letters, digits, `.`, `_` or `-`",
                    r.name
                ),
            ));
        }
        let method = Method::from_bytes(r.method.as_bytes())
            .ok()
            .filter(|_| r.method.bytes().all(|b| b.is_ascii_uppercase()))
            .ok_or((
                "method",
                format!("`{}` is not an upper-case HTTP method", r.method),
            ))?;
        let params = template_params(&r.path).map_err(|m| ("path", m))?;
        if r.scopes.is_empty() {
            return Err(("scopes", "a route needs at least one scope".into()));
        }
        let scopes = self
            .scopes
            .exact(r.scopes.iter().map(String::as_str))
            .map_err(|e| ("scopes", e.to_string()))?;
        let object = parse_object(&r.object, r.restricted.as_deref(), &params)?;
        let destination = match r.destination.as_deref() {
            None => None,
            Some(d) => {
                let field = d
                    .strip_prefix("folder:body.")
                    .filter(|f| !f.split('.').any(str::is_empty));
                match field {
                    Some(f) if !matches!(object, ObjectRule::None { .. }) => {
                        Some(f.split('.').map(str::to_owned).collect())
                    }
                    _ => {
                        return Err((
                            "destination",
                            format!(
                                "`{d}` must be \"folder:body.FIELD\" on a route with an object"
                            ),
                        ));
                    }
                }
            }
        };
        let opens_upload_session = match r.response.as_deref() {
            Some("upload_session") if !matches!(object, ObjectRule::None { .. }) => true,
            None | Some("upload_url") => false,
            Some(o) => {
                return Err((
                    "response",
                    format!(
                        "`{o}` must be \"upload_url\" or \"upload_session\" (on a route with an object)"
                    ),
                ));
            }
        };
        Ok(Route {
            name: r.name.into(),
            method,
            template: r.path,
            scopes,
            scope_names: r.scopes.join(" "),
            object,
            destination,
            rewrite_upload_url: r.response.as_deref() == Some("upload_url"),
            opens_upload_session,
        })
    }

    fn insert(&mut self, route: Route) -> Result<(), String> {
        let idx = self.routes.len();
        let mut node = &mut self.root;
        for seg in route.template[1..].split('/').filter(|s| !s.is_empty()) {
            node = if seg.starts_with('{') {
                node.param.get_or_insert_with(Default::default)
            } else {
                node.literal.entry(seg.into()).or_default()
            };
        }
        if let Some((_, other)) = node.methods.iter().find(|(m, _)| *m == route.method) {
            return Err(format!(
                "`{} {}` overlaps route `{}` ({})",
                route.method,
                route.template,
                self.routes[*other].name,
                self.routes[*other].template
            ));
        }
        node.methods.push((route.method.clone(), idx));
        self.routes.push(route);
        Ok(())
    }

    /// Finds the route for a canonical path (see [`crate::target`]).
    pub fn find<'p>(&self, method: &Method, path: &'p str) -> Option<Match<'_, 'p>> {
        let mut node = &self.root;
        let mut params = [""; MAX_PARAMS];
        let mut count = 0;
        for seg in path.strip_prefix('/')?.split('/').filter(|s| !s.is_empty()) {
            node = match node.literal.get(seg) {
                Some(n) => n,
                None => {
                    let n = node.param.as_deref()?;
                    if count == MAX_PARAMS {
                        return None;
                    }
                    params[count] = seg;
                    count += 1;
                    n
                }
            };
        }
        let idx = node.methods.iter().find(|(m, _)| m == method)?.1;
        Some(Match {
            route: &self.routes[idx],
            params,
            count,
        })
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

/// Checks a path template and returns its parameter names in order.
fn template_params(path: &str) -> Result<Vec<String>, String> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(format!("`{path}` must start with /"));
    };
    let mut params = Vec::new();
    for seg in rest.split('/') {
        if seg.is_empty() {
            return Err(format!("`{path}` has an empty segment or a trailing slash"));
        }
        if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!("`{seg}` is not a valid parameter name"));
            }
            if params.iter().any(|p| p == name) {
                return Err(format!("parameter `{name}` appears twice"));
            }
            params.push(name.to_string());
        } else if seg == "."
            || seg == ".."
            || !seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        {
            // Literals must already be in the canonical spelling of crate::target.
            return Err(format!(
                "literal segment `{seg}` may hold only letters, digits, `-`, `.`, `_`, `~`"
            ));
        }
    }
    if params.len() > MAX_PARAMS {
        return Err(format!("more than {MAX_PARAMS} parameters"));
    }
    Ok(params)
}

fn parse_object(
    object: &str,
    restricted: Option<&str>,
    params: &[String],
) -> Result<ObjectRule, (&'static str, String)> {
    let restricted_ok = match restricted {
        None | Some("deny") => false,
        Some("allow") => true,
        Some(other) => {
            return Err((
                "restricted",
                format!("`{other}` must be \"deny\" or \"allow\""),
            ));
        }
    };
    if object == "none" {
        return Ok(ObjectRule::None { restricted_ok });
    }
    if restricted.is_some() {
        return Err((
            "restricted",
            "only routes with object = \"none\" take `restricted`".into(),
        ));
    }
    let bad = || {
        (
            "object",
            format!(
                "`{object}` is not none, KIND:path.P, KIND:body.F, item:body.F, folder:upload.F or upload_session:path.P"
            ),
        )
    };
    let (kind, source) = object.split_once(':').ok_or_else(bad)?;
    let (place, rest) = source.split_once('.').ok_or_else(bad)?;
    let field: Vec<String> = rest.split('.').map(str::to_owned).collect();
    if field.iter().any(String::is_empty) {
        return Err(bad());
    }
    match (kind, place) {
        ("item", "body") => Ok(ObjectRule::BodyItem { field }),
        ("upload_session", "path") => {
            let param = params
                .iter()
                .position(|p| *p == rest)
                .ok_or(("object", format!("`{rest}` is not a parameter of the path")))?;
            Ok(ObjectRule::UploadSession { param })
        }
        (k, "path") => {
            let kind = ItemKind::parse(k).ok_or_else(bad)?;
            let param = params
                .iter()
                .position(|p| *p == rest)
                .ok_or(("object", format!("`{rest}` is not a parameter of the path")))?;
            Ok(ObjectRule::Path { kind, param })
        }
        (k, "body") => Ok(ObjectRule::Body {
            kind: ItemKind::parse(k).ok_or_else(bad)?,
            field,
        }),
        (k, "upload") => Ok(ObjectRule::Upload {
            kind: ItemKind::parse(k).ok_or_else(bad)?,
            field,
        }),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(text: &str) -> Result<Policy, Problems> {
        Policy::from_toml(text, Problems::new(Path::new("p.toml")))
    }

    const BASIC: &str = r#"
        [[route]]
        name = "file.get"
        method = "GET"
        path = "/2.0/files/{file_id}"
        scopes = ["item_read"]
        object = "file:path.file_id"
        [[route]]
        name = "file.promote"
        method = "POST"
        path = "/2.0/files/{file_id}/versions/current"
        scopes = ["item_upload"]
        object = "file:path.file_id"
        [[route]]
        name = "file.version.delete"
        method = "DELETE"
        path = "/2.0/files/{file_id}/versions/{v}"
        scopes = ["item_delete"]
        object = "file:path.file_id"
    "#;

    #[test]
    fn matches_params_and_prefers_literals() {
        let p = policy(BASIC).unwrap();
        let m = p.find(&Method::GET, "/2.0/files/42").unwrap();
        assert_eq!(&*m.route.name, "file.get");
        assert_eq!(m.param(0), Some("42"));
        let m = p
            .find(&Method::POST, "/2.0/files/42/versions/current")
            .unwrap();
        assert_eq!(&*m.route.name, "file.promote");
        // No backtracking: the literal node has no DELETE, so nothing matches.
        assert!(
            p.find(&Method::DELETE, "/2.0/files/42/versions/current")
                .is_none()
        );
        assert!(
            p.find(&Method::DELETE, "/2.0/files/42/versions/7")
                .is_some()
        );
        assert!(p.find(&Method::GET, "/2.0/files").is_none());
        assert!(p.find(&Method::PUT, "/2.0/files/42").is_none());
    }

    #[test]
    fn overlapping_routes_are_an_error() {
        let text = format!(
            "{BASIC}
            [[route]]
            name = \"dup\"
            method = \"GET\"
            path = \"/2.0/files/{{id}}\"
            scopes = [\"item_read\"]
            object = \"none\""
        );
        let err = policy(&text).unwrap_err().to_string();
        assert!(
            err.contains("p.toml: route[3].path: `GET /2.0/files/{id}` overlaps route `file.get`"),
            "{err}"
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let text = r#"
            [[route]]
            name = "a"
            method = "get"
            path = "/x"
            scopes = ["item_read"]
            object = "none"
            [[route]]
            name = "b"
            method = "GET"
            path = "/y/{id}"
            scopes = ["no_such_scope"]
            object = "file:path.nope"
            [[route]]
            name = "c"
            method = "GET"
            path = "/z/{id}"
            scopes = ["item_read"]
            object = "file:path.id"
            restricted = "allow"
        "#;
        let err = policy(text).unwrap_err().to_string();
        assert!(err.contains("route[0].method"), "{err}");
        assert!(
            err.contains("route[1].scopes: unknown scope `no_such_scope`"),
            "{err}"
        );
        assert!(err.contains("route[2].restricted"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = policy("[[route]]\nname = \"a\"\nmethdo = \"GET\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("methdo"), "{err}");
    }

    #[test]
    fn the_shipped_box_policy_compiles() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/policy-box.toml");
        let p = Policy::load(&path).unwrap();
        assert!(p.routes().len() >= 50);
        let m = p.find(&Method::POST, "/api/2.0/files/content").unwrap();
        assert_eq!(&*m.route.name, "file.upload");
    }
}
