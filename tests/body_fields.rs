//! JSON body fields per route (config/policy-box.toml `fields`): for a
//! downscoped token each top-level field needs the scope the route lists
//! for it, a field the route does not list is refused (closed world), and a
//! route without a body takes none. Each refusal is checked on the answer
//! and on the recording upstream (nothing reached it); what passes is
//! forwarded byte for byte as checked.

mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use http::Method;
use support::*;

fn put_file(h: &Harness, token: &str, body: &str) -> impl Future<Output = Resp> {
    h.call_json(
        Method::PUT,
        "/2.0/files/1001",
        Some(token),
        body.to_string(),
    )
}

#[tokio::test]
async fn each_update_field_needs_its_own_scope() {
    let h = Harness::start().await;
    let rename = h.mint("item_rename", Some("/2.0/files/1001")).await;
    let share = h.mint("item_share", Some("/2.0/files/1001")).await;
    let both = h
        .mint("item_rename item_share", Some("/2.0/files/1001"))
        .await;
    let share_link = r#"{"shared_link":{"access":"open"}}"#;
    // (token, body, status, the scope a 403 names or "" for an unlisted field)
    let cases: Vec<(&str, &str, u16, &str)> = vec![
        (&rename, r#"{"name":"plan2.txt"}"#, 200, ""),
        (&rename, r#"{"description":"d","tags":["a"]}"#, 200, ""),
        (
            &rename,
            r#"{"lock":{"type":"lock","access":"lock"}}"#,
            200,
            "",
        ),
        // A move: the field is allowed, the destination check still applies
        // (no folder lies inside a file); the challenge names the restriction.
        (&rename, r#"{"parent":{"id":"110"}}"#, 403, "restriction"),
        (&rename, share_link, 403, "item_share"),
        (
            &rename,
            r#"{"name":"x","shared_link":null}"#,
            403,
            "item_share",
        ),
        (
            &rename,
            r#"{"permissions":{"can_download":"open"}}"#,
            403,
            "item_share",
        ),
        (&share, share_link, 200, ""),
        (&share, r#"{"shared_link":null}"#, 200, ""),
        (&share, r#"{"name":"x"}"#, 403, "item_rename"),
        (&share, r#"{"lock":null}"#, 403, "item_rename"),
        (
            &share,
            r#"{"shared_link":{},"parent":{"id":"110"}}"#,
            403,
            "item_rename",
        ),
        (
            &both,
            r#"{"name":"plan3.txt","shared_link":{"access":"open"}}"#,
            200,
            "",
        ),
        // Not listed for anyone: refused, whatever the token holds.
        (&both, r#"{"collections":[{"id":"1"}]}"#, 403, "-"),
        (
            &both,
            r#"{"disposition_at":"2030-01-01T00:00:00Z"}"#,
            403,
            "-",
        ),
        (&both, r#"{"name":"x","Name":"y"}"#, 403, "-"),
        (&both, r#"{"name":"x","name ":"y"}"#, 403, "-"),
        // Still strict JSON.
        (&both, r#"{"name":"x","name":"y"}"#, 400, ""),
        (&both, r#"["name"]"#, 400, ""),
    ];
    for (token, body, status, scope) in cases {
        h.api.clear_recorded();
        let r = put_file(&h, token, body).await;
        let what = format!("{body}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.status, status, "{what}");
        let seen = h.api.recorded();
        if status == 200 {
            assert_eq!(seen.len(), 1, "{what}");
            assert_eq!(
                seen[0].body_len,
                body.len() as u64,
                "{what}: forwarded as checked"
            );
        } else {
            assert!(seen.is_empty(), "{what}: forwarded");
        }
        if status == 403 && scope != "-" {
            assert_eq!(r.json()["code"], "insufficient_scope", "{what}");
            assert!(r.header("www-authenticate").contains(scope), "{what}");
        }
        if scope == "-" {
            assert_eq!(r.json()["code"], "forbidden", "{what}");
        }
    }
    h.stop().await;
}

#[tokio::test]
async fn folder_updates_and_creates_follow_the_same_table() {
    let h = Harness::start().await;
    let rename = h.mint("item_rename", Some("/2.0/folders/100")).await;
    let upload = h.mint("item_upload", Some("/2.0/folders/100")).await;
    let put = |t: &String, b: &'static str| {
        let t = t.clone();
        let h = &h;
        async move {
            h.call_json(Method::PUT, "/2.0/folders/110", Some(&t), b.to_string())
                .await
        }
    };
    assert_eq!(put(&rename, r#"{"name":"R"}"#).await.status, 200);
    // A move inside the token's folder: the field and the destination pass.
    assert_eq!(put(&rename, r#"{"parent":{"id":"100"}}"#).await.status, 200);
    assert_eq!(put(&rename, r#"{"parent":{"id":"200"}}"#).await.status, 403);
    assert_eq!(
        put(&rename, r#"{"can_non_owners_invite":true}"#)
            .await
            .status,
        403
    );
    assert_eq!(
        put(&rename, r#"{"folder_upload_email":{"access":"open"}}"#)
            .await
            .status,
        403
    );
    assert_eq!(put(&rename, r#"{"sync_state":"synced"}"#).await.status, 403);
    let post =
        |b: &'static str| h.call_json(Method::POST, "/2.0/folders", Some(&upload), b.to_string());
    assert_eq!(
        post(r#"{"name":"N","parent":{"id":"100"}}"#).await.status,
        201
    );
    let r = post(r#"{"name":"N2","parent":{"id":"100"},"folder_upload_email":{"access":"open"}}"#)
        .await;
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        post(r#"{"name":"N3","parent":{"id":"100"},"sync_state":"synced"}"#)
            .await
            .status,
        403
    );
    // Unrestricted downscoped tokens are checked too.
    let unrestricted = h.mint("item_rename", None).await;
    h.api.clear_recorded();
    let r = put_file(&h, &unrestricted, r#"{"shared_link":{"access":"open"}}"#).await;
    assert_eq!(r.status, 403);
    assert!(h.api.recorded().is_empty());
    h.stop().await;
}

#[tokio::test]
async fn a_route_without_a_body_takes_none_from_a_downscoped_token() {
    let h = Harness::start().await;
    let t = h
        .mint("item_delete item_read", Some("/2.0/files/1001"))
        .await;
    h.api.clear_recorded();
    let r = h
        .call_json(Method::DELETE, "/2.0/files/1001", Some(&t), r#"{"x":1}"#)
        .await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    let r = h
        .call(Method::GET, "/2.0/files/1001", Some(&t), &[], "body")
        .await;
    assert_eq!(r.status, 400);
    assert!(h.api.recorded().is_empty());
    assert_eq!(h.get("/2.0/files/1001", &t).await.status, 200);
    h.stop().await;
}

#[tokio::test]
async fn external_tokens_are_not_checked_field_by_field() {
    let (api, addr, stop) = start_api().await;
    let h = Harness::start_with(Opts {
        upstream: Some(addr),
        tokens: "external = \"introspect\"".into(),
        extra: format!(
            "[introspection]\nurl = \"http://{addr}/oauth2/introspect\"\ninactive_ttl = \"30s\"\n"
        ),
        ..Default::default()
    })
    .await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    api.add_token("ext-token", "2002");
    api.add_introspectable("ext-token", "item_rename", "2002", now - 60, now + 600);
    let r = put_file(&h, "ext-token", r#"{"name":"x.txt","collections":[]}"#).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    h.stop().await;
    let _ = stop.send(());
}
