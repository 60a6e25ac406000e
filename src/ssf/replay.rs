//! Replay refusal: each SET's `jti` (scoped by its issuer) is remembered
//! for twice the `iat` skew, which is as long as a copy of it could still
//! pass the `iat` check.
//!
//! One gateway remembers in memory. In fleet mode the memory is Redis
//! (`SET key NX EX ttl` next to the revocation stream), so a SET pushed to
//! one replica and replayed to another is refused there too, and a SET
//! polled by two replicas is applied once. A jti is claimed before its
//! events are applied and released if applying fails, so the
//! transmitter's retry is not mistaken for a replay. If Redis cannot be
//! reached, the local memory decides: applying a revocation twice is
//! harmless, losing one is not.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Value};

use crate::digest::Digest;

/// Most jtis kept in memory; past it, expired ones are dropped first.
const MAX_LOCAL: usize = 100_000;

struct Shared {
    client: redis::Client,
    prefix: String,
    conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
}

pub struct Replay {
    /// jti digest -> unix seconds it may be forgotten at.
    local: Mutex<HashMap<Digest, u64>>,
    shared: Option<Shared>,
    ttl: Duration,
}

/// The key a SET is remembered by: its issuer and jti.
pub fn key(iss: &str, jti: &str) -> Digest {
    let mut b = Vec::with_capacity(iss.len() + jti.len() + 1);
    b.extend_from_slice(iss.as_bytes());
    b.push(0);
    b.extend_from_slice(jti.as_bytes());
    Digest::of(&b)
}

impl Replay {
    /// `redis`: the stream's URL and key, in fleet mode.
    pub fn new(redis: Option<(&str, &str)>, ttl: Duration) -> Replay {
        let shared = redis.and_then(|(url, stream)| {
            redis::Client::open(url).ok().map(|client| Shared {
                client,
                prefix: format!("{stream}:ssf-jti:"),
                conn: tokio::sync::Mutex::new(None),
            })
        });
        Replay {
            local: Mutex::new(HashMap::new()),
            shared,
            ttl,
        }
    }

    /// True the first time `k` is claimed within the TTL, fleet-wide when shared.
    pub async fn claim(&self, k: &Digest, now: u64) -> bool {
        let local_first = self.claim_local(k, now);
        let Some(s) = &self.shared else {
            return local_first;
        };
        match self.claim_shared(s, k).await {
            Ok(first) => first,
            Err(e) => {
                tracing::warn!(error = %e, "ssf: replay memory in redis unavailable; deciding locally");
                local_first
            }
        }
    }

    /// Releases a claim (applying its events failed; the retry must pass).
    pub async fn release(&self, k: &Digest) {
        self.local
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(k);
        if let Some(s) = &self.shared {
            let key = format!("{}{}", s.prefix, k.to_hex());
            let mut guard = s.conn.lock().await;
            if let Some(c) = guard.as_mut() {
                let r: redis::RedisResult<Value> = redis::cmd("DEL").arg(&key).query_async(c).await;
                if r.is_err() {
                    *guard = None;
                }
            }
        }
    }

    fn claim_local(&self, k: &Digest, now: u64) -> bool {
        let mut m = self.local.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(until) = m.get(k)
            && *until >= now
        {
            return false;
        }
        if m.len() >= MAX_LOCAL {
            m.retain(|_, until| *until >= now);
        }
        if m.len() < MAX_LOCAL {
            m.insert(*k, now + self.ttl.as_secs());
        }
        true
    }

    async fn claim_shared(&self, s: &Shared, k: &Digest) -> Result<bool, String> {
        let key = format!("{}{}", s.prefix, k.to_hex());
        let mut guard = s.conn.lock().await;
        if guard.is_none() {
            let cfg = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(2)))
                .set_response_timeout(Some(Duration::from_secs(2)));
            let c = s
                .client
                .get_multiplexed_async_connection_with_config(&cfg)
                .await
                .map_err(|e| e.to_string())?;
            *guard = Some(c);
        }
        let Some(c) = guard.as_mut() else {
            return Err("no connection".into());
        };
        let r: redis::RedisResult<Value> = redis::cmd("SET")
            .arg(&key)
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(self.ttl.as_secs().max(1))
            .query_async(c)
            .await;
        match r {
            Ok(Value::Nil) => Ok(false),
            Ok(_) => Ok(true),
            Err(e) => {
                *guard = None;
                Err(e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_jti_is_claimed_once_until_it_expires_or_is_released() {
        let r = Replay::new(None, Duration::from_secs(10));
        let k = key("https://idp", "j1");
        assert!(r.claim(&k, 100).await);
        assert!(!r.claim(&k, 105).await);
        assert!(
            r.claim(&key("https://other", "j1"), 105).await,
            "scoped by issuer"
        );
        assert!(r.claim(&k, 111).await, "forgotten after the TTL");
        r.release(&k).await;
        assert!(r.claim(&k, 112).await, "released claims pass again");
    }
}
