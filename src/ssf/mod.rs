//! The Shared Signals (SSF) receiver: identity providers' Security Event
//! Tokens (RFC 8417) turned into ordinary subject revocations.
//!
//! - [`config`] (`crate::config::ssf`): the `[ssf]` section.
//! - [`transmitter`]: the transmitter's `/.well-known/ssf-configuration`,
//!   its stream configuration and status, and verification requests.
//! - [`jwks`]: the transmitter's keys, cached by `kid`, refreshed once
//!   (rate-limited) when a SET names an unknown one.
//! - [`verify`]: one SET checked (signature, algorithm allow-list, `iss`,
//!   `aud`, `iat`); [`set`] reads its claims.
//! - [`replay`]: the `jti` memory, fleet-wide in fleet mode.
//! - [`events`]: event types and subject identifiers mapped to actions
//!   (the table is there).
//! - [`push`] (RFC 8935) and [`poll`] (RFC 8936): the two ways SETs arrive.
//!
//! The receiver reaches the rest of the gateway through one callback,
//! [`Apply`], that the assembly gives it: an accepted event is an ordinary
//! [`Event`] with `source = "ssf"`, made durable (and put on the stream in
//! fleet mode) before the transmitter gets its 202 or acknowledgement.

pub mod events;
pub mod http;
pub mod jwks;
pub mod poll;
pub mod push;
pub mod replay;
pub mod set;
pub mod transmitter;
pub mod verify;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::clock::{unix_now, unix_now_ms};
use crate::revocation::{Event, Source, Target};

/// The `[ssf]` section (a leaf of `crate::config`).
pub use crate::config::ssf as config;
pub use crate::config::ssf::SsfConfig;
/// The receiver's metrics (registered by `crate::metrics`).
pub use crate::metrics::ssf as metrics;
use events::{Action, StreamStatus};
use metrics::SsfMetrics;
use verify::{Refusal, Refused, Verifier};

/// Applies one revocation durably (state, log or stream, cache eviction);
/// resolves once it is durable. Given by the assembly.
pub type Apply =
    Arc<dyn Fn(Event) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// Why a SET was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotAccepted {
    /// Refused: the transmitter is told why and must not resend it as is.
    Refused(Refused),
    /// A revocation could not be made durable: the transmitter retries.
    Unavailable,
}

/// Most verification states remembered.
const MAX_STATES: usize = 16;

pub struct Receiver {
    pub cfg: Arc<SsfConfig>,
    verifier: Verifier,
    pub jwks: Arc<jwks::Jwks>,
    replay: replay::Replay,
    apply: Apply,
    pub metrics: SsfMetrics,
    pub http: http::Http,
    /// How long after its time a subject revocation must be kept: the
    /// longest life of a token it can cover.
    horizon: Duration,
    /// The stream's status as last heard from the transmitter.
    status: Mutex<Option<StreamStatus>>,
    /// `state` values of verification requests sent.
    states: Mutex<Vec<String>>,
    /// The poll endpoint, configured or learnt from the stream configuration.
    poll_endpoint: Mutex<Option<::http::Uri>>,
}

impl Receiver {
    /// `redis`: the stream's URL and key in fleet mode (the jti memory is
    /// shared there); `horizon`: how long a subject revocation is kept.
    pub fn new(
        cfg: SsfConfig,
        apply: Apply,
        metrics: SsfMetrics,
        redis: Option<(&str, &str)>,
        horizon: Duration,
    ) -> Receiver {
        let cfg = Arc::new(cfg);
        let http = http::Http::new(cfg.bearer.clone());
        let jwks = Arc::new(jwks::Jwks::new(
            http.clone(),
            cfg.jwks_min_refresh,
            cfg.timeout,
            metrics.clone(),
        ));
        if let Some(f) = &cfg.jwks_file {
            jwks.set_source(jwks::KeySource::File(f.clone()));
        }
        let poll_endpoint = cfg.poll.as_ref().and_then(|p| p.endpoint.clone());
        Receiver {
            verifier: Verifier::new(cfg.clone(), jwks.clone()),
            replay: replay::Replay::new(redis, cfg.iat_skew * 2),
            jwks,
            apply,
            metrics,
            http,
            horizon,
            status: Mutex::new(None),
            states: Mutex::new(Vec::new()),
            poll_endpoint: Mutex::new(poll_endpoint),
            cfg,
        }
    }

    /// The push path on the public listener, if push is configured.
    pub fn push_path(&self) -> Option<&str> {
        self.cfg.push.as_ref().map(|p| p.path.as_str())
    }

    pub fn status(&self) -> Option<StreamStatus> {
        *self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_status(&self, s: StreamStatus) {
        let mut g = self.status.lock().unwrap_or_else(|e| e.into_inner());
        if *g != Some(s) {
            tracing::info!(status = s.as_str(), "ssf: stream status");
        }
        *g = Some(s);
        self.metrics.set_status(s.as_str());
    }

    pub fn poll_endpoint(&self) -> Option<::http::Uri> {
        self.poll_endpoint
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn learn_poll_endpoint(&self, u: ::http::Uri) {
        let mut g = self.poll_endpoint.lock().unwrap_or_else(|e| e.into_inner());
        if g.is_none() {
            *g = Some(u);
        }
    }

    pub(crate) fn remember_state(&self, state: String) {
        let mut g = self.states.lock().unwrap_or_else(|e| e.into_inner());
        if g.len() >= MAX_STATES {
            g.remove(0);
        }
        g.push(state);
    }

    fn refused(&self, r: Refused) -> NotAccepted {
        self.metrics
            .failures
            .with_label_values(&[r.refusal.reason()])
            .inc();
        tracing::warn!(
            reason = r.refusal.reason(),
            err = r.refusal.err(),
            description = %r.description,
            "ssf: SET refused"
        );
        NotAccepted::Refused(r)
    }

    /// Counts a refusal made before the SET was read (push authorization).
    pub fn refuse(&self, refusal: Refusal, description: &str) -> NotAccepted {
        self.refused(Refused {
            refusal,
            description: description.to_string(),
        })
    }

    /// Verifies one SET and applies its events; `Ok` once every revocation
    /// it causes is durable.
    pub async fn receive(&self, bytes: &[u8]) -> Result<(), NotAccepted> {
        let now = unix_now();
        let claims = self
            .verifier
            .verify(bytes, now)
            .await
            .map_err(|r| self.refused(r))?;
        // Map every event before claiming the jti: a SET whose payload does
        // not conform is refused whole and leaves nothing behind.
        let now_ms = unix_now_ms();
        let mut actions = Vec::with_capacity(claims.events.len());
        for (uri, payload) in &claims.events {
            let a = events::map(
                uri,
                payload,
                claims.sub_id.as_ref(),
                claims.iat,
                now_ms,
                &self.cfg.subjects,
            )
            .map_err(|e| {
                self.refused(Refused {
                    refusal: Refusal::Malformed,
                    description: format!("event {}: {e}", events::label(uri)),
                })
            })?;
            actions.push((events::label(uri), a));
        }
        let jti = replay::key(&claims.iss, &claims.jti);
        if !self.replay.claim(&jti, now).await {
            for (label, _) in &actions {
                self.metrics
                    .events
                    .with_label_values(&[label, "duplicate"])
                    .inc();
            }
            return Err(self.refused(Refused {
                refusal: Refusal::Replay,
                description: "this jti has been received before".into(),
            }));
        }
        let set_id = jti.short();
        for (label, action) in actions {
            let outcome = match action {
                Action::Revoke { subjects, .. } if subjects.is_empty() => {
                    tracing::warn!(
                        set = set_id.as_str(),
                        event = label,
                        "ssf: event's subject maps to no gateway subject; nothing revoked"
                    );
                    "unmapped"
                }
                Action::Revoke { subjects, at_ms } => {
                    for s in subjects {
                        let ev = Event {
                            target: Target::Subject(s),
                            revoked_at_ms: at_ms,
                            keep_until: at_ms / 1000 + self.horizon.as_secs(),
                            source: Source::Ssf,
                        };
                        if ev.validate().is_err() {
                            // `events::map` only yields valid subjects.
                            tracing::error!(
                                set = set_id.as_str(),
                                "ssf: mapped subject is not a valid subject; skipped"
                            );
                            continue;
                        }
                        if let Err(e) = (self.apply)(ev).await {
                            tracing::error!(set = set_id.as_str(), error = %e, "ssf: revocation could not be made durable");
                            self.metrics
                                .events
                                .with_label_values(&[label, "failed"])
                                .inc();
                            self.replay.release(&jti).await;
                            return Err(NotAccepted::Unavailable);
                        }
                    }
                    tracing::info!(set = set_id.as_str(), event = label, "ssf: subject revoked");
                    "applied"
                }
                Action::Count => {
                    tracing::info!(
                        set = set_id.as_str(),
                        event = label,
                        "ssf: event counted, no action"
                    );
                    "counted"
                }
                Action::Verification { state } => {
                    let known = state.is_some_and(|s| {
                        self.states
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .contains(&s)
                    });
                    if known {
                        tracing::info!("ssf: stream verified");
                        "verified"
                    } else {
                        "unsolicited"
                    }
                }
                Action::StreamUpdated { status } => {
                    self.set_status(status);
                    "status"
                }
            };
            self.metrics
                .events
                .with_label_values(&[label, outcome])
                .inc();
        }
        Ok(())
    }

    /// Runs the background work until `shutdown`: reading the transmitter's
    /// metadata and keys, verification, stream status, and polling.
    pub async fn run(self: Arc<Self>, shutdown: tokio::sync::watch::Receiver<bool>) {
        let control = tokio::spawn(transmitter::control(self.clone(), shutdown.clone()));
        if self.cfg.poll.is_some() {
            poll::run(self.clone(), shutdown).await;
        }
        let _ = control.await;
    }
}
