//! The upstream side under attack: a raw TCP upstream on 127.0.0.1:0 that
//! answers the proxy's first request with a hostile or broken answer, and
//! every later request cleanly. For each case: what the gateway's client
//! gets (the answer, an error the proxy turns into 502/504, or a body that
//! breaks off, which closes the client's connection), and whether the
//! connection carried the next request. A connection is reused only when
//! its answer ended exactly where its framing said.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, header};
use scopegate::body::{self, Body};
use scopegate::config::{Upstream, UpstreamPool};
use scopegate::metrics::Metrics;
use scopegate::upstream::{Client, Origin, UpstreamError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// What the upstream does after reading a request head.
#[derive(Clone, Copy, Debug)]
enum Act {
    /// Writes these bytes.
    W(&'static [u8]),
    /// Writes these bytes once the test has read the whole answer before.
    Later(&'static [u8]),
    /// Writes `n` pieces of these bytes `every` ms apart (a slow upstream).
    Drip(&'static [u8], usize, u64),
    /// Reads this many bytes of request body, then tells the test.
    Drain(usize),
    /// Closes the connection.
    Close,
    /// Resets the connection (RST, not FIN).
    Reset,
    /// Sends nothing more, ever, and keeps the connection open.
    Stall,
}

use Act::*;

const CLEAN: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nclean";

/// What the gateway's client received for the first request.
#[derive(Debug, PartialEq)]
enum Got {
    /// Status and the whole body.
    Answer(u16, Vec<u8>),
    /// No answer: the proxy answers 502 (`Unreachable`) or 504 (`Timeout`).
    Failed(UpstreamError),
    /// The head came, the body broke off: the client's connection is closed.
    Broken(u16),
}

fn answer(status: u16, body: &str) -> Got {
    Got::Answer(status, body.as_bytes().to_vec())
}

const BAD_GATEWAY: Got = Got::Failed(UpstreamError::Unreachable);

/// One hostile upstream: every request head it read, as (connection number,
/// request line), and the hooks of `Later`.
struct Upstream_ {
    addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<(usize, String)>>>,
    read_done: Arc<Notify>,
    written: Arc<Notify>,
    /// Notified when the gateway closes a connection (the upstream reads its end).
    closed: Arc<Notify>,
    /// Connections accepted.
    accepted: Arc<AtomicUsize>,
}

/// Reads one request head (and a body framed by `content-length`, unless
/// `skip_body`) into `seen`; the request line, or `None` at the end.
async fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>, skip_body: bool) -> Option<String> {
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    buf.drain(..end);
    let line = head.lines().next().unwrap_or("").to_string();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    if !skip_body {
        while buf.len() < length {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..length);
    }
    Some(line)
}

/// An upstream whose connection 0 plays `first` for its first request and
/// `second` for its second; everything else is answered [`CLEAN`].
async fn upstream(first: &'static [Act], second: &'static [Act], skip_body: bool) -> Upstream_ {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (read_done, written) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let closed = Arc::new(Notify::new());
    let accepted = Arc::new(AtomicUsize::new(0));
    let up = Upstream_ {
        addr,
        seen: seen.clone(),
        read_done: read_done.clone(),
        written: written.clone(),
        closed: closed.clone(),
        accepted: accepted.clone(),
    };
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let conn = accepted.fetch_add(1, Ordering::SeqCst);
            let (seen, read_done, written) = (seen.clone(), read_done.clone(), written.clone());
            let closed = closed.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                for nth in 0.. {
                    let skip = skip_body && conn == 0 && nth == 0;
                    let Some(line) = read_request(&mut s, &mut buf, skip).await else {
                        closed.notify_one();
                        return;
                    };
                    seen.lock().unwrap().push((conn, line));
                    let acts: &[Act] = match (conn, nth) {
                        (0, 0) => first,
                        (0, 1) if !second.is_empty() => second,
                        _ => &[W(CLEAN)],
                    };
                    for act in acts {
                        match *act {
                            W(b) => {
                                if s.write_all(b).await.is_err() {
                                    return;
                                }
                            }
                            Later(b) => {
                                read_done.notified().await;
                                let _ = s.write_all(b).await;
                                written.notify_one();
                            }
                            Drip(b, n, every) => {
                                let piece = b.len().div_ceil(n);
                                for part in b.chunks(piece) {
                                    tokio::time::sleep(Duration::from_millis(every)).await;
                                    if s.write_all(part).await.is_err() {
                                        return;
                                    }
                                }
                            }
                            Drain(n) => {
                                let mut chunk = [0u8; 4096];
                                while buf.len() < n {
                                    match s.read(&mut chunk).await {
                                        Ok(0) | Err(_) => return,
                                        Ok(k) => buf.extend_from_slice(&chunk[..k]),
                                    }
                                }
                                buf.drain(..n);
                                written.notify_one();
                            }
                            Close => return,
                            Reset => {
                                let _ = s.set_zero_linger();
                                return;
                            }
                            Stall => std::future::pending::<()>().await,
                        }
                    }
                }
            });
        }
    });
    up
}

fn client(metrics: &Metrics) -> Client {
    client_with(
        metrics,
        UpstreamPool {
            body_idle_timeout: Duration::from_millis(400),
            ..UpstreamPool::default()
        },
    )
}

fn client_with(metrics: &Metrics, pool: UpstreamPool) -> Client {
    Client::new(&Upstream {
        api: "http://127.0.0.1".parse().unwrap(),
        upload: "http://127.0.0.1".parse().unwrap(),
        download: "http://127.0.0.1".parse().unwrap(),
        public_download: "http://127.0.0.1".parse().unwrap(),
        token_endpoint: None,
        revoke_endpoint: None,
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_millis(1500),
        ca_bundle: None,
        pool,
    })
    .unwrap()
    .count_errors_into(metrics.upstream_errors.clone())
}

fn request(o: &Origin, method: &Method, body: Body) -> Request<Body> {
    Request::builder()
        .method(method.clone())
        .uri("/2.0/files/7")
        .header(header::HOST, o.host.clone().unwrap())
        .body(body)
        .unwrap()
}

/// Sends one request; what came back, and the answer's `Content-Length`s.
async fn fetch(c: &Client, o: &Origin, req: Request<Body>) -> (Got, Vec<String>) {
    let resp = match c.send_to(o, req).await {
        Ok(r) => r,
        Err(e) => return (Got::Failed(e), vec![]),
    };
    let status = resp.status().as_u16();
    let lengths = resp
        .headers()
        .get_all(header::CONTENT_LENGTH)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let got = match tokio::time::timeout(
        Duration::from_secs(10),
        body::read_limited(resp.into_body(), 1 << 20),
    )
    .await
    .expect("a body deadline must end a stalled body")
    {
        Ok(b) => Got::Answer(status, b.to_vec()),
        Err(_) => Got::Broken(status),
    };
    (got, lengths)
}

struct Case {
    what: &'static str,
    method: Method,
    /// What connection 0 does with the first request.
    first: &'static [Act],
    /// ... and with a second one, if it gets one (default: clean).
    second: &'static [Act],
    got: Got,
    /// The `Content-Length` values the client sees, when checked.
    lengths: Option<&'static [&'static str]>,
    /// The next request goes over the same connection.
    reused: bool,
}

fn case(what: &'static str, first: &'static [Act], got: Got, reused: bool) -> Case {
    Case {
        what,
        method: Method::GET,
        first,
        second: &[],
        got,
        lengths: None,
        reused,
    }
}

fn cases() -> Vec<Case> {
    let long_head: &'static [u8] = Box::leak(
        format!(
            "HTTP/1.1 200 OK\r\nx-big: {}\r\ncontent-length: 2\r\n\r\nok",
            "a".repeat(70_000)
        )
        .into_bytes()
        .into_boxed_slice(),
    );
    let many_headers: &'static [u8] = Box::leak(
        format!(
            "HTTP/1.1 200 OK\r\n{}content-length: 2\r\n\r\nok",
            (0..200)
                .map(|i| format!("x-h{i}: 1\r\n"))
                .collect::<String>()
        )
        .into_bytes()
        .into_boxed_slice(),
    );
    let storm: &'static [u8] = Box::leak(
        format!(
            "{}HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
            "HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n".repeat(9)
        )
        .into_bytes()
        .into_boxed_slice(),
    );
    let s = |b: &'static [u8]| -> &'static [Act] { Box::leak(vec![W(b)].into_boxed_slice()) };
    let mut v = vec![
        case("clean length", s(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"), answer(200, "ok"), true),
        case(
            "chunked with an extension and a trailer",
            s(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2;x=1\r\nok\r\n0\r\nx-t: 1\r\n\r\n"),
            answer(200, "ok"),
            true,
        ),
        Case {
            lengths: Some(&["2"]),
            ..case("Content-Length: 2, 2 is forwarded as one value", s(b"HTTP/1.1 200 OK\r\ncontent-length: 2, 2\r\n\r\nok"), answer(200, "ok"), true)
        },
        Case {
            lengths: Some(&["2"]),
            ..case("Content-Length twice, equal: one value", s(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 2\r\n\r\nok"), answer(200, "ok"), true)
        },
        case("Content-Length conflicting", s(b"HTTP/1.1 200 OK\r\ncontent-length: 2, 3\r\n\r\nok!"), BAD_GATEWAY, false),
        case("Content-Length with a sign", s(b"HTTP/1.1 200 OK\r\ncontent-length: +2\r\n\r\nok"), BAD_GATEWAY, false),
        case("Content-Length and Transfer-Encoding", s(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"), BAD_GATEWAY, false),
        case("Transfer-Encoding: gzip, chunked is refused, not passed on undeclared", s(b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"), BAD_GATEWAY, false),
        case("Transfer-Encoding: gzip alone", s(b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\nok"), BAD_GATEWAY, false),
        case("Transfer-Encoding: chunked, chunked", s(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"), BAD_GATEWAY, false),
        case("Transfer-Encoding: chunked, gzip", s(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\nok"), BAD_GATEWAY, false),
        case("bytes after the body, same segment", s(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nforged"), answer(200, "ok"), false),
        case(
            "bytes after the body, in a later segment",
            &[W(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"), Later(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nforged")],
            answer(200, "ok"),
            false,
        ),
        case("a 204 carrying a body", s(b"HTTP/1.1 204 No Content\r\ncontent-length: 6\r\n\r\nforged"), answer(204, ""), false),
        case("a 304 carrying a body", s(b"HTTP/1.1 304 Not Modified\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nforged"), answer(304, ""), false),
        Case {
            method: Method::HEAD,
            ..case("an answer to HEAD carrying a body", s(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nforged"), answer(200, ""), false)
        },
        Case {
            method: Method::HEAD,
            lengths: Some(&["6"]),
            ..case("an answer to HEAD: its length passed on, no body", s(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\n"), answer(200, ""), true)
        },
        case("a close in the middle of a chunk", &[W(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel"), Close], Got::Broken(200), false),
        case("a close before the length is reached", &[W(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhel"), Close], Got::Broken(200), false),
        case("a close before the last chunk", &[W(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n"), Close], Got::Broken(200), false),
        case("a close before any answer, on a new connection", &[Close], BAD_GATEWAY, false),
        case("a close in the middle of the head", &[W(b"HTTP/1.1 200 OK\r\ncontent-le"), Close], BAD_GATEWAY, false),
        case("informational answers before the final one", s(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"), answer(200, "ok"), true),
        case("a storm of informational answers", s(storm), BAD_GATEWAY, false),
        case("an unrequested protocol switch", s(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n"), BAD_GATEWAY, false),
        case("an oversized head", s(long_head), BAD_GATEWAY, false),
        case("too many header fields", s(many_headers), BAD_GATEWAY, false),
        case("a status out of range", s(b"HTTP/1.1 2000 Odd\r\ncontent-length: 0\r\n\r\n"), BAD_GATEWAY, false),
        case("not HTTP at all", s(b"SSH-2.0-OpenSSH_9.6\r\n"), BAD_GATEWAY, false),
        case("a chunk size that overflows", s(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nfffffffffffffffff\r\n"), Got::Broken(200), false),
        case("a chunk without its CRLF", s(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nokX\r\n0\r\n\r\n"), Got::Broken(200), false),
        case("a chunk-size line ended by a bare LF", s(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\nok\r\n0\r\n\r\n"), Got::Broken(200), false),
        case("no length: the body runs to the close", &[W(b"HTTP/1.1 200 OK\r\n\r\nall of it"), Close], answer(200, "all of it"), false),
        case("Connection: close", s(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"), answer(200, "ok"), false),
        case("an HTTP/1.0 answer", s(b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok"), answer(200, "ok"), false),
        case("a head that never comes", &[Stall], Got::Failed(UpstreamError::Timeout), false),
        case("a head that never ends", &[W(b"HTTP/1.1 200 OK\r\nx-a: 1\r\n"), Stall], Got::Failed(UpstreamError::Timeout), false),
        case("a body that stalls after the head", &[W(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhel"), Stall], Got::Broken(200), false),
        case("a chunked body that stalls", &[W(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel"), Stall], Got::Broken(200), false),
        case(
            "a slow body that keeps moving is not cut",
            &[Drip(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nslow body!", 6, 150)],
            answer(200, "slow body!"),
            true,
        ),
        case("the connection closed after a clean answer, unannounced", &[W(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"), Close], answer(200, "ok"), false),
    ];
    // RFC 9110 9.2.2: a pooled connection that closes on the next request
    // before any answer byte: an idempotent request goes out again on a new
    // connection (the table's follow-up GET still gets `clean`).
    v.push(Case {
        second: &[Close],
        ..case(
            "a pooled connection reset on the next request: the GET is sent again",
            s(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"),
            answer(200, "ok"),
            true,
        )
    });
    v.push(Case {
        second: &[Reset],
        ..case(
            "a pooled connection reset (RST) on the next request: the GET is sent again",
            s(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"),
            answer(200, "ok"),
            true,
        )
    });
    v
}

#[tokio::test]
async fn hostile_answers_are_framed_refused_or_cut_and_never_reused_unless_clean() {
    let cases = cases();
    assert!(cases.len() >= 30, "the table has {} cases", cases.len());
    let mut failures = Vec::new();
    // Four at a time: the cases that wait on a deadline overlap.
    for group in cases.chunks(4) {
        let runs = group.iter().map(|c| async move { (c, run_case(c).await) });
        for (c, outcome) in futures_util::future::join_all(runs).await {
            if let Err(e) = outcome {
                failures.push(format!("{}: {e}", c.what));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

async fn run_case(c: &Case) -> Result<(), String> {
    let up = upstream(c.first, c.second, false).await;
    let metrics = Metrics::new();
    let cl = client(&metrics);
    let o = Origin::new(&format!("http://{}", up.addr).parse().unwrap(), &cl);
    let (got, lengths) = fetch(&cl, &o, request(&o, &c.method, body::empty())).await;
    up.read_done.notify_one();
    if c.first.iter().any(|a| matches!(a, Later(_))) {
        up.written.notified().await;
    }
    if got != c.got {
        return Err(format!("got {got:?}, want {:?}", c.got));
    }
    if let Some(want) = c.lengths
        && lengths != want
    {
        return Err(format!("Content-Length {lengths:?}, want {want:?}"));
    }
    let stalled = matches!(c.first.last(), Some(Stall)) && matches!(c.got, Got::Broken(_));
    let counted = scopegate_metric(&metrics, "body_timeout");
    if counted != u64::from(stalled) {
        return Err(format!("body_timeout counted {counted}"));
    }
    // The next request: on the same connection only after a clean end.
    let (next, _) = fetch(&cl, &o, request(&o, &Method::GET, body::empty())).await;
    if next != answer(200, "clean") {
        return Err(format!("the next request got {next:?}"));
    }
    let seen = up.seen.lock().unwrap().clone();
    let last = seen.last().map(|(conn, _)| *conn);
    let reused = seen.iter().filter(|(conn, _)| *conn == 0).count() >= 2;
    if reused != c.reused {
        return Err(format!("reused: {reused}, want {} ({seen:?})", c.reused));
    }
    if !c.second.is_empty() {
        let gets = seen.iter().filter(|(_, l)| l.starts_with("GET")).count();
        if gets != 3 || last != Some(1) {
            return Err(format!(
                "want the GET sent again on a new connection: {seen:?}"
            ));
        }
    }
    Ok(())
}

fn scopegate_metric(m: &Metrics, kind: &str) -> u64 {
    m.upstream_errors.with_label_values(&[kind]).get()
}

/// A request that may have been received is not sent twice unless it is
/// idempotent (RFC 9110 9.2.2): the pooled connection closes as the next
/// request arrives, before any answer byte.
#[tokio::test]
async fn only_idempotent_requests_are_sent_again_after_a_pooled_connection_closes() {
    for (method, resent) in [
        (Method::GET, true),
        (Method::HEAD, true),
        (Method::DELETE, true),
        (Method::PUT, true),
        (Method::POST, false),
        (Method::PATCH, false),
    ] {
        let up = upstream(
            &[W(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")],
            &[Close],
            false,
        )
        .await;
        let metrics = Metrics::new();
        let cl = client(&metrics);
        let o = Origin::new(&format!("http://{}", up.addr).parse().unwrap(), &cl);
        let (first, _) = fetch(&cl, &o, request(&o, &Method::GET, body::empty())).await;
        assert_eq!(first, answer(200, "ok"));
        let (got, _) = fetch(&cl, &o, request(&o, &method, body::empty())).await;
        let sent = up
            .seen
            .lock()
            .unwrap()
            .iter()
            .skip(1)
            .filter(|(_, l)| l.starts_with(method.as_str()))
            .count();
        if resent {
            let status = if method == Method::HEAD { "" } else { "clean" };
            assert_eq!(got, answer(200, status), "{method}");
            assert_eq!(sent, 2, "{method} goes out again, once");
        } else {
            assert_eq!(got, BAD_GATEWAY, "{method}");
            assert_eq!(sent, 1, "{method} is never sent twice");
        }
    }
}

/// A body that sends `first`, then waits for `go` before sending `rest`.
fn held_body(first: &'static [u8], rest: &'static [u8], go: Arc<Notify>) -> Body {
    let stream = futures_util::stream::unfold(0, move |step| {
        let go = go.clone();
        async move {
            match step {
                0 => Some((
                    Ok::<_, body::BoxError>(http_body::Frame::data(Bytes::from_static(first))),
                    1,
                )),
                1 => {
                    go.notified().await;
                    Some((Ok(http_body::Frame::data(Bytes::from_static(rest))), 2))
                }
                _ => None,
            }
        }
    });
    body::boxed(http_body_util::StreamBody::new(stream))
}

/// An upload answered early (the upstream refuses it after the head) whose
/// answer ended cleanly is not handed to the next request, even once the
/// rest of the upload went up: the upstream may close such a connection
/// (the next request would meet the reset) or not read the rest at all.
#[tokio::test]
async fn an_early_answer_to_an_upload_does_not_hand_its_connection_back() {
    let up = upstream(
        &[
            W(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 3\r\n\r\nbig"),
            Drain(16),
        ],
        &[],
        true,
    )
    .await;
    let metrics = Metrics::new();
    let cl = client(&metrics);
    let o = Origin::new(&format!("http://{}", up.addr).parse().unwrap(), &cl);
    let go = Arc::new(Notify::new());
    let mut req = request(
        &o,
        &Method::POST,
        held_body(b"part one", b"part two", go.clone()),
    );
    req.headers_mut()
        .insert(header::CONTENT_LENGTH, "16".parse().unwrap());
    let (got, _) = fetch(&cl, &o, req).await;
    assert_eq!(got, answer(413, "big"));
    // The rest of the upload goes up after the answer, and is read.
    go.notify_one();
    up.written.notified().await;
    let (next, _) = fetch(&cl, &o, request(&o, &Method::POST, body::full("x"))).await;
    assert_eq!(next, answer(200, "clean"));
    let seen = up.seen.lock().unwrap().clone();
    assert_eq!(seen.last().map(|s| s.0), Some(1), "{seen:?}");
}

/// An upload whose client stops sending half-way is cut after the body
/// idle timeout, and counted.
#[tokio::test]
async fn an_upload_that_stalls_is_cut_and_counted() {
    let up = upstream(
        &[W(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")],
        &[],
        false,
    )
    .await;
    let metrics = Metrics::new();
    let cl = client(&metrics);
    let o = Origin::new(&format!("http://{}", up.addr).parse().unwrap(), &cl);
    let go = Arc::new(Notify::new());
    let mut req = request(&o, &Method::POST, held_body(b"part one", b"part two", go));
    req.headers_mut()
        .insert(header::CONTENT_LENGTH, "16".parse().unwrap());
    let started = std::time::Instant::now();
    let (got, _) = fetch(&cl, &o, req).await;
    assert!(
        matches!(got, Got::Failed(UpstreamError::Timeout)),
        "{got:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(scopegate_metric(&metrics, "upload_timeout"), 1);
}

/// `max_connections` bounds the connections to an origin: a request beyond
/// it waits for one to come free (and takes it, without a new connection),
/// or gets `Busy` (503) after `connection_wait`.
#[tokio::test]
async fn requests_beyond_max_connections_wait_then_get_503() {
    const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    let up = upstream(&[Later(OK)], &[], false).await;
    let metrics = Metrics::new();
    let cl = Arc::new(client_with(
        &metrics,
        UpstreamPool {
            max_connections: 1,
            connection_wait: Duration::from_millis(300),
            ..UpstreamPool::default()
        },
    ));
    let o = Arc::new(Origin::new(
        &format!("http://{}", up.addr).parse().unwrap(),
        &cl,
    ));
    // The first request holds the only connection until the upstream answers.
    let first = {
        let (cl, o) = (cl.clone(), o.clone());
        tokio::spawn(async move {
            fetch(&cl, &o, request(&o, &Method::GET, body::empty()))
                .await
                .0
        })
    };
    while up.seen.lock().unwrap().is_empty() {
        tokio::task::yield_now().await;
    }
    let started = std::time::Instant::now();
    let (got, _) = fetch(&cl, &o, request(&o, &Method::GET, body::empty())).await;
    assert_eq!(got, Got::Failed(UpstreamError::Busy));
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(o.open_connections(), 1);
    // A waiter gets the connection the moment it goes idle.
    let waiter = {
        let (cl, o) = (cl.clone(), o.clone());
        tokio::spawn(async move {
            fetch(&cl, &o, request(&o, &Method::GET, body::empty()))
                .await
                .0
        })
    };
    up.read_done.notify_one();
    assert_eq!(first.await.unwrap(), answer(200, "ok"));
    assert_eq!(waiter.await.unwrap(), answer(200, "clean"));
    assert_eq!(
        up.accepted.load(Ordering::SeqCst),
        1,
        "no second connection"
    );
}

/// An idle connection is closed by the reaper after `idle_timeout`, with
/// no request coming to find it stale.
#[tokio::test]
async fn idle_connections_are_reaped_after_the_idle_timeout() {
    let up = upstream(&[W(CLEAN)], &[], false).await;
    let metrics = Metrics::new();
    let cl = client_with(
        &metrics,
        UpstreamPool {
            idle_timeout: Duration::from_millis(200),
            ..UpstreamPool::default()
        },
    );
    let o = Origin::new(&format!("http://{}", up.addr).parse().unwrap(), &cl);
    let (got, _) = fetch(&cl, &o, request(&o, &Method::GET, body::empty())).await;
    assert_eq!(got, answer(200, "clean"));
    assert_eq!(o.open_connections(), 1);
    tokio::time::timeout(Duration::from_secs(5), up.closed.notified())
        .await
        .expect("the idle connection was never closed");
    assert_eq!(o.open_connections(), 0);
}
