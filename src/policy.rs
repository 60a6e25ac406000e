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

use crate::body_fields::BodyFields;
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
    /// A query parameter (one of [`crate::query::RESERVED`]) holding a
    /// comma-separated list of ids of this kind; every one must be inside
    /// the restriction (search bounded by `ancestor_folder_ids`).
    Query { kind: ItemKind, param: String },
    /// The n-th path parameter is a chunked upload session id; the object
    /// is the item the session was opened for (the `upload_session` module).
    UploadSession { param: usize },
}

/// What a route's request body is, as the policy declares it (`body`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body: a downscoped token's request that declares one is refused.
    None,
    /// A JSON object whose top-level fields the route lists (`fields`).
    Json,
    /// A Box multipart upload, read under the strict envelope rules.
    Upload,
    /// File content (a chunked upload's part): streamed, never read.
    Bytes,
}

/// Which upstream a route's requests go to (`[upstream]` names each base).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OriginKind {
    /// `[upstream] api`: `/2.0/...` (the default).
    Api,
    /// `[upstream] upload`: Box's upload host.
    Upload,
    /// `[upstream] download`: representation content (Box: dl.boxcloud.com).
    Download,
    /// `[upstream] public_download`: what `authenticated_download_url`
    /// names (Box: public.boxcloud.com).
    PublicDownload,
}

impl OriginKind {
    pub const ALL: [OriginKind; 4] = [
        OriginKind::Api,
        OriginKind::Upload,
        OriginKind::Download,
        OriginKind::PublicDownload,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OriginKind::Api => "api",
            OriginKind::Upload => "upload",
            OriginKind::Download => "download",
            OriginKind::PublicDownload => "public_download",
        }
    }

    fn parse(s: &str) -> Option<OriginKind> {
        OriginKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One entry of the `[fields]` table: a field of Box's answers (and of
/// `?fields=`) that hands out a capability, and who may see it.
#[derive(Debug, Clone)]
pub struct FieldRule {
    pub name: Box<str>,
    /// Any one of these scopes lets a downscoped token see the field;
    /// `None` ("never"): no downscoped token sees it.
    pub needs: Option<ScopeSet>,
}

/// Most entries in `[fields]` (a bit each in [`Policy::hidden_fields`]).
pub const MAX_FIELDS: usize = 64;

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
    /// The request body (`body`; inferred from `object` and `destination`).
    pub body: BodyKind,
    /// For `body = "json"`: the scope each top-level field needs.
    pub fields: Option<BodyFields>,
    /// `access_token` in the query is accepted as the bearer token (GET
    /// routes a browser loads by URL: `<img>`, download links).
    pub query_token: bool,
    /// The upstream this route's requests go to.
    pub origin: OriginKind,
    /// The answer is content (file bytes, images): never parsed or
    /// rewritten (`answer = "bytes"`). Otherwise a downscoped token's JSON
    /// answers are redacted and their URLs pointed at the gateway.
    pub answer_bytes: bool,
    /// The path ends in a `{name*}` tail: any further segments, or exactly
    /// one trailing slash and nothing after it (Box's representation
    /// content with an empty asset path).
    pub tail: bool,
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

/// Where a path ends in the trie, and which routes sit there.
struct Found<'a, 'p> {
    methods: &'a [(Method, usize)],
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
    /// Routes whose `{name*}` tail starts after this node. A node with a
    /// tail has no children, so a path is never matched two ways.
    tail: Vec<(Method, usize)>,
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
    /// The `[fields]` table, in file order.
    pub fields: Vec<FieldRule>,
    routes: Vec<Route>,
    root: Node,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    scopes: RawScopes,
    #[serde(default)]
    fields: BTreeMap<String, String>,
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
    body: Option<String>,
    fields: Option<BTreeMap<String, String>>,
    query_token: Option<bool>,
    origin: Option<String>,
    answer: Option<String>,
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
            fields: Vec::new(),
            scopes,
            routes: Vec::new(),
            root: Node::default(),
        };
        if raw.fields.len() > MAX_FIELDS {
            problems.push("fields", format!("more than {MAX_FIELDS} entries"));
        }
        for (name, scope) in raw.fields {
            let key = format!("fields.{name}");
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                problems.push(&key, "a field name is lower-case letters, digits and `_`");
                continue;
            }
            let needs = if scope == "never" {
                None
            } else {
                match policy.scopes.exact([scope.as_str()]) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        problems.push(&key, format!("{e} (a scope, or \"never\")"));
                        continue;
                    }
                }
            };
            policy.fields.push(FieldRule {
                name: name.into(),
                needs,
            });
        }
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
            let fields = r.fields.clone();
            match policy.compile(r) {
                Ok(mut route) => {
                    match compile_fields(&route, fields, &policy.scopes) {
                        Ok(f) => route.fields = f,
                        Err(errs) => {
                            for (field, msg) in errs {
                                problems.push(&format!("{key}.{field}"), msg);
                            }
                            continue;
                        }
                    }
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
        let (params, tail) = template_params(&r.path).map_err(|m| ("path", m))?;
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
        let body = match r.body.as_deref() {
            None if matches!(object, ObjectRule::Upload { .. }) => BodyKind::Upload,
            None if destination.is_some()
                || matches!(
                    object,
                    ObjectRule::Body { .. } | ObjectRule::BodyItem { .. }
                ) =>
            {
                BodyKind::Json
            }
            None | Some("none") => BodyKind::None,
            Some("json") => BodyKind::Json,
            Some("upload") => BodyKind::Upload,
            Some("bytes") => BodyKind::Bytes,
            Some(o) => {
                return Err((
                    "body",
                    format!("`{o}` must be \"none\", \"json\", \"upload\" or \"bytes\""),
                ));
            }
        };
        let reads_json = destination.is_some()
            || matches!(
                object,
                ObjectRule::Body { .. } | ObjectRule::BodyItem { .. }
            );
        if (reads_json && body != BodyKind::Json)
            || (matches!(object, ObjectRule::Upload { .. }) && body != BodyKind::Upload)
        {
            return Err((
                "body",
                "does not match what `object` or `destination` reads from the body".into(),
            ));
        }
        let query_token = match r.query_token {
            Some(true) if method != Method::GET => {
                return Err((
                    "query_token",
                    "only GET routes may take a token in the query".into(),
                ));
            }
            q => q.unwrap_or(false),
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
            body,
            fields: None,
            name: r.name.into(),
            method,
            template: r.path,
            scopes,
            scope_names: r.scopes.join(" "),
            object,
            destination,
            rewrite_upload_url: r.response.as_deref() == Some("upload_url"),
            opens_upload_session,
            query_token,
            origin: match r.origin.as_deref() {
                None => OriginKind::Api,
                Some(o) => OriginKind::parse(o).ok_or((
                    "origin",
                    format!(
                        "`{o}` must be \"api\", \"upload\", \"download\" or \"public_download\""
                    ),
                ))?,
            },
            answer_bytes: match r.answer.as_deref() {
                None | Some("json") => false,
                Some("bytes") => true,
                Some(o) => return Err(("answer", format!("`{o}` must be \"json\" or \"bytes\""))),
            },
            tail,
        })
    }

    fn insert(&mut self, route: Route) -> Result<(), String> {
        let idx = self.routes.len();
        let mut node = &mut self.root;
        let segs: Vec<&str> = route.template[1..].split('/').collect();
        let walk = if route.tail {
            &segs[..segs.len() - 1]
        } else {
            &segs[..]
        };
        for seg in walk {
            if !node.tail.is_empty() {
                return Err(format!(
                    "`{}` goes below the `{{name*}}` tail of route `{}`",
                    route.template, self.routes[node.tail[0].1].name
                ));
            }
            node = if seg.starts_with('{') {
                node.param.get_or_insert_with(Default::default)
            } else {
                node.literal.entry((*seg).into()).or_default()
            };
        }
        if route.tail {
            if !node.literal.is_empty() || node.param.is_some() {
                return Err(format!(
                    "the `{{name*}}` tail of `{}` overlaps longer routes",
                    route.template
                ));
            }
            same_method(&node.tail, &route, &self.routes)?;
            node.tail.push((route.method.clone(), idx));
            self.routes.push(route);
            return Ok(());
        }
        same_method(&node.methods, &route, &self.routes)?;
        node.methods.push((route.method.clone(), idx));
        self.routes.push(route);
        Ok(())
    }

    /// Finds the route for a canonical path (see [`crate::target`]).
    pub fn find<'p>(&self, method: &Method, path: &'p str) -> Option<Match<'_, 'p>> {
        self.find_slash(method, path, false)
    }

    /// [`Policy::find`] for a path that the client sent with one trailing
    /// slash after it (`slash`): only a `{name*}` tail route with an empty
    /// tail takes that shape.
    pub fn find_slash<'p>(
        &self,
        method: &Method,
        path: &'p str,
        slash: bool,
    ) -> Option<Match<'_, 'p>> {
        let f = self.walk(path, slash)?;
        let idx = f.methods.iter().find(|(m, _)| m == method)?.1;
        Some(Match {
            route: &self.routes[idx],
            params: f.params,
            count: f.count,
        })
    }

    /// The trie walk: one candidate node per path, no backtracking. A node
    /// with a tail ends the walk: what follows is the tail (at least one
    /// segment, or nothing and the trailing slash).
    fn walk<'a, 'p>(&'a self, path: &'p str, slash: bool) -> Option<Found<'a, 'p>> {
        let mut node = &self.root;
        let mut params = [""; MAX_PARAMS];
        let mut count = 0;
        let mut segs = path.strip_prefix('/')?.split('/').filter(|s| !s.is_empty());
        loop {
            if !node.tail.is_empty() {
                let rest = segs.next().is_some();
                // `.../content` (no slash, no asset) is not the tail's
                // shape: only routes of exactly that path take it.
                let methods = match (rest, slash) {
                    (true, false) | (false, true) => &node.tail,
                    (false, false) => &node.methods,
                    (true, true) => return None,
                };
                return Some(Found {
                    methods,
                    params,
                    count,
                });
            }
            let Some(seg) = segs.next() else {
                return (!slash).then_some(Found {
                    methods: &node.methods,
                    params,
                    count,
                });
            };
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
    }

    /// The `[fields]` entries a token holding `held` may not see, as bits
    /// (entry `i` is bit `i`). Box answers as the parent, so these are
    /// taken out of `?fields=` and of the answer.
    pub fn hidden_fields(&self, held: ScopeSet) -> u64 {
        let mut bits = 0;
        for (i, f) in self.fields.iter().enumerate() {
            if !f.needs.is_some_and(|s| held.intersects(s)) {
                bits |= 1 << i;
            }
        }
        bits
    }

    /// Is `name` among the `hidden` fields? Compared without regard to
    /// ASCII case: removing more is never a leak.
    pub fn is_hidden(&self, hidden: u64, name: &str) -> bool {
        hidden != 0
            && self
                .fields
                .iter()
                .enumerate()
                .any(|(i, f)| hidden & (1 << i) != 0 && f.name.eq_ignore_ascii_case(name))
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

/// The `fields` table of a route: required on a JSON-body route (the
/// world is closed), refused on any other.
fn compile_fields(
    route: &Route,
    raw: Option<BTreeMap<String, String>>,
    table: &ScopeTable,
) -> Result<Option<BodyFields>, Vec<(String, String)>> {
    match (route.body, raw) {
        (BodyKind::Json, Some(raw)) => BodyFields::compile(&raw, table).map(Some).map_err(|e| {
            e.into_iter()
                .map(|(f, m)| (format!("fields.{f}"), m))
                .collect()
        }),
        (BodyKind::Json, None) => Err(vec![(
            "fields".into(),
            "a route with a JSON body must list its body fields".into(),
        )]),
        (_, Some(_)) => Err(vec![(
            "fields".into(),
            "only a route with a JSON body (body = \"json\") takes `fields`".into(),
        )]),
        (_, None) => Ok(None),
    }
}

/// Two routes of one shape (a trie node, or its tail) and one method are a
/// start-up error.
fn same_method(slot: &[(Method, usize)], route: &Route, routes: &[Route]) -> Result<(), String> {
    match slot.iter().find(|(m, _)| *m == route.method) {
        Some((_, other)) => Err(format!(
            "`{} {}` overlaps route `{}` ({})",
            route.method, route.template, routes[*other].name, routes[*other].template
        )),
        None => Ok(()),
    }
}

/// Checks a path template and returns its parameter names in order, and
/// whether it ends in a `{name*}` tail.
fn template_params(path: &str) -> Result<(Vec<String>, bool), String> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(format!("`{path}` must start with /"));
    };
    let mut params = Vec::new();
    let mut tail = false;
    for seg in rest.split('/') {
        if tail {
            return Err(format!(
                "`{path}`: a `{{name*}}` tail must be the last segment"
            ));
        }
        if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix("*}")) {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!("`{seg}` is not a valid tail name"));
            }
            if rest == seg {
                return Err(format!("`{path}`: a tail needs a literal prefix"));
            }
            tail = true;
            continue;
        }
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
    Ok((params, tail))
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
                "`{object}` is not none, KIND:path.P, KIND:body.F, item:body.F, folder:upload.F, KIND:query.P or upload_session:path.P"
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
        (k, "query") => {
            let kind = ItemKind::parse(k).ok_or_else(bad)?;
            // The gateway reads only parameters whose spellings and repeats
            // the query reader refuses; any other could mean something else
            // to the upstream.
            if !crate::query::RESERVED.contains(&rest) {
                return Err((
                    "object",
                    format!(
                        "`{rest}` is not a query parameter the gateway reads ({})",
                        crate::query::RESERVED.join(", ")
                    ),
                ));
            }
            Ok(ObjectRule::Query {
                kind,
                param: rest.to_owned(),
            })
        }
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
    fn body_fields_are_checked_at_start_up() {
        let text = r#"
            [[route]]
            name = "a"
            method = "PUT"
            path = "/a/{id}"
            scopes = ["item_rename"]
            object = "file:path.id"
            body = "json"
            fields = { name = "item_rename", lock = "item_lock" }
            [[route]]
            name = "b"
            method = "GET"
            path = "/b/{id}"
            scopes = ["item_read"]
            object = "file:path.id"
            fields = { name = "route" }
            [[route]]
            name = "c"
            method = "POST"
            path = "/c"
            scopes = ["item_upload"]
            object = "folder:body.parent.id"
            [[route]]
            name = "d"
            method = "POST"
            path = "/d"
            scopes = ["item_upload"]
            object = "folder:body.parent.id"
            body = "upload"
            [[route]]
            name = "e"
            method = "POST"
            path = "/e/{id}"
            scopes = ["item_upload"]
            object = "file:path.id"
            body = "xml"
        "#;
        let err = policy(text).unwrap_err().to_string();
        assert!(
            err.contains("p.toml: route[0].fields.lock: `item_lock`"),
            "{err}"
        );
        assert!(!err.contains("route[0].fields.name"), "{err}");
        assert!(
            err.contains("route[1].fields: only a route with a JSON body"),
            "{err}"
        );
        assert!(
            err.contains("route[2].fields: a route with a JSON body must list"),
            "{err}"
        );
        assert!(err.contains("route[3].body"), "{err}");
        assert!(err.contains("route[4].body"), "{err}");
        let ok = policy(
            r#"
            [[route]]
            name = "a"
            method = "PUT"
            path = "/a/{id}"
            scopes = ["item_rename"]
            object = "file:path.id"
            body = "json"
            fields = { name = "item_rename", "*" = "route" }
        "#,
        )
        .unwrap();
        let r = &ok.routes()[0];
        assert_eq!(r.body, BodyKind::Json);
        assert_eq!(
            r.fields.as_ref().unwrap().describe(),
            "name=item_rename *=route"
        );
    }

    #[test]
    fn query_objects_and_query_tokens_are_checked() {
        let route = |extra: &str| {
            format!(
                "[[route]]\nname = \"s\"\nmethod = \"GET\"\npath = \"/2.0/search\"\nscopes = [\"item_read\"]\n{extra}"
            )
        };
        let p = policy(&route(
            "object = \"folder:query.ancestor_folder_ids\"\nquery_token = true",
        ))
        .unwrap();
        let m = p.find(&Method::GET, "/2.0/search").unwrap();
        assert_eq!(
            m.route.object,
            ObjectRule::Query {
                kind: ItemKind::Folder,
                param: "ancestor_folder_ids".into()
            }
        );
        assert!(m.route.query_token);
        let err = policy(&route("object = \"folder:query.parent_id\""))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("route[0].object: `parent_id` is not a query parameter"),
            "{err}"
        );
        let err = policy(&route("object = \"none\"\nquery_token = true").replace("GET", "PUT"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("route[0].query_token: only GET routes"),
            "{err}"
        );
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
        assert_eq!(m.route.origin, OriginKind::Upload);
        let rep = "/api/2.0/internal_files/1/versions/2/representations/jpg_32x32/content";
        let m = p.find_slash(&Method::GET, rep, true).unwrap();
        assert_eq!(&*m.route.name, "file.representation.content");
        assert_eq!(
            (m.route.origin, m.route.answer_bytes),
            (OriginKind::Download, true)
        );
        assert_eq!(m.param(0), Some("1"));
        let dl = p.find(&Method::GET, "/api/2.0/files/1/content").unwrap();
        assert_eq!(dl.route.origin, OriginKind::PublicDownload);
        assert_eq!(p.fields.len(), 7);
        let read = p.scopes.exact(["item_read"]).unwrap();
        let hidden = p.hidden_fields(read);
        for f in [
            "shared_link",
            "Representations",
            "upload_token",
            "authenticated_download_url",
        ] {
            assert!(p.is_hidden(hidden, f), "{f}");
        }
        assert!(!p.is_hidden(hidden, "name"));
        let all = p.scopes.exact(["root_readwrite"]).unwrap();
        let hidden = p.hidden_fields(p.scopes.expand(all));
        assert!(!p.is_hidden(hidden, "shared_link"));
        assert!(p.is_hidden(hidden, "upload_token"));
    }

    const TAIL: &str = r#"
        [[route]]
        name = "rep"
        method = "GET"
        path = "/r/{id}/content/{asset*}"
        scopes = ["item_preview"]
        object = "file:path.id"
        [[route]]
        name = "exact"
        method = "GET"
        path = "/r/{id}/content"
        scopes = ["item_read"]
        object = "file:path.id"
    "#;

    #[test]
    fn a_tail_takes_more_segments_or_exactly_one_trailing_slash() {
        let p = policy(TAIL).unwrap();
        let name = |path, slash| {
            p.find_slash(&Method::GET, path, slash)
                .map(|m| m.route.name.to_string())
        };
        assert_eq!(name("/r/1/content", true).as_deref(), Some("rep"));
        assert_eq!(name("/r/1/content/3.pdf", false).as_deref(), Some("rep"));
        assert_eq!(name("/r/1/content/a/b.png", false).as_deref(), Some("rep"));
        assert_eq!(name("/r/1/content", false).as_deref(), Some("exact"));
        // A slash after a non-empty tail, or on a route without a tail: no.
        assert_eq!(name("/r/1/content/3.pdf", true), None);
        assert_eq!(name("/r/1", true), None);
        assert_eq!(
            p.find_slash(&Method::GET, "/r/1/content", true)
                .unwrap()
                .param(0),
            Some("1")
        );
    }

    #[test]
    fn tails_fields_origins_and_answers_are_checked() {
        let errs = |t: &str| policy(t).unwrap_err().to_string();
        let route = |extra: &str, path: &str| {
            format!(
                "[[route]]\nname = \"a\"\nmethod = \"GET\"\npath = \"{path}\"\nscopes = [\"item_read\"]\nobject = \"none\"\nrestricted = \"deny\"\n{extra}\n"
            )
        };
        assert!(errs(&route("", "/a/{t*}/b")).contains("route[0].path"));
        assert!(errs(&route("", "/{t*}")).contains("literal prefix"));
        assert!(errs(&route("origin = \"cdn\"", "/a")).contains("route[0].origin"));
        assert!(errs(&route("answer = \"xml\"", "/a")).contains("route[0].answer"));
        let e = errs("[fields]\nshared_link = \"item_shares\"\n");
        assert!(e.contains("p.toml: fields.shared_link"), "{e}");
        assert!(errs("[fields]\n\"Shared\" = \"item_share\"\n").contains("fields.Shared"));
        // A route below a tail, or a tail over longer routes, would match one path two ways.
        let two = format!(
            "{}{}",
            route("", "/a/{t*}"),
            route("", "/a/b/c").replace("\"a\"", "\"b\"")
        );
        assert!(errs(&two).contains("tail"), "{}", errs(&two));
        let two = format!(
            "{}{}",
            route("", "/a/b/c"),
            route("", "/a/{t*}").replace("\"a\"", "\"b\"")
        );
        assert!(errs(&two).contains("tail"), "{}", errs(&two));
    }
}
