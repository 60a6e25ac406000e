//! The floor for benches/load/run.sh: a bare hyper reverse proxy with no
//! checks at all (hyper server, hyper-util pooled client, one worker
//! thread). What scopegate costs beyond this is the gateway's own work;
//! what this costs beyond nginx is the HTTP stack's.
//!
//!   floor LISTEN_ADDR UPSTREAM_URL

use std::convert::Infallible;

use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

fn main() {
    let mut args = std::env::args().skip(1);
    let listen = args.next().expect("usage: floor LISTEN_ADDR UPSTREAM_URL");
    let upstream: http::Uri = args.next().expect("UPSTREAM_URL").parse().expect("a URL");
    // FLOOR_RT=current: tokio's single-threaded scheduler instead.
    let rt = if std::env::var("FLOOR_RT").as_deref() == Ok("current") {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    };
    rt.block_on(async move {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        let client: Client<_, hyper::body::Incoming> =
            Client::builder(TokioExecutor::new()).build(http);
        let listener = tokio::net::TcpListener::bind(&listen).await.unwrap();
        println!("floor listening {listen}");
        // FLOOR_POOL=conn: each client connection owns one upstream
        // connection (no shared pool at all): the least a pool can cost.
        let own = std::env::var("FLOOR_POOL").as_deref() == Ok("conn");
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let _ = stream.set_nodelay(true);
            if own {
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let sender = std::sync::Arc::new(tokio::sync::Mutex::new(None));
                    let svc = service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                        let upstream = upstream.clone();
                        let sender = sender.clone();
                        async move {
                            let mut guard = sender.lock().await;
                            if guard.as_ref().is_none_or(
                                |s: &hyper::client::conn::http1::SendRequest<
                                    hyper::body::Incoming,
                                >| s.is_closed(),
                            ) {
                                let addr = format!(
                                    "{}:{}",
                                    upstream.host().unwrap(),
                                    upstream.port_u16().unwrap()
                                );
                                let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
                                let _ = tcp.set_nodelay(true);
                                let (s, conn) =
                                    hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                                        .await
                                        .unwrap();
                                tokio::spawn(conn);
                                *guard = Some(s);
                            }
                            let s = guard.as_mut().unwrap();
                            let _ = s.ready().await;
                            // Origin-form target, Host of the upstream.
                            let host = upstream.authority().unwrap().as_str();
                            req.headers_mut().insert(
                                http::header::HOST,
                                http::HeaderValue::from_str(host).unwrap(),
                            );
                            Ok::<_, Infallible>(match s.send_request(req).await {
                                Ok(r) => r.map(http_body_util::Either::Left),
                                Err(_) => http::Response::builder()
                                    .status(502)
                                    .body(http_body_util::Either::Right(
                                        http_body_util::Empty::new(),
                                    ))
                                    .unwrap(),
                            })
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
                continue;
            }
            let client = client.clone();
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                    let client = client.clone();
                    let upstream = upstream.clone();
                    async move {
                        let mut parts = upstream.into_parts();
                        parts.path_and_query = req.uri().path_and_query().cloned();
                        *req.uri_mut() = http::Uri::from_parts(parts).unwrap();
                        req.headers_mut().remove(http::header::HOST);
                        Ok::<_, Infallible>(match client.request(req).await {
                            Ok(r) => r.map(http_body_util::Either::Left),
                            Err(_) => http::Response::builder()
                                .status(502)
                                .body(http_body_util::Either::Right(http_body_util::Empty::new()))
                                .unwrap(),
                        })
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
}
