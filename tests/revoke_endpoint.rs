//! `POST /oauth2/revoke` as a client (or an abuser) sees it: what an
//! unauthenticated caller may revoke, client authentication, the JSON
//! answer, the rate limit of `/oauth2/*`, a cache that broad revocations do
//! not flush, and an upstream pass-on that does not hold the revoker.

mod support;

use std::time::Duration;

use support::*;

const CLIENT_ID: &str = "app-1";
const CLIENT_SECRET: &str = "app-1-secret-0123456789";

fn oauth_section(extra: &str) -> String {
    format!("[oauth]\n{extra}\n")
}

fn with_client(extra: &str) -> String {
    format!(
        "[oauth]\n{extra}\n[[oauth.clients]]\nid = \"{CLIENT_ID}\"\nsecret = \"{CLIENT_SECRET}\"\n"
    )
}

fn unlimited() -> &'static str {
    "rate_per_second = 100000.0\nrate_burst = 100000"
}

async fn hits(h: &Harness) -> f64 {
    metric(&h.metrics().await, "scopegate_grant_cache_hits_total")
}

fn passed_on(h: &Harness) -> usize {
    h.upstream_paths()
        .iter()
        .filter(|p| *p == "/oauth2/revoke")
        .count()
}

/// The flood of the issue: any string, no credentials. Every answer is the
/// RFC 7009 200 with `{}`, and nothing changes: no entry, no log record, no
/// upstream revoke, and a cached grant stays cached.
#[tokio::test]
async fn strings_that_are_not_live_parents_leave_no_trace() {
    let h = Harness::start_with(Opts {
        extra: oauth_section(unlimited()),
        ..Default::default()
    })
    .await;
    let t = h.mint("item_read", None).await;
    assert_eq!(h.get("/2.0/folders/0", &t).await.status, 200);
    assert_eq!(h.get("/2.0/folders/0", &t).await.status, 200);
    let before = hits(&h).await;
    let mut junk: Vec<String> = (0..40).map(|i| format!("not-a-token-{i}")).collect();
    junk.push("sg1.t1.forged".into());
    junk.push("x".repeat(9000));
    for s in &junk {
        let r = h.post_form("/oauth2/revoke", &[("token", s)]).await;
        assert_eq!(r.status, 200);
        assert_eq!(&r.body[..], b"{}", "boxsdk reads a JSON body");
        assert_eq!(r.header("content-type"), "application/json");
    }
    assert_eq!(h.gateway.revocations.state().len(), 0, "no entry");
    assert_eq!(h.gateway.revocations.log_size(), 0, "no log record");
    assert_eq!(passed_on(&h), 0, "nothing passed on to the upstream");
    assert_eq!(h.get("/2.0/folders/0", &t).await.status, 200);
    assert_eq!(hits(&h).await, before + 1.0, "the grant is still cached");
    h.stop().await;
}

/// A minted token needs no credentials: holding it is proof enough.
#[tokio::test]
async fn a_minted_token_revokes_itself_without_credentials() {
    let h = Harness::start_with(Opts {
        extra: with_client(""),
        ..Default::default()
    })
    .await;
    let t = h.mint("item_read", None).await;
    let r = h.post_form("/oauth2/revoke", &[("token", &t)]).await;
    assert_eq!((r.status, &r.body[..]), (200, &b"{}"[..]));
    assert_eq!(h.get("/2.0/folders/0", &t).await.status, 401);
    h.stop().await;
}

/// A live parent (the upstream accepts it) revokes its family without
/// credentials; the other families' cached grants stay cached.
#[tokio::test]
async fn a_live_parent_revokes_its_family_and_only_that_family() {
    let h = Harness::start().await;
    let other = "other-parent-token-0002";
    h.api.add_token(other, "1002");
    let mine = h.mint("item_read", None).await;
    let theirs = {
        let r = h.exchange_as(other, "item_read", None).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.json()["access_token"].as_str().unwrap().to_string()
    };
    for t in [&mine, &mine, &theirs] {
        assert_eq!(h.get("/2.0/folders/0", t).await.status, 200);
    }
    let before = hits(&h).await;
    let r = h.post_form("/oauth2/revoke", &[("token", other)]).await;
    assert_eq!((r.status, &r.body[..]), (200, &b"{}"[..]));
    assert_eq!(h.gateway.revocations.state().len(), 1);
    assert_eq!(passed_on(&h), 1);
    assert_eq!(h.get("/2.0/folders/0", &theirs).await.status, 401);
    assert_eq!(h.get("/2.0/folders/0", &mine).await.status, 200);
    assert_eq!(
        hits(&h).await,
        before + 1.0,
        "the other family's grant was still cached: the revocation flushed nothing"
    );
    h.stop().await;
}

#[tokio::test]
async fn configured_clients_are_authenticated_and_may_revoke_any_string() {
    let h = Harness::start_with(Opts {
        extra: with_client(""),
        ..Default::default()
    })
    .await;
    let junk = "an-unknown-upstream-token";
    for creds in [
        vec![
            ("client_id", CLIENT_ID),
            ("client_secret", "wrong-secret-0123456789"),
        ],
        vec![
            ("client_id", "someone-else"),
            ("client_secret", CLIENT_SECRET),
        ],
        vec![("client_id", CLIENT_ID)],
    ] {
        let mut form = vec![("token", junk)];
        form.extend(creds.iter().copied());
        let r = h.post_form("/oauth2/revoke", &form).await;
        assert_eq!(r.status, 401, "{creds:?}");
        assert_eq!(r.json()["error"], "invalid_client");
        assert!(!String::from_utf8_lossy(&r.body).contains(CLIENT_SECRET));
    }
    assert_eq!(h.gateway.revocations.state().len(), 0);
    // Unauthenticated, the string is checked at the upstream, which does not know it.
    let r = h.post_form("/oauth2/revoke", &[("token", junk)]).await;
    assert_eq!(r.status, 200);
    assert_eq!(h.gateway.revocations.state().len(), 0);
    // An authenticated client is trusted with any string: a family entry.
    let r = h
        .post_form(
            "/oauth2/revoke",
            &[
                ("token", junk),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
            ],
        )
        .await;
    assert_eq!((r.status, &r.body[..]), (200, &b"{}"[..]));
    assert_eq!(h.gateway.revocations.state().len(), 1);
    assert_eq!(passed_on(&h), 1);
    h.stop().await;
}

#[tokio::test]
async fn oauth_endpoints_are_rate_limited_per_client() {
    let h = Harness::start_with(Opts {
        extra: with_client("rate_per_second = 0.01\nrate_burst = 2"),
        ..Default::default()
    })
    .await;
    for _ in 0..2 {
        let r = h.post_form("/oauth2/revoke", &[("token", "junk")]).await;
        assert_eq!(r.status, 200);
    }
    let r = h.post_form("/oauth2/revoke", &[("token", "junk")]).await;
    assert_eq!(r.status, 429);
    let retry: u64 = r.header("retry-after").parse().unwrap();
    assert!(retry >= 1, "Retry-After: {retry}");
    assert_eq!(r.json()["error"], "slow_down");
    // The token endpoint counts against the same address.
    assert_eq!(h.exchange("item_read", None).await.status, 429);
    // An authenticated client has a budget of its own.
    let creds = [
        ("token", "junk"),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
    ];
    assert_eq!(h.post_form("/oauth2/revoke", &creds).await.status, 200);
    assert_eq!(h.post_form("/oauth2/revoke", &creds).await.status, 200);
    assert_eq!(h.post_form("/oauth2/revoke", &creds).await.status, 429);
    let m = h.metrics().await;
    assert_eq!(
        metric(
            &m,
            "scopegate_oauth_requests_total{endpoint=\"revoke\",outcome=\"rate_limited\"}"
        ),
        2.0
    );
    h.stop().await;
}

/// The upstream revoke endpoint never answers: the revoker still gets its
/// 200 (after the deadline), and the pass-on was made.
#[tokio::test]
async fn a_hanging_upstream_revoke_endpoint_does_not_hold_the_revoker() {
    let hang = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hang_addr = hang.local_addr().unwrap();
    let h = Harness::start_edited(
        Opts {
            extra: oauth_section("revoke_pass_on_deadline = \"100ms\""),
            ..Default::default()
        },
        |text| {
            let text = text.replace("timeout = \"5s\"", "timeout = \"120s\"");
            let mut out = String::new();
            for line in text.lines() {
                if line.starts_with("revoke_endpoint") {
                    out.push_str(&format!(
                        "revoke_endpoint = \"http://{hang_addr}/oauth2/revoke\"\n"
                    ));
                } else {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            out
        },
    )
    .await;
    let t = h.mint("item_read", None).await;
    // Without the deadline this would wait for the upstream's 120 s timeout,
    // past the test client's own 30 s.
    let r = h.post_form("/oauth2/revoke", &[("token", PARENT)]).await;
    assert_eq!((r.status, &r.body[..]), (200, &b"{}"[..]));
    assert_eq!(h.get("/2.0/folders/0", &t).await.status, 401);
    let (_conn, _) = tokio::time::timeout(Duration::from_secs(10), hang.accept())
        .await
        .expect("the pass-on was made")
        .unwrap();
    h.stop().await;
}

/// Benchmark, not a test of speed: valid traffic's latency with and without
/// a flood of unknown strings on `/oauth2/revoke` at about 2,000 a second
/// (the figure), with the default rate limits and with the limits
/// lifted. Prints p50/p99 of each. In one process: the flooding client
/// shares the gateway's two worker threads.
/// `cargo test --release --test revoke_endpoint -- --ignored --nocapture flood`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn valid_traffic_latency_under_a_revoke_flood() {
    for (name, extra) in [("default limits", ""), ("no limits", unlimited())] {
        let h = std::sync::Arc::new(
            Harness::start_with(Opts {
                extra: oauth_section(extra),
                ..Default::default()
            })
            .await,
        );
        let t = h.mint("item_read", None).await;
        let measure = |h: std::sync::Arc<Harness>, t: String| async move {
            let mut v = Vec::new();
            for _ in 0..3000 {
                let start = std::time::Instant::now();
                assert_eq!(h.get("/2.0/folders/0", &t).await.status, 200);
                v.push(start.elapsed().as_micros() as u64);
            }
            v.sort_unstable();
            (v[v.len() / 2], v[v.len() * 99 / 100])
        };
        let _ = measure(h.clone(), t.clone()).await; // warm-up
        let quiet = measure(h.clone(), t.clone()).await;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        // The flood: one client, about 2,000 revokes a second.
        let flooders: Vec<_> = (0..1)
            .map(|f| {
                let (h, stop) = (h.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut i = 0u64;
                    let mut tick = tokio::time::interval(Duration::from_millis(1));
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        tick.tick().await;
                        for _ in 0..2 {
                            let s = format!("flood-{f}-{i}");
                            let _ = h.post_form("/oauth2/revoke", &[("token", &s)]).await;
                            i += 1;
                        }
                    }
                    i
                })
            })
            .collect();
        let flooded = measure(h.clone(), t.clone()).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut sent = 0;
        for f in flooders {
            sent += f.await.unwrap();
        }
        println!(
            "{name}: no flood p50 {} us p99 {} us; flood ({sent} revokes) p50 {} us p99 {} us; p99 ratio {:.2}; entries {}",
            quiet.0,
            quiet.1,
            flooded.0,
            flooded.1,
            flooded.1 as f64 / quiet.1 as f64,
            h.gateway.revocations.state().len()
        );
        assert_eq!(h.gateway.revocations.state().len(), 0);
    }
}

/// A cut-off covers tokens issued before it, not a family's later tokens:
/// revoking a parent after a cut-off still records the family.
#[tokio::test]
async fn a_cutoff_does_not_stand_in_for_a_family_revocation() {
    let h = Harness::start().await;
    let now = scopegate::clock::unix_now();
    let r = h
        .admin_revoke(serde_json::json!({"issued_before": now + 1}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        h.post_form("/oauth2/revoke", &[("token", PARENT)])
            .await
            .status,
        200
    );
    assert_eq!(h.gateway.revocations.state().counts().families, 1);
    h.stop().await;
}
