//! The multipart envelope of uploads, held against a standard parser.
//!
//! The recording upstream reads uploads with `multer` (the parser axum
//! uses), not with the gateway's envelope reader. Each hostile body below
//! is one a parser could read with another `attributes` part, another
//! folder or another file than the gateway checked: for every one, the
//! gateway answers 400 and the upstream receives nothing, for a token
//! restricted to folder 100 that names folder 100 in the part the gateway
//! would check. Then the bodies the Box SDKs and UI Elements send pass,
//! and the folder the upstream read is the folder the gateway checked.

mod support;

use support::*;

const OK: &str = r#"{"name":"ok.txt","parent":{"id":"100"}}"#;
const EVIL: &str = r#"{"name":"evil.txt","parent":{"id":"200"}}"#;
const B: &str = "BnD";

/// `Content-Disposition` of the attributes part.
const ATTRS: &str = "Content-Disposition: form-data; name=\"attributes\"";
/// `Content-Disposition` of the file part.
const FILE: &str = "Content-Disposition: form-data; name=\"file\"; filename=\"f.txt\"";

/// A body from `(part head lines, content)` pairs with CRLF framing.
fn body(parts: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (head, content) in parts {
        s.push_str(&format!("--{B}\r\n{head}\r\n\r\n{content}\r\n"));
    }
    s.push_str(&format!("--{B}--\r\n"));
    s
}

fn ct() -> String {
    format!("multipart/form-data; boundary={B}")
}

/// (class, spelling, Content-Type, body)
fn hostile() -> Vec<(&'static str, String, String, String)> {
    let mut v = Vec::new();
    let mut add = |class: &'static str, name: &str, ct: String, body: String| {
        v.push((class, name.to_string(), ct, body));
    };
    // A quoted boundary with an escape: `BnD` to a parser that unescapes,
    // `Bn\D` to one that does not.
    let two = format!(
        "--Bn\\D\r\n{ATTRS}\r\n\r\n{EVIL}\r\n--BnD\r\n{ATTRS}\r\n\r\n{OK}\r\n--BnD\r\n{FILE}\r\n\r\nx\r\n--BnD--\r\n"
    );
    for ct in [
        r#"multipart/form-data; boundary="Bn\D""#,
        r#"multipart/form-data; boundary="\B\n\D""#,
        r#"multipart/form-data; boundary="BnD\\""#,
        r#"multipart/form-data; boundary="Bn\"D""#,
    ] {
        add(
            "quoted boundary with an escape",
            ct,
            ct.to_string(),
            two.clone(),
        );
    }
    // The same, well formed for a reader that keeps the backslash (the OK
    // upload, whose file holds a whole upload delimited by `BnD`), and for
    // one that unescapes it (the upload into 200 hidden in that file).
    for raw in [r"Bn\D", r"\B\n\D"] {
        let inner =
            format!("x\r\n--BnD\r\n{ATTRS}\r\n\r\n{EVIL}\r\n--BnD\r\n{FILE}\r\n\r\ny\r\n--BnD--");
        let body = format!(
            "--{raw}\r\n{ATTRS}\r\n\r\n{OK}\r\n--{raw}\r\n{FILE}\r\n\r\n{inner}\r\n--{raw}--\r\n"
        );
        add(
            "quoted boundary with an escape",
            &format!("{raw}, an upload into 200 inside the file"),
            format!("multipart/form-data; boundary=\"{raw}\""),
            body,
        );
    }
    // Two boundaries, or another parameter that could hide one.
    for ct in [
        "multipart/form-data; boundary=BnD; boundary=Bn",
        "multipart/form-data; boundary=Bn; boundary=BnD",
        "multipart/form-data; charset=\"; boundary=Bn\"; boundary=BnD",
        "multipart/form-data; boundary=BnD, boundary=Bn",
        "multipart/form-data; Boundary*=utf-8''Bn; boundary=BnD",
    ] {
        add(
            "ambiguous Content-Type parameters",
            ct,
            ct.to_string(),
            body(&[(ATTRS, OK), (FILE, "x")]),
        );
    }
    // A Content-Transfer-Encoding: the gateway would read the bytes, a
    // decoding parser the decoded text.
    let b64 = "eyJuYW1lIjoiZXZpbC50eHQiLCJwYXJlbnQiOnsiaWQiOiIyMDAifX0=";
    for (name, head, content) in [
        (
            "base64 (evil decoded)",
            format!("{ATTRS}\r\nContent-Transfer-Encoding: base64"),
            b64.to_string(),
        ),
        (
            "quoted-printable",
            format!("{ATTRS}\r\nContent-Transfer-Encoding: quoted-printable"),
            OK.replace("100", "=32=30=30"),
        ),
        (
            "8bit",
            format!("{ATTRS}\r\nContent-Transfer-Encoding: 8bit"),
            OK.to_string(),
        ),
        (
            "lower case",
            format!("{ATTRS}\r\ncontent-transfer-encoding: BASE64"),
            b64.to_string(),
        ),
        (
            "before the disposition",
            format!("Content-Transfer-Encoding: base64\r\n{ATTRS}"),
            b64.to_string(),
        ),
        ("on the file part", ATTRS.to_string(), OK.to_string()),
    ] {
        let file_head = if name == "on the file part" {
            format!("{FILE}\r\nContent-Transfer-Encoding: base64")
        } else {
            FILE.to_string()
        };
        add(
            "Content-Transfer-Encoding",
            name,
            ct(),
            body(&[(&head, &content), (&file_head, "eA==")]),
        );
    }
    // An `attributes` part with a filename: a parser that takes parts with
    // a filename as files skips it and reads the later plain one.
    for head in [
        format!("{ATTRS}; filename=\"a.json\""),
        format!("{ATTRS}; filename=\"\""),
        format!("{ATTRS}; filename*=utf-8''a.json"),
        format!("{ATTRS}; filename=a.json"),
    ] {
        add(
            "filename on attributes",
            &head,
            ct(),
            body(&[(&head, OK), (ATTRS, EVIL), (FILE, "x")]),
        );
    }
    // Each rule alone: the attributes part with a filename, then the file.
    for head in [
        format!("{ATTRS}; filename=\"a.json\""),
        format!("{ATTRS}; filename*=utf-8''a.json"),
    ] {
        add(
            "filename on attributes",
            &format!("{head}, alone"),
            ct(),
            body(&[(&head, OK), (FILE, "x")]),
        );
    }
    // Two names on one part: the first to one parser, the last to another.
    for head in [
        "Content-Disposition: form-data; name=\"attributes\"; name=\"x\"",
        "Content-Disposition: form-data; name=\"x\"; name=\"attributes\"",
        "Content-Disposition: form-data; name=\"attributes\"; NAME=\"x\"",
        "Content-Disposition: form-data; name=\"attributes\"; name*=utf-8''x",
        "Content-Disposition: form-data; name*=utf-8''attributes; name=\"x\"",
        "Content-Disposition: form-data; name*=utf-8''attributes",
    ] {
        add(
            "two names on one part",
            head,
            ct(),
            body(&[(head, OK), (ATTRS, EVIL), (FILE, "x")]),
        );
        add(
            "two names on one part",
            &format!("{head}, alone"),
            ct(),
            body(&[(head, OK), (FILE, "x")]),
        );
    }
    // Two Content-Dispositions on one part.
    for head in [
        format!("{ATTRS}\r\nContent-Disposition: form-data; name=\"x\""),
        format!("Content-Disposition: form-data; name=\"x\"\r\n{ATTRS}"),
        format!("{ATTRS}\r\ncontent-disposition: form-data; name=\"attributes\""),
    ] {
        add(
            "two Content-Dispositions",
            &head,
            ct(),
            body(&[(&head, OK), (ATTRS, EVIL), (FILE, "x")]),
        );
    }
    // Bare LF framing, whole or in part.
    let crlf = body(&[(ATTRS, OK), (FILE, "x")]);
    add("LF-only", "whole body", ct(), crlf.replace("\r\n", "\n"));
    add(
        "LF-only",
        "a bare-LF delimiter inside the attributes",
        ct(),
        body(&[
            (ATTRS, &format!("{OK}\n--{B}\n{ATTRS}\n\n{EVIL}")),
            (FILE, "x"),
        ]),
    );
    add(
        "LF-only",
        "a bare-LF delimiter inside the file",
        ct(),
        body(&[
            (ATTRS, OK),
            (
                FILE,
                &format!("x\n--{B}\r\n{ATTRS}\r\n\r\n{EVIL}\r\n--{B}\r\n{FILE}\r\n\r\ny"),
            ),
        ]),
    );
    add(
        "LF-only",
        "LF-only part head",
        ct(),
        format!("--{B}\r\n{ATTRS}\n\n{OK}\r\n--{B}\r\n{FILE}\r\n\r\nx\r\n--{B}--\r\n"),
    );
    // Parts out of order, or more than two.
    add(
        "parts swapped",
        "file then attributes",
        ct(),
        body(&[(FILE, "x"), (ATTRS, OK)]),
    );
    add(
        "two attributes parts",
        "in a row",
        ct(),
        body(&[(ATTRS, OK), (ATTRS, EVIL), (FILE, "x")]),
    );
    add(
        "two attributes parts",
        "one per file",
        ct(),
        body(&[(ATTRS, OK), (FILE, "x"), (ATTRS, EVIL), (FILE, "y")]),
    );
    add(
        "attributes after the file",
        "",
        ct(),
        body(&[(ATTRS, OK), (FILE, "x"), (ATTRS, EVIL)]),
    );
    add("no file part", "", ct(), body(&[(ATTRS, OK)]));
    add(
        "second file part",
        "",
        ct(),
        body(&[
            (ATTRS, OK),
            (FILE, "x"),
            (
                "Content-Disposition: form-data; name=\"file2\"; filename=\"g\"",
                "y",
            ),
        ]),
    );
    // Folded header lines.
    for head in [
        "Content-Disposition: form-data;\r\n name=\"attributes\"",
        "Content-Disposition: form-data;\r\n\tname=\"attributes\"",
        "Content-Disposition:\r\n form-data; name=\"attributes\"",
    ] {
        add(
            "folded headers",
            head,
            ct(),
            body(&[(head, OK), (FILE, "x")]),
        );
    }
    // Case tricks: another spelling of `attributes` or of the header.
    for (head2, name) in [
        (
            "Content-Disposition: form-data; name=\"Attributes\"; filename=\"f\"",
            "Attributes as the file part",
        ),
        (
            "Content-Disposition: form-data; name=\"ATTRIBUTES\"; filename=\"f\"",
            "ATTRIBUTES as the file part",
        ),
    ] {
        add(
            "case tricks",
            name,
            ct(),
            body(&[(ATTRS, OK), (head2, EVIL)]),
        );
    }
    for head in [
        "Content-Disposition: FORM-DATA; name=\"attributes\"",
        "Content-Disposition: form-data; Name=\"attributes\"",
        "Content-Disposition: form-data; name=\"Attributes\"",
    ] {
        add("case tricks", head, ct(), body(&[(head, OK), (FILE, "x")]));
    }
    // Other spellings of a name: escapes, percent-encoding, no quotes,
    // odd spacing.
    for head in [
        "Content-Disposition: form-data; name=\"attri\\butes\"",
        "Content-Disposition: form-data; name=\"attribute%73\"",
        "Content-Disposition: form-data; name=attributes",
        "Content-Disposition: form-data;name=\"attributes\"",
        "Content-Disposition: form-data; name = \"attributes\"",
        "Content-Disposition: form-data; name=\"attributes\";",
    ] {
        add(
            "name spellings",
            head,
            ct(),
            body(&[(head, OK), (FILE, "x")]),
        );
    }
    add(
        "name spellings",
        "a file part named attribute%73",
        ct(),
        body(&[
            (ATTRS, OK),
            (
                "Content-Disposition: form-data; name=\"attribute%73\"; filename=\"f\"",
                EVIL,
            ),
        ]),
    );
    // Part headers other than the two the SDKs send.
    for extra in [
        "X-Other: 1",
        "Content-Length: 2",
        "Content-ID: <a>",
        "Content-Type: application/json; charset=utf-16",
    ] {
        let head = format!("{ATTRS}\r\n{extra}");
        add(
            "unknown or odd part headers",
            extra,
            ct(),
            body(&[(&head, OK), (FILE, "x")]),
        );
    }
    let head = format!("{FILE}\r\nContent-Type: multipart/mixed; boundary=Q");
    add(
        "unknown or odd part headers",
        "nested multipart file",
        ct(),
        body(&[(ATTRS, OK), (&head, "x")]),
    );
    // Preamble and epilogue.
    add(
        "preamble",
        "a fake part before the first boundary",
        ct(),
        format!(
            "{ATTRS}\r\n\r\n{EVIL}\r\n{}",
            body(&[(ATTRS, OK), (FILE, "x")])
        ),
    );
    add(
        "preamble",
        "a blank line",
        ct(),
        format!("\r\n{}", body(&[(ATTRS, OK), (FILE, "x")])),
    );
    add(
        "epilogue",
        "a part after the close",
        ct(),
        format!(
            "{}--{B}\r\n{ATTRS}\r\n\r\n{EVIL}\r\n--{B}--\r\n",
            body(&[(ATTRS, OK), (FILE, "x")])
        ),
    );
    add(
        "epilogue",
        "text after the close",
        ct(),
        format!("{}junk", body(&[(ATTRS, OK), (FILE, "x")])),
    );
    // Padding after a delimiter (RFC 2046 transport padding, read by some).
    add(
        "delimiter padding",
        "",
        ct(),
        format!("--{B} \r\n{ATTRS}\r\n\r\n{OK}\r\n--{B}\r\n{FILE}\r\n\r\nx\r\n--{B}--\r\n"),
    );
    add(
        "truncated",
        "no closing delimiter",
        ct(),
        format!("--{B}\r\n{ATTRS}\r\n\r\n{OK}\r\n--{B}\r\n{FILE}\r\n\r\nx"),
    );
    v
}

/// Names of the items in a folder, asked of the upstream directly.
async fn names_in(h: &Harness, folder: &str) -> Vec<String> {
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

#[tokio::test]
async fn hostile_envelopes_are_refused_and_never_reach_the_upstream() {
    let h = Harness::start().await;
    let folder = h.mint("item_upload", Some("/2.0/folders/100")).await;
    let version = h.mint("item_upload", Some("/2.0/files/1001")).await;
    let unrestricted = h.mint("item_upload", None).await;
    let cases = hostile();
    let mut failures = Vec::new();
    for (class, name, ct, body) in &cases {
        for (token, path) in [
            (&folder, "/api/2.0/files/content"),
            (&unrestricted, "/api/2.0/files/content"),
            (&version, "/api/2.0/files/1001/content"),
        ] {
            h.api.clear_recorded();
            let r = h
                .call(
                    http::Method::POST,
                    path,
                    Some(token),
                    &[("content-type", ct)],
                    body.clone(),
                )
                .await;
            let seen = h.api.recorded();
            if r.status != 400 || !seen.is_empty() {
                failures.push(format!(
                    "{class} / {name} on {path}: {} {}; upstream saw {:?}",
                    r.status,
                    String::from_utf8_lossy(&r.body),
                    seen.iter().map(|s| &s.path_and_query).collect::<Vec<_>>()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases got through:\n{}",
        failures.len(),
        cases.len() * 3,
        failures.join("\n")
    );
    assert!(!names_in(&h, "200").await.contains(&"evil.txt".to_string()));
    assert!(!names_in(&h, "100").await.contains(&"ok.txt".to_string()));
    h.stop().await;
}

/// The bodies each Box client sends (boundary style, part names, headers).
fn sdk_bodies(name: &str, parent: &str) -> Vec<(&'static str, String, String)> {
    let attrs = format!(r#"{{"name":"{name}","parent":{{"id":"{parent}"}}}}"#);
    let mut v = Vec::new();
    // box-node-sdk: the `form-data` package, 26 dashes + 24 digits, the
    // file part named `content` with filename `unused`.
    let b = "--------------------------012345678901234567890123";
    v.push((
        "box-node-sdk",
        format!("multipart/form-data; boundary={b}"),
        format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"attributes\"\r\n\r\n{attrs}\r\n--{b}\r\nContent-Disposition: form-data; name=\"content\"; filename=\"unused\"\r\nContent-Type: application/octet-stream\r\n\r\nhello\r\n--{b}--\r\n"
        ),
    ));
    // boxsdk (Python, requests): 32 hex digits, `file` named `unused`, no
    // part Content-Type.
    let b = "0123456789abcdef0123456789abcdef";
    v.push((
        "boxsdk",
        format!("multipart/form-data; boundary={b}"),
        format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"attributes\"\r\n\r\n{attrs}\r\n--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"unused\"\r\n\r\nhello\r\n--{b}--\r\n"
        ),
    ));
    // box-sdk-gen (Python, requests-toolbelt): attributes with a JSON
    // Content-Type, the file with its own.
    v.push((
        "box-sdk-gen python",
        format!("multipart/form-data; boundary={b}"),
        format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"attributes\"\r\nContent-Type: application/json\r\n\r\n{attrs}\r\n--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\nhello\r\n--{b}--\r\n"
        ),
    ));
    // box-sdk-gen (TypeScript, form-data in Node).
    let b = "--------------------------987654321098765432109876";
    v.push((
        "box-sdk-gen ts",
        format!("multipart/form-data; boundary={b}"),
        format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"attributes\"\r\n\r\n{attrs}\r\n--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\nhello\r\n--{b}--\r\n"
        ),
    ));
    // UI Elements' uploader: a browser FormData over XHR.
    let b = "----WebKitFormBoundary7MA4YWxkTrZu0gW";
    v.push((
        "UI Elements (browser)",
        format!("multipart/form-data; boundary={b}"),
        format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"attributes\"\r\n\r\n{attrs}\r\n--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--{b}--\r\n"
        ),
    ));
    // A plainly quoted boundary.
    v.push((
        "quoted boundary",
        "multipart/form-data; boundary=\"plain:quoted\"".to_string(),
        format!(
            "--plain:quoted\r\nContent-Disposition: form-data; name=\"attributes\"\r\n\r\n{attrs}\r\n--plain:quoted\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\r\nhello\r\n--plain:quoted--"
        ),
    ));
    v
}

#[tokio::test]
async fn what_the_box_clients_send_lands_in_the_folder_the_gateway_checked() {
    let h = Harness::start().await;
    let folder = h.mint("item_upload", Some("/2.0/folders/100")).await;
    let version = h.mint("item_upload", Some("/2.0/files/1001")).await;
    for (i, (client, ..)) in sdk_bodies("x", "100").iter().enumerate() {
        let name = format!("sdk-{i}.txt");
        let (_, ct, body) = sdk_bodies(&name, "100").swap_remove(i);
        h.api.clear_recorded();
        let r = h
            .call(
                http::Method::POST,
                "/api/2.0/files/content",
                Some(&folder),
                &[("content-type", &ct)],
                body.clone(),
            )
            .await;
        assert_eq!(
            r.status,
            201,
            "{client}: {}",
            String::from_utf8_lossy(&r.body)
        );
        // What the upstream's standard parser read: the checked folder.
        assert_eq!(r.json()["entries"][0]["parent"]["id"], "100", "{client}");
        assert_eq!(r.json()["entries"][0]["name"], name.as_str(), "{client}");
        let seen = h.api.recorded();
        assert_eq!(seen.len(), 1, "{client}");
        assert_eq!(
            seen[0].body_len,
            body.len() as u64,
            "{client}: forwarded whole"
        );
        // The same client's body naming a folder outside the token: 403.
        let (_, ct, body) = sdk_bodies(&name, "200").swap_remove(i);
        let r = h
            .call(
                http::Method::POST,
                "/api/2.0/files/content",
                Some(&folder),
                &[("content-type", &ct)],
                body,
            )
            .await;
        assert_eq!(
            r.status,
            403,
            "{client}: {}",
            String::from_utf8_lossy(&r.body)
        );
        // And a new version of a file, as each client sends it.
        let (_, ct, body) = sdk_bodies("plan.txt", "100").swap_remove(i);
        let r = h
            .call(
                http::Method::POST,
                "/api/2.0/files/1001/content",
                Some(&version),
                &[("content-type", &ct)],
                body,
            )
            .await;
        assert_eq!(
            r.status,
            200,
            "{client} version: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    assert!(
        !names_in(&h, "200")
            .await
            .iter()
            .any(|n| n.starts_with("sdk-"))
    );
    h.stop().await;
}
