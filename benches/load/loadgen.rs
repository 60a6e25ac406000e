//! Helper for the load benchmark (benches/load/run.sh): mints and revokes
//! tokens through the gateway's OAuth endpoints, and runs the fixed-rate
//! (open-loop) measurement that wrk cannot do (wrk2 is not packaged in
//! Debian).
//!
//! Open loop, as wrk2 does it: request `i` is due at `t0 + i / rate`, spread
//! round-robin over the connections; latency is measured from the time it was
//! DUE, not from when it was sent, so a stalled server is charged for every
//! request that queued behind the stall (no coordinated omission). Timers are
//! tokio's (1 ms granularity, like wrk2's event loop), so requests due within
//! one millisecond leave together; that burstiness is the same for every
//! target measured.
//!
//! Built as a Cargo example: `cargo build --release --example loadgen`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Exchange the parent for COUNT tokens, each restricted to its own file
    /// (ids FIRST_ID..), and print `token file_id` lines.
    Mint {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long)]
        parent: String,
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 1000)]
        first_id: u64,
        #[arg(long, default_value = "item_read item_preview item_download")]
        scope: String,
        #[arg(long, default_value_t = 8)]
        conns: usize,
        /// `files` or `folders`: what each token is restricted to.
        #[arg(long, default_value = "files")]
        kind: String,
    },
    /// Token exchanges for SECS seconds over CONNS connections, each for one
    /// of PARENTS parent tokens and one of RESOURCES files (a deterministic
    /// mix, so parents and resources repeat); prints `key=value` results.
    Exchange {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long, default_value_t = 100)]
        parents: usize,
        #[arg(long, default_value_t = 1000)]
        resources: u64,
        #[arg(long)]
        secs: f64,
        #[arg(long, default_value_t = 16)]
        conns: usize,
    },
    /// Revoke every token in a `token file_id` file (POST /oauth2/revoke).
    Revoke {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long)]
        tokens: String,
    },
    /// Fixed-rate load; prints one line of `key=value` results.
    Openloop {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long)]
        rate: f64,
        #[arg(long)]
        secs: f64,
        #[arg(long, default_value_t = 64)]
        conns: usize,
        /// `token file_id` lines; requests cycle over tokens and routes.
        #[arg(long)]
        tokens: String,
    },
}

type Sender = http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Sender {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).unwrap();
    let (tx, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    tx
}

async fn post_form(tx: &mut Sender, path: &str, form: String) -> (u16, Bytes) {
    let req = Request::post(path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(form)))
        .unwrap();
    let resp = tx.send_request(req).await.expect("request");
    let status = resp.status().as_u16();
    (
        status,
        resp.into_body().collect().await.expect("body").to_bytes(),
    )
}

fn exchange_form(parent: &str, scope: &str, resource: &str) -> String {
    format!(
        "grant_type={}&subject_token={}&subject_token_type={}&scope={}&resource={}",
        enc("urn:ietf:params:oauth:grant-type:token-exchange"),
        enc(parent),
        enc("urn:ietf:params:oauth:token-type:access_token"),
        enc(scope),
        enc(resource),
    )
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn read_tokens(path: &str) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .expect("tokens file")
        .lines()
        .filter_map(|l| {
            l.split_once(' ')
                .map(|(t, id)| (t.to_string(), id.to_string()))
        })
        .collect()
}

/// The routes the load uses (same set as tokens.lua).
fn path_for(route: usize, id: &str) -> String {
    match route % 4 {
        0 => format!("/2.0/files/{id}"),
        1 => format!("/2.0/files/{id}/content"),
        2 => format!("/2.0/files/{id}/thumbnail.png"),
        _ => "/2.0/users/me".to_string(),
    }
}

async fn mint(
    addr: SocketAddr,
    parent: String,
    count: usize,
    first_id: u64,
    scope: String,
    conns: usize,
    kind: String,
) {
    let mut tasks = Vec::new();
    for c in 0..conns {
        let (parent, scope, kind) = (parent.clone(), scope.clone(), kind.clone());
        tasks.push(tokio::spawn(async move {
            let mut tx = connect(addr).await;
            let mut out = Vec::new();
            let mut i = c;
            while i < count {
                let id = first_id + i as u64;
                let resource = format!("https://api.box.com/2.0/{kind}/{id}");
                let form = exchange_form(&parent, &scope, &resource);
                let (status, body) = post_form(&mut tx, "/oauth2/token", form).await;
                assert_eq!(
                    status,
                    200,
                    "exchange failed: {}",
                    String::from_utf8_lossy(&body)
                );
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                out.push((i, format!("{} {id}", v["access_token"].as_str().unwrap())));
                i += conns;
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    let text: String = all.into_iter().map(|(_, l)| l + "\n").collect();
    print!("{text}");
}

async fn revoke(addr: SocketAddr, tokens: String) {
    let mut tx = connect(addr).await;
    for (t, _) in read_tokens(&tokens) {
        let (status, _) = post_form(&mut tx, "/oauth2/revoke", format!("token={}", enc(&t))).await;
        assert_eq!(status, 200);
    }
}

async fn exchange(addr: SocketAddr, parents: usize, resources: u64, secs: f64, conns: usize) {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..conns {
        tasks.push(tokio::spawn(async move {
            let mut tx = connect(addr).await;
            let (mut lat, mut errors) = (Vec::new(), 0u64);
            let mut x = 0x9E3779B97F4A7C15u64 ^ (c as u64 + 1);
            while Instant::now() < until {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let parent = format!("bench-exchange-parent-{:04}", x % parents as u64);
                let file = 1000 + (x >> 20) % resources;
                let resource = format!("https://api.box.com/2.0/files/{file}");
                let form = exchange_form(&parent, "item_read item_preview", &resource);
                let sent = Instant::now();
                let (status, _) = post_form(&mut tx, "/oauth2/token", form).await;
                lat.push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32);
                if status != 200 {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    let (mut lat, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await.unwrap();
        lat.extend(l);
        errors += e;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    lat.sort_unstable();
    println!(
        "exchanges={} per_sec={:.0} errors={} p50_us={} p99_us={}",
        lat.len(),
        lat.len() as f64 / elapsed,
        errors,
        pct(&lat, 50.0),
        pct(&lat, 99.0)
    );
}

fn pct(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1]
}

async fn openloop(addr: SocketAddr, rate: f64, secs: f64, conns: usize, tokens: String) {
    let tokens = std::sync::Arc::new(read_tokens(&tokens));
    let total = (rate * secs) as u64;
    let interval = 1.0 / rate;
    let mut senders = Vec::new();
    for _ in 0..conns {
        senders.push(connect(addr).await);
    }
    let t0 = Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::new();
    for (c, mut tx) in senders.into_iter().enumerate() {
        let tokens = tokens.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity((total / conns as u64 + 1) as usize);
            let (mut errors, mut late) = (0u64, 0u64);
            let mut i = c as u64;
            // A cheap deterministic mix of tokens and routes.
            let mut x = 0x2545F4914F6CDD1Du64 ^ (c as u64 + 1);
            while i < total {
                let due = t0 + Duration::from_secs_f64(i as f64 * interval);
                let now = Instant::now();
                if due > now {
                    tokio::time::sleep_until(due.into()).await;
                } else if now - due > Duration::from_millis(1) {
                    late += 1;
                }
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let (tok, id) = &tokens[(x % tokens.len() as u64) as usize];
                let req = Request::get(path_for((x >> 32) as usize, id))
                    .header("host", "127.0.0.1")
                    .header("authorization", format!("Bearer {tok}"))
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                match tx.send_request(req).await {
                    Ok(resp) => {
                        if !resp.status().is_success() {
                            errors += 1;
                        }
                        let _ = resp.into_body().collect().await;
                    }
                    Err(_) => {
                        errors += 1;
                        tx = connect(addr).await;
                    }
                }
                lat.push(due.elapsed().as_micros().min(u32::MAX as u128) as u32);
                i += conns as u64;
            }
            (lat, errors, late)
        }));
    }
    let mut lat = Vec::new();
    let (mut errors, mut late) = (0, 0);
    for t in tasks {
        let (l, e, lt) = t.await.unwrap();
        lat.extend(l);
        errors += e;
        late += lt;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    lat.sort_unstable();
    println!(
        "requests={} achieved_rps={:.0} errors={} sent_late_over_1ms={} p50_us={} p99_us={} p999_us={} max_us={}",
        lat.len(),
        lat.len() as f64 / elapsed,
        errors,
        late,
        pct(&lat, 50.0),
        pct(&lat, 99.0),
        pct(&lat, 99.9),
        lat.last().copied().unwrap_or(0)
    );
}

fn main() {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        match cli.cmd {
            Cmd::Mint {
                addr,
                parent,
                count,
                first_id,
                scope,
                conns,
                kind,
            } => mint(addr, parent, count, first_id, scope, conns, kind).await,
            Cmd::Exchange {
                addr,
                parents,
                resources,
                secs,
                conns,
            } => exchange(addr, parents, resources, secs, conns).await,
            Cmd::Revoke { addr, tokens } => revoke(addr, tokens).await,
            Cmd::Openloop {
                addr,
                rate,
                secs,
                conns,
                tokens,
            } => openloop(addr, rate, secs, conns, tokens).await,
        }
    });
}
