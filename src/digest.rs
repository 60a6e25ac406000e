//! Short, non-reversible names for secrets.
//!
//! A [`Digest`] is the first 16 bytes of SHA-256 over a token (or a parent
//! token, for a family). It is what revocation events, logs and cache keys
//! carry instead of the token itself, so no secret ever leaves the request
//! that presented it.

use std::fmt;

/// First 128 bits of SHA-256 of a secret. Collision-resistant enough to key
/// revocations and the grant cache; never reversible to the secret.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Digest(pub [u8; 16]);

/// The maps keyed by digests (grant cache, revocations) hash 8 of the 16
/// bytes: SHA-256 output, so those bits are as spread as all of them, and
/// the maps' keyed SipHash still keeps a client who picks tokens from
/// aiming at one bucket. Equal digests hash equally; the maps compare whole
/// keys. (Half the hashing on every lookup, three or four per request.)
impl std::hash::Hash for Digest {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(first));
    }
}

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
    pub fn short(&self) -> Short {
        HexText::of(&self.0[..4])
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .flat_map(|b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]])
        .map(char::from)
        .collect()
}

/// `N` lower-case hex digits kept inline, without an allocation: a
/// digest's short form (one in every log line), a request id.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HexText<const N: usize>([u8; N]);

/// A digest's first 8 hex digits.
pub type Short = HexText<8>;

impl<const N: usize> HexText<N> {
    /// The hex of the first `N / 2` bytes of `bytes`.
    pub(crate) fn of(bytes: &[u8]) -> HexText<N> {
        let mut out = [0u8; N];
        for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
            pair[0] = HEX[usize::from(b >> 4)];
            pair[1] = HEX[usize::from(b & 0xf)];
        }
        HexText(out)
    }

    pub fn as_str(&self) -> &str {
        // Hex digits only, so this cannot fail.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl<const N: usize> fmt::Display for HexText<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
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
    fn inline_hex_is_the_same_text_as_hex() {
        let z = 0x0123_4567_89ab_cdef_u64;
        let id = HexText::<16>::of(&z.to_be_bytes());
        assert_eq!(id.as_str(), "0123456789abcdef");
        assert_eq!(id.as_str(), format!("{z:016x}"));
        assert_eq!(hex(&z.to_be_bytes()), id.as_str());
        assert_eq!(id.as_bytes(), id.as_str().as_bytes());
    }

    #[test]
    fn the_short_form_is_the_first_eight_hex_digits() {
        let d = Digest::of(b"some token");
        assert_eq!(d.short().as_str().len(), 8);
        assert_eq!(d.short().as_str(), &d.to_hex()[..8]);
    }

    #[test]
    fn debug_shows_only_a_prefix() {
        let d = Digest::of(b"secret");
        let shown = format!("{d:?}");
        assert!(shown.len() < 20, "{shown}");
    }
}
