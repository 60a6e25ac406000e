//! Hostile requests written byte by byte to a live gateway over raw TCP,
//! each carrying a VALID token restricted to file 1001 with `item_read`.
//! For every one: the exact status the gateway answers, and proof from the
//! recording upstream that nothing but `GET /2.0/files/1001`, with the parent
//! token, ever reached it. A raw socket is needed because a client library
//! would normalise most of these before they left the test.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use scopegate::sample_api::Recorded;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Every raw read gives up after this, so a hang fails instead of blocking.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The only object the token reaches, and the only path the upstream may see.
const ALLOWED_PATH: &str = "/2.0/files/1001";

/// What one hostile request must produce.
enum Want {
    /// Refused with this status; the upstream saw nothing.
    Refused(u16),
    /// Forwarded as the canonical `GET /2.0/files/1001` with the parent
    /// token, and the recorded request passes this extra check.
    Forwarded(fn(&Recorded) -> Result<(), String>),
}

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    want: Want,
}

/// A request head with the token, `extra` header lines (each ending in
/// CRLF) and no body.
fn get(target: &str, token: &str, extra: &str) -> Vec<u8> {
    req_line(&format!("GET {target} HTTP/1.1"), token, extra)
}

fn req_line(line: &str, token: &str, extra: &str) -> Vec<u8> {
    format!("{line}\r\nHost: gateway.test\r\nAuthorization: Bearer {token}\r\n{extra}\r\n")
        .into_bytes()
}

/// A request whose target holds raw bytes that are not UTF-8 or are
/// control characters.
fn get_raw_target(target: &[u8], token: &str) -> Vec<u8> {
    let mut v = b"GET ".to_vec();
    v.extend_from_slice(target);
    v.extend_from_slice(
        format!(" HTTP/1.1\r\nHost: gateway.test\r\nAuthorization: Bearer {token}\r\n\r\n")
            .as_bytes(),
    );
    v
}

fn no_check(_: &Recorded) -> Result<(), String> {
    Ok(())
}

fn header<'r>(r: &'r Recorded, name: &str) -> Vec<&'r str> {
    r.headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap_or("<not ascii>"))
        .collect()
}

/// The client's `X-Forwarded-*`, `Forwarded` and `X-Real-IP` are replaced by
/// the gateway's own view of the connection, not passed on.
fn forwarding_headers_replaced(r: &Recorded) -> Result<(), String> {
    let xff = header(r, "x-forwarded-for");
    if xff != ["127.0.0.1"] {
        return Err(format!("x-forwarded-for {xff:?}"));
    }
    let xfh = header(r, "x-forwarded-host");
    if xfh != ["gateway.test"] {
        return Err(format!("x-forwarded-host {xfh:?}"));
    }
    if header(r, "x-forwarded-proto") != ["http"] {
        return Err(format!(
            "x-forwarded-proto {:?}",
            header(r, "x-forwarded-proto")
        ));
    }
    for h in ["forwarded", "x-real-ip", "x-forwarded-port"] {
        if r.headers.contains_key(h) {
            return Err(format!("client's {h} passed on"));
        }
    }
    Ok(())
}

/// A client `Host` never picks the upstream: the upstream sees its own
/// address as Host.
fn host_is_upstream(r: &Recorded) -> Result<(), String> {
    let host = header(r, "host");
    if host.len() != 1 || !host[0].starts_with("127.0.0.1:") {
        return Err(format!("host {host:?}"));
    }
    if header(r, "x-forwarded-host").len() > 1 {
        return Err(format!(
            "x-forwarded-host {:?}",
            header(r, "x-forwarded-host")
        ));
    }
    Ok(())
}

/// Hop-by-hop headers, and those `Connection` names, stop at the gateway.
fn hop_by_hop_dropped(r: &Recorded) -> Result<(), String> {
    for h in ["upgrade", "connection", "x-hop", "keep-alive", "te"] {
        if r.headers.contains_key(h) {
            return Err(format!("{h} passed on"));
        }
    }
    Ok(())
}

fn cases(t: &str) -> Vec<Case> {
    use Want::*;
    let c = |name, bytes, want| Case { name, bytes, want };
    let long_token = "A".repeat(10 * 1024);
    vec![
        // Encoded slashes: would turn one segment into two upstream.
        c("encoded slash %2F", get("/2.0/files%2F2001", t, ""), Refused(400)),
        c("encoded slash %2f", get("/2.0/files/1001%2f..%2f2001", t, ""), Refused(400)),
        // Backslashes: some servers read them as slashes.
        c("raw backslash", get("/2.0/files\\2001", t, ""), Refused(400)),
        c("encoded backslash %5C", get("/2.0/files%5C2001", t, ""), Refused(400)),
        c("encoded backslash %5c", get("/2.0/files/1001%5c..%5c2001", t, ""), Refused(400)),
        // Dot segments, raw, encoded and mixed case.
        c("raw dot-dot", get("/2.0/files/1001/../2001", t, ""), Refused(400)),
        c("raw dot", get("/2.0/./files/1001", t, ""), Refused(400)),
        c("encoded dot-dot %2e%2E", get("/2.0/files/1001/%2e%2E/2001", t, ""), Refused(400)),
        c("half-encoded dot-dot .%2e", get("/2.0/files/1001/.%2e/2001", t, ""), Refused(400)),
        c("encoded dot %2E", get("/2.0/files/%2E/1001", t, ""), Refused(400)),
        // Double encodings: a second decoder upstream must find nothing to decode.
        c("double-encoded dot %252e", get("/2.0/files/1001/%252e%252e/2001", t, ""), Refused(400)),
        c("double-encoded slash %252F", get("/2.0/files%252F2001", t, ""), Refused(400)),
        // Empty segments and trailing slashes.
        c("leading //", get("//2.0/files/1001", t, ""), Refused(400)),
        c("inner //", get("/2.0/files//1001", t, ""), Refused(400)),
        c("trailing slash", get("/2.0/files/1001/", t, ""), Refused(400)),
        // NUL and other control bytes.
        c("raw NUL", get_raw_target(b"/2.0/files/1001\0/2001", t), Refused(400)),
        c("encoded NUL %00", get("/2.0/files/1001%00", t, ""), Refused(400)),
        c("raw DEL", get_raw_target(b"/2.0/files/1001\x7f", t), Refused(400)),
        c("raw 0x01", get_raw_target(b"/2.0/files/1001\x01", t), Refused(400)),
        c("encoded CRLF", get("/2.0/files/1001%0d%0aX-Injected:%201", t, ""), Refused(400)),
        c("encoded tab %09", get("/2.0/files/1001%09", t, ""), Refused(400)),
        // Invalid or overlong UTF-8: decoders disagree on what these are.
        c("overlong slash %C0%AF", get("/2.0/files/1001%C0%AF..%C0%AF2001", t, ""), Refused(400)),
        c("overlong dot %E0%80%AE", get("/2.0/files/%E0%80%AE%E0%80%AE/2001", t, ""), Refused(400)),
        c("invalid byte %FF", get("/2.0/files/1001%FF", t, ""), Refused(400)),
        c("raw non-ASCII byte", get_raw_target(b"/2.0/files/1001\xff", t), Refused(400)),
        c("malformed escape", get("/2.0/files/1001%G1", t, ""), Refused(400)),
        // Escapes of the other delimiters a path can hold.
        c("encoded question mark %3F", get("/2.0/files/2001%3F/1001", t, ""), Refused(400)),
        c("encoded hash %23", get("/2.0/files/2001%23/1001", t, ""), Refused(400)),
        c("encoded semicolon %3B", get("/2.0/files/2001%3B/1001", t, ""), Refused(400)),
        // Valid UTF-8 that looks like a slash stays one segment: another id.
        c("fullwidth solidus", get("/2.0/files/1001%EF%BC%8F..%EF%BC%8F2001", t, ""), Refused(403)),
        // Matrix parameters: Tomcat-style servers drop what follows `;`.
        c("matrix param", get("/2.0/files/2001;/1001", t, ""), Refused(400)),
        c("matrix param at end", get("/2.0/files/1001;jsessionid=2001", t, ""), Refused(400)),
        // The client never picks the upstream host.
        c("absolute-form to another object", get("http://evil.example/2.0/files/2001", t, ""), Refused(400)),
        c("absolute-form to the allowed object", get("http://evil.example/2.0/files/1001", t, ""), Refused(400)),
        c("authority-form", req_line("CONNECT evil.example:443 HTTP/1.1", t, ""), Refused(400)),
        c("asterisk-form", req_line("OPTIONS * HTTP/1.1", t, ""), Refused(400)),
        // A fragment is never sent by a browser; the URI parser drops it, so
        // the gateway and the upstream both see the path before `#`.
        c("fragment after the object", get("/2.0/files/1001#/../2001", t, ""), Forwarded(no_check)),
        c("fragment hiding the allowed object", get("/2.0/files/2001#/../1001", t, ""), Refused(403)),
        // Headers asking the upstream to act on another method or path.
        c("X-HTTP-Method-Override", get(ALLOWED_PATH, t, "X-HTTP-Method-Override: DELETE\r\n"), Refused(400)),
        c("X-HTTP-Method", get(ALLOWED_PATH, t, "X-HTTP-Method: DELETE\r\n"), Refused(400)),
        c("X-Method-Override", get(ALLOWED_PATH, t, "X-Method-Override: DELETE\r\n"), Refused(400)),
        c("X-Original-URL", get(ALLOWED_PATH, t, "X-Original-URL: /2.0/files/2001\r\n"), Refused(400)),
        c("X-Rewrite-URL", get(ALLOWED_PATH, t, "X-Rewrite-URL: /2.0/files/2001\r\n"), Refused(400)),
        // Acting as someone else.
        c("As-User", get(ALLOWED_PATH, t, "As-User: 123\r\n"), Refused(403)),
        c("BoxApi shared link", get(ALLOWED_PATH, t, "BoxApi: shared_link=https://x/s/abc\r\n"), Refused(403)),
        // Authorization games.
        c(
            "two Authorization headers",
            get(ALLOWED_PATH, t, "Authorization: Bearer other-token\r\n"),
            Refused(400),
        ),
        c(
            "Connection names Authorization",
            get(ALLOWED_PATH, t, "Connection: Authorization\r\n"),
            Forwarded(no_check),
        ),
        c("lowercase bearer scheme", raw_auth_line(format!("bearer {t}").as_bytes()), Forwarded(no_check)),
        c("two tokens in one header", get(ALLOWED_PATH, &format!("{t} {t}"), ""), Refused(400)),
        c("token then space", get(ALLOWED_PATH, &format!("{t} x"), ""), Refused(400)),
        c("two spaces before the token", get(ALLOWED_PATH, &format!(" {t}"), ""), Refused(400)),
        c("10 kB token", get(ALLOWED_PATH, &long_token, ""), Refused(401)),
        c("token with a quote and brackets", get(ALLOWED_PATH, &format!("{t}\"<>"), ""), Refused(401)),
        c("token with a non-ASCII byte", raw_auth(&[t.as_bytes(), b"\xff"].concat()), Refused(400)),
        c("token with a control byte", raw_auth(&[t.as_bytes(), b"\x01"].concat()), Refused(400)),
        c("token truncated by one", get(ALLOWED_PATH, &t[..t.len() - 1], ""), Refused(401)),
        c("Basic scheme", raw_auth_line(b"Basic dXNlcjpwYXNz"), Refused(401)),
        // Scope and route.
        c("DELETE on the file", req_line(&format!("DELETE {ALLOWED_PATH} HTTP/1.1"), t, ""), Refused(403)),
        c("PUT on the file", req_line(&format!("PUT {ALLOWED_PATH} HTTP/1.1"), t, "Content-Length: 2\r\n"), Refused(403)),
        c("HEAD on the file", req_line(&format!("HEAD {ALLOWED_PATH} HTTP/1.1"), t, ""), Refused(403)),
        c("download with a read token", get("/2.0/files/1001/content", t, ""), Refused(403)),
        c(
            "CORS preflight for DELETE on another file",
            "OPTIONS /2.0/files/2001 HTTP/1.1\r\nHost: gateway.test\r\nOrigin: https://app.example.com\r\nAccess-Control-Request-Method: DELETE\r\n\r\n".to_string()
            .into_bytes(),
            // Answered by the gateway itself (no token needed), never forwarded.
            Refused(204),
        ),
        c("lowercase method", req_line(&format!("get {ALLOWED_PATH} HTTP/1.1"), t, ""), Refused(403)),
        c("upper-case path", get("/2.0/FILES/1001", t, ""), Refused(403)),
        c("another file", get("/2.0/files/2001", t, ""), Refused(403)),
        c("leading zero id", get("/2.0/files/01001", t, ""), Refused(403)),
        c("encoded space after the id", get("/2.0/files/1001%20", t, ""), Refused(403)),
        // Harmless escapes are decoded once, the canonical form is what both sides see.
        c("escaped unreserved characters", get("/2.0/fil%65s/%31%30%30%31", t, ""), Forwarded(no_check)),
        // Framing: anything two parsers could split differently.
        // Transfer-Encoding with Content-Length is refused (RFC 9112 6.3
        // allows it), in either order and any spelling: hyper hides the
        // Content-Length from the gateway, so src/framing.rs reads the head
        // as it was sent.
        c(
            "Content-Length with Transfer-Encoding, smuggling a request",
            get(
                ALLOWED_PATH,
                t,
                &format!(
                    "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /2.0/files/2001 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\n"
                ),
            ),
            // GET /2.0/files/{id} takes no body: a downscoped token's request
            // that declares one is refused.
            Refused(400),
        ),
        c(
            "Transfer-Encoding then Content-Length",
            get(ALLOWED_PATH, t, "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n"),
            Refused(400),
        ),
        c(
            "Transfer-Encoding with Content-Length: 0, lower-case names",
            get(ALLOWED_PATH, t, "content-length: 0\r\ntransfer-encoding: chunked\r\n\r\n0\r\n"),
            Refused(400),
        ),
        c(
            "Transfer-Encoding with two equal Content-Lengths",
            get(ALLOWED_PATH, t, "Content-Length: 5\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 5\r\n\r\n0\r\n"),
            Refused(400),
        ),
        c(
            "chunked body without Content-Length",
            get(ALLOWED_PATH, t, "Transfer-Encoding: chunked\r\n\r\n0\r\n"),
            // Not ambiguous, but this route takes no body.
            Refused(400),
        ),
        c(
            "two different Content-Lengths",
            get(ALLOWED_PATH, t, "Content-Length: 0\r\nContent-Length: 5\r\n"),
            Refused(400),
        ),
        c("negative Content-Length", get(ALLOWED_PATH, t, "Content-Length: -1\r\n"), Refused(400)),
        c("Transfer-Encoding not ending in chunked", get(ALLOWED_PATH, t, "Transfer-Encoding: chunked, identity\r\n"), Refused(400)),
        c("obs-fold continuation", get(ALLOWED_PATH, t, "X-Folded: a\r\n X-Original-URL: /2.0/files/2001\r\n"), Refused(400)),
        c("space before the colon", get(ALLOWED_PATH, t, "X-Original-URL : /2.0/files/2001\r\n"), Refused(400)),
        // Connection-level headers.
        c(
            "client-sent forwarding headers",
            get(
                ALLOWED_PATH,
                t,
                "X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Host: evil.example\r\nX-Forwarded-Proto: https\r\nForwarded: for=10.0.0.1;host=evil.example\r\nX-Real-IP: 10.0.0.1\r\nX-Forwarded-Port: 1\r\n",
            ),
            Forwarded(forwarding_headers_replaced),
        ),
        // Each is replaced whole: none of the client's repeated values survives.
        c(
            "client-sent forwarding headers, each twice",
            get(
                ALLOWED_PATH,
                t,
                "X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\nX-Forwarded-Host: evil2.example\r\n",
            ),
            Forwarded(forwarding_headers_replaced),
        ),
        c(
            "Host naming another host",
            format!("GET {ALLOWED_PATH} HTTP/1.1\r\nHost: evil.example\r\nAuthorization: Bearer {t}\r\n\r\n").into_bytes(),
            Forwarded(host_is_upstream),
        ),
        // Two hosts are two possible sites or tenants upstream.
        c("two Host headers", get(ALLOWED_PATH, t, "Host: evil.example\r\n"), Refused(400)),
        c("two equal Host headers", get(ALLOWED_PATH, t, "Host: gateway.test\r\n"), Refused(400)),
        c("two Host headers, lower-case", get(ALLOWED_PATH, t, "host: evil.example\r\n"), Refused(400)),
        c(
            "Upgrade and Connection-named headers",
            get(ALLOWED_PATH, t, "Connection: Upgrade, X-Hop, Keep-Alive\r\nUpgrade: h2c\r\nX-Hop: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\n"),
            Forwarded(hop_by_hop_dropped),
        ),
        // Request lines outside HTTP/1.1's grammar.
        c(
            "HTTP/1.0 without Host",
            format!("GET {ALLOWED_PATH} HTTP/1.0\r\nAuthorization: Bearer {t}\r\n\r\n").into_bytes(),
            Forwarded(no_check),
        ),
        c(
            "HTTP/1.1 without Host",
            format!("GET {ALLOWED_PATH} HTTP/1.1\r\nAuthorization: Bearer {t}\r\n\r\n").into_bytes(),
            Forwarded(host_is_upstream),
        ),
        c(
            "Transfer-Encoding in HTTP/1.0",
            format!("GET {ALLOWED_PATH} HTTP/1.0\r\nAuthorization: Bearer {t}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n").into_bytes(),
            Refused(400),
        ),
        c("two spaces in the request line", req_line(&format!("GET  {ALLOWED_PATH} HTTP/1.1"), t, ""), Refused(400)),
        c("two targets in the request line", req_line("GET /2.0/files/2001 /2.0/files/1001 HTTP/1.1", t, ""), Refused(400)),
        c("tab in the request line", req_line(&format!("GET\t{ALLOWED_PATH} HTTP/1.1"), t, ""), Refused(400)),
        c("unknown HTTP version", req_line(&format!("GET {ALLOWED_PATH} HTTP/1.2"), t, ""), Refused(400)),
        c("HTTP/2.0 in an HTTP/1 line", req_line(&format!("GET {ALLOWED_PATH} HTTP/2.0"), t, ""), Refused(400)),
        c("over-long target", get(&format!("{ALLOWED_PATH}?{}", "a".repeat(9000)), t, ""), Refused(400)),
        c("over-long head", get(ALLOWED_PATH, t, &format!("X-Big: {}\r\n", "b".repeat(70 * 1024))), Refused(431)),
    ]
}

/// A request for the allowed path whose `Authorization` line is exactly
/// `Bearer ` followed by these raw bytes.
fn raw_auth(token: &[u8]) -> Vec<u8> {
    raw_auth_line(&[b"Bearer ".as_slice(), token].concat())
}

fn raw_auth_line(value: &[u8]) -> Vec<u8> {
    let mut v = format!("GET {ALLOWED_PATH} HTTP/1.1\r\nHost: gateway.test\r\nAuthorization: ")
        .into_bytes();
    v.extend_from_slice(value);
    v.extend_from_slice(b"\r\n\r\n");
    v
}

/// Writes the bytes on a fresh connection and reads the first response:
/// its status (`None` if the connection closed first) and the whole text;
/// `Err` if no complete response came within [`READ_TIMEOUT`].
async fn exchange_raw(addr: SocketAddr, bytes: &[u8]) -> Result<(Option<u16>, String), String> {
    // A response to HEAD has a Content-Length but no body.
    let head_only = bytes.starts_with(b"HEAD ");
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The peer may refuse and close before it has read everything we sent.
    let _ = s.write_all(bytes).await;
    read_response(&mut s, head_only).await
}

/// Reads one response from `s` (see [`exchange_raw`]).
async fn read_response(
    s: &mut TcpStream,
    head_only: bool,
) -> Result<(Option<u16>, String), String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(len) = response_len(&buf, head_only) {
            buf.truncate(len);
            break;
        }
        let n = match tokio::time::timeout(READ_TIMEOUT, s.read(&mut chunk)).await {
            Err(_) => {
                return Err(format!(
                    "no complete response within {READ_TIMEOUT:?}; got {:?}",
                    String::from_utf8_lossy(&buf)
                ));
            }
            Ok(Err(_)) | Ok(Ok(0)) => break,
            Ok(Ok(n)) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .strip_prefix("HTTP/1.")
        .and_then(|t| t.get(2..5))
        .and_then(|s| s.parse().ok());
    Ok((status, text))
}

/// The length of the first complete response in `buf`, if there is one
/// (a head plus a `Content-Length` body, or a chunked body through its end).
fn response_len(buf: &[u8], head_only: bool) -> Option<usize> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    if head_only {
        return Some(head_end);
    }
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let value = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
    };
    if let Some(n) = value("content-length:").and_then(|v| v.parse::<usize>().ok()) {
        return (buf.len() >= head_end + n).then_some(head_end + n);
    }
    if value("transfer-encoding:").is_some_and(|v| v.contains("chunked")) {
        let end = buf[head_end..].windows(5).position(|w| w == b"0\r\n\r\n")?;
        return Some(head_end + end + 5);
    }
    Some(head_end)
}

/// The object check that holds for every case whatever its status: the
/// upstream saw nothing, or only `GET /2.0/files/1001` with the parent token.
fn upstream_saw_only_the_allowed_file(name: &str, rec: &[Recorded]) {
    for r in rec {
        assert_eq!(r.path_and_query, ALLOWED_PATH, "{name}: upstream saw {r:?}");
        assert_eq!(r.method, http::Method::GET, "{name}: upstream saw {r:?}");
        assert_eq!(
            header(r, "authorization"),
            [format!("Bearer {PARENT}")],
            "{name}: upstream saw {r:?}"
        );
    }
}

#[tokio::test]
async fn hostile_requests_never_reach_another_object() {
    let h = Harness::start().await;
    let token = h.mint("item_read", Some(ALLOWED_PATH)).await;
    let cases = cases(&token);
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut names = std::collections::HashSet::new();
    for c in &cases {
        assert!(names.insert(c.name), "duplicate case name {}", c.name);
    }

    let mut failures = Vec::new();
    for c in &cases {
        h.api.clear_recorded();
        let (status, text) = match exchange_raw(h.addr, &c.bytes).await {
            Ok(r) => r,
            Err(hang) => {
                failures.push(format!("{}: {hang}", c.name));
                continue;
            }
        };
        let rec = h.api.recorded();
        upstream_saw_only_the_allowed_file(c.name, &rec);
        let outcome = match &c.want {
            Want::Refused(want) if status != Some(*want) => {
                Err(format!("want {want}, got {status:?}"))
            }
            Want::Refused(_) if !rec.is_empty() => {
                Err(format!("refused but forwarded: {:?}", h.upstream_paths()))
            }
            Want::Refused(_) => Ok(()),
            Want::Forwarded(_) if rec.len() != 1 => Err(format!(
                "status {status:?}, upstream saw {:?}",
                h.upstream_paths()
            )),
            Want::Forwarded(_) if status != Some(200) => {
                Err(format!("forwarded but answered {status:?}"))
            }
            Want::Forwarded(extra) => extra(&rec[0]),
        };
        if let Err(why) = outcome {
            failures.push(format!(
                "{}: {why}\n{}",
                c.name,
                text.lines().take(12).collect::<Vec<_>>().join("\n")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );

    // The gateway is still healthy after all of that.
    assert_eq!(h.get(ALLOWED_PATH, &token).await.status, 200);
    h.stop().await;
}

/// A multipart body with these `(field name, content)` parts, in order.
fn multipart_body(boundary: &str, parts: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (name, content) in parts {
        // Only file parts carry a filename (an `attributes` part with one is
        // refused for that alone).
        let filename = if *name == "attributes" {
            ""
        } else {
            "; filename=\"f\""
        };
        s.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"{filename}\r\n\r\n{content}\r\n"
        ));
    }
    s.push_str(&format!("--{boundary}--\r\n"));
    s
}

/// Names of the items in a folder, asked of the upstream directly.
async fn folder_item_names(h: &Harness, folder: &str) -> Vec<String> {
    let req = http::Request::get(format!("http://{}/2.0/folders/{folder}/items", h.api_addr))
        .header("authorization", format!("Bearer {PARENT}"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let j = h.send(req).await.json();
    j["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("folder {folder}: {j}"))
        .iter()
        .map(|e| e["name"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The gateway checks the upload's first `attributes` part; a later part
/// must not be able to name another folder to the upstream, whose parser
/// takes the last `attributes` it sees before (each) `file` part.
#[tokio::test]
async fn upload_parts_after_the_checked_attributes_cannot_change_the_folder() {
    let h = Harness::start().await;
    let token = h.mint("item_upload", Some("/2.0/folders/100")).await;
    let ok = r#"{"name":"ok.txt","parent":{"id":"100"}}"#;
    let evil = r#"{"name":"evil.txt","parent":{"id":"200"}}"#;
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "second attributes part",
            vec![("attributes", ok), ("attributes", evil), ("file", "x")],
        ),
        (
            "attributes and file again",
            vec![
                ("attributes", ok),
                ("file", "x"),
                ("attributes", evil),
                ("file", "y"),
            ],
        ),
        (
            "a third part of another name",
            vec![("attributes", ok), ("file", "x"), ("other", "z")],
        ),
    ];
    let ct = "multipart/form-data; boundary=BnD";
    for (name, parts) in cases {
        h.api.clear_recorded();
        let body = multipart_body("BnD", &parts);
        let r = h
            .call(
                http::Method::POST,
                "/api/2.0/files/content",
                Some(&token),
                &[("content-type", ct)],
                body,
            )
            .await;
        assert_eq!(
            r.status,
            400,
            "{name}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(h.api.recorded().is_empty(), "{name}: forwarded");
        assert!(
            !folder_item_names(&h, "200")
                .await
                .contains(&"evil.txt".to_string()),
            "{name}: uploaded into 200"
        );
        assert!(
            !folder_item_names(&h, "100")
                .await
                .contains(&"ok.txt".to_string()),
            "{name}: partly uploaded"
        );
    }
    // Two Content-Types could give the upstream another boundary.
    let body = multipart_body("BnD", &[("attributes", ok), ("file", "x")]);
    let r = h
        .call(
            http::Method::POST,
            "/api/2.0/files/content",
            Some(&token),
            &[
                ("content-type", ct),
                ("content-type", "multipart/form-data; boundary=Other"),
            ],
            body,
        )
        .await;
    assert_eq!(
        r.status,
        400,
        "two content-types: {}",
        String::from_utf8_lossy(&r.body)
    );
    // The extra part arriving after the checked part was already forwarded:
    // the gateway cuts the stream before it, so the upstream sees a truncated
    // body and creates nothing, and the client learns it was its fault.
    let first = format!(
        "--BnD\r\nContent-Disposition: form-data; name=\"attributes\"\r\n\r\n{ok}\r\n--BnD\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\nx"
    );
    let second = format!(
        "\r\n--BnD\r\nContent-Disposition: form-data; name=\"attributes\"\r\n\r\n{evil}\r\n--BnD\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\ny\r\n--BnD--\r\n"
    );
    let head = format!(
        "POST /api/2.0/files/content HTTP/1.1\r\nHost: gateway.test\r\nAuthorization: Bearer {token}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n{first}",
        first.len() + second.len()
    );
    h.api.clear_recorded();
    let mut s = TcpStream::connect(h.addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    // Let the gateway check the attributes and start forwarding.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        h.upstream_paths(),
        ["/api/2.0/files/content"],
        "the checked part is streamed on at once"
    );
    let _ = s.write_all(second.as_bytes()).await;
    let (status, answer) = read_response(&mut s, false).await.unwrap();
    assert_eq!(status, Some(400), "streamed extra part: {answer}");
    assert!(
        !folder_item_names(&h, "200")
            .await
            .contains(&"evil.txt".to_string()),
        "streamed: uploaded into 200"
    );
    assert!(
        !folder_item_names(&h, "100")
            .await
            .contains(&"ok.txt".to_string()),
        "streamed: partly uploaded"
    );

    // The shape Box documents still passes.
    let body = multipart_body("BnD", &[("attributes", ok), ("file", "hello")]);
    let r = h
        .call(
            http::Method::POST,
            "/api/2.0/files/content",
            Some(&token),
            &[("content-type", ct)],
            body,
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        folder_item_names(&h, "100")
            .await
            .contains(&"ok.txt".to_string())
    );
    h.stop().await;
}
