//! The request-target canonicaliser: `Target::parse_parts` on arbitrary
//! path/query strings and `Target::parse` on whatever `http::Uri` accepts.
//!
//! Input: `path` or `path\nquery` (a `\n` cannot occur in a request line, so
//! it is a safe separator); the whole input is also tried as a URI.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scopegate::target::{MAX_TARGET_LEN, Target};

/// What every accepted target must satisfy.
fn check(t: &Target, raw_query: Option<&str>) {
    let path = t.path();
    assert!(path.starts_with('/'), "{path:?}");
    assert!(path.len() <= 3 * MAX_TARGET_LEN, "{path:?}");
    if path != "/" {
        for seg in path[1..].split('/') {
            assert!(!seg.is_empty(), "empty segment in {path:?}");
            assert!(seg != "." && seg != "..", "dot segment in {path:?}");
        }
        assert_eq!(t.segments().count(), path[1..].split('/').count());
    }
    let upper = path.to_ascii_uppercase();
    for bad in ["%2F", "%5C", "%2E", "%25", "%3B", "%23", "%3F", "%00"] {
        assert!(!upper.contains(bad), "{bad} in {path:?}");
    }
    for b in path.bytes() {
        assert!(
            (0x21..0x7f).contains(&b) && !matches!(b, b'\\' | b';' | b'#' | b'?'),
            "byte {b:#x} in {path:?}"
        );
    }
    // Every escape in the canonical form is upper-case hex and needed.
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = &path[i + 1..i + 3];
            assert!(
                hex.bytes()
                    .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)),
                "{path:?}"
            );
            let v = u8::from_str_radix(hex, 16).unwrap();
            assert!(
                !(v.is_ascii_alphanumeric() || b"-._~".contains(&v)),
                "unreserved byte escaped in {path:?}"
            );
            i += 3;
        } else {
            // Raw bytes are only those the canonical form never escapes.
            assert!(
                bytes[i].is_ascii_alphanumeric() || b"/-._~!$&'()*+,=:@".contains(&bytes[i]),
                "raw byte {:#x} in {path:?}",
                bytes[i]
            );
            i += 1;
        }
    }
    if let Some(q) = t.query() {
        assert!(!q.is_empty());
        assert!(raw_query.is_some());
        assert!(
            q.bytes().all(|b| (0x21..0x7f).contains(&b) && b != b'#'),
            "{q:?}"
        );
        // The query is forwarded in its canonical spelling (fuzzed on its
        // own by the `query` target).
        assert!(
            matches!(
                scopegate::query::canonical(q),
                Ok(Some(std::borrow::Cow::Borrowed(_)))
            ),
            "{q:?}"
        );
    }
    // Canonical is a fixed point, through both entry points.
    let again = Target::parse_parts(path, t.query()).expect("canonical form refused");
    assert_eq!(&again, t);
    // What is forwarded reads back as the same target.
    let uri = http::Uri::from(t.clone().into_path_and_query());
    assert_eq!(Target::parse(&uri).as_ref(), Ok(t), "{uri:?}");
}

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let (path, query) = match s.split_once('\n') {
            Some((p, q)) => (p, Some(q)),
            None => (s, None),
        };
        if let Ok(t) = Target::parse_parts(path, query) {
            check(&t, query);
        }
    }
    if let Ok(uri) = http::Uri::try_from(data)
        && let Ok(t) = Target::parse(&uri)
    {
        assert!(uri.scheme().is_none() && uri.authority().is_none());
        check(&t, uri.query().filter(|q| !q.is_empty()));
    }
});
