//! Listeners: accept loops for the public and admin addresses, TLS, and a
//! graceful drain on shutdown.
//!
//! [`run`] takes listeners that are already bound, so tests bind port 0, and
//! a shutdown future, so tests (and SIGTERM in `main`) stop it cleanly: the
//! accept loops stop at once, in-flight requests get up to the drain grace
//! period, and background tasks stop with them.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::config::Limits;
use crate::gateway::{ConnInfo, Gateway};

/// The HTTP/1 and HTTP/2 servers. The protocol is known before hyper sees
/// a byte (the preface peek, or ALPN), so each connection goes straight to
/// one of them, without hyper-util's `auto` layer re-reading the start.
#[derive(Clone)]
struct Builders {
    h1: hyper::server::conn::http1::Builder,
    h2: hyper::server::conn::http2::Builder<TokioExecutor>,
}

fn builders(limits: &Limits) -> Builders {
    let mut h1 = hyper::server::conn::http1::Builder::new();
    h1.timer(TokioTimer::new())
        // Slowloris: the whole request head must arrive within this time.
        .header_read_timeout(limits.header_timeout)
        .max_headers(limits.headers)
        .max_buf_size(limits.header_bytes.max(8192));
    let mut h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_streams)
        // Bounds HPACK-decoded headers, so CONTINUATION floods are cut off.
        .max_header_list_size(limits.header_bytes as u32)
        // Rapid reset (CVE-2023-44487): a client that resets streams faster
        // than they are served is disconnected.
        .max_pending_accept_reset_streams(Some(64))
        .max_local_error_reset_streams(Some(256))
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    Builders { h1, h2 }
}

/// Serves one connection with the protocol it speaks, under the drain watcher.
async fn serve<I>(
    b: &Builders,
    io: I,
    is_h2: bool,
    svc: impl hyper::service::Service<
        http::Request<hyper::body::Incoming>,
        Response = http::Response<crate::body::Body>,
        Error = Infallible,
        Future = impl Future<Output = Result<http::Response<crate::body::Body>, Infallible>>
                 + Send
                 + 'static,
    > + Clone
    + Send
    + 'static,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    if is_h2 {
        let _ = watcher.watch(b.h2.serve_connection(io, svc)).await;
    } else {
        let _ = watcher.watch(b.h1.serve_connection(io, svc)).await;
    }
}

/// The HTTP/2 connection preface (RFC 9113 3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Peeks (without consuming) until the first bytes tell HTTP/2 prior
/// knowledge from HTTP/1. `None`: the client closed first.
async fn sniff_h2(stream: &tokio::net::TcpStream) -> Option<bool> {
    let mut buf = [0u8; 24];
    loop {
        let n = stream.peek(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        if buf[..n] != H2_PREFACE[..n] {
            return Some(false);
        }
        if n == H2_PREFACE.len() {
            return Some(true);
        }
        // A partial preface: wait for the rest (bounded by the caller's timeout).
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// An HTTP/1 connection whose request heads are read along with hyper, to
/// tell the gateway what hyper does not (see [`crate::framing`]).
fn watched<S>(io: S, limits: &Limits) -> (crate::framing::Watched<S>, Arc<crate::framing::Heads>) {
    let heads = Arc::new(crate::framing::Heads::default());
    // hyper's read buffer bounds a head (`builders`): the same bound here.
    let reader =
        crate::framing::Reader::new(limits.header_bytes.max(8192), limits.headers, heads.clone());
    (crate::framing::Watched::new(io, reader), heads)
}

/// The per-connection service: every request goes to the gateway.
fn service(
    gw: Arc<Gateway>,
    info: Arc<ConnInfo>,
) -> impl hyper::service::Service<
    http::Request<hyper::body::Incoming>,
    Response = http::Response<crate::body::Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<http::Response<crate::body::Body>, Infallible>> + Send,
> + Clone {
    service_fn(move |req| {
        let (gw, info) = (gw.clone(), info.clone());
        async move { Ok::<_, Infallible>(gw.handle(req, &info).await) }
    })
}

/// Serves until `shutdown` resolves, then drains for up to `grace`.
pub async fn run(
    gw: Arc<Gateway>,
    public: TcpListener,
    admin: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let maintenance = tokio::spawn(gw.revocations.clone().maintain(
        Duration::from_secs(60),
        gw.metrics.clone(),
        stop_rx.clone(),
    ));
    let admin_task = tokio::spawn(admin_loop(gw.clone(), admin, stop_rx.clone()));
    let consumer = gw.revocations.stream().cloned().map(|stream| {
        let g = gw.clone();
        tokio::spawn(stream.consume(
            gw.revocations.state().clone(),
            gw.metrics.clone(),
            move |ev| {
                // Eviction is memory hygiene: the state check refuses revoked tokens anyway.
                // Broader events leave the cache alone (see `Grants::evict`).
                if let crate::revocation::Target::Token(h) = &ev.target {
                    let h = *h;
                    let g = g.clone();
                    tokio::spawn(async move { g.grants.forget(&h).await });
                }
            },
            stop_rx.clone(),
        ))
    });
    let ssf = gw
        .ssf
        .get()
        .map(|rx| tokio::spawn(rx.clone().run(stop_rx.clone())));
    let tls_slot: crate::reload::TlsSlot = Arc::new(arc_swap::ArcSwapOption::new(tls));
    let watcher = tokio::spawn(crate::reload::watch(
        gw.clone(),
        tls_slot.clone(),
        gw.config.reload_poll,
        stop_rx.clone(),
    ));
    let graceful = GracefulShutdown::new();
    let builders = builders(&gw.config.limits);
    // Each connection holds a permit; at the limit, accepting pauses and new
    // clients wait in the kernel's backlog instead of exhausting descriptors.
    let permits = Arc::new(tokio::sync::Semaphore::new(gw.config.limits.connections));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = public.accept() => match accepted {
                Ok(a) => a,
                Err(_) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // Each connection takes the certificate in force when it arrives.
        let acceptor = tls_slot.load_full().map(tokio_rustls::TlsAcceptor::from);
        let gw = gw.clone();
        let watcher = graceful.watcher();
        let b = builders.clone();
        let handshake_timeout = gw.config.limits.header_timeout;
        // The connection (and any TLS handshake) runs on its own task so a
        // slow client cannot stall accepting; it holds its permit to the end.
        tokio::spawn(async move {
            let _permit = permit;
            match acceptor {
                None => {
                    // A client that connects and sends nothing is dropped
                    // after the header timeout, like one that dribbles.
                    let Ok(Some(is_h2)) =
                        tokio::time::timeout(handshake_timeout, sniff_h2(&stream)).await
                    else {
                        return;
                    };
                    let mut info = ConnInfo::new(peer, false);
                    if is_h2 {
                        let info = Arc::new(info);
                        serve(&b, TokioIo::new(stream), true, service(gw, info), watcher).await;
                    } else {
                        let (io, heads) = watched(stream, &gw.config.limits);
                        info.heads = Some(heads);
                        let svc = service(gw, Arc::new(info));
                        serve(&b, TokioIo::new(io), false, svc, watcher).await;
                    }
                }
                Some(acc) => {
                    let Ok(Ok(tls)) =
                        tokio::time::timeout(handshake_timeout, acc.accept(stream)).await
                    else {
                        return;
                    };
                    // ALPN decides; nothing is read before hyper's own timers run.
                    let is_h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                    let mut info = ConnInfo::new(peer, true);
                    if is_h2 {
                        let info = Arc::new(info);
                        serve(&b, TokioIo::new(tls), true, service(gw, info), watcher).await;
                    } else {
                        let (io, heads) = watched(tls, &gw.config.limits);
                        info.heads = Some(heads);
                        let svc = service(gw, Arc::new(info));
                        serve(&b, TokioIo::new(io), false, svc, watcher).await;
                    }
                }
            }
        });
    }
    drop(public);
    gw.set_ready(false);
    tracing::info!(
        grace_s = grace.as_secs(),
        "shutting down: draining in-flight requests"
    );
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("drain grace period over; closing remaining connections");
    }
    let _ = stop_tx.send(true);
    let _ = admin_task.await;
    let _ = maintenance.await;
    let _ = watcher.await;
    if let Some(c) = consumer {
        let _ = c.await;
    }
    if let Some(s) = ssf {
        let _ = s.await;
    }
}

async fn admin_loop(
    gw: Arc<Gateway>,
    admin: TcpListener,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    loop {
        tokio::select! {
            accepted = admin.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let gw = gw.clone();
                let b = b.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let gw = gw.clone();
                        async move { Ok::<_, Infallible>(crate::admin::handle(gw, req).await) }
                    });
                    let _ = b.serve_connection(TokioIo::new(stream), svc).await;
                });
            }
            _ = stop.changed() => return,
        }
    }
}
