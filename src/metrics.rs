//! Prometheus metrics. The names are part of the contract (PRODUCT.md
//! section 7); labels are bounded: route names from the policy, decisions,
//! reasons, kinds. Never a token, an object id or a user id.
//!
//! Everything is registered into a registry owned by [`Metrics`], so tests
//! can run several gateways in one process without sharing counters.

pub mod ssf;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// Every metric family this module registers, by its exported name.
///
/// Deploy artefacts (alert rules, the Grafana dashboard) are checked against
/// this list by `tests/deploy.rs`, and the unit test below proves it matches
/// the registry, so a renamed metric breaks a test instead of an alert.
pub const METRIC_NAMES: &[&str] = &[
    "scopegate_requests_total",
    "scopegate_decision_seconds",
    "scopegate_upstream_seconds",
    "scopegate_grant_cache_hits_total",
    "scopegate_grant_cache_misses_total",
    "scopegate_grant_cache_entries",
    "scopegate_tokens_minted_total",
    "scopegate_oauth_requests_total",
    "scopegate_revocations_applied_total",
    "scopegate_revocation_entries",
    "scopegate_revocation_propagation_seconds",
    "scopegate_revocation_stream_staleness_seconds",
    "scopegate_introspection_errors_total",
    "scopegate_upstream_errors_total",
    "scopegate_ancestry_lookups_total",
    "scopegate_revocation_stream_malformed_total",
    "scopegate_ssf_events_total",
    "scopegate_ssf_verification_failures_total",
    "scopegate_ssf_poll_errors_total",
    "scopegate_ssf_jwks_refreshes_total",
    "scopegate_ssf_stream_status",
];

/// `kind` of `scopegate_upstream_errors_total`: the proxy's failures
/// (`unreachable`, `timeout`, `busy`: no connection free) and the body
/// deadlines' (`body_timeout`: an answer stalled; `upload_timeout`: a
/// request body stalled on its way up), and `answer`: an answer to rewrite
/// that could not be read.
pub const UPSTREAM_ERROR_KINDS: &[&str] = &[
    "unreachable",
    "timeout",
    "busy",
    "body_timeout",
    "upload_timeout",
    "answer",
];
/// `kind` of `scopegate_revocations_applied_total` (the event kinds).
pub const REVOCATION_KINDS: &[&str] = &["token", "family", "subject", "cutoff"];
/// `source` of `scopegate_revocations_applied_total`.
pub const REVOCATION_SOURCES: &[&str] = &["api", "admin", "external", "ssf"];
/// `result` of `scopegate_ancestry_lookups_total`.
pub const ANCESTRY_RESULTS: &[&str] = &["hit", "miss", "error"];

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// route, decision (allow|deny|error), reason.
    pub requests: IntCounterVec,
    pub decision_seconds: Histogram,
    /// route.
    pub upstream_seconds: HistogramVec,
    pub grant_cache_hits: IntCounter,
    pub grant_cache_misses: IntCounter,
    pub grant_cache_entries: IntGauge,
    pub tokens_minted: IntCounter,
    /// endpoint (exchange|revoke|forward), error.
    pub oauth_requests: IntCounterVec,
    /// kind, source.
    pub revocations_applied: IntCounterVec,
    pub revocation_entries: IntGauge,
    pub revocation_propagation_seconds: Histogram,
    pub revocation_stream_staleness_seconds: IntGauge,
    pub introspection_errors: IntCounter,
    /// kind (see [`UPSTREAM_ERROR_KINDS`]).
    pub upstream_errors: IntCounterVec,
    /// result (hit|miss|error): folder-subtree ancestry lookups.
    pub ancestry_lookups: IntCounterVec,
    /// Stream entries that did not decode as events (skipped).
    pub revocation_stream_malformed: IntCounter,
    /// The SSF receiver's families (`ssf`).
    pub ssf: ssf::SsfMetrics,
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition");
    r.register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("static metric definition");
    r.register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("static metric definition");
    r.register(Box::new(g.clone()))
        .expect("metric registered once");
    g
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .expect("static metric definition");
    r.register(Box::new(h.clone()))
        .expect("metric registered once");
    h
}

/// 10 us .. 10 s, for in-process decisions and network calls alike.
fn latency_buckets() -> Vec<f64> {
    vec![
        0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
        0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ]
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        let upstream_seconds = HistogramVec::new(
            HistogramOpts::new(
                "scopegate_upstream_seconds",
                "Time to the upstream's response head, by route.",
            )
            .buckets(latency_buckets()),
            &["route"],
        )
        .expect("static metric definition");
        r.register(Box::new(upstream_seconds.clone()))
            .expect("metric registered once");
        let m = Metrics {
            requests: counter_vec(
                &r,
                "scopegate_requests_total",
                "API requests by route, decision and reason.",
                &["route", "decision", "reason"],
            ),
            decision_seconds: histogram(
                &r,
                "scopegate_decision_seconds",
                "Time from request head to the allow/deny decision.",
                latency_buckets(),
            ),
            upstream_seconds,
            grant_cache_hits: counter(
                &r,
                "scopegate_grant_cache_hits_total",
                "Grant lookups answered from the cache.",
            ),
            grant_cache_misses: counter(
                &r,
                "scopegate_grant_cache_misses_total",
                "Grant lookups that verified or introspected.",
            ),
            grant_cache_entries: gauge(&r, "scopegate_grant_cache_entries", "Grants in the cache."),
            tokens_minted: counter(
                &r,
                "scopegate_tokens_minted_total",
                "Downscoped tokens minted.",
            ),
            oauth_requests: counter_vec(
                &r,
                "scopegate_oauth_requests_total",
                "Requests to /oauth2/* by endpoint and outcome (ok or the OAuth error code).",
                &["endpoint", "outcome"],
            ),
            revocations_applied: counter_vec(
                &r,
                "scopegate_revocations_applied_total",
                "Revocation events applied, by kind and source.",
                &["kind", "source"],
            ),
            revocation_entries: gauge(
                &r,
                "scopegate_revocation_entries",
                "Live revocation entries.",
            ),
            revocation_propagation_seconds: histogram(
                &r,
                "scopegate_revocation_propagation_seconds",
                "Delay from a revocation's event time to its application here.",
                latency_buckets(),
            ),
            revocation_stream_staleness_seconds: gauge(
                &r,
                "scopegate_revocation_stream_staleness_seconds",
                "Seconds since the revocation stream was last confirmed live.",
            ),
            introspection_errors: counter(
                &r,
                "scopegate_introspection_errors_total",
                "Failed introspection calls.",
            ),
            upstream_errors: counter_vec(
                &r,
                "scopegate_upstream_errors_total",
                "Upstream calls that failed, by kind.",
                &["kind"],
            ),
            ancestry_lookups: counter_vec(
                &r,
                "scopegate_ancestry_lookups_total",
                "Folder-subtree ancestry lookups by result (hit, miss, error).",
                &["result"],
            ),
            revocation_stream_malformed: counter(
                &r,
                "scopegate_revocation_stream_malformed_total",
                "Revocation stream entries that did not decode as events and were skipped.",
            ),
            ssf: ssf::SsfMetrics::register(&r),
            registry: r,
        };
        m.export_known_labels();
        m
    }

    /// Every series whose label values are known before the first event is
    /// exported at zero from start-up, so a dashboard or an alert (`rate`,
    /// `increase`, `absent`) sees the family on a fresh gateway instead of
    /// no data until the first error, revocation or lookup.
    fn export_known_labels(&self) {
        for kind in UPSTREAM_ERROR_KINDS {
            self.upstream_errors.with_label_values(&[kind]);
        }
        for kind in REVOCATION_KINDS {
            for source in REVOCATION_SOURCES {
                self.revocations_applied.with_label_values(&[kind, source]);
            }
        }
        for result in ANCESTRY_RESULTS {
            self.ancestry_lookups.with_label_values(&[result]);
        }
        for (endpoint, outcome) in [("exchange", "ok"), ("revoke", "ok"), ("forward", "sent")] {
            self.oauth_requests.with_label_values(&[endpoint, outcome]);
        }
    }

    /// The per-route series of the policy's routes, at zero (allowed
    /// requests, time to the upstream): called with the policy's route
    /// names when the gateway starts.
    pub fn export_routes<'a>(&self, routes: impl IntoIterator<Item = &'a str>) {
        for route in routes {
            self.requests.with_label_values(&[route, "allow", "ok"]);
            self.upstream_seconds.with_label_values(&[route]);
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }

    /// Names of the families `gather` returns now. A labelled family
    /// appears only once one of its label sets has been used.
    pub fn families(&self) -> Vec<String> {
        self.registry
            .gather()
            .iter()
            .map(|f| f.name().to_string())
            .collect()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn metric_names_list_every_registered_family() {
        let m = Metrics::new();
        // Vecs without a child are left out of `gather`; touch each once.
        m.requests.with_label_values(&["r", "allow", "ok"]).inc();
        m.upstream_seconds.with_label_values(&["r"]).observe(0.1);
        m.oauth_requests
            .with_label_values(&["exchange", "ok"])
            .inc();
        m.revocations_applied
            .with_label_values(&["token", "api"])
            .inc();
        m.upstream_errors.with_label_values(&["timeout"]).inc();
        m.ancestry_lookups.with_label_values(&["hit"]).inc();

        let registered: BTreeSet<String> = m.families().into_iter().collect();
        let listed: BTreeSet<String> = METRIC_NAMES.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            listed.len(),
            METRIC_NAMES.len(),
            "METRIC_NAMES has a duplicate"
        );
        assert_eq!(registered, listed);
        assert!(METRIC_NAMES.iter().all(|n| n.starts_with("scopegate_")));
    }
}
