//! Finding the target folder of a multipart upload without holding the file.
//!
//! Box's upload (`POST /api/2.0/files/content`) is multipart with an
//! `attributes` part (`{"name":..,"parent":{"id":..}}`) before the `file`
//! part, and Box documents that order. The gateway reads only up to the end
//! of that first part (a few hundred bytes, capped), decides, and forwards
//! what it read followed by the rest of the stream, so a multi-GB upload
//! streams through in constant memory. A body whose first part is not
//! `attributes` is refused rather than buffered.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use serde_json::Value;

use crate::body::BoxError;

/// The most the gateway reads to find the end of the `attributes` part.
pub const ATTRIBUTES_LIMIT: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    #[error("not multipart/form-data with one boundary")]
    NotMultipart,
    #[error("the first part of the upload must be `attributes`")]
    AttributesNotFirst,
    #[error("the attributes part is not a JSON object without duplicate keys")]
    BadAttributes,
    #[error("the attributes part is too long")]
    TooLong,
    #[error("the body ended or broke before the attributes part did")]
    Truncated,
}

/// The boundary of a `multipart/form-data` content type. Ambiguous forms
/// (two boundary parameters, an empty or over-long one) are refused.
pub fn boundary(content_type: &str) -> Option<String> {
    let mut parts = content_type.split(';');
    if !parts.next()?.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    let mut found = None;
    for p in parts {
        let (k, v) = p.trim().split_once('=')?;
        if k.trim().eq_ignore_ascii_case("boundary") {
            if found.is_some() {
                return None;
            }
            let v = v.trim();
            let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
            found = Some(v.to_string());
        }
    }
    found.filter(|b| !b.is_empty() && b.len() <= 70 && !b.contains(['\r', '\n']))
}

/// Reads the body up to the end of its first part, which must be
/// `attributes`; returns the parsed attributes and a body that replays what
/// was read and then streams the rest.
pub async fn read_attributes<B>(mut body: B, boundary: &str) -> Result<(Value, Prefixed<B>), UploadError>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let mut buf = BytesMut::new();
    loop {
        if let Some(attrs) = parse_first_part(&buf, boundary)? {
            return Ok((
                attrs,
                Prefixed {
                    prefix: Some(buf.freeze()),
                    rest: body,
                },
            ));
        }
        if buf.len() > ATTRIBUTES_LIMIT {
            return Err(UploadError::TooLong);
        }
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
            }
            _ => return Err(UploadError::Truncated),
        }
    }
}

/// `Ok(None)`: need more bytes.
fn parse_first_part(buf: &[u8], boundary: &str) -> Result<Option<Value>, UploadError> {
    let delim = format!("--{boundary}\r\n");
    if buf.len() < delim.len() {
        return Ok(None);
    }
    // No preamble: the body must open with the first delimiter.
    if !buf.starts_with(delim.as_bytes()) {
        return Err(UploadError::AttributesNotFirst);
    }
    let rest = &buf[delim.len()..];
    let Some(head_end) = find(rest, b"\r\n\r\n") else {
        return if rest.len() > 8 * 1024 { Err(UploadError::TooLong) } else { Ok(None) };
    };
    let head = std::str::from_utf8(&rest[..head_end]).map_err(|_| UploadError::AttributesNotFirst)?;
    if !is_attributes_part(head) {
        return Err(UploadError::AttributesNotFirst);
    }
    let content = &rest[head_end + 4..];
    let close = format!("\r\n--{boundary}");
    let Some(end) = find(content, close.as_bytes()) else {
        return Ok(None);
    };
    let attrs = crate::json::parse_strict(&content[..end]).map_err(|_| UploadError::BadAttributes)?;
    if !attrs.is_object() {
        return Err(UploadError::BadAttributes);
    }
    Ok(Some(attrs))
}

/// The part headers name exactly one form field, `attributes`.
fn is_attributes_part(head: &str) -> bool {
    let mut names = head.split("\r\n").filter_map(|line| {
        let (k, v) = line.split_once(':')?;
        if !k.trim().eq_ignore_ascii_case("content-disposition") {
            return None;
        }
        v.split(';').find_map(|p| {
            let (k, v) = p.trim().split_once('=')?;
            k.eq_ignore_ascii_case("name").then(|| v.trim().trim_matches('"').to_string())
        })
    });
    names.next().as_deref() == Some("attributes") && names.next().is_none()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A body that yields `prefix` first, then everything `rest` yields.
pub struct Prefixed<B> {
    prefix: Option<Bytes>,
    rest: B,
}

impl<B> HttpBody for Prefixed<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        if let Some(p) = self.prefix.take() {
            if !p.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(p))));
            }
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let extra = self.prefix.as_ref().map_or(0, |p| p.len() as u64);
        let inner = self.rest.size_hint();
        let mut h = SizeHint::new();
        h.set_lower(inner.lower() + extra);
        if let Some(u) = inner.upper() {
            h.set_upper(u + extra);
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    fn chunks(parts: &[&[u8]]) -> impl HttpBody<Data = Bytes, Error = std::convert::Infallible> + Unpin + use<> {
        let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> =
            parts.iter().map(|p| Ok(Frame::data(Bytes::copy_from_slice(p)))).collect();
        StreamBody::new(futures_util::stream::iter(frames))
    }

    const BODY: &[u8] = b"--XyZ\r\nContent-Disposition: form-data; name=\"attributes\"\r\n\r\n{\"name\":\"a.txt\",\"parent\":{\"id\":\"111\"}}\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nhello\r\n--XyZ--\r\n";

    #[tokio::test]
    async fn attributes_are_read_across_chunk_splits_and_replayed() {
        for split in [1, 5, 20, 60, 90] {
            let (a, b) = BODY.split_at(split);
            let (attrs, body) = read_attributes(chunks(&[a, b]), "XyZ").await.unwrap();
            assert_eq!(attrs["parent"]["id"], "111");
            let all = body.collect().await.unwrap().to_bytes();
            assert_eq!(&all[..], BODY, "split {split}");
        }
    }

    #[tokio::test]
    async fn file_first_or_duplicate_keys_are_refused() {
        let file_first = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nhi\r\n--XyZ--\r\n";
        assert_eq!(
            read_attributes(chunks(&[file_first]), "XyZ").await.err(),
            Some(UploadError::AttributesNotFirst)
        );
        let dup = b"--XyZ\r\nContent-Disposition: form-data; name=\"attributes\"\r\n\r\n{\"parent\":{\"id\":\"1\"},\"parent\":{\"id\":\"2\"}}\r\n--XyZ--\r\n";
        assert_eq!(read_attributes(chunks(&[dup]), "XyZ").await.err(), Some(UploadError::BadAttributes));
        assert_eq!(read_attributes(chunks(&[&BODY[..30]]), "XyZ").await.err(), Some(UploadError::Truncated));
    }

    #[test]
    fn boundaries_parse_strictly() {
        assert_eq!(boundary("multipart/form-data; boundary=abc").as_deref(), Some("abc"));
        assert_eq!(boundary("multipart/form-data; boundary=\"a b\"").as_deref(), Some("a b"));
        assert_eq!(boundary("multipart/form-data; boundary=a; boundary=b"), None);
        assert_eq!(boundary("application/json"), None);
    }
}
