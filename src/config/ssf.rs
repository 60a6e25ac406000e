//! The `[ssf]` section: which transmitter to trust, how events arrive (push,
//! poll or both) and how subject identifiers map to the gateway's subjects.
//!
//! Like the rest of the config it is read in two steps: a serde mirror with
//! `deny_unknown_fields`, then validation into typed values, every problem
//! reported with its key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http::Uri;
use jsonwebtoken::Algorithm;
use serde::Deserialize;

use super::{Problems, parse_duration};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSsf {
    transmitter: String,
    audience: String,
    issuer: Option<String>,
    jwks_file: Option<String>,
    algorithms: Option<Vec<String>>,
    iat_skew: Option<String>,
    jwks_min_refresh: Option<String>,
    stream_id: Option<String>,
    bearer: Option<String>,
    status_interval: Option<String>,
    timeout: Option<String>,
    verify: Option<bool>,
    push: Option<RawPush>,
    poll: Option<RawPoll>,
    #[serde(default)]
    subjects: RawSubjects,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPush {
    path: Option<String>,
    authorization: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPoll {
    endpoint: Option<String>,
    max_events: Option<u32>,
    return_immediately: Option<bool>,
    wait: Option<String>,
    interval: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSubjects {
    email: Option<String>,
    account: Option<String>,
    opaque: Option<String>,
    iss_sub: Option<String>,
    iss_sub_issuer: Option<String>,
}

/// What a subject identifier of one format is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapTo {
    /// The grant's subject (the Box user id, or introspection's `sub`).
    Subject,
    /// The grant's login (the Box login the probe returns), case-insensitive.
    Login,
    /// Not mapped: such an event is counted as unmappable.
    Ignore,
}

/// How each RFC 9493 format maps (see the table in `crate::ssf`).
#[derive(Debug, Clone)]
pub struct Subjects {
    /// `email`: default `login`.
    pub email: MapTo,
    /// `account` (`acct:` URI): default `login`.
    pub account: MapTo,
    /// `opaque`: default `ignore`.
    pub opaque: MapTo,
    /// `iss_sub`: default `subject`, only with `iss == iss_sub_issuer`.
    pub iss_sub: MapTo,
    /// The issuer an `iss_sub` identifier must name; default the SET issuer.
    pub iss_sub_issuer: String,
}

/// Push delivery (RFC 8935) on the public listener.
#[derive(Debug, Clone)]
pub struct Push {
    /// The path the transmitter posts to; default `/ssf/events`.
    pub path: String,
    /// The whole `Authorization` header value the transmitter is configured
    /// to send (e.g. `Bearer <secret>`), compared in constant time.
    pub authorization: String,
}

/// Poll delivery (RFC 8936) against the transmitter.
#[derive(Debug, Clone)]
pub struct Poll {
    /// The poll endpoint; default: the stream's `delivery.endpoint_url`.
    pub endpoint: Option<Uri>,
    /// `maxEvents` per request; default 100.
    pub max_events: u32,
    /// `returnImmediately`; default false (long polling).
    pub return_immediately: bool,
    /// Longest a poll request may take (the transmitter's long-poll hold
    /// must be shorter); default 30 s.
    pub wait: Duration,
    /// Pause between polls that returned nothing with
    /// `returnImmediately`, and the first back-off after an error; default 1 s.
    pub interval: Duration,
}

/// The validated `[ssf]` section.
#[derive(Debug, Clone)]
pub struct SsfConfig {
    /// The transmitter's base URL; its metadata is at
    /// `/.well-known/ssf-configuration` below it.
    pub transmitter: Uri,
    /// The `iss` every SET must carry; default the transmitter URL as written.
    pub issuer: String,
    /// The `aud` every SET must carry (one of its values).
    pub audience: String,
    /// Keys from this JWKS file instead of the metadata's `jwks_uri`.
    pub jwks_file: Option<PathBuf>,
    /// Accepted JWS algorithms; default RS256 and ES256. Never `none`, never HMAC.
    pub algorithms: Vec<Algorithm>,
    /// Largest distance between a SET's `iat` and now; default 5 min. Also
    /// how long a `jti` is remembered (twice this).
    pub iat_skew: Duration,
    /// Least time between two JWKS fetches caused by unknown key ids; default 30 s.
    pub jwks_min_refresh: Duration,
    /// The stream's id at the transmitter (status, verification, config).
    pub stream_id: Option<String>,
    /// The credential the gateway presents to the transmitter's endpoints.
    pub bearer: Option<String>,
    /// How often the stream status is read; default 60 s.
    pub status_interval: Duration,
    /// Timeout of metadata, JWKS, status and verification calls; default 10 s.
    pub timeout: Duration,
    /// Ask for a verification event at start; default true when the
    /// transmitter has a verification endpoint and `stream_id` is set.
    pub verify: bool,
    pub push: Option<Push>,
    pub poll: Option<Poll>,
    pub subjects: Subjects,
}

/// Algorithms a JWKS can carry for a SET: asymmetric only.
const ASYMMETRIC: &[(&str, Algorithm)] = &[
    ("RS256", Algorithm::RS256),
    ("RS384", Algorithm::RS384),
    ("RS512", Algorithm::RS512),
    ("PS256", Algorithm::PS256),
    ("PS384", Algorithm::PS384),
    ("PS512", Algorithm::PS512),
    ("ES256", Algorithm::ES256),
    ("ES384", Algorithm::ES384),
    ("EdDSA", Algorithm::EdDSA),
];

fn map_to(p: &mut Problems, key: &str, v: Option<&str>, default: MapTo, login: bool) -> MapTo {
    match v {
        None => default,
        Some("subject") => MapTo::Subject,
        Some("login") if login => MapTo::Login,
        Some("ignore") => MapTo::Ignore,
        Some(o) => {
            let words = if login {
                "\"subject\", \"login\" or \"ignore\""
            } else {
                "\"subject\" or \"ignore\""
            };
            p.push(key, format!("`{o}` must be {words}"));
            default
        }
    }
}

fn url(p: &mut Problems, key: &str, s: &str) -> Uri {
    match s.parse::<Uri>() {
        Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some() => u,
        _ => {
            p.push(key, format!("`{s}` must be an http:// or https:// URL"));
            Uri::from_static("http://invalid")
        }
    }
}

fn dur(p: &mut Problems, key: &str, s: Option<&String>, default: Duration) -> Duration {
    match s {
        None => default,
        Some(s) => parse_duration(s)
            .filter(|d| !d.is_zero())
            .unwrap_or_else(|| {
                p.push(
                    key,
                    format!("`{s}` is not a positive duration like \"250ms\", \"5s\", \"10m\""),
                );
                default
            }),
    }
}

/// Validates `[ssf]`; `base` resolves relative paths.
pub fn validate(raw: &RawSsf, p: &mut Problems, base: &Path) -> SsfConfig {
    let transmitter = url(p, "ssf.transmitter", &raw.transmitter);
    if raw.audience.is_empty() {
        p.push("ssf.audience", "must not be empty");
    }
    let issuer = raw
        .issuer
        .clone()
        .unwrap_or_else(|| raw.transmitter.clone());
    let algorithms = match &raw.algorithms {
        None => vec![Algorithm::RS256, Algorithm::ES256],
        Some(list) => {
            let mut out = Vec::new();
            for (i, a) in list.iter().enumerate() {
                match ASYMMETRIC.iter().find(|(n, _)| n == a) {
                    Some((_, alg)) => out.push(*alg),
                    None => p.push(
                        &format!("ssf.algorithms[{i}]"),
                        format!("`{a}` is not allowed: use RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA (never none or HMAC)"),
                    ),
                }
            }
            if list.is_empty() {
                p.push("ssf.algorithms", "must name at least one algorithm");
            }
            out
        }
    };
    let push = raw.push.as_ref().map(|r| {
        let path = r.path.clone().unwrap_or_else(|| "/ssf/events".into());
        let reserved = ["/2.0/", "/api/", "/oauth2/"];
        if !path.starts_with('/')
            || path.len() < 2
            || reserved.iter().any(|r| path.starts_with(r))
            || path.contains(['?', '#', '%'])
        {
            p.push(
                "ssf.push.path",
                format!("`{path}` must be an absolute path outside /2.0/, /api/ and /oauth2/, without ?, # or %"),
            );
        }
        if r.authorization.len() < 16 {
            p.push(
                "ssf.push.authorization",
                "must be at least 16 characters (the whole header value, e.g. \"Bearer <secret>\")",
            );
        }
        Push {
            path,
            authorization: r.authorization.clone(),
        }
    });
    let poll = raw.poll.as_ref().map(|r| Poll {
        endpoint: r
            .endpoint
            .as_deref()
            .map(|s| url(p, "ssf.poll.endpoint", s)),
        max_events: match r.max_events {
            Some(0) => {
                p.push("ssf.poll.max_events", "must be at least 1");
                1
            }
            Some(n) => n.min(1000),
            None => 100,
        },
        return_immediately: r.return_immediately.unwrap_or(false),
        wait: dur(p, "ssf.poll.wait", r.wait.as_ref(), Duration::from_secs(30)),
        interval: dur(
            p,
            "ssf.poll.interval",
            r.interval.as_ref(),
            Duration::from_secs(1),
        ),
    });
    if push.is_none() && poll.is_none() {
        p.push(
            "ssf",
            "needs [ssf.push], [ssf.poll] or both: events have no way in",
        );
    }
    let s = &raw.subjects;
    let subjects = Subjects {
        email: map_to(
            p,
            "ssf.subjects.email",
            s.email.as_deref(),
            MapTo::Login,
            true,
        ),
        account: map_to(
            p,
            "ssf.subjects.account",
            s.account.as_deref(),
            MapTo::Login,
            true,
        ),
        opaque: map_to(
            p,
            "ssf.subjects.opaque",
            s.opaque.as_deref(),
            MapTo::Ignore,
            true,
        ),
        iss_sub: map_to(
            p,
            "ssf.subjects.iss_sub",
            s.iss_sub.as_deref(),
            MapTo::Subject,
            false,
        ),
        iss_sub_issuer: s.iss_sub_issuer.clone().unwrap_or_else(|| issuer.clone()),
    };
    if raw.bearer.as_deref().is_some_and(str::is_empty) {
        p.push("ssf.bearer", "must not be empty");
    }
    SsfConfig {
        transmitter,
        issuer,
        audience: raw.audience.clone(),
        jwks_file: raw.jwks_file.as_deref().map(|f| base.join(f)),
        algorithms,
        iat_skew: dur(
            p,
            "ssf.iat_skew",
            raw.iat_skew.as_ref(),
            Duration::from_secs(300),
        ),
        jwks_min_refresh: dur(
            p,
            "ssf.jwks_min_refresh",
            raw.jwks_min_refresh.as_ref(),
            Duration::from_secs(30),
        ),
        stream_id: raw.stream_id.clone(),
        bearer: raw.bearer.clone(),
        status_interval: dur(
            p,
            "ssf.status_interval",
            raw.status_interval.as_ref(),
            Duration::from_secs(60),
        ),
        timeout: dur(
            p,
            "ssf.timeout",
            raw.timeout.as_ref(),
            Duration::from_secs(10),
        ),
        verify: raw.verify.unwrap_or(true),
        push,
        poll,
        subjects,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SsfConfig, String> {
        let raw: RawSsf = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut p = Problems::new(Path::new("gw.toml"));
        let c = validate(&raw, &mut p, Path::new("/etc/sg"));
        p.into_result(c).map_err(|p| p.to_string())
    }

    #[test]
    fn defaults_are_safe() {
        let c = parse(
            "transmitter = \"https://idp.example.com\"\naudience = \"https://gw\"\n[push]\nauthorization = \"Bearer 0123456789abcdef\"\n",
        )
        .unwrap();
        assert_eq!(c.algorithms, vec![Algorithm::RS256, Algorithm::ES256]);
        assert_eq!(c.issuer, "https://idp.example.com");
        assert_eq!(c.iat_skew, Duration::from_secs(300));
        assert_eq!(c.push.unwrap().path, "/ssf/events");
        assert_eq!(c.subjects.email, MapTo::Login);
        assert_eq!(c.subjects.opaque, MapTo::Ignore);
        assert!(c.poll.is_none());
    }

    #[test]
    fn none_hmac_reserved_paths_and_no_delivery_are_refused() {
        let err = parse(
            "transmitter = \"ftp://x\"\naudience = \"a\"\nalgorithms = [\"none\", \"HS256\", \"ES256\"]\n[push]\npath = \"/2.0/ssf\"\nauthorization = \"short\"\n[subjects]\niss_sub = \"login\"\n",
        )
        .unwrap_err();
        for key in [
            "ssf.transmitter",
            "ssf.algorithms[0]",
            "ssf.algorithms[1]",
            "ssf.push.path",
            "ssf.push.authorization",
            "ssf.subjects.iss_sub",
        ] {
            assert!(err.contains(&format!("gw.toml: {key}:")), "{key}: {err}");
        }
        assert!(!err.contains("algorithms[2]"), "{err}");
        let err = parse("transmitter = \"https://x\"\naudience = \"a\"\n").unwrap_err();
        assert!(err.contains("gw.toml: ssf: needs"), "{err}");
        let err =
            parse("transmitter = \"https://x\"\naudience = \"a\"\nsurprise = 1\n").unwrap_err();
        assert!(err.contains("unknown field `surprise`"), "{err}");
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    /// The commented `[ssf]` example in the shipped configs, uncommented,
    /// is a valid section naming every key: the documentation cannot drift.
    #[test]
    fn the_documented_example_is_valid_and_complete() {
        for file in ["config/scopegate-box.toml", "config/scopegate-local.toml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
            let text = std::fs::read_to_string(&path).unwrap();
            let start = text.find("# [ssf]\n").expect("an [ssf] example");
            let mut toml_text = String::new();
            for line in text[start..].lines() {
                let Some(l) = line.strip_prefix('#') else {
                    break;
                };
                toml_text.push_str(l.strip_prefix(' ').unwrap_or(l));
                toml_text.push('\n');
            }
            let table: toml::Table = toml::from_str(&toml_text).unwrap();
            let raw: RawSsf = table["ssf"].clone().try_into().unwrap();
            let mut p = Problems::new(&path);
            let _ = validate(&raw, &mut p, Path::new("/"));
            assert!(p.is_empty(), "{file}: {p}");
            for key in [
                "transmitter",
                "audience",
                "issuer",
                "jwks_file",
                "algorithms",
                "iat_skew",
                "jwks_min_refresh",
                "stream_id",
                "bearer",
                "status_interval",
                "timeout",
                "verify",
                "push",
                "poll",
                "subjects",
            ] {
                assert!(
                    table["ssf"].get(key).is_some(),
                    "{file}: ssf.{key} undocumented"
                );
            }
            for (section, keys) in [
                ("push", &["path", "authorization"][..]),
                (
                    "poll",
                    &[
                        "endpoint",
                        "max_events",
                        "return_immediately",
                        "wait",
                        "interval",
                    ],
                ),
                (
                    "subjects",
                    &["email", "account", "opaque", "iss_sub", "iss_sub_issuer"],
                ),
            ] {
                for k in keys {
                    assert!(
                        table["ssf"][section].get(k).is_some(),
                        "{file}: ssf.{section}.{k} undocumented"
                    );
                }
            }
        }
    }
}
