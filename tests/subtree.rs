//! Folder-restricted tokens reach the folder's whole subtree, and nothing
//! else: files deep below, not siblings, not uploads or moves outside.

mod support;

use http::Method;
use support::*;

fn upload_body(parent: &str) -> (String, Vec<u8>) {
    let b = "sgBoundary7";
    let body = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"attributes\"\r\n\r\n{{\"name\":\"new.txt\",\"parent\":{{\"id\":\"{parent}\"}}}}\r\n--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"new.txt\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--{b}--\r\n"
    );
    (
        format!("multipart/form-data; boundary={b}"),
        body.into_bytes(),
    )
}

#[tokio::test]
async fn a_folder_token_reaches_three_levels_down_and_not_the_sibling() {
    let h = Harness::start().await;
    let t = h
        .mint("base_explorer item_download", Some("/2.0/folders/100"))
        .await;
    // 100 > 110 > 111 > file 1003
    assert_eq!(h.get("/2.0/folders/110/items", &t).await.status, 200);
    assert_eq!(h.get("/2.0/folders/111", &t).await.status, 200);
    let r = h.get("/2.0/files/1003", &t).await;
    assert_eq!((r.status, r.json()["name"].as_str()), (200, Some("q3.pdf")));
    assert_eq!(h.get("/2.0/files/1003/content", &t).await.status, 200);
    // The sibling folder 200 and its file are out of reach, and never fetched.
    h.api.clear_recorded();
    for path in [
        "/2.0/folders/200",
        "/2.0/folders/200/items",
        "/2.0/files/2001",
        "/2.0/files/2001/content",
        "/2.0/folders/0",
    ] {
        let r = h.get(path, &t).await;
        assert_eq!(r.status, 403, "{path}");
        assert!(
            r.header("www-authenticate").contains("insufficient_scope"),
            "{path}"
        );
    }
    assert!(
        h.upstream_paths()
            .iter()
            .all(|p| p.contains("fields=path_collection")),
        "only ancestry lookups reached the upstream: {:?}",
        h.upstream_paths()
    );
    // An item the upstream does not know is refused too.
    assert_eq!(h.get("/2.0/files/987654", &t).await.status, 403);
    h.stop().await;
}

#[tokio::test]
async fn uploads_and_moves_stay_inside_the_subtree() {
    let h = Harness::start().await;
    let t = h
        .mint("item_upload item_rename", Some("/2.0/folders/100"))
        .await;
    let (ct, inside) = upload_body("111");
    let r = h
        .call(
            Method::POST,
            "/api/2.0/files/content",
            Some(&t),
            &[("content-type", &ct)],
            inside,
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let (ct, outside) = upload_body("200");
    h.api.clear_recorded();
    let r = h
        .call(
            Method::POST,
            "/api/2.0/files/content",
            Some(&t),
            &[("content-type", &ct)],
            outside,
        )
        .await;
    assert_eq!(r.status, 403);
    assert!(
        h.upstream_paths().iter().all(|p| !p.starts_with("/api/")),
        "the upload never reached the upstream"
    );

    // Move 1003 within the subtree: allowed. Out of it: refused.
    let json = |v: &str| format!("{{\"parent\":{{\"id\":\"{v}\"}}}}");
    let r = h
        .call_json(Method::PUT, "/2.0/files/1003", Some(&t), json("110"))
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    h.api.clear_recorded();
    let r = h
        .call_json(Method::PUT, "/2.0/files/1003", Some(&t), json("200"))
        .await;
    assert_eq!(r.status, 403);
    let r = h
        .call_json(Method::PUT, "/2.0/folders/110", Some(&t), json("0"))
        .await;
    assert_eq!(r.status, 403);
    assert!(
        h.upstream_paths()
            .iter()
            .all(|p| !p.starts_with("/2.0/files/1003") || p.contains("fields="))
    );
    // Rename without a move needs no destination check.
    let r = h
        .call_json(
            Method::PUT,
            "/2.0/files/1003",
            Some(&t),
            "{\"name\":\"q3-final.pdf\"}",
        )
        .await;
    assert_eq!(r.status, 200);
    h.stop().await;
}

#[tokio::test]
async fn a_file_token_can_neither_move_nor_copy_its_file() {
    let h = Harness::start().await;
    let t = h
        .mint("item_rename item_upload", Some("/2.0/files/1001"))
        .await;
    let body = "{\"parent\":{\"id\":\"100\"}}";
    let r = h
        .call_json(Method::PUT, "/2.0/files/1001", Some(&t), body)
        .await;
    assert_eq!(r.status, 403);
    let r = h
        .call_json(Method::POST, "/2.0/files/1001/copy", Some(&t), body)
        .await;
    assert_eq!(r.status, 403);
    let r = h
        .call_json(
            Method::PUT,
            "/2.0/files/1001",
            Some(&t),
            "{\"name\":\"plan2.txt\"}",
        )
        .await;
    assert_eq!(r.status, 200);
    h.stop().await;
}

#[tokio::test]
async fn a_hundred_concurrent_requests_make_one_ancestry_call() {
    let h = std::sync::Arc::new(Harness::start().await);
    let t = h.mint("item_download", Some("/2.0/folders/100")).await;
    let before = h.api.item_info_calls();
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let h = h.clone();
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            h.get("/2.0/files/1003/content", &t).await.status
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    assert_eq!(
        h.api.item_info_calls() - before,
        1,
        "one upstream ancestry lookup for 100 requests"
    );
    let m = h.metrics().await;
    assert_eq!(
        metric(&m, "scopegate_ancestry_lookups_total{result=\"miss\"}"),
        1.0
    );
    let h = std::sync::Arc::try_unwrap(h).ok().unwrap();
    h.stop().await;
}

/// Box's upload preflight (the Uploader's first call) is checked like the
/// upload, and its `upload_url` sends the bytes back through the gateway.
#[tokio::test]
async fn upload_preflight_is_checked_and_points_back_at_the_gateway() {
    let h = Harness::start().await;
    let t = h.mint("base_upload", Some("/2.0/folders/100")).await;
    let ask = |parent: &str| {
        format!("{{\"name\":\"pre.txt\",\"size\":5,\"parent\":{{\"id\":\"{parent}\"}}}}")
    };
    let r = h
        .call_json(Method::OPTIONS, "/2.0/files/content", Some(&t), ask("111"))
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let url = r.json()["upload_url"].as_str().unwrap().to_string();
    let prefix = format!("http://{}/api/2.0/files/content?", h.addr);
    assert!(url.starts_with(&prefix), "{url}");
    let r = h
        .call_json(Method::OPTIONS, "/2.0/files/content", Some(&t), ask("200"))
        .await;
    assert_eq!(r.status, 403);
    // The upload to the rewritten URL passes the same checks.
    let path = &url[url.find("/api/").unwrap()..];
    let (ct, body) = upload_body("111");
    let r = h
        .call(Method::POST, path, Some(&t), &[("content-type", &ct)], body)
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    h.stop().await;
}
