//! Deadlines on bodies in flight between the upstream and the gateway.
//!
//! The response-head timeout bounds the wait for an answer to begin; these
//! bound each wait for the next byte after it. An upstream that sends a
//! head and then stalls, or a client whose upload stops half-way, would
//! otherwise hold the client's connection, the upstream connection and its
//! pool slot forever. When the deadline passes, the body fails: the
//! upstream connection is closed, the client's connection too (hyper cannot
//! finish an answer whose body broke), and `scopegate_upstream_errors_total`
//! counts it (`kind` `body_timeout` for answers, `upload_timeout` for
//! request bodies).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::{Instant, Sleep};

use super::pool::Pool;
use crate::body::BoxError;

/// When a body last moved. The timer is made the first time the body has
/// to wait (never, for an answer read whole with its head) and reset only
/// when it waits again after progress.
#[derive(Default)]
pub(super) struct Stall {
    sleep: Option<Pin<Box<Sleep>>>,
    /// Bytes moved since the timer was last set.
    moved: bool,
}

impl Stall {
    /// Called when the body has to wait: whether `limit` has passed since
    /// it last moved. If not, `cx` is woken when it will have.
    pub(super) fn expired(&mut self, cx: &mut Context<'_>, limit: Duration) -> bool {
        let moved = std::mem::take(&mut self.moved);
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if moved {
            sleep.as_mut().reset(Instant::now() + limit);
        }
        sleep.as_mut().poll(cx).is_ready()
    }

    /// The body moved (a frame, or its end).
    pub(super) fn progress(&mut self) {
        self.moved = true;
    }
}

/// A body that went without a byte for longer than its deadline.
#[derive(Debug, thiserror::Error)]
#[error("{0} stalled past the body idle timeout")]
pub struct Stalled(&'static str);

/// A body under a [`Stall`] deadline; for a request body, also records
/// whether it was sent to the end.
pub(super) struct Watched<B> {
    inner: B,
    stall: Stall,
    pool: Arc<Pool>,
    /// The error kind counted when the deadline passes.
    kind: &'static str,
    /// Set once the body has ended (request bodies only).
    sent: Option<Arc<AtomicBool>>,
    failed: bool,
}

impl<B> Watched<B> {
    /// An answer's body.
    pub(super) fn answer(inner: B, pool: Arc<Pool>) -> Watched<B> {
        Watched {
            inner,
            stall: Stall::default(),
            pool,
            kind: "body_timeout",
            sent: None,
            failed: false,
        }
    }

    /// A request body being uploaded, and the flag that tells it ended.
    pub(super) fn upload(inner: B, pool: Arc<Pool>) -> (Watched<B>, Arc<AtomicBool>)
    where
        B: http_body::Body,
    {
        let sent = Arc::new(AtomicBool::new(inner.is_end_stream()));
        let w = Watched {
            inner,
            stall: Stall::default(),
            pool,
            kind: "upload_timeout",
            sent: Some(sent.clone()),
            failed: false,
        };
        (w, sent)
    }
}

impl<B> http_body::Body for Watched<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.stall.progress();
                if let Some(sent) = &this.sent
                    && (frame.is_none() || this.inner.is_end_stream())
                    && !matches!(frame, Some(Err(_)))
                {
                    sent.store(true, Ordering::Release);
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                if this.stall.expired(cx, this.pool.body_idle_timeout()) {
                    this.failed = true;
                    this.pool.count_error(this.kind);
                    let what = if this.sent.is_some() {
                        "request body"
                    } else {
                        "answer body"
                    };
                    return Poll::Ready(Some(Err(Box::new(Stalled(what)))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        !self.failed && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
