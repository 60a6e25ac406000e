//! Tokens the gateway did not mint (PRODUCT.md section 4): rejected by
//! default, introspected (RFC 7662, cached, one call per burst, fail closed)
//! or passed through, per `[tokens] external`; and CORS for browser callers,
//! refusals included.

mod support;

use bytes::Bytes;
use http::Method;
use scopegate::sample_api::SampleApi;
use support::*;

const ORIGIN: &str = "https://app.example.com";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A gateway with `external = "introspect"` against the sample API's
/// `/oauth2/introspect` (or `introspect_at`, when given), and the sample
/// API it talks to.
async fn introspecting(introspect_at: Option<String>) -> (Harness, SampleApi) {
    let (api, addr, stop) = start_api().await;
    let url = introspect_at.unwrap_or_else(|| format!("http://{addr}/oauth2/introspect"));
    let h = Harness::start_with(Opts {
        upstream: Some(addr),
        tokens: "external = \"introspect\"".into(),
        extra: format!("[introspection]\nurl = \"{url}\"\ninactive_ttl = \"30s\"\n"),
        ..Default::default()
    })
    .await;
    // The harness does not own this API: keep it serving for the test's life.
    std::mem::forget(stop);
    (h, api)
}

/// An external token the sample API accepts and reports active until `exp`.
fn external(api: &SampleApi, token: &str, scope: &str, exp: u64) {
    api.add_token(token, "2002");
    api.add_introspectable(token, scope, "2002", now() - 60, exp);
}

/// Requests the upstream received with this bearer token (introspection
/// calls carry the token in the body, not the header, so they never count).
fn forwarded_with(api: &SampleApi, token: &str) -> Vec<String> {
    let want = format!("Bearer {token}");
    api.recorded()
        .into_iter()
        .filter(|r| {
            r.headers
                .get("authorization")
                .is_some_and(|v| v == want.as_str())
        })
        .map(|r| r.path_and_query)
        .collect()
}

// ---------------------------------------------------------------------------
// external = "reject" (default)
// ---------------------------------------------------------------------------

#[tokio::test]
async fn by_default_an_external_token_is_refused_and_never_forwarded() {
    let h = Harness::start().await;
    // Valid at the upstream, but the gateway does not know it.
    h.api.add_token("ext-token-reject", "2002");
    h.api.clear_recorded();
    let r = h.get("/2.0/users/me", "ext-token-reject").await;
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .contains("error=\"invalid_token\"")
    );
    assert_eq!(r.json()["code"], "invalid_token");
    assert!(h.api.recorded().is_empty(), "{:?}", h.upstream_paths());
    h.stop().await;
}

// ---------------------------------------------------------------------------
// external = "introspect"
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_active_token_is_forwarded_unchanged_and_cached() {
    let (h, api) = introspecting(None).await;
    external(
        &api,
        "ext-active-1",
        "item_read item_download",
        now() + 3600,
    );
    let r = h.get("/2.0/files/1001", "ext-active-1").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["id"], "1001");
    // The upstream sees the external token itself, not the gateway's parent.
    assert_eq!(forwarded_with(&api, "ext-active-1"), ["/2.0/files/1001"]);
    assert_eq!(api.introspection_calls(), 1);
    // Second request: a cache hit.
    let r = h.get("/2.0/files/1001/content", "ext-active-1").await;
    assert_eq!((r.status, &r.body[..]), (200, &b"the plan\n"[..]));
    assert_eq!(api.introspection_calls(), 1);
    h.stop().await;
}

// Two worker threads, so the gateway really handles the burst in parallel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_first_requests_make_one_introspection_call() {
    let (h, api) = introspecting(None).await;
    external(&api, "ext-burst-1", "item_read", now() + 3600);
    let answers =
        futures_util::future::join_all((0..100).map(|_| h.get("/2.0/folders/0", "ext-burst-1")))
            .await;
    assert!(answers.iter().all(|r| r.status == 200));
    assert_eq!(api.introspection_calls(), 1);
    assert_eq!(forwarded_with(&api, "ext-burst-1").len(), 100);
    h.stop().await;
}

#[tokio::test]
async fn an_inactive_answer_is_a_401_and_is_remembered() {
    let (h, api) = introspecting(None).await;
    // The upstream would accept it, but introspection says inactive.
    api.add_token("ext-inactive-1", "2002");
    let r = h.get("/2.0/users/me", "ext-inactive-1").await;
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").contains("invalid_token"));
    assert_eq!(api.introspection_calls(), 1);
    // Within inactive_ttl (30 s here): no second call, same answer.
    let r = h.get("/2.0/users/me", "ext-inactive-1").await;
    assert_eq!(r.status, 401);
    assert_eq!(api.introspection_calls(), 1);
    assert!(forwarded_with(&api, "ext-inactive-1").is_empty());
    h.stop().await;
}

#[tokio::test]
async fn an_active_answer_with_a_past_exp_is_a_401() {
    let (h, api) = introspecting(None).await;
    // An introspection endpoint that says "active" for an expired token
    // must not win over the token's own `exp`.
    external(&api, "ext-expired-1", "item_read", now() - 10);
    let r = h.get("/2.0/users/me", "ext-expired-1").await;
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").contains("invalid_token"));
    assert!(forwarded_with(&api, "ext-expired-1").is_empty());
    h.stop().await;
}

#[tokio::test]
async fn an_introspected_tokens_scopes_are_enforced() {
    let (h, api) = introspecting(None).await;
    external(&api, "ext-preview-1", "item_preview", now() + 3600);
    assert_eq!(h.get("/2.0/files/1001", "ext-preview-1").await.status, 200);
    let r = h.get("/2.0/files/1001/content", "ext-preview-1").await;
    assert_eq!(r.status, 403);
    let challenge = r.header("www-authenticate");
    assert!(challenge.contains("insufficient_scope"), "{challenge}");
    assert!(challenge.contains("item_download"), "{challenge}");
    assert_eq!(forwarded_with(&api, "ext-preview-1"), ["/2.0/files/1001"]);
    h.stop().await;
}

#[tokio::test]
async fn introspection_down_fails_closed_with_503() {
    let dead = format!("http://{}/oauth2/introspect", closed_addr());
    let (h, api) = introspecting(Some(dead)).await;
    api.add_token("ext-unknowable-1", "2002");
    let r = h.get("/2.0/users/me", "ext-unknowable-1").await;
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["status"], 503);
    assert!(forwarded_with(&api, "ext-unknowable-1").is_empty());
    h.stop().await;
}

// ---------------------------------------------------------------------------
// external = "pass_through"
// ---------------------------------------------------------------------------

#[tokio::test]
async fn pass_through_forwards_unknown_tokens_but_not_unknown_routes() {
    let h = Harness::start_with(Opts {
        tokens: "external = \"pass_through\"".into(),
        ..Default::default()
    })
    .await;
    h.api.add_token("ext-pass-1", "2002");
    let r = h.get("/2.0/users/me", "ext-pass-1").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["id"],
        "2002",
        "the upstream answered for the token's own user"
    );
    assert_eq!(forwarded_with(&h.api, "ext-pass-1"), ["/2.0/users/me"]);
    // A token the upstream does not know: forwarded, and the upstream's 401 comes back.
    let r = h.get("/2.0/users/me", "ext-pass-unknown").await;
    assert_eq!(r.status, 401);
    assert_eq!(
        forwarded_with(&h.api, "ext-pass-unknown"),
        ["/2.0/users/me"]
    );
    // A route nobody reviewed stays closed (unmatched = "deny" by default).
    h.api.clear_recorded();
    let r = h.get("/2.0/no_such_endpoint/1", "ext-pass-1").await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["code"], "forbidden");
    assert!(h.api.recorded().is_empty());
    h.stop().await;
}

// ---------------------------------------------------------------------------
// CORS
// ---------------------------------------------------------------------------

async fn preflight(h: &Harness, origin: &str) -> Resp {
    h.call(
        Method::OPTIONS,
        "/2.0/files/1001",
        None,
        &[
            ("origin", origin),
            ("access-control-request-method", "GET"),
            (
                "access-control-request-headers",
                "authorization, content-type",
            ),
        ],
        Bytes::new(),
    )
    .await
}

#[tokio::test]
async fn preflights_are_answered_by_the_gateway_for_configured_origins_only() {
    let h = Harness::start().await;
    let r = preflight(&h, ORIGIN).await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), ORIGIN);
    assert!(r.header("access-control-allow-methods").contains("GET"));
    let allow_headers = r
        .header("access-control-allow-headers")
        .to_ascii_lowercase();
    assert!(allow_headers.contains("authorization"), "{allow_headers}");
    let r = preflight(&h, "https://evil.example.com").await;
    assert_eq!(r.status, 403);
    assert!(r.headers.get("access-control-allow-origin").is_none());
    assert!(
        h.api.recorded().is_empty(),
        "preflights are never forwarded"
    );
    h.stop().await;
}

#[tokio::test]
async fn refusals_to_a_configured_origin_are_readable_by_the_page() {
    let h = Harness::start().await;
    let t = h.mint("item_preview", Some("/2.0/files/1001")).await;
    let with_origin = |origin: &'static str| [("origin", origin)];
    let no_token = h
        .call(
            Method::GET,
            "/2.0/files/1001",
            None,
            &with_origin(ORIGIN),
            Bytes::new(),
        )
        .await;
    let wrong_file = h
        .call(
            Method::GET,
            "/2.0/files/2001",
            Some(&t),
            &with_origin(ORIGIN),
            Bytes::new(),
        )
        .await;
    let allowed = h
        .call(
            Method::GET,
            "/2.0/files/1001",
            Some(&t),
            &with_origin(ORIGIN),
            Bytes::new(),
        )
        .await;
    for (r, status) in [(&no_token, 401), (&wrong_file, 403), (&allowed, 200)] {
        assert_eq!(r.status, status);
        assert_eq!(r.header("access-control-allow-origin"), ORIGIN, "{status}");
        let exposed = r
            .header("access-control-expose-headers")
            .to_ascii_lowercase();
        assert!(exposed.contains("www-authenticate"), "{status}: {exposed}");
    }
    assert!(!no_token.header("www-authenticate").is_empty());
    assert!(
        wrong_file
            .header("www-authenticate")
            .contains("insufficient_scope")
    );

    // An unlisted origin gets the same answers without any CORS grant.
    let other = "https://other.example.com";
    for (path, token, status) in [
        ("/2.0/files/1001", None, 401),
        ("/2.0/files/2001", Some(t.as_str()), 403),
        ("/2.0/files/1001", Some(t.as_str()), 200),
    ] {
        let r = h
            .call(Method::GET, path, token, &[("origin", other)], Bytes::new())
            .await;
        assert_eq!(r.status, status);
        assert!(
            r.headers.get("access-control-allow-origin").is_none(),
            "{status}"
        );
    }
    h.stop().await;
}

/// `unmatched = "pass"` forwards routes missing from the policy for external
/// tokens only; a downscoped token never reaches a route nobody reviewed.
#[tokio::test]
async fn unmatched_pass_forwards_external_tokens_only() {
    let h = Harness::start_edited(
        Opts {
            tokens: "external = \"pass_through\"".into(),
            ..Default::default()
        },
        |text| {
            text.replace(
                "file = \"policy.toml\"",
                "file = \"policy.toml\"\nunmatched = \"pass\"",
            )
        },
    )
    .await;
    h.api.add_token("opaque-external-1", "1001");
    let r = h.get("/2.0/collections", "opaque-external-1").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        h.upstream_paths().last().map(String::as_str),
        Some("/2.0/collections")
    );
    let t = h.mint("root_readwrite", None).await;
    h.api.clear_recorded();
    let r = h.get("/2.0/collections", &t).await;
    assert_eq!(r.status, 403);
    assert!(h.upstream_paths().is_empty());
    h.stop().await;
}
