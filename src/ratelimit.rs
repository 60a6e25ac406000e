//! Per-client rate limits for `/oauth2/*`: one token bucket per key.
//!
//! A key is an authenticated client id when the request carried valid
//! client credentials, else the peer address (an IPv6 peer by its /64, since
//! one host commonly holds a whole /64). Memory is bounded: at most
//! `max_keys` buckets; when the table is full, buckets that have refilled
//! completely (a client idle long enough to be indistinguishable from a new
//! one) are dropped, and if none can be, new keys share one overflow bucket,
//! so a flood from many addresses is limited as one client instead of
//! growing the table or letting requests through unlimited.
//!
//! Time is passed in (`now`), so the arithmetic is tested without sleeping.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// Who a request is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// A client that authenticated with `client_id` and `client_secret`.
    Client(Box<str>),
    /// Anyone else, by address (IPv6 by /64).
    Peer(IpAddr),
}

impl Key {
    /// The key for an unauthenticated request from `ip`.
    pub fn peer(ip: IpAddr) -> Key {
        match ip {
            IpAddr::V4(_) => Key::Peer(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Key::Peer(IpAddr::V4(v4)),
                None => {
                    let s = v6.segments();
                    Key::Peer(IpAddr::V6(std::net::Ipv6Addr::new(
                        s[0], s[1], s[2], s[3], 0, 0, 0, 0,
                    )))
                }
            },
        }
    }
}

/// Least time between two sweeps of a full table.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Rate and burst, per key.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests a key may make at once after being idle.
    pub burst: f64,
    /// Most keys tracked at once.
    pub max_keys: usize,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refill(&mut self, limit: &Limit, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * limit.per_second).min(limit.burst);
        self.at = now;
    }

    /// Takes one token, or says how long until one is there.
    fn take(&mut self, limit: &Limit, now: Instant) -> Result<(), Duration> {
        self.refill(limit, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / limit.per_second;
            Err(Duration::from_secs_f64(wait.max(0.0)))
        }
    }
}

/// The buckets. `Send + Sync`.
#[derive(Debug)]
pub struct RateLimiter {
    limit: Limit,
    buckets: DashMap<Key, Bucket>,
    /// Shared by new keys while the table is full of active ones.
    overflow: Mutex<Bucket>,
    /// When the full table was last swept: at most once a second, so a
    /// flood of new keys does not make every request scan the table.
    last_sweep: Mutex<Option<Instant>>,
}

impl RateLimiter {
    pub fn new(limit: Limit, now: Instant) -> RateLimiter {
        RateLimiter {
            buckets: DashMap::new(),
            overflow: Mutex::new(Bucket {
                tokens: limit.burst,
                at: now,
            }),
            last_sweep: Mutex::new(None),
            limit,
        }
    }

    /// Counts one request; `Err(retry_after)` when over the limit.
    pub fn check(&self, key: Key, now: Instant) -> Result<(), Duration> {
        if let Some(mut b) = self.buckets.get_mut(&key) {
            return b.take(&self.limit, now);
        }
        if self.buckets.len() >= self.limit.max_keys {
            let due = {
                let mut last = self
                    .last_sweep
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let due = last.is_none_or(|t| now.saturating_duration_since(t) >= SWEEP_EVERY);
                if due {
                    *last = Some(now);
                }
                due
            };
            if due {
                let limit = self.limit;
                self.buckets.retain(|_, b| {
                    b.refill(&limit, now);
                    b.tokens < limit.burst
                });
            }
            if self.buckets.len() >= self.limit.max_keys {
                let mut o = self
                    .overflow
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                return o.take(&self.limit, now);
            }
        }
        let mut b = self.buckets.entry(key).or_insert(Bucket {
            tokens: self.limit.burst,
            at: now,
        });
        b.take(&self.limit, now)
    }

    /// Keys tracked now.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

/// `Retry-After` in whole seconds, never 0.
pub fn retry_after_secs(d: Duration) -> u64 {
    (d.as_secs_f64().ceil() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_second: f64, burst: f64, max_keys: usize) -> (RateLimiter, Instant) {
        let t0 = Instant::now();
        (
            RateLimiter::new(
                Limit {
                    per_second,
                    burst,
                    max_keys,
                },
                t0,
            ),
            t0,
        )
    }

    fn ip(s: &str) -> Key {
        Key::peer(s.parse().unwrap())
    }

    #[test]
    fn a_burst_then_the_rate() {
        let (l, t0) = limiter(2.0, 3.0, 100);
        for _ in 0..3 {
            assert!(l.check(ip("10.0.0.1"), t0).is_ok());
        }
        let wait = l.check(ip("10.0.0.1"), t0).unwrap_err();
        assert!(wait > Duration::from_millis(400) && wait <= Duration::from_millis(500));
        assert_eq!(retry_after_secs(wait), 1);
        // Another client is not affected.
        assert!(l.check(ip("10.0.0.2"), t0).is_ok());
        // Half a second later one more is allowed, not two.
        let t1 = t0 + Duration::from_millis(500);
        assert!(l.check(ip("10.0.0.1"), t1).is_ok());
        assert!(l.check(ip("10.0.0.1"), t1).is_err());
    }

    #[test]
    fn ipv6_peers_share_their_64() {
        assert_eq!(ip("2001:db8:1:2::1"), ip("2001:db8:1:2:ffff::9"));
        assert_ne!(ip("2001:db8:1:2::1"), ip("2001:db8:1:3::1"));
        assert_eq!(ip("::ffff:10.0.0.1"), ip("10.0.0.1"));
    }

    #[test]
    fn the_table_is_bounded_and_a_full_one_limits_newcomers_together() {
        let (l, t0) = limiter(1.0, 2.0, 4);
        for i in 0..4 {
            assert!(l.check(ip(&format!("10.0.0.{i}")), t0).is_ok());
        }
        // Every bucket is active: newcomers share the overflow bucket (burst 2).
        assert!(l.check(ip("10.0.1.1"), t0).is_ok());
        assert!(l.check(ip("10.0.1.2"), t0).is_ok());
        assert!(l.check(ip("10.0.1.3"), t0).is_err());
        assert_eq!(l.len(), 4);
        // Once the old buckets have refilled, they make room.
        let later = t0 + Duration::from_secs(5);
        assert!(l.check(ip("10.0.2.1"), later).is_ok());
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn clients_are_counted_apart_from_addresses() {
        let (l, t0) = limiter(1.0, 1.0, 10);
        assert!(l.check(Key::Client("app".into()), t0).is_ok());
        assert!(l.check(Key::Client("app".into()), t0).is_err());
        assert!(l.check(ip("10.0.0.1"), t0).is_ok());
    }
}
