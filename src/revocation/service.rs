//! The revocation service: state, durable log and the grant cache, kept in
//! step.
//!
//! A revocation is applied to the in-memory state first (so the very next
//! request is refused even if the disk fails), then appended and synced to
//! the log; only then is the revoker answered. Cached grants it covers are
//! dropped too, although the state check on every request would refuse them
//! anyway. A background task sweeps expired entries and compacts the log.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::{Event, LogError, Replay, RevocationLog, RevocationState, Target};
use crate::grant::Grants;
use crate::metrics::Metrics;

pub struct Revocations {
    state: Arc<RevocationState>,
    log: RevocationLog,
}

impl Revocations {
    /// Opens the log in `dir`, replays it into a fresh state and drops what
    /// has expired. The gateway is not ready until this returns.
    pub fn open(dir: &Path, now: u64) -> Result<(Revocations, Replay), LogError> {
        let (log, replay) = RevocationLog::open(dir)?;
        let state = Arc::new(RevocationState::new());
        for ev in &replay.events {
            state.apply(ev);
        }
        state.sweep(now);
        Ok((Revocations { state, log }, replay))
    }

    /// The hot-path check.
    pub fn is_revoked(&self, token_hash: &crate::digest::Digest, family: &crate::digest::Digest, subject: Option<&str>, iat: Option<u64>) -> bool {
        self.state.is_revoked(token_hash, family, subject, iat)
    }

    pub fn state(&self) -> &Arc<RevocationState> {
        &self.state
    }

    /// Applies, makes durable, and evicts cached grants. Returns once the
    /// event is synced to disk.
    pub async fn revoke(&self, ev: Event, grants: &Grants, metrics: &Metrics) -> Result<(), LogError> {
        self.state.apply(&ev);
        match &ev.target {
            Target::Token(h) => grants.forget(h).await,
            _ => grants.forget_all(),
        }
        self.log.append(&ev).await?;
        metrics
            .revocations_applied
            .with_label_values(&[ev.kind(), ev.source.as_str()])
            .inc();
        metrics.revocation_entries.set(self.state.len() as i64);
        Ok(())
    }

    /// Drops expired entries; rewrites the log when something was dropped.
    pub async fn compact(&self, now: u64) -> Result<usize, LogError> {
        let dropped = self.state.sweep(now);
        if dropped > 0 {
            let state = self.state.clone();
            self.log.compact_with(move || state.snapshot()).await?;
        }
        Ok(dropped)
    }

    pub fn log_size(&self) -> u64 {
        self.log.size_bytes()
    }

    /// Sweeps and compacts every `every` until `shutdown` fires.
    pub async fn maintain(self: Arc<Self>, every: Duration, metrics: Metrics, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    match self.compact(crate::clock::unix_now()).await {
                        Ok(n) if n > 0 => tracing::info!(dropped = n, "revocation log compacted"),
                        Ok(_) => {}
                        Err(e) => tracing::error!(error = %e, "revocation log compaction failed"),
                    }
                    metrics.revocation_entries.set(self.state.len() as i64);
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}
