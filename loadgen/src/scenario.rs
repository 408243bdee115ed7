//! What a run does, and the server it does it to.

use crate::kafka::KafkaPlan;
use anyhow::{bail, Context};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// The subscribe path of the router's user stream.
pub const DEFAULT_STREAM_PATH: &str = "/api/v1/user/nft-events";
/// The router's publish path.
pub const DEFAULT_PUBLISH_PATH: &str = "/api/v1/events";

/// Which system the scenario runs against: they differ in how a stream is subscribed to and
/// how an event is published, not in what is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// nft-event-router: one stream per user token, `POST /api/v1/events`, cursors as `id:`.
    Router,
    /// nginx + nchan: `GET /sub/{user}` (eventsource), `POST /pub/{user}` with the data as
    /// body; nchan sets its own `id:`, so the per-user sequence travels in the data.
    Nchan,
    /// Pushpin in front of `grip-origin`: `GET /sub/{user}` held as a GRIP stream on channel
    /// `{user}`, `POST /publish/` on Pushpin's publish port with an `http-stream` item.
    Pushpin,
}

impl TargetKind {
    /// Subscribe path; `{user}` is replaced by the user id.
    pub fn default_stream_path(self) -> &'static str {
        match self {
            TargetKind::Router => DEFAULT_STREAM_PATH,
            TargetKind::Nchan | TargetKind::Pushpin => "/sub/{user}",
        }
    }

    /// Publish path (on the publish URL); `{user}` is replaced by the user id.
    pub fn default_publish_path(self) -> &'static str {
        match self {
            TargetKind::Router => DEFAULT_PUBLISH_PATH,
            TargetKind::Nchan => "/pub/{user}",
            TargetKind::Pushpin => "/publish/",
        }
    }

    /// Publish base URL when none is given: the subscribe URL, except for Pushpin, whose
    /// publish endpoint listens on its own port (5561 in Debian's configuration).
    pub fn default_publish_url(self, url: &str) -> String {
        match self {
            TargetKind::Pushpin => "http://127.0.0.1:5561".to_owned(),
            TargetKind::Router | TargetKind::Nchan => url.trim_end_matches('/').to_owned(),
        }
    }
}

/// One load scenario. [`Scenario::new`] fills the defaults; set fields to change them.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Base URL of the server, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// The system behind `url`: how to subscribe and publish.
    pub kind: TargetKind,
    /// Base URL of the publish endpoint (Pushpin publishes on another port than it serves).
    pub publish_url: String,
    /// SSE connections to open.
    pub connections: usize,
    /// Users they are spread over, round-robin: connection `i` belongs to user `i % users`.
    pub users: usize,
    /// The most connections opened for one user (the router refuses past its limit, 3).
    pub max_per_user: usize,
    /// Events published per second (ignored when `idle`).
    pub rate: f64,
    /// How long to publish, or with `idle`, how long to hold the connections.
    pub duration: Duration,
    /// Stop publishing after this many events even if `duration` has not passed.
    pub max_events: Option<u64>,
    /// New connections opened per second.
    pub connect_rate: f64,
    /// The router's `auth.jwt_secret`; tokens are minted from it.
    pub jwt_secret: String,
    /// The server's process ids (several for nginx or Pushpin): their RSS from
    /// `/proc/PID/status` and CPU times are summed.
    pub server_pids: Vec<u32>,
    /// Every `stall_every`-th connection (0: none) stops reading once it is accepted: a slow
    /// client. Its deliveries are not expected; the others' still are.
    pub stall_every: usize,
    /// Hold the connections and publish nothing; report memory per connection.
    pub idle: bool,
    /// User ids are `{user_prefix}{index}`.
    pub user_prefix: String,
    /// Concurrent publish requests (and so keep-alive publish connections) at most.
    pub publishers: usize,
    /// After publishing, wait at most this long for the expected deliveries to arrive.
    pub drain: Duration,
    /// Give up on a connection that has not answered its request within this.
    pub connect_timeout: Duration,
    /// Bind each subscriber to 127.0.0.(2 + i % 250) when the target is on loopback.
    pub spread_sources: bool,
    /// Subscribe path; `{user}` becomes the user id.
    pub stream_path: String,
    /// Publish path on `publish_url`; `{user}` becomes the user id.
    pub publish_path: String,
    /// Print a progress line to stderr every second.
    pub progress: bool,
    /// Also watch the Kafka topics the events are routed to (router only).
    pub kafka: Option<KafkaPlan>,
}

impl Scenario {
    /// A scenario against the router at `url` with its default secret and modest defaults.
    pub fn new(url: impl Into<String>) -> Self {
        Scenario::for_kind(TargetKind::Router, url)
    }

    /// A scenario against a `kind` server at `url`, with that system's paths.
    pub fn for_kind(kind: TargetKind, url: impl Into<String>) -> Self {
        let url = url.into();
        Scenario {
            kind,
            publish_url: kind.default_publish_url(&url),
            url,
            connections: 100,
            users: 34,
            max_per_user: 3,
            rate: 100.0,
            duration: Duration::from_secs(10),
            max_events: None,
            connect_rate: 2_000.0,
            jwt_secret: "dev-only-secret-change-me-in-production".to_owned(),
            server_pids: Vec::new(),
            stall_every: 0,
            idle: false,
            user_prefix: "lg-".to_owned(),
            publishers: 16,
            drain: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            spread_sources: true,
            stream_path: kind.default_stream_path().to_owned(),
            publish_path: kind.default_publish_path().to_owned(),
            progress: false,
            kafka: None,
        }
    }

    /// Refuses combinations that cannot run as asked.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.connections == 0 {
            bail!("--connections must be at least 1");
        }
        if self.users == 0 {
            bail!("--users must be at least 1");
        }
        if self.max_per_user == 0 {
            bail!("--max-per-user must be at least 1");
        }
        if self.connections.div_ceil(self.users) > self.max_per_user {
            bail!(
                "{} connections over {} users is more than {} per user: raise --users or --max-per-user",
                self.connections,
                self.users,
                self.max_per_user
            );
        }
        if !self.idle && !positive(self.rate) {
            bail!("--rate must be a positive number of events per second");
        }
        if !positive(self.connect_rate) {
            bail!("--connect-rate must be a positive number of connections per second");
        }
        if self.publishers == 0 {
            bail!("--publishers must be at least 1");
        }
        if self.jwt_secret.is_empty() {
            bail!("--jwt-secret must not be empty");
        }
        if let Some(kafka) = &self.kafka {
            if self.kind != TargetKind::Router {
                bail!(
                    "--kafka-brokers is for --target router: nchan and Pushpin have no Kafka path"
                );
            }
            if self.idle {
                bail!("--kafka-brokers needs events: it cannot be combined with --idle");
            }
            if kafka.brokers.trim().is_empty() {
                bail!("--kafka-brokers must name at least one HOST:PORT");
            }
            if kafka.topics.is_empty() || kafka.topics.iter().any(|t| t.trim().is_empty()) {
                bail!("--kafka-topics must name at least one topic, none empty");
            }
            if self.planned_events() > crate::kafka::MAX_EVENTS {
                bail!(
                    "--kafka-brokers keeps a slot per event: at most {} events (lower --rate, --duration or --events)",
                    crate::kafka::MAX_EVENTS
                );
            }
        }
        Ok(())
    }

    /// The user id of user number `index`.
    pub fn user_id(&self, index: usize) -> String {
        format!("{}{index}", self.user_prefix)
    }

    /// `path` with `{user}` replaced by user `index`'s id.
    pub fn user_path(&self, path: &str, index: usize) -> String {
        path.replace("{user}", &self.user_id(index))
    }

    /// The most events a publishing run sends: `rate × duration`, rounded up, or
    /// `max_events` if fewer.
    pub fn planned_events(&self) -> u64 {
        let by_time = (self.rate * self.duration.as_secs_f64()).ceil();
        let by_time = if by_time.is_finite() && by_time > 0.0 {
            by_time.min(u64::MAX as f64) as u64
        } else {
            0
        };
        self.max_events.map_or(by_time, |max| max.min(by_time))
    }

    /// Users that get at least one connection.
    pub fn subscribed_users(&self) -> usize {
        self.users.min(self.connections)
    }
}

fn positive(x: f64) -> bool {
    x.is_finite() && x > 0.0
}

/// The server, resolved once: where to connect and what to put in `Host`.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// `host[:port]` for the `Host` header.
    pub host_header: String,
    /// Path prefix from the URL (no trailing slash), put before the API paths.
    pub base_path: String,
    /// The URL as given, without a trailing slash (reqwest uses it for publishing).
    pub base_url: String,
}

impl Target {
    pub async fn resolve(url: &str) -> anyhow::Result<Target> {
        let parsed = url::Url::parse(url).with_context(|| format!("--url {url:?} is not a URL"))?;
        if parsed.scheme() != "http" {
            bail!("--url must be http:// (the load generator speaks plain HTTP/1.1)");
        }
        let host = parsed
            .host_str()
            .with_context(|| format!("--url {url:?} has no host"))?
            .to_owned();
        let port = parsed.port_or_known_default().unwrap_or(80);
        let addr = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
            .await
            .with_context(|| format!("cannot resolve {host}"))?
            .find(SocketAddr::is_ipv4)
            .with_context(|| format!("{host} has no IPv4 address"))?;
        let host_header = match parsed.port() {
            Some(p) => format!("{host}:{p}"),
            None => host,
        };
        let base_path = parsed.path().trim_end_matches('/').to_owned();
        Ok(Target {
            addr,
            host_header,
            base_path,
            base_url: url.trim_end_matches('/').to_owned(),
        })
    }

    /// The source address of subscriber `index`: 127.0.0.2 … 127.0.0.251 in turn when the
    /// server is on loopback, so each source address needs only a share of the ephemeral ports.
    pub fn source_for(&self, index: usize, spread: bool) -> Option<SocketAddr> {
        match self.addr.ip() {
            IpAddr::V4(ip) if spread && ip.is_loopback() => {
                let last = 2 + (index % 250) as u8;
                Some(SocketAddr::from((Ipv4Addr::new(127, 0, 0, last), 0)))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_connections_than_the_per_user_limit_allows_is_refused() {
        let mut s = Scenario::new("http://127.0.0.1:1");
        s.connections = 10;
        s.users = 3;
        assert!(s.validate().is_err());
        s.users = 4;
        assert!(s.validate().is_ok());
    }

    #[test]
    fn the_kafka_path_is_for_a_publishing_router_run() {
        let mut s = Scenario::new("http://127.0.0.1:1");
        s.kafka = Some(KafkaPlan::new("127.0.0.1:9092"));
        assert!(s.validate().is_ok());
        s.idle = true;
        assert!(s.validate().is_err());
        let mut s = Scenario::for_kind(TargetKind::Nchan, "http://127.0.0.1:1");
        s.kafka = Some(KafkaPlan::new("127.0.0.1:9092"));
        assert!(s.validate().is_err());
    }

    #[test]
    fn planned_events_are_the_publisher_schedule_or_the_cap() {
        let mut s = Scenario::new("http://127.0.0.1:1");
        s.rate = 1000.0;
        s.duration = Duration::from_secs(20);
        assert_eq!(s.planned_events(), 20_000);
        s.rate = 3.0;
        s.duration = Duration::from_millis(1500);
        assert_eq!(s.planned_events(), 5, "sends at 0, 1/3, …, 4/3 s");
        s.max_events = Some(2);
        assert_eq!(s.planned_events(), 2);
    }

    #[tokio::test]
    async fn a_loopback_target_spreads_sources_over_250_addresses() {
        let t = Target::resolve("http://127.0.0.1:8080/")
            .await
            .expect("resolves");
        assert_eq!(t.host_header, "127.0.0.1:8080");
        assert_eq!(t.base_path, "");
        let first = t.source_for(0, true).expect("spread");
        assert_eq!(first.ip(), IpAddr::from([127, 0, 0, 2]));
        assert_eq!(t.source_for(250, true), Some(first));
        assert_eq!(
            t.source_for(249, true).map(|a| a.ip()),
            Some(IpAddr::from([127, 0, 0, 251]))
        );
        assert_eq!(t.source_for(0, false), None);
    }
}
