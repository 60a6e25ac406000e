//! Assembling a gateway from its files: config, route policy, keyring and
//! the revocation log, every problem of every file reported at once.

use std::sync::Arc;

use crate::config::{self, Config, Problems};
use crate::gateway::Gateway;
use crate::metrics::Metrics;
use crate::policy::Policy;
use crate::revocation::Revocations;
use crate::token::Keyring;

/// Everything read from disk before anything is started.
pub struct Loaded {
    pub config: Config,
    pub policy: Policy,
    pub keyring: Keyring,
    /// The TLS server config, when `[tls]` is set.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// Reads and validates the config file and the files it names.
pub fn load(path: &std::path::Path) -> Result<Loaded, Problems> {
    let config = config::load(path)?;
    let mut problems = Problems::new(path);
    let policy = Policy::load(&config.policy)
        .map_err(|p| problems.extend(p))
        .ok();
    let keyring = Keyring::load(&config.keyring)
        .map_err(|p| problems.extend(p))
        .ok();
    let tls = match &config.tls {
        Some((cert, key)) => crate::tls::tls_config(cert, key)
            .map_err(|p| problems.extend(p))
            .ok(),
        None => None,
    };
    if let Some(p) = &policy {
        for s in &config.parent_scopes {
            if !p.scopes.is_known(s) {
                problems.push("parent.scopes", format!("unknown scope `{s}`"));
            }
        }
    }
    match (policy, keyring) {
        (Some(policy), Some(keyring)) if problems.is_empty() => Ok(Loaded {
            config,
            policy,
            keyring,
            tls,
        }),
        _ => Err(problems),
    }
}

/// Why a loaded gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(Problems),
    #[error("revocation log: {0}")]
    Log(#[from] crate::revocation::LogError),
    #[error("revocation stream: {0}")]
    Stream(#[from] crate::revocation::stream::StreamError),
}

/// Replays the revocation log and builds the gateway, ready to serve.
pub fn build(loaded: Loaded, metrics: Metrics) -> Result<Arc<Gateway>, StartError> {
    // rediss:// connections build their TLS config from the process default.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let revocations = match &loaded.config.stream {
        Some(cfg) => {
            let (revocations, replay) = Revocations::with_stream(
                cfg.clone(),
                &loaded.config.data_dir,
                crate::clock::unix_now(),
            )?;
            tracing::info!(
                replayed = replay.events.len(),
                live = revocations.state().len(),
                "revocation copy replayed; reading the stream"
            );
            revocations
        }
        None => {
            let (revocations, replay) =
                Revocations::open(&loaded.config.data_dir, crate::clock::unix_now())?;
            if replay.torn_bytes > 0 {
                tracing::warn!(
                    torn_bytes = replay.torn_bytes,
                    "revocation log had a torn tail; whole records kept"
                );
            }
            tracing::info!(
                replayed = replay.events.len(),
                live = revocations.state().len(),
                "revocation log replayed"
            );
            revocations
        }
    };
    let gw = Gateway::new(
        loaded.config,
        loaded.policy,
        loaded.keyring,
        Arc::new(revocations),
        metrics,
    )
    .map_err(StartError::Config)?;
    gw.metrics
        .revocation_entries
        .set(gw.revocations.state().len() as i64);
    gw.set_ready(true);
    let gw = Arc::new(gw);
    if let Some(cfg) = gw.config.ssf.clone() {
        let receiver = ssf_receiver(&gw, cfg);
        let _ = gw.ssf.set(Arc::new(receiver));
    }
    Ok(gw)
}

/// The SSF receiver, applying its revocations through the gateway's own
/// revocation service (durable, on the stream in fleet mode, counted).
fn ssf_receiver(gw: &Arc<Gateway>, cfg: crate::ssf::SsfConfig) -> crate::ssf::Receiver {
    let weak = Arc::downgrade(gw);
    let apply: crate::ssf::Apply = Arc::new(move |ev| {
        let weak = weak.clone();
        Box::pin(async move {
            let gw = weak.upgrade().ok_or("the gateway is shutting down")?;
            gw.grants.evict(&ev).await;
            gw.revocations
                .revoke(ev, &gw.metrics)
                .await
                .map_err(|e| e.to_string())
        })
    });
    let redis = gw
        .config
        .stream
        .as_ref()
        .map(|s| (s.url.as_str(), s.key.as_str()));
    let horizon = std::time::Duration::from_secs(gw.revocation_horizon(0));
    crate::ssf::Receiver::new(cfg, apply, gw.metrics.ssf.clone(), redis, horizon)
}
