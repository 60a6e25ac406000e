//! The query reader: `query::canonical` (and `Target::parse_parts`, which
//! runs it) on arbitrary strings.
//!
//! Properties of every accepted query:
//! - the pairs read from the canonical form are the pairs read from the
//!   raw query, and an independent reader (WHATWG form decoding, the
//!   `form_urlencoded` crate) reads the raw query as the same pairs;
//! - the canonical form is canonical: reading it again gives it back,
//!   borrowed (no second spelling), and encoding the pairs gives it too;
//! - no separator ambiguity survives: no `;`, `+`, `#`, space or byte
//!   outside visible ASCII, every pair has exactly one raw `=`, every `%`
//!   starts an upper-case escape of a byte the canonical form must escape;
//! - the names the gateway reads occur at most once, spelled one way, and no
//!   other name is one a lenient framework would read as one of them.
#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use scopegate::query::{self, RESERVED};
use scopegate::target::Target;

fn owned(p: (Cow<'_, str>, Cow<'_, str>)) -> (String, String) {
    (p.0.into_owned(), p.1.into_owned())
}

/// The name a lenient framework could read `name` as (see `query::fold`).
fn fold(name: &str) -> String {
    name.split('[')
        .next()
        .unwrap_or("")
        .trim_matches(' ')
        .bytes()
        .map(|b| match b {
            b'.' | b' ' => '_',
            _ => b.to_ascii_lowercase() as char,
        })
        .collect()
}

fn check_canonical(canon: &str) {
    assert!(!canon.is_empty());
    for pair in canon.split('&') {
        assert_eq!(pair.matches('=').count(), 1, "{canon:?}");
        assert!(!pair.starts_with('='), "empty name in {canon:?}");
        let b = pair.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'%' => {
                    let hex = &pair[i + 1..i + 3];
                    assert!(
                        hex.bytes()
                            .all(|h| h.is_ascii_digit() || (b'A'..=b'F').contains(&h)),
                        "{canon:?}"
                    );
                    let v = u8::from_str_radix(hex, 16).unwrap();
                    assert!(!query::is_plain(v), "needless escape in {canon:?}");
                    i += 3;
                }
                b'=' => i += 1,
                c => {
                    assert!(query::is_plain(c), "raw byte {c:#x} in {canon:?}");
                    i += 1;
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let via_target = Target::parse_parts("/q", Some(raw));
    let canon = match query::canonical(raw) {
        Err(e) => {
            // The target refuses it too, for the same reason.
            assert_eq!(via_target, Err(e.into()), "{raw:?}");
            return;
        }
        Ok(None) => {
            assert!(raw.split('&').all(str::is_empty), "{raw:?}");
            assert_eq!(via_target.unwrap().query(), None);
            return;
        }
        Ok(Some(c)) => c,
    };
    check_canonical(&canon);
    let parsed = query::parse(raw).expect("canonical accepted, parse refused");
    let reread: Vec<(String, String)> = query::pairs(&canon).map(owned).collect();
    assert_eq!(parsed, reread, "{raw:?} -> {canon:?}");
    let whatwg: Vec<(String, String)> = form_urlencoded::parse(raw.as_bytes()).map(owned).collect();
    assert_eq!(parsed, whatwg, "{raw:?}");
    // A fixed point, kept without a copy.
    match query::canonical(&canon) {
        Ok(Some(Cow::Borrowed(again))) => assert_eq!(again, &*canon),
        other => panic!("{canon:?} read again as {other:?}"),
    }
    let mut encoded = String::new();
    query::encode(
        parsed.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        &mut encoded,
    );
    assert_eq!(encoded, canon);
    // Borrowed exactly when the client's bytes were the canonical ones.
    assert_eq!(matches!(canon, Cow::Borrowed(_)), *canon == *raw);
    // Reserved names: once, one spelling.
    for r in RESERVED {
        assert!(
            parsed.iter().filter(|(n, _)| n == r).count() <= 1,
            "{raw:?}"
        );
    }
    for (n, v) in &parsed {
        if RESERVED.contains(&fold(n).as_str()) {
            assert!(RESERVED.contains(&n.as_str()), "{n:?} in {raw:?}");
            assert!(!v.contains('%'), "{raw:?}");
        }
        assert!(!n.is_empty());
        assert!(!v.bytes().any(|b| b < 0x20 || b == 0x7f), "{raw:?}");
    }
    // Through the target: the same canonical query, unless the target
    // as a whole outgrew the limit.
    match via_target {
        Ok(t) => assert_eq!(t.query(), Some(&*canon)),
        Err(e) => assert_eq!(e, scopegate::target::TargetError::TooLong, "{raw:?}"),
    }
});
