//! Fleet mode against the real Redis of this machine (a stream key of each
//! test's own), with gateway processes as replicas: propagation, a replica
//! that was down, a Redis restart mid-burst, the stale-stream failure modes,
//! and events from other systems.

mod support;

use std::time::Duration;

use support::*;

/// Two replicas (real processes) sharing a keyring and a stream.
async fn replicas(
    url: &str,
    key: &str,
) -> (
    Proc,
    Proc,
    std::path::PathBuf,
    std::path::PathBuf,
    tokio::sync::oneshot::Sender<()>,
) {
    let (_api, addr, stop) = start_api().await;
    let keyring = scopegate::token::Keyring::generate_toml("fleet");
    let mut cfgs = Vec::new();
    for _ in 0..2 {
        let dir = temp_dir("fleet");
        let opts = Opts {
            keyring: Some(keyring.clone()),
            revocation: Some(fleet_section(url, key, "reject")),
            ..Default::default()
        };
        cfgs.push(write_config(&dir, addr, &opts));
    }
    init_fleet(url, key).await;
    let a = spawn_gateway(&cfgs[0]).await;
    let b = spawn_gateway(&cfgs[1]).await;
    wait_ready(a.admin).await;
    wait_ready(b.admin).await;
    (a, b, cfgs[0].clone(), cfgs[1].clone(), stop)
}

/// `scopegate fleet-init`: a new fleet's stream is declared complete.
async fn init_fleet(url: &str, key: &str) {
    scopegate::revocation::epoch::init_fleet(url, key)
        .await
        .expect("fleet-init");
}

/// A config for one more replica: the same files as `from`, its own data directory.
fn another_replica(from: &std::path::Path) -> std::path::PathBuf {
    let dir = temp_dir("fleet");
    let src = from.parent().unwrap();
    for f in ["scopegate.toml", "keyring.toml", "policy.toml"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    dir.join("scopegate.toml")
}

/// Removes a test's stream and epoch keys from the shared Redis.
async fn drop_stream(url: &str, key: &str) {
    let client = redis::Client::open(url).unwrap();
    if let Ok(mut c) = client.get_multiplexed_async_connection().await {
        let _: Result<i64, _> = redis::cmd("DEL")
            .arg(key)
            .arg(format!("{key}:epoch"))
            .query_async(&mut c)
            .await;
    }
}

/// Polls until the token is refused (revocations travel asynchronously).
async fn until_refused(p: &Proc, token: &str) -> Duration {
    let start = std::time::Instant::now();
    loop {
        let s = p.get("/2.0/folders/0", token).await.status;
        if s == 401 {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "still {s} after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_token_revoked_on_one_replica_is_refused_by_the_other() {
    let Some(url) = redis_url() else { return };
    let key = stream_key("ab");
    let (a, b, _, _, stop) = replicas(&url, &key).await;
    let t = a.mint("item_read", None).await;
    assert_eq!(b.get("/2.0/folders/0", &t).await.status, 200);
    let r = a.post_form("/oauth2/revoke", &[("token", &t)]).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        a.get("/2.0/folders/0", &t).await.status,
        401,
        "the revoking replica refuses at once"
    );
    let took = until_refused(&b, &t).await;
    eprintln!("propagated to the other replica in {took:?}");
    let _ = stop.send(());
    drop_stream(&url, &key).await;
}

#[tokio::test]
async fn a_replica_down_during_the_revocation_refuses_it_once_ready() {
    let Some(url) = redis_url() else { return };
    let key = stream_key("down");
    let (a, mut b, _, b_cfg, stop) = replicas(&url, &key).await;
    let t = a.mint("item_read", None).await;
    b.child.start_kill().unwrap();
    b.child.wait().await.unwrap();
    assert_eq!(
        a.post_form("/oauth2/revoke", &[("token", &t)]).await.status,
        200
    );
    let b = spawn_gateway(&b_cfg).await;
    wait_ready(b.admin).await;
    // As soon as it reports ready, the history is applied.
    assert_eq!(b.get("/2.0/folders/0", &t).await.status, 401);
    let _ = stop.send(());
    drop_stream(&url, &key).await;
    drop(a);
}

/// A private redis-server on a free port, so restarting it disturbs nobody.
struct PrivateRedis {
    child: std::process::Child,
}

/// A free port for a private Redis.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl PrivateRedis {
    /// Without persistence: a restart comes back empty.
    fn start(port: u16) -> PrivateRedis {
        PrivateRedis::start_args(port, &["--save", "", "--appendonly", "no"])
    }

    /// With an AOF in `dir`, fsynced on every write: a restart keeps the data.
    fn start_persistent(port: u16, dir: &std::path::Path) -> PrivateRedis {
        PrivateRedis::start_args(
            port,
            &[
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                dir.to_str().unwrap(),
            ],
        )
    }

    fn start_args(port: u16, extra: &[&str]) -> PrivateRedis {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(extra)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        PrivateRedis { child }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test]
async fn a_redis_restart_in_a_burst_of_revocations_loses_none() {
    if redis_url().is_none() {
        return;
    }
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut redis = PrivateRedis::start(port);
    let url = format!("redis://127.0.0.1:{port}/0");
    let key = stream_key("restart");
    let (a, b, _, b_cfg, stop) = replicas(&url, &key).await;
    let mut tokens = Vec::new();
    for _ in 0..40 {
        tokens.push(a.mint("item_read", None).await);
    }
    for (i, t) in tokens.iter().enumerate() {
        if i == 20 {
            // Redis goes away without persistence and comes back empty.
            redis.stop();
            redis = PrivateRedis::start(port);
        }
        // A revoker retries until it gets its 200; the 200 means accepted.
        let mut attempts = 0;
        loop {
            let r = a.post_form("/oauth2/revoke", &[("token", t)]).await;
            if r.status == 200 {
                break;
            }
            assert_eq!(r.status, 503, "a failed revocation says retry");
            attempts += 1;
            assert!(attempts < 200, "Redis never came back");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    for t in &tokens {
        until_refused(&b, t).await;
    }
    // A replica started after the restart learns every revocation too,
    // including those from before it (re-published after the data loss).
    let c = spawn_gateway(&another_replica(&b_cfg)).await;
    wait_ready(c.admin).await;
    for t in &tokens {
        until_refused(&c, t).await;
    }
    let _ = stop.send(());
    drop(redis);
}

async fn readyz(admin: std::net::SocketAddr) -> u16 {
    let req = http::Request::get(format!("http://{admin}/readyz"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    send(&client(), req).await.status
}

/// Before its first catch-up a replica refuses minted tokens whatever
/// `on_stale` says (`serve` is about a stream that goes stale later).
#[tokio::test]
async fn a_replica_that_never_caught_up_refuses_minted_tokens_in_either_mode() {
    let url = format!("redis://127.0.0.1:{}/0", free_port());
    for mode in ["reject", "serve"] {
        let h = Harness::start_with(Opts {
            revocation: Some(fleet_section(&url, "scopegate-test:unreachable", mode)),
            ..Default::default()
        })
        .await;
        let t = h.mint("item_read", None).await;
        let r = h.get("/2.0/folders/0", &t).await;
        assert_eq!(
            r.status,
            503,
            "on_stale = {mode}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(readyz(h.admin).await, 503, "{mode}");
        // A revocation cannot be made durable in the stream: 503, retry.
        assert_eq!(h.revoke(&t).await.status, 503);
        h.stop().await;
    }
}

/// Once caught up, a replica that loses Redis keeps serving with
/// `on_stale = "serve"` and refuses with `"reject"`.
#[tokio::test]
async fn once_caught_up_serve_keeps_serving_and_reject_refuses() {
    if redis_url().is_none() {
        return;
    }
    let port = free_port();
    let mut redis = PrivateRedis::start(port);
    let url = format!("redis://127.0.0.1:{port}/0");
    let key = stream_key("stale");
    init_fleet(&url, &key).await;
    let mut hs = Vec::new();
    for mode in ["reject", "serve"] {
        let h = Harness::start_with(Opts {
            revocation: Some(fleet_section(&url, &key, mode)),
            ..Default::default()
        })
        .await;
        wait_ready(h.admin).await;
        let t = h.mint("item_read", None).await;
        assert_eq!(h.get("/2.0/folders/0", &t).await.status, 200);
        hs.push((mode, h, t));
    }
    redis.stop();
    for (mode, h, t) in &hs {
        while readyz(h.admin).await != 503 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let want = if *mode == "serve" { 200 } else { 503 };
        assert_eq!(h.get("/2.0/folders/0", t).await.status, want, "{mode}");
    }
    for (_, h, _) in hs {
        h.stop().await;
    }
}

/// How Redis loses the history in [`no_replica_serves_a_token_revoked_before_redis_lost_its_data`].
#[derive(Debug, Clone, Copy)]
enum Loss {
    RestartEmpty,
    FlushAll,
    DeleteKey,
}

async fn redis_cmd(url: &str, args: &[&str]) {
    let client = redis::Client::open(url).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    let _: redis::Value = cmd.query_async(&mut c).await.unwrap();
}

/// Asks `p` about `revoked` and `live` until `live` passes (the replica has
/// the history); `revoked` must never pass meanwhile, nor after.
async fn never_serves_until_ready(p: &Proc, revoked: &[String], live: &str) {
    let start = std::time::Instant::now();
    loop {
        for t in revoked {
            let s = p.get("/2.0/folders/0", t).await.status;
            assert!(s == 401 || s == 503, "a revoked token got {s}");
        }
        if p.get("/2.0/folders/0", live).await.status == 200 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the replica never got the history back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for t in revoked {
        assert_eq!(p.get("/2.0/folders/0", t).await.status, 401);
    }
}

/// Redis loses the stream (restart without persistence, FLUSHALL, the key
/// deleted) while replica A is connected; replica C starts right after, with
/// nothing of its own. C never serves a token revoked before the loss: it
/// is not ready until A has noticed the loss and re-published its copy.
#[tokio::test]
async fn no_replica_serves_a_token_revoked_before_redis_lost_its_data() {
    if redis_url().is_none() {
        return;
    }
    for loss in [Loss::RestartEmpty, Loss::FlushAll, Loss::DeleteKey] {
        let port = free_port();
        let mut redis = PrivateRedis::start(port);
        let url = format!("redis://127.0.0.1:{port}/0");
        let key = stream_key("loss");
        let (a, b, _, b_cfg, stop) = replicas(&url, &key).await;
        let mut revoked = Vec::new();
        for _ in 0..20 {
            let t = a.mint("item_read", None).await;
            assert_eq!(
                a.post_form("/oauth2/revoke", &[("token", &t)]).await.status,
                200
            );
            revoked.push(t);
        }
        let live = a.mint("item_read", None).await;
        drop(b);
        match loss {
            Loss::RestartEmpty => {
                redis.stop();
                redis = PrivateRedis::start(port);
            }
            Loss::FlushAll => redis_cmd(&url, &["FLUSHALL"]).await,
            Loss::DeleteKey => redis_cmd(&url, &["DEL", &key]).await,
        }
        let c = spawn_gateway(&another_replica(&b_cfg)).await;
        never_serves_until_ready(&c, &revoked, &live).await;
        // Then the lost history is back in the stream for anyone.
        let d = spawn_gateway(&another_replica(&b_cfg)).await;
        wait_ready(d.admin).await;
        for t in &revoked {
            assert_eq!(d.get("/2.0/folders/0", t).await.status, 401, "{loss:?}");
        }
        drop((a, c, d));
        let _ = stop.send(());
        drop(redis);
    }
}

/// Redis and every replica are killed together; Redis comes back empty. A
/// new replica started first is not ready (it cannot tell an empty history
/// from a lost one) and never serves a revoked token; once an old replica
/// is back with its data directory, it re-publishes and both serve again.
#[tokio::test]
async fn replicas_and_redis_killed_together_lose_nothing() {
    if redis_url().is_none() {
        return;
    }
    let port = free_port();
    let mut redis = PrivateRedis::start(port);
    let url = format!("redis://127.0.0.1:{port}/0");
    let key = stream_key("together");
    let (mut a, mut b, a_cfg, b_cfg, stop) = replicas(&url, &key).await;
    let mut revoked = Vec::new();
    for _ in 0..2 {
        let t = a.mint("item_read", None).await;
        assert_eq!(
            a.post_form("/oauth2/revoke", &[("token", &t)]).await.status,
            200
        );
        revoked.push(t);
    }
    let live = a.mint("item_read", None).await;
    for p in [&mut a, &mut b] {
        p.child.start_kill().unwrap();
        p.child.wait().await.unwrap();
    }
    redis.stop();
    let _redis = PrivateRedis::start(port);
    let logs = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let c = spawn_gateway_logged(&another_replica(&b_cfg), Some(logs.clone())).await;
    // Wait until C has looked at the stream and decided (either way).
    let start = std::time::Instant::now();
    loop {
        let l = logs.lock().unwrap().clone();
        if l.contains("has no epoch") || l.contains("caught up") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "C never read the stream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Nobody has re-seeded yet: C cannot be ready, and refuses minted tokens.
    for t in revoked.iter().chain([&live]) {
        assert_eq!(c.get("/2.0/folders/0", t).await.status, 503);
    }
    assert_eq!(readyz(c.admin).await, 503);
    // A (its data directory) comes back and re-publishes what it knows.
    let a = spawn_gateway(&a_cfg).await;
    never_serves_until_ready(&c, &revoked, &live).await;
    wait_ready(a.admin).await;
    for t in &revoked {
        assert_eq!(a.get("/2.0/folders/0", t).await.status, 401);
    }
    let _ = stop.send(());
}

/// A revocation Redis refused (the revoker got 503) was applied on the
/// replica that answered; the outbox appends it once Redis is back, so the
/// other replicas refuse the token too.
#[tokio::test]
async fn a_revocation_refused_by_redis_reaches_every_replica_once_redis_is_back() {
    if redis_url().is_none() {
        return;
    }
    let port = free_port();
    let data = temp_dir("redis-aof");
    let mut redis = PrivateRedis::start_persistent(port, &data);
    let url = format!("redis://127.0.0.1:{port}/0");
    let key = stream_key("outbox");
    let (a, b, _, _, stop) = replicas(&url, &key).await;
    let t = a.mint("item_read", None).await;
    assert_eq!(b.get("/2.0/folders/0", &t).await.status, 200);
    redis.stop();
    let r = a.post_form("/oauth2/revoke", &[("token", &t)]).await;
    assert_eq!(r.status, 503, "Redis is away: the revoker is told to retry");
    // Redis comes back with its data (no loss: only the outbox can carry it).
    let _redis = PrivateRedis::start_persistent(port, &data);
    wait_ready(b.admin).await;
    until_refused(&b, &t).await;
    let _ = stop.send(());
}

#[tokio::test]
async fn events_from_other_systems_apply_and_malformed_ones_are_skipped() {
    let Some(url) = redis_url() else { return };
    let key = stream_key("ext");
    init_fleet(&url, &key).await;
    let h = Harness::start_with(Opts {
        revocation: Some(fleet_section(&url, &key, "reject")),
        ..Default::default()
    })
    .await;
    wait_ready(h.admin).await;
    let t = h.mint("item_read", None).await;
    assert_eq!(h.get("/2.0/folders/0", &t).await.status, 200);
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    // Garbage first: counted and skipped, never fatal.
    for junk in [
        "not json",
        "{\"v\":2,\"kind\":\"token\"}",
        "{\"v\":1,\"kind\":\"family\",\"family\":\"zz\"}",
    ] {
        let _: String = redis::cmd("XADD")
            .arg(&key)
            .arg("*")
            .arg("event")
            .arg(junk)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let _: String = redis::cmd("XADD")
        .arg(&key)
        .arg("*")
        .arg("other")
        .arg("field")
        .query_async(&mut conn)
        .await
        .unwrap();
    // Then the authorization server revokes the parent's family.
    let fam = scopegate::digest::Digest::of(PARENT.as_bytes()).to_hex();
    let now = scopegate::clock::unix_now();
    let ev = format!(
        "{{\"v\":1,\"kind\":\"family\",\"family\":\"{fam}\",\"revoked_at_ms\":{},\"keep_until\":{},\"source\":\"external\"}}",
        now * 1000,
        now + 3600
    );
    let _: String = redis::cmd("XADD")
        .arg(&key)
        .arg("*")
        .arg("event")
        .arg(ev)
        .query_async(&mut conn)
        .await
        .unwrap();
    let start = std::time::Instant::now();
    while h.get("/2.0/folders/0", &t).await.status != 401 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "external event not applied"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let m = h.metrics().await;
    assert_eq!(
        metric(&m, "scopegate_revocation_stream_malformed_total"),
        4.0
    );
    assert_eq!(
        metric(
            &m,
            "scopegate_revocations_applied_total{kind=\"family\",source=\"external\"}"
        ),
        1.0
    );
    let _: i64 = redis::cmd("DEL")
        .arg(&key)
        .arg(format!("{key}:epoch"))
        .query_async(&mut conn)
        .await
        .unwrap();
    h.stop().await;
}

#[tokio::test]
async fn the_stream_is_trimmed_only_of_expired_entries() {
    let Some(url) = redis_url() else { return };
    let key = stream_key("trim");
    init_fleet(&url, &key).await;
    let h = Harness::start_with(Opts {
        revocation: Some(fleet_section(&url, &key, "reject")),
        tokens: "max_expires_in = \"5s\"".into(),
        ..Default::default()
    })
    .await;
    wait_ready(h.admin).await;
    for _ in 0..5 {
        let t = h.mint("item_read", None).await;
        assert_eq!(h.revoke(&t).await.status, 200);
    }
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let len = |c: &mut redis::aio::MultiplexedConnection| {
        let mut c = c.clone();
        let key = key.clone();
        async move {
            redis::cmd("XLEN")
                .arg(&key)
                .query_async::<i64>(&mut c)
                .await
                .unwrap()
        }
    };
    assert_eq!(len(&mut conn).await, 5);
    let now = scopegate::clock::unix_now();
    h.gateway.revocations.compact(now).await.unwrap();
    assert_eq!(len(&mut conn).await, 5, "nothing expired yet");
    h.gateway.revocations.compact(now + 60).await.unwrap();
    assert_eq!(len(&mut conn).await, 0, "every covered token has expired");
    let _: i64 = redis::cmd("DEL")
        .arg(&key)
        .arg(format!("{key}:epoch"))
        .query_async(&mut conn)
        .await
        .unwrap();
    h.stop().await;
}

/// Benchmark, not a test of speed: prints the propagation delay between two
/// replicas (revocation accepted by A -> applied by B), p50 and p99.
/// `cargo test --release --test fleet -- --ignored --nocapture propagation`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn propagation_delay_across_two_replicas() {
    let Some(url) = redis_url() else { return };
    let key = stream_key("bench");
    init_fleet(&url, &key).await;
    let keyring = scopegate::token::Keyring::generate_toml("bench");
    let opts = || Opts {
        keyring: Some(keyring.clone()),
        revocation: Some(fleet_section(&url, &key, "reject")),
        // 600 OAuth calls from one address, faster than the default limit.
        extra: "[oauth]\nrate_per_second = 100000.0\nrate_burst = 100000\n".into(),
        ..Default::default()
    };
    let a = Harness::start_with(opts()).await;
    let b = Harness::start_with(opts()).await;
    wait_ready(a.admin).await;
    wait_ready(b.admin).await;
    let mut delays = Vec::new();
    for _ in 0..300 {
        let t = a.mint("item_read", None).await;
        let hash = scopegate::digest::Digest::of(t.as_bytes());
        let fam = scopegate::digest::Digest::of(PARENT.as_bytes());
        let start = std::time::Instant::now();
        assert_eq!(a.revoke(&t).await.status, 200);
        let accepted = start.elapsed();
        while !b
            .gateway
            .revocations
            .is_revoked(&hash, &fam, None, Some(u64::MAX))
        {
            tokio::task::yield_now().await;
            assert!(start.elapsed() < Duration::from_secs(5));
        }
        let applied = start.elapsed();
        delays.push((
            applied.as_micros() as u64,
            applied.saturating_sub(accepted).as_micros() as u64,
        ));
    }
    let report = |name: &str, mut v: Vec<u64>| {
        v.sort_unstable();
        let p = |q: f64| v[((v.len() as f64 - 1.0) * q) as usize];
        println!(
            "{name}, {} samples: p50 {} us, p99 {} us, max {} us",
            v.len(),
            p(0.50),
            p(0.99),
            v[v.len() - 1]
        );
    };
    report(
        "revoke sent to A -> applied on B",
        delays.iter().map(|d| d.0).collect(),
    );
    report(
        "A's 200 received -> applied on B (0: B was first)",
        delays.iter().map(|d| d.1).collect(),
    );
    a.stop().await;
    b.stop().await;
    drop_stream(&url, &key).await;
}

/// Benchmark, not a test of speed: a member restarts with 1,000,000 live
/// revocations in its data directory and finds Redis empty. Prints the time
/// to restore its copy, to re-publish it (pipelined), to be ready again, and
/// for a new replica to read the re-seeded stream.
/// `cargo test --release --test fleet -- --ignored --nocapture million`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn restore_and_republish_a_million_revocations() {
    use scopegate::revocation::{Event, RevocationLog, Source, Target};
    if redis_url().is_none() {
        return;
    }
    let n = 1_000_000u64;
    let port = free_port();
    let _redis = PrivateRedis::start(port);
    let url = format!("redis://127.0.0.1:{port}/0");
    let key = stream_key("million");
    let dir = temp_dir("million");
    let data = dir.join("data");
    {
        let (log, _) = RevocationLog::open(&data).unwrap();
        let now = scopegate::clock::unix_now();
        let mut batch = Vec::with_capacity(10_000);
        for i in 0..n {
            batch.push(Event {
                target: Target::Token(scopegate::digest::Digest::of(&i.to_le_bytes())),
                revoked_at_ms: now * 1000,
                keep_until: now + 3600,
                source: Source::Api,
            });
            if batch.len() == 10_000 {
                log.append_batch(&batch).await.unwrap();
                batch.clear();
            }
        }
    }
    scopegate::revocation::epoch::store(&data, "scopegate-epoch:lost").unwrap();
    let opts = || Opts {
        revocation: Some(fleet_section(&url, &key, "reject")),
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let a = Harness::start_with(Opts {
        dir: Some(dir),
        ..opts()
    })
    .await;
    let restored = started.elapsed();
    let stream = a.gateway.revocations.stream().unwrap().clone();
    let until = |what: &str, done: &dyn Fn() -> bool| {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "{what} not done after 300 s"
        );
        done()
    };
    while !until("re-publication", &|| {
        stream
            .republished
            .load(std::sync::atomic::Ordering::Relaxed)
            >= n
    }) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let republished = started.elapsed();
    while !until("ready", &|| a.gateway.is_ready()) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ready = started.elapsed();
    let joined_at = std::time::Instant::now();
    let b = Harness::start_with(opts()).await;
    while !until("new replica", &|| b.gateway.is_ready()) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(b.gateway.revocations.state().len() as u64, n);
    println!(
        "{n} revocations: copy restored in {restored:?}; re-published by {republished:?} \
         ({:?} for the XADDs); member ready again at {ready:?}; a new replica read them all in {:?}",
        republished - restored,
        joined_at.elapsed()
    );
    a.stop().await;
    b.stop().await;
}
