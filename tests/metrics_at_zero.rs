//! A fresh gateway, before any traffic, exports every metric family the
//! shipped dashboard and alert rules query, with every series whose labels
//! are known in advance at zero: a real Prometheus scrape right after
//! start-up finds them (an absent family reads as "no data", and an alert
//! on `rate(...)` of it never fires).
mod support;

use std::collections::BTreeSet;
use std::path::Path;

use scopegate::metrics::{
    ANCESTRY_RESULTS, METRIC_NAMES, REVOCATION_KINDS, REVOCATION_SOURCES, UPSTREAM_ERROR_KINDS,
};
use support::*;

/// The metric families `text` names (histogram series folded into theirs).
fn families_named(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("scopegate_") {
        let preceded = text[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        if preceded {
            continue;
        }
        let tail = &text[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|b| METRIC_NAMES.contains(b)))
            .unwrap_or(name);
        out.insert(family.to_string());
    }
    out
}

/// The families in a Prometheus text exposition (from its `# TYPE` lines).
fn exported(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn a_fresh_gateway_exports_every_family_the_dashboard_and_alerts_query() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut wanted = BTreeSet::new();
    for file in [
        "deploy/grafana/scopegate.json",
        "deploy/prometheus/alerts.yml",
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        wanted.extend(families_named(&text));
    }
    assert!(wanted.len() >= 15, "the deploy files name only {wanted:?}");
    let h = Harness::start().await;
    let scrape = h.metrics().await;
    let have = exported(&scrape);
    let missing: Vec<_> = wanted.difference(&have).collect();
    assert!(
        missing.is_empty(),
        "a fresh gateway does not export {missing:?}"
    );
    // Every family the gateway has, too.
    let all: BTreeSet<String> = METRIC_NAMES.iter().map(|s| s.to_string()).collect();
    let absent: Vec<_> = all.difference(&have).collect();
    assert!(absent.is_empty(), "not exported at start-up: {absent:?}");
    // The known label values, each at zero.
    for kind in UPSTREAM_ERROR_KINDS {
        let series = format!("scopegate_upstream_errors_total{{kind=\"{kind}\"}} 0");
        assert!(scrape.contains(&series), "{series}");
    }
    for kind in REVOCATION_KINDS {
        for source in REVOCATION_SOURCES {
            let series = format!(
                "scopegate_revocations_applied_total{{kind=\"{kind}\",source=\"{source}\"}} 0"
            );
            assert!(scrape.contains(&series), "{series}");
        }
    }
    for result in ANCESTRY_RESULTS {
        let series = format!("scopegate_ancestry_lookups_total{{result=\"{result}\"}} 0");
        assert!(scrape.contains(&series), "{series}");
    }
    h.stop().await;
}
