//! The transmitter's signing keys: a JWKS fetched from its `jwks_uri` (or
//! read from a file), cached by key id.
//!
//! A SET naming a key id the cache does not hold triggers one refresh; such
//! refreshes are rate-limited (`jwks_min_refresh`), so a stream of SETs
//! with made-up key ids costs the transmitter one fetch per interval, not
//! one per SET. Keys are only ever used with the algorithm their type and
//! curve allow (and their own `alg`, when the JWK names one).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use http::Uri;
use jsonwebtoken::Algorithm;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use serde_json::Value;

use super::http::Http;
use super::metrics::SsfMetrics;

/// Where the keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    Url(Uri),
    File(PathBuf),
}

/// One usable verification key.
pub struct Key {
    pub decoding: DecodingKey,
    /// The algorithms this key may verify.
    allowed: Vec<Algorithm>,
}

impl Key {
    pub fn allows(&self, alg: Algorithm) -> bool {
        self.allowed.contains(&alg)
    }
}

/// Most keys kept from one JWKS.
const MAX_KEYS: usize = 64;

pub struct Jwks {
    keys: RwLock<Arc<HashMap<String, Arc<Key>>>>,
    source: RwLock<Option<KeySource>>,
    /// When the last refresh caused by an unknown key id ran.
    last_on_demand: tokio::sync::Mutex<Option<Instant>>,
    min_refresh: Duration,
    timeout: Duration,
    http: Http,
    metrics: SsfMetrics,
}

/// Why a key could not be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    /// No key with that id, even after a refresh (or the refresh was rate-limited).
    Unknown,
    /// The key exists but may not be used with the SET's algorithm.
    WrongAlgorithm,
}

impl Jwks {
    pub fn new(http: Http, min_refresh: Duration, timeout: Duration, metrics: SsfMetrics) -> Jwks {
        Jwks {
            keys: RwLock::new(Arc::new(HashMap::new())),
            source: RwLock::new(None),
            last_on_demand: tokio::sync::Mutex::new(None),
            min_refresh,
            timeout,
            http,
            metrics,
        }
    }

    pub fn set_source(&self, s: KeySource) {
        *self.source.write().unwrap_or_else(|e| e.into_inner()) = Some(s);
    }

    pub fn has_source(&self) -> bool {
        self.source
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    fn lookup(&self, kid: &str) -> Option<Arc<Key>> {
        self.keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(kid)
            .cloned()
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The key `kid` for a SET signed with `alg`, refreshing once (rate
    /// limited) when the id is unknown.
    pub async fn key(&self, kid: &str, alg: Algorithm) -> Result<Arc<Key>, KeyError> {
        let key = match self.lookup(kid) {
            Some(k) => k,
            None => {
                let mut last = self.last_on_demand.lock().await;
                // Another SET may have refreshed while this one waited.
                match self.lookup(kid) {
                    Some(k) => k,
                    None => {
                        if last.is_some_and(|t| t.elapsed() < self.min_refresh) {
                            self.metrics
                                .jwks_refreshes
                                .with_label_values(&["rate_limited"])
                                .inc();
                            return Err(KeyError::Unknown);
                        }
                        *last = Some(Instant::now());
                        let _ = self.refresh().await;
                        self.lookup(kid).ok_or(KeyError::Unknown)?
                    }
                }
            }
        };
        if key.allows(alg) {
            Ok(key)
        } else {
            Err(KeyError::WrongAlgorithm)
        }
    }

    /// Fetches the JWKS now and replaces the cache; counted as `ok` or
    /// `error`. On error the keys held are kept.
    pub async fn refresh(&self) -> Result<usize, String> {
        let source = self
            .source
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let result = match source {
            None => Err("the transmitter's metadata has not been read yet".to_string()),
            Some(KeySource::Url(u)) => self
                .http
                .get(&u, self.timeout)
                .await
                .map_err(|e| e.to_string())
                .and_then(|v| parse_jwks(&v)),
            Some(KeySource::File(p)) => tokio::fs::read(&p)
                .await
                .map_err(|e| format!("{}: {e}", p.display()))
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
                .and_then(|v| parse_jwks(&v)),
        };
        match result {
            Ok(keys) => {
                let n = keys.len();
                *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
                self.metrics.jwks_refreshes.with_label_values(&["ok"]).inc();
                tracing::info!(keys = n, "ssf: transmitter keys loaded");
                Ok(n)
            }
            Err(e) => {
                self.metrics
                    .jwks_refreshes
                    .with_label_values(&["error"])
                    .inc();
                tracing::warn!(error = %e, "ssf: transmitter keys could not be loaded");
                Err(e)
            }
        }
    }
}

/// The usable keys of a JWKS document, by key id. Keys without an id, for
/// encryption, symmetric, or of a type this build cannot use are skipped;
/// a document with no usable key is an error.
pub fn parse_jwks(v: &Value) -> Result<HashMap<String, Arc<Key>>, String> {
    let Some(list) = v.get("keys").and_then(Value::as_array) else {
        return Err("the JWKS has no `keys` array".into());
    };
    let mut out = HashMap::new();
    for k in list.iter().take(MAX_KEYS) {
        let Ok(jwk) = serde_json::from_value::<Jwk>(k.clone()) else {
            continue;
        };
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
            continue;
        }
        let mut allowed = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => vec![
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ],
            AlgorithmParameters::EllipticCurve(p) => match p.curve {
                EllipticCurve::P256 => vec![Algorithm::ES256],
                EllipticCurve::P384 => vec![Algorithm::ES384],
                _ => continue,
            },
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                vec![Algorithm::EdDSA]
            }
            // Symmetric keys never verify a SET: anyone holding them could forge one.
            _ => continue,
        };
        if let Some(a) = jwk.common.key_algorithm {
            let named = a.to_string().parse::<Algorithm>().ok();
            allowed.retain(|x| Some(*x) == named);
        }
        if allowed.is_empty() {
            continue;
        }
        let Ok(decoding) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        out.insert(kid, Arc::new(Key { decoding, allowed }));
    }
    if out.is_empty() {
        return Err("the JWKS holds no usable signing key".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_usable_signing_keys_are_kept() {
        let ec = json!({"kty": "EC", "crv": "P-256", "kid": "ec1",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});
        let doc = json!({"keys": [
            ec.clone(),
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "EC", "crv": "P-256", "kid": "enc", "use": "enc", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "EC", "crv": "P-256", "kid": "rsalg", "alg": "RS256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "weird", "kid": "w"},
            "not an object"
        ]});
        let keys = parse_jwks(&doc).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["ec1"]);
        assert!(keys["ec1"].allows(Algorithm::ES256));
        assert!(!keys["ec1"].allows(Algorithm::RS256));
        assert!(
            parse_jwks(&json!({"keys": [{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}]})).is_err()
        );
        assert!(parse_jwks(&json!({"nokeys": []})).is_err());
    }
}
