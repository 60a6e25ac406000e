//! Answers hold only what the token may see, and their URLs point at the
//! gateway (issues 16 and 17).
//!
//! A real gateway in front of a scripted upstream that answers like Box
//! (a file with its `shared_link`, download URL, representations and embed
//! link; a folder listing and search results with those nested in every
//! entry; the upload preflight) and records every request it receives.
//! The tests assert on the body the client gets (no hidden field at any
//! depth, URLs on the gateway and usable there) and on what the upstream
//! received (`fields` filtered, `Accept-Encoding: identity`).

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use support::*;
use tokio::net::TcpListener;

/// What the scripted upstream received: method, path and query, headers.
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    target: String,
    headers: HeaderMap,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// A file as Box sends it with every field UI Elements ask for; `me` is
/// the upstream's own `http://host:port`, `dl` the host of its
/// representation content.
fn file_json(me: &str, id: &str) -> Value {
    file_json_dl(me, me, id)
}

fn file_json_dl(me: &str, dl: &str, id: &str) -> Value {
    json!({
        "type": "file", "id": id, "name": "plan.txt", "size": 9,
        "shared_link": {"url": "https://app.box.com/s/abc", "download_url": "https://app.box.com/shared/static/abc.txt", "access": "open"},
        "authenticated_download_url": format!("{me}/api/2.0/files/{id}/content"),
        "expiring_embed_link": {"url": "https://app.box.com/preview/expiring_embed/xyz"},
        "representations": {"entries": [{
            "representation": "jpg",
            "properties": {"dimensions": "32x32"},
            "info": {"url": format!("{me}/2.0/internal_files/{id}/versions/5/representations/jpg_32x32")},
            "content": {"url_template": format!("{dl}/api/2.0/internal_files/{id}/versions/5/representations/jpg_32x32/content/{{+asset_path}}")},
            "status": {"state": "success"}
        }]},
        "path_collection": {"total_count": 1, "entries": [{"type": "folder", "id": "100", "name": "Projects"}]},
        "metadata": {"x": [{"deep": {"shared_link": "nested", "keep": 1}}]}
    })
}

async fn answer(me: String, dl: String, seen: Seen) -> Response<Full<Bytes>> {
    let path = seen.target.split('?').next().unwrap_or("").to_string();
    let json_answer = |v: Value| {
        Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(v.to_string())))
            .unwrap()
    };
    match (seen.method.as_str(), path.as_str()) {
        ("GET", "/2.0/files/1001") => json_answer(file_json_dl(&me, &dl, "1001")),
        ("GET", "/2.0/folders/100/items") => {
            let entries: Vec<Value> = (0..3).map(|i| file_json(&me, &format!("10{i}"))).collect();
            json_answer(json!({"total_count": 3, "entries": entries, "offset": 0, "limit": 100}))
        }
        ("GET", "/2.0/search") => json_answer(json!({
            "total_count": 1, "entries": [file_json(&me, "1001")],
            // A callback URL on a host the gateway does not know.
            "next": {"authenticated_download_url": "https://evil.example/api/2.0/files/1/content", "n": 1}
        })),
        ("OPTIONS", "/2.0/files/content") => json_answer(json!({
            "upload_url": format!("{me}/api/2.0/files/content?upload_session_id=77"),
            "upload_token": "Pc3FIOG9vSGV4VHo4QzAyg5T1JvNnJoZ3ExaVNyQWw6WjRsanRKZG5lQk9qUE1BVQ"
        })),
        ("GET", p) if p.starts_with("/api/2.0/internal_files/1001/versions/5/representations/") => {
            Response::builder()
                .header("content-type", "image/png")
                .body(Full::new(Bytes::from_static(b"\x89PNG fake image")))
                .unwrap()
        }
        // A user's own JSON file: content, never touched.
        ("GET", "/api/2.0/files/1001/content") => Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(br#"{"shared_link":"mine"}"#)))
            .unwrap(),
        ("GET", "/2.0/files/1002") => Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(
                br#"{"shared_link":{"url":"x"}"#,
            )))
            .unwrap(),
        ("GET", "/2.0/files/1003") => Response::builder()
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(Full::new(Bytes::from(file_json(&me, "1003").to_string())))
            .unwrap(),
        ("GET", "/2.0/files/1004") => {
            let big = "x".repeat(100_000);
            json_answer(
                json!({"type": "file", "id": "1004", "description": big, "shared_link": {"url": "x"}}),
            )
        }
        ("GET", "/2.0/files/1005") => Response::builder()
            .header("content-type", "text/html")
            .body(Full::new(Bytes::from_static(b"<p>shared_link</p>")))
            .unwrap(),
        _ => Response::builder()
            .status(404)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(
                br#"{"type":"error","status":404}"#,
            )))
            .unwrap(),
    }
}

async fn start_upstream() -> (SocketAddr, Log) {
    start_upstream_dl(None).await
}

/// The scripted upstream; its representation URLs name `dl` when given.
async fn start_upstream_dl(dl: Option<SocketAddr>) -> (SocketAddr, Log) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let dl = format!("http://{}", dl.unwrap_or(addr));
    let log: Log = Arc::default();
    let rec = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = l.accept().await else {
                continue;
            };
            let rec = rec.clone();
            let dl = dl.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let seen = Seen {
                        method: req.method().clone(),
                        target: req
                            .uri()
                            .path_and_query()
                            .map_or("", |p| p.as_str())
                            .to_string(),
                        headers: req.headers().clone(),
                    };
                    rec.lock().unwrap().push(seen.clone());
                    let dl = dl.clone();
                    async move {
                        // Drain the request body first.
                        let _ = req.into_body().collect().await;
                        Ok::<_, Infallible>(answer(format!("http://{addr}"), dl, seen).await)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, log)
}

/// A gateway on the scripted upstream, and one on the sample API sharing
/// its keyring to mint tokens (exchange needs an upstream that knows the
/// parent).
async fn setup() -> (Harness, Harness, Log) {
    let (up, log) = start_upstream().await;
    let keyring = scopegate::token::Keyring::generate_toml("shared");
    let minter = Harness::start_with(Opts {
        keyring: Some(keyring.clone()),
        ..Default::default()
    })
    .await;
    let gw = Harness::start_with(Opts {
        keyring: Some(keyring),
        upstream: Some(up),
        bare_upstream: true,
        extra: "[limits]\nanswer_json = 65536\n".into(),
        ..Default::default()
    })
    .await;
    (gw, minter, log)
}

fn last(log: &Log) -> Seen {
    log.lock()
        .unwrap()
        .last()
        .cloned()
        .expect("the upstream saw a request")
}

/// The decoded `fields` values of a forwarded target.
fn fields_sent(target: &str) -> Vec<String> {
    let q = target.split_once('?').map_or("", |(_, q)| q);
    form_urlencoded::parse(q.as_bytes())
        .filter(|(k, _)| k == "fields")
        .map(|(_, v)| v.into_owned())
        .collect()
}

/// Every member name anywhere in `v`.
fn names(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                out.push(k.clone());
                names(v, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| names(v, out)),
        _ => {}
    }
}

fn assert_none_of(v: &Value, hidden: &[&str]) {
    let mut all = Vec::new();
    names(v, &mut all);
    for h in hidden {
        assert!(!all.iter().any(|n| n == h), "`{h}` survived in {v}");
    }
}

/// Every string in `v` that is an absolute URL.
fn urls(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => m.values().for_each(|v| urls(v, out)),
        Value::Array(a) => a.iter().for_each(|v| urls(v, out)),
        Value::String(s) if s.starts_with("http") => out.push(s.clone()),
        _ => {}
    }
}

const EXPLORER_FIELDS: &str = "name,size,shared_link,representations,authenticated_download_url,expiring_embed_link,permissions";

#[tokio::test]
async fn a_token_without_the_scopes_gets_the_answer_without_those_fields() {
    let (gw, minter, log) = setup().await;
    let t = minter.mint("base_explorer", None).await;
    let r = gw
        .get(&format!("/2.0/files/1001?fields={EXPLORER_FIELDS}"), &t)
        .await;
    // Not refused (UI Elements always ask for these fields).
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let body = r.json();
    assert_eq!(body["name"], "plan.txt");
    assert_eq!(body["metadata"]["x"][0]["deep"]["keep"], 1);
    assert_none_of(
        &body,
        &[
            "shared_link",
            "representations",
            "authenticated_download_url",
            "expiring_embed_link",
            "download_url",
        ],
    );
    let seen = last(&log);
    assert_eq!(fields_sent(&seen.target), ["name,size,permissions"]);
    assert_eq!(seen.headers["accept-encoding"], "identity");
    // Spelled otherwise, the same field is still taken out.
    gw.get("/2.0/files/1001?%66ields=Shared_Link%2Cname&limit=1", &t)
        .await;
    let seen = last(&log);
    assert_eq!(fields_sent(&seen.target), ["name"]);
    assert!(seen.target.contains("limit=1"), "{}", seen.target);
    // All of them hidden: Box still gets a list it answers.
    gw.get("/2.0/files/1001?fields=shared_link", &t).await;
    assert_eq!(fields_sent(&last(&log).target), ["id,type"]);
    gw.stop().await;
    minter.stop().await;
}

#[tokio::test]
async fn folder_listings_and_search_are_redacted_in_every_entry() {
    let (gw, minter, log) = setup().await;
    let t = minter.mint("base_explorer item_preview", None).await;
    let r = gw
        .get(
            &format!("/2.0/folders/100/items?fields={EXPLORER_FIELDS}"),
            &t,
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let body = r.json();
    assert_eq!(body["entries"].as_array().unwrap().len(), 3);
    assert_none_of(
        &body,
        &["shared_link", "authenticated_download_url", "download_url"],
    );
    // item_preview: representations and embed links stay, and point at the gateway.
    assert!(body["entries"][2]["representations"]["entries"][0].is_object());
    assert_eq!(
        fields_sent(&last(&log).target),
        ["name,size,representations,expiring_embed_link,permissions"]
    );
    let r = gw.get("/2.0/search?query=plan", &t).await;
    assert_eq!(r.status, 200);
    let body = r.json();
    assert_none_of(&body, &["shared_link", "authenticated_download_url"]);
    assert_eq!(body["next"], json!({"n": 1}));
    gw.stop().await;
    minter.stop().await;
}

#[tokio::test]
async fn urls_in_answers_point_at_the_gateway_and_work_there() {
    let (gw, minter, log) = setup().await;
    let t = minter
        .mint("item_read item_preview item_download", None)
        .await;
    let r = gw.get("/2.0/files/1001", &t).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let body = r.json();
    assert_none_of(&body, &["shared_link"]);
    let me = format!("http://{}", gw.addr);
    let mut found = Vec::new();
    urls(&body, &mut found);
    // The preview page on Box's web host is not an API URL: kept as it is.
    let web: Vec<_> = found.iter().filter(|u| u.contains("app.box.com")).collect();
    assert_eq!(web.len(), 1, "{found:?}");
    for u in found.iter().filter(|u| !u.contains("app.box.com")) {
        assert!(u.starts_with(&me), "{u} does not point at the gateway");
    }
    let download = body["authenticated_download_url"].as_str().unwrap();
    let template = body["representations"]["entries"][0]["content"]["url_template"]
        .as_str()
        .unwrap();
    assert_eq!(
        template,
        format!(
            "{me}/api/2.0/internal_files/1001/versions/5/representations/jpg_32x32/content/{{+asset_path}}"
        )
    );
    // The download works through the gateway, and its (JSON) bytes are
    // passed on untouched: content is never parsed.
    let path = download.strip_prefix(&me).unwrap();
    let r = gw.get(path, &t).await;
    assert_eq!(r.status, 200);
    assert_eq!(&r.body[..], br#"{"shared_link":"mine"}"#);
    assert_eq!(last(&log).target, "/api/2.0/files/1001/content");
    // The representation with an empty asset path: the trailing slash is
    // this route's shape, forwarded as it came.
    let path = template
        .strip_prefix(&me)
        .unwrap()
        .replace("{+asset_path}", "");
    let r = gw.get(&path, &t).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(&r.body[..], b"\x89PNG fake image");
    assert_eq!(last(&log).target, path);
    let paged = path.clone() + "1.png";
    assert_eq!(gw.get(&paged, &t).await.status, 200);
    assert_eq!(last(&log).target, paged);
    // A download URL on a host the gateway does not know is removed, even
    // for a token that may download: the client would send its token there.
    let r = gw.get("/2.0/search?query=plan", &t).await;
    assert_eq!(r.json()["next"], json!({"n": 1}));
    gw.stop().await;
    minter.stop().await;
}

#[tokio::test]
async fn representation_routes_are_checked_like_any_route() {
    let (gw, minter, log) = setup().await;
    let rep = "/api/2.0/internal_files/1001/versions/5/representations/jpg_32x32/content/";
    let read = minter.mint("item_read", None).await;
    assert_eq!(gw.get(rep, &read).await.status, 403);
    let other = minter.mint("item_preview", Some("/2.0/files/1002")).await;
    let before = log.lock().unwrap().len();
    let r = gw.get(rep, &other).await;
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    let mine = minter.mint("item_preview", Some("/2.0/files/1001")).await;
    assert_eq!(gw.get(rep, &mine).await.status, 200);
    // A trailing slash anywhere else is still refused, and never forwarded.
    for bad in [
        "/2.0/files/1001/",
        "/api/2.0/internal_files/1001/versions/5/representations/jpg_32x32/content//",
        "/api/2.0/internal_files/1001/versions/5/representations/jpg_32x32/content/1.png/",
        "/api/2.0/internal_files/1001/versions/5/representations/jpg_32x32/",
    ] {
        assert_eq!(gw.get(bad, &mine).await.status, 400, "{bad}");
    }
    // Without any slash or asset, the content route does not match.
    let bare = rep.trim_end_matches('/');
    assert_eq!(gw.get(bare, &mine).await.status, 403);
    assert_eq!(log.lock().unwrap().len(), before + 1);
    gw.stop().await;
    minter.stop().await;
}

#[tokio::test]
async fn the_upload_preflight_never_hands_out_its_upload_token() {
    let (gw, minter, _log) = setup().await;
    let t = minter.mint("root_readwrite", None).await;
    let r = gw
        .call(
            Method::OPTIONS,
            "/2.0/files/content",
            Some(&t),
            &[("content-type", "application/json")],
            r#"{"name":"a.txt","parent":{"id":"100"},"size":3}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let body = r.json();
    assert_none_of(&body, &["upload_token"]);
    assert_eq!(
        body["upload_url"],
        format!(
            "http://{}/api/2.0/files/content?upload_session_id=77",
            gw.addr
        )
    );
    gw.stop().await;
    minter.stop().await;
}

#[tokio::test]
async fn an_answer_that_cannot_be_read_is_a_502_never_passed_on() {
    let (gw, minter, log) = setup().await;
    let t = minter.mint("item_read", None).await;
    // Cut JSON, a content coding, over the cap, not JSON at all.
    for id in ["1002", "1003", "1004", "1005"] {
        let r = gw.get(&format!("/2.0/files/{id}"), &t).await;
        assert_eq!(r.status, 502, "{id}: {}", String::from_utf8_lossy(&r.body));
        assert!(
            !String::from_utf8_lossy(&r.body).contains("shared_link"),
            "{id}"
        );
        assert_eq!(last(&log).target, format!("/2.0/files/{id}"));
    }
    gw.stop().await;
    minter.stop().await;
}

#[tokio::test]
async fn each_route_goes_to_the_origin_the_policy_names() {
    // B serves representation content; A is the API and names B in its
    // representation URLs.
    let (b, b_log) = start_upstream().await;
    let (a, a_log) = start_upstream_dl(Some(b)).await;
    let keyring = scopegate::token::Keyring::generate_toml("shared");
    let minter = Harness::start_with(Opts {
        keyring: Some(keyring.clone()),
        ..Default::default()
    })
    .await;
    let gw = Harness::start_edited(
        Opts {
            keyring: Some(keyring),
            upstream: Some(a),
            bare_upstream: true,
            ..Default::default()
        },
        |text| {
            text.replace(
                &format!("api = \"http://{a}\"\n"),
                &format!("api = \"http://{a}\"\ndownload = \"http://{b}\"\n"),
            )
        },
    )
    .await;
    let t = minter
        .mint("item_read item_preview item_download", None)
        .await;
    let r = gw.get("/2.0/files/1001", &t).await;
    assert_eq!(r.status, 200);
    let body = r.json();
    let me = format!("http://{}", gw.addr);
    let template = body["representations"]["entries"][0]["content"]["url_template"]
        .as_str()
        .unwrap();
    assert!(template.starts_with(&me), "{template}");
    // A's own download URL would be sent to the download host (B), not
    // back to A: it does not round trip, so it is removed.
    assert!(body.get("authenticated_download_url").is_none(), "{body}");
    let path = template
        .strip_prefix(&me)
        .unwrap()
        .replace("{+asset_path}", "");
    let before = a_log.lock().unwrap().len();
    let r = gw.get(&path, &t).await;
    assert_eq!(r.status, 200);
    assert_eq!(last(&b_log).target, path);
    assert_eq!(
        a_log.lock().unwrap().len(),
        before,
        "the API host got a download"
    );
    gw.stop().await;
    minter.stop().await;
}
