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
    let (status, file) = h.get("/2.0/files/1003?fields=id", Some(TOKEN)).await;
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
    assert_eq!(h.api.item_info_calls(), 1);

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
