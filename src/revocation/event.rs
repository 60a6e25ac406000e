//! Revocation events and their JSON wire format.
//!
//! One event format is shared by the embedded log, the Redis stream and the
//! other systems (authorization server, incident tooling) that may append
//! revocations. Decoding is therefore strict about meaning and lenient only
//! where leniency cannot change what gets revoked:
//!
//! - an unknown `v`, an unknown `kind` or `source`, a missing or wrongly typed
//!   field, a bad digest or a bad subject is an error;
//! - a field that belongs to *another* kind (a `token` event that also carries
//!   `family`) is an error, because it makes the target ambiguous;
//! - a duplicated field is an error (serde rejects it), for the same reason;
//! - a field nobody knows (`"reason": ".."`) is ignored, so a producer that
//!   adds metadata does not get its revocations silently dropped.
//!
//! Events carry digests of tokens, never tokens.

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// The only wire version this build understands.
pub const VERSION: u64 = 1;

/// Longest subject accepted, in bytes. Box user ids are short; the cap keeps
/// a hostile producer from growing the subject map with huge keys.
pub const MAX_SUBJECT_LEN: usize = 256;

/// What an event revokes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// One token, by the digest of the token string.
    Token(Digest),
    /// Every token minted from one parent, by the digest of the parent token.
    /// Also matches a token whose own digest equals it (the parent itself).
    Family(Digest),
    /// Every token of one user issued at or before the event's revocation
    /// time (`revoked_at_ms / 1000`, in seconds).
    Subject(String),
    /// Every token issued strictly before `issued_before` (unix seconds),
    /// whoever holds it: the "revoke everything older than now" lever.
    Cutoff {
        /// Unix seconds; tokens with `iat < issued_before` are revoked.
        issued_before: u64,
    },
}

/// Who asked for the revocation; kept for audit and metrics labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `POST /oauth2/revoke` on the gateway.
    Api,
    /// The admin listener.
    Admin,
    /// Another system appending to the shared stream.
    External,
    /// An identity provider's Security Event Token (the `ssf` receiver).
    Ssf,
}

impl Source {
    /// The wire name: `"api"`, `"admin"`, `"external"` or `"ssf"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Api => "api",
            Source::Admin => "admin",
            Source::External => "external",
            Source::Ssf => "ssf",
        }
    }

    fn parse(s: &str) -> Option<Source> {
        match s {
            "api" => Some(Source::Api),
            "admin" => Some(Source::Admin),
            "external" => Some(Source::External),
            "ssf" => Some(Source::Ssf),
            _ => None,
        }
    }
}

/// One revocation, as stored in the log and carried on the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// What is revoked.
    pub target: Target,
    /// When the revocation was made, in unix milliseconds. For subject events
    /// it also defines the coverage (tokens issued at or before this second).
    pub revoked_at_ms: u64,
    /// Unix seconds after which no token this event can cover is still valid,
    /// so the entry may be dropped from memory and from the compacted log.
    pub keep_until: u64,
    /// Who asked for it.
    pub source: Source,
}

/// Why bytes could not be decoded as an [`Event`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// Not JSON, not an object, a wrongly typed field or a duplicated field.
    #[error("malformed event: {0}")]
    Malformed(String),
    /// A `v` this build does not understand.
    #[error("unsupported event version {0}")]
    Version(u64),
    /// A required field is absent (or null).
    #[error("event is missing field `{0}`")]
    Missing(&'static str),
    /// A `kind` other than token, family, subject, cutoff.
    #[error("unknown event kind {0:?}")]
    UnknownKind(String),
    /// A `source` other than api, admin, external.
    #[error("unknown event source {0:?}")]
    UnknownSource(String),
    /// A target field of another kind is present, so the target is ambiguous.
    #[error("field `{field}` is not allowed in a {kind} event")]
    UnexpectedField {
        /// The offending field.
        field: &'static str,
        /// The event's kind.
        kind: &'static str,
    },
    /// A digest field that is not exactly 32 hex digits.
    #[error("field `{0}` is not 32 hex digits")]
    BadDigest(&'static str),
    /// A subject that is empty, too long or holds control characters.
    #[error("bad subject: {0}")]
    BadSubject(&'static str),
}

/// The wire shape, every field optional so that each problem gets its own
/// precise error instead of serde's first complaint.
#[derive(Deserialize)]
struct RawEvent {
    v: Option<u64>,
    kind: Option<String>,
    token_hash: Option<String>,
    family: Option<String>,
    subject: Option<String>,
    issued_before: Option<u64>,
    revoked_at_ms: Option<u64>,
    keep_until: Option<u64>,
    source: Option<String>,
}

/// What `to_json` writes; borrowed so encoding allocates only the output.
#[derive(Serialize)]
struct WireEvent<'a> {
    v: u64,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_hash: Option<Digest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    family: Option<Digest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    issued_before: Option<u64>,
    revoked_at_ms: u64,
    keep_until: u64,
    source: &'static str,
}

/// The target fields, in the order their kinds are listed, for the
/// "belongs to another kind" check.
const TARGET_FIELDS: [&str; 4] = ["token_hash", "family", "subject", "issued_before"];

/// Checks a subject the same way whether it came off the wire or from code.
pub fn validate_subject(s: &str) -> Result<(), EventError> {
    if s.is_empty() {
        return Err(EventError::BadSubject("empty"));
    }
    if s.len() > MAX_SUBJECT_LEN {
        return Err(EventError::BadSubject("longer than 256 bytes"));
    }
    if s.chars().any(char::is_control) {
        return Err(EventError::BadSubject("contains control characters"));
    }
    Ok(())
}

impl Event {
    /// `"token"`, `"family"`, `"subject"` or `"cutoff"`: the wire `kind` and
    /// a bounded metrics label.
    pub fn kind(&self) -> &'static str {
        match self.target {
            Target::Token(_) => "token",
            Target::Family(_) => "family",
            Target::Subject(_) => "subject",
            Target::Cutoff { .. } => "cutoff",
        }
    }

    /// Checks what the type system cannot: today, only the subject.
    pub fn validate(&self) -> Result<(), EventError> {
        match &self.target {
            Target::Subject(s) => validate_subject(s),
            _ => Ok(()),
        }
    }

    /// The wire form: one JSON object, fields in a fixed order.
    pub fn to_json(&self) -> String {
        let mut wire = WireEvent {
            v: VERSION,
            kind: self.kind(),
            token_hash: None,
            family: None,
            subject: None,
            issued_before: None,
            revoked_at_ms: self.revoked_at_ms,
            keep_until: self.keep_until,
            source: self.source.as_str(),
        };
        match &self.target {
            Target::Token(d) => wire.token_hash = Some(*d),
            Target::Family(d) => wire.family = Some(*d),
            Target::Subject(s) => wire.subject = Some(s),
            Target::Cutoff { issued_before } => wire.issued_before = Some(*issued_before),
        }
        // A struct of strings and integers always serialises; there is no
        // map with non-string keys and no fallible Serialize impl involved.
        serde_json::to_string(&wire).expect("serialising a plain struct cannot fail")
    }

    /// Decodes and validates one event. Never panics, whatever the bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Event, EventError> {
        let raw: RawEvent =
            serde_json::from_slice(bytes).map_err(|e| EventError::Malformed(e.to_string()))?;
        let v = raw.v.ok_or(EventError::Missing("v"))?;
        if v != VERSION {
            return Err(EventError::Version(v));
        }
        let kind = raw.kind.ok_or(EventError::Missing("kind"))?;
        let (kind, own_field): (&'static str, usize) = match kind.as_str() {
            "token" => ("token", 0),
            "family" => ("family", 1),
            "subject" => ("subject", 2),
            "cutoff" => ("cutoff", 3),
            _ => return Err(EventError::UnknownKind(truncate(&kind))),
        };
        let present = [
            raw.token_hash.is_some(),
            raw.family.is_some(),
            raw.subject.is_some(),
            raw.issued_before.is_some(),
        ];
        for (i, field) in TARGET_FIELDS.iter().enumerate() {
            if i != own_field && present[i] {
                return Err(EventError::UnexpectedField { field, kind });
            }
        }
        let target = match own_field {
            0 => Target::Token(parse_digest(raw.token_hash, "token_hash")?),
            1 => Target::Family(parse_digest(raw.family, "family")?),
            2 => {
                let s = raw.subject.ok_or(EventError::Missing("subject"))?;
                validate_subject(&s)?;
                Target::Subject(s)
            }
            _ => Target::Cutoff {
                issued_before: raw
                    .issued_before
                    .ok_or(EventError::Missing("issued_before"))?,
            },
        };
        let revoked_at_ms = raw
            .revoked_at_ms
            .ok_or(EventError::Missing("revoked_at_ms"))?;
        let keep_until = raw.keep_until.ok_or(EventError::Missing("keep_until"))?;
        let source = raw.source.ok_or(EventError::Missing("source"))?;
        let source =
            Source::parse(&source).ok_or_else(|| EventError::UnknownSource(truncate(&source)))?;
        Ok(Event {
            target,
            revoked_at_ms,
            keep_until,
            source,
        })
    }
}

fn parse_digest(field: Option<String>, name: &'static str) -> Result<Digest, EventError> {
    let s = field.ok_or(EventError::Missing(name))?;
    Digest::from_hex(&s).ok_or(EventError::BadDigest(name))
}

/// Error messages echo unknown names for debugging, but never unboundedly.
fn truncate(s: &str) -> String {
    s.chars().take(32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(target: Target) -> Event {
        Event {
            target,
            revoked_at_ms: 1_700_000_000_123,
            keep_until: 1_700_003_600,
            source: Source::Api,
        }
    }

    fn all_kinds() -> Vec<Event> {
        vec![
            ev(Target::Token(Digest::of(b"tok"))),
            ev(Target::Family(Digest::of(b"parent"))),
            ev(Target::Subject("user-42 \"é\"".to_string())),
            ev(Target::Cutoff {
                issued_before: 1_700_000_000,
            }),
        ]
    }

    #[test]
    fn every_kind_round_trips() {
        for (i, mut e) in all_kinds().into_iter().enumerate() {
            e.source = [Source::Api, Source::Admin, Source::External, Source::Ssf][i % 4];
            let json = e.to_json();
            assert_eq!(Event::from_json(json.as_bytes()), Ok(e.clone()), "{json}");
        }
    }

    #[test]
    fn wire_format_is_exact() {
        let d = Digest::of(b"tok");
        let json = ev(Target::Token(d)).to_json();
        assert_eq!(
            json,
            format!(
                "{{\"v\":1,\"kind\":\"token\",\"token_hash\":\"{}\",\"revoked_at_ms\":1700000000123,\"keep_until\":1700003600,\"source\":\"api\"}}",
                d.to_hex()
            )
        );
        let cutoff = ev(Target::Cutoff { issued_before: 5 }).to_json();
        assert!(
            cutoff.contains("\"kind\":\"cutoff\",\"issued_before\":5,"),
            "{cutoff}"
        );
        assert_eq!(all_kinds()[1].kind(), "family");
        assert_eq!(all_kinds()[2].kind(), "subject");
    }

    #[test]
    fn accepts_upper_case_hex_and_ignores_unknown_metadata() {
        let d = Digest::of(b"x");
        let json = format!(
            r#"{{"v":1,"kind":"family","family":"{}","revoked_at_ms":1,"keep_until":2,"source":"external","reason":"incident 7"}}"#,
            d.to_hex().to_uppercase()
        );
        let e = Event::from_json(json.as_bytes()).expect("valid");
        assert_eq!(e.target, Target::Family(d));
        assert_eq!(e.source, Source::External);
    }

    fn decode(json: &str) -> Result<Event, EventError> {
        Event::from_json(json.as_bytes())
    }

    const HEX: &str = "00112233445566778899aabbccddeeff";

    #[test]
    fn rejects_bad_input_with_typed_errors() {
        let tail = r#""revoked_at_ms":1,"keep_until":2,"source":"api""#;
        let cases: Vec<(String, EventError)> = vec![
            (
                format!(r#"{{"v":1,"kind":"token","token_hash":"zz",{tail}}}"#),
                EventError::BadDigest("token_hash"),
            ),
            (
                format!(r#"{{"v":1,"kind":"token","token_hash":"{}0",{tail}}}"#, HEX),
                EventError::BadDigest("token_hash"),
            ),
            (
                format!(r#"{{"v":1,"kind":"user","subject":"a",{tail}}}"#),
                EventError::UnknownKind("user".into()),
            ),
            (
                format!(r#"{{"v":2,"kind":"token","token_hash":"{HEX}",{tail}}}"#),
                EventError::Version(2),
            ),
            (
                format!(r#"{{"kind":"token","token_hash":"{HEX}",{tail}}}"#),
                EventError::Missing("v"),
            ),
            (
                format!(r#"{{"v":1,"token_hash":"{HEX}",{tail}}}"#),
                EventError::Missing("kind"),
            ),
            (
                format!(r#"{{"v":1,"kind":"token",{tail}}}"#),
                EventError::Missing("token_hash"),
            ),
            (
                format!(r#"{{"v":1,"kind":"cutoff",{tail}}}"#),
                EventError::Missing("issued_before"),
            ),
            (
                format!(
                    r#"{{"v":1,"kind":"token","token_hash":"{HEX}","keep_until":2,"source":"api"}}"#
                ),
                EventError::Missing("revoked_at_ms"),
            ),
            (
                format!(
                    r#"{{"v":1,"kind":"token","token_hash":"{HEX}","revoked_at_ms":1,"source":"api"}}"#
                ),
                EventError::Missing("keep_until"),
            ),
            (
                format!(
                    r#"{{"v":1,"kind":"token","token_hash":"{HEX}","revoked_at_ms":1,"keep_until":2}}"#
                ),
                EventError::Missing("source"),
            ),
            (
                format!(
                    r#"{{"v":1,"kind":"token","token_hash":"{HEX}","revoked_at_ms":1,"keep_until":2,"source":"root"}}"#
                ),
                EventError::UnknownSource("root".into()),
            ),
            (
                format!(r#"{{"v":1,"kind":"subject","subject":"a\u0007b",{tail}}}"#),
                EventError::BadSubject("contains control characters"),
            ),
            (
                format!(r#"{{"v":1,"kind":"subject","subject":"a\nb",{tail}}}"#),
                EventError::BadSubject("contains control characters"),
            ),
            (
                format!(r#"{{"v":1,"kind":"subject","subject":"",{tail}}}"#),
                EventError::BadSubject("empty"),
            ),
            (
                format!(
                    r#"{{"v":1,"kind":"subject","subject":"{}",{tail}}}"#,
                    "a".repeat(257)
                ),
                EventError::BadSubject("longer than 256 bytes"),
            ),
            (
                format!(r#"{{"v":1,"kind":"token","token_hash":"{HEX}","family":"{HEX}",{tail}}}"#),
                EventError::UnexpectedField {
                    field: "family",
                    kind: "token",
                },
            ),
            (
                format!(r#"{{"v":1,"kind":"subject","subject":"u","issued_before":3,{tail}}}"#),
                EventError::UnexpectedField {
                    field: "issued_before",
                    kind: "subject",
                },
            ),
        ];
        for (json, want) in cases {
            assert_eq!(decode(&json), Err(want), "{json}");
        }
        let ok_256 = format!(
            r#"{{"v":1,"kind":"subject","subject":"{}",{tail}}}"#,
            "a".repeat(256)
        );
        assert!(decode(&ok_256).is_ok());
    }

    #[test]
    fn wrong_types_and_garbage_are_malformed_not_panics() {
        let tail = r#""revoked_at_ms":1,"keep_until":2,"source":"api""#;
        let bad = [
            String::new(),
            "null".to_string(),
            "[]".to_string(),
            "{".to_string(),
            "\u{0}\u{1}\u{2}".to_string(),
            format!(r#"{{"v":"1","kind":"token","token_hash":"{HEX}",{tail}}}"#),
            format!(r#"{{"v":1,"kind":"cutoff","issued_before":-5,{tail}}}"#),
            format!(r#"{{"v":1,"kind":"cutoff","issued_before":1.5,{tail}}}"#),
            format!(r#"{{"v":1,"kind":"token","token_hash":7,{tail}}}"#),
            format!(r#"{{"v":1,"kind":"subject","subject":["a"],{tail}}}"#),
            format!(r#"{{"v":1,"v":1,"kind":"token","token_hash":"{HEX}",{tail}}}"#),
            format!(
                r#"{{"v":1,"kind":"token","token_hash":"{HEX}","revoked_at_ms":"1","keep_until":2,"source":"api"}}"#
            ),
        ];
        for json in bad {
            assert!(
                matches!(decode(&json), Err(EventError::Malformed(_))),
                "{json:?} -> {:?}",
                decode(&json)
            );
        }
        assert!(Event::from_json(&[0xff, 0xfe, 0x00]).is_err());
    }

    #[test]
    fn unknown_names_are_truncated_in_errors() {
        let kind = "k".repeat(1000);
        let json = format!(r#"{{"v":1,"kind":"{kind}"}}"#);
        match decode(&json) {
            Err(EventError::UnknownKind(k)) => assert_eq!(k.len(), 32),
            other => panic!("{other:?}"),
        }
    }
}
