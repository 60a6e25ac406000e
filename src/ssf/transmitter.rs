//! What the receiver learns from the transmitter, and keeps learning:
//! its metadata (`/.well-known/ssf-configuration`: issuer, `jwks_uri`,
//! endpoints), the stream's configuration (the poll endpoint, its
//! audience), a verification request at start, and the stream's status
//! every `status_interval`.
//!
//! A metadata document whose `issuer` is not the configured one is not
//! used: no keys are loaded from it, so every SET is refused (`invalid_key`)
//! until it is fixed. Failures are retried with back-off.

use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use serde_json::{Value, json};

use super::Receiver;
use super::events::StreamStatus;
use super::http::with_stream_id;
use super::jwks::KeySource;

/// RFC 8936's delivery method URN.
pub const POLL_METHOD: &str = "urn:ietf:rfc:8936";

/// The parts of the transmitter's metadata the receiver uses.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    pub jwks_uri: Option<Uri>,
    pub configuration_endpoint: Option<Uri>,
    pub status_endpoint: Option<Uri>,
    pub verification_endpoint: Option<Uri>,
}

/// Where the metadata of a transmitter at `base` is published: the
/// well-known segment goes between the authority and the issuer's path
/// (`https://idp/tenant` -> `https://idp/.well-known/ssf-configuration/tenant`).
pub fn metadata_url(base: &Uri) -> Option<Uri> {
    let scheme = base.scheme_str()?;
    let authority = base.authority()?;
    let path = base.path().trim_end_matches('/');
    format!("{scheme}://{authority}/.well-known/ssf-configuration{path}")
        .parse()
        .ok()
}

/// Reads a metadata document, checking it speaks for `issuer`.
pub fn parse_metadata(v: &Value, issuer: &str) -> Result<Metadata, String> {
    match v.get("issuer").and_then(Value::as_str) {
        Some(i) if i == issuer => {}
        Some(_) => return Err("the metadata's `issuer` is not the configured issuer".into()),
        None => return Err("the metadata has no `issuer`".into()),
    }
    let uri = |k: &str| -> Result<Option<Uri>, String> {
        match v.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => s
                .parse::<Uri>()
                .ok()
                .filter(|u| matches!(u.scheme_str(), Some("http" | "https")))
                .map(Some)
                .ok_or_else(|| format!("`{k}` is not an http(s) URL")),
            Some(_) => Err(format!("`{k}` is not a string")),
        }
    };
    Ok(Metadata {
        jwks_uri: uri("jwks_uri")?,
        configuration_endpoint: uri("configuration_endpoint")?,
        status_endpoint: uri("status_endpoint")?,
        verification_endpoint: uri("verification_endpoint")?,
    })
}

/// Waits `d` or until shutdown; false on shutdown.
async fn pause(d: Duration, shutdown: &mut tokio::sync::watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = shutdown.changed() => false,
    }
}

async fn metadata(rx: &Receiver) -> Result<Metadata, String> {
    let url =
        metadata_url(&rx.cfg.transmitter).ok_or("the transmitter URL does not take a path")?;
    let v = rx
        .http
        .get(&url, rx.cfg.timeout)
        .await
        .map_err(|e| format!("metadata: {e}"))?;
    parse_metadata(&v, &rx.cfg.issuer)
}

/// The control loop: metadata and keys, stream configuration,
/// verification, then the stream status every `status_interval`.
pub async fn control(rx: Arc<Receiver>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut backoff = Duration::from_millis(500);
    let meta = loop {
        match metadata(&rx).await {
            Ok(m) => break m,
            Err(e) => {
                tracing::warn!(error = %e, "ssf: transmitter metadata unavailable; retrying");
                if rx.cfg.jwks_file.is_some() && rx.jwks.is_empty() {
                    let _ = rx.jwks.refresh().await;
                }
                if !pause(backoff, &mut shutdown).await {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    };
    if rx.cfg.jwks_file.is_none() {
        match &meta.jwks_uri {
            Some(u) => rx.jwks.set_source(KeySource::Url(u.clone())),
            None => tracing::error!(
                "ssf: the transmitter publishes no jwks_uri and no jwks_file is configured"
            ),
        }
    }
    // Keys: retried until loaded (a SET with an unknown kid also refreshes).
    let mut backoff = Duration::from_millis(500);
    while rx.jwks.is_empty() && rx.jwks.has_source() {
        if rx.jwks.refresh().await.is_ok() {
            break;
        }
        if !pause(backoff, &mut shutdown).await {
            return;
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
    if let (Some(id), Some(cfg_ep)) = (&rx.cfg.stream_id, &meta.configuration_endpoint) {
        stream_config(&rx, cfg_ep, id).await;
    }
    if rx.cfg.verify
        && let (Some(id), Some(ep)) = (&rx.cfg.stream_id, &meta.verification_endpoint)
    {
        let state = format!("{:016x}", rand_u64());
        rx.remember_state(state.clone());
        match rx
            .http
            .post(
                ep,
                &json!({"stream_id": id, "state": state}),
                rx.cfg.timeout,
            )
            .await
        {
            Ok(_) => tracing::info!("ssf: verification requested"),
            Err(e) => tracing::warn!(error = %e, "ssf: verification request failed"),
        }
    }
    let (Some(id), Some(ep)) = (&rx.cfg.stream_id, &meta.status_endpoint) else {
        // Without a status endpoint the stream is taken as enabled.
        rx.set_status(StreamStatus::Enabled);
        let _ = shutdown.changed().await;
        return;
    };
    let Some(url) = with_stream_id(ep, id) else {
        return;
    };
    loop {
        match rx.http.get(&url, rx.cfg.timeout).await {
            Ok(v) => match v
                .get("status")
                .and_then(Value::as_str)
                .and_then(StreamStatus::parse)
            {
                Some(s) => rx.set_status(s),
                None => tracing::warn!("ssf: stream status answer has no valid `status`"),
            },
            Err(e) => tracing::warn!(error = %e, "ssf: stream status unavailable"),
        }
        if !pause(rx.cfg.status_interval, &mut shutdown).await {
            return;
        }
    }
}

/// Reads the stream's configuration: its poll endpoint and audience.
async fn stream_config(rx: &Receiver, ep: &Uri, id: &str) {
    let Some(url) = with_stream_id(ep, id) else {
        return;
    };
    match rx.http.get(&url, rx.cfg.timeout).await {
        Ok(v) => {
            let delivery = v.get("delivery");
            let method = delivery
                .and_then(|d| d.get("method"))
                .and_then(Value::as_str);
            if method == Some(POLL_METHOD)
                && let Some(u) = delivery
                    .and_then(|d| d.get("endpoint_url"))
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse::<Uri>().ok())
            {
                rx.learn_poll_endpoint(u);
            }
            let aud_ok = match v.get("aud") {
                Some(Value::String(a)) => *a == rx.cfg.audience,
                Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(&rx.cfg.audience)),
                _ => true,
            };
            if !aud_ok {
                tracing::error!(
                    "ssf: the stream's audience is not ssf.audience; its SETs will be refused"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "ssf: stream configuration unavailable"),
    }
}

/// A random number for verification `state` values (not a secret: it only
/// tells our requests from unsolicited verification events).
fn rand_u64() -> u64 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 8];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    u64::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_must_speak_for_the_issuer() {
        let v = json!({"issuer": "https://idp", "jwks_uri": "https://idp/jwks", "status_endpoint": "https://idp/status"});
        let m = parse_metadata(&v, "https://idp").unwrap();
        assert_eq!(m.jwks_uri.unwrap().to_string(), "https://idp/jwks");
        assert!(m.verification_endpoint.is_none());
        assert!(parse_metadata(&v, "https://other").is_err());
        assert!(
            parse_metadata(
                &json!({"issuer": "https://idp", "jwks_uri": "ftp://x"}),
                "https://idp"
            )
            .is_err()
        );
        assert_eq!(
            metadata_url(&"https://idp.example.com/".parse().unwrap())
                .unwrap()
                .to_string(),
            "https://idp.example.com/.well-known/ssf-configuration"
        );
        assert_eq!(
            metadata_url(&"https://idp.example.com/tenant/1".parse().unwrap())
                .unwrap()
                .to_string(),
            "https://idp.example.com/.well-known/ssf-configuration/tenant/1"
        );
    }
}
