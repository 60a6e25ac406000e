//! Gateway-minted tokens: sealed claims under a keyring.
//!
//! A minted token is `sg1.<kid>.<base64url(nonce | AES-256-GCM(claims))>`,
//! with `sg1.<kid>` as associated data so a token cannot be moved under
//! another key id. The claims carry the parent token, so the holder can read
//! nothing and any replica with the keyring can verify and forward without a
//! shared store. The `sg1.` prefix tells minted tokens from external ones
//! without any crypto. The keyring's primary key mints; every key verifies,
//! so keys rotate by adding a new primary and dropping the old key once the
//! tokens it minted have expired.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use crate::config::Problems;
use crate::digest::Digest;

/// Prefix of every minted token.
pub const PREFIX: &str = "sg1.";

/// Longest bearer token looked at; anything longer is refused unread.
pub const MAX_TOKEN_LEN: usize = crate::config::MAX_TOKEN_BYTES;

/// What a minted token says. Field names are short: they ride in every token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The parent token, forwarded upstream in place of this one.
    pub p: String,
    /// Scope names as requested (implication is applied when verifying).
    pub s: Vec<String>,
    /// The one item the token is restricted to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r: Option<Restriction>,
    /// The Box shared link the token was minted from (`box_shared_link`):
    /// sent upstream as `BoxApi: shared_link=<l>` with every request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l: Option<String>,
    /// Subject (user id), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The subject's login (Box: the `login` of `GET /users/me`), when
    /// known: identity providers name users by it (the `ssf` receiver).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lg: Option<String>,
    pub iat: u64,
    pub exp: u64,
    /// Token id (random, hex).
    pub jti: String,
    /// Family: digest of the parent token.
    pub fam: Digest,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restriction {
    /// "file" or "folder".
    pub k: String,
    pub id: String,
}

/// Why a token did not open. Callers answer every variant with the same 401;
/// the distinction is for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a gateway token")]
    NotMinted,
    #[error("malformed")]
    Malformed,
    #[error("unknown key id")]
    UnknownKey,
    #[error("forged or corrupted")]
    Forged,
}

/// Why no token was minted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("the token would be longer than any bearer check accepts")]
    TooLong,
    #[error("the OS random source failed")]
    NoRandom,
}

struct Key {
    id: String,
    key: LessSafeKey,
}

/// The keys minted tokens are sealed under.
pub struct Keyring {
    keys: Vec<Key>,
    primary: usize,
    rng: SystemRandom,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        write!(
            f,
            "Keyring {{ keys: {ids:?}, primary: {} }}",
            self.keys[self.primary].id
        )
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeyring {
    primary: String,
    keys: Vec<RawKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    id: String,
    /// base64 (standard or URL-safe) of 32 random bytes.
    secret: String,
}

impl Keyring {
    /// Reads a keyring file:
    /// ```toml
    /// primary = "k2"
    /// [[keys]]
    /// id = "k2"
    /// secret = "<base64 of 32 random bytes>"
    /// ```
    pub fn load(path: &Path) -> Result<Keyring, Problems> {
        let mut p = Problems::new(path);
        match std::fs::read_to_string(path) {
            Ok(text) => Keyring::from_toml(&text, p),
            Err(e) => {
                p.push("", format!("cannot read the keyring: {e}"));
                Err(p)
            }
        }
    }

    pub fn from_toml(text: &str, mut p: Problems) -> Result<Keyring, Problems> {
        let raw: RawKeyring = match toml::from_str(text) {
            Ok(r) => r,
            Err(e) => {
                p.push_toml(&e, text);
                return Err(p);
            }
        };
        let mut keys = Vec::new();
        for (i, k) in raw.keys.iter().enumerate() {
            if k.id.is_empty()
                || k.id.len() > 32
                || !k
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                p.push(
                    &format!("keys[{i}].id"),
                    "must be 1-32 letters, digits, `-` or `_`",
                );
                continue;
            }
            if keys.iter().any(|x: &Key| x.id == k.id) {
                p.push(
                    &format!("keys[{i}].id"),
                    format!("`{}` appears twice", k.id),
                );
                continue;
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(k.secret.trim())
                .or_else(|_| URL_SAFE_NO_PAD.decode(k.secret.trim()));
            match bytes.ok().filter(|b| b.len() == 32) {
                Some(b) => keys.push(Key::new(&k.id, &b)),
                // Never echo the secret, not even a wrong one.
                None => p.push(
                    &format!("keys[{i}].secret"),
                    "must be base64 of exactly 32 bytes",
                ),
            }
        }
        let primary = keys.iter().position(|k| k.id == raw.primary);
        if primary.is_none() && p.is_empty() {
            p.push(
                "primary",
                format!("`{}` is not the id of a key in this file", raw.primary),
            );
        }
        let ring = Keyring {
            keys,
            primary: primary.unwrap_or(0),
            rng: SystemRandom::new(),
        };
        p.into_result(ring)
    }

    /// A one-key ring with a random key (the demo; tests).
    pub fn generate(id: &str) -> Keyring {
        let rng = SystemRandom::new();
        let mut secret = [0u8; 32];
        rng.fill(&mut secret).expect("the OS random source failed");
        Keyring {
            keys: vec![Key::new(id, &secret)],
            primary: 0,
            rng,
        }
    }

    /// The keyring file text for a fresh random key (for `scopegate keygen`).
    pub fn generate_toml(id: &str) -> String {
        let mut secret = [0u8; 32];
        SystemRandom::new()
            .fill(&mut secret)
            .expect("the OS random source failed");
        format!(
            "primary = \"{id}\"\n\n[[keys]]\nid = \"{id}\"\nsecret = \"{}\"\n",
            base64::engine::general_purpose::STANDARD.encode(secret)
        )
    }

    pub fn primary_id(&self) -> &str {
        &self.keys[self.primary].id
    }

    /// Random hex for token ids and request ids.
    pub fn random_hex(&self, bytes: usize) -> String {
        let mut buf = [0u8; 32];
        let n = bytes.min(32);
        let _ = self.rng.fill(&mut buf[..n]);
        crate::digest::hex(&buf[..n])
    }

    /// Seals claims under the primary key. Fails only if the OS random
    /// source does (the nonce must never repeat, so there is no fallback).
    pub fn seal(&self, claims: &Claims) -> Result<String, SealError> {
        let key = &self.keys[self.primary];
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| SealError::NoRandom)?;
        let mut buf = serde_json::to_vec(claims).expect("claims always serialise");
        let aad = format!("{PREFIX}{}", key.id);
        key.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut buf,
            )
            .expect("AES-GCM sealing of a small buffer cannot fail");
        let mut body = Vec::with_capacity(NONCE_LEN + buf.len());
        body.extend_from_slice(&nonce);
        body.extend_from_slice(&buf);
        Ok(format!("{aad}.{}", URL_SAFE_NO_PAD.encode(body)))
    }

    /// Seals claims, or `None` when the token would be longer than
    /// [`MAX_TOKEN_LEN`] and so refused by [`Keyring::open`] (and by every
    /// bearer check): the parent rides in the claims, JSON-escaped and then
    /// base64-encoded, so a parent of some 6 KB already seals too long.
    pub fn seal_checked(&self, claims: &Claims) -> Result<String, SealError> {
        let token = self.seal(claims)?;
        if token.len() > MAX_TOKEN_LEN {
            return Err(SealError::TooLong);
        }
        Ok(token)
    }

    /// Opens a token. Any byte string gets an answer, never a panic.
    pub fn open(&self, token: &str) -> Result<Claims, TokenError> {
        let rest = token.strip_prefix(PREFIX).ok_or(TokenError::NotMinted)?;
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let (kid, sealed) = rest.split_once('.').ok_or(TokenError::Malformed)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == kid)
            .ok_or(TokenError::UnknownKey)?;
        let mut body = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| TokenError::Malformed)?;
        if body.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(TokenError::Malformed);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&body[..NONCE_LEN]);
        let aad_len = PREFIX.len() + kid.len();
        let plain = key
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&token.as_bytes()[..aad_len]),
                &mut body[NONCE_LEN..],
            )
            .map_err(|_| TokenError::Forged)?;
        serde_json::from_slice(plain).map_err(|_| TokenError::Malformed)
    }
}

impl Key {
    fn new(id: &str, secret: &[u8]) -> Key {
        let unbound =
            UnboundKey::new(&AES_256_GCM, secret).expect("a 32-byte key always fits AES-256");
        Key {
            id: id.to_string(),
            key: LessSafeKey::new(unbound),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            p: "parent-secret".into(),
            s: vec!["item_read".into()],
            r: Some(Restriction {
                k: "file".into(),
                id: "123".into(),
            }),
            l: None,
            sub: Some("1001".into()),
            lg: None,
            iat: 100,
            exp: 200,
            jti: "abc".into(),
            fam: Digest::of(b"parent-secret"),
        }
    }

    fn ring(text: &str) -> Keyring {
        Keyring::from_toml(text, Problems::new(Path::new("k.toml"))).unwrap()
    }

    #[test]
    fn seal_then_open_round_trips_and_hides_the_parent() {
        let k = Keyring::generate("k1");
        let t = k.seal(&claims()).unwrap();
        assert!(t.starts_with("sg1.k1."));
        assert!(!t.contains("parent-secret"));
        assert_eq!(k.open(&t).unwrap(), claims());
    }

    #[test]
    fn another_keyring_or_a_flipped_byte_is_refused() {
        let a = Keyring::generate("k1");
        let b = Keyring::generate("k1");
        let t = a.seal(&claims()).unwrap();
        assert_eq!(b.open(&t), Err(TokenError::Forged));
        let mut bytes = t.into_bytes();
        let last = bytes.len() - 3;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        assert!(a.open(std::str::from_utf8(&bytes).unwrap()).is_err());
    }

    #[test]
    fn rotation_newest_mints_older_verifies() {
        let s1 = base64::engine::general_purpose::STANDARD.encode([1u8; 32]);
        let s2 = base64::engine::general_purpose::STANDARD.encode([2u8; 32]);
        let old = ring(&format!(
            "primary = \"a\"\n[[keys]]\nid = \"a\"\nsecret = \"{s1}\"\n"
        ));
        let new = ring(&format!(
            "primary = \"b\"\n[[keys]]\nid = \"a\"\nsecret = \"{s1}\"\n[[keys]]\nid = \"b\"\nsecret = \"{s2}\"\n"
        ));
        let t_old = old.seal(&claims()).unwrap();
        assert_eq!(new.open(&t_old).unwrap(), claims());
        let t_new = new.seal(&claims()).unwrap();
        assert!(t_new.starts_with("sg1.b."));
        assert_eq!(old.open(&t_new), Err(TokenError::UnknownKey));
    }

    #[test]
    fn key_id_is_bound_to_the_ciphertext() {
        let s = base64::engine::general_purpose::STANDARD.encode([1u8; 32]);
        let k = ring(&format!(
            "primary = \"a\"\n[[keys]]\nid = \"a\"\nsecret = \"{s}\"\n[[keys]]\nid = \"b\"\nsecret = \"{s}\"\n"
        ));
        let t = k.seal(&claims()).unwrap();
        let moved = t.replacen("sg1.a.", "sg1.b.", 1);
        assert_eq!(k.open(&moved), Err(TokenError::Forged));
    }

    /// Found by fuzz/ (token): a long parent sealed into a token that
    /// `open` refuses as too long, so the exchange handed out a token that
    /// could never be used.
    #[test]
    fn tokens_too_long_to_open_are_not_sealed() {
        let k = Keyring::generate("k1");
        let mut c = claims();
        c.p = "\"".repeat(4000); // Escaped in the JSON: 8000 bytes.
        assert_eq!(k.open(&k.seal(&c).unwrap()), Err(TokenError::Malformed));
        assert_eq!(k.seal_checked(&c), Err(SealError::TooLong));
        c.p = "a".repeat(MAX_TOKEN_LEN / 2);
        let t = k.seal_checked(&c).expect("a 4 KB parent fits");
        assert_eq!(k.open(&t).unwrap(), c);
    }

    #[test]
    fn garbage_never_panics() {
        let k = Keyring::generate("k1");
        for t in [
            "",
            "sg1.",
            "sg1.k1",
            "sg1.k1.",
            "sg1.k1.!!!!",
            "sg1.k1.AAAA",
            "sg1.zz.AAAA",
            "bearer",
        ] {
            assert!(k.open(t).is_err(), "{t}");
        }
    }

    #[test]
    fn bad_keyring_files_name_the_key_and_hide_the_secret() {
        let err = Keyring::from_toml(
            "primary = \"x\"\n[[keys]]\nid = \"a\"\nsecret = \"c2hvcnQ=\"\n",
            Problems::new(Path::new("k.toml")),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("k.toml: keys[0].secret: must be base64 of exactly 32 bytes"),
            "{err}"
        );
        assert!(!err.contains("c2hvcnQ"), "{err}");
    }
}
