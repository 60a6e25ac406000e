//! The multipart envelope of an upload, read strictly, without holding the file.
//!
//! Box's upload (`POST /api/2.0/files/content`, `/api/2.0/files/{id}/content`)
//! is `multipart/form-data` with an `attributes` part
//! (`{"name":..,"parent":{"id":..}}`) before the file part, and Box documents
//! that order. The gateway decides on the folder named in `attributes`, so
//! the upstream's multipart parser must find the very same `attributes` part
//! and the very same file part, whatever parser it is. Only the plain form
//! the Box SDKs (box-sdk-gen, boxsdk, box-node-sdk) and UI Elements' uploader
//! send is accepted; everything a second parser could read differently is
//! refused before a byte is forwarded:
//!
//! ```text
//! Content-Type: multipart/form-data; boundary=B      (or boundary="B", no `\`)
//!
//! --B CRLF                                            (no preamble)
//! Content-Disposition: form-data; name="attributes" CRLF
//! [Content-Type: application/json | text/plain [; charset=utf-8] CRLF]
//! CRLF
//! {JSON object, no duplicate keys} CRLF
//! --B CRLF
//! Content-Disposition: form-data; name="N"; filename="F" CRLF
//! [Content-Type: type/subtype[; k=v]... CRLF]
//! CRLF
//! file bytes (holding no LF followed by --B)
//! CRLF --B-- [CRLF]                                   (nothing after)
//! ```
//!
//! Part headers are matched by name case-insensitively, as every parser does;
//! their values are matched exactly as the SDKs write them (lower-case
//! `form-data`, `name` then `filename`, each quoted once, `; ` between): no
//! `filename*`, no `name*`, no second `name`, no escapes, no folded or bare-LF
//! lines, no `Content-Transfer-Encoding`, no other or repeated header. The
//! file part's name is free (box-node-sdk sends `content`, the others `file`)
//! but never `attributes` in any case, and it must carry a non-empty
//! `filename` (Box takes the part with a filename as the file).
//!
//! The gateway reads the two part heads and the attributes (a few hundred
//! bytes, capped at [`ATTRIBUTES_LIMIT`]) plus whatever of the body has
//! already arrived, decides, and forwards what it read followed by the rest
//! of the stream, so a multi-GB upload streams through in constant memory.
//! The rest is watched ([`Guard`]): the first line feed followed by `--B`
//! must be the closing `CRLF--B--`, followed by at most one CRLF and the end
//! of the body. A body that breaks those rules after forwarding began is
//! failed before the offending bytes are sent, so the upstream sees a
//! truncated body; one that had arrived whole is refused with nothing sent.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use serde_json::Value;

use crate::body::BoxError;

mod part;

use part::{header_block, part_head, plain_media_type};

/// The most the gateway reads before it decides: the two part heads and
/// the attributes, plus what of the file has already arrived.
pub const ATTRIBUTES_LIMIT: usize = 64 * 1024;

/// The most one part's header block may hold.
const HEAD_LIMIT: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    #[error("not multipart/form-data with one plain boundary")]
    NotMultipart,
    #[error("the first part of the upload must be `attributes`")]
    AttributesNotFirst,
    #[error("the multipart envelope is not in the plain form: {0}")]
    Envelope(&'static str),
    #[error("the attributes part is not a JSON object without duplicate keys")]
    BadAttributes,
    #[error("the attributes part is too long")]
    TooLong,
    #[error("the body ended or broke before the upload's envelope did")]
    Truncated,
    #[error("the upload has more than its attributes part and one file part")]
    ExtraPart,
}

/// RFC 2046 `bchars` without the space: what a boundary may hold.
fn bchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"'()+_,-./:=?".contains(&b)
}

/// RFC 9110 `tchar`.
fn tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The boundary of a `multipart/form-data` content type: exactly one
/// `boundary` parameter and no other, its value a token or a quoted string
/// without escapes, 1-70 boundary characters (RFC 2046; a space only inside
/// quotes and never last). Anything else is refused: two readers could
/// take another boundary from it.
pub fn boundary(content_type: &str) -> Option<String> {
    let (essence, params) = content_type.split_once(';')?;
    if !essence.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    // Spaces only: a tab here is valid HTTP whitespace, but standard
    // multipart readers (multer, by the `multipart` fuzz target) refuse it.
    let param = params.trim_start_matches(' ');
    let value = param
        .get(..8)
        .filter(|k| k.eq_ignore_ascii_case("boundary"))
        .and(param.get(8..))?
        .strip_prefix('=')?;
    let (b, rest) = match value.strip_prefix('"') {
        Some(q) => {
            let end = q.find('"')?;
            let b = &q[..end];
            if !b.bytes().all(|c| bchar(c) || c == b' ') || b.ends_with(' ') {
                return None;
            }
            (b, &q[end + 1..])
        }
        None => {
            let end = value
                .find(|c: char| !(c.is_ascii() && tchar(c as u8)))
                .unwrap_or(value.len());
            let b = &value[..end];
            if !b.bytes().all(bchar) {
                return None;
            }
            (b, &value[end..])
        }
    };
    // Nothing may follow: no second parameter of any name, and no trailing
    // space (multer refuses one: found by the `multipart` fuzz target).
    if !rest.is_empty() || b.is_empty() || b.len() > 70 {
        return None;
    }
    Some(b.to_string())
}

/// Reads the body up to the start of its file part's bytes, strictly (see
/// the module doc), plus whatever of it has already arrived; returns the
/// attributes and a body that replays what was read and then streams the
/// rest under the [`Guard`].
pub async fn read_attributes<B>(
    mut body: B,
    boundary: &str,
) -> Result<(Value, Prefixed<B>), UploadError>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let mut buf = BytesMut::new();
    let head = loop {
        if let Some(h) = parse_head(&buf, boundary)? {
            break h;
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
    };
    // What has already arrived is judged before anything is sent: a body
    // that came whole (most uploads of a small file) is refused with
    // nothing forwarded. Nothing is waited for, so a large file still
    // streams from its first bytes.
    let mut ended = false;
    while buf.len() < ATTRIBUTES_LIMIT {
        match body.frame().now_or_never() {
            None => break,
            Some(None) => {
                ended = true;
                break;
            }
            Some(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
            }
            Some(Some(Err(_))) => return Err(UploadError::Truncated),
        }
    }
    let mut guard = Guard::new(boundary);
    guard.feed(&buf[head.file_start..])?;
    if ended || body.is_end_stream() {
        ended = true;
        guard.finish()?;
    }
    Ok((
        head.attrs,
        Prefixed {
            prefix: Some(buf.freeze()),
            rest: body,
            guard,
            ended,
        },
    ))
}

/// The checked start of an upload.
struct Head {
    attrs: Value,
    /// Offset of the file part's first byte.
    file_start: usize,
}

/// `Ok(None)`: need more bytes. Otherwise the attributes and the offset
/// where the file part's bytes begin.
fn parse_head(buf: &[u8], boundary: &str) -> Result<Option<Head>, UploadError> {
    let open = format!("--{boundary}\r\n");
    if buf.len() < open.len() {
        return if open.as_bytes().starts_with(buf) {
            Ok(None)
        } else {
            Err(UploadError::Envelope(
                "the body must open with the boundary (no preamble)",
            ))
        };
    }
    if !buf.starts_with(open.as_bytes()) {
        return Err(UploadError::Envelope(
            "the body must open with the boundary (no preamble)",
        ));
    }
    let mut at = open.len();
    let Some((block, len)) = header_block(&buf[at..])? else {
        return Ok(None);
    };
    let attrs_head = part_head(block)?;
    if attrs_head.name != "attributes" {
        return Err(UploadError::AttributesNotFirst);
    }
    if attrs_head.filename.is_some() {
        return Err(UploadError::Envelope(
            "the attributes part must not have a filename",
        ));
    }
    if let Some(ct) = attrs_head.content_type
        && ![
            "application/json",
            "text/plain",
            "application/json; charset=utf-8",
            "text/plain; charset=utf-8",
        ]
        .iter()
        .any(|ok| ct.eq_ignore_ascii_case(ok))
    {
        return Err(UploadError::Envelope(
            "the attributes part's Content-Type must be application/json or text/plain in UTF-8",
        ));
    }
    at += len;
    // The attributes end at the first LF followed by the dash-boundary:
    // where a parser that also takes bare LFs would end them too.
    let lf_delim = format!("\n--{boundary}");
    let content = &buf[at..];
    let Some(end) = find(content, lf_delim.as_bytes()) else {
        return Ok(None);
    };
    if end == 0 || content[end - 1] != b'\r' {
        return Err(UploadError::Envelope(
            "a boundary must follow CRLF, not a bare LF",
        ));
    }
    let attrs =
        crate::json::parse_strict(&content[..end - 1]).map_err(|_| UploadError::BadAttributes)?;
    if !attrs.is_object() {
        return Err(UploadError::BadAttributes);
    }
    at += end + lf_delim.len();
    let Some(after) = buf.get(at..at + 2) else {
        return Ok(None);
    };
    match after {
        b"\r\n" => {}
        b"--" => {
            return Err(UploadError::Envelope("the upload has no file part"));
        }
        _ => {
            return Err(UploadError::Envelope(
                "a boundary must be followed by CRLF or `--` at once",
            ));
        }
    }
    at += 2;
    let Some((block, len)) = header_block(&buf[at..])? else {
        return Ok(None);
    };
    let file = part_head(block)?;
    if file.name.eq_ignore_ascii_case("attributes") {
        return Err(UploadError::ExtraPart);
    }
    if file.filename.is_none() {
        return Err(UploadError::Envelope("the file part must have a filename"));
    }
    if let Some(ct) = file.content_type {
        plain_media_type(ct)?;
    }
    Ok(Some(Head {
        attrs,
        file_start: at + len,
    }))
}

/// A KMP matcher of one needle over bytes that arrive in chunks split anywhere.
#[derive(Debug)]
struct Matcher {
    needle: Vec<u8>,
    fail: Vec<usize>,
    matched: usize,
}

impl Matcher {
    fn new(needle: Vec<u8>) -> Matcher {
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
        Matcher {
            needle,
            fail,
            matched: 0,
        }
    }

    /// Takes one byte; true when it completes the needle.
    fn step(&mut self, b: u8) -> bool {
        while self.matched > 0 && self.needle[self.matched] != b {
            self.matched = self.fail[self.matched - 1];
        }
        if self.needle[self.matched] == b {
            self.matched += 1;
        }
        if self.matched == self.needle.len() {
            self.matched = self.fail[self.matched - 1];
            return true;
        }
        false
    }
}

/// Where the guard is in the tail of the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tail {
    /// In the file's bytes.
    File,
    /// After `CRLF--B`: `n` of the two closing dashes seen.
    Close(u8),
    /// After `--B--`: `n` bytes of the one optional CRLF seen.
    Epilogue(u8),
}

/// Watches the file part's bytes and what follows. The first LF followed
/// by `--B` ends the file, as it would for a parser that also takes bare-LF
/// delimiters; it must be preceded by CR and followed by `--`, at most one
/// CRLF and the end of the body.
#[derive(Debug)]
struct Guard {
    lf: Matcher,
    crlf: Matcher,
    tail: Tail,
}

impl Guard {
    fn new(boundary: &str) -> Guard {
        let mut lf = Matcher::new([b"\n--".as_slice(), boundary.as_bytes()].concat());
        // The LF of the part head's blank line counts for a lenient parser:
        // `--B` at once, with no CRLF of its own, is refused.
        lf.step(b'\n');
        Guard {
            lf,
            crlf: Matcher::new([b"\r\n--".as_slice(), boundary.as_bytes()].concat()),
            tail: Tail::File,
        }
    }

    /// The next bytes of the body; `Err` at the first byte that breaks the
    /// plain form.
    fn feed(&mut self, data: &[u8]) -> Result<(), UploadError> {
        for &b in data {
            self.tail = match self.tail {
                Tail::File => {
                    let crlf = self.crlf.step(b);
                    if self.lf.step(b) {
                        if !crlf {
                            return Err(UploadError::Envelope(
                                "a boundary must follow CRLF, not a bare LF",
                            ));
                        }
                        Tail::Close(0)
                    } else {
                        Tail::File
                    }
                }
                Tail::Close(n) => match b {
                    b'-' if n == 0 => Tail::Close(1),
                    b'-' => Tail::Epilogue(0),
                    b'\r' if n == 0 => return Err(UploadError::ExtraPart),
                    _ => {
                        return Err(UploadError::Envelope(
                            "a boundary must be followed by CRLF or `--` at once",
                        ));
                    }
                },
                Tail::Epilogue(0) if b == b'\r' => Tail::Epilogue(1),
                Tail::Epilogue(1) if b == b'\n' => Tail::Epilogue(2),
                Tail::Epilogue(_) => {
                    return Err(UploadError::Envelope(
                        "nothing but one CRLF may follow the closing boundary",
                    ));
                }
            };
        }
        Ok(())
    }

    /// The body ended: it must have closed.
    fn finish(&self) -> Result<(), UploadError> {
        match self.tail {
            Tail::Epilogue(0 | 2) => Ok(()),
            _ => Err(UploadError::Truncated),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A body that yields `prefix` first, then everything `rest` yields, and
/// fails instead of yielding a chunk that breaks the plain form (or ending
/// a body that never closed).
pub struct Prefixed<B> {
    prefix: Option<Bytes>,
    rest: B,
    guard: Guard,
    /// `rest` has ended (and the guard has seen the whole body).
    ended: bool,
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
        if self.ended {
            return Poll::Ready(None);
        }
        let frame = match Pin::new(&mut self.rest).poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => f,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => {
                self.ended = true;
                return Poll::Ready(
                    self.guard
                        .finish()
                        .err()
                        .map(|e| Err(Box::new(e) as BoxError)),
                );
            }
            Poll::Pending => return Poll::Pending,
        };
        if let Some(data) = frame.data_ref()
            && let Err(e) = self.guard.feed(data)
        {
            return Poll::Ready(Some(Err(Box::new(e))));
        }
        // The last frame is checked for a proper close before it goes: a
        // forwarder may not poll again once the body says it has ended.
        if self.rest.is_end_stream() {
            self.ended = true;
            if let Err(e) = self.guard.finish() {
                return Poll::Ready(Some(Err(Box::new(e))));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && (self.ended || self.rest.is_end_stream())
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
        for split in 1..BODY.len() {
            let (a, b) = BODY.split_at(split);
            let (attrs, body) = read_attributes(chunks(&[a, b]), "XyZ").await.unwrap();
            assert_eq!(attrs["parent"]["id"], "111");
            let all = body.collect().await.unwrap().to_bytes();
            assert_eq!(&all[..], BODY, "split {split}");
        }
    }

    #[tokio::test]
    async fn file_first_or_duplicate_keys_are_refused() {
        let file_first = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\nhi\r\n--XyZ--\r\n";
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

    /// A body of these `(name, filename, content)` parts, then the close.
    fn parts(p: &[(&str, Option<&str>, &str)]) -> Vec<u8> {
        let mut v = Vec::new();
        for (name, filename, content) in p {
            let f = filename
                .map(|f| format!("; filename=\"{f}\""))
                .unwrap_or_default();
            v.extend_from_slice(
                format!(
                    "--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"{f}\r\n\r\n{content}\r\n"
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

    const A: &str = r#"{"parent":{"id":"1"}}"#;
    const EVIL: &str = r#"{"parent":{"id":"2"}}"#;

    #[tokio::test]
    async fn parts_after_the_file_part_are_refused_wherever_the_chunks_split() {
        let refused = [
            parts(&[
                ("attributes", None, A),
                ("attributes", None, EVIL),
                ("file", Some("f"), "x"),
            ]),
            parts(&[
                ("attributes", None, A),
                ("file", Some("f"), "x"),
                ("attributes", None, EVIL),
                ("file", Some("f"), "y"),
            ]),
            parts(&[
                ("attributes", None, A),
                ("file", Some("f"), "x"),
                ("other", None, "z"),
            ]),
            // A bare-LF delimiter some parsers accept.
            [
                parts(&[("attributes", None, A), ("file", Some("f"), "x")]),
                b"\n--XyZ\r\n".to_vec(),
            ]
            .concat(),
            // No file part at all.
            parts(&[("attributes", None, A)]),
            // Bytes after the close.
            [
                parts(&[("attributes", None, A), ("file", Some("f"), "x")]),
                b"x".to_vec(),
            ]
            .concat(),
            // Never closed.
            parts(&[("attributes", None, A), ("file", Some("f"), "x")])[..130].to_vec(),
        ];
        for body in &refused {
            for split in 1..body.len() {
                let r = replay(body, split).await;
                assert!(
                    r.is_err(),
                    "split {split}: {}",
                    String::from_utf8_lossy(body)
                );
            }
        }
        // Box's shape passes whole, however it is split, also when the file
        // holds dashes and line feeds that are not a delimiter, and without
        // the final CRLF.
        let ok = parts(&[
            ("attributes", None, A),
            ("file", Some("f"), "a\r\n--XyY\r\n-\n-Xy\n-"),
        ]);
        let short = &ok[..ok.len() - 2];
        for body in [&ok[..], short] {
            for split in 1..body.len() {
                assert_eq!(
                    replay(body, split).await.as_deref(),
                    Ok(body),
                    "split {split}"
                );
            }
        }
    }

    /// One hostile spelling per line: the part heads and framing a second
    /// parser could read differently.
    #[tokio::test]
    async fn only_the_plain_envelope_is_accepted() {
        let file = "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\nx\r\n--XyZ--\r\n";
        let with_attrs_head =
            |head: &str| format!("--XyZ\r\n{head}\r\n\r\n{A}\r\n{file}").into_bytes();
        let refused_heads = [
            "Content-Disposition: form-data; name=\"attributes\"; filename=\"a.json\"",
            "Content-Disposition: form-data; name=\"attributes\"\r\nContent-Transfer-Encoding: base64",
            "Content-Disposition: form-data; name=\"attributes\"\r\nContent-Transfer-Encoding: 8bit",
            "Content-Disposition: form-data; name=\"other\"; name=\"attributes\"",
            "Content-Disposition: form-data; name=\"attributes\"; name=\"other\"",
            "Content-Disposition: form-data; name*=utf-8''attributes",
            "Content-Disposition: form-data; name=attributes",
            "Content-Disposition: form-data; name=\"attri\\butes\"",
            "Content-Disposition: form-data; name=\"attributes\"\r\nContent-Disposition: form-data; name=\"x\"",
            "Content-Disposition: form-data;\r\n name=\"attributes\"",
            "Content-Disposition: Form-Data; name=\"attributes\"",
            "Content-Disposition: form-data; NAME=\"attributes\"",
            "Content-Disposition: form-data;name=\"attributes\"",
            "Content-Disposition : form-data; name=\"attributes\"",
            "Content-Disposition: form-data; name=\"attributes\"\r\nX-Other: 1",
            "Content-Disposition: form-data; name=\"attributes\"\r\nContent-Type: application/json; charset=utf-16",
            "Content-Disposition: form-data; name=\"attributes\"\r\nContent-Type: application/json\r\nContent-Type: text/plain",
            "Content-Disposition: form-data; name=\"attributes\"\nX: 1",
            "Content-Disposition: form-data; name=\"attribute%73\"",
        ];
        for head in refused_heads {
            let body = with_attrs_head(head);
            assert!(replay(&body, body.len()).await.is_err(), "{head:?}");
        }
        let accepted_heads = [
            "Content-Disposition: form-data; name=\"attributes\"",
            "content-disposition: form-data; name=\"attributes\"",
            "Content-Disposition: form-data; name=\"attributes\"\r\nContent-Type: application/json",
        ];
        for head in accepted_heads {
            let body = with_attrs_head(head);
            assert!(replay(&body, body.len()).await.is_ok(), "{head:?}");
        }
        let attrs =
            format!("--XyZ\r\nContent-Disposition: form-data; name=\"attributes\"\r\n\r\n{A}\r\n");
        let with_file_head =
            |head: &str| format!("{attrs}--XyZ\r\n{head}\r\n\r\nx\r\n--XyZ--\r\n").into_bytes();
        let refused_file_heads = [
            "Content-Disposition: form-data; name=\"file\"",
            "Content-Disposition: form-data; name=\"file\"; filename=\"\"",
            "Content-Disposition: form-data; name=\"file\"; filename*=utf-8''f",
            "Content-Disposition: form-data; name=\"file\"; filename=\"f\"; filename*=utf-8''g",
            "Content-Disposition: form-data; name=\"Attributes\"; filename=\"f\"",
            "Content-Disposition: form-data; name=\"file\"; filename=\"a\\\"b\"",
            "Content-Disposition: form-data; name=\"file\"; filename=\"f\"\r\nContent-Transfer-Encoding: base64",
            "Content-Disposition: form-data; name=\"file\"; filename=\"f\"\r\nContent-Type: multipart/mixed; boundary=Q",
        ];
        for head in refused_file_heads {
            let body = with_file_head(head);
            assert!(replay(&body, body.len()).await.is_err(), "{head:?}");
        }
        for head in [
            "Content-Disposition: form-data; name=\"file\"; filename=\"f\"\r\nContent-Type: application/octet-stream",
            "Content-Disposition: form-data; name=\"content\"; filename=\"unused\"",
            "Content-Disposition: form-data; name=\"file\"; filename=\"résumé 50%.pdf\"",
        ] {
            let body = with_file_head(head);
            assert!(replay(&body, body.len()).await.is_ok(), "{head:?}");
        }
        // Framing: preamble, LF-only, padding after a boundary, the close
        // right after the head's blank line.
        for body in [
            format!("preamble\r\n{attrs}{}", &file).into_bytes(),
            format!("\r\n{attrs}{}", &file).into_bytes(),
            format!("{attrs}{file}").replace("\r\n", "\n").into_bytes(),
            format!("{attrs}--XyZ \r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\nx\r\n--XyZ--\r\n").into_bytes(),
            format!("{attrs}--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\n--XyZ--\r\n").into_bytes(),
            format!("{attrs}--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\nx\r\n--XyZ--\r\n\r\n").into_bytes(),
        ] {
            assert!(replay(&body, body.len()).await.is_err(), "{}", String::from_utf8_lossy(&body));
        }
    }

    #[test]
    fn boundaries_parse_strictly() {
        for (ct, b) in [
            ("multipart/form-data; boundary=abc", "abc"),
            ("multipart/form-data;boundary=abc", "abc"),
            ("Multipart/Form-Data; Boundary=abc", "abc"),
            ("multipart/form-data; boundary=\"a b\"", "a b"),
            ("multipart/form-data; boundary=\"a:b\"", "a:b"),
            (
                "multipart/form-data; boundary=--------------------------123456789012345678901234",
                "--------------------------123456789012345678901234",
            ),
        ] {
            assert_eq!(boundary(ct).as_deref(), Some(b), "{ct}");
        }
        for ct in [
            "multipart/form-data; boundary=a; boundary=b",
            "multipart/form-data;\t boundary=\"a:b\"",
            "multipart/form-data;\tboundary=a",
            "multipart/form-data; boundary=a\t",
            "multipart/form-data; boundary=a ",
            "multipart/form-data; boundary=\"a\" ",
            "multipart/form-data; boundary=\"a\\\"b\"",
            "multipart/form-data; boundary=\"a\\b\"",
            "multipart/form-data; boundary=\"a b \"",
            "multipart/form-data; boundary=a:b",
            "multipart/form-data; boundary = a",
            "multipart/form-data; boundary=",
            "multipart/form-data; boundary=\"\"",
            "multipart/form-data; charset=utf-8; boundary=a",
            "multipart/form-data; boundary=a; charset=utf-8",
            "multipart/form-data; boundary=a\"b\"",
            "multipart/form-data; boundary*=a",
            "multipart/form-data",
            "multipart/mixed; boundary=a",
            "application/json",
        ] {
            assert_eq!(boundary(ct), None, "{ct}");
        }
        assert_eq!(
            boundary(&format!("multipart/form-data; boundary={}", "a".repeat(71))),
            None
        );
    }
}
