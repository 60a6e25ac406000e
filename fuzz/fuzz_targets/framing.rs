//! The HTTP/1 request-stream reader of `src/framing.rs` (it finds request
//! heads and skips bodies along with hyper, to see `Transfer-Encoding` with
//! `Content-Length`).
//!
//! Input: one byte `k`, then a byte stream. The stream is fed whole, and
//! again cut into pieces at every `k`-th byte (at least 1) and at each of
//! the first bytes of the stream: the verdicts (one flag per head) and
//! whether the reader still follows the connection must not depend on how
//! the bytes arrived, since TCP may split them anywhere. Also: a stream of
//! well-formed requests built from the input is followed to its end.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use scopegate::framing::{Heads, Reader};

fn run(pieces: &[&[u8]]) -> (Vec<bool>, bool) {
    let heads = Arc::new(Heads::default());
    let mut r = Reader::new(8192, 100, heads.clone());
    for p in pieces {
        r.feed(p);
    }
    heads.snapshot()
}

fuzz_target!(|data: &[u8]| {
    let Some((&k, stream)) = data.split_first() else {
        return;
    };
    // A head is parsed when a line ends, so a bad byte in an unfinished
    // line is noticed at its end: end the stream with a line feed, so both
    // feeds have seen every line end.
    let stream = &[stream, b"\n"].concat()[..];
    let whole = run(&[stream]);
    let step = usize::from(k).max(1);
    let pieces: Vec<&[u8]> = stream.chunks(step).collect();
    assert_eq!(run(&pieces), whole, "step {step}");
    for cut in 0..stream.len().min(64) {
        let (a, b) = stream.split_at(cut);
        assert_eq!(run(&[a, b]), whole, "cut at {cut}");
    }
    // Well-formed requests whose bodies are the fuzz bytes: every head is
    // found, none is flagged, the reader still follows.
    let body = &stream[..stream.len().min(300)];
    let mut ok = Vec::new();
    ok.extend_from_slice(
        format!("POST /a HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(),
    );
    ok.extend_from_slice(body);
    ok.extend_from_slice(b"POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    for c in body.chunks(step) {
        ok.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        ok.extend_from_slice(c);
        ok.extend_from_slice(b"\r\n");
    }
    ok.extend_from_slice(b"0\r\n\r\nGET /c HTTP/1.1\r\n\r\n");
    let pieces: Vec<&[u8]> = ok.chunks(step).collect();
    assert_eq!(run(&pieces), (vec![false, false, false], true));
});
