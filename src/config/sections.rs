//! The sections of `config.toml`, as the types the router uses. Keys keep their unit in their
//! name (`heartbeat_secs`); the fields hold a [`Duration`] read from it.

use super::values::{self, InstanceId};
use crate::kafka::Brokers;
use crate::store::SqliteSync;
use actors::EventType;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::net::SocketAddr;
use std::num::{NonZeroU16, NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub bind: SocketAddr,
    /// HTTP worker threads; 0 means one per CPU core.
    pub workers: usize,
    /// Larger request bodies get 400.
    #[serde(deserialize_with = "values::count_at_least::<_, 1024>")]
    pub max_body_bytes: usize,
    /// What in-flight requests other than streams get on shutdown.
    #[serde(rename = "shutdown_timeout_secs", deserialize_with = "values::secs")]
    pub shutdown_timeout: Duration,
    pub reuse_port: bool,
    /// Other origins whose pages may call the API (`crate::cors`); empty: same origin only.
    pub cors_origins: Vec<crate::cors::AllowedOrigin>,
    /// A second listener for `/metrics` and the detailed `/readyz` (`""`: none, both stay on
    /// `bind`). When set, `bind` answers `/readyz` with its status only and no `/metrics`.
    #[serde(deserialize_with = "values::optional_address")]
    pub internal_bind: Option<SocketAddr>,
    /// TLS on `bind` (HTTP/2 and HTTP/1.1 by ALPN); without it, plain HTTP/1.1 and h2c.
    pub tls: TlsSettings,
    /// Proxies whose `X-Forwarded-For` names the client (`crate::forwarded`); empty: none.
    pub trusted_proxies: Vec<crate::forwarded::TrustedProxy>,
}

/// `[http.tls]`: a PEM certificate chain and key, both or neither.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawTls")]
pub struct TlsSettings {
    /// The certificate and key files; `None`: no TLS.
    pub files: Option<(PathBuf, PathBuf)>,
    /// How often the files are checked for a change (they are reloaded on SIGHUP too).
    pub reload_check: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: PathBuf,
    key: PathBuf,
    reload_check_secs: u64,
}

impl TryFrom<RawTls> for TlsSettings {
    type Error = String;

    fn try_from(raw: RawTls) -> Result<Self, Self::Error> {
        let empty = |p: &PathBuf| p.as_os_str().is_empty();
        let files = match (empty(&raw.cert), empty(&raw.key)) {
            (true, true) => None,
            (false, false) => Some((raw.cert, raw.key)),
            (false, true) => return Err("`http.tls.key` is empty but `cert` is set".to_owned()),
            (true, false) => return Err("`http.tls.cert` is empty but `key` is set".to_owned()),
        };
        if raw.reload_check_secs == 0 {
            return Err("`http.tls.reload_check_secs` must be at least 1".to_owned());
        }
        Ok(TlsSettings {
            files,
            reload_check: Duration::from_secs(raw.reload_check_secs),
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    #[serde(deserialize_with = "values::signing_secret")]
    pub jwt_secret: SecretString,
    #[serde(
        rename = "dev_token_ttl_secs",
        deserialize_with = "values::secs_at_least::<_, 1>"
    )]
    pub dev_token_ttl: Duration,
    /// `POST /api/v1/dev/token` exists (and the pages offer to mint): development only.
    pub dev_tokens: bool,
    /// Whether `?access_token=` is accepted (it lands in proxies' access logs; browsers can use
    /// the stream cookie instead).
    pub query_tokens: bool,
    /// RS256/ES256 public keys (a PEM key or a JWKS file); `None`: HS256 tokens only.
    #[serde(deserialize_with = "values::optional_text")]
    pub jwt_public_keys: Option<String>,
    /// The `iss` RS256/ES256 tokens must carry; `None`: not checked.
    #[serde(deserialize_with = "values::optional_text")]
    pub jwt_issuer: Option<String>,
    /// The `aud` RS256/ES256 tokens must carry; `None`: not checked.
    #[serde(deserialize_with = "values::optional_text")]
    pub jwt_audience: Option<String>,
    /// How often the public keys file is checked for a change (it reloads on SIGHUP too).
    #[serde(
        rename = "jwt_keys_reload_check_secs",
        deserialize_with = "values::secs_at_least::<_, 1>"
    )]
    pub jwt_keys_reload_check: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SseSettings {
    pub max_connections_per_user: NonZeroUsize,
    #[serde(
        rename = "heartbeat_secs",
        deserialize_with = "values::secs_at_least::<_, 1>"
    )]
    pub heartbeat: Duration,
    /// At least [`actors::stream_config::MIN_SESSION_QUEUE`] (the opening frames and one event).
    #[serde(deserialize_with = "values::count_at_least::<_, 4>")]
    pub session_queue: usize,
    #[serde(rename = "retry_ms", deserialize_with = "values::millis")]
    pub retry: Duration,
    /// The kernel send buffer of a lean stream's socket (`SO_SNDBUF`); 0 leaves the kernel's
    /// autotuning, which lets a client that stops reading hold megabytes before its queue
    /// overflows.
    pub send_buffer_bytes: usize,
    /// Event types a user's own stream (and polling) does not carry (the SSE column of the
    /// routing table, docs/KAFKA.md: for admins).
    pub hidden_event_types: Vec<EventType>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// Holds credentials for MySQL URLs, hence redacted in debug output.
    #[serde(deserialize_with = "values::secret_not_blank")]
    pub url: SecretString,
    pub pool_size: NonZeroU32,
    /// Events older than this are pruned.
    #[serde(rename = "retention_days", deserialize_with = "values::days")]
    pub retention: Duration,
    #[serde(
        rename = "prune_interval_secs",
        deserialize_with = "values::secs_at_least::<_, 1>"
    )]
    pub prune_interval: Duration,
    /// SQLite only: how far a commit is flushed before the event is acknowledged.
    pub sqlite_synchronous: SqliteSync,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    pub brokers: Brokers,
    pub client_id: String,
    pub consumer_max_attempts: NonZeroU32,
    #[serde(
        rename = "consumer_retry_backoff_ms",
        deserialize_with = "values::millis"
    )]
    pub consumer_retry_backoff: Duration,
    pub topics: TopicSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSettings {
    pub operations: TopicSetting,
    pub user_events: TopicSetting,
    pub notifications: TopicSetting,
    pub analytics: TopicSetting,
    pub dead_letter: TopicSetting,
}

impl TopicSettings {
    /// Every configured topic, for creation and for checking the routing table.
    pub fn all(&self) -> [&TopicSetting; 5] {
        [
            &self.operations,
            &self.user_events,
            &self.notifications,
            &self.analytics,
            &self.dead_letter,
        ]
    }

    /// Every configured topic's name and partition count: what start-up makes sure exists.
    pub fn partitions(&self) -> Vec<(String, i32)> {
        self.all()
            .iter()
            .map(|t| (t.name.clone(), i32::from(t.partitions.get())))
            .collect()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSetting {
    #[serde(deserialize_with = "values::not_blank")]
    pub name: String,
    pub partitions: NonZeroU16,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// Empty means the in-process cache. Redacted: a Redis URL may carry a password.
    pub url: SecretString,
    pub key_prefix: String,
}

impl RedisSettings {
    pub fn url(&self) -> Option<&str> {
        let url = self.url.expose_secret().trim();
        (!url.is_empty()).then_some(url)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainSettings {
    pub tiers: Vec<TierSetting>,
    pub badges: Vec<BadgeSetting>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierSetting {
    pub id: u32,
    pub name: String,
    pub milestone: f64,
    pub image_url: String,
    pub badges_required: u32,
    pub benefits: BenefitsSetting,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenefitsSetting {
    pub trading_fee_reduction: String,
    pub ai_agent_weekly_uses: u32,
    pub priority_support: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BadgeSetting {
    pub id: String,
    pub name: String,
    pub description: String,
    pub image_url: String,
    pub required_for_tier: u32,
}

/// The chain port's adapters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChainAdapter {
    /// Mints and burns recorded in the router's own database: a ledger, not a blockchain.
    LocalLedger,
}

/// The chain port's adapter and how flows treat it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSettings {
    pub adapter: ChainAdapter,
    /// Injected faults: share of ledger calls that fail as unavailable.
    #[serde(deserialize_with = "values::fraction")]
    pub failure_rate: f64,
    /// Injected faults: added to every ledger call.
    #[serde(rename = "latency_ms", deserialize_with = "values::millis")]
    pub latency: Duration,
    /// Tries of a mint or burn before the flow is compensated.
    pub attempts: NonZeroU32,
    #[serde(rename = "retry_backoff_ms", deserialize_with = "values::millis")]
    pub retry_backoff: Duration,
    /// How long a rendered portfolio stays cached (every change drops it sooner).
    #[serde(rename = "portfolio_cache_secs", deserialize_with = "values::secs")]
    pub portfolio_cache: Duration,
}

/// The monitoring reporter and the operations feed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitoringSettings {
    /// How often the one-line metrics summary is logged and posted on the operations feed.
    #[serde(
        rename = "report_interval_secs",
        deserialize_with = "values::secs_at_least::<_, 1>"
    )]
    pub report_interval: Duration,
    /// How often each instance looks for new operations feed entries.
    #[serde(
        rename = "feed_poll_ms",
        deserialize_with = "values::millis_at_least::<_, 1>"
    )]
    pub feed_poll: Duration,
}

/// The thresholds of the four alert rules and how alerts are evaluated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSettings {
    #[serde(
        rename = "interval_secs",
        deserialize_with = "values::secs_at_least::<_, 1>"
    )]
    pub interval: Duration,
    /// Evaluations within the threshold, in a row, before a raised alert resolves.
    pub clear_after: NonZeroU32,
    #[serde(deserialize_with = "values::non_negative")]
    pub sse_error_rate_percent: f64,
    #[serde(deserialize_with = "values::non_negative")]
    pub consumer_lag: f64,
    #[serde(deserialize_with = "values::non_negative")]
    pub avg_processing_ms: f64,
    #[serde(deserialize_with = "values::non_negative")]
    pub active_connections: f64,
}

/// Which engine carries events between instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BusKind {
    /// One instance: nothing crosses processes.
    None,
    /// Redis pub/sub at `redis.url`, with leases and instance reports in the same Redis.
    Redis,
}

/// Several router instances behaving as one: identity, the live bus, the cluster-wide
/// connection limit, draining.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    /// `None` (configured empty): a fresh id is generated at start-up
    /// ([`super::Settings::resolve_instance_id`]).
    #[serde(deserialize_with = "values::optional_instance_id")]
    pub instance_id: Option<InstanceId>,
    pub bus: BusKind,
    /// How often the store's stream heads are compared with what this instance's sessions saw.
    #[serde(
        rename = "sweep_ms",
        deserialize_with = "values::millis_at_least::<_, 10>"
    )]
    pub sweep: Duration,
    /// Lifetime of a connection slot that its instance stopped renewing (killed).
    #[serde(
        rename = "lease_secs",
        deserialize_with = "values::secs_at_least::<_, 2>"
    )]
    pub lease: Duration,
    /// How often an instance reports itself to the others.
    #[serde(
        rename = "heartbeat_ms",
        deserialize_with = "values::millis_at_least::<_, 100>"
    )]
    pub heartbeat: Duration,
    /// On SIGTERM, streams are closed spread over this window.
    #[serde(rename = "drain_secs", deserialize_with = "values::secs")]
    pub drain: Duration,
}

impl ClusterSettings {
    /// The configured instance id, or a fresh one when none is configured.
    pub fn instance_id_or_new(&self) -> InstanceId {
        self.instance_id
            .clone()
            .unwrap_or_else(InstanceId::generate)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub level: String,
    /// `text` (default) or `json`: one JSON object per line, for a log pipeline.
    #[serde(default)]
    pub format: crate::logging::LogFormat,
}

/// `[limits]`: token buckets (a rate of 0 is no limit) and open-stream caps (`crate::limits`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    #[serde(deserialize_with = "values::non_negative")]
    pub publish_per_sec: f64,
    pub publish_burst: NonZeroU32,
    #[serde(deserialize_with = "values::non_negative")]
    pub connects_per_address_per_sec: f64,
    pub connects_per_address_burst: NonZeroU32,
    #[serde(deserialize_with = "values::non_negative")]
    pub connects_per_user_per_sec: f64,
    pub connects_per_user_burst: NonZeroU32,
    /// 0: what the open-file limit leaves after the descriptors in use at start-up and
    /// `reserved_descriptors`.
    pub max_streams: usize,
    pub reserved_descriptors: usize,
    /// 0: no cap per address.
    pub max_streams_per_address: usize,
}

impl LimitSettings {
    /// The process-wide stream cap: as configured, or what the open-file limit leaves after
    /// the descriptors open now (the store's pool, Kafka's sockets and pipes, the runtime) and
    /// the reserve (requests other than streams, reconnecting clients), at least 1. Asked once
    /// everything but the HTTP server has started.
    pub fn max_streams(&self) -> usize {
        if self.max_streams > 0 {
            return self.max_streams;
        }
        crate::limits::open_file_limit()
            .map_or(usize::MAX, |limit| {
                limit
                    .saturating_sub(crate::limits::open_files())
                    .saturating_sub(self.reserved_descriptors)
            })
            .max(1)
    }
}
