//! Finding the target folder of a multipart upload without holding the file.
//!
//! Box's upload (`POST /api/2.0/files/content`) is multipart with an
//! `attributes` part (`{"name":..,"parent":{"id":..}}`) before the `file`
//! part, and Box documents that order. The gateway reads only up to the end
//! of that first part (a few hundred bytes, capped), decides, and forwards
//! what it read followed by the rest of the stream, so a multi-GB upload
//! streams through in constant memory. A body whose first part is not
//! `attributes` is refused rather than buffered.
//!
//! The checked `attributes` part must also be the only one: a multipart
//! parser upstream may take a later `attributes` part (or a second `file`
//! part with new attributes before it) as the real destination. So the
//! stream after the checked part is watched ([`Guard`]): one more part (the
//! file), then the close delimiter, and nothing else; anything more fails the
//! body before the bytes that would start another part are sent on.

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
    #[error("the upload has parts after its file part")]
    ExtraPart,
}

/// The boundary of a `multipart/form-data` content type. Ambiguous forms
/// (two boundary parameters, an empty or over-long one) are refused.
pub fn boundary(content_type: &str) -> Option<String> {
    let mut parts = content_type.split(';');
    if !parts
        .next()?
        .trim()
        .eq_ignore_ascii_case("multipart/form-data")
    {
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
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            found = Some(v.to_string());
        }
    }
    found.filter(|b| !b.is_empty() && b.len() <= 70 && !b.contains(['\r', '\n']))
}

/// Reads the body up to the end of its first part, which must be
/// `attributes`; returns the parsed attributes and a body that replays what
/// was read and then streams the rest.
pub async fn read_attributes<B>(
    mut body: B,
    boundary: &str,
) -> Result<(Value, Prefixed<B>), UploadError>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let mut buf = BytesMut::new();
    loop {
        if let Some((attrs, end)) = parse_first_part(&buf, boundary)? {
            // What was read past the attributes part is checked now, so a
            // small body with extra parts is refused before anything is sent.
            let mut guard = Guard::new(boundary);
            guard.feed(&buf[end..])?;
            return Ok((
                attrs,
                Prefixed {
                    prefix: Some(buf.freeze()),
                    rest: body,
                    guard,
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

/// `Ok(None)`: need more bytes. Otherwise the attributes and the offset of
/// the delimiter that ends their part.
fn parse_first_part(buf: &[u8], boundary: &str) -> Result<Option<(Value, usize)>, UploadError> {
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
        return if rest.len() > 8 * 1024 {
            Err(UploadError::TooLong)
        } else {
            Ok(None)
        };
    };
    let head =
        std::str::from_utf8(&rest[..head_end]).map_err(|_| UploadError::AttributesNotFirst)?;
    if !is_attributes_part(head) {
        return Err(UploadError::AttributesNotFirst);
    }
    let content = &rest[head_end + 4..];
    let close = format!("\r\n--{boundary}");
    let Some(end) = find(content, close.as_bytes()) else {
        return Ok(None);
    };
    let attrs =
        crate::json::parse_strict(&content[..end]).map_err(|_| UploadError::BadAttributes)?;
    if !attrs.is_object() {
        return Err(UploadError::BadAttributes);
    }
    Ok(Some((attrs, delim.len() + head_end + 4 + end)))
}

/// Watches the body from the delimiter that ends the checked `attributes`
/// part: that delimiter opens the file part, the next one must close the
/// body (`--boundary--`), and no delimiter may follow. A delimiter is
/// matched from its line feed (`\n--boundary`), so a parser that also takes
/// bare-LF delimiters cannot be led past it.
#[derive(Debug)]
struct Guard {
    needle: Vec<u8>,
    /// KMP failure table of `needle`: bytes arrive in chunks split anywhere.
    fail: Vec<usize>,
    matched: usize,
    delimiters: usize,
    /// `-` bytes still required right after the closing delimiter.
    close: usize,
}

impl Guard {
    fn new(boundary: &str) -> Guard {
        let needle: Vec<u8> = [b"\n--".as_slice(), boundary.as_bytes()].concat();
        let mut fail = vec![0; needle.len()];
        let mut k = 0;
        for i in 1..needle.len() {
            while k > 0 && needle[i] != needle[k] {
                k = fail[k - 1];
            }
            if needle[i] == needle[k] {
                k += 1;
            }
            fail[i] = k;
        }
        Guard {
            needle,
            fail,
            matched: 0,
            delimiters: 0,
            close: 0,
        }
    }

    /// The next bytes of the body; `Err` once they start a part beyond the
    /// file part (or put anything but `--` after the second delimiter).
    fn feed(&mut self, data: &[u8]) -> Result<(), UploadError> {
        for &b in data {
            if self.close > 0 {
                if b != b'-' {
                    return Err(UploadError::ExtraPart);
                }
                self.close -= 1;
                continue;
            }
            while self.matched > 0 && self.needle[self.matched] != b {
                self.matched = self.fail[self.matched - 1];
            }
            if self.needle[self.matched] == b {
                self.matched += 1;
            }
            if self.matched == self.needle.len() {
                self.matched = self.fail[self.matched - 1];
                self.delimiters += 1;
                match self.delimiters {
                    1 => {}
                    2 => self.close = 2,
                    _ => return Err(UploadError::ExtraPart),
                }
            }
        }
        Ok(())
    }
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
            k.eq_ignore_ascii_case("name")
                .then(|| v.trim().trim_matches('"').to_string())
        })
    });
    names.next().as_deref() == Some("attributes") && names.next().is_none()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A body that yields `prefix` first, then everything `rest` yields, and
/// fails instead of yielding a chunk that would start an unchecked part.
pub struct Prefixed<B> {
    prefix: Option<Bytes>,
    rest: B,
    guard: Guard,
}

impl<B> HttpBody for Prefixed<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(p) = self.prefix.take()
            && !p.is_empty()
        {
            return Poll::Ready(Some(Ok(Frame::data(p))));
        }
        let frame = match Pin::new(&mut self.rest).poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => f,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
            other => return other.map(|o| o.map(|r| r.map_err(Into::into))),
        };
        if let Some(data) = frame.data_ref()
            && let Err(e) = self.guard.feed(data)
        {
            return Poll::Ready(Some(Err(Box::new(e))));
        }
        Poll::Ready(Some(Ok(frame)))
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

    fn chunks(
        parts: &[&[u8]],
    ) -> impl HttpBody<Data = Bytes, Error = std::convert::Infallible> + Unpin + use<> {
        let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = parts
            .iter()
            .map(|p| Ok(Frame::data(Bytes::copy_from_slice(p))))
            .collect();
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
        let file_first =
            b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nhi\r\n--XyZ--\r\n";
        assert_eq!(
            read_attributes(chunks(&[file_first]), "XyZ").await.err(),
            Some(UploadError::AttributesNotFirst)
        );
        let dup = b"--XyZ\r\nContent-Disposition: form-data; name=\"attributes\"\r\n\r\n{\"parent\":{\"id\":\"1\"},\"parent\":{\"id\":\"2\"}}\r\n--XyZ--\r\n";
        assert_eq!(
            read_attributes(chunks(&[dup]), "XyZ").await.err(),
            Some(UploadError::BadAttributes)
        );
        assert_eq!(
            read_attributes(chunks(&[&BODY[..30]]), "XyZ").await.err(),
            Some(UploadError::Truncated)
        );
    }

    /// A body of these parts (the first must be `attributes`), then close.
    fn parts(p: &[(&str, &str)]) -> Vec<u8> {
        let mut v = Vec::new();
        for (name, content) in p {
            v.extend_from_slice(
                format!(
                    "--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{content}\r\n"
                )
                .as_bytes(),
            );
        }
        v.extend_from_slice(b"--XyZ--\r\n");
        v
    }

    /// Reads the attributes from `body` split at `split`, then the rest.
    async fn replay(body: &[u8], split: usize) -> Result<Bytes, String> {
        let (a, b) = body.split_at(split.min(body.len()));
        let (_, rest) = read_attributes(chunks(&[a, b]), "XyZ")
            .await
            .map_err(|e| e.to_string())?;
        rest.collect()
            .await
            .map(|c| c.to_bytes())
            .map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn parts_after_the_file_part_are_refused_wherever_the_chunks_split() {
        let attrs = r#"{"parent":{"id":"1"}}"#;
        let evil = r#"{"parent":{"id":"2"}}"#;
        let refused = [
            parts(&[("attributes", attrs), ("attributes", evil), ("file", "x")]),
            parts(&[
                ("attributes", attrs),
                ("file", "x"),
                ("attributes", evil),
                ("file", "y"),
            ]),
            parts(&[("attributes", attrs), ("file", "x"), ("other", "z")]),
            // A bare-LF delimiter some parsers accept.
            [
                parts(&[("attributes", attrs), ("file", "x")]),
                b"\n--XyZ\r\n".to_vec(),
            ]
            .concat(),
        ];
        for body in &refused {
            for split in (60..body.len()).step_by(7) {
                let r = replay(body, split).await;
                assert!(
                    r.is_err(),
                    "split {split}: {}",
                    String::from_utf8_lossy(body)
                );
            }
        }
        // Box's shape passes whole, however it is split, also when the file
        // holds dashes and line feeds that are not a delimiter.
        let ok = parts(&[("attributes", attrs), ("file", "a\n--XyY\r\n--Xy\n-")]);
        for split in 60..ok.len() {
            assert_eq!(
                replay(&ok, split).await.as_deref(),
                Ok(&ok[..]),
                "split {split}"
            );
        }
        // Nothing but the attributes part is fine too (the upstream refuses it).
        let only = parts(&[("attributes", attrs)]);
        assert_eq!(replay(&only, 60).await.as_deref(), Ok(&only[..]));
    }

    #[test]
    fn boundaries_parse_strictly() {
        assert_eq!(
            boundary("multipart/form-data; boundary=abc").as_deref(),
            Some("abc")
        );
        assert_eq!(
            boundary("multipart/form-data; boundary=\"a b\"").as_deref(),
            Some("a b")
        );
        assert_eq!(
            boundary("multipart/form-data; boundary=a; boundary=b"),
            None
        );
        assert_eq!(boundary("application/json"), None);
    }
}
