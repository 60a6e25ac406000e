//! Token exchange on a live gateway: Box's response shape, every error of
//! PRODUCT.md section 2, expiry caps, and tokens shared across instances
//! with one keyring.

mod support;

use support::*;

#[tokio::test]
async fn exchange_answers_in_box_shape_with_the_object() {
    let h = Harness::start().await;
    let r = h
        .exchange("item_preview item_download", Some("/2.0/files/1001"))
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("cache-control"), "no-store");
    let j = r.json();
    assert!(j["access_token"].as_str().unwrap().starts_with("sg1."));
    assert_eq!(j["token_type"], "bearer");
    assert_eq!(j["issued_token_type"], ACCESS);
    assert_eq!(j["expires_in"], 3600);
    let rt = j["restricted_to"].as_array().unwrap();
    assert_eq!(rt.len(), 2);
    assert_eq!(rt[0]["scope"], "item_preview");
    assert_eq!(rt[1]["scope"], "item_download");
    let o = &rt[0]["object"];
    assert_eq!(o["type"], "file");
    assert_eq!(o["id"], "1001");
    assert_eq!(o["name"], "plan.txt");
    assert!(o["sha1"].as_str().unwrap().len() == 40);
    assert_eq!(o["file_version"]["type"], "file_version");
    // The parent never shows in the minted token.
    assert!(!j["access_token"].as_str().unwrap().contains(PARENT));
    h.stop().await;
}

#[tokio::test]
async fn exchange_without_resource_has_no_object() {
    let h = Harness::start().await;
    let j = h.exchange("base_explorer", None).await.json();
    assert_eq!(
        j["restricted_to"],
        serde_json::json!([{"scope": "base_explorer"}])
    );
    h.stop().await;
}

#[tokio::test]
async fn every_exchange_error_has_its_code() {
    let h = Harness::start().await;
    let bad_parent = "not-a-valid-parent";
    type Case<'a> = (Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (vec![("subject_token", PARENT)], 400, "invalid_request"),
        (
            vec![
                ("grant_type", EXCHANGE),
                ("subject_token_type", ACCESS),
                ("scope", "item_read"),
            ],
            400,
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", EXCHANGE),
                ("subject_token", PARENT),
                ("scope", "item_read"),
            ],
            400,
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", EXCHANGE),
                ("subject_token", PARENT),
                ("subject_token_type", "urn:x"),
                ("scope", "item_read"),
            ],
            400,
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", EXCHANGE),
                ("subject_token", PARENT),
                ("subject_token_type", ACCESS),
            ],
            400,
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", EXCHANGE),
                ("subject_token", PARENT),
                ("subject_token", PARENT),
                ("subject_token_type", ACCESS),
                ("scope", "item_read"),
            ],
            400,
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", EXCHANGE),
                ("subject_token", bad_parent),
                ("subject_token_type", ACCESS),
                ("scope", "item_read"),
            ],
            400,
            "invalid_grant",
        ),
        (
            vec![
                ("grant_type", EXCHANGE),
                ("subject_token", PARENT),
                ("subject_token_type", ACCESS),
                ("scope", "no_such_scope"),
            ],
            400,
            "invalid_scope",
        ),
        (
            vec![
                ("grant_type", EXCHANGE),
                ("subject_token", PARENT),
                ("subject_token_type", ACCESS),
                ("scope", "manage_groups"),
            ],
            400,
            "invalid_scope",
        ),
        (
            vec![
                ("grant_type", EXCHANGE),
                ("subject_token", PARENT),
                ("subject_token_type", ACCESS),
                ("scope", "item_read"),
                ("resource", "https://api.box.com/2.0/files/99999"),
            ],
            400,
            "invalid_resource",
        ),
        (
            vec![
                ("grant_type", EXCHANGE),
                ("subject_token", PARENT),
                ("subject_token_type", ACCESS),
                ("scope", "item_read"),
                ("resource", "https://api.box.com/2.0/users/1"),
            ],
            400,
            "invalid_resource",
        ),
        (
            vec![
                ("grant_type", EXCHANGE),
                ("subject_token", PARENT),
                ("subject_token_type", ACCESS),
                ("scope", "item_read"),
                ("resource", "not a url"),
            ],
            400,
            "invalid_resource",
        ),
    ];
    for (pairs, status, code) in cases {
        let r = h.post_form("/oauth2/token", &pairs).await;
        assert_eq!(
            r.status,
            status,
            "{pairs:?}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["error"], code, "{pairs:?}");
        assert!(
            r.json()["error_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty())
        );
        assert!(!String::from_utf8_lossy(&r.body).contains(PARENT));
    }
    // A downscoped token cannot be exchanged again.
    let t = h.mint("item_read", None).await;
    let r = h.exchange_as(&t, "item_read", None).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // A body that is not a form.
    let r = h
        .call_json(http::Method::POST, "/oauth2/token", None, "{}")
        .await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (400, Some("invalid_request"))
    );
    h.stop().await;
}

#[tokio::test]
async fn other_grant_types_are_forwarded_or_refused() {
    let h = Harness::start().await;
    let r = h
        .post_form(
            "/oauth2/token",
            &[("grant_type", "refresh_token"), ("refresh_token", "r1")],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["forwarded"], true);
    assert_eq!(r.json()["grant_type"], "refresh_token");
    h.stop().await;

    // Without a token endpoint: unsupported_grant_type.
    let h = Harness::start_with(Opts {
        bare_upstream: true,
        ..Default::default()
    })
    .await;
    let r = h
        .post_form(
            "/oauth2/token",
            &[("grant_type", "refresh_token"), ("refresh_token", "r1")],
        )
        .await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    h.stop().await;
}

#[tokio::test]
async fn expiry_is_capped_by_the_configured_maximum_and_the_parent() {
    let h = Harness::start_with(Opts {
        tokens: "max_expires_in = \"10m\"".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(
        h.exchange("item_read", None).await.json()["expires_in"],
        600
    );
    h.stop().await;
    let h = Harness::start_with(Opts {
        parent: Some(
            "[parent]\nmode = \"probe\"\nscopes = [\"root_readwrite\"]\nlifetime = \"2m\"\n".into(),
        ),
        ..Default::default()
    })
    .await;
    assert_eq!(
        h.exchange("item_read", None).await.json()["expires_in"],
        120
    );
    h.stop().await;
}

#[tokio::test]
async fn introspected_parent_gives_scopes_subject_and_expiry() {
    let now = scopegate::clock::unix_now();
    let (api, addr, stop) = start_api().await;
    api.add_token("intro-parent", "2002");
    api.add_introspectable("intro-parent", "root_readonly", "2002", now - 10, now + 300);
    let h = Harness::start_with(Opts {
        upstream: Some(addr),
        parent: Some("[parent]\nmode = \"introspect\"\n".into()),
        extra: format!("[introspection]\nurl = \"http://{addr}/oauth2/introspect\"\nclient_id = \"c\"\nclient_secret = \"s\"\n"),
        ..Default::default()
    })
    .await;
    let r = h
        .exchange_as("intro-parent", "item_preview", Some("/2.0/files/1001"))
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let exp = r.json()["expires_in"].as_u64().unwrap();
    assert!(
        (295..=300).contains(&exp),
        "capped by the parent's remaining life: {exp}"
    );
    // root_readonly does not imply item_upload.
    let r = h.exchange_as("intro-parent", "item_upload", None).await;
    assert_eq!(r.json()["error"], "invalid_scope");
    // An unknown parent is inactive.
    let r = h.exchange_as("never-issued", "item_read", None).await;
    assert_eq!(r.json()["error"], "invalid_grant");
    h.stop().await;
    let _ = stop.send(());
}

#[tokio::test]
async fn a_token_minted_by_one_instance_works_on_another_with_the_same_keyring() {
    let keyring = scopegate::token::Keyring::generate_toml("shared");
    let a = Harness::start_with(Opts {
        keyring: Some(keyring.clone()),
        ..Default::default()
    })
    .await;
    let b = Harness::start_with(Opts {
        keyring: Some(keyring),
        ..Default::default()
    })
    .await;
    let c = Harness::start().await;
    let t = a.mint("item_read", Some("/2.0/folders/100")).await;
    assert_eq!(b.get("/2.0/folders/100", &t).await.status, 200);
    let r = c.get("/2.0/folders/100", &t).await;
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").contains("invalid_token"));
    assert!(
        c.upstream_paths()
            .iter()
            .all(|p| !p.starts_with("/2.0/folders"))
    );
    a.stop().await;
    b.stop().await;
    c.stop().await;
}

#[tokio::test]
async fn rotation_old_tokens_verify_after_a_new_primary() {
    use base64::Engine;
    let s1 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let s2 = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    let old = format!("primary = \"k1\"\n[[keys]]\nid = \"k1\"\nsecret = \"{s1}\"\n");
    let new = format!(
        "primary = \"k2\"\n[[keys]]\nid = \"k1\"\nsecret = \"{s1}\"\n[[keys]]\nid = \"k2\"\nsecret = \"{s2}\"\n"
    );
    let a = Harness::start_with(Opts {
        keyring: Some(old),
        ..Default::default()
    })
    .await;
    let b = Harness::start_with(Opts {
        keyring: Some(new),
        ..Default::default()
    })
    .await;
    let t_old = a.mint("item_read", None).await;
    assert_eq!(b.get("/2.0/folders/0", &t_old).await.status, 200);
    let t_new = b.mint("item_read", None).await;
    assert!(t_new.starts_with("sg1.k2."));
    assert_eq!(a.get("/2.0/folders/0", &t_new).await.status, 401);
    a.stop().await;
    b.stop().await;
}

/// A parent so long that the minted token would exceed the bearer limit is
/// refused at exchange, never minted into a token that always fails.
#[tokio::test]
async fn parents_too_long_to_downscope_are_refused() {
    let (api, addr, stop) = start_api().await;
    let long = format!("long-parent-{}", "x".repeat(3500));
    api.add_token(&long, "1001");
    let h = Harness::start_with(Opts {
        upstream: Some(addr),
        ..Default::default()
    })
    .await;
    let r = h.exchange_as(&long, "item_read", None).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    h.stop().await;
    let _ = stop.send(());
}

/// The exchange form with these extra pairs.
fn form_with<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut pairs = vec![
        ("grant_type", EXCHANGE),
        ("subject_token", PARENT),
        ("subject_token_type", ACCESS),
        ("scope", "item_read"),
    ];
    pairs.extend_from_slice(extra);
    pairs
}

#[tokio::test]
async fn parameters_the_gateway_does_not_implement_are_refused_not_ignored() {
    let h = Harness::start().await;
    for extra in [
        [("actor_token", "annotator-token")],
        [("actor_token_type", ACCESS)],
        [("audience", "https://api.box.com")],
        [(
            "requested_token_type",
            "urn:ietf:params:oauth:token-type:refresh_token",
        )],
        [("box_subject_type", "user")],
        [("resource_url", "https://api.box.com/2.0/files/1001")],
        [("scopes", "item_read")],
    ] {
        let r = h.post_form("/oauth2/token", &form_with(&extra)).await;
        assert_eq!(
            (r.status, r.json()["error"].as_str()),
            (400, Some("invalid_request")),
            "{extra:?}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(
            r.json()["error_description"]
                .as_str()
                .unwrap()
                .contains(extra[0].0),
            "{extra:?}: the parameter is named"
        );
    }
    // What the Box SDKs send passes: client credentials (RFC 6749 2.3.1)
    // and an access-token `requested_token_type` name no capability.
    for extra in [
        vec![],
        vec![("requested_token_type", ACCESS)],
        vec![("client_id", "app"), ("client_secret", "shh")],
    ] {
        let r = h.post_form("/oauth2/token", &form_with(&extra)).await;
        assert_eq!(
            r.status,
            200,
            "{extra:?}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    h.stop().await;
}

const LINK: &str = "https://app.box.com/s/planlink";

#[tokio::test]
async fn a_shared_link_token_reaches_only_its_item_and_carries_the_link() {
    let h = Harness::start().await;
    h.api.add_shared_link(LINK, "file", "1001", false);
    let r = h
        .post_form("/oauth2/token", &form_with(&[("box_shared_link", LINK)]))
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let j = r.json();
    assert_eq!(j["restricted_to"][0]["object"]["type"], "file");
    assert_eq!(j["restricted_to"][0]["object"]["id"], "1001");
    assert_eq!(j["restricted_to"][0]["object"]["name"], "plan.txt");
    let token = j["access_token"].as_str().unwrap().to_string();
    // The gateway resolved the link with the parent and Box's header.
    let resolve = h
        .api
        .recorded()
        .into_iter()
        .find(|r| r.path_and_query == "/2.0/shared_items")
        .expect("the link was resolved upstream");
    assert_eq!(
        resolve.headers["boxapi"],
        format!("shared_link={LINK}").as_str()
    );
    assert_eq!(
        resolve.headers["authorization"],
        format!("Bearer {PARENT}").as_str()
    );
    // Its item, with the link sent on.
    h.api.clear_recorded();
    assert_eq!(h.get("/2.0/files/1001", &token).await.status, 200);
    let seen = h.api.recorded();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].headers["boxapi"],
        format!("shared_link={LINK}").as_str()
    );
    assert_eq!(
        seen[0].headers["authorization"],
        format!("Bearer {PARENT}").as_str()
    );
    // Nothing else, though the parent reads everything.
    h.api.clear_recorded();
    for other in [
        "/2.0/files/2001",
        "/2.0/folders/100",
        "/2.0/folders/0/items",
    ] {
        assert_eq!(h.get(other, &token).await.status, 403, "{other}");
    }
    assert!(h.api.recorded().is_empty());
    // The holder cannot send a link (or another) of its own.
    let r = h
        .call(
            http::Method::GET,
            "/2.0/files/1001",
            Some(&token),
            &[("boxapi", "shared_link=https://app.box.com/s/other")],
            bytes::Bytes::new(),
        )
        .await;
    assert_eq!(r.status, 403);
    // A token minted without a link sends no BoxApi.
    let plain = h.mint("item_read", Some("/2.0/files/1001")).await;
    h.api.clear_recorded();
    assert_eq!(h.get("/2.0/files/1001", &plain).await.status, 200);
    assert!(!h.api.recorded()[0].headers.contains_key("boxapi"));
    h.stop().await;
}

#[tokio::test]
async fn shared_links_that_cannot_be_honoured_are_refused_with_boxs_codes() {
    let h = Harness::start().await;
    h.api.add_shared_link(LINK, "file", "1001", false);
    h.api
        .add_shared_link("https://app.box.com/s/locked", "file", "2001", true);
    h.api
        .add_shared_link("https://app.box.com/s/bookmark", "web_link", "77", false);
    h.api
        .add_shared_link("https://app.box.com/s/reports", "folder", "110", false);
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![
                ("box_shared_link", LINK),
                ("resource", "https://api.box.com/2.0/files/1001"),
            ],
            "invalid_request",
        ),
        (
            vec![("box_shared_link", "https://app.box.com/s/locked")],
            "invalid_resource",
        ),
        (
            vec![("box_shared_link", "https://app.box.com/s/bookmark")],
            "invalid_resource",
        ),
        (
            vec![("box_shared_link", "https://app.box.com/s/unknown")],
            "invalid_resource",
        ),
        (
            vec![(
                "box_shared_link",
                "https://app.box.com/s/x&shared_link_password=p",
            )],
            "invalid_resource",
        ),
        (vec![("box_shared_link", "not a link")], "invalid_resource"),
        (
            vec![("box_shared_link", LINK), ("shared_link_password", "p")],
            "invalid_request",
        ),
    ];
    for (extra, code) in cases {
        let r = h.post_form("/oauth2/token", &form_with(&extra)).await;
        assert_eq!(
            (r.status, r.json()["error"].as_str()),
            (400, Some(code)),
            "{extra:?}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    // A folder link restricts to the folder and what is below it.
    let r = h
        .post_form(
            "/oauth2/token",
            &form_with(&[("box_shared_link", "https://app.box.com/s/reports")]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let token = r.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(h.get("/2.0/folders/110/items", &token).await.status, 200);
    assert_eq!(h.get("/2.0/files/1003", &token).await.status, 200);
    assert_eq!(h.get("/2.0/files/1001", &token).await.status, 403);
    h.stop().await;
}
