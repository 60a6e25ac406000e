//! Shared test harness: a real gateway on 127.0.0.1:0 in front of the real
//! sample API (which records every request it receives), reached with a real
//! hyper client. Each harness gets its own temporary directory for config,
//! keyring and revocation log.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use scopegate::gateway::Gateway;
use scopegate::sample_api::SampleApi;
use serde_json::Value;
use tokio::net::TcpListener;

pub const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";
pub const PARENT: &str = "parent-token-for-tests-0001";
pub const ADMIN_SECRET: &str = "admin-secret-for-tests-0001";

/// A fresh temporary directory, unique per process and call.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "scopegate-test-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn box_policy() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/policy-box.toml"))
        .unwrap()
}

/// How a harness differs from the default.
#[derive(Clone, Default)]
pub struct Opts {
    /// Keyring file text; a fresh random key when `None`.
    pub keyring: Option<String>,
    /// Policy file text; the shipped Box policy when `None`.
    pub policy: Option<String>,
    /// Extra TOML appended to the config (whole sections).
    pub extra: String,
    /// Replaces the `[tokens]` section's extra lines (e.g. `external = "introspect"`).
    pub tokens: String,
    /// Replaces the `[parent]` section.
    pub parent: Option<String>,
    /// Reuse this directory (restart on the same data).
    pub dir: Option<PathBuf>,
    /// Point the gateway at this upstream instead of a new sample API.
    pub upstream: Option<SocketAddr>,
    /// Leave out the upstream token and revoke endpoints.
    pub bare_upstream: bool,
    /// Replaces the `[revocation]` section (fleet mode).
    pub revocation: Option<String>,
    /// Extra lines for the `[listen]` section (e.g. `reload_poll = "100ms"`).
    pub listen: String,
}

/// The form of a token exchange in Box's wire format; `resource` is a path
/// such as `/2.0/files/1001` (sent as a full api.box.com URL).
pub fn exchange_form(
    parent: &str,
    scope: &str,
    resource: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut pairs = vec![
        ("grant_type", EXCHANGE.to_string()),
        ("subject_token", parent.to_string()),
        ("subject_token_type", ACCESS.to_string()),
        ("scope", scope.to_string()),
    ];
    if let Some(r) = resource {
        pairs.push(("resource", format!("https://api.box.com{r}")));
    }
    pairs
}

/// A recorded answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

pub struct Harness {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub api: SampleApi,
    pub api_addr: SocketAddr,
    pub dir: PathBuf,
    pub gateway: Arc<Gateway>,
    pub client: Client<HttpConnector, Full<Bytes>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    api_stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Starts a sample API on port 0; returns it, its address and a stopper.
pub async fn start_api() -> (SampleApi, SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let api = SampleApi::new(PARENT);
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(api.clone().serve(l, async move {
        let _ = rx.await;
    }));
    (api, addr, tx)
}

/// Writes a config directory (config, keyring, policy) for an upstream.
pub fn write_config(dir: &Path, upstream: SocketAddr, opts: &Opts) -> PathBuf {
    let keyring = opts
        .keyring
        .clone()
        .unwrap_or_else(|| scopegate::token::Keyring::generate_toml("t1"));
    if !dir.join("keyring.toml").exists() || opts.keyring.is_some() {
        std::fs::write(dir.join("keyring.toml"), keyring).unwrap();
    }
    std::fs::write(
        dir.join("policy.toml"),
        opts.policy.clone().unwrap_or_else(box_policy),
    )
    .unwrap();
    let parent = opts
        .parent
        .clone()
        .unwrap_or_else(|| "[parent]\nmode = \"probe\"\nscopes = [\"root_readwrite\"]\n".into());
    let endpoints = if opts.bare_upstream {
        String::new()
    } else {
        format!(
            "token_endpoint = \"http://{upstream}/oauth2/token\"\nrevoke_endpoint = \"http://{upstream}/oauth2/revoke\"\n"
        )
    };
    let config = format!(
        r#"[listen]
public = "127.0.0.1:0"
admin = "127.0.0.1:0"
drain = "5s"
{listen}

[upstream]
api = "http://{upstream}"
{endpoints}timeout = "5s"

[tokens]
keyring = "keyring.toml"
{tokens}

{parent}

[policy]
file = "policy.toml"

[cors]
origins = ["https://app.example.com"]

{revocation}

[admin]
secret = "{ADMIN_SECRET}"

{extra}
"#,
        listen = opts.listen,
        tokens = opts.tokens,
        extra = opts.extra,
        revocation = opts
            .revocation
            .clone()
            .unwrap_or_else(|| "[revocation]\ndata_dir = \"data\"".into()),
    );
    let path = dir.join("scopegate.toml");
    std::fs::write(&path, config).unwrap();
    path
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::start_with(Opts::default()).await
    }

    pub async fn start_with(opts: Opts) -> Harness {
        Harness::start_edited(opts, |text| text).await
    }

    /// Stops the gateway (drains) and the sample API.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        if let Some(s) = self.api_stop.take() {
            let _ = s.send(());
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn send(&self, req: Request<Full<Bytes>>) -> Resp {
        send(&self.client, req).await
    }

    /// Any request to the public listener.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Resp {
        let mut b = Request::builder().method(method).uri(self.url(path));
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.send(b.body(Full::new(body.into())).unwrap()).await
    }

    /// A request with a JSON body.
    pub async fn call_json(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        json: impl Into<Bytes>,
    ) -> Resp {
        self.call(
            method,
            path,
            token,
            &[("content-type", "application/json")],
            json,
        )
        .await
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.call(Method::GET, path, Some(token), &[], Bytes::new())
            .await
    }

    pub async fn post_form(&self, path: &str, pairs: &[(&str, &str)]) -> Resp {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        self.call(
            Method::POST,
            path,
            None,
            &[("content-type", "application/x-www-form-urlencoded")],
            body,
        )
        .await
    }

    /// Token exchange with the default parent.
    pub async fn exchange(&self, scope: &str, resource: Option<&str>) -> Resp {
        self.exchange_as(PARENT, scope, resource).await
    }

    pub async fn exchange_as(&self, parent: &str, scope: &str, resource: Option<&str>) -> Resp {
        let pairs = exchange_form(parent, scope, resource);
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.post_form("/oauth2/token", &refs).await
    }

    /// Mints a token or fails the test.
    pub async fn mint(&self, scope: &str, resource: Option<&str>) -> String {
        let r = self.exchange(scope, resource).await;
        assert_eq!(
            r.status,
            200,
            "exchange failed: {}",
            String::from_utf8_lossy(&r.body)
        );
        r.json()["access_token"].as_str().unwrap().to_string()
    }

    pub async fn revoke(&self, token: &str) -> Resp {
        self.post_form(
            "/oauth2/revoke",
            &[("token", token), ("client_id", "c"), ("client_secret", "s")],
        )
        .await
    }

    /// `POST /admin/revocations` with the admin secret.
    pub async fn admin_revoke(&self, json: Value) -> Resp {
        let req = Request::post(format!("http://{}/admin/revocations", self.admin))
            .header("authorization", format!("Bearer {ADMIN_SECRET}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(json.to_string())))
            .unwrap();
        self.send(req).await
    }

    pub async fn metrics(&self) -> String {
        let req = Request::get(format!("http://{}/metrics", self.admin))
            .body(Full::new(Bytes::new()))
            .unwrap();
        String::from_utf8(self.send(req).await.body.to_vec()).unwrap()
    }

    /// Paths (with query) the upstream received, in order.
    pub fn upstream_paths(&self) -> Vec<String> {
        self.api
            .recorded()
            .into_iter()
            .map(|r| r.path_and_query)
            .collect()
    }
}

pub async fn send(client: &Client<HttpConnector, Full<Bytes>>, req: Request<Full<Bytes>>) -> Resp {
    let resp = tokio::time::timeout(Duration::from_secs(30), client.request(req))
        .await
        .expect("request timed out")
        .expect("request failed");
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    Resp {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

/// The value of a metric sample line such as
/// `scopegate_requests_total{decision="deny",reason="no_token",route="file.get"}`.
pub fn metric(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name_and_labels)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

/// A `scopegate serve` process started from a config file.
pub struct Proc {
    pub child: tokio::process::Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    /// The task copying stderr into the caller's log buffer; it ends at EOF.
    logs_copied: Option<tokio::task::JoinHandle<()>>,
}

/// Starts the real binary and waits for its "listening" line.
pub async fn spawn_gateway(config: &Path) -> Proc {
    spawn_gateway_logged(config, None).await
}

/// Like [`spawn_gateway`], collecting stderr (the logs) into `logs`.
pub async fn spawn_gateway_logged(
    config: &Path,
    logs: Option<Arc<std::sync::Mutex<String>>>,
) -> Proc {
    spawn_gateway_env(config, logs, &[]).await
}

/// Like [`spawn_gateway_logged`], with extra environment variables.
pub async fn spawn_gateway_env(
    config: &Path,
    logs: Option<Arc<std::sync::Mutex<String>>>,
    env: &[(&str, &str)],
) -> Proc {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_scopegate"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(if logs.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut logs_copied = None;
    if let (Some(logs), Some(err)) = (logs, child.stderr.take()) {
        logs_copied = Some(tokio::spawn(async move {
            let mut lines = BufReader::new(err).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                let mut g = logs.lock().unwrap();
                g.push_str(&l);
                g.push('\n');
            }
        }));
    }
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("gateway did not start")
        .unwrap()
        .expect("gateway exited before listening");
    // "scopegate listening public=ADDR admin=ADDR"
    let field = |k: &str| -> SocketAddr {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .parse()
            .unwrap()
    };
    let (addr, admin) = (field("public="), field("admin="));
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Proc {
        child,
        addr,
        admin,
        logs_copied,
    }
}

impl Proc {
    /// Waits until every line the process wrote to stderr is in the log
    /// buffer (the process has exited, or closed stderr).
    pub async fn logs_complete(&mut self) {
        if let Some(t) = self.logs_copied.take() {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("stderr still open 10 s after the wait")
                .unwrap();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        let req = Request::get(self.url(path))
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        send(&client(), req).await
    }

    pub async fn post_form(&self, path: &str, pairs: &[(&str, &str)]) -> Resp {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        let req = Request::post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        send(&client(), req).await
    }

    pub async fn mint(&self, scope: &str, resource: Option<&str>) -> String {
        let pairs = exchange_form(PARENT, scope, resource);
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = self.post_form("/oauth2/token", &refs).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.json()["access_token"].as_str().unwrap().to_string()
    }

    /// The process's peak resident memory (VmHWM), in bytes.
    pub fn peak_rss(&self) -> u64 {
        let pid = self.child.id().expect("running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmHWM in /proc/PID/status")
            * 1024
    }
}

/// The shared Redis of this machine, or `None` (the caller returns) when it
/// is not running outside CI. Under `CI=true` a missing Redis fails the test.
pub fn redis_url() -> Option<String> {
    let up = std::net::TcpStream::connect_timeout(
        &"127.0.0.1:6379".parse().unwrap(),
        Duration::from_secs(1),
    )
    .is_ok();
    if up {
        return Some("redis://127.0.0.1:6379/0".into());
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("Redis is not running on 127.0.0.1:6379 (CI=true: fleet tests must run)");
    }
    eprintln!("note: Redis not running on 127.0.0.1:6379; fleet test skipped outside CI");
    None
}

/// A stream key no other test run uses.
pub fn stream_key(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "scopegate-test:{tag}:{}:{}:{}",
        std::process::id(),
        scopegate::clock::unix_now_ms(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The `[revocation]` section for fleet mode.
pub fn fleet_section(url: &str, key: &str, on_stale: &str) -> String {
    format!(
        "[revocation]\nbackend = \"redis\"\n\n[revocation.redis]\nurl = \"{url}\"\nstream = \"{key}\"\nstale_after = \"2s\"\non_stale = \"{on_stale}\"\n"
    )
}

/// Polls `GET /readyz` on an admin address until it answers 200.
pub async fn wait_ready(admin: SocketAddr) {
    let c = client();
    for _ in 0..200 {
        let req = Request::get(format!("http://{admin}/readyz"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(2), c.request(req)).await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{admin} never became ready");
}

impl Harness {
    /// Like `start_with`, but `edit` rewrites the config text before the
    /// gateway loads it (for settings `Opts` has no knob for, such as
    /// `[upstream] timeout`, `ca_bundle` or an `https://` upstream).
    pub async fn start_edited(opts: Opts, edit: impl FnOnce(String) -> String) -> Harness {
        let (api, api_addr, api_stop) = match opts.upstream {
            Some(addr) => (SampleApi::new(PARENT), addr, None),
            None => {
                let (a, addr, stop) = start_api().await;
                (a, addr, Some(stop))
            }
        };
        let dir = opts.dir.clone().unwrap_or_else(|| temp_dir("gw"));
        let path = write_config(&dir, api_addr, &opts);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, edit(text)).unwrap();
        let loaded = scopegate::app::load(&path).unwrap_or_else(|p| panic!("{p}"));
        let tls = loaded.tls.clone();
        let gateway = scopegate::app::build(loaded, scopegate::metrics::Metrics::new()).unwrap();
        let public = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = public.local_addr().unwrap();
        let admin_addr = admin.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let gw = gateway.clone();
        let task = tokio::spawn(async move {
            scopegate::server::run(
                gw,
                public,
                admin,
                tls,
                async move {
                    let _ = rx.await;
                },
                Duration::from_secs(5),
            )
            .await
        });
        Harness {
            addr,
            admin: admin_addr,
            api,
            api_addr,
            dir,
            gateway,
            client: client(),
            stop: Some(tx),
            api_stop,
            task: Some(task),
        }
    }
}

/// A local address nothing listens on (bound, then released).
pub fn closed_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}
