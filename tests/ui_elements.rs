//! Box UI Elements in a real browser, through the gateway (issue 17).
//!
//! Headless Debian Chromium, driven by playwright-core (pinned with the
//! bundles in `tests/ui_elements/package.json`), loads the pinned
//! box-ui-elements bundles from a page served here over HTTPS (the Uploader
//! chunks large files only on `https:` pages), with `apiHost` and `uploadHost` set to
//! a real gateway in front of the recording sample API. The driver
//! (`tests/ui_elements/drive.mjs`) only acts and observes; this file
//! decides, on what the page showed, what the browser requested and what
//! the upstream received. Screenshots: `target/ui-elements/*.png`; the
//! browser's requests: `target/ui-elements/browser-record.json`.
//!
//! Needs `/usr/bin/chromium` and `npm ci` in `tests/ui_elements` (`.ci/run`
//! does both). Without them the test fails under `CI=true` and is skipped,
//! with a note, elsewhere.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use support::{Harness, Opts, PARENT};
use tokio::net::TcpListener;

const CHROMIUM: &str = "/usr/bin/chromium";

/// Just over box-ui-elements' chunked-upload threshold (100 MiB).
const BIG_FILE: usize = 100 * 1024 * 1024 + 4096;

fn npm_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui_elements")
}

/// Whether the browser and the npm packages are here; under CI their
/// absence is a failure, elsewhere a skip with a note.
fn browser_ready() -> bool {
    let dir = npm_dir();
    let missing: Vec<String> = [
        PathBuf::from(CHROMIUM),
        dir.join("node_modules/playwright-core/package.json"),
        dir.join("node_modules/box-ui-elements/dist/explorer.js"),
    ]
    .into_iter()
    .filter(|p| !p.exists())
    .map(|p| p.display().to_string())
    .collect();
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if missing.is_empty() && node {
        return true;
    }
    let note = format!(
        "ui_elements: missing {missing:?}{}: apt-get install -y chromium chromium-driver nodejs npm; (cd tests/ui_elements && npm ci)",
        if node { "" } else { " and node" }
    );
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{note}");
    eprintln!("skipped: {note}");
    false
}

/// A self-signed certificate for 127.0.0.1 (openssl CLI, as tests/operability.rs).
fn make_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("page.pem"), dir.join("page.key"));
    let ok = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "openssl makes the page's certificate");
    (cert, key)
}

/// The page origin, over HTTPS: the Uploader uses chunked upload sessions
/// only on an `https:` page. `/page.html?el=NAME` loads `dist/NAME.css`
/// and `dist/NAME.js` of the pinned bundles.
async fn serve_page(listener: TcpListener, tls: std::sync::Arc<rustls::ServerConfig>) {
    let dist = npm_dir().join("node_modules/box-ui-elements/dist");
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let dist = dist.clone();
        let acceptor = acceptor.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let dist = dist.clone();
            async move { Ok::<_, Infallible>(page_answer(&dist, req.uri().path())) }
        });
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(stream).await else {
                return;
            };
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

const PAGE: &str = r#"<!doctype html><html><head><meta charset="utf-8">
<script>
  const el = new URLSearchParams(location.search).get('el');
  document.write(`<link rel="stylesheet" href="dist/${el}.css"><script src="dist/${el}.js"><\/script>`);
</script></head>
<body style="margin:0"><div id="root" style="height:640px;width:1060px"></div></body></html>"#;

fn page_answer(dist: &Path, path: &str) -> Response<Full<Bytes>> {
    let (body, kind) = if path == "/page.html" {
        (Some(Bytes::from_static(PAGE.as_bytes())), "text/html")
    } else {
        let name = path.strip_prefix("/dist/").unwrap_or("");
        let plain = name.bytes().all(|b| b.is_ascii_lowercase() || b == b'.')
            && (name.ends_with(".js") || name.ends_with(".css"));
        let kind = if name.ends_with(".js") {
            "text/javascript"
        } else {
            "text/css"
        };
        let bytes = plain.then(|| std::fs::read(dist.join(name)).ok()).flatten();
        (bytes.map(Bytes::from), kind)
    };
    let mut r = Response::new(Full::new(body.clone().unwrap_or_default()));
    if body.is_none() {
        *r.status_mut() = StatusCode::NOT_FOUND;
    }
    r.headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(kind));
    r
}

/// Runs the driver; its last stdout line is the scenarios' record.
async fn drive(cfg: &Value) -> Vec<Value> {
    let child = tokio::process::Command::new("node")
        .arg(npm_dir().join("drive.mjs"))
        .current_dir(npm_dir())
        .env("SCOPEGATE_UI", cfg.to_string())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(150), child)
        .await
        .expect("the browser run finishes within 150 s")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stdout.lines().last().unwrap_or("");
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("driver output is not JSON ({e}): {stdout}\n{stderr}"))
}

fn scenario<'a>(all: &'a [Value], name: &str) -> &'a Value {
    all.iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no scenario {name}"))
}

/// The browser's requests of one scenario: (method, url, status).
fn requests(s: &Value) -> Vec<(String, String, Option<u64>)> {
    s["requests"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    (
                        r["method"].as_str().unwrap_or("").to_owned(),
                        r["url"].as_str().unwrap_or("").to_owned(),
                        r["status"].as_u64(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn box_ui_elements_through_the_gateway() {
    if !browser_ready() {
        return;
    }
    let page_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page_addr: SocketAddr = page_listener.local_addr().unwrap();
    let page_origin = format!("https://{page_addr}");
    let (cert, key) = make_cert(&support::temp_dir("ui-page"));
    let tls = scopegate::tls::tls_config(&cert, &key).unwrap_or_else(|p| panic!("{p}"));
    tokio::spawn(serve_page(page_listener, tls));
    let origin = page_origin.clone();
    let h = Harness::start_edited(Opts::default(), move |text| {
        text.replace(
            r#"origins = ["https://app.example.com"]"#,
            &format!(r#"origins = ["{origin}"]"#),
        )
    })
    .await;
    let gateway = format!("http://{}", h.addr);
    let upstream = format!("http://{}", h.api_addr);

    // Box's documented scope sets, one token per element.
    let tokens = json!({
        "explorer": h.mint("base_explorer", Some("/2.0/folders/100")).await,
        "explorer_full": h.mint("base_explorer item_preview item_download", Some("/2.0/folders/100")).await,
        "upload": h.mint("base_upload", Some("/2.0/folders/100")).await,
        "picker": h.mint("base_picker", Some("/2.0/folders/100")).await,
        "preview": h.mint("base_preview", Some("/2.0/files/1001")).await,
    });
    let minted: Vec<String> = tokens
        .as_object()
        .unwrap()
        .values()
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect();
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ui-elements");
    std::fs::create_dir_all(&shots).unwrap();
    let upload_file = support::temp_dir("ui-upload").join("hello-upload.txt");
    std::fs::write(&upload_file, "uploaded through the gateway\n").unwrap();
    // Over the Uploader's chunking threshold (100 MiB), so it opens a session.
    let big_file = upload_file.with_file_name("big-upload.bin");
    let pattern: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
    let mut big = Vec::with_capacity(BIG_FILE);
    while big.len() < BIG_FILE {
        big.extend_from_slice(&pattern[..pattern.len().min(BIG_FILE - big.len())]);
    }
    std::fs::write(&big_file, &big).unwrap();
    drop(big);
    h.api.clear_recorded();

    let cfg = json!({
        "chromium": CHROMIUM, "page": page_origin, "gateway": gateway, "upstream": upstream,
        "tokens": tokens, "shots": shots, "upload_file": upload_file, "big_file": big_file,
    });
    let all = drive(&cfg).await;
    // What the browser did, kept beside the screenshots.
    let record = serde_json::to_string_pretty(&all).unwrap_or_default();
    std::fs::write(shots.join("browser-record.json"), record).unwrap();
    let mut failures: Vec<String> = Vec::new();
    let mut check = |ok: bool, what: &str, s: &Value| {
        if !ok {
            failures.push(format!(
                "{what} [{}: error {:?}, text {:?}]",
                s["name"],
                s["error"].as_str().unwrap_or(""),
                s["text"]
                    .as_str()
                    .unwrap_or("")
                    .chars()
                    .take(160)
                    .collect::<String>()
            ));
        }
    };

    // Explorer with base_explorer alone lists, navigates and searches.
    let s = scenario(&all, "explorer-browse");
    check(
        s["listed"] == true,
        "Explorer lists folder 100 with only base_explorer",
        s,
    );
    check(
        s["two_down"] == true,
        "Explorer navigates two levels down (100 > 110 > 111)",
        s,
    );
    check(
        s["searched"] == true,
        "search in folder 100 finds summary.txt",
        s,
    );
    let searched = requests(s).into_iter().any(|(_, url, status)| {
        url.starts_with(&format!("{gateway}/2.0/search?"))
            && url.contains("ancestor_folder_ids=100")
            && status == Some(200)
    });
    check(
        searched,
        "the search went through the gateway, inside folder 100, and got 200",
        s,
    );

    // A feature the token has no scope for fails as that action, not the page.
    let s = scenario(&all, "explorer-no-scope");
    check(
        s["delete_status"] == 403 && s["still_listed"] == true,
        "a delete without item_delete is refused (403) and the folder stays listed",
        s,
    );

    // The sibling folder: the element's error state, from the gateway's 403.
    let s = scenario(&all, "explorer-sibling");
    check(
        s["error_state"] == true,
        "the sibling folder 200 shows the element's error state",
        s,
    );
    let refused = requests(s).into_iter().any(|(_, url, status)| {
        url.starts_with(&format!("{gateway}/2.0/folders/200")) && status == Some(403)
    });
    check(refused, "the gateway refused folder 200 with 403", s);

    // Download and thumbnails: through the gateway, and they work.
    let s = scenario(&all, "explorer-grid");
    let download = requests(s)
        .into_iter()
        .find(|(_, url, _)| url.contains("/files/1001/content"));
    check(
        download
            .as_ref()
            .is_some_and(|(_, url, st)| url.starts_with(&gateway) && *st == Some(200)),
        &format!("the download goes through the gateway and gets 200 ({download:?})"),
        s,
    );
    let images = s["images"].as_array().cloned().unwrap_or_default();
    check(!images.is_empty(), "the grid view shows thumbnails", s);
    for img in &images {
        let src = img["src"].as_str().unwrap_or("");
        check(
            src.starts_with(&gateway) && img["width"].as_u64().unwrap_or(0) > 0,
            &format!("thumbnail {src:.120} loads through the gateway"),
            s,
        );
    }

    // Uploader with base_upload: into the folder, refused outside it.
    let s = scenario(&all, "uploader-into");
    check(
        s["events"]["complete"].is_array() && s["events"]["error"].is_null(),
        "the Uploader uploads into folder 100",
        s,
    );
    let s = scenario(&all, "uploader-chunked");
    check(
        s["events"]["complete"].is_array() && s["events"]["error"].is_null(),
        "the Uploader uploads a 100 MiB file into folder 100 in a chunked session",
        s,
    );
    let parts_through_gateway = requests(s).into_iter().any(|(method, url, status)| {
        method == "PUT"
            && url.starts_with(&format!("{gateway}/api/2.0/files/upload_sessions/"))
            && status == Some(200)
    });
    check(
        parts_through_gateway,
        "the session's parts went through the gateway",
        s,
    );
    let s = scenario(&all, "uploader-outside");
    check(
        s["events"]["error"].is_array() && s["events"]["complete"].is_null(),
        "the Uploader is refused in folder 200 and shows the upload's error",
        s,
    );
    // Picker with base_picker: lists and chooses.
    let s = scenario(&all, "picker");
    let chosen = s["events"]["choose"][0]
        .as_array()
        .is_some_and(|items| items.iter().any(|i| i["id"] == "1001"));
    check(
        chosen,
        "the Picker lists folder 100 and chooses plan.txt",
        s,
    );

    // Preview with base_preview: file info and a representation.
    let s = scenario(&all, "preview");
    let info = requests(s).into_iter().any(|(_, url, status)| {
        url.starts_with(&format!("{gateway}/2.0/files/1001?")) && status == Some(200)
    });
    check(info, "Preview loads the file's info through the gateway", s);
    let f = &s["fetched"];
    check(
        f["file_status"] == 200,
        "file info with representations: 200",
        s,
    );
    let rep_info = f["rep"]["info"]["url"].as_str().unwrap_or("");
    let rep_content = f["rep"]["content"]["url_template"].as_str().unwrap_or("");
    check(
        rep_info.starts_with(&gateway) && rep_content.starts_with(&gateway),
        &format!("representation URLs point at the gateway ({rep_info:.100}, {rep_content:.100})"),
        s,
    );
    check(
        f["info_status"] == 200,
        "representation info through the gateway: 200",
        s,
    );
    check(
        f["content_status"] == 200 && f["content_bytes"].as_u64().unwrap_or(0) > 0,
        "representation content through the gateway: 200 with bytes",
        s,
    );

    // No scenario's browser ever talked to the upstream itself.
    for s in &all {
        let direct: Vec<String> = requests(s)
            .into_iter()
            .filter(|(_, url, _)| url.starts_with(&upstream))
            .map(|(method, url, _)| format!("{method} {url:.110}"))
            .collect();
        check(
            direct.is_empty(),
            &format!(
                "the browser called the upstream directly {} time(s), e.g. {:?}",
                direct.len(),
                &direct[..direct.len().min(3)]
            ),
            s,
        );
    }

    // The upstream's record: no downscoped token, in a header or a URL; no
    // object outside the restrictions (the gateway's own ancestry lookups,
    // made with the parent, excepted).
    let none = json!({"name": "upstream record"});
    for r in h.api.recorded() {
        let mut seen = r.path_and_query.clone();
        for v in r.headers.values() {
            seen.push_str(&String::from_utf8_lossy(v.as_bytes()));
        }
        for t in &minted {
            check(
                !seen.contains(t.as_str()),
                &format!(
                    "the upstream received a downscoped token: {} {:.100}",
                    r.method, r.path_and_query
                ),
                &none,
            );
        }
        check(
            !r.path_and_query.contains("access_token"),
            &format!(
                "the upstream received access_token in a URL: {:.100}",
                r.path_and_query
            ),
            &none,
        );
        let lookup = r.path_and_query.ends_with("?fields=path_collection,parent");
        let deleted = r.method == http::Method::DELETE;
        check(
            !deleted,
            &format!("the upstream received a DELETE: {}", r.path_and_query),
            &none,
        );
        let outside = ["/2.0/folders/200", "/2.0/files/2001", "/2.0/folders/0"]
            .iter()
            .any(|p| {
                r.path_and_query == *p
                    || r.path_and_query.starts_with(&format!("{p}?"))
                    || r.path_and_query.starts_with(&format!("{p}/"))
            });
        check(
            lookup || !outside,
            &format!(
                "the upstream received a request outside the restriction: {} {}",
                r.method, r.path_and_query
            ),
            &none,
        );
    }
    // What the uploads left upstream (asked of it directly, after its
    // record was checked).
    let s = scenario(&all, "uploader-into");
    let names = |folder: &'static str| {
        let client = support::client();
        let url = format!("{upstream}/2.0/folders/{folder}/items");
        async move {
            let req = Request::get(url)
                .header("authorization", format!("Bearer {PARENT}"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            let items = support::send(&client, req).await.json();
            items["entries"]
                .as_array()
                .map(|e| {
                    e.iter()
                        .filter_map(|i| i["name"].as_str().map(str::to_owned))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        }
    };
    let in_100 = names("100").await;
    check(
        in_100.iter().any(|n| n == "hello-upload.txt"),
        "the upstream holds hello-upload.txt in folder 100",
        s,
    );
    let s = scenario(&all, "uploader-chunked");
    check(
        in_100.iter().any(|n| n == "big-upload.bin"),
        "the upstream holds big-upload.bin in folder 100",
        s,
    );
    let in_200 = names("200").await;
    check(
        !in_200.iter().any(|n| n == "hello-upload.txt") && !in_200.is_empty(),
        "nothing was uploaded into folder 200",
        s,
    );
    h.stop().await;
    // One line per distinct problem.
    let mut seen = std::collections::HashSet::new();
    failures.retain(|f| seen.insert(f.clone()));
    assert!(
        failures.is_empty(),
        "{} check(s) failed (screenshots in {}):\n  {}",
        failures.len(),
        shots.display(),
        failures.join("\n  ")
    );
}
