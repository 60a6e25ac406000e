//! Entry points for the fuzz targets in `fuzz/` (the HTTP/1.1 answer
//! reader is private to this module). Not an API: each function runs the
//! code under test on arbitrary bytes and panics when a property the
//! forwarding relies on does not hold.

use bytes::BytesMut;
use http::{HeaderMap, Method, StatusCode, header};

use super::h1::{self, Chunked, Decoded, Framing};

fn elements(h: &HeaderMap, name: header::HeaderName) -> Vec<Vec<u8>> {
    crate::headers::list_elements(h, name)
        .filter(|e| !e.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// A `Content-Length` element's value, if it is all digits and fits.
fn decimal(e: &[u8]) -> Option<u64> {
    if e.is_empty() || !e.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(e).ok()?.parse().ok()
}

/// The answer head parser and the framing decision. `data[0]` picks the
/// request method, `data[1]` a split point; the rest is what the upstream
/// sent.
pub fn answer_head(data: &[u8]) {
    let [m, split, input @ ..] = data else { return };
    let method =
        [Method::GET, Method::HEAD, Method::POST, Method::DELETE][(*m % 4) as usize].clone();
    let mut buf = BytesMut::from(input);
    let parsed = h1::parse_head(&mut buf);
    let consumed = input.len() - buf.len();
    // A prefix of a complete head is incomplete, never another answer.
    if let Ok(Some(_)) = &parsed {
        let k = (*split as usize) % consumed.max(1);
        let mut prefix = BytesMut::from(&input[..k]);
        assert!(
            matches!(h1::parse_head(&mut prefix), Ok(None)),
            "a prefix of a head parsed as a head"
        );
        assert_eq!(prefix.len(), k, "an incomplete head consumed bytes");
    } else {
        assert_eq!(consumed, 0, "a head that did not parse consumed bytes");
    }
    let Ok(Some((mut parts, keep_alive))) = parsed else {
        return;
    };
    assert!(!keep_alive || parts.version == http::Version::HTTP_11);
    for v in parts.headers.values() {
        assert!(!v.as_bytes().iter().any(|b| matches!(b, b'\r' | b'\n' | 0)));
    }
    let te = elements(&parts.headers, header::TRANSFER_ENCODING);
    let cl = elements(&parts.headers, header::CONTENT_LENGTH);
    let framing = h1::framing(&method, parts.status, &parts.headers);
    match &framing {
        Ok(Framing::Empty) => assert!(
            method == Method::HEAD
                || parts.status == StatusCode::NO_CONTENT
                || parts.status == StatusCode::NOT_MODIFIED
        ),
        Ok(Framing::Length(n)) => {
            assert!(!parts.headers.contains_key(header::TRANSFER_ENCODING));
            // Every element is the same number (`09` is 9: RFC 9110 8.6 is 1*DIGIT).
            assert!(cl.iter().all(|e| decimal(e) == Some(*n)), "{cl:?} {n}");
        }
        Ok(Framing::Chunked(state)) => {
            assert_eq!(*state, Chunked::Size);
            assert!(cl.is_empty());
            assert_eq!(te.len(), 1);
            assert!(te[0].eq_ignore_ascii_case(b"chunked"));
        }
        Ok(Framing::UntilClose) => {
            assert!(!parts.headers.contains_key(header::TRANSFER_ENCODING));
            assert!(!parts.headers.contains_key(header::CONTENT_LENGTH));
        }
        Err(_) => {}
    }
    // What is forwarded: one Content-Length value, the one that framed.
    if framing.is_ok() {
        let before = parts.headers.clone();
        h1::one_content_length(&mut parts.headers);
        let values: Vec<_> = parts
            .headers
            .get_all(header::CONTENT_LENGTH)
            .iter()
            .collect();
        assert!(values.len() <= 1);
        if let (Some(v), Some(first)) = (values.first(), cl.first()) {
            assert_eq!(decimal(v.as_bytes()), decimal(first));
            // A list is forwarded as the plain number; one value as it came.
            if cl.len() > 1 {
                assert!(!v.as_bytes().contains(&b','));
            }
        }
        // Nothing else changes.
        for (name, value) in &before {
            if name != header::CONTENT_LENGTH {
                assert!(parts.headers.get_all(name).iter().any(|v| v == value));
            }
        }
        // The check on answers hyper framed agrees for a plain GET 200.
        if let Ok(f) = h1::framing(&Method::GET, StatusCode::OK, &before) {
            let mut h = before.clone();
            assert!(h1::check_framed_answer(&mut h).is_ok(), "{f:?}");
        }
    }
}

/// Decodes `body` fed in pieces ending at `cuts` (then the rest): the
/// data, the decoder's last state or an error, and the bytes left unread
/// once it is done.
fn decode(body: &[u8], cuts: &[usize]) -> (Vec<u8>, Result<Chunked, ()>, usize) {
    let mut state = Chunked::Size;
    let mut out = Vec::new();
    let mut buf = BytesMut::new();
    let mut fed = 0;
    for end in cuts.iter().copied().chain([body.len()]) {
        let end = end.clamp(fed, body.len());
        buf.extend_from_slice(&body[fed..end]);
        fed = end;
        loop {
            match state.decode(&mut buf) {
                Ok(Decoded::Data(d)) => {
                    assert!(!d.is_empty(), "an empty data frame");
                    out.extend_from_slice(&d);
                }
                Ok(Decoded::NeedMore) => break,
                Ok(Decoded::Done) => return (out, Ok(state), buf.len() + body.len() - fed),
                Err(_) => return (out, Err(()), 0),
            }
        }
    }
    (out, Ok(state), 0)
}

/// The chunked decoder. `data[0]` is how many split points follow (up to
/// 4, one byte each, scaled to the body); the rest is the body. Fed whole
/// or in pieces, the decoder must give the same data and the same verdict.
pub fn chunked(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = (n as usize % 5).min(rest.len());
    let (points, body) = rest.split_at(n);
    let mut splits: Vec<usize> = points
        .iter()
        .map(|p| *p as usize * body.len() / 255)
        .collect();
    splits.sort_unstable();
    let whole = decode(body, &[]);
    let pieces = decode(body, &splits);
    assert!(whole.0.len() <= body.len());
    match (&whole.1, &pieces.1) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b, "the state depends on how the bytes arrived");
            assert_eq!(
                whole.0, pieces.0,
                "the data depends on how the bytes arrived"
            );
            // What follows the body is left for the caller, as much of it.
            assert_eq!(whole.2, pieces.2);
        }
        (Err(()), Err(())) => {
            // The data before the error may differ only in how far it got.
            let k = whole.0.len().min(pieces.0.len());
            assert_eq!(whole.0[..k], pieces.0[..k]);
        }
        _ => panic!("the verdict depends on how the bytes arrived"),
    }
    // What was decoded, chunked again simply, decodes to itself.
    if whole.1 == Ok(Chunked::Done) && !whole.0.is_empty() {
        let mut again = format!("{:x}\r\n", whole.0.len()).into_bytes();
        again.extend_from_slice(&whole.0);
        again.extend_from_slice(b"\r\n0\r\n\r\n");
        let re = decode(&again, &[]);
        assert_eq!(re.0, whole.0);
        assert_eq!(re.1, Ok(Chunked::Done));
        assert_eq!(re.2, 0);
    }
}
