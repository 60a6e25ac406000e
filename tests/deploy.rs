//! The files in deploy/ against the code they describe: metric names in the
//! alert rules and the dashboard, the dashboard's shape, the rules' syntax
//! (promtool), and the Kubernetes manifest's probes and embedded config.
//!
//! Nothing here parses YAML with a YAML library (the crate has none, and a
//! test is no reason to add one): the manifest checks read the few keys they
//! need by indentation, which is enough for a file we write ourselves.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use scopegate::metrics::METRIC_NAMES;

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_file(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

/// Every `scopegate_*` identifier in `text`, as written.
fn scopegate_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("scopegate_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        // Skip a match inside a longer identifier (e.g. `my_scopegate_x`).
        let preceded = rest[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        if !preceded {
            out.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    out
}

/// The metric family a series name belongs to: histograms are queried as
/// `_bucket`, `_sum` and `_count`.
fn family(name: &str) -> &str {
    if METRIC_NAMES.contains(&name) {
        return name;
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && METRIC_NAMES.contains(&base)
        {
            return base;
        }
    }
    name
}

fn unknown_names(text: &str) -> Vec<String> {
    scopegate_names(text)
        .into_iter()
        .filter(|n| !METRIC_NAMES.contains(&family(n)))
        .collect()
}

#[test]
fn alert_rules_use_only_exported_metrics() {
    let text = read("deploy/prometheus/alerts.yml");
    let names = scopegate_names(&text);
    assert!(
        names.len() >= 5,
        "alerts.yml names suspiciously few metrics: {names:?}"
    );
    assert_eq!(
        unknown_names(&text),
        Vec::<String>::new(),
        "not in metrics::METRIC_NAMES"
    );
}

#[test]
fn dashboard_uses_only_exported_metrics_and_shows_all_of_them() {
    let text = read("deploy/grafana/scopegate.json");
    assert_eq!(
        unknown_names(&text),
        Vec::<String>::new(),
        "not in metrics::METRIC_NAMES"
    );
    // A metric nobody can see is a metric nobody watches: a new family needs
    // a panel.
    let shown: BTreeSet<String> = scopegate_names(&text)
        .iter()
        .map(|n| family(n).to_string())
        .collect();
    let missing: Vec<&str> = METRIC_NAMES
        .iter()
        .copied()
        .filter(|m| !shown.contains(*m))
        .collect();
    assert!(
        missing.is_empty(),
        "metrics without a dashboard panel: {missing:?}"
    );
}

#[test]
fn dashboard_is_json_and_every_panel_has_a_query() {
    let text = read("deploy/grafana/scopegate.json");
    let d: serde_json::Value = serde_json::from_str(&text).expect("scopegate.json is JSON");
    let schema = d["schemaVersion"].as_i64().expect("schemaVersion");
    assert!((36..=41).contains(&schema), "schemaVersion {schema}");

    // A Prometheus datasource variable, so the dashboard imports anywhere.
    let vars = d["templating"]["list"].as_array().expect("templating.list");
    assert!(
        vars.iter().any(|v| v["type"] == "datasource"
            && v["query"] == "prometheus"
            && v["name"] == "datasource"),
        "no prometheus datasource variable"
    );

    let panels = d["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut queried = 0;
    for p in panels {
        let title = p["title"].as_str().unwrap_or("(untitled)");
        assert!(
            ids.insert(p["id"].as_i64().expect("panel id")),
            "duplicate panel id in {title}"
        );
        if p["type"] == "row" {
            // Expanded rows carry no queries; their panels follow at top level.
            assert_eq!(
                p["collapsed"], false,
                "collapsed row {title} would hide its panels from this check"
            );
            continue;
        }
        assert_eq!(
            p["datasource"]["uid"], "${datasource}",
            "panel {title} ignores the datasource variable"
        );
        let targets = p["targets"].as_array().filter(|t| !t.is_empty());
        let targets = targets.unwrap_or_else(|| panic!("panel {title} has no target"));
        for t in targets {
            let expr = t["expr"].as_str().unwrap_or("");
            assert!(
                expr.contains("scopegate_"),
                "panel {title}: target without a scopegate query: {t}"
            );
        }
        queried += 1;
    }
    assert!(queried >= 10, "only {queried} panels");
}

#[test]
fn promtool_accepts_the_alert_rules() {
    let rules = repo_file("deploy/prometheus/alerts.yml");
    let out = match Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&rules)
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // CI installs it (.ci/run); a developer machine may not have it.
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("promtool is not installed (Debian: apt-get install prometheus)");
            }
            eprintln!(
                "note: promtool not found, alert rules not checked (apt-get install prometheus)"
            );
            return;
        }
        Err(e) => panic!("cannot run promtool: {e}"),
    };
    assert!(
        out.status.success(),
        "promtool check rules failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The lines nested under the first line whose trimmed text is `key` (a
/// YAML mapping key or block scalar header), dedented.
fn nested(text: &str, key: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().position(|l| l.trim() == key)?;
    let base = indent(lines[start]);
    let body: Vec<&str> = lines[start + 1..]
        .iter()
        .take_while(|l| l.trim().is_empty() || indent(l) > base)
        .copied()
        .collect();
    let cut = body
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| indent(l))
        .min()?;
    Some(
        body.iter()
            .map(|l| l.get(cut..).unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// The value of `key: value` on the first such line of `text`, unquoted.
fn value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix(':'))
        .map(|v| v.trim().trim_matches('"'))
}

const MANIFEST: &str = "deploy/kubernetes/sidecar.yaml";
const CONFIG_PATH: &str = "/etc/scopegate/scopegate.toml";
const PLACEHOLDER: &str = "secret = \"CHANGE-ME\"";

#[test]
fn manifest_probes_the_admin_endpoints() {
    let m = read(MANIFEST);
    for (probe, path) in [
        ("livenessProbe:", "/healthz"),
        ("readinessProbe:", "/readyz"),
        ("startupProbe:", "/healthz"),
    ] {
        let block = nested(&m, probe).unwrap_or_else(|| panic!("no {probe}"));
        assert_eq!(value(&block, "path"), Some(path), "{probe}\n{block}");
        assert_eq!(
            value(&block, "port"),
            Some("admin"),
            "{probe} must use the admin port"
        );
    }
}

#[test]
fn manifest_config_validates_and_matches_the_pod() {
    let m = read(MANIFEST);
    let toml = nested(&m, "scopegate.toml: |").expect("the Secret embeds scopegate.toml");

    // The shipped placeholder is meant to stop an unedited deploy at start-up.
    assert!(
        toml.contains(PLACEHOLDER),
        "placeholder admin secret changed; update this test"
    );
    let err = scopegate::config::validate(&toml, Path::new(CONFIG_PATH))
        .unwrap_err()
        .to_string();
    assert!(err.contains("admin.secret"), "{err}");

    // With a real secret, as an operator deploys it, the config is valid.
    let toml = toml.replace(PLACEHOLDER, "secret = \"0123456789abcdef0123456789abcdef\"");
    let c = scopegate::config::validate(&toml, Path::new(CONFIG_PATH))
        .unwrap_or_else(|p| panic!("{p}"));

    // Files the config names are the ones the projected volume provides.
    let mount = |p: &Path| format!("mountPath: {}", p.parent().unwrap().display());
    assert!(
        m.contains(&mount(&c.keyring)),
        "keyring dir {} not mounted",
        c.keyring.display()
    );
    assert!(
        m.contains(&mount(&c.policy)),
        "policy dir {} not mounted",
        c.policy.display()
    );
    for f in [&c.keyring, &c.policy, &c.source] {
        let name = f.file_name().unwrap().to_string_lossy();
        assert!(
            m.contains(&format!("path: {name}")),
            "{name} not projected into the volume"
        );
    }
    assert!(
        m.contains(&format!("mountPath: {}", c.data_dir.display())),
        "revocation data_dir {} is not a mounted volume (readOnlyRootFilesystem)",
        c.data_dir.display()
    );
    assert!(
        m.contains("persistentVolumeClaim:"),
        "revocations need a PVC"
    );

    // Ports: the probes and the scrape annotation hit the admin listener.
    assert!(
        !c.admin.ip().is_loopback(),
        "kubelet and Prometheus cannot reach a loopback admin listener"
    );
    assert!(m.contains(&format!("containerPort: {}", c.admin.port())));
    assert!(m.contains(&format!("containerPort: {}", c.public.port())));
    assert_eq!(
        value(&m, "prometheus.io/port"),
        Some(c.admin.port().to_string().as_str())
    );

    // SIGTERM must be able to finish the drain before SIGKILL.
    let grace: u64 = value(&m, "terminationGracePeriodSeconds")
        .unwrap()
        .parse()
        .unwrap();
    let pre_stop = 5;
    assert!(
        m.contains("command: [\"sleep\", \"5\"]"),
        "preStop sleep changed; update this test"
    );
    assert!(
        c.drain.as_secs() + pre_stop < grace,
        "drain {:?} + preStop {pre_stop}s >= grace {grace}s",
        c.drain
    );
}

#[test]
fn image_and_manifest_agree() {
    let d = read("deploy/Dockerfile");
    let m = read(MANIFEST);
    assert!(
        d.contains(&format!("\"--config\", \"{CONFIG_PATH}\"")),
        "ENTRYPOINT config path"
    );
    assert!(
        m.contains("mountPath: /etc/scopegate\n"),
        "config volume mount"
    );
    assert!(d.contains("USER 10001:10001"));
    assert!(m.contains("runAsUser: 10001") && m.contains("fsGroup: 10001"));
}
