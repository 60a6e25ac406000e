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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        let client: Client<_, hyper::body::Incoming> =
            Client::builder(TokioExecutor::new()).build(http);
        let listener = tokio::net::TcpListener::bind(&listen).await.unwrap();
        println!("floor listening {listen}");
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let _ = stream.set_nodelay(true);
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
