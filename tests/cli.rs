//! The `scopegate` binary as a user runs it: check-config, config errors,
//! and the demo walkthrough followed step by step.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;
use tokio::io::{AsyncBufReadExt, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_scopegate");

fn config(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn check_config_accepts_the_local_example_and_prints_the_routes() {
    let out = Command::new(BIN)
        .args(["check-config", &config("scopegate-local.toml")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(": ok"));
    assert!(
        text.lines()
            .any(|l| l.starts_with("file.download") && l.contains("/2.0/files/{file_id}/content"))
    );
}

#[test]
fn config_errors_name_file_and_key_and_exit_64() {
    let dir = temp_dir("badcfg");
    let path = dir.join("gw.toml");
    std::fs::write(
        &path,
        "[listen]\npublic = \"nowhere\"\n[upstream]\napi = \"ftp://x\"\n[tokens]\nkeyring = \"missing.toml\"\n[policy]\nfile = \"missing-policy.toml\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("gw.toml: listen.public: `nowhere`"), "{err}");
    assert!(err.contains("gw.toml: upstream.api"), "{err}");

    // The real Box example without its keyring and certificate files.
    let out = Command::new(BIN)
        .args(["check-config", &config("scopegate-box.toml")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/etc/scopegate/keyring.toml: cannot read the keyring"),
        "{err}"
    );
    assert!(
        err.contains("cert.pem: cannot read the certificate"),
        "{err}"
    );
}

#[test]
fn keygen_writes_a_usable_keyring() {
    let out = Command::new(BIN)
        .args(["keygen", "--id", "prod1"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let ring = scopegate::token::Keyring::from_toml(
        &text,
        scopegate::config::Problems::new(Path::new("k")),
    )
    .unwrap();
    assert_eq!(ring.primary_id(), "prod1");
}

/// Runs `scopegate demo --listen 127.0.0.1:0` and follows its walkthrough.
#[tokio::test]
async fn the_demo_walkthrough_does_what_it_says() {
    let mut child = tokio::process::Command::new(BIN)
        .args(["demo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut gw, mut parent) = (String::new(), String::new());
    while gw.is_empty() || parent.is_empty() {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("demo printed nothing")
            .unwrap()
            .expect("demo exited");
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["gateway", url] => gw = url.to_string(),
            ["parent", "token", t] => parent = t.to_string(),
            _ => {}
        }
    }
    let c = client();
    let post = |path: &str, pairs: Vec<(&str, String)>| {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        http::Request::post(format!("{gw}{path}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap()
    };
    let get = |path: &str, token: &str| {
        http::Request::get(format!("{gw}{path}"))
            .header("authorization", format!("Bearer {token}"))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap()
    };
    // 1. exchange
    let r = send(
        &c,
        post(
            "/oauth2/token",
            vec![
                ("grant_type", EXCHANGE.into()),
                ("subject_token", parent.clone()),
                ("subject_token_type", ACCESS.into()),
                ("scope", "item_preview".into()),
                ("resource", format!("{gw}/2.0/files/1001")),
            ],
        ),
    )
    .await;
    assert_eq!(r.status, 200);
    let token = r.json()["access_token"].as_str().unwrap().to_string();
    // 2. allowed
    let r = send(&c, get("/2.0/files/1001", &token)).await;
    assert_eq!(
        (r.status, r.json()["name"].as_str()),
        (200, Some("plan.txt"))
    );
    // 3. refused: another file, and content without item_download
    assert_eq!(send(&c, get("/2.0/files/2001", &token)).await.status, 403);
    assert_eq!(
        send(&c, get("/2.0/files/1001/content", &token))
            .await
            .status,
        403
    );
    // 4. revoke
    let r = send(
        &c,
        post(
            "/oauth2/revoke",
            vec![("token", token.clone()), ("client_id", "demo".into())],
        ),
    )
    .await;
    assert_eq!(r.status, 200);
    // 5. 401
    let r = send(&c, get("/2.0/files/1001", &token)).await;
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").contains("invalid_token"));
    // 6. a folder token browses a subfolder, not the sibling
    let r = send(
        &c,
        post(
            "/oauth2/token",
            vec![
                ("grant_type", EXCHANGE.into()),
                ("subject_token", parent.clone()),
                ("subject_token_type", ACCESS.into()),
                ("scope", "base_explorer".into()),
                ("resource", format!("{gw}/2.0/folders/100")),
            ],
        ),
    )
    .await;
    let folder = r.json()["access_token"].as_str().unwrap().to_string();
    let r = send(&c, get("/2.0/folders/111/items", &folder)).await;
    assert_eq!(
        (r.status, r.json()["entries"][0]["name"].as_str()),
        (200, Some("q3.pdf"))
    );
    assert_eq!(
        send(&c, get("/2.0/folders/200/items", &folder))
            .await
            .status,
        403
    );
    child.kill().await.unwrap();
}
