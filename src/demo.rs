//! `scopegate demo`: the gateway and a small Box-shaped API in one offline
//! process, with a walkthrough a newcomer can paste into a shell.
//!
//! Everything lives in a fresh temporary directory: a random keyring, the
//! shipped Box policy, an empty revocation log. Nothing else is needed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::gateway::Gateway;
use crate::metrics::Metrics;
use crate::sample_api::SampleApi;
use crate::token::Keyring;

/// The Box policy shipped in `config/`, compiled in so the demo runs anywhere.
pub const BOX_POLICY: &str = include_str!("../config/policy-box.toml");

/// A running demo: what the walkthrough needs.
pub struct Demo {
    pub gateway: Arc<Gateway>,
    pub public: TcpListener,
    pub admin: TcpListener,
    pub public_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub parent_token: String,
    pub admin_secret: String,
    pub dir: PathBuf,
}

/// Starts the sample API (until `api_stop` fires), writes the demo files
/// and builds the gateway bound to `listen`.
pub async fn prepare(
    listen: SocketAddr,
    api_stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Demo, String> {
    let rand = Keyring::generate("demo");
    let parent_token = format!("demo-parent-{}", rand.random_hex(12));
    let admin_secret = rand.random_hex(16);
    let dir = std::env::temp_dir().join(format!(
        "scopegate-demo-{}-{}",
        std::process::id(),
        rand.random_hex(4)
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;

    let api = SampleApi::new(&parent_token);
    let api_listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("sample API: {e}"))?;
    let api_addr = api_listener.local_addr().map_err(|e| e.to_string())?;
    let mut stop = api_stop;
    tokio::spawn(api.serve(api_listener, async move {
        let _ = stop.changed().await;
    }));

    let public = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let admin = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let public_addr = public.local_addr().map_err(|e| e.to_string())?;
    let admin_addr = admin.local_addr().map_err(|e| e.to_string())?;

    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).map_err(|e| format!("{name}: {e}"))
    };
    write("policy-box.toml", BOX_POLICY)?;
    write("keyring.toml", &Keyring::generate_toml("demo1"))?;
    let config = format!(
        r#"[listen]
public = "{public_addr}"
admin = "{admin_addr}"
drain = "2s"

[upstream]
api = "http://{api_addr}"
revoke_endpoint = "http://{api_addr}/oauth2/revoke"
token_endpoint = "http://{api_addr}/oauth2/token"

[tokens]
keyring = "keyring.toml"

[parent]
mode = "probe"
scopes = ["root_readwrite"]

[policy]
file = "policy-box.toml"

[cors]
origins = ["http://localhost:3000"]

[revocation]
data_dir = "data"

[admin]
secret = "{admin_secret}"
"#
    );
    write("scopegate.toml", &config)?;
    let loaded = crate::app::load(&dir.join("scopegate.toml")).map_err(|p| p.to_string())?;
    let gateway = crate::app::build(loaded, Metrics::new()).map_err(|e| e.to_string())?;
    Ok(Demo {
        gateway,
        public,
        admin,
        public_addr,
        admin_addr,
        parent_token,
        admin_secret,
        dir,
    })
}

/// The text printed at start: addresses, ids, the parent token and a curl
/// walkthrough (exchange, allowed call, 403, revoke, 401).
pub fn walkthrough(d: &Demo) -> String {
    let gw = format!("http://{}", d.public_addr);
    let parent = &d.parent_token;
    format!(
        r#"scopegate demo
  gateway      {gw}
  admin        http://{admin}   (metrics: /metrics, admin secret: {secret})
  parent token {parent}
  sample tree  folder 100 "Projects" > 110 "Reports" > 111 "2026" > file 1003 "q3.pdf"
               file 1001 "plan.txt" in folder 100; folder 200 "Private" holds file 2001 "secret.txt"
  files in     {dir}

Walkthrough (paste into a shell):

# 1. Exchange the parent for a token that may only preview file 1001
TOKEN=$(curl -s {gw}/oauth2/token \
  -d grant_type=urn:ietf:params:oauth:grant-type:token-exchange \
  -d subject_token={parent} \
  -d subject_token_type=urn:ietf:params:oauth:token-type:access_token \
  -d scope=item_preview \
  -d resource={gw}/2.0/files/1001 | sed -E 's/.*"access_token":"([^"]+)".*/\1/')

# 2. Allowed: file info of 1001 (200)
curl -s -H "Authorization: Bearer $TOKEN" {gw}/2.0/files/1001

# 3. Refused: another file (403), and the content of 1001, which needs item_download (403)
curl -s -H "Authorization: Bearer $TOKEN" {gw}/2.0/files/2001
curl -s -H "Authorization: Bearer $TOKEN" {gw}/2.0/files/1001/content

# 4. Revoke the token (200 once it is on disk)
curl -s -i {gw}/oauth2/revoke -d token=$TOKEN -d client_id=demo -d client_secret=demo

# 5. The same call as in step 2 now gets 401 invalid_token
curl -s -i -H "Authorization: Bearer $TOKEN" {gw}/2.0/files/1001

# 6. A folder token (Content Explorer's scope) browses the folder's whole subtree
FOLDER=$(curl -s {gw}/oauth2/token \
  -d grant_type=urn:ietf:params:oauth:grant-type:token-exchange \
  -d subject_token={parent} \
  -d subject_token_type=urn:ietf:params:oauth:token-type:access_token \
  -d scope=base_explorer \
  -d resource={gw}/2.0/folders/100 | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
curl -s -H "Authorization: Bearer $FOLDER" {gw}/2.0/folders/111/items    # a subfolder two levels down: 200
curl -s -H "Authorization: Bearer $FOLDER" {gw}/2.0/folders/200/items    # the sibling "Private": 403

Press Ctrl-C to stop.
"#,
        admin = d.admin_addr,
        secret = d.admin_secret,
        dir = d.dir.display(),
    )
}

/// Runs the demo until `shutdown` resolves.
pub async fn run(
    listen: SocketAddr,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let demo = prepare(listen, stop_rx).await?;
    println!("{}", walkthrough(&demo));
    let dir = demo.dir.clone();
    crate::server::run(
        demo.gateway,
        demo.public,
        demo.admin,
        None,
        shutdown,
        Duration::from_secs(2),
    )
    .await;
    let _ = stop_tx.send(true);
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}
