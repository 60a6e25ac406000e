//! The connection pool behind the proxy path: one per upstream origin.
//!
//! hyper-util's pooled client costs about 12,000 instructions per request on
//! top of hyper's own HTTP/1 connection (measured with `benches/load/floor.rs`,
//! a bare proxy, with and without `FLOOR_POOL=conn`): a pool key hashed on
//! every request, a task spawned per request to hand the connection back,
//! URI and `Host` rewrites. Here the pool knows its one origin, so it is a
//! locked stack of idle HTTP/1 connections plus, when the upstream speaks
//! HTTP/2 (TLS ALPN), one shared multiplexed connection. Checkout pops; the
//! answer's body puts the connection back the moment it ends.
//!
//! A request without a body (most API calls) goes over HTTP/1.1 by the lean
//! exchange of [`super::h1`], in the client's own task; one with a body
//! (an upload) goes through hyper's client connection. Each kind keeps its
//! own stack of idle connections.
//!
//! What the [`Settings`] bound, and why:
//! - `idle_timeout`: an idle connection older than this is closed (at
//!   checkout, and by a reaper task, so connections at the bottom of the
//!   stack do not sit in CLOSE_WAIT after the upstream dropped them).
//! - `max_idle`: idle HTTP/1 connections kept per kind; more are closed.
//! - `max_connections`, `connection_wait`: open connections per origin
//!   (idle or busy, HTTP/1 or HTTP/2). A request that needs a new one
//!   beyond the bound waits for a connection to go idle or close, at most
//!   `connection_wait`, then fails ([`PoolError::Busy`], a 503): a burst
//!   cannot open thousands of sockets to the upstream.
//! - `h2_keepalive`: an HTTP/2 connection is pinged this often, and closed
//!   when a ping goes unanswered as long, so a silently dropped connection
//!   is found before requests time out on it. (TCP keepalive, set on the
//!   connector, does the same below HTTP/1.)
//! - `body_idle_timeout`: see [`super::watch`].
//!
//! A pooled connection the upstream has just closed is found out before it
//! is used (the lean path looks for an end of stream already received) or
//! when the request cannot be written (hyper hands the request back
//! unsent), and the request goes out once more on a new connection. A
//! request that may have been received is sent again only as RFC 9110
//! 9.2.2 allows: an idempotent one whose pooled connection closed before
//! any answer byte, or one HTTP/2 says was not processed (GOAWAY,
//! `REFUSED_STREAM`) and that has no body to replay. No socket is read,
//! written or closed while the pool's lock is held.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use prometheus::IntCounterVec;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

mod reap;
mod wait;

use super::h1;
use super::watch::Watched;
use crate::body::{self, Body, BoxError};
use wait::Got;

/// How the pool treats its connections; see the module documentation.
/// (`tcp_keepalive` is the connector's.)
pub type Settings = crate::config::UpstreamPool;

/// Why a request got no answer from the upstream.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("cannot connect: {0}")]
    Connect(BoxError),
    #[error(transparent)]
    Http(#[from] hyper::Error),
    #[error(transparent)]
    H1(#[from] h1::H1Error),
    #[error("no connection to the upstream came free in time")]
    Busy,
}

pub struct Pool {
    /// Scheme and authority to connect to.
    origin: Uri,
    connector: HttpsConnector<HttpConnector>,
    settings: Settings,
    idle: Mutex<Idle>,
    /// One permit per open connection.
    limit: Arc<Semaphore>,
    /// Requests waiting for a connection (see [`Pool::idle_or_permit`]).
    waiting: AtomicUsize,
    /// Wakes them when a connection goes idle.
    returned: Notify,
    /// `scopegate_upstream_errors_total`, for the failures only the pool sees.
    errors: Option<IntCounterVec>,
}

#[derive(Default)]
struct Idle {
    /// hyper's HTTP/1 connections, for requests with a body.
    h1: Vec<(http1::SendRequest<Body>, Instant)>,
    /// Connections for the lean exchange.
    lean: Vec<(h1::Conn, Instant)>,
    h2: Option<http2::SendRequest<Body>>,
}

impl Idle {
    /// The shared HTTP/2 connection, if the upstream speaks it and it is open.
    fn live_h2(&mut self) -> Option<http2::SendRequest<Body>> {
        match &self.h2 {
            Some(h2) if !h2.is_closed() => Some(h2.clone()),
            Some(_) => {
                self.h2 = None;
                None
            }
            None => None,
        }
    }
}

/// What the lean path found idle.
enum Lean {
    H2(http2::SendRequest<Body>),
    H1(h1::Conn),
}

/// A new connection: HTTP/2 if ALPN chose it (already shared in the pool).
enum Fresh {
    H2(http2::SendRequest<Body>),
    H1(h1::Stream, OwnedSemaphorePermit),
}

enum Sender {
    H1(http1::SendRequest<Body>),
    H2(http2::SendRequest<Body>),
}

impl Pool {
    pub fn new(
        origin: Uri,
        connector: HttpsConnector<HttpConnector>,
        settings: Settings,
        errors: Option<IntCounterVec>,
    ) -> Arc<Pool> {
        let pool = Arc::new(Pool {
            origin,
            connector,
            limit: Arc::new(Semaphore::new(
                settings.max_connections.clamp(1, Semaphore::MAX_PERMITS),
            )),
            settings,
            idle: Mutex::new(Idle::default()),
            waiting: AtomicUsize::new(0),
            returned: Notify::new(),
            errors,
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(reap::reap(Arc::downgrade(&pool)));
        }
        pool
    }

    fn lock(&self) -> MutexGuard<'_, Idle> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn body_idle_timeout(&self) -> Duration {
        self.settings.body_idle_timeout
    }

    pub(super) fn count_error(&self, kind: &str) {
        if let Some(e) = &self.errors {
            e.with_label_values(&[kind]).inc();
        }
    }

    /// Open connections to this origin (idle or busy).
    pub fn open_connections(&self) -> usize {
        self.settings
            .max_connections
            .clamp(1, Semaphore::MAX_PERMITS)
            .saturating_sub(self.limit.available_permits())
    }

    /// Sends `req` (its URI in origin form, the path and query that HTTP/1.1
    /// sends to an origin server (RFC 9112 3.2.1), its `Host` set) and
    /// returns the answer, whose body hands the connection back.
    pub async fn send(self: &Arc<Pool>, req: Request<Body>) -> Result<Response<Body>, PoolError> {
        if fits_lean(&req) {
            return self.send_lean(req).await;
        }
        let (parts, body) = req.into_parts();
        let (body, sent) = Watched::upload(body, self.clone());
        let mut req = Request::from_parts(parts, body::boxed(body));
        if let Some(sender) = self.checkout() {
            match self.try_send(sender, req, &sent).await {
                Ok(resp) => return Ok(resp),
                // Not written (the upstream closed the idle connection): once more, fresh.
                Err(Unsent(Some(back), _)) => req = back,
                Err(Unsent(None, e)) => return Err(e),
            }
        }
        let sender = match self.idle_or_permit(|| self.checkout()).await? {
            Got::Idle(s) => s,
            Got::New(permit) => self.connect(permit).await?,
        };
        self.try_send(sender, req, &sent)
            .await
            .map_err(|Unsent(_, e)| e)
    }

    /// A request without a body, by the lean exchange (or over HTTP/2 when
    /// the upstream speaks it).
    async fn send_lean(self: &Arc<Pool>, req: Request<Body>) -> Result<Response<Body>, PoolError> {
        let (parts, body) = req.into_parts();
        // Written only for an HTTP/1 connection, and once for both tries.
        let head = || {
            let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
            let mut head = Vec::with_capacity(128 + 64 * parts.headers.len());
            h1::encode_head(&parts.method, target, &parts.headers, &mut head);
            head
        };
        let mut written = None;
        match self.checkout_lean() {
            Some(Lean::H2(s)) => return self.send_h2(s, Request::from_parts(parts, body)).await,
            Some(Lean::H1(conn)) => {
                let head = written.insert(head());
                match conn.exchange(head, &parts.method, true, self).await {
                    Ok(resp) => return Ok(resp.map(body::boxed)),
                    // Closed while idle, and safe to send again: once more, fresh.
                    Err(h1::Failed::Retry(_)) => {}
                    Err(h1::Failed::Final(e)) => return Err(e.into()),
                }
            }
            None => {}
        }
        let fresh = match self.idle_or_permit(|| self.checkout_lean()).await? {
            Got::Idle(Lean::H2(s)) => Fresh::H2(s),
            Got::Idle(Lean::H1(conn)) => {
                // Went idle while this request waited: used as a pooled one.
                let head = written.get_or_insert_with(head);
                return match conn.exchange(head, &parts.method, true, self).await {
                    Ok(resp) => Ok(resp.map(body::boxed)),
                    Err(h1::Failed::Retry(e) | h1::Failed::Final(e)) => Err(e.into()),
                };
            }
            Got::New(permit) => self.connect_io(permit).await?,
        };
        match fresh {
            Fresh::H2(s) => self.send_h2(s, Request::from_parts(parts, body)).await,
            Fresh::H1(io, permit) => {
                let head = written.get_or_insert_with(head);
                match h1::Conn::new(io, permit)
                    .exchange(head, &parts.method, false, self)
                    .await
                {
                    Ok(resp) => Ok(resp.map(body::boxed)),
                    Err(h1::Failed::Retry(e) | h1::Failed::Final(e)) => Err(e.into()),
                }
            }
        }
    }

    /// A request without a body over HTTP/2. Sent once more on a new
    /// connection when HTTP/2 proves the first try was not processed: never
    /// handed to the connection (it was closing), or refused by a GOAWAY or
    /// `REFUSED_STREAM` (RFC 9113 8.7).
    async fn send_h2(
        self: &Arc<Pool>,
        s: http2::SendRequest<Body>,
        req: Request<Body>,
    ) -> Result<Response<Body>, PoolError> {
        let (parts, body) = req.into_parts();
        let again = parts.clone();
        let sent = Arc::new(AtomicBool::new(true));
        let e = match self
            .try_send(Sender::H2(s), Request::from_parts(parts, body), &sent)
            .await
        {
            Ok(resp) => return Ok(resp),
            Err(Unsent(_, e)) if unprocessed(&e) => e,
            Err(Unsent(Some(_), e)) => e,
            Err(Unsent(None, e)) => return Err(e),
        };
        tracing::debug!(error = %e, "HTTP/2 request not processed; sending it again");
        self.forget_h2();
        let sender = match self.idle_or_permit(|| self.checkout()).await? {
            Got::Idle(s) => s,
            Got::New(permit) => self.connect(permit).await?,
        };
        self.try_send(sender, Request::from_parts(again, body::empty()), &sent)
            .await
            .map_err(|Unsent(_, e)| e)
    }

    /// Drops the shared HTTP/2 connection: it refused a request, so new
    /// ones go to a new connection (the old one finishes what it carries).
    fn forget_h2(&self) {
        let old = self.lock().h2.take();
        drop(old);
    }

    /// Pops idle connections off the stack `pick` chooses until one is
    /// fresh and `usable`; the checks, and the closing of stale ones, run
    /// with the lock released.
    fn pop_usable<T>(
        &self,
        pick: impl Fn(&mut Idle) -> &mut Vec<(T, Instant)>,
        usable: impl Fn(&mut T) -> bool,
    ) -> Option<T> {
        loop {
            let (mut c, since) = pick(&mut self.lock()).pop()?;
            if since.elapsed() < self.settings.idle_timeout && usable(&mut c) {
                return Some(c);
            }
        }
    }

    /// Puts `c` on the stack `pick` chooses, unless that holds `max_idle`
    /// already (then `c` is closed, outside the lock), and wakes a waiter.
    fn push_idle<T>(&self, pick: impl Fn(&mut Idle) -> &mut Vec<(T, Instant)>, c: T) {
        let full = {
            let mut idle = self.lock();
            let stack = pick(&mut idle);
            if stack.len() < self.settings.max_idle {
                stack.push((c, Instant::now()));
                None
            } else {
                Some(c)
            }
        };
        drop(full);
        // `idle_or_permit` counts itself before it looks at the stacks, and
        // the lock orders that against the push above: no waiter is missed.
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.returned.notify_waiters();
        }
    }

    /// An idle connection for the lean path, if a live one is at hand.
    fn checkout_lean(&self) -> Option<Lean> {
        // One lock for the common case (an HTTP/2 connection, or a fresh
        // idle one on top of the stack); more only to skip stale ones.
        let top = {
            let mut idle = self.lock();
            if let Some(h2) = idle.live_h2() {
                return Some(Lean::H2(h2));
            }
            idle.lean.pop()?
        };
        let (mut c, since) = top;
        if since.elapsed() < self.settings.idle_timeout && c.is_idle_usable() {
            return Some(Lean::H1(c));
        }
        drop(c);
        self.pop_usable(|i| &mut i.lean, h1::Conn::is_idle_usable)
            .map(Lean::H1)
    }

    /// Takes back a lean connection whose answer ended cleanly.
    pub(super) fn give_back_h1(&self, c: h1::Conn) {
        self.push_idle(|i| &mut i.lean, c);
    }

    async fn try_send(
        self: &Arc<Pool>,
        sender: Sender,
        req: Request<Body>,
        sent: &Arc<AtomicBool>,
    ) -> Result<Response<Body>, Unsent> {
        let checked =
            |mut resp: Response<Incoming>| match h1::check_framed_answer(resp.headers_mut()) {
                Ok(()) => Ok(resp),
                Err(e) => {
                    tracing::debug!(error = %e, "upstream answer refused");
                    Err(PoolError::H1(e))
                }
            };
        let refused = |e| Unsent(None, e);
        match sender {
            Sender::H1(mut s) => match s.try_send_request(req).await {
                Ok(resp) => {
                    Ok(self.give_back_after(checked(resp).map_err(refused)?, s, sent.clone()))
                }
                Err(mut e) => Err(Unsent(e.take_message(), e.into_error().into())),
            },
            Sender::H2(mut s) => match s.try_send_request(self.absolute_form(req)).await {
                Ok(resp) => {
                    let pool = self.clone();
                    Ok(checked(resp)
                        .map_err(refused)?
                        .map(|b| body::boxed(Watched::answer(b, pool))))
                }
                Err(mut e) => Err(Unsent(e.take_message(), e.into_error().into())),
            },
        }
    }

    /// HTTP/2 names the scheme and authority in the request itself.
    fn absolute_form(&self, mut req: Request<Body>) -> Request<Body> {
        if req.uri().scheme().is_none()
            && let Some(pq) = req.uri().path_and_query().cloned()
            && let Ok(uri) = super::with_path(&self.origin, pq)
        {
            *req.uri_mut() = uri;
        }
        req
    }

    /// An idle connection, if a live one is at hand.
    fn checkout(&self) -> Option<Sender> {
        if let Some(h2) = self.lock().live_h2() {
            return Some(Sender::H2(h2));
        }
        self.pop_usable(|i| &mut i.h1, |s| !s.is_closed())
            .map(Sender::H1)
    }

    fn give_back(&self, s: http1::SendRequest<Body>) {
        if s.is_closed() {
            return;
        }
        self.push_idle(|i| &mut i.h1, s);
    }

    /// The answer with a body that returns `s` to the pool when it ends (an
    /// answer without a body returns it at once), provided the request's
    /// body was sent to the end: after an early answer (a 413 before the
    /// upload is through) the connection is not handed to another request.
    /// A body dropped half-read drops the connection with it: hyper cannot
    /// reuse it.
    fn give_back_after(
        self: &Arc<Pool>,
        resp: Response<Incoming>,
        s: http1::SendRequest<Body>,
        sent: Arc<AtomicBool>,
    ) -> Response<Body> {
        let pool = self.clone();
        if http_body::Body::is_end_stream(resp.body()) {
            if sent.load(Ordering::Acquire) {
                self.give_back(s);
            }
            return resp.map(|b| body::boxed(Watched::answer(b, pool)));
        }
        resp.map(|inner| {
            body::boxed(Watched::answer(
                GiveBack {
                    inner,
                    back: Some((s, pool.clone(), sent)),
                },
                pool,
            ))
        })
    }

    async fn connect(&self, permit: OwnedSemaphorePermit) -> Result<Sender, PoolError> {
        match self.connect_io(permit).await? {
            Fresh::H2(s) => Ok(Sender::H2(s)),
            Fresh::H1(io, permit) => {
                let (s, conn) = http1::handshake(io).await?;
                tokio::spawn(async move {
                    let _permit = permit;
                    let _ = conn.await;
                });
                Ok(Sender::H1(s))
            }
        }
    }

    async fn connect_io(&self, permit: OwnedSemaphorePermit) -> Result<Fresh, PoolError> {
        use tower_service::Service;
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(PoolError::Connect)?;
        let io = connector
            .call(self.origin.clone())
            .await
            .map_err(PoolError::Connect)?;
        if io.connected().is_negotiated_h2() {
            let ping = self.settings.h2_keepalive;
            let (s, conn) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .keep_alive_interval(ping)
                .keep_alive_timeout(ping)
                .keep_alive_while_idle(true)
                .handshake(io)
                .await?;
            // Its errors surface on the requests it carries.
            tokio::spawn(async move {
                let _permit = permit;
                let _ = conn.await;
            });
            let old = self.lock().h2.replace(s.clone());
            drop(old);
            Ok(Fresh::H2(s))
        } else {
            Ok(Fresh::H1(Box::new(io), permit))
        }
    }
}

/// Whether HTTP/2 says the request was not processed (RFC 9113 8.7): a
/// stream the server refused, or one above a GOAWAY's last stream id.
fn unprocessed(e: &PoolError) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(h2) = err.downcast_ref::<h2::Error>() {
            return h2.reason() == Some(h2::Reason::REFUSED_STREAM)
                || (h2.is_go_away() && h2.is_remote());
        }
        cur = err.source();
    }
    false
}

/// Whether `req` can take the lean path: no body, origin form, `Host` set.
fn fits_lean(req: &Request<Body>) -> bool {
    http_body::Body::is_end_stream(req.body())
        && req.uri().scheme().is_none()
        && req.version() <= http::Version::HTTP_11
        && req.headers().contains_key(http::header::HOST)
}

/// A failed send, with the request when hyper did not write it.
struct Unsent(Option<Request<Body>>, PoolError);

/// An answer's body that returns its HTTP/1 connection to the pool at the
/// end, if the request's body was sent whole.
struct GiveBack {
    inner: Incoming,
    back: Option<(http1::SendRequest<Body>, Arc<Pool>, Arc<AtomicBool>)>,
}

impl http_body::Body for GiveBack {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => self.inner.is_end_stream(),
            _ => false,
        };
        if ended
            && let Some((s, pool, sent)) = self.back.take()
            && sent.load(Ordering::Acquire)
        {
            pool.give_back(s);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
