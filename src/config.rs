//! The gateway's configuration file, in two steps.
//!
//! First a serde mirror of the TOML (`deny_unknown_fields`, so a typo is an
//! error and never a silent default), then [`validate`] into typed values.
//! Validation reports every problem at once, each as `file: key: problem`;
//! `main` prints them and exits with code 64 before binding any port.
//! Relative paths in the file are relative to the file itself.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::Uri;
use serde::Deserialize;

pub mod ssf;

/// Every problem found in one or more configuration files.
#[derive(Debug, Clone, Default)]
pub struct Problems {
    file: PathBuf,
    list: Vec<(PathBuf, String, String)>,
}

impl Problems {
    pub fn new(file: &Path) -> Problems {
        Problems {
            file: file.to_path_buf(),
            list: Vec::new(),
        }
    }

    pub fn push(&mut self, key: &str, problem: impl Into<String>) {
        self.list
            .push((self.file.clone(), key.to_string(), problem.into()));
    }

    /// A TOML syntax or shape error; the key is the line it was found on.
    pub fn push_toml(&mut self, e: &toml::de::Error, text: &str) {
        let key = match e.span() {
            Some(span) => format!("line {}", line_of(text, span.start)),
            None => "(file)".into(),
        };
        self.push(&key, e.message().trim_end().to_string());
    }

    pub fn extend(&mut self, other: Problems) {
        self.list.extend(other.list);
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn into_result<T>(self, value: T) -> Result<T, Problems> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(0, |t| t.matches('\n').count()) + 1
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (file, key, msg)) in self.list.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if key.is_empty() {
                write!(f, "{}: {msg}", file.display())?;
            } else {
                write!(f, "{}: {key}: {msg}", file.display())?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    listen: RawListen,
    tls: Option<RawTls>,
    upstream: RawUpstream,
    tokens: RawTokens,
    #[serde(default)]
    parent: RawParent,
    introspection: Option<RawIntrospection>,
    policy: RawPolicy,
    #[serde(default)]
    cors: RawCors,
    #[serde(default)]
    revocation: RawRevocation,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    subtree: RawSubtree,
    ssf: Option<ssf::RawSsf>,
    #[serde(default)]
    oauth: RawOAuth,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSubtree {
    cache_ttl: Option<String>,
    cache_entries: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListen {
    public: String,
    admin: Option<String>,
    drain: Option<String>,
    reload_poll: Option<String>,
    public_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: String,
    key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    api: String,
    upload: Option<String>,
    download: Option<String>,
    public_download: Option<String>,
    token_endpoint: Option<String>,
    revoke_endpoint: Option<String>,
    connect_timeout: Option<String>,
    timeout: Option<String>,
    ca_bundle: Option<String>,
    idle_timeout: Option<String>,
    max_idle: Option<u64>,
    max_connections: Option<u64>,
    connection_wait: Option<String>,
    h2_keepalive: Option<String>,
    tcp_keepalive: Option<String>,
    body_idle_timeout: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTokens {
    keyring: String,
    max_expires_in: Option<String>,
    external: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawParent {
    mode: Option<String>,
    probe_path: Option<String>,
    scopes: Option<Vec<String>>,
    lifetime: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIntrospection {
    url: String,
    client_id: Option<String>,
    client_secret: Option<String>,
    cache_ttl: Option<String>,
    inactive_ttl: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    file: String,
    unmatched: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCors {
    #[serde(default)]
    origins: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRevocation {
    backend: Option<String>,
    data_dir: Option<String>,
    redis: Option<RawRedis>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedis {
    url: String,
    stream: Option<String>,
    stale_after: Option<String>,
    on_stale: Option<String>,
    wait_replicas: Option<u32>,
    wait_timeout: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    secret: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: Option<String>,
    flush: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    oauth_body: Option<usize>,
    json_body: Option<usize>,
    answer_json: Option<usize>,
    grant_cache_entries: Option<u64>,
    header_bytes: Option<usize>,
    headers: Option<usize>,
    token_bytes: Option<usize>,
    header_timeout: Option<String>,
    connections: Option<usize>,
    h2_streams: Option<u32>,
}

/// Connection and request limits (see `[limits]` in the example configs).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request head (HTTP/1) or header list (HTTP/2), bytes; default 64 KiB.
    pub header_bytes: usize,
    /// Most request headers (HTTP/1); default 100.
    pub headers: usize,
    /// Longest bearer token looked at, bytes; default 4096 (minted tokens
    /// are well under 1 KiB; Box's are 32 characters).
    pub token_bytes: usize,
    /// The whole request head must arrive within this; also how long an idle
    /// keep-alive connection waits for its next request. Default 10 s.
    pub header_timeout: Duration,
    /// Most open client connections; more wait in the kernel's backlog. Default 10,000.
    pub connections: usize,
    /// Most concurrent HTTP/2 streams per connection; default 128.
    pub h2_streams: u32,
}

/// How external (not gateway-minted) bearer tokens are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExternalTokens {
    /// Refused with 401 (default: nothing unverified passes).
    Reject,
    /// Resolved by RFC 7662 introspection.
    Introspect,
    /// Forwarded unchecked; the upstream decides. Only where the operator
    /// wants the gateway in front of the whole API for other clients too.
    PassThrough,
}

/// How the parent token of an exchange is validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParentCheck {
    /// `GET probe_path` at the upstream with the parent; its scopes are the
    /// app's configured scopes (Box has no introspection endpoint).
    Probe { path: String },
    /// RFC 7662 introspection: scopes, subject and expiry from the answer.
    Introspect,
}

#[derive(Debug, Clone)]
pub struct Upstream {
    /// Base (scheme and authority) for `/2.0/...` and the OAuth endpoints.
    pub api: Uri,
    /// Base for `/api/2.0/...` (Box's upload host); defaults to `api`.
    pub upload: Uri,
    /// Base of routes with `origin = "download"`: representation content
    /// (Box: `https://dl.boxcloud.com`); defaults to `api`.
    pub download: Uri,
    /// Base of routes with `origin = "public_download"`: the file content
    /// behind `authenticated_download_url` (Box: `https://public.boxcloud.com`);
    /// defaults to `download`.
    pub public_download: Uri,
    /// Where grant types other than token exchange are forwarded.
    pub token_endpoint: Option<Uri>,
    /// Where a revoked parent token is passed on (RFC 7009).
    pub revoke_endpoint: Option<Uri>,
    /// Default 5 s.
    pub connect_timeout: Duration,
    /// Time to the upstream's response head, counted from the last request
    /// body chunk sent (an upload streaming longer than this is not cut);
    /// default 60 s.
    pub timeout: Duration,
    /// Extra CA certificates (PEM) trusted for HTTPS upstreams.
    pub ca_bundle: Option<PathBuf>,
    /// How connections to the upstream are kept (see the upstream pool).
    pub pool: UpstreamPool,
}

/// `[upstream]`'s connection keys.
#[derive(Debug, Clone)]
pub struct UpstreamPool {
    /// An idle connection is closed after this; default 60 s.
    pub idle_timeout: Duration,
    /// Idle connections kept per origin and kind; default 1,024.
    pub max_idle: usize,
    /// Open connections per origin; default 4,096.
    pub max_connections: usize,
    /// How long a request waits for a connection beyond `max_connections`
    /// before a 503; default 5 s.
    pub connection_wait: Duration,
    /// HTTP/2 ping interval, and how long a ping may go unanswered; default 30 s.
    pub h2_keepalive: Duration,
    /// TCP keepalive idle time toward the upstream; default 60 s.
    pub tcp_keepalive: Duration,
    /// Longest wait for the next byte of a body in flight (an answer, or an
    /// upload going up); default 60 s.
    pub body_idle_timeout: Duration,
}

impl Default for UpstreamPool {
    fn default() -> UpstreamPool {
        UpstreamPool {
            idle_timeout: Duration::from_secs(60),
            max_idle: 1024,
            max_connections: 4096,
            connection_wait: Duration::from_secs(5),
            h2_keepalive: Duration::from_secs(30),
            tcp_keepalive: Duration::from_secs(60),
            body_idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Folder-subtree checks (see the `ancestry` module).
#[derive(Debug, Clone)]
pub struct Subtree {
    /// How long an item's ancestry is trusted; default 30 s. An item moved
    /// out of a folder stays reachable with that folder's tokens this long.
    pub cache_ttl: Duration,
    /// Items whose ancestry is cached; default 100,000.
    pub cache_entries: u64,
}

#[derive(Debug, Clone)]
pub struct Introspection {
    pub url: Uri,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// Longest an active answer is trusted; default 5 min (never past `exp`).
    pub cache_ttl: Duration,
    /// How long an inactive answer is remembered; default 10 s.
    pub inactive_ttl: Duration,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: PathBuf,
    pub public: SocketAddr,
    /// Default 127.0.0.1:9090 (loopback: metrics and revocation admin).
    pub admin: SocketAddr,
    /// How long SIGTERM waits for in-flight requests; default 30 s.
    pub drain: Duration,
    /// How often the TLS, policy and keyring files are checked for changes;
    /// default 2 s (SIGHUP reloads at once).
    pub reload_poll: Duration,
    /// How clients reach the gateway (`https://box-gw.example.com`); used
    /// to point upload preflight answers at it. Default: the scheme and
    /// `Host` of each request.
    pub public_url: Option<Uri>,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub upstream: Upstream,
    pub keyring: PathBuf,
    /// Cap on `expires_in` of minted tokens; default 1 h.
    pub max_expires_in: Duration,
    pub external: ExternalTokens,
    pub parent: ParentCheck,
    /// App scopes assumed for a probed parent; default `root_readwrite`.
    pub parent_scopes: Vec<String>,
    /// Remaining life assumed for a probed parent; default 1 h (Box's
    /// access tokens live 60 minutes, so a minted token never outlives one).
    pub parent_lifetime: Duration,
    pub introspection: Option<Introspection>,
    pub policy: PathBuf,
    /// `unmatched = "pass"`: routes missing from the policy are forwarded
    /// for external tokens only; default deny.
    pub unmatched_pass: bool,
    pub cors_origins: Vec<String>,
    /// Directory of the durable revocation log; default `data` next to the file.
    pub data_dir: PathBuf,
    /// Fleet mode: revocations over a Redis stream instead of the log.
    pub stream: Option<StreamConfig>,
    pub admin_secret: Option<String>,
    pub log_json: bool,
    /// How often queued request lines are written out; zero writes each
    /// line as its request ends. Default 20 ms.
    pub log_flush: Duration,
    /// Largest `/oauth2/*` form body read; default 16 KiB.
    pub oauth_body_limit: usize,
    /// Largest JSON body read to find a route's object; default 1 MiB.
    pub json_body_limit: usize,
    /// Largest JSON answer rewritten for a downscoped token (see
    /// the `answer` module), bytes; default 8 MiB. A larger one is a 502.
    pub answer_json_limit: usize,
    /// Grant cache capacity in entries; default 1,000,000.
    pub grant_cache_entries: u64,
    pub subtree: Subtree,
    pub limits: Limits,
    /// The Shared Signals receiver (`[ssf]`), when configured.
    pub ssf: Option<ssf::SsfConfig>,
    /// `[oauth]`: client authentication and rate limits of `/oauth2/*`.
    pub oauth: OAuth,
}

/// Fleet mode: revocations shared over a Redis stream (`[revocation.redis]`).
/// What a replica does when the stream is not confirmed live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStale {
    /// Refuse gateway-minted tokens with 503 (default: fail closed, since a
    /// replica cut off from the stream cannot know what was revoked since).
    Reject,
    /// Keep serving from the revocations already known (only once the
    /// replica has caught up with a complete history).
    Serve,
}

#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// `redis://[user:password@]host:port/db`, or `rediss://` for TLS.
    pub url: String,
    /// The stream key (the epoch is a consumer group on it).
    pub key: String,
    /// Longest time without a confirmed read before the stream is stale.
    pub stale_after: Duration,
    pub on_stale: OnStale,
    /// Redis replicas that must have an append (`WAIT`) before the revoker
    /// gets its 200; default 0 (the primary's answer is enough).
    pub wait_replicas: u32,
    /// Longest `WAIT`; fewer replicas by then is a failed append (503, outbox).
    pub wait_timeout: Duration,
}

/// Longest bearer token the gateway looks at (`[limits] token_bytes` is at
/// most this); anything longer is refused unread.
pub const MAX_TOKEN_BYTES: usize = 8192;

/// Parses `"250ms"`, `"5s"`, `"10m"`, `"1h"`, `"2d"`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "ms" => return Some(Duration::from_millis(n)),
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86400)?,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

/// One word of a fixed set; the first is the default. Any other word is a
/// problem naming every allowed one, and yields the default.
fn choice<T: Copy>(p: &mut Problems, key: &str, value: Option<&str>, options: &[(&str, T)]) -> T {
    let default = options[0].1;
    let Some(v) = value else { return default };
    if let Some((_, t)) = options.iter().find(|(w, _)| *w == v) {
        return *t;
    }
    let words: Vec<String> = options.iter().map(|(w, _)| format!("\"{w}\"")).collect();
    let list = match words.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => words.concat(),
    };
    p.push(key, format!("`{v}` must be {list}"));
    default
}

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Config, Problems> {
    let mut p = Problems::new(path);
    match std::fs::read_to_string(path) {
        Ok(text) => validate(&text, path),
        Err(e) => {
            p.push("", format!("cannot read the config file: {e}"));
            Err(p)
        }
    }
}

/// Validates config text read from `path` (used for messages and to
/// resolve relative paths).
pub fn validate(text: &str, path: &Path) -> Result<Config, Problems> {
    let mut p = Problems::new(path);
    let raw: Raw = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            p.push_toml(&e, text);
            return Err(p);
        }
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let rel = |s: &str| base.join(s);

    let addr = |p: &mut Problems, key: &str, s: &str| -> SocketAddr {
        s.parse().unwrap_or_else(|_| {
            p.push(key, format!("`{s}` is not an address like 127.0.0.1:8080"));
            SocketAddr::from(([127, 0, 0, 1], 0))
        })
    };
    let dur = |p: &mut Problems, key: &str, s: Option<&String>, default: Duration| -> Duration {
        match s {
            None => default,
            Some(s) => parse_duration(s).filter(|d| !d.is_zero()).unwrap_or_else(|| {
                p.push(key, format!("`{s}` is not a positive duration like \"250ms\", \"5s\", \"10m\", \"1h\""));
                default
            }),
        }
    };
    let base_uri = |p: &mut Problems, key: &str, s: &str| -> Uri {
        match s.parse::<Uri>() {
            Ok(u)
                if matches!(u.scheme_str(), Some("http" | "https"))
                    && u.authority().is_some()
                    && matches!(u.path(), "" | "/")
                    && u.query().is_none() =>
            {
                u
            }
            _ => {
                p.push(key, format!("`{s}` must be an http:// or https:// base URL with no path, like https://api.box.com"));
                Uri::from_static("http://invalid")
            }
        }
    };
    let url = |p: &mut Problems, key: &str, s: &str| -> Uri {
        match s.parse::<Uri>() {
            Ok(u)
                if matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some() =>
            {
                u
            }
            _ => {
                p.push(key, format!("`{s}` must be an http:// or https:// URL"));
                Uri::from_static("http://invalid")
            }
        }
    };

    let public = addr(&mut p, "listen.public", &raw.listen.public);
    let admin = addr(
        &mut p,
        "listen.admin",
        raw.listen.admin.as_deref().unwrap_or("127.0.0.1:9090"),
    );

    let u = &raw.upstream;
    let api = base_uri(&mut p, "upstream.api", &u.api);
    let download = match &u.download {
        Some(s) => base_uri(&mut p, "upstream.download", s),
        None => api.clone(),
    };
    let upstream = Upstream {
        upload: match &u.upload {
            Some(s) => base_uri(&mut p, "upstream.upload", s),
            None => api.clone(),
        },
        public_download: match &u.public_download {
            Some(s) => base_uri(&mut p, "upstream.public_download", s),
            None => download.clone(),
        },
        download,
        api,
        token_endpoint: u
            .token_endpoint
            .as_deref()
            .map(|s| url(&mut p, "upstream.token_endpoint", s)),
        revoke_endpoint: u
            .revoke_endpoint
            .as_deref()
            .map(|s| url(&mut p, "upstream.revoke_endpoint", s)),
        connect_timeout: dur(
            &mut p,
            "upstream.connect_timeout",
            u.connect_timeout.as_ref(),
            Duration::from_secs(5),
        ),
        timeout: dur(
            &mut p,
            "upstream.timeout",
            u.timeout.as_ref(),
            Duration::from_secs(60),
        ),
        ca_bundle: u.ca_bundle.as_deref().map(rel),
        pool: {
            let d = UpstreamPool::default();
            let count = |p: &mut Problems, key: &str, v: Option<u64>, default: usize| match v {
                None => default,
                Some(0) => {
                    p.push(key, "must be at least 1");
                    default
                }
                Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
            };
            UpstreamPool {
                idle_timeout: dur(
                    &mut p,
                    "upstream.idle_timeout",
                    u.idle_timeout.as_ref(),
                    d.idle_timeout,
                ),
                max_idle: count(&mut p, "upstream.max_idle", u.max_idle, d.max_idle),
                max_connections: count(
                    &mut p,
                    "upstream.max_connections",
                    u.max_connections,
                    d.max_connections,
                ),
                connection_wait: dur(
                    &mut p,
                    "upstream.connection_wait",
                    u.connection_wait.as_ref(),
                    d.connection_wait,
                ),
                h2_keepalive: dur(
                    &mut p,
                    "upstream.h2_keepalive",
                    u.h2_keepalive.as_ref(),
                    d.h2_keepalive,
                ),
                tcp_keepalive: dur(
                    &mut p,
                    "upstream.tcp_keepalive",
                    u.tcp_keepalive.as_ref(),
                    d.tcp_keepalive,
                ),
                body_idle_timeout: dur(
                    &mut p,
                    "upstream.body_idle_timeout",
                    u.body_idle_timeout.as_ref(),
                    d.body_idle_timeout,
                ),
            }
        },
    };

    let external = choice(
        &mut p,
        "tokens.external",
        raw.tokens.external.as_deref(),
        &[
            ("reject", ExternalTokens::Reject),
            ("introspect", ExternalTokens::Introspect),
            ("pass_through", ExternalTokens::PassThrough),
        ],
    );
    let parent = match raw.parent.mode.as_deref() {
        None | Some("probe") => {
            let path = raw
                .parent
                .probe_path
                .clone()
                .unwrap_or_else(|| "/2.0/users/me".into());
            if !path.starts_with('/') {
                p.push("parent.probe_path", format!("`{path}` must start with /"));
            }
            ParentCheck::Probe { path }
        }
        Some("introspect") => ParentCheck::Introspect,
        Some(o) => {
            p.push(
                "parent.mode",
                format!("`{o}` must be \"probe\" or \"introspect\""),
            );
            ParentCheck::Introspect
        }
    };
    let introspection = raw.introspection.as_ref().map(|i| Introspection {
        url: url(&mut p, "introspection.url", &i.url),
        client_id: i.client_id.clone(),
        client_secret: i.client_secret.clone(),
        cache_ttl: dur(
            &mut p,
            "introspection.cache_ttl",
            i.cache_ttl.as_ref(),
            Duration::from_secs(300),
        ),
        inactive_ttl: dur(
            &mut p,
            "introspection.inactive_ttl",
            i.inactive_ttl.as_ref(),
            Duration::from_secs(10),
        ),
    });
    if introspection.is_none() {
        if external == ExternalTokens::Introspect {
            p.push(
                "tokens.external",
                "\"introspect\" needs an [introspection] section",
            );
        }
        if parent == ParentCheck::Introspect {
            p.push(
                "parent.mode",
                "\"introspect\" needs an [introspection] section",
            );
        }
    }

    let unmatched_pass = choice(
        &mut p,
        "policy.unmatched",
        raw.policy.unmatched.as_deref(),
        &[("deny", false), ("pass", true)],
    );
    for (i, o) in raw.cors.origins.iter().enumerate() {
        let ok = o.parse::<Uri>().ok().is_some_and(|u| {
            matches!(u.scheme_str(), Some("http" | "https"))
                && u.authority().is_some()
                && u.path() == "/"
                && !o.ends_with('/')
        });
        if !ok {
            p.push(&format!("cors.origins[{i}]"), format!("`{o}` must be an origin like https://app.example.com (no path, no trailing slash)"));
        }
    }
    let log_json = choice(
        &mut p,
        "log.format",
        raw.log.format.as_deref(),
        &[("text", false), ("json", true)],
    );
    let log_flush = match raw.log.flush.as_deref() {
        None => Duration::from_millis(20),
        Some(s) => parse_duration(s)
            .filter(|d| *d <= Duration::from_secs(1))
            .unwrap_or_else(|| {
                p.push(
                    "log.flush",
                    format!("`{s}` is not a duration from \"0s\" to \"1s\""),
                );
                Duration::from_millis(20)
            }),
    };
    if let Some(s) = &raw.admin.secret
        && s.len() < 16
    {
        p.push("admin.secret", "must be at least 16 characters");
    }

    let stream = match (raw.revocation.backend.as_deref(), &raw.revocation.redis) {
        (None | Some("log"), None) => None,
        (None | Some("log"), Some(_)) => {
            p.push(
                "revocation.redis",
                "set backend = \"redis\" to use it (the backend is \"log\")",
            );
            None
        }
        (Some("redis"), None) => {
            p.push(
                "revocation.backend",
                "\"redis\" needs a [revocation.redis] section with a url",
            );
            None
        }
        (Some("redis"), Some(r)) => {
            if !(r.url.starts_with("redis://") || r.url.starts_with("rediss://"))
                || redis::Client::open(r.url.as_str()).is_err()
            {
                p.push(
                    "revocation.redis.url",
                    "must be redis://[user:password@]host:port/db or rediss://... (TLS)",
                );
            }
            let on_stale = choice(
                &mut p,
                "revocation.redis.on_stale",
                r.on_stale.as_deref(),
                &[("reject", OnStale::Reject), ("serve", OnStale::Serve)],
            );
            Some(StreamConfig {
                url: r.url.clone(),
                key: r
                    .stream
                    .clone()
                    .unwrap_or_else(|| "scopegate:revocations".into()),
                stale_after: dur(
                    &mut p,
                    "revocation.redis.stale_after",
                    r.stale_after.as_ref(),
                    Duration::from_secs(5),
                ),
                on_stale,
                wait_replicas: r.wait_replicas.unwrap_or(0),
                wait_timeout: dur(
                    &mut p,
                    "revocation.redis.wait_timeout",
                    r.wait_timeout.as_ref(),
                    Duration::from_secs(1),
                ),
            })
        }
        (Some(o), _) => {
            p.push(
                "revocation.backend",
                format!("`{o}` must be \"log\" or \"redis\""),
            );
            None
        }
    };
    let public_url = raw
        .listen
        .public_url
        .as_deref()
        .map(|s| base_uri(&mut p, "listen.public_url", s));
    let ssf = raw.ssf.as_ref().map(|s| ssf::validate(s, &mut p, base));
    let config = Config {
        ssf,
        public_url,
        source: path.to_path_buf(),
        stream,
        public,
        admin,
        drain: dur(
            &mut p,
            "listen.drain",
            raw.listen.drain.as_ref(),
            Duration::from_secs(30),
        ),
        reload_poll: dur(
            &mut p,
            "listen.reload_poll",
            raw.listen.reload_poll.as_ref(),
            Duration::from_secs(2),
        ),
        tls: raw.tls.as_ref().map(|t| (rel(&t.cert), rel(&t.key))),
        upstream,
        keyring: rel(&raw.tokens.keyring),
        max_expires_in: dur(
            &mut p,
            "tokens.max_expires_in",
            raw.tokens.max_expires_in.as_ref(),
            Duration::from_secs(3600),
        ),
        external,
        parent,
        parent_scopes: raw
            .parent
            .scopes
            .clone()
            .unwrap_or_else(|| vec!["root_readwrite".into()]),
        parent_lifetime: dur(
            &mut p,
            "parent.lifetime",
            raw.parent.lifetime.as_ref(),
            Duration::from_secs(3600),
        ),
        introspection,
        policy: rel(&raw.policy.file),
        unmatched_pass,
        cors_origins: raw.cors.origins.clone(),
        data_dir: rel(raw.revocation.data_dir.as_deref().unwrap_or("data")),
        admin_secret: raw.admin.secret.clone(),
        log_json,
        log_flush,
        oauth_body_limit: raw.limits.oauth_body.unwrap_or(16 * 1024),
        json_body_limit: raw.limits.json_body.unwrap_or(1024 * 1024),
        answer_json_limit: raw.limits.answer_json.unwrap_or(8 * 1024 * 1024),
        grant_cache_entries: raw.limits.grant_cache_entries.unwrap_or(1_000_000),
        limits: Limits {
            header_bytes: raw.limits.header_bytes.unwrap_or(64 * 1024).max(8192),
            headers: raw.limits.headers.unwrap_or(100).max(16),
            token_bytes: raw
                .limits
                .token_bytes
                .unwrap_or(4096)
                .clamp(64, MAX_TOKEN_BYTES),
            header_timeout: dur(
                &mut p,
                "limits.header_timeout",
                raw.limits.header_timeout.as_ref(),
                Duration::from_secs(10),
            ),
            connections: raw.limits.connections.unwrap_or(10_000).max(1),
            h2_streams: raw.limits.h2_streams.unwrap_or(128).max(1),
        },
        subtree: Subtree {
            cache_ttl: dur(
                &mut p,
                "subtree.cache_ttl",
                raw.subtree.cache_ttl.as_ref(),
                Duration::from_secs(30),
            ),
            cache_entries: raw.subtree.cache_entries.unwrap_or(100_000),
        },
        oauth: oauth_section(&mut p, &raw.oauth),
    };
    p.into_result(config)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawOAuth {
    rate_per_second: Option<f64>,
    rate_burst: Option<u32>,
    rate_clients: Option<usize>,
    revoke_pass_on_deadline: Option<String>,
    live_parent_ttl: Option<String>,
    #[serde(default)]
    clients: Vec<RawClient>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    id: String,
    secret: String,
}

/// One OAuth client the gateway authenticates (`[[oauth.clients]]`).
#[derive(Clone)]
pub struct OAuthClient {
    pub id: String,
    /// Compared in constant time; never logged (`Debug` hides it).
    pub secret: String,
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClient")
            .field("id", &self.id)
            .field("secret", &"<hidden>")
            .finish()
    }
}

/// `[oauth]`: who may use `/oauth2/revoke` for what, and how often.
#[derive(Debug, Clone)]
pub struct OAuth {
    /// Requests per second per client on `/oauth2/*`; default 100.
    pub rate_per_second: f64,
    /// Requests a client may send at once; default 200.
    pub rate_burst: u32,
    /// Most clients (ids and addresses) tracked; default 100,000.
    pub rate_clients: usize,
    /// Longest the revoker waits for the upstream revoke endpoint; default 2 s.
    pub revoke_pass_on_deadline: Duration,
    /// How long a parent found live at the upstream is remembered; default 60 s.
    pub live_parent_ttl: Duration,
    /// Clients authenticated by `client_id` and `client_secret`; none by default.
    pub clients: Vec<OAuthClient>,
}

fn oauth_section(p: &mut Problems, raw: &RawOAuth) -> OAuth {
    let dur = |p: &mut Problems, key: &str, s: &Option<String>, default: Duration| match s {
        None => default,
        Some(s) => parse_duration(s)
            .filter(|d| !d.is_zero())
            .unwrap_or_else(|| {
                p.push(
                    key,
                    format!("`{s}` is not a positive duration like \"250ms\", \"5s\""),
                );
                default
            }),
    };
    let rate_per_second = raw.rate_per_second.unwrap_or(100.0);
    if !(rate_per_second.is_finite() && rate_per_second > 0.0) {
        p.push("oauth.rate_per_second", "must be a positive number");
    }
    let rate_burst = raw.rate_burst.unwrap_or(200);
    if rate_burst == 0 {
        p.push("oauth.rate_burst", "must be at least 1");
    }
    let rate_clients = raw.rate_clients.unwrap_or(100_000);
    if rate_clients == 0 {
        p.push("oauth.rate_clients", "must be at least 1");
    }
    let mut clients: Vec<OAuthClient> = Vec::new();
    for (i, c) in raw.clients.iter().enumerate() {
        let key = format!("oauth.clients[{i}]");
        if c.id.is_empty() || c.id.len() > 256 || c.id.chars().any(char::is_control) {
            p.push(
                &format!("{key}.id"),
                "must be 1 to 256 printable characters",
            );
        }
        if c.secret.len() < 16 {
            p.push(&format!("{key}.secret"), "must be at least 16 characters");
        }
        if clients.iter().any(|o| o.id == c.id) {
            p.push(&format!("{key}.id"), format!("`{}` is listed twice", c.id));
        }
        clients.push(OAuthClient {
            id: c.id.clone(),
            secret: c.secret.clone(),
        });
    }
    OAuth {
        rate_per_second: if rate_per_second > 0.0 && rate_per_second.is_finite() {
            rate_per_second
        } else {
            100.0
        },
        rate_burst: rate_burst.max(1),
        rate_clients: rate_clients.max(1),
        revoke_pass_on_deadline: dur(
            p,
            "oauth.revoke_pass_on_deadline",
            &raw.revoke_pass_on_deadline,
            Duration::from_secs(2),
        ),
        live_parent_ttl: dur(
            p,
            "oauth.live_parent_ttl",
            &raw.live_parent_ttl,
            Duration::from_secs(60),
        ),
        clients,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = r#"
        [listen]
        public = "127.0.0.1:0"
        [upstream]
        api = "http://127.0.0.1:9000"
        [tokens]
        keyring = "keys.toml"
        [policy]
        file = "policy.toml"
    "#;

    #[test]
    fn minimal_config_gets_safe_defaults() {
        let c = validate(MIN, Path::new("/etc/sg/gw.toml")).unwrap();
        assert_eq!(c.external, ExternalTokens::Reject);
        assert!(!c.unmatched_pass);
        assert_eq!(c.max_expires_in, Duration::from_secs(3600));
        assert_eq!(c.keyring, Path::new("/etc/sg/keys.toml"));
        assert_eq!(c.admin.ip().to_string(), "127.0.0.1");
    }

    #[test]
    fn upstream_connection_keys_parse_and_bad_ones_are_named() {
        let c = validate(MIN, Path::new("gw.toml")).unwrap();
        assert_eq!(c.upstream.pool.idle_timeout, Duration::from_secs(60));
        assert_eq!(c.upstream.pool.max_connections, 4096);
        let text = MIN.replace(
            "api = \"http://127.0.0.1:9000\"",
            "api = \"http://127.0.0.1:9000\"\nidle_timeout = \"2s\"\nmax_idle = 8\nmax_connections = 16\nconnection_wait = \"250ms\"\nh2_keepalive = \"10s\"\ntcp_keepalive = \"30s\"\nbody_idle_timeout = \"5s\"",
        );
        let p = validate(&text, Path::new("gw.toml")).unwrap().upstream.pool;
        assert_eq!(
            (
                p.idle_timeout,
                p.max_idle,
                p.max_connections,
                p.connection_wait
            ),
            (Duration::from_secs(2), 8, 16, Duration::from_millis(250))
        );
        assert_eq!(
            (p.h2_keepalive, p.tcp_keepalive, p.body_idle_timeout),
            (
                Duration::from_secs(10),
                Duration::from_secs(30),
                Duration::from_secs(5)
            )
        );
        let text = MIN.replace(
            "api = \"http://127.0.0.1:9000\"",
            "api = \"http://127.0.0.1:9000\"\nmax_connections = 0\nbody_idle_timeout = \"0s\"\nidle_timeout = \"soon\"",
        );
        let err = validate(&text, Path::new("gw.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("gw.toml: upstream.max_connections: must be at least 1"),
            "{err}"
        );
        assert!(err.contains("gw.toml: upstream.body_idle_timeout"), "{err}");
        assert!(err.contains("gw.toml: upstream.idle_timeout"), "{err}");
    }

    #[test]
    fn every_bad_key_is_named_with_the_file() {
        let text = MIN.replace("http://127.0.0.1:9000", "ftp://x")
            + "\n[cors]\norigins = [\"https://a.example/\"]\n[log]\nformat = \"xml\"\n";
        let err = validate(&text, Path::new("gw.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("gw.toml: upstream.api: `ftp://x`"), "{err}");
        assert!(err.contains("gw.toml: cors.origins[0]"), "{err}");
        assert!(err.contains("gw.toml: log.format"), "{err}");
    }

    #[test]
    fn the_log_flush_interval_is_bounded_and_may_be_zero() {
        let c = validate(MIN, Path::new("gw.toml")).unwrap();
        assert_eq!(c.log_flush, Duration::from_millis(20));
        let c = validate(
            &format!("{MIN}\n[log]\nflush = \"0s\"\n"),
            Path::new("gw.toml"),
        )
        .unwrap();
        assert_eq!(c.log_flush, Duration::ZERO);
        for bad in ["2s", "soon", "-1s"] {
            let err = validate(
                &format!("{MIN}\n[log]\nflush = \"{bad}\"\n"),
                Path::new("gw.toml"),
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains("gw.toml: log.flush"), "{bad}: {err}");
        }
    }

    #[test]
    fn oauth_clients_and_limits_are_checked() {
        let c = validate(MIN, Path::new("gw.toml")).unwrap();
        assert!(c.oauth.clients.is_empty());
        assert_eq!(c.oauth.rate_burst, 200);
        let text = MIN.to_string() + "\n[oauth]\nrate_per_second = -1.0\nrate_bust = 3\n";
        let err = validate(&text, Path::new("gw.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("rate_bust"), "{err}");
        let text = MIN.to_string()
            + "\n[oauth]\nrate_per_second = -1.0\n[[oauth.clients]]\nid = \"a\"\nsecret = \"short\"\n\
               [[oauth.clients]]\nid = \"a\"\nsecret = \"long-enough-secret-0001\"\n";
        let err = validate(&text, Path::new("gw.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("gw.toml: oauth.rate_per_second"), "{err}");
        assert!(err.contains("gw.toml: oauth.clients[0].secret"), "{err}");
        assert!(err.contains("gw.toml: oauth.clients[1].id"), "{err}");
        assert!(!err.contains("long-enough-secret-0001"), "{err}");
        let c = validate(
            &(MIN.to_string()
                + "\n[[oauth.clients]]\nid = \"a\"\nsecret = \"long-enough-secret-0001\"\n"),
            Path::new("gw.toml"),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("long-enough-secret-0001"));
    }

    #[test]
    fn typos_are_errors_with_a_line() {
        let text = MIN.replace("keyring =", "keyrnig =");
        let err = validate(&text, Path::new("gw.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("gw.toml: line 7: unknown field `keyrnig`"),
            "{err}"
        );
    }

    #[test]
    fn introspection_modes_need_the_section() {
        let text = MIN.replace(
            "keyring = \"keys.toml\"",
            "keyring = \"k\"\nexternal = \"introspect\"",
        );
        let err = validate(&text, Path::new("gw.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("tokens.external"), "{err}");
    }

    #[test]
    fn choices_name_every_allowed_word() {
        let mut p = Problems::new(Path::new("gw.toml"));
        let three = [("a", 1), ("b", 2), ("c", 3)];
        assert_eq!(choice(&mut p, "k", None, &three), 1);
        assert_eq!(choice(&mut p, "k", Some("c"), &three), 3);
        assert_eq!(choice(&mut p, "k", Some("x"), &three), 1);
        assert!(choice(
            &mut p,
            "j",
            Some("y"),
            &[("on", true), ("off", false)]
        ));
        assert_eq!(
            p.to_string(),
            "gw.toml: k: `x` must be \"a\", \"b\" or \"c\"\ngw.toml: j: `y` must be \"on\" or \"off\""
        );
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("h"), None);
        assert_eq!(parse_duration("5 s"), None);
    }
}
