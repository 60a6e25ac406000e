//! The SSF receiver's metrics (`crate::ssf`), registered into the gateway's registry and
//! exported at zero from start-up (every label value below is touched once),
//! so alerts and dashboards see them before the first event.

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

/// Event type labels (`crate::ssf::events` maps URIs to them): the types
/// that revoke, then the ones only counted. A test there keeps the lists equal.
pub const REVOKING: &[&str] = &[
    "session-revoked",
    "credential-change",
    "account-disabled",
    "account-purged",
    "credential-compromise",
    "sessions-revoked",
];

/// Known event types that are counted and not acted on.
pub const COUNTED: &[&str] = &[
    "token-claims-change",
    "assurance-level-change",
    "device-compliance-change",
    "session-established",
    "session-presented",
    "risk-level-change",
    "account-enabled",
    "account-credential-change-required",
    "identifier-changed",
    "identifier-recycled",
    "recovery-activated",
    "recovery-information-changed",
];

/// The families this module registers (part of `super::METRIC_NAMES`).
pub const NAMES: &[&str] = &[
    "scopegate_ssf_events_total",
    "scopegate_ssf_verification_failures_total",
    "scopegate_ssf_poll_errors_total",
    "scopegate_ssf_jwks_refreshes_total",
    "scopegate_ssf_stream_status",
];

/// Outcomes of an accepted (verified) SET's events.
pub const OUTCOMES: &[&str] = &[
    "applied",
    "unmapped",
    "duplicate",
    "failed",
    "counted",
    "verified",
    "unsolicited",
    "invalid",
    "status",
];

/// Why a SET was refused (bounded label).
pub const FAILURES: &[&str] = &[
    "malformed",
    "unsigned",
    "algorithm",
    "unknown_key",
    "signature",
    "issuer",
    "audience",
    "iat",
    "expired",
    "replay",
    "authentication",
    "access",
];

/// Why a poll failed.
pub const POLL_ERRORS: &[&str] = &["unreachable", "timeout", "status", "malformed"];

#[derive(Clone)]
pub struct SsfMetrics {
    /// type (short event name or `other`), outcome.
    pub events: IntCounterVec,
    /// reason.
    pub failures: IntCounterVec,
    /// kind.
    pub poll_errors: IntCounterVec,
    /// outcome (ok, error, rate_limited).
    pub jwks_refreshes: IntCounterVec,
    /// status (enabled, paused, disabled, unknown): 1 for the current one.
    pub stream_status: IntGaugeVec,
}

fn counter(r: &Registry, name: &str, help: &str, label: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), label).expect("static metric definition");
    r.register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

impl SsfMetrics {
    pub fn register(r: &Registry) -> SsfMetrics {
        let stream_status =
            IntGaugeVec::new(
                Opts::new(
                    "scopegate_ssf_stream_status",
                    "The SSF stream's status at the transmitter: 1 for the current one (enabled, paused, disabled, unknown).",
                ),
                &["status"],
            )
            .expect("static metric definition");
        r.register(Box::new(stream_status.clone()))
            .expect("metric registered once");
        let m = SsfMetrics {
            events: counter(
                r,
                "scopegate_ssf_events_total",
                "Events of verified Security Event Tokens, by type and outcome.",
                &["type", "outcome"],
            ),
            failures: counter(
                r,
                "scopegate_ssf_verification_failures_total",
                "Security Event Tokens refused, by reason.",
                &["reason"],
            ),
            poll_errors: counter(
                r,
                "scopegate_ssf_poll_errors_total",
                "Failed polls of the SSF transmitter, by kind.",
                &["kind"],
            ),
            jwks_refreshes: counter(
                r,
                "scopegate_ssf_jwks_refreshes_total",
                "Fetches of the transmitter's JWKS, by outcome (ok, error, rate_limited).",
                &["outcome"],
            ),
            stream_status,
        };
        for t in REVOKING {
            for o in ["applied", "unmapped", "duplicate", "failed"] {
                m.events.with_label_values(&[t, o]);
            }
        }
        for t in COUNTED.iter().chain(&["other"]) {
            m.events.with_label_values(&[t, "counted"]);
        }
        for o in ["verified", "unsolicited"] {
            m.events.with_label_values(&["verification", o]);
        }
        m.events.with_label_values(&["stream-updated", "status"]);
        for f in FAILURES {
            m.failures.with_label_values(&[f]);
        }
        for k in POLL_ERRORS {
            m.poll_errors.with_label_values(&[k]);
        }
        for o in ["ok", "error", "rate_limited"] {
            m.jwks_refreshes.with_label_values(&[o]);
        }
        for s in ["enabled", "paused", "disabled"] {
            m.stream_status.with_label_values(&[s]);
        }
        m.stream_status.with_label_values(&["unknown"]).set(1);
        m
    }

    /// Sets the status gauge: 1 for `status`, 0 for the others.
    pub fn set_status(&self, status: &str) {
        for s in ["enabled", "paused", "disabled", "unknown"] {
            self.stream_status
                .with_label_values(&[s])
                .set(i64::from(s == status));
        }
    }
}
