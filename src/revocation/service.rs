//! The revocation service: state, the durable sink and the grant cache, kept
//! in step.
//!
//! A revocation is applied to the in-memory state first (so the very next
//! request is refused even if the sink fails), then made durable: appended
//! and fsynced to the embedded log, or accepted by the Redis stream in fleet
//! mode. Only then is the revoker answered. Cached grants it covers are
//! dropped too, although the state check on every request would refuse them
//! anyway. A background task sweeps expired entries and compacts the log or
//! trims the stream.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::stream::{RevocationStream, StreamError};
use super::{Event, LogError, Replay, RevocationLog, RevocationState};
use crate::metrics::Metrics;

/// Where revocations are made durable.
enum Sink {
    Log(RevocationLog),
    Stream(Arc<RevocationStream>),
}

/// Why a revocation could not be made durable (the revoker gets 503).
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Stream(#[from] StreamError),
}

pub struct Revocations {
    state: Arc<RevocationState>,
    sink: Sink,
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
        Ok((
            Revocations {
                state,
                sink: Sink::Log(log),
            },
            replay,
        ))
    }

    /// Fleet mode: the replica's durable copy in `dir` is replayed now; the
    /// rest of the history comes from the stream, read by
    /// [`Revocations::stream`]'s consumer (not ready until it has).
    pub fn with_stream(
        cfg: super::stream::StreamConfig,
        dir: &Path,
        now: u64,
    ) -> Result<(Revocations, Replay), StreamError> {
        let (stream, replay) = RevocationStream::open(cfg, dir)?;
        let state = Arc::new(RevocationState::new());
        for ev in &replay.events {
            state.apply(ev);
        }
        state.sweep(now);
        Ok((
            Revocations {
                state,
                sink: Sink::Stream(Arc::new(stream)),
            },
            replay,
        ))
    }

    pub fn stream(&self) -> Option<&Arc<RevocationStream>> {
        match &self.sink {
            Sink::Stream(s) => Some(s),
            Sink::Log(_) => None,
        }
    }

    /// Ready: history replayed (the log is replayed before start; the stream
    /// must have caught up and be live).
    pub fn is_ready(&self) -> bool {
        match &self.sink {
            Sink::Log(_) => true,
            Sink::Stream(s) => s.is_ready(),
        }
    }

    /// True when gateway-minted tokens must be refused with 503: the
    /// history is not known complete (before the first catch-up, or after
    /// the stream lost its data), or the stream is not confirmed live and
    /// the operator chose to fail closed.
    pub fn must_refuse_minted(&self) -> bool {
        match &self.sink {
            Sink::Log(_) => false,
            Sink::Stream(s) => s.must_refuse_minted(),
        }
    }

    /// The hot-path check.
    pub fn is_revoked(
        &self,
        token_hash: &crate::digest::Digest,
        family: &crate::digest::Digest,
        subject: Option<&str>,
        iat: Option<u64>,
    ) -> bool {
        self.state.is_revoked(token_hash, family, subject, iat)
    }

    /// [`Revocations::is_revoked`] with the token's last verdict kept in
    /// `mark` (see [`RevocationState::is_revoked_checked`]).
    pub fn is_revoked_checked(
        &self,
        mark: &super::Checked,
        token_hash: &crate::digest::Digest,
        family: &crate::digest::Digest,
        subject: Option<&str>,
        iat: Option<u64>,
    ) -> bool {
        self.state
            .is_revoked_checked(mark, token_hash, family, subject, iat)
    }

    pub fn state(&self) -> &Arc<RevocationState> {
        &self.state
    }

    /// Applies and makes durable. Returns once the event is synced to disk
    /// or accepted by the stream. The caller drops the cached grant of a
    /// revoked token (`Grants::evict`); the state alone already refuses it.
    pub async fn revoke(&self, ev: Event, metrics: &Metrics) -> Result<(), SinkError> {
        self.state.apply(&ev);
        match &self.sink {
            Sink::Log(log) => log.append(&ev).await?,
            Sink::Stream(s) => s.publish(&ev).await?,
        }
        metrics
            .revocations_applied
            .with_label_values(&[ev.kind(), ev.source.as_str()])
            .inc();
        metrics.revocation_entries.set(self.state.len() as i64);
        Ok(())
    }

    /// Drops expired entries; rewrites the log when something was dropped,
    /// or trims the stream of expired entries.
    pub async fn compact(&self, now: u64) -> Result<usize, SinkError> {
        let dropped = self.state.sweep(now);
        match &self.sink {
            Sink::Log(log) if dropped > 0 => {
                let state = self.state.clone();
                log.compact_with(move || state.snapshot()).await?;
            }
            Sink::Log(_) => {}
            Sink::Stream(s) => {
                if dropped > 0 {
                    let state = self.state.clone();
                    s.local().compact_with(move || state.snapshot()).await?;
                }
                s.trim(now).await?;
            }
        }
        Ok(dropped)
    }

    /// Size of the embedded log in bytes (0 in fleet mode).
    pub fn log_size(&self) -> u64 {
        match &self.sink {
            Sink::Log(log) => log.size_bytes(),
            Sink::Stream(_) => 0,
        }
    }

    /// Sweeps and compacts every `every` until `shutdown` fires.
    pub async fn maintain(
        self: Arc<Self>,
        every: Duration,
        metrics: Metrics,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    match self.compact(crate::clock::unix_now()).await {
                        Ok(n) if n > 0 => tracing::info!(dropped = n, "expired revocations dropped"),
                        Ok(_) => {}
                        Err(e) => tracing::error!(error = %e, "revocation compaction failed"),
                    }
                    metrics.revocation_entries.set(self.state.len() as i64);
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}
