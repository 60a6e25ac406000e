//! What an HTTP/1.1 request head said about its framing, as sent.
//!
//! A request framed by both `Transfer-Encoding` and `Content-Length` is how
//! requests are smuggled past a front end that picks one and a back end that
//! picks the other; RFC 9112 6.3 lets a server refuse it, and the gateway
//! does (400). hyper follows the same section by reading such a request by
//! `Transfer-Encoding` alone: it removes the `Content-Length` before the
//! request reaches the gateway (and closes the connection after the answer),
//! so the gateway cannot see from the request that there was one.
//!
//! [`Watched`] therefore reads along with hyper: every byte hyper reads from
//! an HTTP/1 connection passes through it, each request head is parsed by
//! the same parser hyper uses (`httparse`), and each body is skipped by the
//! framing hyper applies to it (a length, or chunks read by the same state
//! machine as hyper's decoder), so the next head is found where hyper finds
//! it. For each head a [`Head`] is queued; the gateway takes them in order,
//! one per request (HTTP/1 requests on a connection are served one after the
//! other), and checks that the head is the request it is serving (method,
//! target and header count). Whatever this reader cannot follow (a head
//! hyper refuses too, a protocol switch, a mismatch) stops it for the rest of
//! the connection: from then on a request that carries `Transfer-Encoding`
//! is refused, since nobody can tell what else its head held. HTTP/2 cannot
//! carry `Transfer-Encoding` at all (the h2 crate refuses the stream).

use std::collections::VecDeque;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Heads read but not yet taken by the gateway; more means a client
/// pipelining far ahead, and the reader gives up (fail closed).
const MAX_QUEUED: usize = 1024;

/// Header slots kept on the stack when parsing a head (the default limit is 100).
const STACK_HEADERS: usize = 256;

/// What one request head said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Method, target and header count, to match the head with the request
    /// hyper hands over.
    fingerprint: u64,
    /// Both `Transfer-Encoding` and `Content-Length` were sent.
    pub te_and_cl: bool,
}

/// The verdict on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One framing header or none.
    Plain,
    /// `Transfer-Encoding` and `Content-Length` together.
    Both,
    /// The reader could not follow the connection this far.
    Unknown,
}

/// The queue between a connection's reader and the requests it carries.
#[derive(Debug, Default)]
pub struct Heads {
    queue: Mutex<Queue>,
}

#[derive(Debug, Default)]
struct Queue {
    heads: VecDeque<Head>,
    /// The reader stopped following the connection.
    lost: bool,
}

impl Heads {
    fn push(&self, head: Head) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if q.lost {
            return;
        }
        if q.heads.len() == MAX_QUEUED {
            q.lost = true;
            return;
        }
        q.heads.push_back(head);
    }

    fn lose(&self) {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).lost = true;
    }

    /// The smuggling flags of the heads not yet taken, and whether the
    /// reader still follows the connection (tests and fuzzing).
    #[doc(hidden)]
    pub fn snapshot(&self) -> (Vec<bool>, bool) {
        let q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        (q.heads.iter().map(|h| h.te_and_cl).collect(), !q.lost)
    }

    /// The verdict on the next request, which hyper parsed as this method,
    /// target and number of header values.
    pub fn take(&self, method: &http::Method, uri: &http::Uri, headers: usize) -> Framing {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let Some(head) = q.heads.pop_front() else {
            q.lost = true;
            return Framing::Unknown;
        };
        let target = uri.path_and_query().map_or("", |pq| pq.as_str());
        let plain_form = uri.scheme().is_none() && uri.authority().is_none();
        if !plain_form || head.fingerprint != fingerprint(method.as_str(), target, headers) {
            // Not the head of this request: whatever follows is unknown.
            q.lost = true;
            q.heads.clear();
            return Framing::Unknown;
        }
        if head.te_and_cl {
            Framing::Both
        } else {
            Framing::Plain
        }
    }
}

fn fingerprint(method: &str, target: &str, headers: usize) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in method
        .as_bytes()
        .iter()
        .chain(b" ")
        .chain(target.as_bytes())
    {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h ^ (headers as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Where the reader is in the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    /// This many body bytes to skip.
    Length(u64),
    Chunked(Chunk),
    Lost,
}

/// hyper's chunked decoder, state for state (`proto/h1/decode.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Start,
    Size(u64),
    SizeLws(u64),
    Extension(u64),
    SizeLf(u64),
    Body(u64),
    BodyCr,
    BodyLf,
    Trailer,
    TrailerLf,
    EndCr,
    EndLf,
}

/// The reader of one connection's request stream.
#[derive(Debug)]
pub struct Reader {
    state: State,
    /// A head that arrived in pieces.
    partial: Vec<u8>,
    /// Limits as hyper's: head bytes and header count.
    max_head: usize,
    max_headers: usize,
    heads: Arc<Heads>,
}

impl Reader {
    pub fn new(max_head: usize, max_headers: usize, heads: Arc<Heads>) -> Reader {
        Reader {
            state: State::Head,
            partial: Vec::new(),
            max_head,
            max_headers,
            heads,
        }
    }

    fn lose(&mut self) {
        self.state = State::Lost;
        self.partial = Vec::new();
        self.heads.lose();
    }

    /// Follows the next bytes hyper read.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match self.state {
                State::Lost => return,
                State::Head => {
                    let used = self.head(data);
                    data = &data[used..];
                }
                State::Length(left) => {
                    let n = left.min(data.len() as u64);
                    self.state = if n == left {
                        State::Head
                    } else {
                        State::Length(left - n)
                    };
                    data = &data[n as usize..];
                }
                State::Chunked(Chunk::Body(left)) => {
                    let n = left.min(data.len() as u64);
                    self.state = State::Chunked(if n == left {
                        Chunk::BodyCr
                    } else {
                        Chunk::Body(left - n)
                    });
                    data = &data[n as usize..];
                }
                State::Chunked(c) => {
                    self.state = match chunk_step(c, data[0]) {
                        Some(Step::Next(c)) => State::Chunked(c),
                        Some(Step::Done) => State::Head,
                        None => State::Lost,
                    };
                    if self.state == State::Lost {
                        self.lose();
                    }
                    data = &data[1..];
                }
            }
        }
    }

    /// Reads (part of) a head from `data`; returns the bytes it used.
    fn head(&mut self, data: &[u8]) -> usize {
        let fresh = self.partial.is_empty();
        // A head ends at a line feed: a piece without one cannot end it,
        // so a head dribbled in small pieces is parsed once per line.
        // The piece may hold body bytes after the head, so the limit is
        // checked on what is still head (a partial parse), not on the piece.
        if !fresh {
            self.partial.extend_from_slice(data);
            if !data.contains(&b'\n') {
                if self.partial.len() > self.max_head {
                    self.lose();
                }
                return data.len();
            }
        }
        let buf = if fresh { data } else { &self.partial[..] };
        // Header slots as many as hyper allows: on the stack (uninitialised,
        // so free) up to a usual limit, else on the heap.
        let mut stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
        let mut heap = Vec::new();
        let slots = if self.max_headers <= STACK_HEADERS {
            &mut stack[..self.max_headers]
        } else {
            heap.resize_with(self.max_headers, MaybeUninit::uninit);
            &mut heap[..]
        };
        let mut req = httparse::Request::new(&mut []);
        let parsed = match req.parse_with_uninit_headers(buf, slots) {
            Ok(httparse::Status::Complete(len)) => Some(len),
            Ok(httparse::Status::Partial) => None,
            Err(_) => {
                self.lose();
                return data.len();
            }
        };
        if parsed.is_some_and(|len| len > self.max_head) {
            // hyper refuses a head larger than its buffer (431).
            self.lose();
            return data.len();
        }
        let Some(len) = parsed else {
            if fresh {
                self.partial.extend_from_slice(data);
            }
            if self.partial.len() > self.max_head {
                self.lose();
            }
            return data.len();
        };
        let next = read_head(&req);
        let used = if fresh {
            len
        } else {
            len - (self.partial.len() - data.len())
        };
        self.partial.clear();
        match next {
            Some((head, state)) => {
                self.heads.push(head);
                self.state = state;
            }
            None => self.lose(),
        }
        used
    }
}

/// The head's verdict and the framing of its body, as hyper decides it
/// (`proto/h1/role.rs`); `None` where hyper refuses the head or stops
/// reading requests (CONNECT).
fn read_head(req: &httparse::Request<'_, '_>) -> Option<(Head, State)> {
    let method = req.method?;
    let target = req.path?;
    let http11 = req.version? == 1;
    if method == "CONNECT" {
        return None;
    }
    let (mut te, mut chunked, mut cl_lines, mut len) = (false, false, 0usize, None::<u64>);
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if !http11 {
                return None;
            }
            te = true;
            chunked = std::str::from_utf8(h.value).is_ok_and(|s| {
                s.rsplit(',')
                    .next()
                    .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"))
            });
        } else if h.name.eq_ignore_ascii_case("content-length") {
            cl_lines += 1;
            if te {
                continue;
            }
            let n = digits(h.value)?;
            if len.is_some_and(|l| l != n) {
                return None;
            }
            len = Some(n);
        }
    }
    if te && !chunked {
        return None;
    }
    // hyper keeps one Content-Length value, none when Transfer-Encoding came.
    let kept = req.headers.len() - cl_lines + usize::from(!te && cl_lines > 0);
    let head = Head {
        fingerprint: fingerprint(method, target, kept),
        te_and_cl: te && cl_lines > 0,
    };
    let state = match (te, len) {
        (true, _) => State::Chunked(Chunk::Start),
        (false, Some(n)) if n > 0 => State::Length(n),
        _ => State::Head,
    };
    Some((head, state))
}

/// Decimal digits only, as hyper reads a Content-Length.
fn digits(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

enum Step {
    Next(Chunk),
    /// The chunked body ended; a head comes next.
    Done,
}

/// One byte of hyper's chunked decoder; `None` where hyper fails.
fn chunk_step(c: Chunk, b: u8) -> Option<Step> {
    let hex = |b: u8| (b as char).to_digit(16).map(u64::from);
    let grow = |size: u64, d: u64| size.checked_mul(16)?.checked_add(d);
    Some(Step::Next(match (c, b) {
        (Chunk::Start, b) => Chunk::Size(hex(b)?),
        (Chunk::Size(s), b) if hex(b).is_some() => Chunk::Size(grow(s, hex(b)?)?),
        (Chunk::Size(s) | Chunk::SizeLws(s), b'\t' | b' ') => Chunk::SizeLws(s),
        (Chunk::Size(s) | Chunk::SizeLws(s) | Chunk::Extension(s), b';') => Chunk::Extension(s),
        (Chunk::Size(s) | Chunk::SizeLws(s) | Chunk::Extension(s), b'\r') => Chunk::SizeLf(s),
        (Chunk::Extension(_), b'\n') => return None,
        (Chunk::Extension(s), _) => Chunk::Extension(s),
        (Chunk::SizeLf(0), b'\n') => Chunk::EndCr,
        (Chunk::SizeLf(s), b'\n') => Chunk::Body(s),
        (Chunk::BodyCr, b'\r') => Chunk::BodyLf,
        (Chunk::BodyLf, b'\n') => Chunk::Start,
        (Chunk::EndCr, b'\r') => Chunk::EndLf,
        (Chunk::Trailer, b'\r') => Chunk::TrailerLf,
        (Chunk::EndCr | Chunk::Trailer, _) => Chunk::Trailer,
        (Chunk::TrailerLf, b'\n') => Chunk::EndCr,
        (Chunk::EndLf, b'\n') => return Some(Step::Done),
        _ => return None,
    }))
}

/// An HTTP/1 connection whose reads pass through a [`Reader`].
pub struct Watched<S> {
    io: S,
    reader: Reader,
}

impl<S> Watched<S> {
    pub fn new(io: S, reader: Reader) -> Watched<S> {
        Watched { io, reader }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.io).poll_read(cx, buf))?;
        let this = &mut *self;
        this.reader.feed(&buf.filled()[before..]);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `stream` in pieces of `step` bytes; returns the queued heads'
    /// smuggling flags and whether the reader is still following.
    fn run(stream: &[u8], step: usize) -> (Vec<bool>, bool) {
        let heads = Arc::new(Heads::default());
        let mut r = Reader::new(64 * 1024, 100, heads.clone());
        for piece in stream.chunks(step) {
            r.feed(piece);
        }
        let q = heads.queue.lock().unwrap();
        (
            q.heads.iter().map(|h| h.te_and_cl).collect(),
            !q.lost && r.state != State::Lost,
        )
    }

    fn every_split(stream: &[u8], want: (Vec<bool>, bool)) {
        for step in [1, 2, 3, 7, 64, stream.len().max(1)] {
            assert_eq!(
                run(stream, step),
                want,
                "step {step}: {:?}",
                String::from_utf8_lossy(stream)
            );
        }
    }

    #[test]
    fn heads_are_found_after_each_kind_of_body() {
        let s = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n\
            POST /b HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello\
            POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nGET /\r\n0\r\nX-Trailer: 1\r\n\r\n\
            \r\nGET /d HTTP/1.1\r\n\r\n";
        every_split(s, (vec![false, false, false, false], true));
    }

    #[test]
    fn te_with_cl_is_flagged_in_either_order() {
        for s in [
            &b"POST /a HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"[..],
            b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
            b"POST /a HTTP/1.1\r\ntransfer-encoding: gzip, chunked\r\ncontent-length: x\r\n\r\n0\r\n\r\n",
        ] {
            every_split(s, (vec![true], true));
        }
        // The request after a smuggling one is read where hyper reads it
        // (by the chunks): it is not hidden in a body.
        let s = b"POST /a HTTP/1.1\r\nContent-Length: 30\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n";
        every_split(s, (vec![true, false], true));
    }

    #[test]
    fn what_hyper_refuses_stops_the_reader() {
        for s in [
            &b"POST /a HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n"[..],
            b"POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST /a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"POST /a HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
            b"CONNECT x:443 HTTP/1.1\r\n\r\n",
            b"GET /a HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
        ] {
            let (_, following) = run(s, s.len());
            assert!(!following, "{:?}", String::from_utf8_lossy(s));
        }
        let big = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(70 * 1024));
        assert!(!run(big.as_bytes(), 1000).1);
        // Whole or in pieces, a head longer than hyper's buffer stops it.
        assert!(!run(big.as_bytes(), big.len()).1);
        // A head that came in pieces, then a body larger than a head may be
        // in one piece: followed.
        let mut s = b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        s.extend_from_slice(
            format!("{:x}\r\n{}\r\n0\r\n\r\n", 100_000, "x".repeat(100_000)).as_bytes(),
        );
        let heads = Arc::new(Heads::default());
        let mut r = Reader::new(8192, 100, heads.clone());
        r.feed(&s[..10]);
        r.feed(&s[10..]);
        assert_eq!(heads.snapshot(), (vec![false], true));
    }

    #[test]
    fn the_verdict_is_for_the_request_hyper_hands_over() {
        let heads = Arc::new(Heads::default());
        let mut r = Reader::new(64 * 1024, 100, heads.clone());
        r.feed(
            b"POST /a?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi",
        );
        r.feed(b"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
        r.feed(b"GET /c HTTP/1.1\r\n\r\n");
        let uri = |s: &str| s.parse::<http::Uri>().unwrap();
        // hyper keeps one of two equal Content-Lengths, none beside Transfer-Encoding.
        assert_eq!(
            heads.take(&http::Method::POST, &uri("/a?x=1"), 2),
            Framing::Plain
        );
        assert_eq!(
            heads.take(&http::Method::POST, &uri("/b"), 2),
            Framing::Both
        );
        // Another request than the head read: unknown from here on.
        assert_eq!(
            heads.take(&http::Method::GET, &uri("/other"), 0),
            Framing::Unknown
        );
        assert_eq!(
            heads.take(&http::Method::GET, &uri("/c"), 0),
            Framing::Unknown
        );
    }

    #[test]
    fn content_length_digits_are_read_as_hyper_reads_them() {
        assert_eq!(digits(b"42"), Some(42));
        assert_eq!(digits(b""), None);
        assert_eq!(digits(b"+4"), None);
        assert_eq!(digits(b"4 "), None);
        assert_eq!(digits(b"99999999999999999999999"), None);
    }
}
