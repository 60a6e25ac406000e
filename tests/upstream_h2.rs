//! An HTTP/2 upstream (TLS, ALPN h2) that refuses a stream: the request was
//! not processed (RFC 9113 8.7), so the pool sends it again on a new
//! connection instead of answering 502, as it does for an unsent request
//! over HTTP/1.
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, header};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use scopegate::body;
use scopegate::config::{Upstream, UpstreamPool};
use scopegate::upstream::{Client, Origin};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A self-signed certificate for 127.0.0.1, made by the openssl CLI.
fn certificate(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let ok = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    (cert, key)
}

/// What the first connection does after answering its first stream.
#[derive(Clone, Copy)]
enum Then {
    /// Refuses every later stream with `REFUSED_STREAM`.
    Refuse,
    /// Answers every later stream too.
    Serve,
}

/// An h2 upstream: on its first connection, the first stream is answered
/// (`one`), then `then`; other connections answer every stream (`two`).
/// Counts the streams it saw.
async fn h2_upstream(
    cert: &std::path::Path,
    key: &std::path::Path,
    then: Then,
) -> (u16, Arc<AtomicUsize>) {
    let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let streams = Arc::new(AtomicUsize::new(0));
    let seen = streams.clone();
    tokio::spawn(async move {
        let mut conn_no = 0;
        while let Ok((s, _)) = l.accept().await {
            conn_no += 1;
            let first_conn = conn_no == 1;
            let (acceptor, seen) = (acceptor.clone(), seen.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(s).await else {
                    return;
                };
                let Ok(mut conn) = h2::server::handshake(tls).await else {
                    return;
                };
                let mut nth = 0;
                while let Some(Ok((_req, mut respond))) = conn.accept().await {
                    seen.fetch_add(1, Ordering::SeqCst);
                    nth += 1;
                    if first_conn && nth > 1 && matches!(then, Then::Refuse) {
                        respond.send_reset(h2::Reason::REFUSED_STREAM);
                        continue;
                    }
                    let body = if first_conn { "one" } else { "two" };
                    let resp = Response::builder()
                        .status(200)
                        .header(header::CONTENT_LENGTH, body.len())
                        .body(())
                        .unwrap();
                    let mut send = respond.send_response(resp, false).unwrap();
                    let _ = send.send_data(Bytes::from_static(body.as_bytes()), true);
                }
            });
        }
    });
    (port, streams)
}

#[tokio::test]
async fn a_refused_http2_stream_is_sent_again_on_a_new_connection() {
    let dir = std::env::temp_dir().join(format!("sg-h2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = certificate(&dir);
    let (port, streams) = h2_upstream(&cert, &key, Then::Refuse).await;
    let base: http::Uri = format!("https://127.0.0.1:{port}").parse().unwrap();
    let c = Client::new(&Upstream {
        api: base.clone(),
        upload: base.clone(),
        download: base.clone(),
        public_download: base.clone(),
        token_endpoint: None,
        revoke_endpoint: None,
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(5),
        ca_bundle: Some(cert.clone()),
        pool: Default::default(),
    })
    .unwrap();
    let o = Origin::new(&base, &c);
    let get = || {
        Request::get("/2.0/users/me")
            .header(header::HOST, o.host.clone().unwrap())
            .body(body::empty())
            .unwrap()
    };
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let resp = c.send_to(&o, get()).await.expect("an answer, not a 502");
        assert_eq!(resp.status(), 200);
        bodies.push(body::read_limited(resp.into_body(), 1024).await.unwrap());
    }
    assert_eq!(
        bodies,
        [Bytes::from_static(b"one"), Bytes::from_static(b"two")]
    );
    // The refused stream, then the same request on the new connection.
    assert_eq!(streams.load(Ordering::SeqCst), 3);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A TCP relay to `to`; once `dead` is set, its first connection drops
/// every byte both ways and keeps both sockets open, as a lost NAT entry
/// or a dead host does: no FIN, no RST, no answer.
async fn relay(to: u16) -> (u16, Arc<std::sync::atomic::AtomicBool>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let dead = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let kill = dead.clone();
    tokio::spawn(async move {
        let mut first = true;
        while let Ok((client, _)) = l.accept().await {
            let server = tokio::net::TcpStream::connect(("127.0.0.1", to))
                .await
                .unwrap();
            let dead = std::mem::take(&mut first).then(|| kill.clone());
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let d = dead.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 16384];
                while let Ok(n @ 1..) = cr.read(&mut buf).await {
                    if !d.as_ref().is_some_and(|d| d.load(Ordering::SeqCst))
                        && sw.write_all(&buf[..n]).await.is_err()
                    {
                        return;
                    }
                }
            });
            tokio::spawn(async move {
                let mut buf = [0u8; 16384];
                while let Ok(n @ 1..) = sr.read(&mut buf).await {
                    if !dead.as_ref().is_some_and(|d| d.load(Ordering::SeqCst))
                        && cw.write_all(&buf[..n]).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (port, dead)
}

/// An HTTP/2 connection that goes silent is found by the keep-alive ping
/// and closed, so the next request goes to a new connection instead of
/// waiting on the dead one until it times out.
#[tokio::test]
async fn a_silently_dropped_http2_connection_is_found_by_the_ping() {
    let dir = std::env::temp_dir().join(format!("sg-h2-ping-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = certificate(&dir);
    let (port, _) = h2_upstream(&cert, &key, Then::Serve).await;
    let (port, dead) = relay(port).await;
    let base: http::Uri = format!("https://127.0.0.1:{port}").parse().unwrap();
    let c = Client::new(&Upstream {
        api: base.clone(),
        upload: base.clone(),
        download: base.clone(),
        public_download: base.clone(),
        token_endpoint: None,
        revoke_endpoint: None,
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(3),
        ca_bundle: Some(cert.clone()),
        pool: UpstreamPool {
            h2_keepalive: Duration::from_millis(200),
            ..UpstreamPool::default()
        },
    })
    .unwrap();
    let o = Origin::new(&base, &c);
    let get = || {
        Request::get("/2.0/users/me")
            .header(header::HOST, o.host.clone().unwrap())
            .body(body::empty())
            .unwrap()
    };
    let resp = c.send_to(&o, get()).await.unwrap();
    assert_eq!(
        body::read_limited(resp.into_body(), 1024).await.unwrap(),
        "one"
    );
    assert_eq!(o.open_connections(), 1);
    dead.store(true, Ordering::SeqCst);
    let found = tokio::time::timeout(Duration::from_secs(5), async {
        while o.open_connections() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(found.is_ok(), "the dead HTTP/2 connection was never closed");
    let resp = c.send_to(&o, get()).await.expect("a new connection");
    assert_eq!(
        body::read_limited(resp.into_body(), 1024).await.unwrap(),
        "two"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
