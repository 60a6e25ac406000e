//! Running it: TLS with certificate reload, policy and keyring reload, drain
//! on SIGTERM, metrics after traffic, and logs and metrics free of tokens.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use support::*;

/// A self-signed certificate for `localhost`, made with the openssl CLI.
fn make_cert(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    let ok = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
        ])
        .args([
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "subjectAltName=DNS:localhost",
        ])
        .args([
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "extendedKeyUsage=serverAuth",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl is installed")
        .success();
    assert!(ok);
    (cert, key)
}

fn client_config(trusted: &Path, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(trusted).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(cfg)
}

/// Opens a TLS connection trusting only `trusted`; returns the negotiated ALPN and the stream.
async fn tls_connect(
    addr: std::net::SocketAddr,
    trusted: &Path,
    alpn: &[&[u8]],
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let connector = tokio_rustls::TlsConnector::from(client_config(trusted, alpn));
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

fn get(path: &str, token: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(path)
        .header("host", "localhost")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn tls_serves_h2_and_h1_and_reloads_the_certificate_without_dropping_connections() {
    let dir = temp_dir("tls");
    let (a_cert, a_key) = make_cert(&dir, "cert-a");
    let (b_cert, b_key) = make_cert(&dir, "cert-b");
    std::fs::copy(&a_cert, dir.join("live.pem")).unwrap();
    std::fs::copy(&a_key, dir.join("live.key")).unwrap();
    let h = Harness::start_with(Opts {
        dir: Some(dir.clone()),
        listen: "reload_poll = \"100ms\"".into(),
        extra: "[tls]\ncert = \"live.pem\"\nkey = \"live.key\"\n".into(),
        ..Default::default()
    })
    .await;
    // Mint over TLS (h1) with a client trusting cert A.
    let tls = tls_connect(h.addr, &a_cert, &[b"http/1.1"]).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut h1, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let r = h1.send_request(get("/2.0/folders/0", "x")).await.unwrap();
    assert_eq!(r.status(), 401, "h1 over TLS reaches the gateway");

    // h2 by ALPN on a second connection, kept open across the reload.
    let tls = tls_connect(h.addr, &a_cert, &[b"h2"]).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut h2, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let r = h2.send_request(get("/2.0/folders/0", "x")).await.unwrap();
    assert_eq!(
        (r.version(), r.status().as_u16()),
        (http::Version::HTTP_2, 401)
    );

    // Replace the certificate on disk.
    std::fs::copy(&b_cert, dir.join("live.pem")).unwrap();
    std::fs::copy(&b_key, dir.join("live.key")).unwrap();
    let start = std::time::Instant::now();
    loop {
        if tls_connect(h.addr, &b_cert, &[b"h2"]).await.is_ok() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "new certificate never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        tls_connect(h.addr, &a_cert, &[b"h2"]).await.is_err(),
        "new connections get the new certificate only"
    );
    // The connections opened before the reload keep working.
    let r = h2.send_request(get("/2.0/folders/0", "x")).await.unwrap();
    assert_eq!(r.status(), 401);
    let r = h1.send_request(get("/2.0/folders/0", "x")).await.unwrap();
    assert_eq!(r.status(), 401);

    // A broken certificate file is refused and B keeps serving.
    std::fs::write(dir.join("live.pem"), "not a certificate").unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(tls_connect(h.addr, &b_cert, &[b"http/1.1"]).await.is_ok());
    h.stop().await;
}

#[tokio::test]
async fn a_broken_policy_is_refused_with_a_log_line_and_the_old_one_keeps_serving() {
    let (_api, addr, stop) = start_api().await;
    let dir = temp_dir("reload");
    let cfg = write_config(
        &dir,
        addr,
        &Opts {
            listen: "reload_poll = \"100ms\"".into(),
            ..Default::default()
        },
    );
    let logs = Arc::new(std::sync::Mutex::new(String::new()));
    let p = spawn_gateway_logged(&cfg, Some(logs.clone())).await;
    let t = p.mint("item_read", Some("/2.0/folders/100")).await;
    assert_eq!(p.get("/2.0/folders/100", &t).await.status, 200);

    std::fs::write(
        dir.join("policy.toml"),
        "[[route]]\nname = \"broken\"\nmethod = \"GET\"\n",
    )
    .unwrap();
    let start = std::time::Instant::now();
    while !logs.lock().unwrap().contains("new route policy rejected") {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no log line: {}",
            logs.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        logs.lock().unwrap().contains("policy.toml"),
        "the log names the file"
    );
    assert_eq!(
        p.get("/2.0/folders/100", &t).await.status,
        200,
        "old policy still serving"
    );

    // A good new policy without the folder routes takes effect.
    let policy = box_policy()
        .replace(
            "name = \"folder.get\"",
            "name = \"folder.get.gone\"\n# removed below",
        )
        .replace(
            "path = \"/2.0/folders/{folder_id}\"\nscopes = [\"item_read\"]",
            "path = \"/2.0/folders-removed/{folder_id}\"\nscopes = [\"item_read\"]",
        );
    std::fs::write(dir.join("policy.toml"), policy).unwrap();
    let start = std::time::Instant::now();
    while p.get("/2.0/folders/100", &t).await.status != 403 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "new policy never applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(());
}

#[tokio::test]
async fn a_new_keyring_primary_mints_and_a_dropped_key_stops_verifying() {
    use base64::Engine;
    let s1 = base64::engine::general_purpose::STANDARD.encode([3u8; 32]);
    let s2 = base64::engine::general_purpose::STANDARD.encode([4u8; 32]);
    let h = Harness::start_with(Opts {
        keyring: Some(format!(
            "primary = \"k1\"\n[[keys]]\nid = \"k1\"\nsecret = \"{s1}\"\n"
        )),
        listen: "reload_poll = \"100ms\"".into(),
        ..Default::default()
    })
    .await;
    let old = h.mint("item_read", None).await;
    std::fs::write(
        h.dir.join("keyring.toml"),
        format!("primary = \"k2\"\n[[keys]]\nid = \"k2\"\nsecret = \"{s2}\"\n"),
    )
    .unwrap();
    let start = std::time::Instant::now();
    while h.get("/2.0/folders/0", &old).await.status != 401 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "old key still verifies"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(h.mint("item_read", None).await.starts_with("sg1.k2."));
    h.stop().await;
}

/// A tiny upstream that answers every request after `delay`.
/// An upstream that tells the test when a request has arrived, and answers
/// it only once the test lets it (no timing decides what happens first).
struct HeldUpstream {
    addr: std::net::SocketAddr,
    arrived: tokio::sync::mpsc::UnboundedReceiver<()>,
    release: tokio::sync::watch::Sender<bool>,
}

async fn held_upstream() -> HeldUpstream {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (arrived_tx, arrived) = tokio::sync::mpsc::unbounded_channel();
    let (release, released) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let (arrived_tx, released) = (arrived_tx.clone(), released.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| {
                    let (arrived_tx, mut released) = (arrived_tx.clone(), released.clone());
                    async move {
                        let _ = arrived_tx.send(());
                        let _ = released.wait_for(|go| *go).await;
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                            Bytes::from_static(b"{\"slow\":true}"),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    HeldUpstream {
        addr,
        arrived,
        release,
    }
}

/// A gateway config in front of `upstream` that passes external tokens through.
fn pass_through_config(name: &str, upstream: std::net::SocketAddr) -> std::path::PathBuf {
    write_config(
        &temp_dir(name),
        upstream,
        &Opts {
            tokens: "external = \"pass_through\"".into(),
            ..Default::default()
        },
    )
}

/// SIGTERM to the gateway process; returns its exit code.
async fn terminate(p: &mut Proc) -> Option<i32> {
    let pid = p.child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    tokio::time::timeout(Duration::from_secs(10), p.child.wait())
        .await
        .unwrap()
        .unwrap()
        .code()
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let mut upstream = held_upstream().await;
    let cfg = pass_through_config("drain", upstream.addr);
    let logs = Arc::new(std::sync::Mutex::new(String::new()));
    let mut p = spawn_gateway_logged(&cfg, Some(logs.clone())).await;
    let url = p.url("/2.0/folders/0");
    let in_flight = tokio::spawn(async move {
        let req = http::Request::get(url)
            .header("authorization", "Bearer opaque-external")
            .body(Full::new(Bytes::new()))
            .unwrap();
        send(&client(), req).await
    });
    // The request is at the upstream, held there, when SIGTERM arrives.
    upstream.arrived.recv().await.unwrap();
    let addr = p.addr;
    let pid = p.child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    // New connections are refused while the old request drains (the
    // listener closes on SIGTERM; the upstream still holds the request).
    let start = std::time::Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "listener still open 10 s after SIGTERM"
        );
        tokio::task::yield_now().await;
    }
    assert!(
        !in_flight.is_finished(),
        "the in-flight request was cut off"
    );
    upstream.release.send(true).unwrap();
    let r = in_flight.await.unwrap();
    assert_eq!(r.status, 200, "the in-flight request completed");
    assert_eq!(r.json()["slow"], true);
    let exit = tokio::time::timeout(Duration::from_secs(10), p.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit.code(), Some(0));
    // The drained request's log line was still queued when the drain ended
    // (lines are flushed every 20 ms): it is written before the exit.
    p.logs_complete().await;
    let id = r.header("x-request-id");
    let logs = logs.lock().unwrap();
    assert!(
        logs.contains(&format!("request_id=\"{id}\"")),
        "no log line for {id}: {logs}"
    );
}

#[tokio::test]
async fn scopegate_log_above_info_writes_no_request_lines() {
    let upstream = held_upstream().await;
    upstream.release.send(true).unwrap();
    let cfg = pass_through_config("quiet", upstream.addr);
    let run = |level: &'static str| {
        let cfg = cfg.clone();
        async move {
            let logs = Arc::new(std::sync::Mutex::new(String::new()));
            let mut p =
                spawn_gateway_env(&cfg, Some(logs.clone()), &[("SCOPEGATE_LOG", level)]).await;
            let req = http::Request::get(p.url("/2.0/folders/0"))
                .header("authorization", "Bearer opaque-external")
                .body(Full::new(Bytes::new()))
                .unwrap();
            assert_eq!(send(&client(), req).await.status, 200);
            assert_eq!(terminate(&mut p).await, Some(0));
            p.logs_complete().await;
            logs.lock().unwrap().clone()
        }
    };
    let info = run("info").await;
    assert!(info.contains("request_id="), "{info}");
    let warn = run("warn").await;
    assert!(!warn.contains("request_id="), "{warn}");
}

#[tokio::test]
async fn metrics_move_with_traffic_and_no_token_reaches_logs_or_metrics() {
    let (_api, addr, stop) = start_api().await;
    let dir = temp_dir("metrics");
    let cfg = write_config(
        &dir,
        addr,
        &Opts {
            extra: "[log]\nformat = \"json\"\n".into(),
            ..Default::default()
        },
    );
    let logs = Arc::new(std::sync::Mutex::new(String::new()));
    let mut p = spawn_gateway_logged(&cfg, Some(logs.clone())).await;
    let t = p.mint("item_preview", Some("/2.0/files/1001")).await;
    for _ in 0..3 {
        assert_eq!(p.get("/2.0/files/1001", &t).await.status, 200);
    }
    assert_eq!(p.get("/2.0/files/1001/content", &t).await.status, 403);
    assert_eq!(p.get("/2.0/files/2001", &t).await.status, 403);
    assert_eq!(p.get("/2.0/files/1001", "sg1.t1.forged").await.status, 401);
    assert_eq!(
        p.post_form("/oauth2/revoke", &[("token", &t)]).await.status,
        200
    );
    assert_eq!(p.get("/2.0/files/1001", &t).await.status, 401);

    let req = http::Request::get(format!("http://{}/metrics", p.admin))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let m = String::from_utf8(send(&client(), req).await.body.to_vec()).unwrap();
    let v = |s: &str| metric(&m, s);
    assert_eq!(
        v("scopegate_requests_total{decision=\"allow\",reason=\"ok\",route=\"file.get\"}"),
        3.0,
        "{m}"
    );
    assert_eq!(
        v(
            "scopegate_requests_total{decision=\"deny\",reason=\"insufficient_scope\",route=\"file.download\"}"
        ),
        1.0
    );
    assert_eq!(
        v(
            "scopegate_requests_total{decision=\"deny\",reason=\"outside_restriction\",route=\"file.get\"}"
        ),
        1.0
    );
    assert_eq!(
        v(
            "scopegate_requests_total{decision=\"deny\",reason=\"invalid_token\",route=\"file.get\"}"
        ),
        2.0
    );
    assert_eq!(v("scopegate_tokens_minted_total"), 1.0);
    assert!(v("scopegate_grant_cache_hits_total") >= 2.0);
    assert_eq!(
        v("scopegate_revocations_applied_total{kind=\"token\",source=\"api\"}"),
        1.0
    );
    assert_eq!(
        v("scopegate_oauth_requests_total{endpoint=\"exchange\",outcome=\"ok\"}"),
        1.0
    );
    assert!(m.contains("scopegate_decision_seconds_bucket"));
    assert!(m.contains("scopegate_upstream_seconds_count{route=\"file.get\"} 3"));

    // Every line the gateway wrote, up to its exit.
    assert_eq!(terminate(&mut p).await, Some(0));
    p.logs_complete().await;
    let logs = logs.lock().unwrap().clone();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        lines
            .iter()
            .filter(|l| l["fields"]["message"] == "request")
            .count()
            >= 7,
        "{logs}"
    );
    let short = scopegate::digest::Digest::of(t.as_bytes()).short();
    assert!(
        logs.contains(short.as_str()),
        "requests are correlated by the token's short hash"
    );
    for secret in [t.as_str(), PARENT, &t[t.len() - 24..], "sg1.t1.forged"] {
        assert!(!logs.contains(secret), "a token in the logs: {secret}");
        assert!(!m.contains(secret), "a token in the metrics: {secret}");
    }
    let _ = stop.send(());
}

#[tokio::test]
async fn the_request_id_goes_upstream_and_back() {
    let h = Harness::start().await;
    let t = h.mint("item_read", None).await;
    let r = h.get("/2.0/folders/0", &t).await;
    let id = r.header("x-request-id").to_string();
    assert_eq!(id.len(), 16);
    let up = h.api.recorded().into_iter().last().unwrap();
    assert_eq!(up.headers["x-request-id"], id.as_str());
    let r = h.get("/2.0/files/2001/content", "nope").await;
    assert_eq!(r.json()["request_id"], r.header("x-request-id"));
    h.stop().await;
}
