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
}

/// Folder-subtree checks (see `crate::ancestry`).
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
    pub stream: Option<crate::revocation::stream::StreamConfig>,
    pub admin_secret: Option<String>,
    pub log_json: bool,
    /// Largest `/oauth2/*` form body read; default 16 KiB.
    pub oauth_body_limit: usize,
    /// Largest JSON body read to find a route's object; default 1 MiB.
    pub json_body_limit: usize,
    /// Largest JSON answer rewritten for a downscoped token (see
    /// `crate::answer`), bytes; default 8 MiB. A larger one is a 502.
    pub answer_json_limit: usize,
    /// Grant cache capacity in entries; default 1,000,000.
    pub grant_cache_entries: u64,
    pub subtree: Subtree,
    pub limits: Limits,
}

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
            use crate::revocation::stream::OnStale;
            let on_stale = choice(
                &mut p,
                "revocation.redis.on_stale",
                r.on_stale.as_deref(),
                &[("reject", OnStale::Reject), ("serve", OnStale::Serve)],
            );
            Some(crate::revocation::stream::StreamConfig {
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
    let config = Config {
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
                .clamp(64, crate::token::MAX_TOKEN_LEN),
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
                crate::ancestry::DEFAULT_TTL,
            ),
            cache_entries: raw
                .subtree
                .cache_entries
                .unwrap_or(crate::ancestry::DEFAULT_ENTRIES),
        },
    };
    p.into_result(config)
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
