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
//! A pooled connection the upstream has just closed is found out before it
//! is used (the lean path looks for an end of stream already received) or
//! when the request cannot be written (hyper hands the request back
//! unsent), and the request goes out once more on a new connection. A
//! request that may have been received is never sent twice, except a safe
//! one (GET, HEAD, ...) whose pooled connection closed before any answer.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{Connection, HttpConnector};
use hyper_util::rt::TokioExecutor;

use super::h1;
use crate::body::{self, Body, BoxError};

/// Idle HTTP/1 connections kept per origin.
const MAX_IDLE: usize = 1024;
/// An idle connection older than this is closed instead of reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a request got no answer from the upstream.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("cannot connect: {0}")]
    Connect(BoxError),
    #[error(transparent)]
    Http(#[from] hyper::Error),
    #[error(transparent)]
    H1(#[from] h1::H1Error),
}

pub struct Pool {
    /// Scheme and authority to connect to.
    origin: Uri,
    connector: HttpsConnector<HttpConnector>,
    idle: Mutex<Idle>,
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

/// The newest idle connection on `stack` that is fresh and still `usable`;
/// the stale ones above it are dropped.
fn pop_live<T>(stack: &mut Vec<(T, Instant)>, mut usable: impl FnMut(&mut T) -> bool) -> Option<T> {
    let now = Instant::now();
    while let Some((mut c, since)) = stack.pop() {
        if now.duration_since(since) < IDLE_TIMEOUT && usable(&mut c) {
            return Some(c);
        }
    }
    None
}

/// Returns `c` to `stack` unless it holds `MAX_IDLE` already.
fn push_idle<T>(stack: &mut Vec<(T, Instant)>, c: T) {
    if stack.len() < MAX_IDLE {
        stack.push((c, Instant::now()));
    }
}

/// What the lean path found idle.
enum Lean {
    H2(http2::SendRequest<Body>),
    H1(h1::Conn),
    Nothing,
}

/// A new connection: HTTP/2 if ALPN chose it (already shared in the pool).
enum Fresh {
    H2(http2::SendRequest<Body>),
    H1(h1::Stream),
}

enum Sender {
    H1(http1::SendRequest<Body>),
    H2(http2::SendRequest<Body>),
}

impl Pool {
    pub fn new(origin: Uri, connector: HttpsConnector<HttpConnector>) -> Arc<Pool> {
        Arc::new(Pool {
            origin,
            connector,
            idle: Mutex::new(Idle::default()),
        })
    }

    /// Sends `req` (its URI in origin form, the path and query that HTTP/1.1
    /// sends to an origin server (RFC 9112 3.2.1), its `Host` set) and
    /// returns the answer, whose body hands the connection back.
    pub async fn send(
        self: &Arc<Pool>,
        mut req: Request<Body>,
    ) -> Result<Response<Body>, PoolError> {
        if fits_lean(&req) {
            return self.send_lean(req).await;
        }
        if let Some(sender) = self.checkout() {
            match self.try_send(sender, req).await {
                Ok(resp) => return Ok(resp),
                // Not written (the upstream closed the idle connection): once more, fresh.
                Err(Unsent(Some(back), _)) => req = back,
                Err(Unsent(None, e)) => return Err(e.into()),
            }
        }
        let sender = self.connect().await?;
        self.try_send(sender, req)
            .await
            .map_err(|Unsent(_, e)| e.into())
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
            Lean::H2(s) => return self.send_h2(s, Request::from_parts(parts, body)).await,
            Lean::H1(conn) => {
                let head = written.insert(head());
                match conn.exchange(head, &parts.method, true, self).await {
                    Ok(resp) => return Ok(resp.map(body::boxed)),
                    // Closed while idle: once more, fresh.
                    Err(h1::Failed::Retry(_)) => {}
                    Err(h1::Failed::Final(e)) => return Err(e.into()),
                }
            }
            Lean::Nothing => {}
        }
        match self.connect_io().await? {
            Fresh::H2(s) => self.send_h2(s, Request::from_parts(parts, body)).await,
            Fresh::H1(io) => {
                let head = written.get_or_insert_with(head);
                match h1::Conn::new(io)
                    .exchange(head, &parts.method, false, self)
                    .await
                {
                    Ok(resp) => Ok(resp.map(body::boxed)),
                    Err(h1::Failed::Retry(e) | h1::Failed::Final(e)) => Err(e.into()),
                }
            }
        }
    }

    async fn send_h2(
        self: &Arc<Pool>,
        s: http2::SendRequest<Body>,
        req: Request<Body>,
    ) -> Result<Response<Body>, PoolError> {
        self.try_send(Sender::H2(s), req)
            .await
            .map_err(|Unsent(_, e)| e.into())
    }

    /// An idle connection for the lean path, if a live one is at hand.
    fn checkout_lean(&self) -> Lean {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h2) = idle.live_h2() {
            return Lean::H2(h2);
        }
        pop_live(&mut idle.lean, h1::Conn::is_idle_usable).map_or(Lean::Nothing, Lean::H1)
    }

    /// Takes back a lean connection whose answer ended cleanly.
    pub(super) fn give_back_h1(&self, c: h1::Conn) {
        push_idle(
            &mut self.idle.lock().unwrap_or_else(|p| p.into_inner()).lean,
            c,
        );
    }

    async fn try_send(
        self: &Arc<Pool>,
        sender: Sender,
        req: Request<Body>,
    ) -> Result<Response<Body>, Unsent> {
        match sender {
            Sender::H1(mut s) => match s.try_send_request(req).await {
                Ok(resp) => Ok(self.give_back_after(resp, s)),
                Err(mut e) => Err(Unsent(e.take_message(), e.into_error())),
            },
            Sender::H2(mut s) => match s.try_send_request(self.absolute_form(req)).await {
                Ok(resp) => Ok(resp.map(body::boxed)),
                Err(mut e) => Err(Unsent(e.take_message(), e.into_error())),
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
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h2) = idle.live_h2() {
            return Some(Sender::H2(h2));
        }
        pop_live(&mut idle.h1, |s| !s.is_closed()).map(Sender::H1)
    }

    fn give_back(&self, s: http1::SendRequest<Body>) {
        if s.is_closed() {
            return;
        }
        push_idle(
            &mut self.idle.lock().unwrap_or_else(|p| p.into_inner()).h1,
            s,
        );
    }

    /// The answer with a body that returns `s` to the pool when it ends (an
    /// answer without a body returns it at once). A body dropped half-read
    /// drops the connection with it: hyper cannot reuse it.
    fn give_back_after(
        self: &Arc<Pool>,
        resp: Response<Incoming>,
        s: http1::SendRequest<Body>,
    ) -> Response<Body> {
        if http_body::Body::is_end_stream(resp.body()) {
            self.give_back(s);
            return resp.map(body::boxed);
        }
        let pool = self.clone();
        resp.map(|inner| {
            body::boxed(GiveBack {
                inner,
                back: Some((s, pool)),
            })
        })
    }

    async fn connect(&self) -> Result<Sender, PoolError> {
        match self.connect_io().await? {
            Fresh::H2(s) => Ok(Sender::H2(s)),
            Fresh::H1(io) => {
                let (s, conn) = http1::handshake(io).await?;
                tokio::spawn(conn);
                Ok(Sender::H1(s))
            }
        }
    }

    async fn connect_io(&self) -> Result<Fresh, PoolError> {
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
            let (s, conn) = http2::handshake(TokioExecutor::new(), io).await?;
            // Its errors surface on the requests it carries.
            tokio::spawn(conn);
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            idle.h2 = Some(s.clone());
            Ok(Fresh::H2(s))
        } else {
            Ok(Fresh::H1(Box::new(io)))
        }
    }
}

/// Whether `req` can take the lean path: no body, origin form, `Host` set.
fn fits_lean(req: &Request<Body>) -> bool {
    http_body::Body::is_end_stream(req.body())
        && req.uri().scheme().is_none()
        && req.version() <= http::Version::HTTP_11
        && req.headers().contains_key(http::header::HOST)
}

/// A failed send, with the request when hyper did not write it.
struct Unsent(Option<Request<Body>>, hyper::Error);

/// An answer's body that returns its HTTP/1 connection to the pool at the end.
struct GiveBack {
    inner: Incoming,
    back: Option<(http1::SendRequest<Body>, Arc<Pool>)>,
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
        if ended && let Some((s, pool)) = self.back.take() {
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
