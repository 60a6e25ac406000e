//! Fleet mode: revocations shared by every replica over one Redis stream.
//!
//! - A revocation accepted by any replica is applied locally, written to the
//!   replica's own durable copy (`<data dir>/revocations.log`) and `XADD`ed
//!   to the stream (one field, `event`, holding the event JSON of
//!   [`super::event`]); the revoker's 200 waits for both. If Redis refuses,
//!   the revoker gets 503 and the event goes to the [`Outbox`], appended as
//!   soon as Redis is back.
//! - Every replica reads the stream from its last position (`XREAD`, from
//!   `0` on start and after an epoch change), applies each event (applying
//!   is idempotent), and stores what was new to it in its durable copy, one
//!   `fsync` per batch. It is *caught up* once a read returns less than a
//!   full batch.
//! - Before reading, it checks the stream's [`epoch`]: a stream that lost
//!   its history (restart without persistence, `FLUSHALL`, the key deleted
//!   or evicted) is noticed while connected. A member then re-publishes its
//!   whole copy (pipelined) and establishes a new epoch; a replica that
//!   cannot tell whether the history is complete is not ready and refuses
//!   gateway-minted tokens until it can.
//! - *Complete* (history known whole) is distinct from *fresh* (confirmed
//!   live within `stale_after`): `on_stale = "serve"` keeps serving through
//!   a stale stream only once the replica has been complete; it never serves
//!   minted tokens before its first catch-up, nor after a loss until the
//!   history is re-established.
//! - Other systems may append events in the same format; malformed entries
//!   are logged, counted and skipped. The stream is trimmed only of entries
//!   whose `keep_until` has passed, from the oldest end.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Value};

use super::epoch;
use super::outbox::Outbox;
use super::{Event, LogError, Replay, RevocationLog, RevocationState};
use crate::clock::unix_now_ms;
use crate::metrics::Metrics;

pub use crate::config::{OnStale, StreamConfig};

/// Entries read per `XREAD` once caught up.
const BATCH: usize = 512;
/// Entries read per `XREAD` while catching up with a long history.
const CATCHUP_BATCH: usize = 8192;
/// How long one `XREAD` blocks when caught up; also the liveness heartbeat.
const BLOCK_MS: u64 = 500;
/// Least time between two epoch checks while events keep arriving.
const EPOCH_EVERY: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("redis: {0}")]
    Redis(String),
    #[error("redis did not answer in time")]
    Timeout,
    #[error(transparent)]
    Local(#[from] LogError),
    #[error("fleet epoch file {}: {source}", .path.display())]
    EpochFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub struct RevocationStream {
    cfg: StreamConfig,
    client: redis::Client,
    /// The data directory: the durable copy, the outbox and the epoch file.
    dir: PathBuf,
    /// This replica's durable copy of every revocation it knows.
    local: RevocationLog,
    /// Applied here, not yet accepted by Redis.
    outbox: Outbox,
    /// The epoch last seen (also in `<dir>/fleet-epoch`).
    known_epoch: std::sync::Mutex<Option<String>>,
    /// Connection for appends and trims (never blocks on XREAD).
    writer: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    /// Read to the end of the stream on the current connection and epoch.
    caught_up: AtomicBool,
    /// Caught up under an intact epoch since start, with no loss since.
    complete: AtomicBool,
    /// Unix ms of the last successful read: the liveness confirmation.
    last_live_ms: AtomicU64,
    /// Entries that did not decode as events.
    pub malformed: AtomicU64,
    /// Events re-published after a loss of Redis's data (all time).
    pub republished: AtomicU64,
    /// The "no epoch, history unknown" warning was logged.
    waiting: AtomicBool,
}

impl RevocationStream {
    /// Opens the durable copy and the outbox in `dir`. The returned replay
    /// (copy and outbox) is to be applied to the state before serving.
    pub fn open(cfg: StreamConfig, dir: &Path) -> Result<(RevocationStream, Replay), StreamError> {
        let client =
            redis::Client::open(cfg.url.as_str()).map_err(|e| StreamError::Redis(e.to_string()))?;
        let (local, mut replay) = RevocationLog::open(dir)?;
        let outbox = Outbox::open(dir)?;
        replay.events.extend(outbox.pending());
        let known = epoch::load(dir).map_err(|source| StreamError::EpochFile {
            path: epoch::file(dir),
            source,
        })?;
        Ok((
            RevocationStream {
                cfg,
                client,
                dir: dir.to_path_buf(),
                local,
                outbox,
                known_epoch: std::sync::Mutex::new(known),
                writer: tokio::sync::Mutex::new(None),
                caught_up: AtomicBool::new(false),
                complete: AtomicBool::new(false),
                last_live_ms: AtomicU64::new(0),
                malformed: AtomicU64::new(0),
                republished: AtomicU64::new(0),
                waiting: AtomicBool::new(false),
            },
            replay,
        ))
    }

    pub fn config(&self) -> &StreamConfig {
        &self.cfg
    }

    /// The durable copy, for compaction.
    pub fn local(&self) -> &RevocationLog {
        &self.local
    }

    /// Caught up with the stream and confirmed live within the bound.
    pub fn is_fresh(&self) -> bool {
        self.caught_up.load(Ordering::Acquire) && self.staleness() <= self.cfg.stale_after
    }

    /// The history is known complete (see the module doc).
    pub fn is_complete(&self) -> bool {
        self.complete.load(Ordering::Acquire)
    }

    /// Ready: complete and fresh.
    pub fn is_ready(&self) -> bool {
        self.is_complete() && self.is_fresh()
    }

    /// Gateway-minted tokens must be refused (503): the history is not known
    /// complete, or it is stale and the operator chose to fail closed.
    pub fn must_refuse_minted(&self) -> bool {
        !self.is_complete() || (self.cfg.on_stale == OnStale::Reject && !self.is_fresh())
    }

    /// Events waiting in the outbox.
    pub fn outbox_len(&self) -> usize {
        self.outbox.pending().len()
    }

    /// Time since the stream was last confirmed live (large if never).
    pub fn staleness(&self) -> Duration {
        let last = self.last_live_ms.load(Ordering::Acquire);
        Duration::from_millis(unix_now_ms().saturating_sub(last))
    }

    async fn connect(
        &self,
        response_timeout: Option<Duration>,
    ) -> Result<MultiplexedConnection, StreamError> {
        let cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(response_timeout);
        self.client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
            .map_err(|e| StreamError::Redis(e.to_string()))
    }

    /// Makes a locally applied event durable: written to the local copy and
    /// accepted by Redis, both at once. If Redis refuses, the event goes to
    /// the outbox (appended once Redis is back) and the error is returned.
    pub async fn publish(&self, ev: &Event) -> Result<(), StreamError> {
        let (local, remote) = tokio::join!(self.local.append(ev), self.append(ev));
        if let Err(e) = remote {
            if let Err(o) = self.outbox.add(ev).await {
                tracing::error!(error = %o, "revocation outbox write failed");
            }
            return Err(e);
        }
        local?;
        Ok(())
    }

    /// `XADD`s one event; returns once Redis has accepted it. One retry on a
    /// fresh connection (a duplicate append is harmless).
    pub async fn append(&self, ev: &Event) -> Result<(), StreamError> {
        let json = ev.to_json();
        let mut last = StreamError::Timeout;
        for _ in 0..2 {
            let mut guard = self.writer.lock().await;
            if guard.is_none() {
                match self.connect(Some(Duration::from_secs(2))).await {
                    Ok(c) => *guard = Some(c),
                    Err(e) => {
                        last = e;
                        continue;
                    }
                }
            }
            let Some(conn) = guard.as_mut() else { continue };
            let r: redis::RedisResult<Value> = redis::cmd("XADD")
                .arg(&self.cfg.key)
                .arg("*")
                .arg("event")
                .arg(&json)
                .query_async(conn)
                .await;
            match r {
                Ok(_) if self.cfg.wait_replicas == 0 => return Ok(()),
                Ok(_) => {
                    // On the same connection: WAIT counts this client's writes.
                    let acked: redis::RedisResult<u64> = redis::cmd("WAIT")
                        .arg(self.cfg.wait_replicas)
                        .arg(self.cfg.wait_timeout.as_millis() as u64)
                        .query_async(conn)
                        .await;
                    return match acked {
                        Ok(n) if n >= u64::from(self.cfg.wait_replicas) => Ok(()),
                        Ok(n) => Err(StreamError::Redis(format!(
                            "only {n} of {} Redis replicas acknowledged the append in time",
                            self.cfg.wait_replicas
                        ))),
                        Err(e) => {
                            *guard = None;
                            Err(StreamError::Redis(e.to_string()))
                        }
                    };
                }
                Err(e) => {
                    *guard = None;
                    last = StreamError::Redis(e.to_string());
                }
            }
        }
        Err(last)
    }

    /// Reads the stream until `stop`, applying every event to `state`;
    /// `on_event` sees each applied event (cache eviction, metrics).
    pub async fn consume(
        self: Arc<Self>,
        state: Arc<RevocationState>,
        metrics: Metrics,
        on_event: impl Fn(&Event) + Send + Sync,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut last_id = String::from("0");
        let mut backoff = Duration::from_millis(50);
        // Once caught up, what is read is stored in the copy by a task of its
        // own (batches coalesced, one fsync each), so the next read never
        // waits for a disk: propagation stays a Redis round trip.
        let (copy_tx, mut copy_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<Event>>();
        let local = self.local.clone();
        tokio::spawn(async move {
            while let Some(mut batch) = copy_rx.recv().await {
                while let Ok(more) = copy_rx.try_recv() {
                    batch.extend(more);
                }
                if let Err(e) = local.append_batch(&batch).await {
                    tracing::error!(error = %e, "revocation copy write failed");
                }
            }
        });
        loop {
            if *stop.borrow() {
                return;
            }
            self.caught_up.store(false, Ordering::Release);
            let conn = self
                .connect(Some(Duration::from_millis(BLOCK_MS + 2000)))
                .await;
            let mut conn = match conn {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "revocation stream unreachable; retrying");
                    metrics
                        .revocation_stream_staleness_seconds
                        .set(self.staleness().as_secs() as i64);
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            };
            backoff = Duration::from_millis(50);
            let mut last_epoch_check: Option<Instant> = None;
            // Read until the connection breaks; then reconnect and go on from last_id.
            loop {
                if last_epoch_check.is_none_or(|t| t.elapsed() >= EPOCH_EVERY) {
                    match self.sync_epoch(&mut conn, &state).await {
                        Ok(Step::Same) => {}
                        Ok(Step::Restart) => {
                            last_id = String::from("0");
                            self.caught_up.store(false, Ordering::Release);
                        }
                        Ok(Step::Unknown) => {
                            tokio::select! {
                                _ = tokio::time::sleep(Duration::from_millis(BLOCK_MS)) => {}
                                _ = stop.changed() => return,
                            }
                            continue;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "revocation stream epoch check failed; reconnecting");
                            break;
                        }
                    }
                    last_epoch_check = Some(Instant::now());
                    if let Err(e) = self.flush_outbox(&mut conn).await {
                        tracing::warn!(error = %e, "revocation outbox flush failed; reconnecting");
                        break;
                    }
                }
                let caught_up = self.caught_up.load(Ordering::Acquire);
                let batch = if caught_up { BATCH } else { CATCHUP_BATCH };
                let mut cmd = redis::cmd("XREAD");
                cmd.arg("COUNT").arg(batch);
                if caught_up {
                    cmd.arg("BLOCK").arg(BLOCK_MS);
                }
                cmd.arg("STREAMS").arg(&self.cfg.key).arg(&last_id);
                let read = tokio::select! {
                    r = cmd.query_async::<Value>(&mut conn) => r,
                    _ = stop.changed() => return,
                };
                let reply = match read {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::warn!(error = %e, "revocation stream read failed; reconnecting");
                        break;
                    }
                };
                self.last_live_ms.store(unix_now_ms(), Ordering::Release);
                let entries = entries(reply);
                let n = entries.len();
                let mut new = Vec::new();
                for (id, payload) in entries {
                    last_id = id;
                    match payload.and_then(|p| Event::from_json(&p).ok()) {
                        Some(ev) => {
                            if state.apply(&ev) {
                                metrics
                                    .revocations_applied
                                    .with_label_values(&[ev.kind(), ev.source.as_str()])
                                    .inc();
                                new.push(ev.clone());
                            }
                            let delay_ms = unix_now_ms().saturating_sub(ev.revoked_at_ms);
                            metrics
                                .revocation_propagation_seconds
                                .observe(delay_ms as f64 / 1000.0);
                            on_event(&ev);
                        }
                        None => {
                            self.malformed.fetch_add(1, Ordering::Relaxed);
                            metrics.revocation_stream_malformed.inc();
                            tracing::warn!(entry = %last_id, "malformed revocation stream entry skipped");
                        }
                    }
                }
                // Once caught up, by the copy task; while catching up, here,
                // synced once at the end (one fsync per read made a 1M replay
                // take 40 s).
                if caught_up {
                    if !new.is_empty() {
                        let _ = copy_tx.send(new);
                    }
                } else if let Err(e) = self.local.append_batch_synced(&new, false).await {
                    // Applied in memory all the same; the copy only matters
                    // if Redis loses its data too.
                    tracing::error!(error = %e, "revocation copy write failed");
                }
                if !caught_up && n < batch {
                    if let Err(e) = self.local.sync().await {
                        tracing::error!(error = %e, "revocation copy sync failed");
                    }
                    self.caught_up.store(true, Ordering::Release);
                    if !self.complete.swap(true, Ordering::AcqRel) {
                        tracing::info!(position = %last_id, live = state.len(), "revocation stream caught up");
                    }
                }
                metrics.revocation_entries.set(state.len() as i64);
                metrics
                    .revocation_stream_staleness_seconds
                    .set(self.staleness().as_secs() as i64);
            }
        }
    }

    /// Compares the stream's epoch with the one this replica knows, and
    /// re-seeds the stream from the local copy when its history was lost.
    async fn sync_epoch(
        &self,
        conn: &mut MultiplexedConnection,
        state: &RevocationState,
    ) -> Result<Step, StreamError> {
        let current = epoch::read(conn, &self.cfg.key).await?;
        let known = self.known_epoch_now();
        let step = match (current, known) {
            (Some(c), Some(k)) if c == k => return Ok(Step::Same),
            (Some(c), None) => {
                tracing::info!("revocation stream epoch found; reading the history");
                self.remember(&c)?;
                Step::Restart
            }
            (Some(c), Some(_)) => {
                // Re-seeded by another replica after a loss this one missed:
                // add what this replica knows, then read the new history.
                self.complete.store(false, Ordering::Release);
                self.republish(conn, state).await?;
                self.remember(&c)?;
                Step::Restart
            }
            (None, Some(_)) => {
                self.complete.store(false, Ordering::Release);
                tracing::warn!(
                    live = state.len(),
                    "revocation stream lost its history; re-publishing this replica's copy"
                );
                self.republish(conn, state).await?;
                let e = epoch::establish(conn, &self.cfg.key, &epoch::fresh()?).await?;
                self.remember(&e)?;
                Step::Restart
            }
            (None, None) => {
                if !self.waiting.swap(true, Ordering::AcqRel) {
                    tracing::warn!(
                        "revocation stream has no epoch and this replica never joined one: \
                         not ready until a member re-seeds it or `scopegate fleet-init` runs"
                    );
                }
                self.complete.store(false, Ordering::Release);
                return Ok(Step::Unknown);
            }
        };
        self.complete.store(false, Ordering::Release);
        Ok(step)
    }

    fn known_epoch_now(&self) -> Option<String> {
        self.known_epoch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn remember(&self, e: &str) -> Result<(), StreamError> {
        epoch::store(&self.dir, e).map_err(|source| StreamError::EpochFile {
            path: epoch::file(&self.dir),
            source,
        })?;
        *self
            .known_epoch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e.to_string());
        Ok(())
    }

    /// Re-publishes every live revocation this replica knows (its state:
    /// the local copy, the outbox and what it has read). The outbox is
    /// included, so it is emptied afterwards.
    async fn republish(
        &self,
        conn: &mut MultiplexedConnection,
        state: &RevocationState,
    ) -> Result<(), StreamError> {
        let started = Instant::now();
        let queued = self.outbox.pending().len();
        let live = state.snapshot();
        let n = epoch::republish(conn, &self.cfg.key, &live).await?;
        self.republished.fetch_add(n as u64, Ordering::Relaxed);
        self.outbox.sent(queued).await?;
        tracing::warn!(
            events = n,
            took_ms = started.elapsed().as_millis() as u64,
            "revocations re-published"
        );
        Ok(())
    }

    /// Appends what Redis refused earlier, oldest first, pipelined.
    async fn flush_outbox(&self, conn: &mut MultiplexedConnection) -> Result<(), StreamError> {
        if self.outbox.is_empty() {
            return Ok(());
        }
        let pending = self.outbox.pending();
        epoch::republish(conn, &self.cfg.key, &pending).await?;
        self.outbox.sent(pending.len()).await?;
        tracing::info!(
            events = pending.len(),
            "revocation outbox appended to the stream"
        );
        Ok(())
    }

    /// Removes the oldest entries whose `keep_until` has passed, stopping
    /// at the first live one. Returns how many were removed.
    pub async fn trim(&self, now: u64) -> Result<usize, StreamError> {
        let mut conn = self.connect(Some(Duration::from_secs(5))).await?;
        let reply: Value = redis::cmd("XRANGE")
            .arg(&self.cfg.key)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .map_err(|e| StreamError::Redis(e.to_string()))?;
        let mut expired = Vec::new();
        for (id, payload) in range_entries(reply) {
            // Malformed entries are never applied; they go with the expired ones.
            let live = payload
                .and_then(|p| Event::from_json(&p).ok())
                .is_some_and(|ev| ev.keep_until >= now);
            if live {
                break;
            }
            expired.push(id);
        }
        if expired.is_empty() {
            return Ok(0);
        }
        let mut cmd = redis::cmd("XDEL");
        cmd.arg(&self.cfg.key);
        for id in &expired {
            cmd.arg(id);
        }
        let _: Value = cmd
            .query_async(&mut conn)
            .await
            .map_err(|e| StreamError::Redis(e.to_string()))?;
        Ok(expired.len())
    }
}

/// What the epoch check asks of the reader.
enum Step {
    /// Same epoch: read on from the last position.
    Same,
    /// A new epoch (joined, re-seeded): read the whole stream again.
    Restart,
    /// No epoch and none known: the history cannot be told; wait.
    Unknown,
}

fn bytes_of(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.clone().into_bytes()),
        _ => None,
    }
}

/// `[[id, [field, value, ...]], ...]` into `(id, value of "event")`.
fn range_entries(v: Value) -> Vec<(String, Option<Vec<u8>>)> {
    let Value::Array(items) = v else {
        return Vec::new();
    };
    items
        .into_iter()
        .filter_map(|item| {
            let Value::Array(pair) = item else {
                return None;
            };
            let id = String::from_utf8(bytes_of(pair.first()?)?).ok()?;
            let payload = match pair.get(1) {
                Some(Value::Array(fields)) => fields
                    .chunks(2)
                    .find(|kv| bytes_of(&kv[0]).as_deref() == Some(b"event"))
                    .and_then(|kv| kv.get(1).and_then(bytes_of)),
                Some(Value::Map(fields)) => fields
                    .iter()
                    .find(|(k, _)| bytes_of(k).as_deref() == Some(b"event"))
                    .and_then(|(_, v)| bytes_of(v)),
                _ => None,
            };
            Some((id, payload))
        })
        .collect()
}

/// An `XREAD` reply for one stream into its entries (nil: none).
fn entries(v: Value) -> Vec<(String, Option<Vec<u8>>)> {
    match v {
        Value::Array(streams) => streams
            .into_iter()
            .flat_map(|s| match s {
                Value::Array(mut kv) if kv.len() == 2 => {
                    range_entries(kv.pop().unwrap_or(Value::Nil))
                }
                _ => Vec::new(),
            })
            .collect(),
        Value::Map(streams) => streams
            .into_iter()
            .flat_map(|(_, e)| range_entries(e))
            .collect(),
        _ => Vec::new(),
    }
}
