//! The claims of a Security Event Token (RFC 8417), read strictly once the
//! signature has been checked.
//!
//! What is required: `jti` (a short printable string), `iss`, `aud` (a
//! string or an array of strings), `iat` (a non-negative integer) and
//! `events` (an object with at least one member, each an object). Anything
//! else that a SET may carry (`txn`, `toe`, `sub_id`, ...) is kept as JSON
//! for the event mapping or ignored. A SET with an `exp` in the past is
//! refused: RFC 8417 does not require `exp`, but one that is present is
//! honoured.

use serde_json::{Map, Value};

/// Longest `jti` accepted, in bytes.
pub const MAX_JTI_LEN: usize = 256;
/// Most events one SET may carry (SSF sends one; RFC 8417 allows related ones).
pub const MAX_EVENTS: usize = 16;

/// The claims of one SET.
#[derive(Debug, Clone, PartialEq)]
pub struct SetClaims {
    /// The SET's unique id at its issuer: what replays are recognised by.
    pub jti: String,
    pub iss: String,
    pub aud: Vec<String>,
    /// Issue time, unix seconds.
    pub iat: u64,
    /// `exp`, if the transmitter set one.
    pub exp: Option<u64>,
    /// SSF's top-level subject (`sub_id`), when present.
    pub sub_id: Option<Value>,
    /// Event type URI and payload, in the order they were written.
    pub events: Vec<(String, Map<String, Value>)>,
}

/// Why the claims are not a SET (`invalid_request` for the transmitter).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    #[error("the claims are not a JSON object")]
    NotObject,
    #[error("claim `{0}` is missing")]
    Missing(&'static str),
    #[error("claim `{0}` has the wrong type or value")]
    Bad(&'static str),
    #[error("`events` holds no event or too many")]
    EventCount,
}

fn string(m: &Map<String, Value>, k: &'static str) -> Result<String, SetError> {
    match m.get(k) {
        None | Some(Value::Null) => Err(SetError::Missing(k)),
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(_) => Err(SetError::Bad(k)),
    }
}

fn number(m: &Map<String, Value>, k: &'static str) -> Result<Option<u64>, SetError> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or(SetError::Bad(k)),
    }
}

impl SetClaims {
    /// Reads the claims from the JWS payload bytes. Never panics.
    pub fn from_slice(bytes: &[u8]) -> Result<SetClaims, SetError> {
        let v: Value = serde_json::from_slice(bytes).map_err(|_| SetError::NotObject)?;
        SetClaims::from_value(v)
    }

    pub fn from_value(v: Value) -> Result<SetClaims, SetError> {
        let Value::Object(mut m) = v else {
            return Err(SetError::NotObject);
        };
        let jti = string(&m, "jti")?;
        if jti.len() > MAX_JTI_LEN || jti.chars().any(char::is_control) {
            return Err(SetError::Bad("jti"));
        }
        let iss = string(&m, "iss")?;
        let aud = match m.get("aud") {
            None | Some(Value::Null) => return Err(SetError::Missing("aud")),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) if !a.is_empty() && a.len() <= 16 => a
                .iter()
                .map(|x| x.as_str().map(str::to_owned).ok_or(SetError::Bad("aud")))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(SetError::Bad("aud")),
        };
        let iat = number(&m, "iat")?.ok_or(SetError::Missing("iat"))?;
        let exp = number(&m, "exp")?;
        let sub_id = match m.remove("sub_id") {
            None | Some(Value::Null) => None,
            Some(v @ Value::Object(_)) => Some(v),
            Some(_) => return Err(SetError::Bad("sub_id")),
        };
        let events = match m.remove("events") {
            None | Some(Value::Null) => return Err(SetError::Missing("events")),
            Some(Value::Object(ev)) => ev,
            Some(_) => return Err(SetError::Bad("events")),
        };
        if events.is_empty() || events.len() > MAX_EVENTS {
            return Err(SetError::EventCount);
        }
        let events = events
            .into_iter()
            .map(|(k, v)| match v {
                Value::Object(payload) => Ok((k, payload)),
                _ => Err(SetError::Bad("events")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SetClaims {
            jti,
            iss,
            aud,
            iat,
            exp,
            sub_id,
            events,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({
            "jti": "j-1", "iss": "https://idp", "aud": "https://gw", "iat": 1_700_000_000u64,
            "sub_id": {"format": "email", "email": "a@b"},
            "events": {"https://schemas.openid.net/secevent/caep/event-type/session-revoked": {}}
        })
    }

    #[test]
    fn a_well_formed_set_reads() {
        let c = SetClaims::from_value(base()).unwrap();
        assert_eq!(c.jti, "j-1");
        assert_eq!(c.aud, vec!["https://gw".to_string()]);
        assert_eq!(c.events.len(), 1);
        assert!(c.sub_id.is_some());
        let mut v = base();
        v["aud"] = json!(["x", "https://gw"]);
        assert_eq!(SetClaims::from_value(v).unwrap().aud.len(), 2);
    }

    #[test]
    fn every_required_claim_is_checked() {
        let cases: Vec<(&str, Value, SetError)> = vec![
            ("jti", Value::Null, SetError::Missing("jti")),
            ("jti", json!(""), SetError::Bad("jti")),
            ("jti", json!("a\nb"), SetError::Bad("jti")),
            ("jti", json!("x".repeat(257)), SetError::Bad("jti")),
            ("iss", json!(7), SetError::Bad("iss")),
            ("aud", json!([]), SetError::Bad("aud")),
            ("aud", json!([1]), SetError::Bad("aud")),
            ("aud", Value::Null, SetError::Missing("aud")),
            ("iat", json!(-1), SetError::Bad("iat")),
            ("iat", json!("1"), SetError::Bad("iat")),
            ("iat", Value::Null, SetError::Missing("iat")),
            ("exp", json!(1.5), SetError::Bad("exp")),
            ("sub_id", json!("a@b"), SetError::Bad("sub_id")),
            ("events", json!({}), SetError::EventCount),
            ("events", json!([]), SetError::Bad("events")),
            ("events", json!({"x": 1}), SetError::Bad("events")),
        ];
        for (k, v, want) in cases {
            let mut c = base();
            c[k] = v.clone();
            assert_eq!(SetClaims::from_value(c), Err(want), "{k} = {v}");
        }
        assert_eq!(SetClaims::from_slice(b"[1]"), Err(SetError::NotObject));
        assert_eq!(SetClaims::from_slice(b"\xff"), Err(SetError::NotObject));
    }
}
