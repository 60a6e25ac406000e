//! Desync: two clients interleaved through the gateway over one pooled
//! upstream connection (`[upstream] max_connections = 1`) while the
//! upstream misbehaves: answers followed by a forged answer, a 204 with a
//! body, a `Connection: close` it does not honour, truncated bodies. No
//! client ever receives a byte of an answer meant for another request.
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The answer to `GET /2.0/files/{id}`: its body names the id. Request `n`
/// (counted across connections) misbehaves in the way `n % 6` picks; a
/// forged answer names `forged` instead, which no client asks for.
fn answer(id: &str, n: usize) -> (Vec<u8>, bool) {
    let body = format!("{{\"id\":\"{id}\"}}");
    let forged = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 15\r\n\r\n{\"id\":\"forged\"}";
    let clean = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let (text, close) = match n % 6 {
        0 => (clean, false),
        // A second, unasked answer right behind the first.
        1 => (format!("{clean}{forged}"), false),
        // Chunked, with a forged answer after the last chunk.
        2 => (
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n{forged}",
                body.len()
            ),
            false,
        ),
        // A 204 carrying a forged answer as its "body".
        3 => (format!("HTTP/1.1 204 No Content\r\n\r\n{forged}"), false),
        // Says close, then keeps talking.
        4 => (
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}{forged}",
                body.len()
            ),
            false,
        ),
        // Promises more than it sends, then closes.
        _ => (
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len() + 10
            ),
            true,
        ),
    };
    (text.into_bytes(), close)
}

/// A raw upstream: the parent's probe is answered cleanly, file requests
/// by [`answer`].
async fn hostile_upstream() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let end = loop {
                        if let Some(at) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            break at + 4;
                        }
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&seen[..end]).to_string();
                    seen.drain(..end);
                    let path = head.split(' ').nth(1).unwrap_or("").to_string();
                    let (out, close) = match path.strip_prefix("/2.0/files/") {
                        Some(id) => answer(id, count.fetch_add(1, Ordering::SeqCst)),
                        None => (
                            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"id\":\"me\"}"
                                .to_vec(),
                            false,
                        ),
                    };
                    if s.write_all(&out).await.is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interleaved_clients_never_get_each_others_answers() {
    let up = hostile_upstream().await;
    let h = Harness::start_edited(
        Opts {
            upstream: Some(up),
            bare_upstream: true,
            ..Opts::default()
        },
        |text| text.replace("timeout = \"5s\"", "timeout = \"5s\"\nmax_connections = 1"),
    )
    .await;
    let token = Arc::new(h.mint("item_read", None).await);
    let base = Arc::new(h.url(""));
    let clients = (0..2).map(|c| {
        let (token, base) = (token.clone(), base.clone());
        tokio::spawn(async move {
            // Each client: its own connection to the gateway, its own ids.
            let client = client();
            let mut outcomes = Vec::new();
            for i in 0..60 {
                let id = format!("{}{i:03}", c + 1);
                let req = Request::get(format!("{base}/2.0/files/{id}"))
                    .header("authorization", format!("Bearer {token}"))
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                // The gateway closes the connection when an answer breaks
                // off; if nothing of it was written yet, the client sees
                // just the close.
                let Ok(resp) = client.request(req).await else {
                    outcomes.push((id, 0, Ok(Bytes::new())));
                    continue;
                };
                let status = resp.status().as_u16();
                let body = resp.into_body().collect().await.map(|b| b.to_bytes());
                outcomes.push((id, status, body));
            }
            outcomes
        })
    });
    let mut served = 0;
    for outcomes in futures_util::future::join_all(clients).await {
        for (id, status, body) in outcomes.unwrap() {
            let own = format!("{{\"id\":\"{id}\"}}");
            match (status, body) {
                (200, Ok(b)) => {
                    assert_eq!(
                        b,
                        Bytes::from(own.clone()),
                        "request {id} got another answer"
                    );
                    served += 1;
                }
                (204, Ok(b)) => assert!(b.is_empty(), "request {id}: a 204 with {b:?}"),
                // Refused or cut off: never someone else's bytes.
                (502, Ok(b)) => assert!(!String::from_utf8_lossy(&b).contains("\"id\"")),
                (200, Err(_)) | (0, _) => {}
                (s, b) => panic!("request {id}: {s} {b:?}"),
            }
        }
    }
    // Most answers are usable; the broken ones are the truncated sixth.
    assert!(served >= 60, "only {served} of 120 requests were served");
    h.stop().await;
}
