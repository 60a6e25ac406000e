//! Fleet mode: revocations shared by every replica over one Redis stream.
//!
//! - A revocation accepted by any replica is applied locally, then `XADD`ed
//!   to the stream as one field, `event`, holding the event JSON of
//!   [`super::event`]; the revoker's 200 waits for Redis to accept it.
//! - Every replica reads the stream from its last position (`XREAD`, from
//!   `0` on start), applies each event (applying is idempotent, so reading an
//!   event twice is harmless), and is not *caught up* until a read returns
//!   less than a full batch. Until then, and whenever the stream has not been
//!   confirmed live within `stale_after`, the configured [`OnStale`] applies.
//! - Other systems may append events in the same format; malformed entries
//!   are logged, counted and skipped.
//! - A Redis that lost its data (restarted without persistence) is noticed
//!   by a random *epoch* key written next to the stream: when it changes,
//!   every replica re-appends the live events it knows, so replicas started
//!   later still learn them.
//! - The stream is trimmed only of entries whose `keep_until` has passed,
//!   from the oldest end, stopping at the first live one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Value};

use super::{Event, RevocationState};
use crate::clock::unix_now_ms;
use crate::metrics::Metrics;

pub use crate::config::{OnStale, StreamConfig};

/// Entries read per `XREAD`.
const BATCH: usize = 512;
/// How long one `XREAD` blocks when caught up; also the liveness heartbeat.
const BLOCK_MS: u64 = 500;

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("redis: {0}")]
    Redis(String),
    #[error("redis did not answer in time")]
    Timeout,
}

pub struct RevocationStream {
    cfg: StreamConfig,
    client: redis::Client,
    epoch_key: String,
    /// Connection for appends and trims (never blocks on XREAD).
    writer: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    caught_up: AtomicBool,
    /// Unix ms of the last successful read: the liveness confirmation.
    last_live_ms: AtomicU64,
    /// Entries that did not decode as events.
    pub malformed: AtomicU64,
}

impl RevocationStream {
    pub fn new(cfg: StreamConfig) -> Result<RevocationStream, StreamError> {
        let client =
            redis::Client::open(cfg.url.as_str()).map_err(|e| StreamError::Redis(e.to_string()))?;
        Ok(RevocationStream {
            epoch_key: format!("{}:epoch", cfg.key),
            cfg,
            client,
            writer: tokio::sync::Mutex::new(None),
            caught_up: AtomicBool::new(false),
            last_live_ms: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
        })
    }

    pub fn config(&self) -> &StreamConfig {
        &self.cfg
    }

    /// Caught up with the stream and confirmed live within the bound.
    pub fn is_fresh(&self) -> bool {
        self.caught_up.load(Ordering::Acquire) && self.staleness() <= self.cfg.stale_after
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
                Ok(_) => return Ok(()),
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
        let mut epoch: Option<String> = None;
        let mut backoff = Duration::from_millis(50);
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
            match self.check_epoch(&mut conn, &mut epoch, &state).await {
                Ok(true) => last_id = String::from("0"),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "revocation stream epoch check failed");
                    continue;
                }
            }
            backoff = Duration::from_millis(50);
            // Read until the connection breaks; then reconnect and go on from last_id.
            loop {
                let caught_up = self.caught_up.load(Ordering::Acquire);
                let mut cmd = redis::cmd("XREAD");
                cmd.arg("COUNT").arg(BATCH);
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
                for (id, payload) in entries {
                    last_id = id;
                    match payload.and_then(|p| Event::from_json(&p).ok()) {
                        Some(ev) => {
                            if state.apply(&ev) {
                                metrics
                                    .revocations_applied
                                    .with_label_values(&[ev.kind(), ev.source.as_str()])
                                    .inc();
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
                if !caught_up && n < BATCH {
                    self.caught_up.store(true, Ordering::Release);
                    tracing::info!(position = %last_id, live = state.len(), "revocation stream caught up");
                }
                metrics.revocation_entries.set(state.len() as i64);
                metrics
                    .revocation_stream_staleness_seconds
                    .set(self.staleness().as_secs() as i64);
            }
        }
    }

    /// Notices a Redis that lost its data: returns true (read from 0 again)
    /// after re-appending what this replica knows.
    async fn check_epoch(
        &self,
        conn: &mut MultiplexedConnection,
        known: &mut Option<String>,
        state: &RevocationState,
    ) -> Result<bool, StreamError> {
        let fresh = format!("{:x}", unix_now_ms() ^ (std::process::id() as u64) << 40);
        let _: Value = redis::cmd("SET")
            .arg(&self.epoch_key)
            .arg(&fresh)
            .arg("NX")
            .query_async(conn)
            .await
            .map_err(|e| StreamError::Redis(e.to_string()))?;
        let current: Option<String> = redis::cmd("GET")
            .arg(&self.epoch_key)
            .query_async(conn)
            .await
            .map_err(|e| StreamError::Redis(e.to_string()))?;
        let reset = matches!((&*known, &current), (Some(k), Some(c)) if k != c);
        *known = current;
        if reset {
            let live = state.snapshot();
            tracing::warn!(
                events = live.len(),
                "revocation stream was reset; re-appending live revocations"
            );
            for ev in &live {
                let _: Value = redis::cmd("XADD")
                    .arg(&self.cfg.key)
                    .arg("*")
                    .arg("event")
                    .arg(ev.to_json())
                    .query_async(conn)
                    .await
                    .map_err(|e| StreamError::Redis(e.to_string()))?;
            }
        }
        Ok(reset)
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
