//! What the gateway reads of request bodies: the OAuth form (with the
//! `resource` URL and the scope list), strict JSON, the multipart boundary
//! and the `attributes` part of an upload.
//!
//! Input: the first byte picks the parser (mod 4), the rest is its input.
//! For uploads the rest is `content-type\n` + up to 4 split points (one
//! count byte, two bytes each) + the body, which is fed in those chunks.
#![no_main]

use std::convert::Infallible;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http_body::{Body as _, Frame};
use http_body_util::{BodyExt, StreamBody};
use libfuzzer_sys::fuzz_target;
use scopegate::upload::{self, UploadError};
use serde_json::Value;

/// The bodies here are always ready, so one poll finishes any future.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a ready body left a future pending"),
    }
}

type Chunks =
    StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

fn chunks(body: &[u8], splits: &[usize]) -> Chunks {
    let mut frames = Vec::new();
    let mut from = 0;
    for &s in splits {
        let s = s.clamp(from, body.len());
        frames.push(Ok(Frame::data(Bytes::copy_from_slice(&body[from..s]))));
        from = s;
    }
    frames.push(Ok(Frame::data(Bytes::copy_from_slice(&body[from..]))));
    StreamBody::new(futures_util::stream::iter(frames))
}

/// Reads the attributes, then drains the replayed body. `Ok` only when the
/// whole body was accepted; the bytes passed on are checked either way.
fn upload(body: &[u8], boundary: &str, splits: &[usize]) -> Result<Value, UploadError> {
    let (attrs, mut rest) = block_on(upload::read_attributes(chunks(body, splits), boundary))?;
    assert!(attrs.is_object());
    assert!(rest.size_hint().lower() <= body.len() as u64);
    let mut sent = Vec::new();
    loop {
        match block_on(rest.frame()) {
            None => break,
            Some(Ok(f)) => {
                if let Ok(d) = f.into_data() {
                    sent.extend_from_slice(&d);
                }
                // Whatever is passed on is the client's bytes, in order.
                assert!(body.starts_with(&sent), "replay diverged from the body");
            }
            Some(Err(e)) => {
                let e = e.downcast::<UploadError>().expect("only the guard fails");
                return Err(*e);
            }
        }
    }
    assert_eq!(sent, body, "accepted body not replayed exactly");
    Ok(attrs)
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, data)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => {
            scopegate::oauth::fuzz_form(data);
        }
        1 => {
            if let Ok(v) = scopegate::json::parse_strict(data) {
                // Strict accepts a subset of what serde_json does, and reads it
                // the same way.
                let lax: Value = serde_json::from_slice(data).expect("strict ok, lax refused");
                assert_eq!(v, lax);
                let again = serde_json::to_vec(&v).unwrap();
                assert!(scopegate::json::parse_strict(&again).is_ok());
            }
        }
        2 => {
            if let Ok(ct) = std::str::from_utf8(data)
                && let Some(b) = upload::boundary(ct)
            {
                assert!(!b.is_empty() && b.len() <= 70 && !b.contains(['\r', '\n']));
            }
        }
        _ => {
            let Some(nl) = data.iter().position(|&b| b == b'\n') else {
                return;
            };
            let Ok(ct) = std::str::from_utf8(&data[..nl]) else {
                return;
            };
            let Some(boundary) = upload::boundary(ct) else {
                return;
            };
            let rest = &data[nl + 1..];
            let Some((&n, rest)) = rest.split_first() else {
                return;
            };
            let n = usize::from(n % 5);
            if rest.len() < 2 * n {
                return;
            }
            let (pos, body) = rest.split_at(2 * n);
            let mut splits: Vec<usize> = pos
                .chunks(2)
                .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (body.len() + 1))
                .collect();
            splits.sort_unstable();
            let split = upload(body, &boundary, &splits);
            // Small bodies (below both read caps) get the same answer however
            // they are split.
            if body.len() < 8 * 1024 {
                let whole = upload(body, &boundary, &[]);
                assert_eq!(
                    split.is_ok(),
                    whole.is_ok(),
                    "split {splits:?}: {split:?} vs {whole:?}"
                );
                if let (Ok(a), Ok(b)) = (&split, &whole) {
                    assert_eq!(a, b);
                }
            }
        }
    }
});
