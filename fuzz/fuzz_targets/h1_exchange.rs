//! The whole proxied exchange against arbitrary upstream bytes: a real TCP
//! upstream on 127.0.0.1:0 answers the gateway's first request with the
//! fuzz input, then (if the connection is used again) a second request
//! with a clean answer; any new connection gets a clean answer too.
//!
//! `data[0]`: bit 0 sends the first request as HEAD instead of GET; bit 1
//! closes the upstream's side after the input; bit 2 splits the input in
//! two writes at `data[1]`. The rest is what the upstream sends.
//!
//! Checked: whatever the first answer was, the second request gets exactly
//! one of the clean answers (no byte of the first answer leaks into it: no
//! desync), and a connection is reused only when the upstream saw the
//! second request on it; the first answer, when delivered, has a final
//! status and a body no longer than the input.
//!
//! Time is tokio's paused clock, so answers that never end cost no wall time.
#![no_main]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, header};
use libfuzzer_sys::fuzz_target;
use scopegate::body;
use scopegate::config::Upstream;
use scopegate::upstream::{Client, Origin};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECOND: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nsecond";
const FRESH: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfresh";

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap()
    })
}

/// One client for every run: making one reads the system's root
/// certificates, which would cost more than the exchange.
fn client() -> &'static Client {
    static C: std::sync::OnceLock<Client> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        Client::new(&Upstream {
            api: "http://127.0.0.1".parse().unwrap(),
            upload: "http://127.0.0.1".parse().unwrap(),
            token_endpoint: None,
            revoke_endpoint: None,
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
            ca_bundle: None,
            pool: Default::default(),
        })
        .unwrap()
    })
}

/// Reads one request head off `s` into `seen`; false at the end of the stream.
async fn read_head(s: &mut tokio::net::TcpStream, seen: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 2048];
    loop {
        if let Some(at) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            seen.drain(..at + 4);
            return true;
        }
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

async fn get(c: &Client, o: &Origin, method: http::Method) -> Result<(u16, Bytes), ()> {
    let req = Request::builder()
        .method(method)
        .uri("/2.0/users/me")
        .header(header::HOST, o.host.clone().unwrap())
        .body(body::empty())
        .unwrap();
    let resp = c.send_to(o, req).await.map_err(|_| ())?;
    let status = resp.status().as_u16();
    let b = tokio::time::timeout(
        Duration::from_secs(10),
        body::read_limited(resp.into_body(), 1 << 20),
    )
    .await
    .map_err(|_| ())?
    .map_err(|_| ())?;
    Ok((status, b))
}

async fn run(flags: u8, split: usize, answer: Vec<u8>) {
    let answer_len = answer.len();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    // Per connection: whether a second request came on it.
    let second_on_first = Arc::new(Mutex::new(false));
    let flag = second_on_first.clone();
    let server = tokio::spawn(async move {
        let mut n = 0;
        while let Ok((mut s, _)) = l.accept().await {
            n += 1;
            let first = n == 1;
            let flag = flag.clone();
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                if !read_head(&mut s, &mut seen).await {
                    return;
                }
                if !first {
                    let _ = s.write_all(FRESH).await;
                    return;
                }
                let at = if flags & 4 != 0 { split.min(answer.len()) } else { answer.len() };
                let _ = s.write_all(&answer[..at]).await;
                tokio::task::yield_now().await;
                let _ = s.write_all(&answer[at..]).await;
                if flags & 2 != 0 {
                    // Closed: no second request is answered here.
                    let _ = s.shutdown().await;
                    return;
                }
                if read_head(&mut s, &mut seen).await {
                    *flag.lock().unwrap() = true;
                    let _ = s.write_all(SECOND).await;
                }
            });
        }
    });
    let c = client();
    let o = Origin::new(&format!("http://{addr}").parse().unwrap(), &c);
    let method = if flags & 1 != 0 { http::Method::HEAD } else { http::Method::GET };
    if let Ok((status, b)) = get(c, &o, method.clone()).await {
        assert!((200..=599).contains(&status), "{status}");
        assert!(b.len() <= answer_len, "more body than the upstream sent");
        assert!(method == http::Method::GET || b.is_empty(), "a body on HEAD");
    }
    let second = get(c, &o, http::Method::GET).await;
    let reused = *second_on_first.lock().unwrap();
    match (reused, &second) {
        (true, Ok((200, b))) => assert_eq!(&b[..], b"second"),
        (false, Ok((200, b))) => assert_eq!(&b[..], b"fresh"),
        (_, other) => panic!("the second request got {other:?} (reused: {reused})"),
    }
    server.abort();
}

fuzz_target!(|data: &[u8]| {
    let [flags, split, answer @ ..] = data else { return };
    runtime().block_on(run(*flags, *split as usize, answer.to_vec()));
});
