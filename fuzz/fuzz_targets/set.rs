//! Security Event Tokens as the SSF receiver reads them (first byte mod 3):
//! 0: `ssf::verify::head` on the compact JWS (when UTF-8): the JOSE header,
//!    alg allow-list, `none`/unsigned/encrypted refusals;
//! 1: `ssf::set::SetClaims::from_slice` on the payload, then
//!    `ssf::events::map` of every event it holds;
//! 2: the transmitter's JSON documents: a poll answer
//!    (`poll::parse_answer`), metadata (`transmitter::parse_metadata`) and a
//!    JWKS (`jwks::parse_jwks`).
#![no_main]

use jsonwebtoken::Algorithm;
use libfuzzer_sys::fuzz_target;
use scopegate::ssf::config::{MapTo, Subjects};
use scopegate::ssf::events::{Action, LOGIN_PREFIX, map};
use scopegate::ssf::set::{MAX_EVENTS, MAX_JTI_LEN, SetClaims};
use scopegate::ssf::verify::{Refusal, head};

const NOW_MS: u64 = 1_800_000_000_000;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            let Ok(s) = std::str::from_utf8(rest) else { return };
            let allowed = [Algorithm::RS256, Algorithm::ES256];
            match head(s, &allowed) {
                Ok(h) => {
                    assert!(allowed.contains(&h.alg));
                    assert!(!h.kid.is_empty() && h.kid.len() <= 256);
                    assert_eq!(s.split('.').count(), 3);
                    assert!(!s.rsplit('.').next().unwrap_or("").is_empty(), "unsigned accepted");
                }
                Err(r) => {
                    // Whatever the bytes, a refusal names an RFC 8935 code.
                    assert!(!r.refusal.err().is_empty());
                    if s.split('.').count() == 2 {
                        assert!(matches!(r.refusal, Refusal::Unsigned | Refusal::Malformed));
                    }
                }
            }
        }
        1 => {
            let Ok(c) = SetClaims::from_slice(rest) else { return };
            assert!(!c.jti.is_empty() && c.jti.len() <= MAX_JTI_LEN);
            assert!(!c.jti.chars().any(char::is_control));
            assert!(!c.aud.is_empty());
            assert!(!c.events.is_empty() && c.events.len() <= MAX_EVENTS);
            let cfg = Subjects {
                email: MapTo::Login,
                account: MapTo::Login,
                opaque: MapTo::Subject,
                iss_sub: MapTo::Subject,
                iss_sub_issuer: "https://idp.example.com".into(),
            };
            for (uri, payload) in &c.events {
                let Ok(a) = map(uri, payload, c.sub_id.as_ref(), c.iat, NOW_MS, &cfg) else {
                    continue;
                };
                if let Action::Revoke { subjects, at_ms } = a {
                    assert!(at_ms <= NOW_MS, "revocation time in the future");
                    for s in subjects {
                        assert!(
                            scopegate::revocation::event::validate_subject(&s).is_ok(),
                            "{s:?}"
                        );
                        if let Some(login) = s.strip_prefix(LOGIN_PREFIX) {
                            assert_eq!(login, login.to_lowercase());
                        }
                    }
                }
            }
        }
        _ => {
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(rest) else {
                return;
            };
            if let Ok(a) = scopegate::ssf::poll::parse_answer(&v) {
                assert!(a.sets.len() <= v["sets"].as_object().map_or(0, |m| m.len()));
            }
            let _ = scopegate::ssf::transmitter::parse_metadata(&v, "https://idp.example.com");
            if let Ok(keys) = scopegate::ssf::jwks::parse_jwks(&v) {
                assert!(!keys.is_empty() && keys.len() <= 64);
            }
        }
    }
});
