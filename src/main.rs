#![forbid(unsafe_code)]

use clap::Parser;
use nft_event_router::auth::JwtKeys;
use nft_event_router::cli::{Cli, Command};
use nft_event_router::config::Settings;
use nft_event_router::kafka::standalone::{first_listener, Forwarder};
use nft_event_router::kafka::{ensure_topics, Brokers, KafkaCluster};
use nft_event_router::startup::{shutdown_signal, Application};
use secrecy::ExposeSecret;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A development certificate needs no configuration: it can be written before there is one.
    if let Some(Command::DevCert { out, names }) = &cli.command {
        return dev_cert(out, names.clone());
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Token { user, role, ttl } => {
            let keys = JwtKeys::new(settings.auth.jwt_secret.expose_secret().as_bytes());
            match keys.mint(
                &user,
                role,
                ttl.unwrap_or(settings.auth.dev_token_ttl.as_secs()),
            ) {
                Ok(token) => {
                    println!("{token}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e:?}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve => serve(settings),
        Command::DevCert { out, names } => dev_cert(&out, names),
        Command::KafkaCluster { bind } => kafka_cluster(&settings, &bind),
    }
}

/// Writes a self-signed pair under `out` and prints the configuration that serves it.
fn dev_cert(out: &std::path::Path, names: Vec<String>) -> ExitCode {
    let written = nft_event_router::tls::self_signed(names.clone())
        .map_err(|e| e.to_string())
        .and_then(|(cert, key)| {
            std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
            let (cert_path, key_path) = (out.join("cert.pem"), out.join("key.pem"));
            std::fs::write(&cert_path, cert)
                .map_err(|e| format!("{}: {e}", cert_path.display()))?;
            std::fs::write(&key_path, key).map_err(|e| format!("{}: {e}", key_path.display()))?;
            Ok((cert_path, key_path))
        });
    match written {
        Ok((cert, key)) => {
            eprintln!(
                "self-signed certificate for {} (development only)",
                names.join(", ")
            );
            println!(
                "[http.tls]\ncert = {:?}\nkey = {:?}",
                cert.display().to_string(),
                key.display().to_string()
            );
            println!(
                "# or: NFT_ROUTER__HTTP__TLS__CERT={} NFT_ROUTER__HTTP__TLS__KEY={}",
                cert.display(),
                key.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dev-cert: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(mut settings: Settings) -> ExitCode {
    let instance = settings.resolve_instance_id();
    nft_event_router::logging::init(&settings.log.level, settings.log.format, instance.as_str());
    let result = actix_web::rt::System::new().block_on(async move {
        let shutdown = shutdown_signal()?;
        let app = Application::build(&settings).await?;
        // A certificate names `localhost` rather than an address.
        let host = if settings.http.tls.files.is_some() {
            "https://localhost"
        } else {
            "http://127.0.0.1"
        };
        let base = format!("{host}:{}", app.port());
        log::info!("nft-event-router listening on {} (port {})", settings.http.bind, app.port());
        if let (Some(addr), Some(port)) = (settings.http.internal_bind, app.internal_port()) {
            log::info!("internal listener (/metrics, detailed /readyz) on {addr} (port {port})");
        }
        let banner = format!(
            "nft-event-router is up on {base}\n  a user token:   cargo run --release -- token --user u1\n  open a stream:  curl -N -H \"Authorization: Bearer $TOKEN\" {base}/api/v1/user/nft-events\n  in a browser:   {base}/ (live events) and {base}/admin (operations)\n"
        );
        // One write, and a reader that stops after the first line (or no reader) is not
        // fatal: `println!` would panic on the closed pipe and take the router down with it.
        let _ = std::io::stdout().lock().write_all(banner.as_bytes());
        let _ = std::io::stdout().flush();
        app.run_until_stopped(shutdown).await?;
        anyhow::Ok(())
    });
    match result {
        Ok(()) => {
            log::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("nft-event-router: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `kafka-cluster`: an unusable `--bind` exits 2 with one line, like a bad configuration; any
/// later failure exits 1. The address is bound before the cluster starts, so that check is fast.
fn kafka_cluster(settings: &Settings, bind: &str) -> ExitCode {
    let addr: SocketAddr = match bind.trim().parse() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!(
                "nft-event-router: --bind {bind:?} is not an address like 127.0.0.1:9092 ({e})"
            );
            return ExitCode::from(2);
        }
    };
    nft_event_router::logging::init(&settings.log.level, settings.log.format, "kafka-cluster");
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("nft-event-router: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let forwarder = match Forwarder::bind(addr).await {
            Ok(forwarder) => forwarder,
            Err(e) => {
                eprintln!("nft-event-router: --bind: {e}");
                return ExitCode::from(2);
            }
        };
        match serve_kafka_cluster(settings, forwarder).await {
            Ok(()) => {
                log::info!("kafka cluster stopped");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("nft-event-router: {e:#}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Starts the embedded cluster, creates the configured topics, announces the bootstrap address
/// on stdout (the line scripts wait for), and forwards until SIGINT or SIGTERM.
async fn serve_kafka_cluster(settings: &Settings, forwarder: Forwarder) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let shutdown = shutdown_signal().context("cannot install the signal handlers")?;
    let broker = KafkaCluster::start(&Brokers::Embedded)
        .context("cannot start the embedded kafka cluster")?;
    ensure_topics(&broker, &settings.kafka.topics.partitions())
        .await
        .context("cannot create the Kafka topics")?;
    let upstream = first_listener(&broker)?;
    let bootstrap = forwarder.local_addr();
    log::info!("forwarding {bootstrap} to broker {upstream}");
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "kafka cluster ready: bootstrap {bootstrap}")
        .and_then(|()| stdout.flush())
        .context("cannot write the ready line")?;
    drop(stdout);
    forwarder.run(upstream, shutdown).await;
    drop(broker);
    Ok(())
}
