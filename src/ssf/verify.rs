//! Verifying one Security Event Token: JWS compact form, an allowed
//! algorithm, a known key, a good signature, then `iss`, `aud`, `iat` (and
//! `exp` when present). Every refusal has one [`Refusal`], which gives both
//! the RFC 8935 error code the transmitter sees and the metrics reason.
//!
//! The header is read here first, before any key is looked up, so that
//! `alg: none`, a missing signature, an encrypted SET or an algorithm
//! outside the allow-list are refused by name; the signature itself is
//! checked by `jsonwebtoken` (ring), never by code of ours.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::Value;

use super::config::SsfConfig;
use super::jwks::{Jwks, KeyError};
use super::set::SetClaims;

/// Largest SET accepted, in bytes.
pub const MAX_SET_LEN: usize = 64 * 1024;

/// Why a SET (or its delivery) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a JWS compact SET, or claims that are not a SET.
    Malformed,
    /// `alg: none`, or no signature.
    Unsigned,
    /// An algorithm outside the allow-list, or one the key may not be used with.
    Algorithm,
    /// No key with the SET's `kid` (after one rate-limited refresh).
    UnknownKey,
    /// The signature does not verify.
    Signature,
    Issuer,
    Audience,
    /// `iat` further from now than the configured skew.
    Iat,
    /// `exp` in the past.
    Expired,
    /// A `jti` already received.
    Replay,
    /// Push without credentials.
    Authentication,
    /// Push with credentials that are not the configured ones.
    Access,
}

impl Refusal {
    /// The RFC 8935 error code (`err`).
    pub fn err(self) -> &'static str {
        match self {
            Refusal::Malformed
            | Refusal::Unsigned
            | Refusal::Iat
            | Refusal::Expired
            | Refusal::Replay => "invalid_request",
            Refusal::Algorithm | Refusal::UnknownKey | Refusal::Signature => "invalid_key",
            Refusal::Issuer => "invalid_issuer",
            Refusal::Audience => "invalid_audience",
            Refusal::Authentication => "authentication_failed",
            Refusal::Access => "access_denied",
        }
    }

    /// The metrics label (`reason`).
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::Unsigned => "unsigned",
            Refusal::Algorithm => "algorithm",
            Refusal::UnknownKey => "unknown_key",
            Refusal::Signature => "signature",
            Refusal::Issuer => "issuer",
            Refusal::Audience => "audience",
            Refusal::Iat => "iat",
            Refusal::Expired => "expired",
            Refusal::Replay => "replay",
            Refusal::Authentication => "authentication",
            Refusal::Access => "access",
        }
    }
}

/// A refusal with a description for the transmitter (never holds secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub refusal: Refusal,
    pub description: String,
}

fn refuse(refusal: Refusal, description: impl Into<String>) -> Refused {
    Refused {
        refusal,
        description: description.into(),
    }
}

/// The parts of the JOSE header that matter before a key is chosen.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    pub alg: Algorithm,
    pub kid: String,
}

/// Reads the JOSE header of a compact JWS, refusing what is not a signed SET
/// under an allowed algorithm. Pure; used by the fuzz target.
pub fn head(token: &str, allowed: &[Algorithm]) -> Result<Head, Refused> {
    let parts: Vec<&str> = token.split('.').collect();
    match parts.len() {
        3 => {}
        5 => {
            return Err(refuse(
                Refusal::Malformed,
                "encrypted SETs are not supported",
            ));
        }
        2 => return Err(refuse(Refusal::Unsigned, "the SET has no signature")),
        _ => return Err(refuse(Refusal::Malformed, "not a JWS in compact form")),
    }
    let header = URL_SAFE_NO_PAD
        .decode(parts[0])
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    let Some(Value::Object(h)) = header else {
        return Err(refuse(
            Refusal::Malformed,
            "the JOSE header is not a JSON object",
        ));
    };
    let alg = match h.get("alg") {
        Some(Value::String(a)) => a.as_str(),
        _ => return Err(refuse(Refusal::Malformed, "the JOSE header has no `alg`")),
    };
    if alg.eq_ignore_ascii_case("none") {
        return Err(refuse(Refusal::Unsigned, "`alg: none` is never accepted"));
    }
    if parts[2].is_empty() {
        return Err(refuse(Refusal::Unsigned, "the SET has no signature"));
    }
    let alg = match alg.parse::<Algorithm>() {
        Ok(a) if allowed.contains(&a) => a,
        _ => {
            return Err(refuse(
                Refusal::Algorithm,
                "the SET's `alg` is not on the receiver's allow-list",
            ));
        }
    };
    if let Some(t) = h.get("typ") {
        let ok = t.as_str().is_some_and(|t| {
            let t = t.to_ascii_lowercase();
            t == "secevent+jwt" || t == "application/secevent+jwt"
        });
        if !ok {
            return Err(refuse(
                Refusal::Malformed,
                "`typ` must be secevent+jwt: this is not a SET",
            ));
        }
    }
    if h.contains_key("crit") {
        return Err(refuse(
            Refusal::Malformed,
            "critical header parameters are not supported",
        ));
    }
    let kid = match h.get("kid") {
        Some(Value::String(k)) if !k.is_empty() && k.len() <= 256 => k.clone(),
        _ => {
            return Err(refuse(
                Refusal::UnknownKey,
                "the JOSE header names no `kid`",
            ));
        }
    };
    Ok(Head { alg, kid })
}

/// Checks the claims against the receiver's configuration at `now` (unix s).
pub fn check_claims(c: &SetClaims, cfg: &SsfConfig, now: u64) -> Result<(), Refused> {
    if c.iss != cfg.issuer {
        return Err(refuse(
            Refusal::Issuer,
            "`iss` is not the configured transmitter",
        ));
    }
    if !c.aud.contains(&cfg.audience) {
        return Err(refuse(
            Refusal::Audience,
            "`aud` does not name this receiver",
        ));
    }
    let skew = cfg.iat_skew.as_secs();
    if c.iat.abs_diff(now) > skew {
        return Err(refuse(
            Refusal::Iat,
            format!("`iat` is more than {skew} s away from the receiver's clock"),
        ));
    }
    if c.exp.is_some_and(|exp| exp < now) {
        return Err(refuse(Refusal::Expired, "the SET has expired (`exp`)"));
    }
    Ok(())
}

pub struct Verifier {
    cfg: Arc<SsfConfig>,
    jwks: Arc<Jwks>,
}

impl Verifier {
    pub fn new(cfg: Arc<SsfConfig>, jwks: Arc<Jwks>) -> Verifier {
        Verifier { cfg, jwks }
    }

    /// Verifies a SET as received and returns its claims.
    pub async fn verify(&self, bytes: &[u8], now: u64) -> Result<SetClaims, Refused> {
        if bytes.len() > MAX_SET_LEN {
            return Err(refuse(Refusal::Malformed, "the SET is too large"));
        }
        let token = std::str::from_utf8(bytes)
            .map_err(|_| refuse(Refusal::Malformed, "the SET is not text"))?
            .trim();
        let head = head(token, &self.cfg.algorithms)?;
        let key = self
            .jwks
            .key(&head.kid, head.alg)
            .await
            .map_err(|e| match e {
                KeyError::Unknown => refuse(
                    Refusal::UnknownKey,
                    "no transmitter key has the SET's `kid`",
                ),
                KeyError::WrongAlgorithm => refuse(
                    Refusal::Algorithm,
                    "the key named by `kid` may not be used with the SET's `alg`",
                ),
            })?;
        let mut v = Validation::new(head.alg);
        v.algorithms = vec![head.alg];
        v.required_spec_claims.clear();
        v.validate_exp = false;
        v.validate_nbf = false;
        v.validate_aud = false;
        let data = jsonwebtoken::decode::<Value>(token, &key.decoding, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::InvalidSignature => {
                    refuse(Refusal::Signature, "the signature does not verify")
                }
                ErrorKind::InvalidAlgorithm => {
                    refuse(Refusal::Algorithm, "the key does not fit the SET's `alg`")
                }
                _ => refuse(Refusal::Malformed, "the SET's payload is not a JSON object"),
            }
        })?;
        let claims = SetClaims::from_value(data.claims)
            .map_err(|e| refuse(Refusal::Malformed, e.to_string()))?;
        check_claims(&claims, &self.cfg, now)?;
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    const ALLOWED: &[Algorithm] = &[Algorithm::RS256, Algorithm::ES256];

    #[test]
    fn the_header_is_read_strictly() {
        let t = |h: &str, sig: &str| format!("{}.{}.{sig}", b64(h), b64("{}"));
        let ok = head(
            &t(r#"{"alg":"ES256","kid":"k","typ":"secevent+jwt"}"#, "c2ln"),
            ALLOWED,
        );
        assert_eq!(
            ok,
            Ok(Head {
                alg: Algorithm::ES256,
                kid: "k".into()
            })
        );
        let cases = [
            (t(r#"{"alg":"none","kid":"k"}"#, ""), Refusal::Unsigned),
            (t(r#"{"alg":"NONE","kid":"k"}"#, "c2ln"), Refusal::Unsigned),
            (t(r#"{"alg":"ES256","kid":"k"}"#, ""), Refusal::Unsigned),
            (
                format!("{}.{}", b64(r#"{"alg":"ES256"}"#), b64("{}")),
                Refusal::Unsigned,
            ),
            (
                t(r#"{"alg":"HS256","kid":"k"}"#, "c2ln"),
                Refusal::Algorithm,
            ),
            (
                t(r#"{"alg":"RS384","kid":"k"}"#, "c2ln"),
                Refusal::Algorithm,
            ),
            (t(r#"{"alg":"ES256"}"#, "c2ln"), Refusal::UnknownKey),
            (
                t(r#"{"alg":"ES256","kid":"k","typ":"JWT"}"#, "c2ln"),
                Refusal::Malformed,
            ),
            (
                t(r#"{"alg":"ES256","kid":"k","crit":["x"]}"#, "c2ln"),
                Refusal::Malformed,
            ),
            (t(r#"[1]"#, "c2ln"), Refusal::Malformed),
            ("a.b.c.d.e".into(), Refusal::Malformed),
            ("abc".into(), Refusal::Malformed),
            ("!!!.e30.c2ln".into(), Refusal::Malformed),
        ];
        for (token, want) in cases {
            assert_eq!(
                head(&token, ALLOWED).map_err(|r| r.refusal),
                Err(want),
                "{token}"
            );
        }
    }

    #[test]
    fn every_refusal_has_an_rfc_error_code() {
        let codes = [
            "invalid_request",
            "invalid_key",
            "invalid_issuer",
            "invalid_audience",
            "authentication_failed",
            "access_denied",
        ];
        for r in [
            Refusal::Malformed,
            Refusal::Unsigned,
            Refusal::Algorithm,
            Refusal::UnknownKey,
            Refusal::Signature,
            Refusal::Issuer,
            Refusal::Audience,
            Refusal::Iat,
            Refusal::Expired,
            Refusal::Replay,
            Refusal::Authentication,
            Refusal::Access,
        ] {
            assert!(codes.contains(&r.err()));
            assert!(super::super::metrics::FAILURES.contains(&r.reason()));
        }
    }
}
