//! Waiting for a connection at `max_connections`: a request that needs a
//! new connection beyond the bound waits for one to go idle (and takes it)
//! or to close (and opens its own), at most `connection_wait`.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::OwnedSemaphorePermit;

use super::{Pool, PoolError};

/// An idle connection, or the right to open a new one.
pub(super) enum Got<T> {
    Idle(T),
    New(OwnedSemaphorePermit),
}

impl Pool {
    /// An idle connection from `take`, or a permit for a new one: at once
    /// if the origin is under `max_connections`, else whichever comes first
    /// within `connection_wait`.
    pub(super) async fn idle_or_permit<T>(
        &self,
        take: impl Fn() -> Option<T>,
    ) -> Result<Got<T>, PoolError> {
        if let Ok(p) = self.limit.clone().try_acquire_owned() {
            return Ok(Got::New(p));
        }
        let deadline = tokio::time::Instant::now() + self.settings.connection_wait;
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.waiting);
        loop {
            let returned = self.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            if let Some(c) = take() {
                return Ok(Got::Idle(c));
            }
            tokio::select! {
                p = self.limit.clone().acquire_owned() => {
                    return Ok(Got::New(p.expect("the pool's semaphore is never closed")));
                }
                () = &mut returned => {}
                () = tokio::time::sleep_until(deadline) => return Err(PoolError::Busy),
            }
        }
    }
}

/// Counts a waiting request out when it stops waiting, however it stops.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
