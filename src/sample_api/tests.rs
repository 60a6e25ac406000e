//! End-to-end checks of the sample API over real sockets and a real client.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::sync::oneshot;

use super::SampleApi;

const TOKEN: &str = "parent-token";

type Body = BoxBody<Bytes, Infallible>;

struct Harness {
    api: SampleApi,
    addr: SocketAddr,
    client: Client<HttpConnector, Body>,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
}

impl Harness {
    async fn start() -> Harness {
        let api = SampleApi::new(TOKEN);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(api.clone().serve(listener, async move {
            let _ = rx.await;
        }));
        let client = Client::builder(TokioExecutor::new()).build_http();
        Harness {
            api,
            addr,
            client,
            stop: Some(tx),
            server,
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        ct: Option<&str>,
        body: Body,
    ) -> (StatusCode, Bytes) {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(ct) = ct {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let resp = self
            .client
            .request(req.body(body).expect("request"))
            .await
            .expect("response");
        let status = resp.status();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        (status, bytes)
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let (status, bytes) = self.send(Method::GET, path, token, None, empty()).await;
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        drop(self.client);
        tokio::time::timeout(Duration::from_secs(10), self.server)
            .await
            .expect("server stops")
            .expect("server task");
    }
}

fn empty() -> Body {
    Full::new(Bytes::new()).boxed()
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

/// A body sent as separate chunks with pauses, so the server reads them as
/// separate frames.
fn chunked(chunks: Vec<Bytes>) -> Body {
    let stream = futures_util::stream::unfold(chunks.into_iter(), |mut it| async move {
        let chunk = it.next()?;
        tokio::time::sleep(Duration::from_millis(15)).await;
        Some((Ok::<_, Infallible>(Frame::data(chunk)), it))
    });
    StreamBody::new(stream).boxed()
}

#[tokio::test]
async fn users_me_and_unauthorized() {
    let h = Harness::start().await;
    let (status, me) = h.get("/2.0/users/me", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["id"], "1001");
    assert_eq!(me["login"], "demo@example.com");

    h.api.add_token("other", "2002");
    let (_, other) = h.get("/2.0/users/me", Some("other")).await;
    assert_eq!(other["id"], "2002");

    for token in [None, Some("wrong")] {
        let (status, err) = h.get("/2.0/users/me", token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(err["type"], "error");
        assert_eq!(err["code"], "unauthorized");
    }
    let (status, err) = h.get("/2.0/files/999", Some(TOKEN)).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    h.stop().await;
}

#[tokio::test]
async fn items_and_ancestry() {
    let h = Harness::start().await;
    let (status, only_id) = h.get("/2.0/files/1003?fields=id", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    let mut keys: Vec<&String> = only_id.as_object().expect("object").keys().collect();
    keys.sort();
    assert_eq!(keys, ["etag", "id", "type"]);
    let (status, file) = h
        .get(
            "/2.0/files/1003?fields=name,parent,file_version,sha1,path_collection",
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(file["name"], "q3.pdf");
    assert_eq!(file["parent"]["id"], "111");
    assert_eq!(file["file_version"]["id"], "v1003");
    assert_eq!(file["sha1"].as_str().map(str::len), Some(40));
    let ids: Vec<&str> = file["path_collection"]["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    assert_eq!(ids, ["0", "100", "110", "111"]);

    let (_, items) = h.get("/2.0/folders/100/items", Some(TOKEN)).await;
    assert_eq!(items["total_count"], 2);
    assert_eq!(items["entries"][0]["id"], "110");
    assert_eq!(items["entries"][1]["name"], "plan.txt");

    let (status, content) = h
        .send(
            Method::GET,
            "/2.0/files/1001/content",
            Some(TOKEN),
            None,
            empty(),
        )
        .await;
    assert_eq!((status, &content[..]), (StatusCode::OK, &b"the plan\n"[..]));
    assert_eq!(h.api.item_info_calls(), 2);

    let (status, moved) = h
        .send(
            Method::PUT,
            "/2.0/files/1001",
            Some(TOKEN),
            None,
            full(r#"{"parent":{"id":"200"}}"#),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let moved: Value = serde_json::from_slice(&moved).expect("json");
    assert_eq!(moved["path_collection"]["total_count"], 2);
    let (status, _) = h
        .send(
            Method::PUT,
            "/2.0/files/1001",
            Some(TOKEN),
            None,
            full("{nope"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = h
        .send(
            Method::DELETE,
            "/2.0/folders/100",
            Some(TOKEN),
            None,
            empty(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = h
        .send(
            Method::DELETE,
            "/2.0/folders/100?recursive=true",
            Some(TOKEN),
            None,
            empty(),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        h.get("/2.0/files/1003", Some(TOKEN)).await.0,
        StatusCode::NOT_FOUND
    );

    let (status, echo) = h.get("/2.0/files/1002/comments", Some(TOKEN)).await;
    assert_eq!(
        (status, &echo["type"]),
        (StatusCode::OK, &Value::from("echo"))
    );
    h.stop().await;
}

#[tokio::test]
async fn streamed_upload_with_split_boundary() {
    let h = Harness::start().await;
    let boundary = "----sg-boundary-42";
    let payload = vec![b'x'; 100_000];
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"attributes\"\r\n\r\n\
         {{\"name\":\"big.bin\",\"parent\":{{\"id\":\"111\"}}}}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&payload);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let total = body.len() as u64;
    let body = Bytes::from(body);
    // Cuts inside the first boundary, inside the attributes, and inside the
    // closing boundary.
    let closing = body.len() - boundary.len() / 2 - 4;
    let cuts = [0, 9, 80, 5000, 60_000, closing, body.len()];
    let chunks: Vec<Bytes> = cuts.windows(2).map(|w| body.slice(w[0]..w[1])).collect();
    let ct = format!("multipart/form-data; boundary={boundary}");
    let (status, answer) = h
        .send(
            Method::POST,
            "/api/2.0/files/content",
            Some(TOKEN),
            Some(&ct),
            chunked(chunks),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer:?}");
    let answer: Value = serde_json::from_slice(&answer).expect("json");
    assert_eq!(answer["total_count"], 1);
    let file = &answer["entries"][0];
    assert_eq!(file["size"], 100_000);
    assert_eq!(file["parent"]["id"], "111");

    let (status, again) = h
        .send(
            Method::POST,
            "/api/2.0/files/content",
            Some(TOKEN),
            Some(&ct),
            full(body.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again:?}");

    let id = file["id"].as_str().expect("id");
    let (_, content) = h
        .send(
            Method::GET,
            &format!("/2.0/files/{id}/content"),
            Some(TOKEN),
            None,
            empty(),
        )
        .await;
    assert_eq!(content.len(), super::tree::STORED_BYTES);

    let upload = h
        .api
        .recorded()
        .into_iter()
        .find(|r| r.path_and_query == "/api/2.0/files/content");
    assert_eq!(upload.map(|r| r.body_len), Some(total));
    h.stop().await;
}

#[tokio::test]
async fn introspection_token_and_recording() {
    let h = Harness::start().await;
    h.api
        .add_introspectable("ext", "item_read base_explorer", "1001", 100, 4_000_000_000);
    let form = "token=ext&client_id=c&client_secret=s";
    let ct = Some("application/x-www-form-urlencoded");
    let (status, active) = h
        .send(Method::POST, "/oauth2/introspect", None, ct, full(form))
        .await;
    assert_eq!(status, StatusCode::OK);
    let active: Value = serde_json::from_slice(&active).expect("json");
    assert_eq!(active["active"], true);
    assert_eq!(active["scope"], "item_read base_explorer");
    assert_eq!(active["exp"], 4_000_000_000u64);
    let (_, inactive) = h
        .send(
            Method::POST,
            "/oauth2/introspect",
            None,
            ct,
            full("token=nope"),
        )
        .await;
    assert_eq!(&inactive[..], br#"{"active":false}"#);
    assert_eq!(h.api.introspection_calls(), 2);

    let (_, fwd) = h
        .send(
            Method::POST,
            "/oauth2/token",
            None,
            ct,
            full("grant_type=refresh_token"),
        )
        .await;
    let fwd: Value = serde_json::from_slice(&fwd).expect("json");
    assert_eq!(fwd["grant_type"], "refresh_token");
    let (status, revoked) = h
        .send(Method::POST, "/oauth2/revoke", None, ct, full("token=x"))
        .await;
    assert_eq!((status, revoked.len()), (StatusCode::OK, 0));

    let seen = h.api.recorded();
    let paths: Vec<&str> = seen.iter().map(|r| r.path_and_query.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/oauth2/introspect",
            "/oauth2/introspect",
            "/oauth2/token",
            "/oauth2/revoke"
        ]
    );
    assert_eq!(seen[0].body_len, form.len() as u64);
    assert_eq!(seen[3].method, Method::POST);
    h.api.clear_recorded();
    assert!(h.api.recorded().is_empty());
    h.stop().await;
}

#[tokio::test]
async fn serves_h2c() {
    let h = Harness::start().await;
    let client: Client<HttpConnector, Body> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let req = Request::get(format!("http://{}/2.0/folders/0", h.addr))
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(empty())
        .expect("request");
    let resp = client.request(req).await.expect("response");
    assert_eq!(
        (resp.status(), resp.version()),
        (StatusCode::OK, http::Version::HTTP_2)
    );
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let root: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(root["item_collection"]["total_count"], 2);
    assert_eq!(root["path_collection"]["total_count"], 0);
    drop(client);
    h.stop().await;
}

#[tokio::test]
async fn fields_collections_and_search() {
    let h = Harness::start().await;
    let base = format!("http://{}", h.addr);
    // Standard shape: the shared link is there without being asked for.
    let (_, plan) = h.get("/2.0/files/1001", Some(TOKEN)).await;
    assert_eq!(plan["shared_link"]["access"], "open");
    assert!(plan.get("authenticated_download_url").is_none());
    assert!(plan.get("permissions").is_none());

    // What Explorer asks for, entries included, paged and sorted.
    let fields = "id,name,type,size,permissions,modified_at,item_collection,authenticated_download_url,is_download_available,shared_link";
    let (status, folder) = h
        .get(
            &format!("/2.0/folders/100?fields={fields}&direction=DESC&limit=1&offset=0&sort=name"),
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(folder["permissions"]["can_upload"], true);
    assert!(folder.get("path_collection").is_none());
    let coll = &folder["item_collection"];
    assert_eq!(
        (coll["total_count"].as_u64(), coll["limit"].as_u64()),
        (Some(2), Some(1))
    );
    // Folders come first whatever the direction.
    assert_eq!(coll["entries"][0]["name"], "Reports");
    assert_eq!(
        coll["entries"][0]["modified_at"].as_str().map(str::len),
        Some(20)
    );
    let (_, second) = h
        .get(
            &format!("/2.0/folders/100/items?fields={fields}&limit=1&offset=1"),
            Some(TOKEN),
        )
        .await;
    let file = &second["entries"][0];
    assert_eq!(file["name"], "plan.txt");
    assert_eq!(
        file["authenticated_download_url"],
        format!("{base}/api/2.0/files/1001/content")
    );
    assert_eq!(file["shared_link"]["url"], format!("{base}/s/sample1001"));
    let (_, marked) = h
        .get("/2.0/folders/100/items?usemarker=true&limit=1", Some(TOKEN))
        .await;
    assert_eq!(marked["next_marker"], "m1");
    let (_, rest) = h
        .get(
            "/2.0/folders/100/items?usemarker=true&limit=1&marker=m1",
            Some(TOKEN),
        )
        .await;
    assert_eq!(
        (rest["entries"][0]["id"].as_str(), &rest["next_marker"]),
        (Some("1001"), &Value::Null)
    );
    assert_eq!(
        h.get("/2.0/folders/100/items?sort=bogus", Some(TOKEN))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );

    // Search within a folder: below it only, never the folder itself.
    let (_, hits) = h
        .get(
            "/2.0/search?query=.t&ancestor_folder_ids=110&fields=name",
            Some(TOKEN),
        )
        .await;
    let names: Vec<&str> = hits["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(names, ["summary.txt"]);
    let (_, all) = h.get("/2.0/search?query=SECRET", Some(TOKEN)).await;
    assert_eq!(all["entries"][0]["id"], "2001");
    let (_, none) = h
        .get(
            "/2.0/search?query=secret&ancestor_folder_ids=100",
            Some(TOKEN),
        )
        .await;
    assert_eq!(none["total_count"], 0);
    h.stop().await;
}

#[tokio::test]
async fn representations_thumbnails_and_preflight() {
    let h = Harness::start().await;
    let base = format!("http://{}", h.addr);
    let req = Request::get(format!("{base}/2.0/files/1001?fields=representations"))
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(
            "x-rep-hints",
            "[jpg?dimensions=1024x1024&paged=false,png?dimensions=1024x1024][pdf][text]",
        )
        .body(empty())
        .expect("request");
    let resp = h.client.request(req).await.expect("response");
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let file: Value = serde_json::from_slice(&body).expect("json");
    let entries = file["representations"]["entries"]
        .as_array()
        .expect("entries");
    let kinds: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["representation"].as_str())
        .collect();
    assert_eq!(kinds, ["jpg", "text"]);
    let jpg = &entries[0];
    let info = jpg["info"]["url"].as_str().expect("info url");
    assert_eq!(
        info,
        format!("{base}/2.0/internal_files/1001/versions/v1001/representations/jpg_1024x1024")
    );
    let template = jpg["content"]["url_template"].as_str().expect("template");
    assert!(template.starts_with(&format!("{base}/api/2.0/internal_files/1001/")));
    let content = template.replace("{+asset_path}", "");
    assert!(content.ends_with("/content/"));
    let (status, image) = h
        .send(
            Method::GET,
            &content[base.len()..],
            Some(TOKEN),
            None,
            empty(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        image.starts_with(&[0xff, 0xd8]),
        "a JPEG for the jpg representation"
    );
    let (status, info) = h.get(&info[base.len()..], Some(TOKEN)).await;
    assert_eq!(
        (status, &info["status"]["state"]),
        (StatusCode::OK, &Value::from("success"))
    );
    // Another version's or an unknown representation is 404.
    let (status, _) = h
        .get(
            "/2.0/internal_files/1001/versions/v9/representations/jpg_32x32",
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, thumb) = h
        .send(
            Method::GET,
            "/2.0/files/1002/thumbnail.png",
            Some(TOKEN),
            None,
            empty(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(thumb.starts_with(b"\x89PNG"));

    let (status, pre) = h
        .send(
            Method::OPTIONS,
            "/2.0/files/content",
            Some(TOKEN),
            None,
            full(r#"{"name":"new.txt","parent":{"id":"100"},"size":3}"#),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let pre: Value = serde_json::from_slice(&pre).expect("json");
    assert!(
        pre["upload_url"]
            .as_str()
            .expect("url")
            .starts_with(&format!("{base}/api/2.0/files/content"))
    );
    let (status, taken) = h
        .send(
            Method::OPTIONS,
            "/2.0/files/content",
            Some(TOKEN),
            None,
            full(r#"{"name":"plan.txt","parent":{"id":"100"},"size":3}"#),
        )
        .await;
    let taken: Value = serde_json::from_slice(&taken).expect("json");
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(taken["context_info"]["conflicts"]["id"], "1001");
    h.stop().await;
}

fn sha1_b64(data: &[u8]) -> String {
    use base64::Engine as _;
    let d = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, data);
    base64::engine::general_purpose::STANDARD.encode(d.as_ref())
}

#[tokio::test]
async fn chunked_upload_session() {
    let h = Harness::start().await;
    h.api.set_part_size(4);
    let data = b"0123456789";
    let (status, session) = h
        .send(
            Method::POST,
            "/api/2.0/files/upload_sessions",
            Some(TOKEN),
            None,
            full(r#"{"folder_id":"110","file_size":10,"file_name":"big.bin"}"#),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let session: Value = serde_json::from_slice(&session).expect("json");
    assert_eq!(
        (
            session["part_size"].as_u64(),
            session["total_parts"].as_u64()
        ),
        (Some(4), Some(3))
    );
    let put = session["session_endpoints"]["upload_part"]
        .as_str()
        .expect("url")
        .to_owned();
    let base = format!("http://{}", h.addr);
    assert!(put.starts_with(&format!("{base}/api/2.0/files/upload_sessions/")));
    let path = &put[base.len()..];
    let mut listed = Vec::new();
    for (first, chunk) in [(0usize, &data[0..4]), (4, &data[4..8]), (8, &data[8..])] {
        let last = first + chunk.len() - 1;
        let req = Request::put(&put)
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .header(header::CONTENT_RANGE, format!("bytes {first}-{last}/10"))
            .header("digest", format!("sha={}", sha1_b64(chunk)))
            .body(full(chunk.to_vec()))
            .expect("request");
        let resp = h.client.request(req).await.expect("response");
        assert_eq!(resp.status(), StatusCode::OK);
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        let part: Value = serde_json::from_slice(&body).expect("json");
        listed.push(part["part"].clone());
    }
    // A part off the part grid, or with a wrong digest, is refused.
    let req = Request::put(&put)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_RANGE, "bytes 2-5/10")
        .header("digest", format!("sha={}", sha1_b64(&data[2..6])))
        .body(full(data[2..6].to_vec()))
        .expect("request");
    assert_eq!(
        h.client.request(req).await.expect("response").status(),
        StatusCode::RANGE_NOT_SATISFIABLE
    );
    let (_, parts) = h.get(&format!("{path}/parts"), Some(TOKEN)).await;
    assert_eq!(parts["total_count"], 3);
    let commit = serde_json::json!({"parts": listed}).to_string();
    let send_commit = |digest: String| {
        Request::post(format!("{put}/commit"))
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .header("digest", digest)
            .body(full(commit.clone()))
            .expect("request")
    };
    let resp = h
        .client
        .request(send_commit(format!("sha={}", sha1_b64(b"nope"))))
        .await
        .expect("response");
    assert_eq!(resp.status(), StatusCode::PRECONDITION_FAILED);
    let resp = h
        .client
        .request(send_commit(format!("sha={}", sha1_b64(data))))
        .await
        .expect("response");
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let file: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(file["entries"][0]["parent"]["id"], "110");
    assert_eq!(file["entries"][0]["size"], 10);
    let id = file["entries"][0]["id"].as_str().expect("id").to_owned();
    let (_, content) = h
        .send(
            Method::GET,
            &format!("/api/2.0/files/{id}/content"),
            Some(TOKEN),
            None,
            empty(),
        )
        .await;
    assert_eq!(&content[..], data);
    assert_eq!(
        h.get(&format!("{path}/parts"), Some(TOKEN)).await.0,
        StatusCode::NOT_FOUND
    );
    h.stop().await;
}
