use clap::Parser;
use nft_event_router::auth::JwtKeys;
use nft_event_router::cli::{Cli, Command};
use nft_event_router::config::Settings;
use nft_event_router::startup::{shutdown_signal, Application};
use secrecy::ExposeSecret;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
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
            match keys.mint(&user, role, ttl.unwrap_or(settings.auth.dev_token_ttl_secs)) {
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
    }
}

fn serve(mut settings: Settings) -> ExitCode {
    // Every line names the instance, so the logs of several instances can be read together.
    let instance = settings.resolve_instance_id().to_owned();
    actors::metrics::label_instance(&instance);
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or(&settings.log.level),
    )
    .format(move |out, record| {
        use std::io::Write as _;
        writeln!(
            out,
            "[{} {:<5} {instance} {}] {}",
            out.timestamp_millis(),
            record.level(),
            record.target(),
            record.args()
        )
    })
    .init();
    let result = actix_web::rt::System::new().block_on(async move {
        let shutdown = shutdown_signal()?;
        let app = Application::build(&settings).await?;
        let base = format!("http://127.0.0.1:{}", app.port());
        log::info!("nft-event-router listening on {} (port {})", settings.http.bind, app.port());
        println!(
            "nft-event-router is up on {base}\n  a user token:   cargo run --release -- token --user u1\n  open a stream:  curl -N -H \"Authorization: Bearer $TOKEN\" {base}/api/v1/user/nft-events\n  in a browser:   {base}/ (live events) and {base}/admin (operations)"
        );
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
