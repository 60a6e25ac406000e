//! Revocation on a live gateway: each kind, durability across SIGKILL, a torn
//! log tail, compaction, and external (introspected) tokens.

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;

#[tokio::test]
async fn revoking_a_token_refuses_it_on_the_very_next_request() {
    let h = Harness::start().await;
    let t = h.mint("item_read", Some("/2.0/folders/100")).await;
    let other = h.mint("item_read", Some("/2.0/folders/100")).await;
    assert_eq!(h.get("/2.0/folders/100", &t).await.status, 200);
    let r = h.revoke(&t).await;
    assert_eq!(r.status, 200);
    h.api.clear_recorded();
    let r = h.get("/2.0/folders/100", &t).await;
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .contains("error=\"invalid_token\"")
    );
    assert!(
        h.upstream_paths().is_empty(),
        "a revoked token reached the upstream"
    );
    // A sibling token from the same parent is untouched.
    assert_eq!(h.get("/2.0/folders/100", &other).await.status, 200);
    // Unknown tokens get 200 too (RFC 7009).
    assert_eq!(h.revoke("sg1.t1.never-issued").await.status, 200);
    h.stop().await;
}

#[tokio::test]
async fn revoking_the_parent_revokes_the_family_and_tells_the_upstream() {
    let h = Harness::start().await;
    let a = h.mint("item_read", None).await;
    let b = h.mint("item_preview", Some("/2.0/files/1001")).await;
    assert_eq!(h.revoke(PARENT).await.status, 200);
    assert_eq!(h.get("/2.0/folders/0", &a).await.status, 401);
    assert_eq!(h.get("/2.0/files/1001", &b).await.status, 401);
    assert!(
        h.upstream_paths().iter().any(|p| p == "/oauth2/revoke"),
        "parent revocation passed on"
    );
    let r = h.exchange("item_read", None).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    h.stop().await;
}

#[tokio::test]
async fn admin_revokes_by_subject_and_by_cutoff() {
    let h = Harness::start().await;
    let t = h.mint("item_read", None).await;
    let r = h.admin_revoke(json!({"subject": "1001"})).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["revoked"]["kind"], "subject");
    assert_eq!(h.get("/2.0/folders/0", &t).await.status, 401);
    // Tokens issued after the revocation second pass again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fresh = h.mint("item_read", None).await;
    assert_eq!(h.get("/2.0/folders/0", &fresh).await.status, 200);

    // Cut-off: everything issued before now+1 (so this second's tokens too).
    let now = scopegate::clock::unix_now();
    let r = h.admin_revoke(json!({"issued_before": now + 1})).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(h.get("/2.0/folders/0", &fresh).await.status, 401);
    h.stop().await;
}

#[tokio::test]
async fn admin_revocations_need_the_secret_and_a_clear_body() {
    let h = Harness::start().await;
    let t = h.mint("item_read", None).await;
    let hash = scopegate::digest::Digest::of(t.as_bytes()).to_hex();
    let r = h.admin_revoke(json!({"token_hash": hash})).await;
    assert_eq!(r.status, 200);
    assert_eq!(h.get("/2.0/folders/0", &t).await.status, 401);

    for (body, want) in [
        (json!({}), "exactly one"),
        (json!({"subject": "1", "token": "x"}), "exactly one"),
        (json!({"token_hash": "zz"}), "32 hex"),
        (json!({"issued_before": 99999999999u64}), "future"),
        (json!({"subjet": "1"}), "unknown field"),
    ] {
        let r = h.admin_revoke(body.clone()).await;
        assert_eq!(r.status, 400, "{body}");
        assert!(
            r.json()["error"].as_str().unwrap().contains(want),
            "{body}: {}",
            r.json()
        );
    }
    let req = http::Request::post(format!("http://{}/admin/revocations", h.admin))
        .header("authorization", "Bearer wrong-secret-wrong-secret")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            json!({"subject": "1001"}).to_string(),
        )))
        .unwrap();
    assert_eq!(h.send(req).await.status, 401);
    h.stop().await;
}

#[tokio::test]
async fn introspected_tokens_are_revoked_and_evicted_from_the_cache() {
    let now = scopegate::clock::unix_now();
    let (api, addr, stop) = start_api().await;
    api.add_token("ext-token-1", "1001");
    api.add_introspectable("ext-token-1", "item_read", "1001", now - 5, now + 600);
    let h = Harness::start_with(Opts {
        upstream: Some(addr),
        tokens: "external = \"introspect\"".into(),
        extra: format!("[introspection]\nurl = \"http://{addr}/oauth2/introspect\"\n"),
        ..Default::default()
    })
    .await;
    assert_eq!(h.get("/2.0/folders/0", "ext-token-1").await.status, 200);
    assert_eq!(h.get("/2.0/folders/0", "ext-token-1").await.status, 200);
    assert_eq!(
        api.introspection_calls(),
        1,
        "the second call is a cache hit"
    );
    assert_eq!(h.revoke("ext-token-1").await.status, 200);
    assert_eq!(h.get("/2.0/folders/0", "ext-token-1").await.status, 401);
    h.stop().await;
    let _ = stop.send(());
}

#[tokio::test]
async fn a_revocation_survives_sigkill_right_after_the_200() {
    let (_api, addr, stop) = start_api().await;
    let dir = temp_dir("kill9");
    let cfg = write_config(&dir, addr, &Opts::default());
    let mut p = spawn_gateway(&cfg).await;
    let t = p.mint("item_read", None).await;
    assert_eq!(p.get("/2.0/folders/0", &t).await.status, 200);
    let r = p.post_form("/oauth2/revoke", &[("token", &t)]).await;
    assert_eq!(r.status, 200);
    p.child.start_kill().unwrap(); // SIGKILL: no drain, no flush
    p.child.wait().await.unwrap();

    let p = spawn_gateway(&cfg).await;
    assert_eq!(p.get("/2.0/folders/0", &t).await.status, 401);
    let _ = stop.send(());
}

#[tokio::test]
async fn a_torn_log_tail_keeps_every_whole_record() {
    let (_api, addr, stop) = start_api().await;
    let dir = temp_dir("torn");
    let cfg = write_config(&dir, addr, &Opts::default());
    let h = Harness::start_with(Opts {
        dir: Some(dir.clone()),
        upstream: Some(addr),
        ..Default::default()
    })
    .await;
    let keyring = std::fs::read_to_string(dir.join("keyring.toml")).unwrap();
    let a = h.mint("item_read", None).await;
    let b = h.mint("item_read", None).await;
    assert_eq!(h.revoke(&a).await.status, 200);
    assert_eq!(h.revoke(&b).await.status, 200);
    h.stop().await;
    // A crash in the middle of a third append: half a record at the end.
    let log = dir.join("data/revocations.log");
    let whole = std::fs::read(&log).unwrap();
    let mut torn = whole.clone();
    torn.extend_from_slice(&whole[..whole.len() / 3]);
    std::fs::write(&log, &torn).unwrap();

    let _ = cfg;
    let h = Harness::start_with(Opts {
        dir: Some(dir.clone()),
        upstream: Some(addr),
        keyring: Some(keyring),
        ..Default::default()
    })
    .await;
    assert_eq!(h.get("/2.0/folders/0", &a).await.status, 401);
    assert_eq!(h.get("/2.0/folders/0", &b).await.status, 401);
    assert_eq!(
        std::fs::read(&log).unwrap(),
        whole,
        "the torn tail was cut off, the rest kept"
    );
    h.stop().await;
    let _ = stop.send(());
}

#[tokio::test]
async fn compaction_drops_entries_once_their_tokens_expired() {
    let h = Harness::start_with(Opts {
        tokens: "max_expires_in = \"2s\"".into(),
        ..Default::default()
    })
    .await;
    let mut tokens = Vec::new();
    for _ in 0..20 {
        let t = h.mint("item_read", None).await;
        assert_eq!(h.revoke(&t).await.status, 200);
        tokens.push(t);
    }
    let revs = &h.gateway.revocations;
    assert_eq!(revs.state().len(), 20);
    let grown = revs.log_size();
    assert!(grown > 0);
    // Nothing has expired yet: compaction keeps everything.
    revs.compact(scopegate::clock::unix_now()).await.unwrap();
    assert_eq!(revs.state().len(), 20);
    // Once every covered token has expired, the entries and the log go.
    let later = scopegate::clock::unix_now() + 10;
    assert_eq!(revs.compact(later).await.unwrap(), 20);
    assert_eq!(revs.state().len(), 0);
    assert_eq!(revs.log_size(), 0, "log was {grown} bytes");
    h.stop().await;
}

/// A revoked external token that lives longer than any minted token stays
/// revoked until its own expiry, not just the gateway's usual horizon.
#[tokio::test]
async fn a_long_lived_external_token_stays_revoked_until_its_expiry() {
    let now = scopegate::clock::unix_now();
    let exp = now + 5 * 3600;
    let (api, addr, stop) = start_api().await;
    api.add_token("ext-long-1", "1001");
    api.add_introspectable("ext-long-1", "item_read", "1001", now - 5, exp);
    let h = Harness::start_with(Opts {
        upstream: Some(addr),
        tokens: "external = \"introspect\"".into(),
        extra: format!("[introspection]\nurl = \"http://{addr}/oauth2/introspect\"\n"),
        ..Default::default()
    })
    .await;
    assert_eq!(h.revoke("ext-long-1").await.status, 200);
    let kept: Vec<u64> = h
        .gateway
        .revocations
        .state()
        .snapshot()
        .iter()
        .map(|e| e.keep_until)
        .collect();
    assert_eq!(kept, vec![exp]);
    // Compaction an hour and a half later (past the usual horizon) keeps it.
    h.gateway.revocations.compact(now + 5400).await.unwrap();
    assert_eq!(h.gateway.revocations.state().len(), 1);
    assert_eq!(h.get("/2.0/folders/0", "ext-long-1").await.status, 401);
    h.stop().await;
    let _ = stop.send(());
}
