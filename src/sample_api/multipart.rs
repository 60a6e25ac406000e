//! A push parser for `multipart/form-data` that never buffers a whole part.
//!
//! Uploads can be gigabytes, so the parser holds at most one incoming chunk
//! plus a delimiter's worth of look-behind: body bytes are handed out as soon
//! as they cannot be the start of the next boundary.

use bytes::{Bytes, BytesMut};

/// Part headers larger than this are refused: they are never legitimate and
/// would otherwise let a client grow the buffer without bound.
const MAX_HEADER_BYTES: usize = 16 * 1024;

/// What the parser found, in body order.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// A part begins; `name` is the form field name from Content-Disposition.
    Part { name: String },
    /// Some bytes of the current part's body.
    Data(Bytes),
    /// The closing boundary was seen; nothing after it matters.
    Done,
}

#[derive(Debug, PartialEq, Eq)]
pub struct MultipartError(pub &'static str);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Preamble,
    AfterBoundary,
    Headers,
    Body,
    Done,
}

pub struct Parser {
    /// `\r\n--boundary`: a boundary is only a boundary at the start of a line.
    delimiter: Vec<u8>,
    /// Boyer-Moore-Horspool shifts for `delimiter`: body bytes are scanned
    /// once per delimiter length rather than once each, which is what keeps
    /// gigabyte uploads cheap even in debug builds.
    shift: [usize; 256],
    buf: BytesMut,
    state: State,
}

impl Parser {
    pub fn new(boundary: &str) -> Parser {
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        // The first boundary may open the body with no line break before it;
        // a synthetic one lets a single search rule cover every boundary.
        let mut buf = BytesMut::new();
        buf.extend_from_slice(b"\r\n");
        let mut shift = [delimiter.len(); 256];
        for (i, b) in delimiter[..delimiter.len() - 1].iter().enumerate() {
            shift[usize::from(*b)] = delimiter.len() - 1 - i;
        }
        Parser {
            delimiter,
            shift,
            buf,
            state: State::Preamble,
        }
    }

    pub fn push(&mut self, chunk: &[u8]) {
        if self.state != State::Done {
            self.buf.extend_from_slice(chunk);
        }
    }

    /// The next event, or `Ok(None)` when more input is needed.
    pub fn next_event(&mut self) -> Result<Option<Event>, MultipartError> {
        loop {
            match self.state {
                State::Done => return Ok(None),
                State::Preamble => match self.find_delimiter() {
                    Some(at) => {
                        let _ = self.buf.split_to(at + self.delimiter.len());
                        self.state = State::AfterBoundary;
                    }
                    None => {
                        self.keep_tail();
                        return Ok(None);
                    }
                },
                State::AfterBoundary => {
                    if self.buf.len() < 2 {
                        return Ok(None);
                    }
                    if self.buf.starts_with(b"--") {
                        self.state = State::Done;
                        self.buf.clear();
                        return Ok(Some(Event::Done));
                    }
                    // RFC 2046 allows linear whitespace after a boundary.
                    let ws = self
                        .buf
                        .iter()
                        .take_while(|b| **b == b' ' || **b == b'\t')
                        .count();
                    if ws == self.buf.len() {
                        return Ok(None);
                    }
                    let _ = self.buf.split_to(ws);
                    if self.buf.len() < 2 {
                        return Ok(None);
                    }
                    if !self.buf.starts_with(b"\r\n") {
                        return Err(MultipartError("malformed boundary line"));
                    }
                    // The CRLF stays: it lets an empty header block be found
                    // by the same `\r\n\r\n` search as a non-empty one.
                    self.state = State::Headers;
                }
                State::Headers => match find(&self.buf, b"\r\n\r\n") {
                    Some(at) => {
                        let block = self.buf.split_to(at + 4);
                        // `at` is 0 for an empty header block, else at least 2.
                        let text = std::str::from_utf8(block.get(2..at).unwrap_or_default())
                            .map_err(|_| MultipartError("part headers are not UTF-8"))?;
                        let name = field_name(text)
                            .ok_or(MultipartError("part without a form field name"))?;
                        self.state = State::Body;
                        return Ok(Some(Event::Part { name }));
                    }
                    None if self.buf.len() > MAX_HEADER_BYTES => {
                        return Err(MultipartError("part headers too large"));
                    }
                    None => return Ok(None),
                },
                State::Body => match self.find_delimiter() {
                    Some(0) => {
                        let _ = self.buf.split_to(self.delimiter.len());
                        self.state = State::AfterBoundary;
                    }
                    Some(at) => return Ok(Some(Event::Data(self.buf.split_to(at).freeze()))),
                    None => {
                        let safe = self.buf.len().saturating_sub(self.delimiter.len() - 1);
                        if safe == 0 {
                            return Ok(None);
                        }
                        return Ok(Some(Event::Data(self.buf.split_to(safe).freeze())));
                    }
                },
            }
        }
    }

    /// Whether the closing boundary has been seen; a body that ends before
    /// it was truncated.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    fn find_delimiter(&self) -> Option<usize> {
        let (hay, needle) = (&self.buf[..], &self.delimiter[..]);
        let last = needle.len() - 1;
        let mut at = 0;
        while let Some(&end) = hay.get(at + last) {
            if end == needle[last] && hay[at..at + last] == needle[..last] {
                return Some(at);
            }
            at += self.shift[usize::from(end)];
        }
        None
    }

    /// Drops preamble bytes that can no longer be part of a boundary.
    fn keep_tail(&mut self) {
        let keep = self.delimiter.len() - 1;
        if self.buf.len() > keep {
            let _ = self.buf.split_to(self.buf.len() - keep);
        }
    }
}

/// The `boundary` parameter of a `multipart/form-data` Content-Type.
pub fn boundary(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    let essence = params.next()?.trim();
    if !essence.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    let value = params.find_map(|p| param(p, "boundary"))?;
    // RFC 2046 caps boundaries at 70 characters.
    (!value.is_empty() && value.len() <= 70).then_some(value)
}

fn field_name(headers: &str) -> Option<String> {
    headers.split("\r\n").find_map(|line| {
        let (key, value) = line.split_once(':')?;
        if !key.trim().eq_ignore_ascii_case("content-disposition") {
            return None;
        }
        value.split(';').skip(1).find_map(|p| param(p, "name"))
    })
}

fn param(part: &str, wanted: &str) -> Option<String> {
    let (key, value) = part.split_once('=')?;
    if !key.trim().eq_ignore_ascii_case(wanted) {
        return None;
    }
    let value = value.trim();
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    Some(value.to_owned())
}

/// Position of `needle` in `hay`; for the short header terminator.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut from = 0;
    while from + needle.len() <= hay.len() {
        let at = from + hay[from..].iter().position(|b| *b == first)?;
        if hay.get(at..at + needle.len())? == needle {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    type Parts = Vec<(String, Vec<u8>)>;

    fn parse(chunks: &[&[u8]], boundary: &str) -> Result<(Parts, bool), MultipartError> {
        let mut p = Parser::new(boundary);
        let mut parts: Parts = Vec::new();
        for chunk in chunks {
            p.push(chunk);
            while let Some(ev) = p.next_event()? {
                match ev {
                    Event::Part { name } => parts.push((name, Vec::new())),
                    Event::Data(d) => parts
                        .last_mut()
                        .expect("data before part")
                        .1
                        .extend_from_slice(&d),
                    Event::Done => {}
                }
            }
        }
        Ok((parts, p.is_done()))
    }

    const BODY: &[u8] = b"--XyZ\r\nContent-Disposition: form-data; name=\"attributes\"\r\n\r\n{\"name\":\"a\"}\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\nContent-Type: application/octet-stream\r\n\r\nhello\r\n--Xy\r\n-XyZ world\r\n--XyZ--\r\n";

    #[test]
    fn every_split_point_gives_the_same_parts() {
        for cut in 0..BODY.len() {
            let (parts, done) = parse(&[&BODY[..cut], &BODY[cut..]], "XyZ").expect("parses");
            assert!(done, "cut at {cut}");
            assert_eq!(
                parts[0],
                ("attributes".into(), b"{\"name\":\"a\"}".to_vec())
            );
            assert_eq!(
                parts[1],
                ("file".into(), b"hello\r\n--Xy\r\n-XyZ world".to_vec())
            );
        }
        let bytes: Vec<&[u8]> = BODY.chunks(1).collect();
        assert_eq!(parse(&bytes, "XyZ").expect("parses").0.len(), 2);
    }

    #[test]
    fn truncated_and_malformed_bodies() {
        let (_, done) = parse(&[&BODY[..BODY.len() - 10]], "XyZ").expect("parses");
        assert!(!done);
        assert!(parse(&[b"--XyZ\r\nX-Nothing: 1\r\n\r\n"], "XyZ").is_err());
        assert!(parse(&[b"--XyZjunk"], "XyZ").is_err());
        assert!(parse(&[b"--XyZ\r\n\r\nbody"], "XyZ").is_err());
        // Arbitrary bytes after every prefix of a valid body: errors, never panics.
        for cut in 0..BODY.len() {
            let _ = parse(&[&BODY[..cut], b"\r\n\r\n--XyZ\r\n\r\n--"], "XyZ");
        }
    }

    #[test]
    fn boundary_from_content_type() {
        assert_eq!(
            boundary("multipart/form-data; boundary=\"a b\"").as_deref(),
            Some("a b")
        );
        assert_eq!(
            boundary("Multipart/Form-Data;charset=x;boundary=q").as_deref(),
            Some("q")
        );
        assert_eq!(boundary("application/json; boundary=q"), None);
        assert_eq!(boundary("multipart/form-data"), None);
    }
}
