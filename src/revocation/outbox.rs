//! The fleet outbox: revocations applied on this replica that Redis has not
//! accepted yet, kept in `<data dir>/outbox/revocations.log` until it does.
//!
//! A revocation that Redis refuses (the revoker gets 503) has already been
//! applied here and written to the local copy, so this replica refuses the
//! token; the outbox makes sure the other replicas learn it too, as soon as
//! Redis is back, whether or not the revoker retries, and across a restart.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use super::{Event, LogError, RevocationLog};

pub struct Outbox {
    log: RevocationLog,
    /// The events in the file, in order; only the flush removes any, from
    /// the front.
    pending: Arc<Mutex<Vec<Event>>>,
}

impl Outbox {
    /// Opens (or creates) `<dir>/outbox/`; what it holds is still pending.
    pub fn open(dir: &Path) -> Result<Outbox, LogError> {
        let (log, replay) = RevocationLog::open(&dir.join("outbox"))?;
        Ok(Outbox {
            log,
            pending: Arc::new(Mutex::new(replay.events)),
        })
    }

    /// Adds an event; returns once it is on disk.
    pub async fn add(&self, ev: &Event) -> Result<(), LogError> {
        self.lock().push(ev.clone());
        self.log.append(ev).await
    }

    /// A copy of what is pending, oldest first.
    pub fn pending(&self) -> Vec<Event> {
        self.lock().clone()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Drops the first `n` events (those Redis has accepted) and rewrites the
    /// file. An event added meanwhile stays (in the list, and in the file as
    /// a record appended during the rewrite).
    pub async fn sent(&self, n: usize) -> Result<(), LogError> {
        let pending = Arc::clone(&self.pending);
        self.log
            .compact_with(move || {
                let mut p = pending.lock().unwrap_or_else(PoisonError::into_inner);
                let n = n.min(p.len());
                p.drain(..n);
                p.clone()
            })
            .await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Event>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
