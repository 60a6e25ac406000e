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
//! A pooled connection the upstream has just closed is found out when the
//! request cannot be written: hyper hands the request back unsent, and it
//! goes out once more on a new connection. A request that was written is
//! never sent twice.

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
}

pub struct Pool {
    /// Scheme and authority to connect to.
    origin: Uri,
    connector: HttpsConnector<HttpConnector>,
    idle: Mutex<Idle>,
}

#[derive(Default)]
struct Idle {
    h1: Vec<(http1::SendRequest<Body>, Instant)>,
    h2: Option<http2::SendRequest<Body>>,
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
        if let Some(h2) = &idle.h2 {
            if !h2.is_closed() {
                return Some(Sender::H2(h2.clone()));
            }
            idle.h2 = None;
        }
        let now = Instant::now();
        while let Some((s, since)) = idle.h1.pop() {
            if !s.is_closed() && now.duration_since(since) < IDLE_TIMEOUT {
                return Some(Sender::H1(s));
            }
        }
        None
    }

    fn give_back(&self, s: http1::SendRequest<Body>) {
        if s.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.h1.len() < MAX_IDLE {
            idle.h1.push((s, Instant::now()));
        }
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
            Ok(Sender::H2(s))
        } else {
            let (s, conn) = http1::handshake(io).await?;
            tokio::spawn(conn);
            Ok(Sender::H1(s))
        }
    }
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
