//! `?fields=` for downscoped tokens: what the token may not see is taken
//! out of the list rather than refusing the request.
//!
//! Box UI Elements always ask for `shared_link`, `representations`,
//! `authenticated_download_url` and more; refusing the request would break
//! the element for a token that simply may not see those. So the fields the
//! policy's `[fields]` table hides from the token are removed from the list
//! that is forwarded, and the answer is redacted as well (`crate::answer`):
//! Box includes some of them (`shared_link`) without being asked.
//!
//! [`filter`] is the rule on one decoded value; [`forwarded_query`] applies
//! it to a raw query and re-encodes the pairs it read.

/// What is forwarded when every field asked for is hidden: Box answers an
/// empty `fields=` with an error, and no `fields` at all with its standard
/// object; `id` and `type` are in every object and give nothing away.
pub const WHEN_EMPTY: &str = "id,type";

/// One decoded `fields` value (Box's comma-separated list) with every
/// element `hidden` picks removed. Elements are trimmed of ASCII
/// whitespace and empty ones dropped, as Box reads the list; what is kept
/// is joined with `,`. An empty result is [`WHEN_EMPTY`].
pub fn filter(value: &str, hidden: impl Fn(&str) -> bool) -> String {
    let mut out = String::with_capacity(value.len());
    for f in value.split(',').map(str::trim_ascii) {
        if f.is_empty() || hidden(f) {
            continue;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(f);
    }
    if out.is_empty() {
        out.push_str(WHEN_EMPTY);
    }
    out
}

/// The query to forward when it holds a `fields` parameter (its name
/// decoded, so `%66ields` is one too): every pair, decoded and re-encoded,
/// with each `fields` value [`filter`]ed. `None` when the query has no
/// `fields` parameter: it is forwarded as it came.
///
/// This reads the query with `form_urlencoded`; when the target holds the
/// query as decoded pairs, this is the one place that changes.
pub fn forwarded_query(query: &str, hidden: impl Fn(&str) -> bool) -> Option<String> {
    let pairs = form_urlencoded::parse(query.as_bytes());
    if !pairs.clone().any(|(k, _)| k == "fields") {
        return None;
    }
    let mut out = form_urlencoded::Serializer::new(String::with_capacity(query.len()));
    for (k, v) in pairs {
        if k == "fields" {
            out.append_pair(&k, &filter(&v, &hidden));
        } else {
            out.append_pair(&k, &v);
        }
    }
    Some(out.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hidden(f: &str) -> bool {
        ["shared_link", "representations", "download_url"]
            .iter()
            .any(|h| h.eq_ignore_ascii_case(f))
    }

    #[test]
    fn hidden_fields_are_taken_out() {
        assert_eq!(filter("name,size", hidden), "name,size");
        assert_eq!(
            filter("name,shared_link,size,representations", hidden),
            "name,size"
        );
        assert_eq!(filter(" name , Shared_Link ,,size ", hidden), "name,size");
        assert_eq!(filter("shared_link", hidden), WHEN_EMPTY);
        assert_eq!(filter("", hidden), WHEN_EMPTY);
        // A name that merely contains a hidden one is another field.
        assert_eq!(filter("shared_link_x", hidden), "shared_link_x");
    }

    #[test]
    fn the_query_is_read_decoded_and_re_encoded() {
        assert_eq!(forwarded_query("limit=5&offset=0", hidden), None);
        assert_eq!(
            forwarded_query("fields=name,shared_link&limit=5", hidden).as_deref(),
            Some("fields=name&limit=5")
        );
        // An encoded name or comma is still `fields` and still a list.
        assert_eq!(
            forwarded_query("%66ields=name%2Cshared%5Flink", hidden).as_deref(),
            Some("fields=name")
        );
        // Every `fields` pair is filtered (refusing repeats is the query
        // reader's job).
        assert_eq!(
            forwarded_query("fields=shared_link&fields=name,download_url", hidden).as_deref(),
            Some("fields=id%2Ctype&fields=name")
        );
        assert_eq!(
            forwarded_query("x=a+b&fields=name", hidden).as_deref(),
            Some("x=a+b&fields=name")
        );
    }
}
