//! The request target, read one way only.
//!
//! The worst bug a gateway like this can have is a path that names one object
//! to the gateway and another to the upstream. So the target is parsed here,
//! once, into a canonical form; the route policy matches that form and the
//! forwarder sends that same form upstream. Anything that two parsers could
//! read differently is refused with 400 instead of being "cleaned up":
//!
//! - percent-escapes that decode to `/`, `\`, `.`, `%`, `;` or a control
//!   byte (so `%2F`, `%5c`, `%2e`, and double encodings like `%252e`);
//! - raw `\`, `;`, control bytes, non-ASCII bytes, `#` fragments, and a
//!   raw `?` in what is given as the path (it would start the query upstream);
//! - `.` and `..` segments, empty segments (`//`) and a trailing slash;
//! - escapes that decode to invalid UTF-8;
//! - absolute-form targets (`http://host/...`): the gateway is an origin
//!   server to its clients and never lets a client pick the upstream host.
//!
//! Matching is case-sensitive, as Box's paths are. Other escapes are decoded
//! and re-encoded in one canonical spelling (upper-case hex, unreserved
//! characters never escaped, other raw bytes always escaped), so `fil%65s`
//! and `files`, or `a^b` and `a%5eb`, are the same path to both sides.
//!
//! The query is read into pairs by [`crate::query`] with the same rule, and
//! forwarded in its canonical spelling; later phases read the pairs with
//! [`Target::query_pairs`] and may drop or replace parameters before the
//! target is forwarded ([`Target::set_query_pairs`]).

use std::borrow::Cow;

use crate::query::{self, QueryError};

use http::uri::PathAndQuery;

/// A request target that passed the checks above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The canonical path (always starting with `/`, segments non-empty),
    /// then `?` and the canonical query when it has at least one pair. This
    /// is what goes upstream.
    pq: PathAndQuery,
    /// Where the path ends in `pq`.
    path_end: usize,
}

/// Why a target was refused. Each maps to a 400 with this text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("the request target must be a path starting with /")]
    NotOriginForm,
    #[error("the path holds an empty segment or a trailing slash")]
    EmptySegment,
    #[error("the path holds a dot segment")]
    DotSegment,
    #[error("the path holds an encoded slash, backslash, dot, percent or semicolon")]
    EncodedDelimiter,
    #[error(
        "the path holds a backslash, semicolon, question mark, fragment, control or non-ASCII byte"
    )]
    ForbiddenByte,
    #[error("the path holds a malformed percent-escape")]
    BadEscape,
    #[error("the path does not decode to UTF-8")]
    NotUtf8,
    #[error("{0}")]
    Query(#[from] QueryError),
    #[error("the request target is too long")]
    TooLong,
}

/// Longest target accepted; Box's own paths are far shorter.
pub const MAX_TARGET_LEN: usize = 8192;

impl Target {
    /// Parses a request URI as hyper received it.
    pub fn parse(uri: &http::Uri) -> Result<Target, TargetError> {
        if uri.scheme().is_some() || uri.authority().is_some() {
            return Err(TargetError::NotOriginForm);
        }
        Target::parse_uri(uri)
    }

    /// Parses the target of a request of this HTTP version. HTTP/2 always
    /// sends `:scheme` and `:authority`, so hyper's URI for every h2 request
    /// has both: that is HTTP/1.1's origin-form plus `Host`, not an
    /// absolute-form target, and the upstream is never picked from it. Only
    /// the path and query are read; HTTP/1 keeps refusing absolute-form.
    pub fn parse_request(uri: &http::Uri, version: http::Version) -> Result<Target, TargetError> {
        if version >= http::Version::HTTP_2 {
            return Target::parse_uri(uri);
        }
        Target::parse(uri)
    }

    /// The path and query of `uri`, which are forwarded as they came when
    /// they are canonical already (most requests): no copy, no re-parse.
    fn parse_uri(uri: &http::Uri) -> Result<Target, TargetError> {
        let (path, query) = (uri.path(), uri.query());
        let t = Target::check(path, query)?;
        if let (Cow::Borrowed(canonical), Some(pq)) = (&t.path, uri.path_and_query())
            && matches!(t.query, None | Some(Cow::Borrowed(_)))
            // Exactly what was checked, byte for byte, and nothing else
            // (the length rules out any other part), or it is rebuilt.
            && pq.path() == *canonical
            && pq.query() == t.query.as_deref()
            && pq.as_str().len()
                == canonical.len() + t.query.as_ref().map_or(0, |q| q.len() + 1)
        {
            return Ok(Target {
                pq: pq.clone(),
                path_end: canonical.len(),
            });
        }
        t.build()
    }

    /// Parses a raw path and query (as in an origin-form request line).
    pub fn parse_parts(path: &str, query: Option<&str>) -> Result<Target, TargetError> {
        Target::check(path, query)?.build()
    }

    fn check<'a>(path: &'a str, query: Option<&'a str>) -> Result<Checked<'a>, TargetError> {
        if path.len() + query.map_or(0, str::len) > MAX_TARGET_LEN {
            return Err(TargetError::TooLong);
        }
        let path = canonical_path(path)?;
        let query = match query {
            Some(q) => query::canonical(q)?,
            None => None,
        };
        // Re-encoding can make the target longer (`^` becomes `%5E`, `+`
        // becomes `%20`); what is forwarded must itself be a target this
        // function accepts.
        if path.len() + query.as_ref().map_or(0, |q| q.len()) > MAX_TARGET_LEN {
            return Err(TargetError::TooLong);
        }
        Ok(Checked { path, query })
    }

    pub fn path(&self) -> &str {
        &self.pq.as_str()[..self.path_end]
    }

    /// The canonical query (see [`crate::query`]), as forwarded.
    pub fn query(&self) -> Option<&str> {
        self.pq.query()
    }

    /// The query's pairs, decoded: what the upstream will read.
    pub fn query_pairs(&self) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
        query::pairs(self.query().unwrap_or(""))
    }

    /// The value of the first parameter called `name` (the names of
    /// [`query::RESERVED`] occur at most once).
    pub fn query_value(&self, name: &str) -> Option<Cow<'_, str>> {
        self.query_pairs().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Replaces the query by these pairs, in the canonical spelling; no pair
    /// at all forwards no query. For the decision, which may drop or narrow
    /// a parameter before the target is forwarded.
    pub fn set_query_pairs<'a>(
        &mut self,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), TargetError> {
        let mut pq = String::with_capacity(self.pq.as_str().len());
        pq.push_str(self.path());
        pq.push('?');
        query::encode(pairs, &mut pq);
        if pq.ends_with('?') {
            pq.pop();
        }
        // The canonical spelling holds only bytes a target may hold.
        self.pq = PathAndQuery::from_maybe_shared(bytes::Bytes::from(pq))
            .map_err(|_| TargetError::ForbiddenByte)?;
        Ok(())
    }

    /// Drops every parameter called `name` (a no-op when there is none).
    pub fn remove_query_param(&mut self, name: &str) -> Result<(), TargetError> {
        if self.query_value(name).is_none() {
            return Ok(());
        }
        let kept: Vec<(String, String)> = self
            .query_pairs()
            .filter(|(n, _)| n != name)
            .map(|(n, v)| (n.into_owned(), v.into_owned()))
            .collect();
        self.set_query_pairs(kept.iter().map(|(n, v)| (n.as_str(), v.as_str())))
    }

    /// Segments of the canonical path (never empty strings).
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.path()[1..].split('/')
    }

    /// Path and query, as forwarded upstream.
    pub fn into_path_and_query(self) -> PathAndQuery {
        self.pq
    }

    /// The same target with one `/` after the path, as Box spells its
    /// representation content with an empty asset path. Only for a route
    /// whose `{name*}` tail takes that shape, once matched (see
    /// `enforce::parse_target`): the slash is forwarded exactly as checked.
    pub fn with_trailing_slash(&self) -> Target {
        let path = self.path();
        let mut pq = String::with_capacity(self.pq.as_str().len() + 1);
        pq.push_str(path);
        pq.push('/');
        if let Some(q) = self.query() {
            pq.push('?');
            pq.push_str(q);
        }
        Target {
            pq: PathAndQuery::from_maybe_shared(bytes::Bytes::from(pq))
                .expect("a checked target with one more `/` is a valid path and query"),
            path_end: path.len() + 1,
        }
    }
}

/// A path and query that passed the checks, before it is a [`Target`].
struct Checked<'a> {
    path: Cow<'a, str>,
    query: Option<Cow<'a, str>>,
}

impl Checked<'_> {
    fn build(self) -> Result<Target, TargetError> {
        let path_end = self.path.len();
        let mut pq = self.path.into_owned();
        if let Some(q) = self.query {
            pq.reserve(q.len() + 1);
            pq.push('?');
            pq.push_str(&q);
        }
        // Checked above to hold only bytes a request target may hold.
        let pq = PathAndQuery::from_maybe_shared(bytes::Bytes::from(pq))
            .map_err(|_| TargetError::ForbiddenByte)?;
        Ok(Target { pq, path_end })
    }
}

fn canonical_path(path: &str) -> Result<Cow<'_, str>, TargetError> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(TargetError::NotOriginForm);
    };
    if rest.is_empty() {
        return Ok(Cow::Borrowed(path));
    }
    // One pass over the bytes, a table lookup each (this runs on every
    // request); a segment's own checks run where it ends. An empty or dot
    // segment holds no byte the table refuses, so the first error found is
    // the one a segment-by-segment reading finds first.
    let bytes = rest.as_bytes();
    let mut needs_rewrite = false;
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        match BYTE_CLASS[b as usize] {
            Class::Plain => {}
            Class::Slash => {
                check_segment(&bytes[start..i])?;
                start = i + 1;
            }
            // `%`, and raw bytes the canonical form escapes (`^`, `|`,
            // `"`, ...): one spelling only, whichever the client used.
            Class::Rewrite => needs_rewrite = true,
            Class::Forbidden => return Err(TargetError::ForbiddenByte),
        }
    }
    check_segment(&bytes[start..])?;
    if !needs_rewrite {
        return Ok(Cow::Borrowed(path));
    }
    let mut out = String::with_capacity(path.len());
    for seg in rest.split('/') {
        out.push('/');
        let decoded = decode_segment(seg)?;
        if decoded == "." || decoded == ".." {
            return Err(TargetError::DotSegment);
        }
        encode_segment(&decoded, &mut out);
    }
    Ok(Cow::Owned(out))
}

fn check_segment(seg: &[u8]) -> Result<(), TargetError> {
    match seg {
        b"" => Err(TargetError::EmptySegment),
        b"." | b".." => Err(TargetError::DotSegment),
        _ => Ok(()),
    }
}

/// What a raw path byte means to the first pass.
#[derive(Clone, Copy)]
enum Class {
    /// Kept as it is (see [`is_plain`]).
    Plain,
    Slash,
    /// Allowed, but the canonical form spells it otherwise.
    Rewrite,
    /// `\`, `;`, `#`, `?`, controls, space and non-ASCII.
    Forbidden,
}

static BYTE_CLASS: [Class; 256] = {
    let mut t = [Class::Rewrite; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        t[b] = match byte {
            b'/' => Class::Slash,
            b'\\' | b';' | b'#' | b'?' | 0..=0x20 | 0x7f..=0xff => Class::Forbidden,
            _ if is_plain(byte) => Class::Plain,
            _ => Class::Rewrite,
        };
        b += 1;
    }
    t
};

fn decode_segment(seg: &str) -> Result<String, TargetError> {
    let bytes = seg.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |b: u8| (b as char).to_digit(16);
            let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) else {
                return Err(TargetError::BadEscape);
            };
            let b = (hi * 16 + lo) as u8;
            match b {
                b'/' | b'\\' | b'.' | b'%' | b';' | b'#' | b'?' => {
                    return Err(TargetError::EncodedDelimiter);
                }
                0..=0x1f | 0x7f => return Err(TargetError::EncodedDelimiter),
                _ => out.push(b),
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    // Rust's UTF-8 check refuses overlong forms and surrogates.
    String::from_utf8(out).map_err(|_| TargetError::NotUtf8)
}

/// RFC 3986 unreserved characters and the sub-delims a segment may hold raw.
const fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b'='
                | b':'
                | b'@'
        )
}

fn encode_segment(s: &str, out: &mut String) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn p(path: &str) -> Result<String, TargetError> {
        Target::parse_parts(path, None).map(|t| t.path().to_owned())
    }

    #[test]
    fn plain_paths_pass_unchanged() {
        assert_eq!(p("/2.0/files/123").unwrap(), "/2.0/files/123");
        assert_eq!(p("/").unwrap(), "/");
    }

    #[test]
    fn harmless_escapes_are_canonicalised() {
        assert_eq!(p("/2.0/fil%65s/1%32%33").unwrap(), "/2.0/files/123");
        assert_eq!(p("/a/b%20c").unwrap(), "/a/b%20c");
        assert_eq!(p("/a/%c3%a9").unwrap(), "/a/%C3%A9");
    }

    /// Found by fuzz/ (target): raw `^` passed unchanged when the path held
    /// no escape but became `%5E` when it did, so one path had two spellings
    /// and the re-encoded form could outgrow `MAX_TARGET_LEN`.
    #[test]
    fn raw_bytes_the_canonical_form_escapes_are_escaped_too() {
        assert_eq!(p("/a/b^c").unwrap(), "/a/b%5Ec");
        assert_eq!(p("/a/b%5ec").unwrap(), "/a/b%5Ec");
        assert_eq!(p("/a/b^c%41").unwrap(), "/a/b%5EcA");
        assert_eq!(p("/a/{x}|\"`").unwrap(), "/a/%7Bx%7D%7C%22%60");
        let long = format!("/{}%41", "^".repeat(MAX_TARGET_LEN - 4));
        assert_eq!(p(&long), Err(TargetError::TooLong));
        let fits = format!("/{}", "^".repeat(MAX_TARGET_LEN / 3 - 1));
        let canonical = p(&fits).unwrap();
        assert_eq!(p(&canonical), Ok(canonical.clone()));
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        use TargetError::*;
        let cases = [
            ("/2.0/files/1%2F2", EncodedDelimiter),
            ("/2.0/files/1%2f2", EncodedDelimiter),
            ("/2.0/files/1%5C2", EncodedDelimiter),
            ("/2.0/files/%2e%2e", EncodedDelimiter),
            ("/2.0/files/%252e", EncodedDelimiter),
            ("/2.0/files/../folders/1", DotSegment),
            ("/2.0/./files/1", DotSegment),
            ("/2.0//files/1", EmptySegment),
            ("/2.0/files/1/", EmptySegment),
            ("/2.0/files/1;x=2", ForbiddenByte),
            ("/2.0/files\\1", ForbiddenByte),
            // Found by fuzz/ (target): a raw `?` in the path passed unchanged,
            // so the gateway matched `/2.0/files/1?x=1` as one path while the
            // upstream reads path `/2.0/files/1` and query `x=1`.
            ("/2.0/files/1?x=1", ForbiddenByte),
            ("/2.0/files/1%41?x", ForbiddenByte),
            ("/2.0/files/1%00", EncodedDelimiter),
            ("/2.0/files/1%c0%af", NotUtf8),
            ("/2.0/files/1%e0%80%ae", NotUtf8),
            ("/2.0/files/%zz", BadEscape),
            ("/2.0/files/1%2", BadEscape),
            ("2.0/files/1", NotOriginForm),
        ];
        for (path, want) in cases {
            assert_eq!(p(path), Err(want), "{path}");
        }
    }

    #[test]
    fn absolute_form_is_refused() {
        let uri: http::Uri = "http://evil.example/2.0/files/1".parse().unwrap();
        assert_eq!(Target::parse(&uri), Err(TargetError::NotOriginForm));
    }

    #[test]
    fn http2_targets_carry_scheme_and_authority_and_are_read_by_path() {
        let uri: http::Uri = "http://127.0.0.1:8080/2.0/fil%65s/1?x=1".parse().unwrap();
        let t = Target::parse_request(&uri, http::Version::HTTP_2).unwrap();
        assert_eq!(t.into_path_and_query(), "/2.0/files/1?x=1");
        // The path checks still apply to h2.
        let bad: http::Uri = "https://h/2.0/files/%2e%2e/2".parse().unwrap();
        assert_eq!(
            Target::parse_request(&bad, http::Version::HTTP_2),
            Err(TargetError::EncodedDelimiter)
        );
        // HTTP/1.1 absolute-form stays refused.
        assert_eq!(
            Target::parse_request(&uri, http::Version::HTTP_11),
            Err(TargetError::NotOriginForm)
        );
    }

    #[test]
    fn a_canonical_target_is_forwarded_as_received_and_others_rebuilt() {
        let fwd = |raw: &str| {
            let uri: http::Uri = raw.parse().unwrap();
            Target::parse(&uri).unwrap().into_path_and_query()
        };
        assert_eq!(fwd("/2.0/files/1?fields=name"), "/2.0/files/1?fields=name");
        assert_eq!(
            fwd("/2.0/fil%65s/1?fields=name"),
            "/2.0/files/1?fields=name"
        );
        assert_eq!(fwd("/2.0/files/a^b"), "/2.0/files/a%5Eb");
        // An empty query is not forwarded, whichever way the path went.
        assert_eq!(fwd("/2.0/files/1?"), "/2.0/files/1");
        assert_eq!(fwd("/2.0/fil%65s/1?"), "/2.0/files/1");
        let t = Target::parse(&"/2.0/files/1?x=1".parse().unwrap()).unwrap();
        assert_eq!((t.path(), t.query()), ("/2.0/files/1", Some("x=1")));
        assert_eq!(Target::parse_parts("/2.0/files/1", Some("x=1")), Ok(t));
    }

    #[test]
    fn query_is_checked_and_forwarded_canonical() {
        let t = Target::parse_parts("/2.0/files/1", Some("fields=name,size")).unwrap();
        assert_eq!(t.into_path_and_query(), "/2.0/files/1?fields=name,size");
        assert_eq!(
            Target::parse_parts("/2.0/files/1", Some("a=b#frag")),
            Err(TargetError::Query(QueryError::ForbiddenByte))
        );
        let fwd = |raw: &str| {
            let uri: http::Uri = raw.parse().unwrap();
            Target::parse(&uri).unwrap().into_path_and_query()
        };
        assert_eq!(
            fwd("/2.0/files/1?f%69elds=a+b"),
            "/2.0/files/1?fields=a%20b"
        );
        assert_eq!(fwd("/2.0/fil%65s/1?q=%7e"), "/2.0/files/1?q=~");
        assert_eq!(fwd("/2.0/files/1?&&"), "/2.0/files/1");
        // Already canonical, escapes included: the received bytes are kept.
        let uri: http::Uri = "/2.0/files/1?q=a%20b".parse().unwrap();
        let t = Target::parse(&uri).unwrap();
        assert_eq!(
            t.into_path_and_query().as_str(),
            uri.path_and_query().unwrap().as_str()
        );
        // The canonical form is checked against the length limit.
        let q = "+".repeat(MAX_TARGET_LEN / 2);
        assert_eq!(
            Target::parse_parts("/a", Some(&format!("q={q}"))),
            Err(TargetError::TooLong)
        );
    }

    #[test]
    fn query_pairs_can_be_read_and_edited() {
        let mut t = Target::parse_parts(
            "/2.0/files/1",
            Some("access_token=abc&fields=id%2Cname&x=1"),
        )
        .unwrap();
        assert_eq!(t.query_value("fields").as_deref(), Some("id,name"));
        assert_eq!(t.query_value("nope"), None);
        t.remove_query_param("access_token").unwrap();
        assert_eq!(t.query(), Some("fields=id,name&x=1"));
        t.set_query_pairs([("fields", "id"), ("x", "a b&c")])
            .unwrap();
        assert_eq!(t.query(), Some("fields=id&x=a%20b%26c"));
        assert_eq!(t.path(), "/2.0/files/1");
        t.set_query_pairs([]).unwrap();
        assert_eq!(t.clone().into_path_and_query(), "/2.0/files/1");
        assert_eq!(t.query(), None);
    }

    #[test]
    fn segments_split_the_canonical_path() {
        let t = Target::parse_parts("/2.0/files/7", None).unwrap();
        assert_eq!(t.segments().collect::<Vec<_>>(), ["2.0", "files", "7"]);
    }
}
