//! The `scopegate` command: parse arguments, load config, set up logging,
//! call the library. Config errors exit with code 64 (EX_USAGE) before any
//! port is bound.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc, not the system allocator: a proxied request allocates a score
/// of small buffers and frees them in bursts, where glibc's malloc spent
/// ~3,000 instructions a request (callgrind, benches/load/instructions.sh).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "scopegate",
    version,
    about = "Downscoped tokens and instant revocation in front of a content API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run the gateway and a sample Box-shaped API, offline, with a walkthrough.
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
    /// Validate a config file (and the files it names) and print the route table.
    CheckConfig { config: PathBuf },
    /// Fleet mode: declare the revocation stream complete as it is. Run once
    /// for a new fleet; replicas wait (not ready) until a stream has an epoch.
    FleetInit {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Print a keyring file with one fresh random key.
    Keygen {
        #[arg(long, default_value = "k1")]
        id: String,
    },
}

const EX_USAGE: u8 = 64;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Keygen { id } => {
            print!("{}", scopegate::token::Keyring::generate_toml(&id));
            ExitCode::SUCCESS
        }
        Command::CheckConfig { config } => match scopegate::app::load(&config) {
            Ok(l) => {
                use std::io::Write;
                // A closed pipe (`| head`) ends the listing quietly.
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{}: ok", config.display());
                for r in l.policy.routes() {
                    let object = format!("{:?}", r.object);
                    let fields = r
                        .fields
                        .as_ref()
                        .map(|f| format!("  fields: {}", f.describe()))
                        .unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "{:<32} {:<7} {:<56} {:<36} {}{fields} (origin {}{})",
                        r.name,
                        r.method,
                        r.template,
                        object,
                        r.scope_names,
                        r.origin.as_str(),
                        if r.answer_bytes { ", answer bytes" } else { "" }
                    );
                }
                ExitCode::SUCCESS
            }
            Err(p) => {
                eprintln!("{p}");
                ExitCode::from(EX_USAGE)
            }
        },
        Command::Demo { listen } => {
            init_logging(false, std::time::Duration::from_millis(20));
            runtime().block_on(async {
                match scopegate::demo::run(listen, shutdown_signal()).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("demo: {e}");
                        ExitCode::FAILURE
                    }
                }
            })
        }
        Command::FleetInit { config } => {
            let loaded = match scopegate::app::load(&config) {
                Ok(l) => l,
                Err(p) => {
                    eprintln!("{p}");
                    return ExitCode::from(EX_USAGE);
                }
            };
            let Some(stream) = loaded.config.stream else {
                eprintln!(
                    "{}: revocation.backend: fleet-init needs backend = \"redis\"",
                    config.display()
                );
                return ExitCode::from(EX_USAGE);
            };
            use scopegate::revocation::epoch::{Init, init_fleet};
            match runtime().block_on(init_fleet(&stream.url, &stream.key)) {
                Ok(Init::Created(e)) => {
                    println!("stream {}: epoch {e} created", stream.key);
                    ExitCode::SUCCESS
                }
                Ok(Init::Existing(e)) => {
                    println!(
                        "stream {}: epoch {e} already in force; nothing changed",
                        stream.key
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("fleet-init: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve { config } => {
            let loaded = match scopegate::app::load(&config) {
                Ok(l) => l,
                Err(p) => {
                    eprintln!("{p}");
                    return ExitCode::from(EX_USAGE);
                }
            };
            init_logging(loaded.config.log_json, loaded.config.log_flush);
            runtime().block_on(serve(loaded))
        }
    }
}

async fn serve(loaded: scopegate::app::Loaded) -> ExitCode {
    let tls = loaded.tls.clone();
    let (public_addr, admin_addr, grace) = (
        loaded.config.public,
        loaded.config.admin,
        loaded.config.drain,
    );
    let gw = match scopegate::app::build(loaded, scopegate::metrics::Metrics::new()) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let public = match tokio::net::TcpListener::bind(public_addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {public_addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let admin = match tokio::net::TcpListener::bind(admin_addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {admin_addr} (admin): {e}");
            return ExitCode::FAILURE;
        }
    };
    // Tests and supervisors read the bound addresses from this line.
    println!(
        "scopegate listening public={} admin={}",
        public
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        admin
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    );
    tracing::info!(public = %public_addr, admin = %admin_addr, "scopegate started");
    // SIGHUP: reload the certificate, policy and keyring now.
    if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        let gw = gw.clone();
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                gw.request_reload();
            }
        });
    }
    scopegate::server::run(gw, public, admin, tls, shutdown_signal(), grace).await;
    scopegate::access_log::flush();
    ExitCode::SUCCESS
}

fn runtime() -> tokio::runtime::Runtime {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = std::env::var("SCOPEGATE_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        b.worker_threads(n);
    }
    b.enable_all().build().expect("the tokio runtime starts")
}

fn init_logging(json: bool, flush: std::time::Duration) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SCOPEGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour codes only on a terminal: a log file or collector gets plain
    // text (and formatting them was a measurable share of a request's CPU).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    if json {
        b.json().init();
    } else {
        b.init();
    }
    scopegate::access_log::install(json, flush);
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
