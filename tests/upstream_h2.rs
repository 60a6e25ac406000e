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
use scopegate::config::Upstream;
use scopegate::upstream::{Client, Origin};

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

/// An h2 upstream: on its first connection, the first stream is answered
/// and every later one refused with `REFUSED_STREAM`; other connections
/// answer every stream. Counts the streams it saw.
async fn h2_upstream(cert: &std::path::Path, key: &std::path::Path) -> (u16, Arc<AtomicUsize>) {
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
                    if first_conn && nth > 1 {
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
    let (port, streams) = h2_upstream(&cert, &key).await;
    let base: http::Uri = format!("https://127.0.0.1:{port}").parse().unwrap();
    let c = Client::new(&Upstream {
        api: base.clone(),
        upload: base.clone(),
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
