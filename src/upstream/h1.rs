//! A lean HTTP/1.1 exchange for proxied requests without a body (most API
//! calls). The task that serves the client writes the request and reads the
//! answer itself, on a connection the pool owns, instead of handing both
//! through hyper's client connection task and its channels (a task switch,
//! a dispatch queue, a oneshot and a body channel per request).
//!
//! Only the framing is ours; heads are parsed by `httparse`, hyper's own
//! parser. The framing follows RFC 9112 6.3, and every doubtful case fails
//! closed: an answer whose length cannot be told for certain (two different
//! `Content-Length`s, `Transfer-Encoding` together with `Content-Length`,
//! `chunked` anywhere but last) is an error, one without a length is read
//! to the end of the connection, and a connection is used again only when
//! its answer ended exactly where its framing said, with nothing after it.
//! A connection that might hold a stray byte of one answer never carries
//! another client's request. Trailers of a chunked answer are read and
//! dropped. `chunked` is the only transfer coding accepted: another one
//! (`gzip, chunked`) would reach the client still encoded with no header
//! naming the coding, so such an answer is refused (502). A list of equal
//! `Content-Length`s (`5, 5`) is passed on as the one value it means
//! (RFC 9110 8.6).
//!
//! A request goes out a second time (on a fresh connection) only as RFC
//! 9110 9.2.2 allows: when not a byte of it was written, or when it is
//! idempotent and its pooled connection closed before a byte of answer.
//!
//! Requests with a body (uploads) and HTTP/2 upstreams keep hyper's client.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Version, header};
use hyper_rustls::MaybeHttpsStream;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use super::pool::Pool;
use super::watch::Stall;

/// An upstream connection, plain or TLS, as the connector makes it; boxed,
/// since a TLS stream is over a kilobyte and a connection moves in and out
/// of the pool on every request.
pub(super) type Stream = Box<MaybeHttpsStream<TokioIo<TcpStream>>>;

/// An answer's head larger than this is refused.
const MAX_HEAD: usize = 64 * 1024;
/// Header fields per answer head.
const MAX_HEADERS: usize = 128;
/// Informational (1xx) answers accepted before the final one.
const MAX_INFORMATIONAL: usize = 8;
/// Room made in the read buffer before each read.
const READ_CHUNK: usize = 16 * 1024;
/// A chunk-size line (with extensions) or a trailer line longer than this is refused.
const MAX_LINE: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum H1Error {
    #[error("upstream connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("upstream closed the connection mid-answer")]
    Closed,
    #[error("upstream answer malformed: {0}")]
    Malformed(&'static str),
    #[error("upstream answer body stalled")]
    Stalled,
}

/// An HTTP/1.1 connection to the upstream and what has been read of it.
pub(super) struct Conn {
    io: TokioIo<Stream>,
    /// Bytes read and not consumed yet: empty between exchanges.
    buf: BytesMut,
    /// A byte of this exchange's answer has arrived: the request was received.
    received: bool,
    /// The pool's count of this origin's connections: freed with the connection.
    _permit: OwnedSemaphorePermit,
}

/// Why an exchange gave no answer.
pub(super) enum Failed {
    /// The request may not have reached the upstream (the write failed, or
    /// a pooled connection closed before a byte of answer came back to a
    /// safe request): it can go out again on a fresh connection.
    Retry(H1Error),
    Final(H1Error),
}

impl Conn {
    pub(super) fn new(io: Stream, permit: OwnedSemaphorePermit) -> Conn {
        Conn {
            io: TokioIo::new(io),
            buf: BytesMut::new(),
            received: false,
            _permit: permit,
        }
    }

    /// Whether an idle connection can carry a request: the upstream has not
    /// closed it, nor sent anything unasked. Only looks at what the socket
    /// already holds: the common case is no data, and no system call.
    pub(super) fn is_idle_usable(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut byte = [0u8; 1];
        let mut rb = ReadBuf::new(&mut byte);
        // Ready means an end of stream, an error, or bytes nobody asked for.
        Pin::new(&mut self.io)
            .poll_read(&mut cx, &mut rb)
            .is_pending()
    }

    /// Sends `head` (a complete request head, no body) and reads the final
    /// answer's head. `pooled`: the connection has carried requests before.
    pub(super) async fn exchange(
        mut self,
        head: &[u8],
        method: &Method,
        pooled: bool,
        pool: &Arc<Pool>,
    ) -> Result<Response<H1Body>, Failed> {
        // RFC 9110 9.2.2: what may have been received goes out again only
        // when it is idempotent, and only after a pooled connection failed
        // (a fresh one failing says the upstream is unwell, not the pool).
        let again = |e| match pooled && method.is_idempotent() {
            true => Failed::Retry(e),
            false => Failed::Final(e),
        };
        self.received = false;
        match self.write(head).await {
            Ok(()) => {}
            // Not a byte went out: proven unsent, whatever the method.
            Err((0, e)) => return Err(Failed::Retry(e.into())),
            Err((_, e)) => return Err(again(e.into())),
        }
        let (parts, framing, reusable) = match self.read_head(method).await {
            Ok(h) => h,
            Err(e @ (H1Error::Closed | H1Error::Io(_))) if !self.received => {
                return Err(again(e));
            }
            Err(e) => return Err(Failed::Final(e)),
        };
        let mut body = H1Body {
            conn: Some(self),
            framing,
            reusable,
            pool: pool.clone(),
            stall: Stall::default(),
        };
        // A body already complete (no body, or all of it read with the
        // head) hands the connection back now, not when it is next polled.
        if body.is_done() {
            body.finish();
        }
        Ok(Response::from_parts(parts, body))
    }

    /// Writes all of `head`; on failure, how many bytes the socket took.
    async fn write(&mut self, head: &[u8]) -> Result<(), (usize, std::io::Error)> {
        let mut sent = 0;
        while sent < head.len() {
            match self.io.write(&head[sent..]).await {
                Ok(0) => return Err((sent, std::io::ErrorKind::WriteZero.into())),
                Ok(n) => sent += n,
                Err(e) => return Err((sent, e)),
            }
        }
        self.io.flush().await.map_err(|e| (sent, e))
    }

    /// Reads once more into the buffer; 0 is the end of the stream.
    async fn read_more(&mut self) -> Result<usize, H1Error> {
        self.buf.reserve(READ_CHUNK);
        let n = self.io.read_buf(&mut self.buf).await?;
        self.received |= n > 0;
        Ok(n)
    }

    /// The final answer's head, how its body is framed, and whether the
    /// connection may carry another request after it.
    async fn read_head(
        &mut self,
        method: &Method,
    ) -> Result<(http::response::Parts, Framing, bool), H1Error> {
        let mut informational = 0;
        loop {
            if let Some(head) = parse_head(&mut self.buf)? {
                let (mut parts, keep_alive) = head;
                if parts.status.is_informational() {
                    // 101 would switch protocols, which the gateway does not do.
                    if parts.status == StatusCode::SWITCHING_PROTOCOLS {
                        return Err(H1Error::Malformed("an unrequested protocol switch"));
                    }
                    informational += 1;
                    if informational > MAX_INFORMATIONAL {
                        return Err(H1Error::Malformed("too many informational answers"));
                    }
                    continue;
                }
                let framing = framing(method, parts.status, &parts.headers)?;
                one_content_length(&mut parts.headers);
                let reusable = keep_alive && !matches!(framing, Framing::UntilClose);
                return Ok((parts, framing, reusable));
            }
            if self.buf.len() >= MAX_HEAD {
                return Err(H1Error::Malformed("answer head too large"));
            }
            if self.read_more().await? == 0 {
                return Err(H1Error::Closed);
            }
        }
    }
}

/// Parses one head off the buffer if it is all there. The header values
/// share the buffer's bytes instead of being copied.
pub(super) fn parse_head(
    buf: &mut BytesMut,
) -> Result<Option<(http::response::Parts, bool)>, H1Error> {
    if buf.is_empty() {
        return Ok(None);
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut r = httparse::Response::new(&mut headers);
    let len = match r.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(H1Error::Malformed("too many header fields"));
        }
        Err(_) => return Err(H1Error::Malformed("not an HTTP/1.1 answer head")),
    };
    let status = r
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or(H1Error::Malformed("bad status code"))?;
    let version = match r.version {
        Some(1) => Version::HTTP_11,
        Some(0) => Version::HTTP_10,
        _ => return Err(H1Error::Malformed("bad HTTP version")),
    };
    // Where each field sits in the buffer, so the values can be sliced
    // out of it once it is frozen.
    let base = buf.as_ptr() as usize;
    let mut spans = [(0usize, 0usize, 0usize, 0usize); MAX_HEADERS];
    let n = r.headers.len();
    for (span, h) in spans.iter_mut().zip(r.headers.iter()) {
        *span = (
            h.name.as_ptr() as usize - base,
            h.name.len(),
            h.value.as_ptr() as usize - base,
            h.value.len(),
        );
    }
    let head = buf.split_to(len).freeze();
    let mut map = HeaderMap::with_capacity(n);
    for &(name_at, name_len, value_at, value_len) in &spans[..n] {
        let name = HeaderName::from_bytes(&head[name_at..name_at + name_len])
            .map_err(|_| H1Error::Malformed("bad header name"))?;
        let value = HeaderValue::from_maybe_shared(head.slice(value_at..value_at + value_len))
            .map_err(|_| H1Error::Malformed("bad header value"))?;
        map.append(name, value);
    }
    let keep_alive = version == Version::HTTP_11 && !has_token(&map, header::CONNECTION, "close");
    let mut parts = Response::new(()).into_parts().0;
    parts.status = status;
    parts.version = version;
    parts.headers = map;
    Ok(Some((parts, keep_alive)))
}

/// Whether any element of `name`'s list is `token` (case-insensitive).
fn has_token(h: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    crate::headers::list_elements(h, name).any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
}

/// How an answer's body is delimited (RFC 9112 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body: the answer to HEAD, a 204 or a 304.
    Empty,
    /// `Content-Length`: this many bytes left.
    Length(u64),
    Chunked(Chunked),
    /// No length given: the body runs to the end of the connection.
    UntilClose,
}

pub(super) fn framing(
    method: &Method,
    status: StatusCode,
    h: &HeaderMap,
) -> Result<Framing, H1Error> {
    // Checked whatever the status: a `Content-Length` is passed on (as one
    // value, see [`one_content_length`]) even where it frames nothing.
    let length = content_length(h)?;
    if method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Empty);
    }
    let te = h.contains_key(header::TRANSFER_ENCODING);
    if te && length.is_some() {
        // RFC 9112 6.3 item 3: a sign of smuggling; never guess which one counts.
        return Err(H1Error::Malformed(
            "both Transfer-Encoding and Content-Length",
        ));
    }
    if te {
        // `chunked` alone. Any other coding (`gzip, chunked`) would reach
        // the client still applied, with no header naming it once the
        // hop-by-hop `Transfer-Encoding` is dropped: refused, not guessed.
        let mut codings =
            crate::headers::list_elements(h, header::TRANSFER_ENCODING).filter(|c| !c.is_empty());
        return match (codings.next(), codings.next()) {
            (Some(c), None) if c.eq_ignore_ascii_case(b"chunked") => {
                Ok(Framing::Chunked(Chunked::Size))
            }
            _ => Err(H1Error::Malformed(
                "a transfer coding other than chunked alone",
            )),
        };
    }
    Ok(length.map_or(Framing::UntilClose, Framing::Length))
}

/// The answer's `Content-Length`, if it has one: every element of every
/// field must be the same decimal number (RFC 9110 8.6).
fn content_length(h: &HeaderMap) -> Result<Option<u64>, H1Error> {
    let mut length = None;
    // Every element counts, an empty one too (refused).
    for part in crate::headers::list_elements(h, header::CONTENT_LENGTH) {
        // Digits only: `u64::from_str` would also take a leading `+`.
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return Err(H1Error::Malformed("bad Content-Length"));
        }
        let n: u64 = std::str::from_utf8(part)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(H1Error::Malformed("bad Content-Length"))?;
        if length.is_some_and(|l| l != n) {
            return Err(H1Error::Malformed("conflicting Content-Length values"));
        }
        length = Some(n);
    }
    Ok(length)
}

/// A `Content-Length` given as a list of equal values (`5, 5`, or the field
/// twice) becomes the one value it stands for, as RFC 9110 8.6 asks of a
/// proxy: the client never sees a list it might read differently. Call
/// after [`framing`], which refuses unequal values.
pub(super) fn one_content_length(h: &mut HeaderMap) {
    let mut values = h.get_all(header::CONTENT_LENGTH).iter();
    let Some(first) = values.next() else { return };
    if values.next().is_none() && !first.as_bytes().contains(&b',') {
        return;
    }
    if let Ok(Some(n)) = content_length(h) {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
}

/// The checks [`framing`] makes that still matter once another HTTP/1
/// implementation (hyper's, for uploads) has framed the body: no transfer
/// coding but `chunked`, one `Content-Length`.
pub(super) fn check_framed_answer(h: &mut HeaderMap) -> Result<(), H1Error> {
    if h.contains_key(header::TRANSFER_ENCODING) {
        framing(&Method::GET, StatusCode::OK, h)?;
    } else {
        content_length(h)?;
    }
    one_content_length(h);
    Ok(())
}

/// Where a chunked body's decoder stands (RFC 9112 7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chunked {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk: this many data bytes left.
    Data(u64),
    /// Expecting the CRLF that ends a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
    Done,
}

/// What one step of the decoder produced.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Decoded {
    Data(Bytes),
    NeedMore,
    Done,
}

impl Chunked {
    /// Decodes from the front of `buf` as far as it can.
    pub(super) fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, H1Error> {
        loop {
            match *self {
                Chunked::Size => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    *self = match chunk_size(&line)? {
                        0 => Chunked::Trailers,
                        n => Chunked::Data(n),
                    };
                }
                Chunked::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let k = left.min(buf.len() as u64) as usize;
                    let data = buf.split_to(k).freeze();
                    *self = match left - k as u64 {
                        0 => Chunked::DataEnd,
                        rest => Chunked::Data(rest),
                    };
                    return Ok(Decoded::Data(data));
                }
                Chunked::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Decoded::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(H1Error::Malformed("chunk data not followed by CRLF"));
                    }
                    buf.advance(2);
                    *self = Chunked::Size;
                }
                Chunked::Trailers => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    if line.is_empty() {
                        *self = Chunked::Done;
                    }
                }
                Chunked::Done => return Ok(Decoded::Done),
            }
        }
    }
}

/// The next CRLF-ended line off `buf`, without its CRLF; `None` until it is
/// all there. A bare LF is not a line end here.
fn take_line(buf: &mut BytesMut) -> Result<Option<Bytes>, H1Error> {
    let window = &buf[..buf.len().min(MAX_LINE + 2)];
    match window.windows(2).position(|w| w == b"\r\n") {
        Some(at) => {
            let line = buf.split_to(at).freeze();
            buf.advance(2);
            Ok(Some(line))
        }
        None if buf.len() > MAX_LINE => Err(H1Error::Malformed("chunk line too long")),
        None => Ok(None),
    }
}

/// `chunk-size [ chunk-ext ]`: hex digits, then nothing or `;` extensions
/// (after optional whitespace), which are ignored.
fn chunk_size(line: &[u8]) -> Result<u64, H1Error> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 15 {
        return Err(H1Error::Malformed("bad chunk size"));
    }
    // Whitespace before `;` is spaces and tabs only (RFC 9112 7.1.1's BWS);
    // a stray CR or LF anywhere in the line is refused.
    let rest = &line[digits..];
    let ext = rest.iter().position(|b| *b != b' ' && *b != b'\t');
    if ext.is_some_and(|at| rest[at] != b';') || rest.iter().any(|b| *b == b'\r' || *b == b'\n') {
        return Err(H1Error::Malformed("bad chunk size line"));
    }
    let hex =
        std::str::from_utf8(&line[..digits]).map_err(|_| H1Error::Malformed("bad chunk size"))?;
    u64::from_str_radix(hex, 16).map_err(|_| H1Error::Malformed("bad chunk size"))
}

/// An answer's body, read off its connection as the client takes it. The
/// connection goes back to the pool when the body ends cleanly; a body
/// dropped early, or one that failed, closes it.
pub(super) struct H1Body {
    conn: Option<Conn>,
    framing: Framing,
    /// The answer allows another request on this connection.
    reusable: bool,
    pool: Arc<Pool>,
    /// When the upstream last sent a byte of it, to end a stalled body.
    stall: Stall,
}

impl H1Body {
    fn is_done(&self) -> bool {
        matches!(
            self.framing,
            Framing::Empty | Framing::Length(0) | Framing::Chunked(Chunked::Done)
        )
    }

    /// The body is complete: the connection goes back if nothing follows it.
    fn finish(&mut self) {
        if let Some(conn) = self.conn.take()
            && self.reusable
            && conn.buf.is_empty()
        {
            self.pool.give_back_h1(conn);
        }
    }

    fn fail(&mut self, e: H1Error) -> Poll<Option<Result<http_body::Frame<Bytes>, H1Error>>> {
        self.conn = None;
        Poll::Ready(Some(Err(e)))
    }
}

impl http_body::Body for H1Body {
    type Data = Bytes;
    type Error = H1Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, H1Error>>> {
        let this = self.get_mut();
        loop {
            if this.is_done() {
                this.finish();
                return Poll::Ready(None);
            }
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            let data = match &mut this.framing {
                Framing::Length(left) if !conn.buf.is_empty() => {
                    let k = (*left).min(conn.buf.len() as u64) as usize;
                    *left -= k as u64;
                    Some(conn.buf.split_to(k).freeze())
                }
                Framing::UntilClose if !conn.buf.is_empty() => Some(conn.buf.split().freeze()),
                Framing::Chunked(state) => match state.decode(&mut conn.buf) {
                    Ok(Decoded::Data(d)) => Some(d),
                    Ok(Decoded::Done) => continue,
                    Ok(Decoded::NeedMore) => None,
                    Err(e) => return this.fail(e),
                },
                _ => None,
            };
            if let Some(d) = data {
                if this.is_done() {
                    this.finish();
                }
                return Poll::Ready(Some(Ok(http_body::Frame::data(d))));
            }
            // Nothing buffered: read more.
            conn.buf.reserve(READ_CHUNK);
            let read =
                match tokio_util::io::poll_read_buf(Pin::new(&mut conn.io), cx, &mut conn.buf) {
                    Poll::Ready(r) => r,
                    Poll::Pending => {
                        if this.stall.expired(cx, this.pool.body_idle_timeout()) {
                            this.pool.count_error("body_timeout");
                            return this.fail(H1Error::Stalled);
                        }
                        return Poll::Pending;
                    }
                };
            this.stall.progress();
            match read {
                Ok(0) if this.framing == Framing::UntilClose => {
                    this.conn = None;
                    return Poll::Ready(None);
                }
                Ok(0) => return this.fail(H1Error::Closed),
                Ok(_) => {}
                Err(e) => return this.fail(e.into()),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.is_done()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self.framing {
            Framing::Empty => http_body::SizeHint::with_exact(0),
            Framing::Length(n) => http_body::SizeHint::with_exact(n),
            _ => http_body::SizeHint::default(),
        }
    }
}

/// The request head as HTTP/1.1 sends it: origin-form `target`, the
/// headers as they are (the caller has set `Host`), no body.
pub(super) fn encode_head(method: &Method, target: &str, headers: &HeaderMap, out: &mut Vec<u8>) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    // `http` refuses CR, LF and NUL in names and values, so nothing here can
    // end the head early or add a line.
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        // `collect` appends, so a name may repeat.
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    fn frame(pairs: &[(&str, &str)]) -> Result<Framing, &'static str> {
        framing(&Method::GET, StatusCode::OK, &headers(pairs)).map_err(|e| match e {
            H1Error::Malformed(m) => m,
            _ => "other",
        })
    }

    #[test]
    fn framing_follows_rfc_9112_and_refuses_what_it_cannot_tell() {
        assert_eq!(frame(&[("content-length", "12")]), Ok(Framing::Length(12)));
        assert_eq!(
            frame(&[("content-length", "7"), ("content-length", "7")]),
            Ok(Framing::Length(7))
        );
        assert_eq!(frame(&[("content-length", "7, 7")]), Ok(Framing::Length(7)));
        assert!(frame(&[("content-length", "7"), ("content-length", "8")]).is_err());
        assert!(frame(&[("content-length", "7, 8")]).is_err());
        assert!(frame(&[("content-length", "-1")]).is_err());
        assert!(frame(&[("content-length", "+5")]).is_err());
        assert!(frame(&[("content-length", "")]).is_err());
        assert!(frame(&[("content-length", "99999999999999999999")]).is_err());
        assert_eq!(
            frame(&[("transfer-encoding", "chunked")]),
            Ok(Framing::Chunked(Chunked::Size))
        );
        assert_eq!(
            frame(&[("transfer-encoding", "Chunked")]),
            Ok(Framing::Chunked(Chunked::Size))
        );
        // Another coding would reach the client still applied: refused.
        assert!(frame(&[("transfer-encoding", "gzip, chunked")]).is_err());
        assert!(
            frame(&[
                ("transfer-encoding", "gzip"),
                ("transfer-encoding", "chunked")
            ])
            .is_err()
        );
        assert!(frame(&[("transfer-encoding", "gzip")]).is_err());
        assert!(frame(&[("transfer-encoding", "")]).is_err());
        assert!(frame(&[("transfer-encoding", "chunked, gzip")]).is_err());
        assert!(frame(&[("transfer-encoding", "chunked, chunked")]).is_err());
        assert!(frame(&[("transfer-encoding", "chunked"), ("content-length", "5")]).is_err());
        assert_eq!(frame(&[]), Ok(Framing::UntilClose));
        // No body, whatever the headers say.
        let h = headers(&[("content-length", "50")]);
        assert_eq!(
            framing(&Method::HEAD, StatusCode::OK, &h).ok(),
            Some(Framing::Empty)
        );
        assert_eq!(
            framing(&Method::GET, StatusCode::NOT_MODIFIED, &h).ok(),
            Some(Framing::Empty)
        );
        assert_eq!(
            framing(&Method::GET, StatusCode::NO_CONTENT, &h).ok(),
            Some(Framing::Empty)
        );
    }

    #[test]
    fn a_list_of_equal_lengths_is_forwarded_as_one_value() {
        let mut h = headers(&[("content-length", "5, 5"), ("x-a", "1")]);
        assert_eq!(frame(&[("content-length", "5, 5")]), Ok(Framing::Length(5)));
        one_content_length(&mut h);
        assert_eq!(
            h.get_all("content-length").iter().collect::<Vec<_>>(),
            ["5"]
        );
        let mut h = headers(&[("content-length", "5"), ("content-length", "5")]);
        one_content_length(&mut h);
        assert_eq!(
            h.get_all("content-length").iter().collect::<Vec<_>>(),
            ["5"]
        );
        // Conflicts are refused even where the length frames nothing.
        let h = headers(&[("content-length", "5, 6")]);
        assert!(framing(&Method::HEAD, StatusCode::OK, &h).is_err());
        let mut h = headers(&[("transfer-encoding", "gzip, chunked")]);
        assert!(check_framed_answer(&mut h).is_err());
    }

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, Chunked, usize), &'static str> {
        let mut buf = BytesMut::from(input);
        let mut state = Chunked::Size;
        let mut out = Vec::new();
        loop {
            match state.decode(&mut buf) {
                Ok(Decoded::Data(d)) => out.extend_from_slice(&d),
                Ok(Decoded::NeedMore) | Ok(Decoded::Done) => return Ok((out, state, buf.len())),
                Err(H1Error::Malformed(m)) => return Err(m),
                Err(_) => return Err("other"),
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_strictly() {
        let (out, state, left) =
            decode_all(b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n").unwrap();
        assert_eq!(out, b"hello world");
        assert_eq!((state, left), (Chunked::Done, 0));
        // Bytes after the end stay in the buffer (the connection is then not reused).
        let (_, state, left) = decode_all(b"0\r\n\r\nHTTP/1.1 200 OK").unwrap();
        assert_eq!((state, left), (Chunked::Done, 15));
        // Incomplete input waits for more.
        let (out, state, _) = decode_all(b"a\r\nhello").unwrap();
        assert_eq!((out.as_slice(), state), (&b"hello"[..], Chunked::Data(5)));
        assert!(decode_all(b"5\r\nhelloX\r\n").is_err());
        assert!(decode_all(b"zz\r\n").is_err());
        assert!(decode_all(b"5 x\r\nhello\r\n").is_err());
        assert!(decode_all(b"-5\r\n").is_err());
        assert!(decode_all(b"1000000000000000\r\n").is_err());
        assert!(decode_all(&[b'1'; MAX_LINE + 3]).is_err());
        // A bare LF does not end a line, nor may it hide in one.
        assert!(decode_all(b"5\nhello\r\n").is_err());
        assert!(decode_all(b"5;a\nb\r\nhello\r\n").is_err());
        assert_eq!(
            decode_all(b"5 \t;x=\"y\"\r\nhello\r\n0\r\n\r\n").map(|r| r.0),
            Ok(b"hello".to_vec())
        );
    }

    #[test]
    fn a_request_head_is_origin_form_with_every_header() {
        let mut out = Vec::new();
        let h = headers(&[("host", "api.example"), ("x-a", "1"), ("x-a", "2")]);
        encode_head(&Method::GET, "/2.0/files/7?fields=name", &h, &mut out);
        assert_eq!(
            out,
            b"GET /2.0/files/7?fields=name HTTP/1.1\r\nhost: api.example\r\nx-a: 1\r\nx-a: 2\r\n\r\n"
        );
    }
}
