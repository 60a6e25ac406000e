//! RFC 7662 token introspection, for external tokens and (in `introspect`
//! parent mode) for parents at exchange.
//!
//! The answer is trusted only as far as it goes: `active` must be `true`,
//! and a missing `exp` is capped by the cache TTL. Transport failures are
//! errors (the caller answers 503: fail closed), never "inactive".

use std::time::Duration;

use crate::config::Introspection;
use crate::upstream::{Client, UpstreamError};

/// An active introspection answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Introspected {
    pub scope: Option<String>,
    pub sub: Option<String>,
    pub exp: Option<u64>,
    pub iat: Option<u64>,
}

pub struct Introspector {
    cfg: Introspection,
    client: Client,
}

impl Introspector {
    pub fn new(cfg: Introspection, client: Client) -> Introspector {
        Introspector { cfg, client }
    }

    pub fn cache_ttl(&self) -> Duration {
        self.cfg.cache_ttl
    }

    pub fn inactive_ttl(&self) -> Duration {
        self.cfg.inactive_ttl
    }

    /// `Ok(None)` for an inactive token.
    pub async fn introspect(&self, token: &str) -> Result<Option<Introspected>, UpstreamError> {
        // Built in its own scope: the serializer is not Send and must not live across the await.
        let body = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("token", token)
                .append_pair("token_type_hint", "access_token");
            if let Some(id) = &self.cfg.client_id {
                form.append_pair("client_id", id);
            }
            if let Some(secret) = &self.cfg.client_secret {
                form.append_pair("client_secret", secret);
            }
            form.finish()
        };
        let (status, json) = self.client.post_form(&self.cfg.url, body).await?;
        if status != 200 {
            return Err(UpstreamError::Malformed);
        }
        Ok(parse(&json))
    }
}

fn parse(json: &serde_json::Value) -> Option<Introspected> {
    if json.get("active") != Some(&serde_json::Value::Bool(true)) {
        return None;
    }
    let num = |k: &str| json.get(k).and_then(serde_json::Value::as_u64);
    let text = |k: &str| {
        json.get(k)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    Some(Introspected {
        scope: text("scope"),
        sub: text("sub").or_else(|| {
            json.get("sub")
                .and_then(|v| v.as_u64())
                .map(|n| n.to_string())
        }),
        exp: num("exp"),
        iat: num("iat"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_active_true_is_active() {
        assert!(parse(&json!({"active": false, "scope": "x"})).is_none());
        assert!(parse(&json!({"active": "true"})).is_none());
        assert!(parse(&json!({})).is_none());
        let a =
            parse(&json!({"active": true, "scope": "item_read", "sub": 42, "exp": 10})).unwrap();
        assert_eq!(a.sub.as_deref(), Some("42"));
        assert_eq!(a.exp, Some(10));
        assert_eq!(a.iat, None);
    }
}
