//! One part's header block, read under the plain-form rules of
//! [`super`]: `Content-Disposition: form-data; name="N"[; filename="F"]`
//! exactly, an optional plain `Content-Type`, nothing else.

use super::{HEAD_LIMIT, UploadError, find, tchar};

/// A part's headers, as the plain form allows them.
pub(super) struct PartHead<'a> {
    /// The one `name`, as written (no escapes exist in the plain form).
    pub name: &'a str,
    /// The one `filename`, when the part has one.
    pub filename: Option<&'a str>,
    /// The `Content-Type` value, when given (checked by the caller).
    pub content_type: Option<&'a str>,
}

/// The header block at the start of `rest`, up to (not including) the
/// blank line, and its length with the blank line. `Ok(None)`: need more.
pub(super) fn header_block(rest: &[u8]) -> Result<Option<(&str, usize)>, UploadError> {
    if rest.len() >= 2 && rest.starts_with(b"\r\n") {
        return Err(UploadError::Envelope("a part without Content-Disposition"));
    }
    let Some(end) = find(rest, b"\r\n\r\n") else {
        return if rest.len() > HEAD_LIMIT {
            Err(UploadError::TooLong)
        } else {
            Ok(None)
        };
    };
    if end > HEAD_LIMIT {
        return Err(UploadError::TooLong);
    }
    let block = std::str::from_utf8(&rest[..end])
        .map_err(|_| UploadError::Envelope("part headers must be UTF-8"))?;
    Ok(Some((block, end + 4)))
}

/// Reads one part's header block under the plain-form rules.
pub(super) fn part_head(block: &str) -> Result<PartHead<'_>, UploadError> {
    let mut disposition = None;
    let mut content_type = None;
    for line in block.split("\r\n") {
        if line.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return Err(UploadError::Envelope(
                "part headers hold a control byte or a bare CR or LF",
            ));
        }
        if line.starts_with([' ', '\t']) {
            return Err(UploadError::Envelope("a folded part header line"));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(UploadError::Envelope("a part header line without a colon"));
        };
        if name.is_empty() || !name.bytes().all(tchar) {
            return Err(UploadError::Envelope(
                "a part header name that is not a token",
            ));
        }
        let value = value.trim_start_matches(' ');
        if value.is_empty() || value.ends_with(' ') {
            return Err(UploadError::Envelope(
                "a part header value that is empty or padded",
            ));
        }
        let slot = if name.eq_ignore_ascii_case("content-disposition") {
            &mut disposition
        } else if name.eq_ignore_ascii_case("content-type") {
            &mut content_type
        } else {
            return Err(UploadError::Envelope(
                "a part header other than Content-Disposition and Content-Type \
                 (Content-Transfer-Encoding included)",
            ));
        };
        if slot.replace(value).is_some() {
            return Err(UploadError::Envelope("a part header given twice"));
        }
    }
    let Some(disposition) = disposition else {
        return Err(UploadError::Envelope("a part without Content-Disposition"));
    };
    let (name, filename) = parse_disposition(disposition)?;
    Ok(PartHead {
        name,
        filename,
        content_type,
    })
}

/// `form-data; name="N"` or `form-data; name="N"; filename="F"`, exactly.
fn parse_disposition(v: &str) -> Result<(&str, Option<&str>), UploadError> {
    const SHAPE: UploadError = UploadError::Envelope(
        "Content-Disposition must be `form-data; name=\"N\"` with an optional `; filename=\"F\"`",
    );
    let rest = v.strip_prefix("form-data; name=\"").ok_or(SHAPE)?;
    let (name, after) = rest.split_once('"').ok_or(SHAPE)?;
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
    {
        return Err(UploadError::Envelope(
            "a part name must be letters, digits, `_`, `-` or `.`",
        ));
    }
    if after.is_empty() {
        return Ok((name, None));
    }
    let rest = after.strip_prefix("; filename=\"").ok_or(SHAPE)?;
    let (filename, after) = rest.split_once('"').ok_or(SHAPE)?;
    if !after.is_empty() {
        return Err(SHAPE);
    }
    if filename.is_empty() || filename.contains('\\') {
        return Err(UploadError::Envelope(
            "a filename must be non-empty and hold no backslash",
        ));
    }
    Ok((name, Some(filename)))
}

/// `type/subtype` with optional `; key=value` token parameters; never a
/// multipart or message type, which a parser could descend into.
pub(super) fn plain_media_type(ct: &str) -> Result<(), UploadError> {
    const BAD: UploadError = UploadError::Envelope(
        "the file part's Content-Type must be a plain, non-multipart media type",
    );
    let mut params = ct.split(';');
    let essence = params.next().unwrap_or("");
    let (t, s) = essence.split_once('/').ok_or(BAD)?;
    let token = |x: &str| !x.is_empty() && x.bytes().all(tchar);
    if !token(t)
        || !token(s)
        || t.eq_ignore_ascii_case("multipart")
        || t.eq_ignore_ascii_case("message")
    {
        return Err(BAD);
    }
    for p in params {
        let (k, v) = p.trim_start_matches(' ').split_once('=').ok_or(BAD)?;
        if !token(k) || !token(v) {
            return Err(BAD);
        }
    }
    Ok(())
}
