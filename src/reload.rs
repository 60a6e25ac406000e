//! Reloading files without a restart: the TLS certificate and key, the route
//! policy and the keyring.
//!
//! A watcher polls the files' modification time and size every
//! `[listen] reload_poll` (default 2 s) and also reloads at once on request
//! (SIGHUP in `main`). A new file is validated whole before it replaces the
//! old one; a bad file is logged with its problems and the old one keeps
//! serving. Connections in flight are untouched: TLS sessions keep the
//! certificate they were opened with, requests keep the policy they started
//! with.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;

use crate::gateway::Gateway;
use crate::policy::Policy;
use crate::token::Keyring;

/// What identifies a version of a file without reading it.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

struct Watched {
    paths: Vec<PathBuf>,
    stamps: Vec<Stamp>,
}

impl Watched {
    fn new(paths: Vec<PathBuf>) -> Watched {
        let stamps = paths.iter().map(|p| stamp(p)).collect();
        Watched { paths, stamps }
    }

    /// True when any file changed since the last call (and records it).
    fn changed(&mut self) -> bool {
        let now: Vec<Stamp> = self.paths.iter().map(|p| stamp(p)).collect();
        let changed = now != self.stamps;
        self.stamps = now;
        changed
    }
}

/// The TLS config in force; new connections take the current one.
pub type TlsSlot = Arc<ArcSwapOption<rustls::ServerConfig>>;

/// Reloads the policy now; a bad file keeps the old policy.
pub fn reload_policy(gw: &Gateway) -> bool {
    match Policy::load(&gw.config.policy) {
        Ok(p) => {
            let unknown: Vec<&String> = gw
                .config
                .parent_scopes
                .iter()
                .filter(|s| !p.scopes.is_known(s))
                .collect();
            if !unknown.is_empty() {
                tracing::error!(file = %gw.config.policy.display(), ?unknown, "new policy drops parent scopes; keeping the old policy");
                return false;
            }
            gw.replace_policy(p);
            tracing::info!(file = %gw.config.policy.display(), "route policy reloaded");
            true
        }
        Err(problems) => {
            tracing::error!(problems = %problems, "new route policy rejected; keeping the old one");
            false
        }
    }
}

/// Reloads the keyring now; a bad file keeps the old keyring.
pub fn reload_keyring(gw: &Gateway) -> bool {
    match Keyring::load(&gw.config.keyring) {
        Ok(k) => {
            tracing::info!(primary = k.primary_id(), "keyring reloaded");
            gw.grants.replace_keyring(k);
            true
        }
        Err(problems) => {
            tracing::error!(problems = %problems, "new keyring rejected; keeping the old one");
            false
        }
    }
}

/// Reloads the certificate and key now; bad files keep the old ones.
pub fn reload_tls(gw: &Gateway, slot: &TlsSlot) -> bool {
    let Some((cert, key)) = &gw.config.tls else {
        return false;
    };
    match crate::tls::tls_config(cert, key) {
        Ok(cfg) => {
            slot.store(Some(cfg));
            tracing::info!(cert = %cert.display(), "TLS certificate reloaded");
            true
        }
        Err(problems) => {
            tracing::error!(problems = %problems, "new TLS certificate or key rejected; keeping the old ones");
            false
        }
    }
}

/// Polls the files and reloads what changed, until `stop`.
pub async fn watch(
    gw: Arc<Gateway>,
    tls: TlsSlot,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut policy = Watched::new(vec![gw.config.policy.clone()]);
    let mut keyring = Watched::new(vec![gw.config.keyring.clone()]);
    let mut cert = Watched::new(
        gw.config
            .tls
            .iter()
            .flat_map(|(c, k)| [c.clone(), k.clone()])
            .collect(),
    );
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let forced = tokio::select! {
            _ = tick.tick() => false,
            _ = gw.reload_requested() => true,
            _ = stop.changed() => return,
        };
        // Each changed check runs (no short-circuit) so stamps stay current.
        let (p, k, c) = (policy.changed(), keyring.changed(), cert.changed());
        if p || forced {
            reload_policy(&gw);
        }
        if k || forced {
            reload_keyring(&gw);
        }
        if (c || forced) && gw.config.tls.is_some() {
            reload_tls(&gw, &tls);
        }
    }
}
