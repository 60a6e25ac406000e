//! The query string, read one way only, and written back one way only.
//!
//! A query names capabilities (`fields`, `access_token`) and objects
//! (`ancestor_folder_ids`), so the rule of the `target` module holds here too:
//! what the gateway checks and what the upstream reads must be the same
//! pairs. The query is therefore parsed once into name/value pairs, anything
//! two common parsers could read differently is refused, and what is
//! forwarded is the pairs written back in one canonical spelling, never the
//! client's bytes.
//!
//! Reading (`application/x-www-form-urlencoded`, as WHATWG `URLSearchParams`,
//! Go's `url.ParseQuery`, Rack, PHP, Java servlets and Python read it):
//! pairs are split on `&`, a pair's name ends at its first `=`, `+` is a
//! space, `%HH` is a byte, and names and values are UTF-8. Empty pairs
//! (`a=1&&b=2`, a trailing `&`) carry nothing and are dropped; a name
//! without `=` has the empty value.
//!
//! Refused (400), because parsers disagree on them:
//! - `;` anywhere (older Python, some Java and Perl parsers split pairs on
//!   it too); a raw byte outside visible ASCII, or `#`;
//! - a malformed escape (`%zz`, `%2`: WHATWG keeps it as text, others fail),
//!   an escape that decodes to a control byte (C-based parsers stop at
//!   `%00`), and names or values that do not decode to UTF-8;
//! - an empty name (`=x`), and a name that holds, once decoded, a space or
//!   one of `% & + ; = #` (a second decoder would split or decode it again);
//! - for the names the gateway reads ([`RESERVED`]): another spelling that a
//!   common framework reads as the same name (`FIELDS`, `Fields`, `fields[]`,
//!   `fields[0]`, `access.token`: case-insensitive binders, Rails/PHP
//!   brackets, PHP's `.` to `_`), a repeat (frameworks take the first, the
//!   last, or a list), and a value holding `%` once decoded (`fields=%2573…`
//!   read by a double decoder).
//!
//! The canonical spelling: `name=value` pairs joined by `&`, every pair with
//! its `=`; the bytes [`is_plain`] kept as they are, every other byte
//! (space, `+`, `&`, `=`, `%`, ...) as `%HH` with upper-case hex. So a space
//! goes upstream as `%20` (read the same by parsers that take `+` as a
//! space and by those that do not), and a literal `+` as `%2B`. A query
//! already in this spelling (most of them: plain ASCII, as SDKs send it)
//! is kept as it came, without a copy.

use std::borrow::Cow;

/// Names the gateway itself reads, so they must mean one thing to both
/// sides: the fields an answer may hold, the token in a URL, the folders a
/// search is bounded to. A policy may read only these (see
/// the policy).
pub const RESERVED: &[&str] = &["access_token", "ancestor_folder_ids", "fields"];

/// Why a query was refused. Each maps to a 400 with this text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("the query holds a control, non-ASCII, fragment or semicolon byte")]
    ForbiddenByte,
    #[error("the query holds a malformed percent-escape")]
    BadEscape,
    #[error("the query holds an escaped control byte or does not decode to UTF-8")]
    BadDecoded,
    #[error("a query parameter name is empty or holds a space, %, &, +, ;, = or #")]
    BadName,
    #[error("a query parameter the gateway reads is spelled another way or repeated")]
    Ambiguous,
    #[error("a query parameter the gateway reads holds an encoded percent sign")]
    DoubleEncoded,
}

/// Bytes the canonical spelling keeps as they are: RFC 3986 unreserved, and
/// the sub-delims and `:@/` that have no meaning to a form parser.
pub const fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b','
                | b':'
                | b'@'
                | b'/'
                | b'!'
                | b'$'
                | b'\''
                | b'('
                | b')'
                | b'*'
        )
}

/// What a raw query byte means to the first pass.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Plain,
    Amp,
    Eq,
    /// `%`, `+` and the visible ASCII the canonical spelling escapes.
    Rewrite,
    /// `;`, `#`, space, controls, non-ASCII.
    Forbidden,
}

static BYTE_CLASS: [Class; 256] = {
    let mut t = [Class::Forbidden; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        t[b] = match byte {
            b'&' => Class::Amp,
            b'=' => Class::Eq,
            b';' | b'#' => Class::Forbidden,
            _ if is_plain(byte) => Class::Plain,
            0x21..=0x7e => Class::Rewrite,
            _ => Class::Forbidden,
        };
        b += 1;
    }
    t
};

/// Checks a raw query (without the `?`) and returns its canonical spelling,
/// borrowed when the query is already canonical; `None` when no pair is left.
pub fn canonical(raw: &str) -> Result<Option<Cow<'_, str>>, QueryError> {
    if raw.is_empty() {
        return Ok(None);
    }
    if fast(raw)? {
        return Ok(Some(Cow::Borrowed(raw)));
    }
    let pairs = parse(raw)?;
    if pairs.is_empty() {
        return Ok(None);
    }
    let mut out = String::with_capacity(raw.len() + 8);
    encode(
        pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        &mut out,
    );
    // Escapes that were needed, spelled as the canonical form spells them:
    // the client's bytes are the canonical ones, keep them.
    if out == raw {
        return Ok(Some(Cow::Borrowed(raw)));
    }
    Ok(Some(Cow::Owned(out)))
}

/// One pass over a query that may be canonical already: `true` when it is
/// (and every rule holds), `false` when it must be decoded (any `%` or `+`)
/// or rewritten, an error when a byte alone refuses it.
fn fast(raw: &str) -> Result<bool, QueryError> {
    let mut canonical = true;
    let mut seen = 0u32;
    for pair in raw.split('&') {
        let mut name_end = None;
        for (i, &b) in pair.as_bytes().iter().enumerate() {
            match BYTE_CLASS[b as usize] {
                Class::Plain => {}
                Class::Eq if name_end.is_none() => name_end = Some(i),
                // A second `=` is kept in the value, but spelled `%3D`.
                Class::Eq | Class::Rewrite => canonical = false,
                Class::Amp => unreachable!("split on &"),
                Class::Forbidden => return Err(QueryError::ForbiddenByte),
            }
        }
        if !canonical {
            continue;
        }
        match name_end {
            // An empty pair is dropped, a pair without `=` gains one.
            None => canonical = false,
            Some(0) => return Err(QueryError::BadName),
            // No `%` here (it is `Rewrite`), so no decoded `%` either.
            Some(end) => check_reserved(&pair[..end], false, &mut seen)?,
        }
    }
    Ok(canonical)
}

/// Decodes every pair and applies every rule; the slow path.
pub fn parse(raw: &str) -> Result<Vec<(String, String)>, QueryError> {
    let mut pairs = Vec::new();
    let mut seen = 0u32;
    for pair in raw.split('&') {
        if pair.is_empty() {
            continue;
        }
        if pair
            .bytes()
            .any(|b| BYTE_CLASS[b as usize] == Class::Forbidden)
        {
            return Err(QueryError::ForbiddenByte);
        }
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode(name)?;
        let value = decode(value)?;
        if name.is_empty()
            || name
                .bytes()
                .any(|b| matches!(b, b' ' | b'%' | b'&' | b'+' | b';' | b'=' | b'#'))
            || !name.is_ascii()
        {
            return Err(QueryError::BadName);
        }
        check_reserved(&name, value.contains('%'), &mut seen)?;
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// The rules for the names of [`RESERVED`]; `seen` has a bit per name met.
fn check_reserved(name: &str, value_has_percent: bool, seen: &mut u32) -> Result<(), QueryError> {
    // Most names are short lower-case words that fold to themselves and
    // are not reserved: two compares, no fold.
    let plain = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    let idx = if plain {
        RESERVED.iter().position(|r| *r == name)
    } else {
        let folded = fold(name);
        match RESERVED.iter().position(|r| **r == *folded) {
            Some(_) => return Err(QueryError::Ambiguous),
            None => None,
        }
    };
    let Some(idx) = idx else { return Ok(()) };
    if *seen & (1 << idx) != 0 {
        return Err(QueryError::Ambiguous);
    }
    *seen |= 1 << idx;
    if value_has_percent {
        return Err(QueryError::DoubleEncoded);
    }
    Ok(())
}

/// The name a lenient framework could bind `name` to: ASCII lower case, cut
/// at the first `[` (Rails/PHP arrays and hashes), `.` and space as `_`
/// (PHP), surrounding spaces trimmed (PHP).
fn fold(name: &str) -> Cow<'_, str> {
    let cut = name.split('[').next().unwrap_or("").trim_matches(' ');
    Cow::Owned(
        cut.bytes()
            .map(|b| match b {
                b'.' | b' ' => '_',
                _ => b.to_ascii_lowercase() as char,
            })
            .collect(),
    )
}

/// `+` as a space, `%HH` as a byte; the result must be UTF-8 without
/// control bytes.
fn decode(s: &str) -> Result<String, QueryError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = match bytes[i] {
            b'%' => {
                let hex = |b: u8| (b as char).to_digit(16);
                let (Some(hi), Some(lo)) = (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(QueryError::BadEscape);
                };
                i += 2;
                (hi * 16 + lo) as u8
            }
            b'+' => b' ',
            b => b,
        };
        if b < 0x20 || b == 0x7f {
            return Err(QueryError::BadDecoded);
        }
        out.push(b);
        i += 1;
    }
    // Rust's UTF-8 check refuses overlong forms and surrogates.
    String::from_utf8(out).map_err(|_| QueryError::BadDecoded)
}

/// Writes pairs in the canonical spelling (appending to `out`).
pub fn encode<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>, out: &mut String) {
    for (i, (name, value)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode_part(name, out);
        out.push('=');
        encode_part(value, out);
    }
}

fn encode_part(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        if is_plain(b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0xf) as usize] as char);
        }
    }
}

/// The pairs of a canonical query, decoded. A canonical query has no `+`
/// and only valid escapes, so the standard form reader reads it exactly as
/// [`parse`] read the raw query.
pub fn pairs(canonical: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    form_urlencoded::parse(canonical.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(raw: &str) -> Result<Option<String>, QueryError> {
        canonical(raw).map(|o| o.map(Cow::into_owned))
    }

    fn ok(raw: &str) -> String {
        c(raw).unwrap().unwrap()
    }

    #[test]
    fn canonical_queries_are_kept_without_a_copy() {
        for q in [
            "fields=id,name,size&limit=100&offset=0",
            "a=",
            "x=1&x=2",
            "query=a%20b",
            "v=%2B%26%3D",
            "path=/a/b:c@d",
        ] {
            assert!(matches!(canonical(q), Ok(Some(Cow::Borrowed(_)))), "{q}");
        }
        assert_eq!(c(""), Ok(None));
        assert_eq!(c("&&"), Ok(None));
    }

    #[test]
    fn other_spellings_are_rewritten_one_way() {
        assert_eq!(ok("query=a+b"), "query=a%20b");
        assert_eq!(ok("query=a%2bb"), "query=a%2Bb");
        assert_eq!(ok("f%69elds=name"), "fields=name");
        assert_eq!(ok("fields=id%2Cname"), "fields=id,name");
        assert_eq!(ok("a=1&&b=2&"), "a=1&b=2");
        assert_eq!(ok("flag"), "flag=");
        assert_eq!(ok("a=b=c"), "a=b%3Dc");
        assert_eq!(ok("q=%C3%A9t%C3%A9"), "q=%C3%A9t%C3%A9");
        assert_eq!(
            ok("q=[x]^{y}|\"<>`\\?"),
            "q=%5Bx%5D%5E%7By%7D%7C%22%3C%3E%60%5C%3F"
        );
        assert_eq!(ok("a[]=1&a[]=2"), "a%5B%5D=1&a%5B%5D=2");
    }

    #[test]
    fn ambiguous_queries_are_refused() {
        use QueryError::*;
        let cases = [
            ("a=1;fields=shared_link", ForbiddenByte),
            ("a=b c", ForbiddenByte),
            ("a=b#c", ForbiddenByte),
            ("a=\u{e9}", ForbiddenByte),
            ("a=%zz", BadEscape),
            ("a=%2", BadEscape),
            ("a=%", BadEscape),
            ("a=%00", BadDecoded),
            ("a=%0d%0a", BadDecoded),
            ("a=%ff", BadDecoded),
            ("a=%c0%af", BadDecoded),
            ("=x", BadName),
            ("%3Dx=1", BadName),
            ("a%26b=1", BadName),
            ("a+b=1", BadName),
            ("a%25b=1", BadName),
            ("%C3%A9=1", BadName),
            ("FIELDS=shared_link", Ambiguous),
            ("Fields=shared_link", Ambiguous),
            ("fields[]=shared_link", Ambiguous),
            ("fields%5B0%5D=shared_link", Ambiguous),
            ("fields[=shared_link", Ambiguous),
            ("access.token=x", Ambiguous),
            ("Access_Token=x", Ambiguous),
            ("fields=name&fields=shared_link", Ambiguous),
            ("fields=name&f%69elds=shared_link", Ambiguous),
            ("ancestor_folder_ids=1&ancestor_folder_ids=2", Ambiguous),
            ("fields=%2573hared_link", DoubleEncoded),
        ];
        for (q, want) in cases {
            assert_eq!(c(q), Err(want), "{q}");
        }
        // An escaped `;` is data, not a separator.
        assert_eq!(ok("a=1%3B"), "a=1%3B");
        // Repeats of names the gateway does not read are kept, in order.
        assert_eq!(ok("x=2&x=1"), "x=2&x=1");
    }

    #[test]
    fn pairs_read_the_canonical_form_as_parse_read_the_raw_one() {
        for raw in [
            "query=a+b&fields=id%2Cname",
            "x=%E2%82%AC&y=%2B&z",
            "a=b=c&&d=",
        ] {
            let want = parse(raw).unwrap();
            let canon = ok(raw);
            let got: Vec<(String, String)> = pairs(&canon)
                .map(|(n, v)| (n.into_owned(), v.into_owned()))
                .collect();
            assert_eq!(got, want, "{raw}");
            assert_eq!(c(&canon).unwrap().as_deref(), Some(canon.as_str()));
        }
    }
}
