//! The strict upload envelope (`upload::boundary` + `upload::read_attributes`)
//! held against an independent, standard parser (`multer`, axum's).
//!
//! Input: `content-type\n` + one count byte (mod 5) + that many 2-byte split
//! points + the body, which is fed in chunks split there.
//!
//! Properties, beyond "no panic":
//! - an accepted boundary is one multer also reads from the Content-Type,
//!   and equal;
//! - what the gateway passes on is always a prefix of the body, and the
//!   whole body when it accepts;
//! - accepted => multer reads exactly two fields: `attributes` (no
//!   filename) whose bytes parse (strictly) to the same JSON the gateway
//!   checked, then one file part with a filename whose bytes are the file
//!   bytes of the plain form (between the file head and the close);
//! - the verdict and the attributes do not depend on where the chunks split.
#![no_main]

use std::convert::Infallible;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use libfuzzer_sys::fuzz_target;
use scopegate::upload;
use serde_json::Value;

/// Everything here is fed from memory: a few polls finish any future.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..10_000 {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
    panic!("a future fed from memory stayed pending");
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

/// The gateway's verdict: the attributes when the whole body is accepted.
fn gateway(body: &[u8], boundary: &str, splits: &[usize]) -> Option<Value> {
    let (attrs, mut rest) =
        block_on(upload::read_attributes(chunks(body, splits), boundary)).ok()?;
    let mut sent = Vec::new();
    loop {
        match block_on(rest.frame()) {
            None => break,
            Some(Ok(f)) => {
                if let Ok(d) = f.into_data() {
                    sent.extend_from_slice(&d);
                }
                assert!(body.starts_with(&sent), "replay diverged from the body");
            }
            Some(Err(_)) => return None,
        }
    }
    assert_eq!(sent, body, "accepted body not replayed exactly");
    Some(attrs)
}

/// What multer reads: each field's name, filename and bytes.
fn standard(body: &[u8], boundary: &str) -> Result<Vec<(Option<String>, Option<String>, Vec<u8>)>, multer::Error> {
    let stream = futures_util::stream::iter(vec![Ok::<Bytes, Infallible>(Bytes::copy_from_slice(body))]);
    let mut form = multer::Multipart::new(stream, boundary);
    let mut out = Vec::new();
    block_on(async {
        while let Some(field) = form.next_field().await? {
            let name = field.name().map(str::to_owned);
            let filename = field.file_name().map(str::to_owned);
            let bytes = field.bytes().await?;
            out.push((name, filename, bytes.to_vec()));
        }
        Ok(out)
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fuzz_target!(|data: &[u8]| {
    let Some(nl) = data.iter().position(|&b| b == b'\n') else {
        return;
    };
    let Ok(ct) = std::str::from_utf8(&data[..nl]) else {
        return;
    };
    let Some(boundary) = upload::boundary(ct) else {
        return;
    };
    assert_eq!(
        multer::parse_boundary(ct).ok().as_deref(),
        Some(boundary.as_str()),
        "{ct:?}"
    );
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
    let split = gateway(body, &boundary, &splits);
    let whole = gateway(body, &boundary, &[]);
    // Bodies under the read-ahead cap are judged the same however split.
    if body.len() < upload::ATTRIBUTES_LIMIT {
        assert_eq!(split, whole, "split {splits:?}");
    }
    let Some(attrs) = whole else {
        return;
    };
    let fields = standard(body, &boundary).expect("accepted by the gateway, refused by multer");
    assert_eq!(fields.len(), 2, "{fields:?}");
    let (name, filename, bytes) = &fields[0];
    assert_eq!(name.as_deref(), Some("attributes"));
    assert!(filename.is_none());
    let theirs = scopegate::json::parse_strict(bytes).expect("multer's attributes are other bytes");
    assert_eq!(theirs, attrs);
    let (name, filename, bytes) = &fields[1];
    assert_ne!(name.as_deref(), Some("attributes"));
    assert!(filename.is_some());
    // The plain form's file bytes: after the second delimiter's part head,
    // up to the closing delimiter.
    let open = format!("--{boundary}\r\n");
    let second = find(&body[open.len()..], format!("\r\n--{boundary}\r\n").as_bytes()).unwrap()
        + open.len()
        + open.len()
        + 2;
    let start = second + find(&body[second..], b"\r\n\r\n").unwrap() + 4;
    let close = format!("\r\n--{boundary}--");
    let end = start + find(&body[start..], close.as_bytes()).unwrap();
    assert_eq!(&bytes[..], &body[start..end], "multer read other file bytes");
});
