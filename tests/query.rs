//! The query, read once and strictly, and forwarded from what was read
//! (issue 16); tokens in the query, search inside a folder and truthful
//! challenges (issue 17).
//!
//! The hostile table writes each target byte by byte over raw TCP (a client
//! library would normalise most of them), and asserts on the answer and on
//! the exact path and query the recording upstream received.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use http_body_util::Full;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const FILE: &str = "/2.0/files/1001";

/// What one hostile query must produce.
enum Want {
    /// Forwarded; the upstream received exactly this path and query.
    Forwarded(&'static str),
    /// Refused with this status; the upstream received nothing.
    Refused(u16),
}

/// Sends `GET <target>` with the token over a fresh connection; returns the
/// status and the head and body of the answer.
async fn raw_get(addr: SocketAddr, target: &str, token: &str, extra: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {target} HTTP/1.1\r\nHost: gateway.test\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n{extra}\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("no answer in time")
        .unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

fn query_cases() -> Vec<(&'static str, String, Want)> {
    use Want::*;
    let q = |name: &'static str, query: &str, want| (name, format!("{FILE}?{query}"), want);
    vec![
        // Canonical already: forwarded as it came.
        q(
            "plain fields",
            "fields=id,name",
            Forwarded("/2.0/files/1001?fields=id,name"),
        ),
        q(
            "plain pairs",
            "fields=id&limit=5",
            Forwarded("/2.0/files/1001?fields=id&limit=5"),
        ),
        q(
            "canonical escape",
            "q=a%20b",
            Forwarded("/2.0/files/1001?q=a%20b"),
        ),
        // Other spellings of the same pairs: forwarded in the one spelling.
        q(
            "encoded name",
            "f%69elds=id%2Cname",
            Forwarded("/2.0/files/1001?fields=id,name"),
        ),
        q(
            "all-encoded name",
            "%66%69%65%6C%64%73=id",
            Forwarded("/2.0/files/1001?fields=id"),
        ),
        q(
            "plus is a space",
            "q=a+b",
            Forwarded("/2.0/files/1001?q=a%20b"),
        ),
        q(
            "encoded plus",
            "q=a%2bb",
            Forwarded("/2.0/files/1001?q=a%2Bb"),
        ),
        q(
            "lower-case and needless escapes",
            "q=%7e%41",
            Forwarded("/2.0/files/1001?q=~A"),
        ),
        q(
            "empty pairs",
            "a=1&&b=2&",
            Forwarded("/2.0/files/1001?a=1&b=2"),
        ),
        q("name without =", "x", Forwarded("/2.0/files/1001?x=")),
        q(
            "second = in a value",
            "a=b=c",
            Forwarded("/2.0/files/1001?a=b%3Dc"),
        ),
        q(
            "brackets in a value",
            "q=[x]",
            Forwarded("/2.0/files/1001?q=%5Bx%5D"),
        ),
        q(
            "escaped semicolon is data",
            "q=a%3Bb",
            Forwarded("/2.0/files/1001?q=a%3Bb"),
        ),
        q(
            "repeats of other names kept in order",
            "x=2&x=1",
            Forwarded("/2.0/files/1001?x=2&x=1"),
        ),
        q("only separators", "&&", Forwarded(FILE)),
        q("empty query", "", Forwarded(FILE)),
        // Separators two parsers split differently.
        q(
            "semicolon separator",
            "a=1;fields=shared_link",
            Refused(400),
        ),
        q(
            "semicolon in fields",
            "fields=name;shared_link",
            Refused(400),
        ),
        // Escapes decoders disagree on.
        q("malformed escape", "fields=id%zz", Refused(400)),
        q("truncated escape", "a=%2", Refused(400)),
        q("escaped NUL", "fields=id%00shared_link", Refused(400)),
        q("escaped CRLF", "a=%0d%0aX-Injected:%201", Refused(400)),
        q("invalid UTF-8", "a=%ff", Refused(400)),
        q("overlong UTF-8", "a=%c0%ae", Refused(400)),
        // Names that are not one name.
        q("empty name", "=x", Refused(400)),
        q(
            "encoded & in a name",
            "a%26fields=shared_link",
            Refused(400),
        ),
        q("encoded = in a name", "fields%3Dx=1", Refused(400)),
        q("space in a name", "fields+=shared_link", Refused(400)),
        // Names the gateway reads, spelled so a framework reads them anyway.
        q("upper-case FIELDS", "FIELDS=shared_link", Refused(400)),
        q("mixed-case Fields", "Fields=shared_link", Refused(400)),
        q("bracketed fields[]", "fields[]=shared_link", Refused(400)),
        q(
            "bracketed fields[0], encoded",
            "fields%5B0%5D=shared_link",
            Refused(400),
        ),
        q("PHP dot access.token", "access.token=x", Refused(400)),
        q(
            "repeated fields",
            "fields=name&fields=shared_link",
            Refused(400),
        ),
        q(
            "repeated fields, second encoded",
            "fields=name&f%69elds=shared_link",
            Refused(400),
        ),
        q(
            "double-encoded fields value",
            "fields=%2573hared_link",
            Refused(400),
        ),
        // Read as the upstream reads them, then checked: 403 for a read token.
        q(
            "encoded name asking for shared_link",
            "f%69elds=shared_link",
            // Read as `fields`: the field the token may not see is taken out.
            Forwarded("/2.0/files/1001?fields=id,type"),
        ),
        q(
            "all-encoded name asking for download_url",
            "%66ields=download_url",
            Forwarded("/2.0/files/1001?fields=id,type"),
        ),
        q(
            "encoded value",
            "fields=shared%5flink",
            Forwarded("/2.0/files/1001?fields=id,type"),
        ),
        q(
            "plus-spaced list",
            "fields=name+,+shared_link",
            Forwarded("/2.0/files/1001?fields=name"),
        ),
    ]
}

#[tokio::test]
async fn queries_are_read_one_way_and_forwarded_as_read() {
    let h = Harness::start().await;
    let t = h.mint("item_read", Some(FILE)).await;
    let mut failures = Vec::new();
    for (name, target, want) in query_cases() {
        h.api.clear_recorded();
        let (status, text) = raw_get(h.addr, &target, &t, "").await;
        let seen = h.upstream_paths();
        let challenged = text
            .to_ascii_lowercase()
            .contains("\r\nwww-authenticate: bearer");
        let ok = match &want {
            Want::Forwarded(path) => status == 200 && seen == [path.to_string()],
            Want::Refused(code) => status == *code && seen.is_empty() && challenged,
        };
        if !ok {
            let head = text.lines().take(8).collect::<Vec<_>>().join(" | ");
            failures.push(format!(
                "{name} ({target}): status {status}, upstream saw {seen:?}: {head}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    h.stop().await;
}

/// A GET with no `Authorization` header.
async fn get_no_header(h: &Harness, path: &str) -> Resp {
    h.call(Method::GET, path, None, &[], Bytes::new()).await
}

#[tokio::test]
async fn access_token_in_the_query_only_where_the_policy_marks_it() {
    let h = Harness::start().await;
    let dl = h.mint("item_download item_preview", Some(FILE)).await;

    // Marked routes: the token is read and never forwarded.
    for (path, upstream) in [
        (
            format!("{FILE}/content?access_token={dl}"),
            format!("{FILE}/content"),
        ),
        (
            format!("{FILE}/content?version=3&access_token={dl}&x=1"),
            format!("{FILE}/content?version=3&x=1"),
        ),
        (
            format!("{FILE}/content?%61ccess_token={dl}"),
            format!("{FILE}/content"),
        ),
        (
            format!("{FILE}/thumbnail.png?access_token={dl}&min_width=32"),
            format!("{FILE}/thumbnail.png?min_width=32"),
        ),
    ] {
        h.api.clear_recorded();
        let r = get_no_header(&h, &path).await;
        assert_eq!(
            r.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let rec = h.api.recorded();
        assert_eq!(rec.len(), 1, "{path}");
        assert_eq!(rec[0].path_and_query, upstream);
        assert_eq!(
            rec[0].headers["authorization"],
            format!("Bearer {PARENT}").as_str()
        );
    }

    // Refused, never forwarded.
    let refused = [
        // A route not marked for it.
        (format!("{FILE}?access_token={dl}"), None, 400),
        // Unknown route.
        (format!("/2.0/nowhere?access_token={dl}"), None, 400),
        // Together with a header.
        (
            format!("{FILE}/content?access_token={dl}"),
            Some(dl.as_str()),
            400,
        ),
        // Repeated or spelled another way.
        (
            format!("{FILE}/content?access_token={dl}&access_token={dl}"),
            None,
            400,
        ),
        (format!("{FILE}/content?Access_Token={dl}"), None, 400),
        (format!("{FILE}/content?access_token[]={dl}"), None, 400),
        // Not a token's characters.
        (format!("{FILE}/content?access_token=a+b"), None, 400),
        (format!("{FILE}/content?access_token="), None, 400),
        // Read, and then checked like any token.
        (
            "/2.0/files/2001/content?access_token=".to_string() + &dl,
            None,
            403,
        ),
        (
            format!("{FILE}/content?access_token=sg1.t1.forged"),
            None,
            401,
        ),
    ];
    for (path, header, want) in refused {
        h.api.clear_recorded();
        let r = match header {
            Some(t) => h.get(&path, t).await,
            None => get_no_header(&h, &path).await,
        };
        assert_eq!(
            r.status,
            want,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(!r.header("www-authenticate").is_empty(), "{path}");
        assert!(h.api.recorded().is_empty(), "{path} was forwarded");
    }

    // A revoked token in the query is refused like one in a header.
    assert_eq!(h.revoke(&dl).await.status, 200);
    let r = get_no_header(&h, &format!("{FILE}/content?access_token={dl}")).await;
    assert_eq!(r.status, 401);
    h.stop().await;
}

#[tokio::test]
async fn a_query_token_never_reaches_the_logs() {
    let (api, addr, stop) = start_api().await;
    let dir = temp_dir("querylog");
    let cfg = write_config(&dir, addr, &Opts::default());
    let logs = Arc::new(std::sync::Mutex::new(String::new()));
    let p = spawn_gateway_logged(&cfg, Some(logs.clone())).await;
    let t = p.mint("item_download", Some(FILE)).await;
    let mut ids = Vec::new();
    for (path, want) in [
        (format!("{FILE}/content?access_token={t}"), 200),
        (format!("{FILE}?access_token={t}"), 400),
        (format!("/2.0/files/2001/content?access_token={t}"), 403),
    ] {
        let req = http::Request::get(p.url(&path))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let r = send(&client(), req).await;
        assert_eq!(r.status, want, "{path}");
        ids.push(r.header("x-request-id").to_string());
    }
    // Wait for the three request lines (written in batches).
    let start = std::time::Instant::now();
    while !ids
        .iter()
        .all(|id| logs.lock().unwrap().contains(id.as_str()))
    {
        assert!(start.elapsed() < Duration::from_secs(10), "no log lines");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let logs = logs.lock().unwrap().clone();
    assert!(!logs.contains(&t), "the token is in the logs:\n{logs}");
    assert!(
        !logs.contains(&t[t.len() - 24..]),
        "part of the token is in the logs"
    );
    assert!(
        !logs.contains("access_token"),
        "the query is in the logs:\n{logs}"
    );
    for r in api.recorded() {
        assert!(
            !r.path_and_query.contains(&t[t.len() - 24..]),
            "forwarded: {r:?}"
        );
    }
    let _ = stop.send(());
}

#[tokio::test]
async fn search_is_bounded_to_the_restriction() {
    let h = Harness::start().await;
    let folder = h.mint("item_read", Some("/2.0/folders/100")).await;
    let file = h.mint("item_read", Some(FILE)).await;
    let open = h.mint("item_read", None).await;
    let cases: [(&str, &str, u16, Option<&str>); 16] = [
        // The folder itself, below it, several at once.
        (
            &folder,
            "query=plan&ancestor_folder_ids=100",
            200,
            Some("/2.0/search?query=plan&ancestor_folder_ids=100"),
        ),
        (
            &folder,
            "ancestor_folder_ids=110",
            200,
            Some("/2.0/search?ancestor_folder_ids=110"),
        ),
        (
            &folder,
            "ancestor_folder_ids=100,111",
            200,
            Some("/2.0/search?ancestor_folder_ids=100,111"),
        ),
        (
            &folder,
            "ancestor_folder_ids=100%2C110&query=a+b",
            200,
            Some("/2.0/search?ancestor_folder_ids=100,110&query=a%20b"),
        ),
        // Outside, partly outside, unbounded.
        (&folder, "ancestor_folder_ids=200", 403, None),
        (&folder, "ancestor_folder_ids=100,200", 403, None),
        (&folder, "ancestor_folder_ids=100%2C200", 403, None),
        (&folder, "ancestor_folder_ids=0", 403, None),
        (&folder, "query=secret", 403, None),
        // Ambiguous.
        (
            &folder,
            "ancestor_folder_ids=100&ancestor_folder_ids=200",
            400,
            None,
        ),
        (
            &folder,
            "Ancestor_Folder_Ids=200&ancestor_folder_ids=100",
            400,
            None,
        ),
        (&folder, "ancestor_folder_ids=100,", 400, None),
        (&folder, "ancestor_folder_ids=100,../200", 400, None),
        // A file token never searches.
        (&file, "ancestor_folder_ids=100", 403, None),
        // An unrestricted token searches as before.
        (&open, "query=secret", 200, Some("/2.0/search?query=secret")),
        (
            &open,
            "ancestor_folder_ids=200",
            200,
            Some("/2.0/search?ancestor_folder_ids=200"),
        ),
    ];
    for (token, query, want, upstream) in cases {
        h.api.clear_recorded();
        let path = format!("/2.0/search?{query}");
        let r = h.get(&path, token).await;
        assert_eq!(
            r.status,
            want,
            "{query}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let seen: Vec<String> = h
            .upstream_paths()
            .into_iter()
            .filter(|p| p.starts_with("/2.0/search"))
            .collect();
        match upstream {
            Some(p) => assert_eq!(seen, [p.to_string()], "{query}"),
            None => assert!(seen.is_empty(), "{query}: forwarded {seen:?}"),
        }
        if want == 403 {
            let c = r.header("www-authenticate");
            assert!(c.contains("error=\"insufficient_scope\""), "{c}");
            assert!(!c.contains("scope=\"item_read\""), "{query}: {c}");
        }
    }
    h.stop().await;
}

#[tokio::test]
async fn every_refusal_says_what_is_true() {
    let h = Harness::start().await;
    let t = h.mint("item_read", Some(FILE)).await;
    let check = |r: &Resp, status: u16, challenge: &[&str], not: &[&str]| {
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
        let c = r.header("www-authenticate");
        assert!(
            c.starts_with("Bearer realm=\"scopegate\""),
            "{status}: {c:?}"
        );
        for want in challenge {
            assert!(c.contains(want), "{c} lacks {want}");
        }
        for bad in not {
            assert!(!c.contains(bad), "{c} holds {bad}");
        }
        let j = r.json();
        assert_eq!(j["type"], "error");
        assert_eq!(j["status"], status);
        assert_eq!(j["request_id"], r.header("x-request-id"));
    };
    // Outside the restriction: the token holds item_read, so no scope is named.
    let r = h.get("/2.0/files/2001", &t).await;
    check(
        &r,
        403,
        &[
            "error=\"insufficient_scope\"",
            "error_description=\"the request names an item outside the token's restriction\"",
        ],
        &["scope=\"item_read\""],
    );
    // A scope the token lacks is named.
    let r = h.get(&format!("{FILE}/content"), &t).await;
    check(&r, 403, &["scope=\"item_download\""], &[]);
    // Unknown route.
    let r = h.get("/2.0/nowhere", &t).await;
    check(
        &r,
        403,
        &[
            "error=\"insufficient_scope\"",
            "not open through the gateway",
        ],
        &[],
    );
    // Refused header.
    let r = h
        .call(
            Method::GET,
            FILE,
            Some(&t),
            &[("as-user", "7")],
            Bytes::new(),
        )
        .await;
    check(&r, 403, &["error=\"insufficient_scope\""], &[]);
    // Bad query, bad token, no token.
    let r = h.get(&format!("{FILE}?a=%zz"), &t).await;
    check(&r, 400, &["error=\"invalid_request\""], &[]);
    let r = h.get(FILE, "sg1.t1.forged").await;
    check(&r, 401, &["error=\"invalid_token\""], &[]);
    let r = h.call(Method::GET, FILE, None, &[], Bytes::new()).await;
    check(&r, 401, &[], &["error="]);
    // A preflight from an origin that is not allowed.
    let r = h
        .call(
            Method::OPTIONS,
            FILE,
            None,
            &[
                ("origin", "https://evil.example"),
                ("access-control-request-method", "GET"),
            ],
            Bytes::new(),
        )
        .await;
    check(&r, 403, &["error=\"insufficient_scope\""], &[]);
    assert!(
        h.api
            .recorded()
            .iter()
            .all(|r| r.path_and_query != "/2.0/files/2001")
    );
    h.stop().await;
}

/// Writes `requests` on one connection, all at once (pipelined) or one after
/// the other; returns the statuses of the answers, in order, until the
/// gateway closes the connection.
async fn statuses_on_one_connection(
    addr: SocketAddr,
    requests: &[String],
    pipelined: bool,
) -> Vec<u16> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    if pipelined {
        s.write_all(requests.concat().as_bytes()).await.unwrap();
    } else {
        for (i, r) in requests.iter().enumerate() {
            s.write_all(r.as_bytes()).await.unwrap();
            // The answer to this one before the next is sent (the last
            // is read to the end of the connection below).
            if i + 1 < requests.len() {
                let mut chunk = [0u8; 64 * 1024];
                while String::from_utf8_lossy(&buf).matches("HTTP/1.1 ").count() <= i {
                    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk))
                        .await
                        .expect("no answer in time")
                        .unwrap();
                    assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&buf));
                    buf.extend_from_slice(&chunk[..n]);
                }
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    text.match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| text.get(i + 9..i + 12)?.parse().ok())
        .collect()
}

#[tokio::test]
async fn smuggling_framing_is_refused_wherever_it_comes_on_a_connection() {
    let h = Harness::start().await;
    let t = h.mint("item_read", Some(FILE)).await;
    let plain = format!("GET {FILE} HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer {t}\r\n\r\n");
    let chunked = format!(
        "GET {FILE} HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer {t}\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n"
    );
    let sized = format!(
        "GET {FILE} HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer {t}\r\nContent-Length: 3\r\n\r\nxyz"
    );
    let smuggler = format!(
        "GET {FILE} HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer {t}\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /2.0/files/2001 HTTP/1.1\r\nHost: g\r\n\r\n"
    );
    for pipelined in [false, true] {
        for first in [&plain, &chunked, &sized] {
            h.api.clear_recorded();
            let got = statuses_on_one_connection(
                h.addr,
                &[first.clone(), plain.clone(), smuggler.clone()],
                pipelined,
            )
            .await;
            // A body on this GET route is refused (400) but read to its end,
            // so the next request is read where it starts; the smuggler is
            // refused and the connection closed after it.
            let with_body = first != &plain;
            let first_status = if with_body { 400 } else { 200 };
            assert_eq!(
                got,
                [first_status, 200, 400],
                "pipelined {pipelined}, first {first:?}"
            );
            let forwarded: &[&str] = if with_body { &[FILE] } else { &[FILE, FILE] };
            assert_eq!(h.upstream_paths(), forwarded, "pipelined {pipelined}");
        }
    }
    h.stop().await;
}
