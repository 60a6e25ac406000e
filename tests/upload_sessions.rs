//! Chunked upload sessions through the gateway (issue 17, Content Uploader
//! for large files): a session opened inside a token's folder can be used by
//! it; a session for another folder, one the gateway did not see opened, or
//! a commit that moves the file out, is refused before the upstream sees it.

mod support;

use base64::Engine as _;
use http::Method;
use serde_json::{Value, json};
use support::{Harness, PARENT};

fn sha1_b64(data: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, data);
    base64::engine::general_purpose::STANDARD.encode(d.as_ref())
}

/// Opens a session through the gateway; returns the status and the answer.
async fn open(h: &Harness, token: &str, folder: &str, name: &str, size: usize) -> (u16, Value) {
    let body = json!({"folder_id": folder, "file_size": size, "file_name": name}).to_string();
    let r = h
        .call_json(
            Method::POST,
            "/api/2.0/files/upload_sessions",
            Some(token),
            body,
        )
        .await;
    (r.status, r.json())
}

async fn put_part(
    h: &Harness,
    token: &str,
    sid: &str,
    first: usize,
    part: &[u8],
    total: usize,
) -> u16 {
    let range = format!("bytes {first}-{}/{total}", first + part.len() - 1);
    let digest = format!("sha={}", sha1_b64(part));
    h.call(
        Method::PUT,
        &format!("/api/2.0/files/upload_sessions/{sid}"),
        Some(token),
        &[
            ("content-range", &range),
            ("digest", &digest),
            ("content-type", "application/octet-stream"),
        ],
        part.to_vec(),
    )
    .await
    .status
}

async fn commit(
    h: &Harness,
    token: &str,
    sid: &str,
    parts: &Value,
    whole: &[u8],
    attributes: Value,
) -> support::Resp {
    let digest = format!("sha={}", sha1_b64(whole));
    let body = json!({"parts": parts, "attributes": attributes}).to_string();
    h.call(
        Method::POST,
        &format!("/api/2.0/files/upload_sessions/{sid}/commit"),
        Some(token),
        &[("digest", &digest), ("content-type", "application/json")],
        body,
    )
    .await
}

/// Requests the upstream received naming this session (any method).
fn upstream_calls(h: &Harness, sid: &str) -> usize {
    h.api
        .recorded()
        .iter()
        .filter(|r| r.path_and_query.contains(sid))
        .count()
}

#[tokio::test]
async fn sessions_stay_inside_the_folder() {
    let h = Harness::start().await;
    h.api.set_part_size(4);
    let t100 = h.mint("base_upload", Some("/2.0/folders/100")).await;
    let t200 = h.mint("base_upload", Some("/2.0/folders/200")).await;
    let data = b"0123456789";

    // Inside: open for 110 (below 100), three parts, list, commit.
    let (status, session) = open(&h, &t100, "110", "big.bin", data.len()).await;
    assert_eq!(status, 201, "{session}");
    let sid = session["id"].as_str().unwrap().to_owned();
    for first in [0, 4, 8] {
        let part = &data[first..(first + 4).min(data.len())];
        assert_eq!(
            put_part(&h, &t100, &sid, first, part, data.len()).await,
            200
        );
    }
    let parts = h
        .get(
            &format!("/api/2.0/files/upload_sessions/{sid}/parts"),
            &t100,
        )
        .await;
    assert_eq!(parts.status, 200);
    let listed = parts.json()["entries"].clone();
    assert_eq!(listed.as_array().map(Vec::len), Some(3));
    assert_eq!(
        h.get(&format!("/api/2.0/files/upload_sessions/{sid}"), &t100)
            .await
            .status,
        200
    );

    // Another folder's token may not touch this session, nor a token of
    // another scope.
    assert_eq!(
        put_part(&h, &t200, &sid, 0, &data[..4], data.len()).await,
        403
    );
    let preview = h.mint("item_preview", Some("/2.0/folders/100")).await;
    assert_eq!(
        put_part(&h, &preview, &sid, 0, &data[..4], data.len()).await,
        403
    );
    let before = upstream_calls(&h, &sid);

    // A commit that would put the file in folder 200 is refused; the plain one passes.
    let moved = commit(
        &h,
        &t100,
        &sid,
        &listed,
        data,
        json!({"parent": {"id": "200"}}),
    )
    .await;
    assert_eq!(
        moved.status,
        403,
        "{}",
        String::from_utf8_lossy(&moved.body)
    );
    assert_eq!(
        upstream_calls(&h, &sid),
        before,
        "refused calls reached the upstream"
    );
    let done = commit(&h, &t100, &sid, &listed, data, json!({})).await;
    assert_eq!(done.status, 201, "{}", String::from_utf8_lossy(&done.body));
    assert_eq!(done.json()["entries"][0]["parent"]["id"], "110");

    // Opening a session outside the folder is refused, and never reaches the upstream.
    let recorded = h.api.recorded().len();
    let (status, _) = open(&h, &t100, "200", "x.bin", 10).await;
    assert_eq!(status, 403);
    let opened_outside = h.api.recorded()[recorded..]
        .iter()
        .any(|r| r.path_and_query == "/api/2.0/files/upload_sessions");
    assert!(
        !opened_outside,
        "the create for folder 200 reached the upstream"
    );

    // A session opened by folder 200's own token is its, not folder 100's.
    let (status, other) = open(&h, &t200, "200", "y.bin", 10).await;
    assert_eq!(status, 201);
    let other = other["id"].as_str().unwrap().to_owned();
    assert_eq!(put_part(&h, &t100, &other, 0, &data[..4], 10).await, 403);
    let del = h
        .call(
            Method::DELETE,
            &format!("/api/2.0/files/upload_sessions/{other}"),
            Some(&t100),
            &[],
            "",
        )
        .await;
    assert_eq!(del.status, 403);
    let del = h
        .call(
            Method::DELETE,
            &format!("/api/2.0/files/upload_sessions/{other}"),
            Some(&t200),
            &[],
            "",
        )
        .await;
    assert_eq!(del.status, 204);

    // A session the gateway never saw opened (here: straight at the upstream
    // with the parent) is refused for restricted tokens: fail closed.
    let direct = support::client();
    let req = http::Request::post(format!(
        "http://{}/api/2.0/files/upload_sessions",
        h.api_addr
    ))
    .header("authorization", format!("Bearer {PARENT}"))
    .body(http_body_util::Full::new(bytes::Bytes::from(
        json!({"folder_id": "100", "file_size": 10, "file_name": "z.bin"}).to_string(),
    )))
    .unwrap();
    let unseen = support::send(&direct, req).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = upstream_calls(&h, &unseen);
    assert_eq!(put_part(&h, &t100, &unseen, 0, &data[..4], 10).await, 403);
    assert_eq!(upstream_calls(&h, &unseen), before);

    // No downscoped token ever reached the upstream.
    for r in h.api.recorded() {
        let auth = r
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(
            ![&t100, &t200, &preview]
                .iter()
                .any(|t| auth.contains(t.as_str())),
            "{} {}",
            r.method,
            r.path_and_query
        );
    }
    h.stop().await;
}
