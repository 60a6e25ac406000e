//! Every route of the shipped Box policy, end to end on a live gateway:
//! the right scope on the right object is forwarded exactly (canonical path,
//! parent token, whole body); a scope that does not imply the route's, or a
//! token restricted to another object, is refused with 403 and not one
//! request reaches the upstream.
//!
//! The routes are read from `config/policy-box.toml`, never listed here, so a
//! route added to the policy is covered without touching this file.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use bytes::Bytes;
use http::Method;
use scopegate::policy::{BodyKind, ItemKind, ObjectRule, Policy, Route};
use scopegate::scope::{BUILTIN_SCOPES, ScopeSet};
use serde_json::{Value, json};
use support::*;

/// The items a route's request names when it should pass...
const FILE: &str = "1001";
const FOLDER: &str = "100";
/// ...and items outside any restriction to those (folder 200 "Private" holds
/// file 2001; neither is below folder 100).
const OTHER_FILE: &str = "2001";
const OTHER_FOLDER: &str = "200";

const BOUNDARY: &str = "scopegate-test-boundary";

fn policy() -> Policy {
    Policy::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/policy-box.toml"))
        .unwrap_or_else(|p| panic!("{p}"))
}

fn own_id(kind: ItemKind) -> &'static str {
    match kind {
        ItemKind::File => FILE,
        ItemKind::Folder => FOLDER,
    }
}

fn other_id(kind: ItemKind) -> &'static str {
    match kind {
        ItemKind::File => OTHER_FILE,
        ItemKind::Folder => OTHER_FOLDER,
    }
}

/// The `resource` path a token restricted to this item is minted with.
fn resource(kind: ItemKind, id: &str) -> String {
    format!("/2.0/{}s/{id}", kind.as_str())
}

/// The kind of item the route's object rule names, if it names one.
/// `item:body.F` routes take either kind; files are what we test them with.
fn object_kind(rule: &ObjectRule) -> Option<ItemKind> {
    match rule {
        // A session id names no file or folder by itself (tests/upload_sessions.rs
        // covers sessions opened through the gateway).
        ObjectRule::None { .. } | ObjectRule::UploadSession { .. } => None,
        ObjectRule::Path { kind, .. }
        | ObjectRule::Body { kind, .. }
        | ObjectRule::Upload { kind, .. }
        | ObjectRule::Query { kind, .. } => Some(*kind),
        ObjectRule::BodyItem { .. } => Some(ItemKind::File),
    }
}

/// One concrete request.
#[derive(Clone, Debug)]
struct Req {
    method: Method,
    path: String,
    content_type: Option<String>,
    body: Bytes,
}

/// Sets a dotted field (`["parent", "id"]`) in a JSON object, creating the
/// objects on the way.
fn set_field(v: &mut Value, field: &[String], value: Value) {
    let (last, path) = field.split_last().expect("a field has at least one part");
    let mut cur = v;
    for k in path {
        cur = cur
            .as_object_mut()
            .expect("fields are set in objects")
            .entry(k.clone())
            .or_insert_with(|| json!({}));
    }
    cur.as_object_mut()
        .expect("fields are set in objects")
        .insert(last.clone(), value);
}

/// The route's template with every `{param}` filled: the object parameter of
/// a `Path` rule with `named`, other file/folder ids with the allowed ones,
/// anything else with "7".
fn fill_path(route: &Route, named: Option<&str>) -> String {
    let mut out = String::new();
    let mut index = 0;
    for seg in route.template[1..].split('/') {
        out.push('/');
        match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            None => out.push_str(seg),
            Some(name) => {
                let value = match (&route.object, name) {
                    (ObjectRule::Path { param, .. }, _) if *param == index => {
                        named.expect("a Path route names its object")
                    }
                    (_, "file_id") => FILE,
                    (_, "folder_id") => FOLDER,
                    _ => "7",
                };
                out.push_str(value);
                index += 1;
            }
        }
    }
    out
}

fn json_req(method: &Method, path: String, body: &Value) -> Req {
    Req {
        method: method.clone(),
        path,
        content_type: Some("application/json".into()),
        body: Bytes::from(body.to_string()),
    }
}

/// Box's upload shape: the `attributes` part first, then the file.
fn multipart(attributes: &Value) -> Bytes {
    Bytes::from(format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"attributes\"\r\n\r\n{attributes}\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.txt\"\r\n\
         Content-Type: text/plain\r\n\r\nhello from the policy test\r\n--{BOUNDARY}--\r\n"
    ))
}

/// The request for `route` naming `named` as its object (`(kind, id)`; for
/// `item:body` rules the kind goes into the body too). `None` for routes
/// without an object.
fn build(route: &Route, named: Option<(ItemKind, &str)>) -> Req {
    let m = &route.method;
    let id = named.map(|(_, id)| id);
    let path = fill_path(route, id);
    let with_body = *m == Method::POST || *m == Method::PUT;
    match &route.object {
        // A version upload: Box's multipart shape, the file in the path.
        ObjectRule::Path { .. } if route.body == BodyKind::Upload => Req {
            method: m.clone(),
            path,
            content_type: Some(format!("multipart/form-data; boundary={BOUNDARY}")),
            body: multipart(&json!({"name": "x.txt"})),
        },
        ObjectRule::None { .. } | ObjectRule::Path { .. } | ObjectRule::UploadSession { .. }
            if with_body =>
        {
            json_req(m, path, &json!({}))
        }
        ObjectRule::None { .. } | ObjectRule::Path { .. } | ObjectRule::UploadSession { .. } => {
            Req {
                method: m.clone(),
                path,
                content_type: None,
                body: Bytes::new(),
            }
        }
        ObjectRule::Body { field, .. } => {
            let mut v = json!({});
            set_field(
                &mut v,
                field,
                json!(id.expect("a Body route names its object")),
            );
            json_req(m, path, &v)
        }
        ObjectRule::BodyItem { field } => {
            let (kind, id) = named.expect("a BodyItem route names its object");
            let mut v = json!({"message": "x"});
            set_field(&mut v, field, json!({"type": kind.as_str(), "id": id}));
            json_req(m, path, &v)
        }
        ObjectRule::Query { param, .. } => Req {
            method: m.clone(),
            path: format!(
                "{path}?{param}={}",
                id.expect("a Query route names its object")
            ),
            content_type: None,
            body: Bytes::new(),
        },
        ObjectRule::Upload { field, .. } => {
            let mut attrs = json!({"name": "x.txt"});
            set_field(
                &mut attrs,
                field,
                json!(id.expect("an Upload route names its object")),
            );
            Req {
                method: m.clone(),
                path,
                content_type: Some(format!("multipart/form-data; boundary={BOUNDARY}")),
                body: multipart(&attrs),
            }
        }
    }
}

/// What a case must produce.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// Forwarded exactly as sent, with the parent token.
    Forwarded,
    /// 403 `insufficient_scope` naming the route's scopes; nothing upstream.
    Refused,
    /// 403 `insufficient_scope` naming the restriction, not a scope the
    /// token holds; nothing upstream.
    Outside,
}

struct Case {
    route: String,
    scope_names: String,
    what: &'static str,
    /// The token: a scope and the resource it is restricted to, if any.
    scope: String,
    resource: Option<String>,
    req: Req,
    expect: Expect,
}

/// Builtin scopes the test parent (`root_readwrite`) can mint whose
/// implication closure misses every scope of `route`.
fn wrong_scope(p: &Policy, route: &Route) -> Option<&'static str> {
    let parent = p.scopes.expand_lenient(["root_readwrite"]);
    BUILTIN_SCOPES.iter().copied().find(|s| {
        let own: ScopeSet = p.scopes.exact([*s]).unwrap();
        parent.contains_all(own) && !p.scopes.expand_lenient([*s]).intersects(route.scopes)
    })
}

/// Every case for one route.
fn cases_for(p: &Policy, route: &Route) -> Vec<Case> {
    let scope = route
        .scope_names
        .split(' ')
        .next()
        .expect("a route has a scope")
        .to_string();
    let case = |what, scope: &str, resource: Option<String>, req: Req, expect| Case {
        route: route.name.to_string(),
        scope_names: route.scope_names.clone(),
        what,
        scope: scope.to_string(),
        resource,
        req,
        expect,
    };
    let mut out = Vec::new();
    let kind = object_kind(&route.object);
    let own = kind.map(|k| (k, own_id(k)));
    let canonical = build(route, own);

    // b. Allowed.
    match kind {
        Some(k) => out.push(case(
            "restricted token on its own object",
            &scope,
            Some(resource(k, own_id(k))),
            canonical.clone(),
            Expect::Forwarded,
        )),
        None => out.push(case(
            "unrestricted token",
            &scope,
            None,
            canonical.clone(),
            Expect::Forwarded,
        )),
    }
    if route.object
        == (ObjectRule::None {
            restricted_ok: true,
        })
    {
        out.push(case(
            "restricted token on an open route",
            &scope,
            Some(resource(ItemKind::File, FILE)),
            canonical.clone(),
            Expect::Forwarded,
        ));
    }

    // c. Wrong scope, unrestricted so that only the scope can refuse it. If
    // every mintable scope implied one of the route's, there would be no
    // wrong scope to try; the shipped policy has none such, and
    // `every_route_is_enforced` asserts that.
    if let Some(wrong) = wrong_scope(p, route) {
        out.push(case(
            "scope that implies none of the route's",
            wrong,
            None,
            canonical.clone(),
            Expect::Refused,
        ));
    }

    // d. Wrong object.
    match (&route.object, kind) {
        (
            ObjectRule::None {
                restricted_ok: false,
            },
            _,
        ) => out.push(case(
            "restricted token on a route closed to restricted tokens",
            &scope,
            Some(resource(ItemKind::File, FILE)),
            canonical.clone(),
            Expect::Outside,
        )),
        (
            ObjectRule::None {
                restricted_ok: true,
            },
            _,
        ) => {}
        (_, Some(k)) => {
            out.push(case(
                "token restricted to another item",
                &scope,
                Some(resource(k, other_id(k))),
                canonical.clone(),
                Expect::Outside,
            ));
            out.push(case(
                "request naming another item",
                &scope,
                Some(resource(k, own_id(k))),
                build(route, Some((k, other_id(k)))),
                Expect::Outside,
            ));
            if let ObjectRule::BodyItem { .. } = route.object {
                // Same id, other type: `{"type":"folder","id":"1001"}` is not file 1001.
                out.push(case(
                    "request naming the item's id as another type",
                    &scope,
                    Some(resource(k, own_id(k))),
                    build(route, Some((ItemKind::Folder, own_id(k)))),
                    Expect::Outside,
                ));
            }
        }
        (ObjectRule::UploadSession { .. }, _) => out.push(case(
            "restricted token on a session the gateway did not see opened",
            &scope,
            Some(resource(ItemKind::Folder, FOLDER)),
            canonical.clone(),
            Expect::Outside,
        )),
        (_, None) => unreachable!("only None rules name no object"),
    }
    out
}

async fn send(h: &Harness, token: &str, req: &Req) -> Resp {
    let mut headers = Vec::new();
    if let Some(ct) = &req.content_type {
        headers.push(("content-type", ct.as_str()));
    }
    h.call(
        req.method.clone(),
        &req.path,
        Some(token),
        &headers,
        req.body.clone(),
    )
    .await
}

/// True when the answer is one of the gateway's own refusals (the upstream's
/// errors have other codes, and the recorded requests tell them apart too).
fn refused_by_gateway(r: &Resp) -> bool {
    let j = r.json();
    matches!(r.status, 400 | 401 | 403)
        && j["type"] == "error"
        && matches!(
            j["code"].as_str(),
            Some("insufficient_scope" | "invalid_token" | "forbidden" | "invalid_request")
        )
}

fn check(h: &Harness, c: &Case, token: &str, r: &Resp) {
    let label = format!(
        "route {} ({} {}, {}; token {} on {:?})",
        c.route, c.req.method, c.req.path, c.what, c.scope, c.resource
    );
    // The gateway's own ancestry lookups for folder tokens (GET with
    // `fields=path_collection,parent`, see src/ancestry.rs) are not the
    // request under test; anything else the upstream saw is.
    let rec: Vec<_> = h
        .api
        .recorded()
        .into_iter()
        .filter(|r| {
            !(r.method == http::Method::GET
                && r.path_and_query.ends_with("?fields=path_collection,parent"))
        })
        .collect();
    let body = String::from_utf8_lossy(&r.body);
    match c.expect {
        Expect::Forwarded => {
            assert!(
                !refused_by_gateway(r),
                "{label}: refused {}: {body}",
                r.status
            );
            assert_eq!(
                rec.len(),
                1,
                "{label}: upstream saw {:?}",
                h.upstream_paths()
            );
            let u = &rec[0];
            assert_eq!(u.method, c.req.method, "{label}");
            assert_eq!(u.path_and_query, c.req.path, "{label}");
            let auth = u.headers.get("authorization").and_then(|v| v.to_str().ok());
            assert_eq!(auth, Some(format!("Bearer {PARENT}").as_str()), "{label}");
            assert!(
                u.headers.values().all(|v| !v
                    .as_bytes()
                    .windows(token.len())
                    .any(|w| w == token.as_bytes())),
                "{label}: the downscoped token reached the upstream"
            );
            // Bodies the gateway had to read (JSON, upload attributes) are
            // replayed whole.
            assert_eq!(
                u.body_len,
                c.req.body.len() as u64,
                "{label}: body length upstream"
            );
        }
        Expect::Outside => {
            assert_eq!(r.status, 403, "{label}: {body}");
            assert_eq!(r.json()["code"], "insufficient_scope", "{label}: {body}");
            let challenge = r.header("www-authenticate");
            assert!(
                challenge.contains("error=\"insufficient_scope\", error_description=\"")
                    && challenge.contains("restrict"),
                "{label}: {challenge}"
            );
            // The token holds the route's scope: naming it would be untrue.
            assert!(!challenge.contains(", scope="), "{label}: {challenge}");
            assert!(
                rec.is_empty(),
                "{label}: upstream saw {:?}",
                h.upstream_paths()
            );
        }
        Expect::Refused => {
            assert_eq!(r.status, 403, "{label}: {body}");
            assert_eq!(r.json()["code"], "insufficient_scope", "{label}: {body}");
            let challenge = r.header("www-authenticate");
            assert!(
                challenge.contains("error=\"insufficient_scope\""),
                "{label}: {challenge}"
            );
            assert!(
                challenge.contains(&format!("scope=\"{}\"", c.scope_names)),
                "{label}: {challenge}"
            );
            assert!(
                rec.is_empty(),
                "{label}: upstream saw {:?}",
                h.upstream_paths()
            );
        }
    }
}

#[tokio::test]
async fn every_route_is_enforced() {
    let p = policy();
    assert!(p.routes().len() >= 50, "the shipped policy lost routes");
    let cases: Vec<Case> = p.routes().iter().flat_map(|r| cases_for(&p, r)).collect();

    // Every route gets an allowed, a wrong-scope and (unless open to
    // restricted tokens) a wrong-object case.
    for r in p.routes() {
        let mine: Vec<&Case> = cases.iter().filter(|c| c.route == *r.name).collect();
        assert!(
            mine.iter().any(|c| c.expect == Expect::Forwarded),
            "route {}: no allowed case",
            r.name
        );
        assert!(
            mine.iter().any(|c| c.what.starts_with("scope")),
            "route {}: every mintable scope implies one of {}; no wrong-scope case",
            r.name,
            r.scope_names
        );
        if r.object
            != (ObjectRule::None {
                restricted_ok: true,
            })
        {
            assert!(
                mine.iter().any(|c| c.expect == Expect::Outside),
                "route {}: no wrong-object case",
                r.name
            );
        }
    }

    let h = Harness::start().await;
    // Mint every token before any request: some allowed requests delete or
    // move the sample items, and minting looks the resource up upstream.
    let keys: BTreeSet<(String, Option<String>)> = cases
        .iter()
        .map(|c| (c.scope.clone(), c.resource.clone()))
        .collect();
    let mut tokens = HashMap::new();
    for (scope, res) in keys {
        let t = h.mint(&scope, res.as_deref()).await;
        tokens.insert((scope, res), t);
    }
    for c in &cases {
        let token = &tokens[&(c.scope.clone(), c.resource.clone())];
        h.api.clear_recorded();
        let r = send(&h, token, &c.req).await;
        check(&h, c, token, &r);
    }
    let forwarded = cases
        .iter()
        .filter(|c| c.expect == Expect::Forwarded)
        .count();
    eprintln!(
        "{} routes, {} cases ({forwarded} forwarded, {} refused)",
        p.routes().len(),
        cases.len(),
        cases.len() - forwarded
    );
    h.stop().await;
}

/// The builder itself: a wrong object must really differ from the right one,
/// or the refusal cases above would prove nothing.
#[test]
fn wrong_object_requests_differ_from_the_allowed_ones() {
    let p = policy();
    for r in p.routes() {
        let Some(k) = object_kind(&r.object) else {
            continue;
        };
        let good = build(r, Some((k, own_id(k))));
        let bad = build(r, Some((k, other_id(k))));
        assert!(
            good.path != bad.path || good.body != bad.body,
            "route {}",
            r.name
        );
    }
    let upload = p
        .routes()
        .iter()
        .find(|r| &*r.name == "file.upload")
        .unwrap();
    let body = build(upload, Some((ItemKind::Folder, FOLDER))).body;
    let text = String::from_utf8_lossy(&body);
    assert!(text.starts_with(&format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"attributes\""
    )));
    assert!(
        text.contains(r#"{"name":"x.txt","parent":{"id":"100"}}"#),
        "{text}"
    );
}
