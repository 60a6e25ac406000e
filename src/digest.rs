//! Short, non-reversible names for secrets.
//!
//! A [`Digest`] is the first 16 bytes of SHA-256 over a token (or a parent
//! token, for a family). It is what revocation events, logs and cache keys
//! carry instead of the token itself, so no secret ever leaves the request
//! that presented it.

use std::fmt;

/// First 128 bits of SHA-256 of a secret. Collision-resistant enough to key
/// revocations and the grant cache; never reversible to the secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 16]);

impl Digest {
    /// Digest of a token (or any secret) as presented on the wire.
    pub fn of(secret: &[u8]) -> Digest {
        let full = ring::digest::digest(&ring::digest::SHA256, secret);
        let mut out = [0u8; 16];
        out.copy_from_slice(&full.as_ref()[..16]);
        Digest(out)
    }

    /// Lower-case hex, 32 characters: the form used in events and the admin API.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Parses exactly 32 hex digits (either case).
    pub fn from_hex(s: &str) -> Option<Digest> {
        let bytes = s.as_bytes();
        if bytes.len() != 32 {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Some(Digest(out))
    }

    /// The first 8 hex digits: enough to correlate log lines, far too little
    /// to guess or replay anything.
    pub fn short(&self) -> String {
        hex(&self.0[..4])
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from_digit((b >> 4) as u32, 16).unwrap_or('0'));
        s.push(char::from_digit((b & 0xf) as u32, 16).unwrap_or('0'));
    }
    s
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.short())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Digest::from_hex(&s).ok_or_else(|| serde::de::Error::custom("expected 32 hex digits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_bad_input() {
        let d = Digest::of(b"some token");
        assert_eq!(Digest::from_hex(&d.to_hex()), Some(d));
        assert_eq!(Digest::from_hex(&d.to_hex().to_uppercase()), Some(d));
        assert_eq!(Digest::from_hex("abc"), None);
        assert_eq!(Digest::from_hex(&"g".repeat(32)), None);
        assert_ne!(Digest::of(b"a"), Digest::of(b"b"));
    }

    #[test]
    fn the_short_form_is_the_first_eight_hex_digits() {
        let d = Digest::of(b"some token");
        assert_eq!(d.short().len(), 8);
        assert_eq!(d.short(), d.to_hex()[..8]);
    }

    #[test]
    fn debug_shows_only_a_prefix() {
        let d = Digest::of(b"secret");
        let shown = format!("{d:?}");
        assert!(shown.len() < 20, "{shown}");
    }
}
