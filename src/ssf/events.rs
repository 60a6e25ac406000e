//! From SET events to what the gateway does about them.
//!
//! | event type (CAEP / RISC / SSF)              | action                          |
//! |---------------------------------------------|---------------------------------|
//! | CAEP `session-revoked`                      | revoke the subject's tokens     |
//! | CAEP `credential-change`                    | revoke the subject's tokens     |
//! | RISC `account-disabled`                     | revoke the subject's tokens     |
//! | RISC `account-purged`                       | revoke the subject's tokens     |
//! | RISC `credential-compromise`                | revoke the subject's tokens     |
//! | RISC `sessions-revoked`                     | revoke the subject's tokens     |
//! | CAEP `token-claims-change` and every other  | logged and counted, not acted on|
//! | SSF `verification`                          | matched to the state we asked   |
//! | SSF `stream-updated`                        | the stream status is updated    |
//!
//! "The subject's tokens" are those issued up to the event time: CAEP's
//! `event_timestamp` when present, else the SET's `iat`, never later than
//! now. The subject comes from SSF's top-level `sub_id`, or from the
//! event's own `subject` member (older CAEP/RISC profiles). Subject
//! identifier formats (RFC 9493) map through `[ssf.subjects]`:
//!
//! | format          | matched against (default)                             |
//! |-----------------|-------------------------------------------------------|
//! | `email`         | the grant's login, case-insensitive (`login`)         |
//! | `account`       | `acct:` URI's address, as a login (`login`)           |
//! | `iss_sub`       | the grant's subject, when `iss` is the configured one |
//! | `opaque`        | not mapped (`ignore`)                                 |
//! | `aliases`       | every identifier in it that maps                      |
//! | complex (SSF)   | its `user` member                                     |
//! | anything else   | not mapped                                            |
//!
//! A login match becomes a subject revocation of `login:<lower-cased
//! login>`, the second subject key of grants that carry a login.

use serde_json::{Map, Value};

use super::config::{MapTo, Subjects};

const CAEP: &str = "https://schemas.openid.net/secevent/caep/event-type/";
const RISC: &str = "https://schemas.openid.net/secevent/risc/event-type/";
const SSF: &str = "https://schemas.openid.net/secevent/ssf/event-type/";

/// Prefix of the subject key that login matches are revoked under.
pub const LOGIN_PREFIX: &str = "login:";

/// Event types that revoke, by their short name (a metrics label), and
/// the known ones that are only counted: the bounded label sets of
/// `scopegate_ssf_events_total{type}`.
pub use crate::metrics::ssf::{COUNTED, REVOKING};

/// The status a transmitter gives its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamStatus {
    Enabled,
    Paused,
    Disabled,
}

impl StreamStatus {
    pub fn parse(s: &str) -> Option<StreamStatus> {
        match s {
            "enabled" => Some(StreamStatus::Enabled),
            "paused" => Some(StreamStatus::Paused),
            "disabled" => Some(StreamStatus::Disabled),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            StreamStatus::Enabled => "enabled",
            StreamStatus::Paused => "paused",
            StreamStatus::Disabled => "disabled",
        }
    }
}

/// What one event asks of the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Revoke these subject keys' tokens issued up to `at_ms`. Empty when
    /// no identifier in the event could be mapped.
    Revoke { subjects: Vec<String>, at_ms: u64 },
    /// Known or unknown, but does not reduce access: counted only.
    Count,
    /// A verification event, with the `state` it echoes.
    Verification { state: Option<String> },
    /// The transmitter changed the stream's status.
    StreamUpdated { status: StreamStatus },
}

/// Why an event's payload does not conform to its definition (`invalid_request`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("a revoking event names no subject")]
    NoSubject,
    #[error("event member `{0}` has the wrong type")]
    Bad(&'static str),
}

/// The bounded metrics label for an event type URI: its short name when
/// known, else `other`.
pub fn label(uri: &str) -> &'static str {
    let short = uri
        .strip_prefix(CAEP)
        .or_else(|| uri.strip_prefix(RISC))
        .or_else(|| uri.strip_prefix(SSF));
    let Some(short) = short else { return "other" };
    if let Some(n) = REVOKING.iter().chain(COUNTED).find(|n| **n == short) {
        return n;
    }
    match short {
        "verification" if uri.starts_with(SSF) => "verification",
        "stream-updated" if uri.starts_with(SSF) => "stream-updated",
        _ => "other",
    }
}

/// Maps one event. `sub_id` is the SET's top-level subject, `iat` its issue
/// time (unix seconds), `now_ms` the current time.
pub fn map(
    uri: &str,
    payload: &Map<String, Value>,
    sub_id: Option<&Value>,
    iat: u64,
    now_ms: u64,
    cfg: &Subjects,
) -> Result<Action, EventError> {
    let name = label(uri);
    if name == "verification" {
        let state = match payload.get("state") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(EventError::Bad("state")),
        };
        return Ok(Action::Verification { state });
    }
    if name == "stream-updated" {
        let status = payload
            .get("status")
            .and_then(Value::as_str)
            .and_then(StreamStatus::parse)
            .ok_or(EventError::Bad("status"))?;
        return Ok(Action::StreamUpdated { status });
    }
    if !REVOKING.contains(&name) || !(uri.starts_with(CAEP) || uri.starts_with(RISC)) {
        return Ok(Action::Count);
    }
    let at = match payload.get("event_timestamp") {
        None | Some(Value::Null) => iat,
        Some(v) => v.as_u64().ok_or(EventError::Bad("event_timestamp"))?,
    };
    let at_ms = at.saturating_mul(1000).min(now_ms);
    let subject = match (sub_id, payload.get("subject")) {
        (Some(s), _) => s,
        (None, Some(s @ Value::Object(_))) => s,
        (None, Some(_)) => return Err(EventError::Bad("subject")),
        (None, None) => return Err(EventError::NoSubject),
    };
    let mut subjects = Vec::new();
    map_subject(subject, cfg, &mut subjects, 0);
    subjects.sort();
    subjects.dedup();
    Ok(Action::Revoke { subjects, at_ms })
}

/// Adds the gateway subject keys one identifier maps to.
fn map_subject(v: &Value, cfg: &Subjects, out: &mut Vec<String>, depth: u8) {
    let Value::Object(m) = v else { return };
    let field = |k: &str| m.get(k).and_then(Value::as_str);
    let mut add = |to: MapTo, id: &str| {
        let id = id.trim();
        if id.is_empty() || id.len() > 200 || id.chars().any(char::is_control) {
            return;
        }
        let key = match to {
            MapTo::Subject => id.to_owned(),
            MapTo::Login => format!("{LOGIN_PREFIX}{}", id.to_lowercase()),
            MapTo::Ignore => return,
        };
        // Lower-casing can lengthen a string: the key itself must be a
        // subject the revocation format carries, or the identifier is unmappable.
        if crate::revocation::event::validate_subject(&key).is_ok() {
            out.push(key);
        }
    };
    match field("format") {
        Some("email") => {
            if let Some(e) = field("email") {
                add(cfg.email, e);
            }
        }
        Some("account") => {
            if let Some(a) = field("uri").and_then(|u| u.strip_prefix("acct:")) {
                add(cfg.account, a);
            }
        }
        Some("opaque") => {
            if let Some(id) = field("id") {
                add(cfg.opaque, id);
            }
        }
        Some("iss_sub") => {
            if let (Some(iss), Some(sub)) = (field("iss"), field("sub"))
                && iss == cfg.iss_sub_issuer
            {
                add(cfg.iss_sub, sub);
            }
        }
        Some("aliases") if depth == 0 => {
            if let Some(Value::Array(ids)) = m.get("identifiers") {
                for id in ids.iter().take(16) {
                    map_subject(id, cfg, out, depth + 1);
                }
            }
        }
        // SSF's complex subject: `{"user": {...}, "session": {...}, ...}`.
        None if depth == 0 => {
            if let Some(user) = m.get("user") {
                map_subject(user, cfg, out, depth + 1);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg() -> Subjects {
        Subjects {
            email: MapTo::Login,
            account: MapTo::Login,
            opaque: MapTo::Ignore,
            iss_sub: MapTo::Subject,
            iss_sub_issuer: "https://idp".into(),
        }
    }

    fn revoke(uri: &str, payload: Value, sub: Option<Value>) -> Result<Action, EventError> {
        let Value::Object(p) = payload else { panic!() };
        map(uri, &p, sub.as_ref(), 1_000, 5_000_000, &cfg())
    }

    #[test]
    fn every_revoking_type_revokes_and_others_are_counted() {
        let sub = json!({"format": "email", "email": "Alice@Example.com"});
        for name in REVOKING {
            let base = if name.contains("session-revoked") || *name == "credential-change" {
                CAEP
            } else {
                RISC
            };
            let a = revoke(&format!("{base}{name}"), json!({}), Some(sub.clone())).unwrap();
            assert_eq!(
                a,
                Action::Revoke {
                    subjects: vec!["login:alice@example.com".into()],
                    at_ms: 1_000_000
                },
                "{name}"
            );
        }
        for uri in [
            format!("{CAEP}token-claims-change"),
            format!("{RISC}account-enabled"),
            "https://example.com/custom".to_string(),
            format!("{SSF}session-revoked"),
        ] {
            assert_eq!(
                revoke(&uri, json!({}), Some(sub.clone())),
                Ok(Action::Count)
            );
        }
        assert_eq!(
            label(&format!("{CAEP}token-claims-change")),
            "token-claims-change"
        );
        assert_eq!(label("urn:x"), "other");
    }

    #[test]
    fn event_time_is_event_timestamp_capped_at_now() {
        let uri = format!("{CAEP}session-revoked");
        let sub = Some(json!({"format": "iss_sub", "iss": "https://idp", "sub": "1001"}));
        let at = |p| match revoke(&uri, p, sub.clone()).unwrap() {
            Action::Revoke { at_ms, subjects } => {
                assert_eq!(subjects, vec!["1001".to_string()]);
                at_ms
            }
            a => panic!("{a:?}"),
        };
        assert_eq!(at(json!({"event_timestamp": 2_000})), 2_000_000);
        assert_eq!(at(json!({"event_timestamp": 9_999_999})), 5_000_000);
        assert_eq!(
            revoke(&uri, json!({"event_timestamp": "x"}), sub.clone()),
            Err(EventError::Bad("event_timestamp"))
        );
    }

    #[test]
    fn subject_formats_map_through_the_config() {
        let uri = format!("{RISC}account-disabled");
        let subjects = |s: Value| match revoke(&uri, json!({}), Some(s)).unwrap() {
            Action::Revoke { subjects, .. } => subjects,
            a => panic!("{a:?}"),
        };
        assert_eq!(
            subjects(json!({"format": "account", "uri": "acct:Bob@x.org"})),
            vec!["login:bob@x.org"]
        );
        assert!(subjects(json!({"format": "opaque", "id": "1001"})).is_empty());
        // 'İ' (2 bytes) lower-cases to 3 bytes: 200 of them would not fit a subject.
        assert!(subjects(json!({"format": "email", "email": "İ".repeat(100)})).is_empty());
        assert!(
            subjects(json!({"format": "iss_sub", "iss": "https://other", "sub": "1"})).is_empty()
        );
        assert!(subjects(json!({"format": "phone_number", "phone_number": "+1"})).is_empty());
        assert_eq!(
            subjects(json!({"format": "aliases", "identifiers": [
                {"format": "email", "email": "a@x"},
                {"format": "iss_sub", "iss": "https://idp", "sub": "7"},
                {"format": "aliases", "identifiers": [{"format": "email", "email": "deep@x"}]}
            ]})),
            vec!["7", "login:a@x"]
        );
        assert_eq!(
            subjects(
                json!({"user": {"format": "email", "email": "u@x"}, "device": {"format": "opaque", "id": "d"}})
            ),
            vec!["login:u@x"]
        );
        // The older profile: the subject inside the event.
        assert_eq!(
            revoke(
                &uri,
                json!({"subject": {"format": "email", "email": "e@x"}}),
                None
            ),
            Ok(Action::Revoke {
                subjects: vec!["login:e@x".into()],
                at_ms: 1_000_000
            })
        );
        assert_eq!(revoke(&uri, json!({}), None), Err(EventError::NoSubject));
        assert_eq!(
            revoke(&uri, json!({"subject": "e@x"}), None),
            Err(EventError::Bad("subject"))
        );
    }

    #[test]
    fn ssf_events() {
        assert_eq!(
            revoke(&format!("{SSF}verification"), json!({"state": "abc"}), None),
            Ok(Action::Verification {
                state: Some("abc".into())
            })
        );
        assert_eq!(
            revoke(
                &format!("{SSF}stream-updated"),
                json!({"status": "paused"}),
                None
            ),
            Ok(Action::StreamUpdated {
                status: StreamStatus::Paused
            })
        );
        assert_eq!(
            revoke(
                &format!("{SSF}stream-updated"),
                json!({"status": "off"}),
                None
            ),
            Err(EventError::Bad("status"))
        );
    }
}
