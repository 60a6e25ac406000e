//! Reading header fields as RFC 9110 defines them, for both sides of the
//! proxy (the client's request and the upstream's answer).

use http::{HeaderMap, HeaderName};

/// The elements of a comma-separated header list (RFC 9110 5.6.1) across
/// all of `name`'s values, trimmed; empty elements are yielded too, for the
/// caller to skip or refuse.
pub fn list_elements(h: &HeaderMap, name: HeaderName) -> impl Iterator<Item = &[u8]> {
    h.get_all(name)
        .into_iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
}
