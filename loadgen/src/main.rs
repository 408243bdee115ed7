//! `loadgen`: the command line over the load generator library. See `loadgen/README.md`.

#![forbid(unsafe_code)]

use clap::Parser;
use loadgen::kafka::KafkaPlan;
use loadgen::scenario::TargetKind;
use loadgen::Scenario;
use std::process::ExitCode;
use std::time::Duration;

/// Holds many SSE streams on nft-event-router, publishes events at a fixed rate, and reports
/// deliveries, publish→receive latency, and the server's memory.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version)]
struct Cli {
    /// Base URL of the server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The system behind --url: how streams are subscribed to and events published.
    #[arg(long, value_enum, default_value_t = TargetKind::Router)]
    target: TargetKind,
    /// Base URL to publish to [default: --url; for pushpin http://127.0.0.1:5561].
    #[arg(long)]
    publish_url: Option<String>,
    /// Subscribe path, `{user}` replaced by the user id [default: the target's].
    #[arg(long)]
    stream_path: Option<String>,
    /// Publish path, `{user}` replaced by the user id [default: the target's].
    #[arg(long)]
    publish_path: Option<String>,
    /// SSE connections to open.
    #[arg(long, default_value_t = 100)]
    connections: usize,
    /// Users the connections are spread over, round-robin [default: connections / max-per-user,
    /// rounded up].
    #[arg(long)]
    users: Option<usize>,
    /// Most connections per user (the router's sse.max_connections_per_user).
    #[arg(long, default_value_t = 3)]
    max_per_user: usize,
    /// Events published per second, to users in turn.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Seconds to publish for (with --idle: to hold the connections for).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Stop publishing after this many events, even before --duration.
    #[arg(long)]
    events: Option<u64>,
    /// New connections per second while connecting.
    #[arg(long, default_value_t = 2000.0)]
    connect_rate: f64,
    /// The router's auth.jwt_secret (tokens are minted from it).
    #[arg(long, default_value = "dev-only-secret-change-me-in-production")]
    jwt_secret: String,
    /// The server's process id: report its RSS (VmRSS) before and after. Repeat it, or give a
    /// comma-separated list, for a server of several processes (figures are summed).
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// Every N-th connection stops reading once accepted (slow clients; 100 = 1 %).
    #[arg(long, default_value_t = 0)]
    stall_every: usize,
    /// Print the report as JSON on stdout instead of the summary.
    #[arg(long)]
    json: bool,
    /// Hold the connections for --duration and publish nothing; report RSS per connection.
    #[arg(long)]
    idle: bool,
    /// Publish requests in flight at most (each a keep-alive connection).
    #[arg(long, default_value_t = 16)]
    publishers: usize,
    /// Seconds to wait after publishing for the deliveries still on their way.
    #[arg(long, default_value_t = 10.0)]
    drain: f64,
    /// Runtime worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// User ids are PREFIX0, PREFIX1, …
    #[arg(long, default_value = "lg-")]
    user_prefix: String,
    /// Connect every stream from the default source address instead of 127.0.0.2–251.
    #[arg(long)]
    no_spread: bool,
    /// No progress line on stderr.
    #[arg(long)]
    quiet: bool,
    /// Exit with status 1 unless every expected delivery arrived once and in order.
    #[arg(long)]
    check: bool,
    /// Also read the routed Kafka topics on these brokers (HOST:PORT[,HOST:PORT…], or `readyz`
    /// to ask the router's /readyz) and report publish → record on the broker (router only).
    #[arg(long)]
    kafka_brokers: Option<String>,
    /// The topics the published event type (volume_milestone_reached) is routed to.
    #[arg(long, value_delimiter = ',', default_values_t = loadgen::kafka::DEFAULT_TOPICS.iter().map(|t| t.to_string()))]
    kafka_topics: Vec<String>,
}

impl Cli {
    fn scenario(&self) -> anyhow::Result<Scenario> {
        let seconds = |name: &str, value: f64| {
            Duration::try_from_secs_f64(value)
                .map_err(|_| anyhow::anyhow!("--{name} must be a number of seconds ≥ 0"))
        };
        let mut s = Scenario::for_kind(self.target, self.url.clone());
        if let Some(url) = &self.publish_url {
            s.publish_url = url.clone();
        }
        if let Some(path) = &self.stream_path {
            s.stream_path = path.clone();
        }
        if let Some(path) = &self.publish_path {
            s.publish_path = path.clone();
        }
        s.stall_every = self.stall_every;
        s.connections = self.connections;
        s.max_per_user = self.max_per_user;
        s.users = self
            .users
            .unwrap_or_else(|| self.connections.div_ceil(self.max_per_user.max(1)));
        s.rate = self.rate;
        s.duration = seconds("duration", self.duration)?;
        s.max_events = self.events;
        s.connect_rate = self.connect_rate;
        s.jwt_secret = self.jwt_secret.clone();
        s.server_pids = self.server_pid.clone();
        s.idle = self.idle;
        s.publishers = self.publishers;
        s.drain = seconds("drain", self.drain)?;
        s.user_prefix = self.user_prefix.clone();
        s.spread_sources = !self.no_spread;
        s.progress = !self.quiet;
        s.kafka = self.kafka_brokers.as_ref().map(|brokers| KafkaPlan {
            brokers: brokers.clone(),
            topics: self.kafka_topics.clone(),
        });
        Ok(s)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let report = cli
        .scenario()
        .and_then(|scenario| loadgen::run_blocking(&scenario, cli.threads));
    let report = match report {
        Ok(report) => report,
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            return ExitCode::from(2);
        }
    };
    if cli.json {
        match serde_json::to_string_pretty(&report) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("loadgen: encoding the report: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        println!("{report}");
    }
    if cli.check && !report.problems().is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
