//! Typed settings: `config.toml` (or `--config PATH`), then `NFT_ROUTER__SECTION__KEY`
//! environment overrides. Every key is required and unknown keys are refused, so a typo fails
//! start-up with one line naming the key instead of silently running on a default.

use crate::store::SqliteSync;
use actors::domain::{BadgeRule, DomainRules, FlowPolicy, LedgerFaults, TierRule};
use actors::event::Benefits;
use actors::monitoring::AlertRules;
use actors::routing::RoutingTable;
use actors::stream_config::{StreamConfig, MIN_SESSION_QUEUE};
use actors::EventType;
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Prefix of environment overrides; sections and keys are separated by `__`.
pub const ENV_PREFIX: &str = "NFT_ROUTER__";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub http: HttpSettings,
    pub auth: AuthSettings,
    pub sse: SseSettings,
    pub store: StoreSettings,
    pub kafka: KafkaSettings,
    pub routing: BTreeMap<String, Vec<String>>,
    pub redis: RedisSettings,
    pub domain: DomainSettings,
    pub chain: ChainSettings,
    pub monitoring: MonitoringSettings,
    pub alerts: AlertSettings,
    pub cluster: ClusterSettings,
    pub log: LogSettings,
}

/// Several router instances behaving as one: identity, the live bus, the cluster-wide
/// connection limit, draining.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    /// Empty: a fresh id is generated at start-up ([`Settings::resolve_instance_id`]).
    pub instance_id: String,
    pub bus: BusKind,
    /// How often the store's stream heads are compared with what this instance's sessions saw.
    pub sweep_ms: u64,
    /// Lifetime of a connection slot that its instance stopped renewing (killed).
    pub lease_secs: u64,
    /// How often an instance reports itself to the others.
    pub heartbeat_ms: u64,
    /// On SIGTERM, streams are closed spread over this window.
    pub drain_secs: u64,
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

impl ClusterSettings {
    /// The configured instance id, or a fresh `nftr-` and 8 hex digits when it is empty.
    pub fn instance_id_or_new(&self) -> String {
        if self.instance_id.is_empty() {
            format!("nftr-{:08x}", fastrand::u32(..))
        } else {
            self.instance_id.clone()
        }
    }

    pub fn sweep_interval(&self) -> Duration {
        Duration::from_millis(self.sweep_ms)
    }

    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }

    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms)
    }

    pub fn drain_window(&self) -> Duration {
        Duration::from_secs(self.drain_secs)
    }
}

/// The monitoring reporter and the operations feed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitoringSettings {
    /// How often the one-line metrics summary is logged and posted on the operations feed.
    pub report_interval_secs: u64,
    /// How often each instance looks for new operations feed entries.
    pub feed_poll_ms: u64,
}

/// The thresholds of the four alert rules and how alerts are evaluated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSettings {
    pub interval_secs: u64,
    /// Evaluations within the threshold, in a row, before a raised alert resolves.
    pub clear_after: u32,
    pub sse_error_rate_percent: f64,
    pub consumer_lag: f64,
    pub avg_processing_ms: f64,
    pub active_connections: f64,
}

/// The chain port's adapter and how flows treat it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSettings {
    /// Only `local_ledger` exists: a ledger in the router's database, not a blockchain.
    pub adapter: String,
    /// Injected faults: share of ledger calls (0.0–1.0) that fail as unavailable.
    pub failure_rate: f64,
    /// Injected faults: added to every ledger call.
    pub latency_ms: u64,
    /// Tries of a mint or burn before the flow is compensated.
    pub attempts: u32,
    pub retry_backoff_ms: u64,
    /// How long a rendered portfolio stays cached (every change drops it sooner).
    pub portfolio_cache_secs: u64,
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    pub brokers: String,
    pub client_id: String,
    pub consumer_max_attempts: u32,
    pub consumer_retry_backoff_ms: u64,
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
    /// Every configured topic with its role's key, for creation and validation.
    pub fn all(&self) -> [(&'static str, &TopicSetting); 5] {
        [
            ("operations", &self.operations),
            ("user_events", &self.user_events),
            ("notifications", &self.notifications),
            ("analytics", &self.analytics),
            ("dead_letter", &self.dead_letter),
        ]
    }

    /// Every configured topic's name and partition count: what start-up makes sure exists.
    pub fn partitions(&self) -> Vec<(String, i32)> {
        self.all()
            .iter()
            .map(|(_, t)| (t.name.clone(), t.partitions))
            .collect()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSetting {
    pub name: String,
    pub partitions: i32,
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
pub struct HttpSettings {
    pub bind: String,
    pub workers: usize,
    pub max_body_bytes: usize,
    pub shutdown_timeout_secs: u64,
    pub reuse_port: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub jwt_secret: SecretString,
    pub dev_token_ttl_secs: u64,
    /// `POST /api/v1/dev/token` exists (and the pages offer to mint): development only.
    pub dev_tokens: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SseSettings {
    pub max_connections_per_user: usize,
    pub heartbeat_secs: u64,
    pub session_queue: usize,
    pub retry_ms: u64,
    /// Event types a user's own stream (and polling) does not carry (the SSE column of the
    /// routing table, docs/KAFKA.md: for admins).
    pub hidden_event_types: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// Holds credentials for MySQL URLs, hence redacted in debug output.
    pub url: SecretString,
    pub pool_size: u32,
    pub retention_days: u32,
    pub prune_interval_secs: u64,
    /// SQLite only: `full` (a commit survives a power loss) or `normal` (it survives the
    /// router being killed; fewer flushes, higher sustained rates).
    pub sqlite_synchronous: String,
}

impl StoreSettings {
    pub fn retention(&self) -> Duration {
        Duration::from_secs(u64::from(self.retention_days) * 86_400)
    }

    /// The validated `sqlite_synchronous` (validation refuses anything else).
    pub fn sqlite_sync(&self) -> SqliteSync {
        SqliteSync::parse(&self.sqlite_synchronous).unwrap_or_default()
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

/// A configuration problem, phrased as one line that names the key.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(String);

impl Settings {
    /// Reads `path` (default `./config.toml`), applies environment overrides, validates.
    pub fn load(path: Option<&Path>) -> Result<Settings, ConfigError> {
        let path: PathBuf = path.map_or_else(|| PathBuf::from("config.toml"), Path::to_path_buf);
        if !path.is_file() {
            return Err(ConfigError(format!(
                "config file `{}` not found (pass --config PATH)",
                path.display()
            )));
        }
        Settings::from_figment(Figment::from(Toml::file(&path)))
    }

    /// Extracts settings from any figment (tests layer their overrides this way), with the
    /// environment on top.
    pub fn from_figment(base: Figment) -> Result<Settings, ConfigError> {
        let figment = base.merge(Env::prefixed(ENV_PREFIX).split("__"));
        let settings: Settings = figment.extract().map_err(describe)?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let fail = |key: &str, why: &str| Err(ConfigError(format!("key `{key}`: {why}")));
        if self.http.bind.parse::<std::net::SocketAddr>().is_err() {
            return fail("http.bind", "must be an address like 127.0.0.1:8080");
        }
        if self.http.max_body_bytes < 1024 {
            return fail("http.max_body_bytes", "must be at least 1024");
        }
        if self.auth.jwt_secret.expose_secret().len() < 16 {
            return fail("auth.jwt_secret", "must be at least 16 bytes");
        }
        if self.auth.dev_token_ttl_secs == 0 {
            return fail("auth.dev_token_ttl_secs", "must be positive");
        }
        if self.sse.max_connections_per_user == 0 {
            return fail("sse.max_connections_per_user", "must be at least 1");
        }
        if self.sse.heartbeat_secs == 0 {
            return fail("sse.heartbeat_secs", "must be at least 1");
        }
        for (i, name) in self.sse.hidden_event_types.iter().enumerate() {
            if name.parse::<EventType>().is_err() {
                return fail(
                    &format!("sse.hidden_event_types[{i}]"),
                    &format!("unknown event type `{name}`"),
                );
            }
        }
        if self.sse.session_queue < MIN_SESSION_QUEUE {
            return fail("sse.session_queue", "must be at least 4");
        }
        if self.monitoring.report_interval_secs == 0 {
            return fail("monitoring.report_interval_secs", "must be at least 1");
        }
        if self.monitoring.feed_poll_ms == 0 {
            return fail("monitoring.feed_poll_ms", "must be at least 1");
        }
        if self.alerts.interval_secs == 0 {
            return fail("alerts.interval_secs", "must be at least 1");
        }
        if self.alerts.clear_after == 0 {
            return fail("alerts.clear_after", "must be at least 1");
        }
        if self.cluster.bus == BusKind::Redis && self.redis.url().is_none() {
            return fail("cluster.bus", "\"redis\" needs `redis.url`");
        }
        if !is_instance_id(&self.cluster.instance_id) && !self.cluster.instance_id.is_empty() {
            return fail(
                "cluster.instance_id",
                "at most 64 characters of a-z, A-Z, 0-9, '.', '_' and '-'",
            );
        }
        if self.cluster.sweep_ms < 10 {
            return fail("cluster.sweep_ms", "must be at least 10");
        }
        if self.cluster.lease_secs < 2 {
            return fail("cluster.lease_secs", "must be at least 2");
        }
        if self.cluster.heartbeat_ms < 100 {
            return fail("cluster.heartbeat_ms", "must be at least 100");
        }
        for (key, value) in [
            (
                "alerts.sse_error_rate_percent",
                self.alerts.sse_error_rate_percent,
            ),
            ("alerts.consumer_lag", self.alerts.consumer_lag),
            ("alerts.avg_processing_ms", self.alerts.avg_processing_ms),
            ("alerts.active_connections", self.alerts.active_connections),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return fail(key, "must be a non-negative number");
            }
        }
        if self.chain.adapter != "local_ledger" {
            return fail("chain.adapter", "must be `local_ledger`");
        }
        if !(0.0..=1.0).contains(&self.chain.failure_rate) {
            return fail("chain.failure_rate", "must be between 0.0 and 1.0");
        }
        if self.chain.attempts == 0 {
            return fail("chain.attempts", "must be at least 1");
        }
        if self.store.url.expose_secret().trim().is_empty() {
            return fail("store.url", "must name a database");
        }
        if SqliteSync::parse(&self.store.sqlite_synchronous).is_none() {
            return fail("store.sqlite_synchronous", "must be `full` or `normal`");
        }
        if self.store.pool_size == 0 {
            return fail("store.pool_size", "must be at least 1");
        }
        if self.store.prune_interval_secs == 0 {
            return fail("store.prune_interval_secs", "must be at least 1");
        }
        if self.kafka.brokers.trim().is_empty() {
            return fail("kafka.brokers", "must be \"embedded\" or a bootstrap list");
        }
        if self.kafka.consumer_max_attempts == 0 {
            return fail("kafka.consumer_max_attempts", "must be at least 1");
        }
        for (role, topic) in self.kafka.topics.all() {
            if topic.name.trim().is_empty() {
                return fail(&format!("kafka.topics.{role}.name"), "must not be empty");
            }
            if topic.partitions < 1 {
                return fail(
                    &format!("kafka.topics.{role}.partitions"),
                    "must be at least 1",
                );
            }
        }
        self.routing_table()?;
        self.domain_rules()?;
        Ok(())
    }

    /// The routing table, checked: known event types only, known topics only, a fallback row.
    pub fn routing_table(&self) -> Result<RoutingTable, ConfigError> {
        let known: Vec<&str> = self
            .kafka
            .topics
            .all()
            .iter()
            .map(|(_, t)| t.name.as_str())
            .collect();
        let mut routes = HashMap::new();
        let mut fallback = None;
        for (key, topics) in &self.routing {
            let name = format!("routing.{key}");
            if topics.is_empty() {
                return Err(ConfigError(format!(
                    "key `{name}`: must name at least one topic"
                )));
            }
            if let Some(bad) = topics.iter().find(|t| !known.contains(&t.as_str())) {
                return Err(ConfigError(format!(
                    "key `{name}`: topic `{bad}` is not one of [kafka.topics]"
                )));
            }
            if key == "fallback" {
                fallback = Some(topics.clone());
                continue;
            }
            let event_type: EventType = key
                .parse()
                .map_err(|e| ConfigError(format!("key `{name}`: {e}")))?;
            routes.insert(event_type, topics.clone());
        }
        let fallback =
            fallback.ok_or_else(|| ConfigError("key `routing.fallback` is missing".to_owned()))?;
        Ok(RoutingTable::new(routes, fallback))
    }

    /// The tier and badge rules, checked (increasing milestones, badges for existing tiers).
    pub fn domain_rules(&self) -> Result<DomainRules, ConfigError> {
        let tiers = self
            .domain
            .tiers
            .iter()
            .map(|t| TierRule {
                id: t.id,
                name: t.name.clone(),
                milestone: t.milestone,
                image_url: t.image_url.clone(),
                badges_required: t.badges_required,
                benefits: Benefits {
                    trading_fee_reduction: t.benefits.trading_fee_reduction.clone(),
                    ai_agent_weekly_uses: t.benefits.ai_agent_weekly_uses,
                    priority_support: t.benefits.priority_support,
                },
            })
            .collect();
        let badges = self
            .domain
            .badges
            .iter()
            .map(|b| BadgeRule {
                id: b.id.clone(),
                name: b.name.clone(),
                description: b.description.clone(),
                image_url: b.image_url.clone(),
                required_for_tier: b.required_for_tier,
            })
            .collect();
        DomainRules::new(tiers, badges)
            .map_err(|e| ConfigError(format!("key `{}`: {}", e.key, e.reason)))
    }

    /// The local ledger's injected faults.
    pub fn ledger_faults(&self) -> LedgerFaults {
        LedgerFaults {
            failure_rate: self.chain.failure_rate,
            latency: Duration::from_millis(self.chain.latency_ms),
        }
    }

    /// The alert rules with the configured thresholds.
    pub fn alert_rules(&self) -> AlertRules {
        let a = &self.alerts;
        AlertRules::seed(
            a.sse_error_rate_percent,
            a.consumer_lag,
            a.avg_processing_ms,
            a.active_connections,
            Duration::from_secs(a.interval_secs),
            a.clear_after,
        )
    }

    /// How patiently flows ask the chain.
    pub fn flow_policy(&self) -> FlowPolicy {
        FlowPolicy {
            attempts: self.chain.attempts,
            backoff: Duration::from_millis(self.chain.retry_backoff_ms),
        }
    }

    /// The stream tunables the actors need.
    pub fn stream_config(&self) -> StreamConfig {
        StreamConfig {
            max_connections_per_user: self.sse.max_connections_per_user,
            session_queue: self.sse.session_queue,
            heartbeat: Duration::from_secs(self.sse.heartbeat_secs),
            retry: Duration::from_millis(self.sse.retry_ms),
            hidden_types: self
                .sse
                .hidden_event_types
                .iter()
                .filter_map(|t| t.parse().ok())
                .collect(),
        }
    }
}

/// Instance ids go into Redis keys, log lines and metric labels: kept to a safe alphabet.
fn is_instance_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl Settings {
    /// Fills an empty `cluster.instance_id` with a generated one (`nftr-` and 8 hex digits),
    /// once, so logs, readiness, metrics and the other instances all see the same id.
    pub fn resolve_instance_id(&mut self) -> &str {
        self.cluster.instance_id = self.cluster.instance_id_or_new();
        &self.cluster.instance_id
    }
}

/// figment's own message prefixes the profile ("default.") and can span several causes; this
/// keeps the first cause and names the key plainly, with where the bad value came from.
fn describe(err: figment::Error) -> ConfigError {
    let err = err
        .into_iter()
        .next()
        .unwrap_or_else(|| figment::Error::from("unknown"));
    let mut key = err
        .path
        .iter()
        .filter(|p| p.as_str() != "default")
        .cloned()
        .collect::<Vec<_>>();
    let what = match &err.kind {
        figment::error::Kind::MissingField(field) => {
            key.push(field.to_string());
            "is missing".to_owned()
        }
        figment::error::Kind::UnknownField(field, _) => {
            key.push(field.to_string());
            "is not a known key".to_owned()
        }
        kind => format!("is invalid: {kind}"),
    };
    let origin = err
        .metadata
        .as_ref()
        .map(|m| format!(" (from {})", m.name))
        .unwrap_or_default();
    if key.is_empty() {
        ConfigError(format!("{what}{origin}"))
    } else {
        ConfigError(format!("key `{}` {what}{origin}", key.join(".")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_config() -> Figment {
        Figment::from(Toml::file(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config.toml"
        )))
    }

    #[test]
    fn the_shipped_config_is_valid() {
        let s = Settings::from_figment(repo_config()).expect("valid");
        assert_eq!(s.sse.max_connections_per_user, 3);
        assert_eq!(s.sse.heartbeat_secs, 30);
    }

    #[test]
    fn a_malformed_value_names_its_key() {
        let f = repo_config().merge(Toml::string("[sse]\nheartbeat_secs = \"soon\""));
        let err = Settings::from_figment(f).expect_err("invalid").to_string();
        assert!(err.contains("sse.heartbeat_secs"), "{err}");
    }

    #[test]
    fn a_missing_key_names_itself() {
        let toml = "[http]\nbind=\"127.0.0.1:0\"\nworkers=1\nmax_body_bytes=65536\nshutdown_timeout_secs=1\nreuse_port=false\n";
        let err = Settings::from_figment(Figment::from(Toml::string(toml)))
            .expect_err("incomplete")
            .to_string();
        assert!(err.contains("key `auth` is missing"), "{err}");
        let f = repo_config().merge(Toml::string("[sse]\nsession_queue = 1"));
        let err = Settings::from_figment(f)
            .expect_err("too small")
            .to_string();
        assert!(err.contains("sse.session_queue"), "{err}");
    }

    #[test]
    fn the_shipped_routing_table_is_the_design_default() {
        let s = Settings::from_figment(repo_config()).expect("valid");
        assert_eq!(s.routing_table().expect("routing"), RoutingTable::default());
    }

    #[test]
    fn routing_to_an_unknown_topic_or_type_is_refused() {
        let f = repo_config().merge(Toml::string("[routing]\nnft_minted = [\"nope\"]"));
        let err = Settings::from_figment(f)
            .expect_err("bad topic")
            .to_string();
        assert!(err.contains("routing.nft_minted"), "{err}");
        let f = repo_config().merge(Toml::string(
            "[routing]\nnft_exploded = [\"nft-operations-topic\"]",
        ));
        let err = Settings::from_figment(f).expect_err("bad type").to_string();
        assert!(err.contains("routing.nft_exploded"), "{err}");
    }

    #[test]
    fn the_shipped_domain_rules_have_the_seed_milestones() {
        let s = Settings::from_figment(repo_config()).expect("valid");
        let rules = s.domain_rules().expect("rules");
        let milestones: Vec<f64> = rules.tiers().iter().map(|t| t.milestone).collect();
        assert_eq!(
            milestones,
            [100_000.0, 250_000.0, 500_000.0, 1_000_000.0, 2_500_000.0]
        );
    }

    #[test]
    fn invalid_domain_rules_fail_naming_the_entry() {
        let toml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml"))
            .expect("config")
            .replace("milestone = 500000", "milestone = 200000");
        let err = Settings::from_figment(Figment::from(Toml::string(&toml)))
            .expect_err("decreasing milestones")
            .to_string();
        assert!(err.contains("domain.tiers[2]"), "{err}");
        assert!(err.contains("strictly increasing"), "{err}");
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let f = repo_config().merge(Toml::string("[sse]\nheartbeat_sec = 5"));
        let err = Settings::from_figment(f).expect_err("typo").to_string();
        assert!(err.contains("sse.heartbeat_sec"), "{err}");
    }
}
