//! The one body type every answer of the gateway uses.
//!
//! Forwarded bodies stream straight through (an upstream's `Incoming`, or a
//! client's upload with a re-read prefix in front); the gateway's own answers
//! are small and whole. Boxing both behind one type keeps handlers simple and
//! costs one allocation per answer.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, combinators::UnsyncBoxBody};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Body of every response (and of every forwarded request).
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// Wraps any body whose error converts into [`BoxError`].
pub fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// Reads a whole body, refusing one longer than `limit` bytes. Used only for
/// the small bodies the gateway must understand (OAuth forms, JSON naming an
/// item); uploads are never read whole.
pub async fn read_limited<B>(body: B, limit: usize) -> Result<Bytes, ReadError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    // A plain loop rather than `Limited` + `collect`: nothing held across
    // the await carries the `Into<BoxError>` bound, which rustc cannot prove
    // for every lifetime when a boxed body's future must be `Send`.
    let mut body = std::pin::pin!(body);
    let mut out = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(ReadError::Broken);
        };
        if let Ok(chunk) = frame.into_data() {
            if out.len() + chunk.len() > limit {
                return Err(ReadError::TooLarge);
            }
            out.extend_from_slice(&chunk);
        }
    }
    Ok(out.freeze())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    TooLarge,
    Broken,
}
