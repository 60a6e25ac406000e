//! The reaper: closes idle connections that outlived `idle_timeout` even
//! when no request comes to find them stale (the idle stacks are last in,
//! first out, so the bottom of a stack may see no checkout for a long time
//! while the upstream has dropped it: CLOSE_WAIT).

use std::sync::Weak;
use std::time::{Duration, Instant};

use super::Pool;

/// The expired connections at the bottom of `stack` (which is in the order
/// they went idle), taken out to be closed after the lock is released.
fn take_expired<T>(
    stack: &mut Vec<(T, Instant)>,
    now: Instant,
    ttl: Duration,
) -> Vec<(T, Instant)> {
    let n = stack.partition_point(|(_, since)| now.duration_since(*since) >= ttl);
    stack.drain(..n).collect()
}

impl Pool {
    /// Closes the connections idle for longer than `idle_timeout`, and
    /// hyper's that have closed; returns how many went.
    fn reap_once(&self) -> usize {
        let now = Instant::now();
        let ttl = self.settings.idle_timeout;
        let (lean, h1) = {
            let mut idle = self.lock();
            idle.h1.retain(|(s, _)| !s.is_closed());
            let lean = take_expired(&mut idle.lean, now, ttl);
            let h1 = take_expired(&mut idle.h1, now, ttl);
            (lean, h1)
        };
        lean.len() + h1.len()
    }
}

/// The reaper: every half `idle_timeout`, closes what has expired, until
/// the pool is dropped.
pub(super) async fn reap(pool: Weak<Pool>) {
    let every = match pool.upgrade() {
        Some(p) => (p.settings.idle_timeout / 2).max(Duration::from_millis(10)),
        None => return,
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(pool) = pool.upgrade() else { return };
        pool.reap_once();
    }
}
