//! Typed settings: `config.toml` (or `--config PATH`), then `NFT_ROUTER__SECTION__KEY`
//! environment overrides. Every key is required and unknown keys are refused, so a typo fails
//! start-up with one line naming the key instead of silently running on a default. Each value
//! is read into the type the router uses (addresses, durations, non-zero counts, event types,
//! enums): a bad value fails where it is read, and nothing downstream parses text again.

mod sections;
mod values;

pub use sections::{
    AlertSettings, AuthSettings, BadgeSetting, BenefitsSetting, BusKind, ChainAdapter,
    ChainSettings, ClusterSettings, DomainSettings, HttpSettings, KafkaSettings, LimitSettings,
    LogSettings, MonitoringSettings, RedisSettings, SseSettings, StoreSettings, TierSetting,
    TlsSettings, TopicSetting, TopicSettings,
};
pub use values::InstanceId;

use actors::domain::{BadgeRule, DomainRules, FlowPolicy, LedgerFaults, TierRule};
use actors::event::Benefits;
use actors::monitoring::AlertRules;
use actors::routing::RoutingTable;
use actors::stream_config::StreamConfig;
use actors::EventType;
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use secrecy::ExposeSecret;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Prefix of environment overrides; sections and keys are separated by `__`.
pub const ENV_PREFIX: &str = "NFT_ROUTER__";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub http: HttpSettings,
    pub auth: AuthSettings,
    pub sse: SseSettings,
    pub limits: LimitSettings,
    pub store: StoreSettings,
    pub kafka: KafkaSettings,
    pub routing: HashMap<RouteKey, Vec<String>>,
    pub redis: RedisSettings,
    pub domain: DomainSettings,
    pub chain: ChainSettings,
    pub monitoring: MonitoringSettings,
    pub alerts: AlertSettings,
    pub cluster: ClusterSettings,
    pub log: LogSettings,
}

/// A row of `[routing]`: an event type, or `fallback` for every type without a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub enum RouteKey {
    Fallback,
    Type(EventType),
}

impl TryFrom<String> for RouteKey {
    type Error = String;

    fn try_from(key: String) -> Result<Self, Self::Error> {
        if key == "fallback" {
            return Ok(RouteKey::Fallback);
        }
        key.parse()
            .map(RouteKey::Type)
            .map_err(|e| format!("`routing.{key}`: {e}"))
    }
}

/// The signing secret `config.toml` ships with: public, so development only (see
/// [`Settings::check_exposure`]).
pub const SHIPPED_JWT_SECRET: &str = "dev-only-secret-change-me-in-production";

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
        settings.check_across_sections()?;
        Ok(settings)
    }

    /// What no single value can say on its own: every value was checked as it was read
    /// ([`values`]); these rules relate keys of different sections.
    fn check_across_sections(&self) -> Result<(), ConfigError> {
        if self.cluster.bus == BusKind::Redis && self.redis.url().is_none() {
            return Err(ConfigError(
                "key `cluster.bus`: \"redis\" needs `redis.url`".to_owned(),
            ));
        }
        self.check_exposure()?;
        self.routing_table()?;
        self.domain_rules()?;
        Ok(())
    }

    /// The development conveniences are safe only where nobody else can connect: a router
    /// listening beyond loopback with token minting on, or with the shipped (public) signing
    /// secret, would hand out every role to whoever reaches it. Refused, in one line.
    fn check_exposure(&self) -> Result<(), ConfigError> {
        let bind = self.http.bind;
        if self.http.internal_bind == Some(bind) && bind.port() != 0 {
            return Err(ConfigError(format!(
                "key `http.internal_bind`: must differ from `http.bind` ({bind})"
            )));
        }
        if bind.ip().is_loopback() {
            return Ok(());
        }
        if self.auth.dev_tokens {
            return Err(ConfigError(format!(
                "key `auth.dev_tokens`: must be false when `http.bind` ({bind}) is not a \
                 loopback address (anyone who reaches it could mint tokens)"
            )));
        }
        if self.auth.jwt_secret.expose_secret() == SHIPPED_JWT_SECRET {
            return Err(ConfigError(format!(
                "key `auth.jwt_secret`: the shipped development secret is public; set your \
                 own when `http.bind` ({bind}) is not a loopback address"
            )));
        }
        Ok(())
    }

    /// The routing table, checked: known topics only, a fallback row.
    pub fn routing_table(&self) -> Result<RoutingTable, ConfigError> {
        let known: Vec<&str> = self
            .kafka
            .topics
            .all()
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        let mut routes = HashMap::new();
        let mut fallback = None;
        for (key, topics) in &self.routing {
            let name = match key {
                RouteKey::Fallback => "routing.fallback".to_owned(),
                RouteKey::Type(t) => format!("routing.{t}"),
            };
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
            match key {
                RouteKey::Fallback => fallback = Some(topics.clone()),
                RouteKey::Type(t) => {
                    routes.insert(*t, topics.clone());
                }
            }
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
            latency: self.chain.latency,
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
            a.interval,
            a.clear_after.get(),
        )
    }

    /// How patiently flows ask the chain.
    pub fn flow_policy(&self) -> FlowPolicy {
        FlowPolicy {
            attempts: self.chain.attempts.get(),
            backoff: self.chain.retry_backoff,
        }
    }

    /// The stream tunables the actors need.
    pub fn stream_config(&self) -> StreamConfig {
        StreamConfig {
            max_connections_per_user: self.sse.max_connections_per_user.get(),
            session_queue: self.sse.session_queue,
            heartbeat: self.sse.heartbeat,
            retry: self.sse.retry,
            hidden_types: self.sse.hidden_event_types.clone(),
        }
    }

    /// Fills an empty `cluster.instance_id` with a generated one (`nftr-` and 8 hex digits),
    /// once, so logs, readiness, metrics and the other instances all see the same id.
    pub fn resolve_instance_id(&mut self) -> InstanceId {
        let id = self.cluster.instance_id_or_new();
        self.cluster.instance_id = Some(id.clone());
        id
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
        assert_eq!(s.sse.max_connections_per_user.get(), 3);
        assert_eq!(s.sse.heartbeat, std::time::Duration::from_secs(30));
        assert_eq!(s.http.bind, "127.0.0.1:8080".parse().expect("address"));
        assert_eq!(s.store.sqlite_synchronous, crate::store::SqliteSync::Full);
        assert_eq!(s.kafka.brokers, crate::kafka::Brokers::Embedded);
        assert_eq!(s.chain.adapter, ChainAdapter::LocalLedger);
        assert_eq!(s.cluster.instance_id, None);
        assert_eq!(
            s.sse.hidden_event_types,
            [EventType::NftMinted, EventType::NftBurned]
        );
    }

    /// `config.toml` is the one source of defaults; the library types that have a `Default`
    /// of their own (for embedding and tests) must say the same.
    #[test]
    fn library_defaults_are_the_shipped_ones() {
        let s = Settings::from_figment(repo_config()).expect("valid");
        let shipped = s.stream_config();
        let library = StreamConfig::default();
        assert_eq!(
            library.max_connections_per_user,
            shipped.max_connections_per_user
        );
        assert_eq!(library.session_queue, shipped.session_queue);
        assert_eq!(library.heartbeat, shipped.heartbeat);
        assert_eq!(library.retry, shipped.retry);
        let consumer = crate::kafka::ConsumerConfig::new("b:9092", "g", Vec::new());
        assert_eq!(consumer.max_attempts, s.kafka.consumer_max_attempts.get());
        assert_eq!(consumer.retry_backoff, s.kafka.consumer_retry_backoff);
    }

    fn refusal(toml: &str) -> String {
        let f = repo_config().merge(Toml::string(toml));
        match Settings::from_figment(f) {
            Ok(_) => panic!("accepted: {toml}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn each_bad_value_is_refused_naming_its_key_and_why() {
        for (toml, key, why) in [
            ("[http]\nbind = \"localhost\"", "http.bind", "invalid"),
            (
                "[http]\nmax_body_bytes = 10",
                "http.max_body_bytes",
                "at least 1024",
            ),
            (
                "[auth]\njwt_secret = \"short\"",
                "auth.jwt_secret",
                "16 bytes",
            ),
            (
                "[sse]\nmax_connections_per_user = 0",
                "sse.max_connections_per_user",
                "zero",
            ),
            (
                "[sse]\nheartbeat_secs = 0",
                "sse.heartbeat_secs",
                "at least 1",
            ),
            (
                "[sse]\nhidden_event_types = [\"nft_exploded\"]",
                "sse.hidden_event_types",
                "nft_exploded",
            ),
            ("[store]\nurl = \" \"", "store.url", "must not be empty"),
            (
                "[store]\nsqlite_synchronous = \"off\"",
                "store.sqlite_synchronous",
                "off",
            ),
            ("[store]\npool_size = 0", "store.pool_size", "zero"),
            ("[kafka]\nbrokers = \" \"", "kafka.brokers", "bootstrap"),
            (
                "[kafka.topics.analytics]\npartitions = 0",
                "kafka.topics.analytics.partitions",
                "zero",
            ),
            (
                "[chain]\nadapter = \"solana\"",
                "chain.adapter",
                "local_ledger",
            ),
            (
                "[chain]\nfailure_rate = 1.5",
                "chain.failure_rate",
                "between 0.0 and 1.0",
            ),
            (
                "[alerts]\nconsumer_lag = -1.0",
                "alerts.consumer_lag",
                "non-negative",
            ),
            (
                "[cluster]\ninstance_id = \"a b\"",
                "cluster.instance_id",
                "64 characters",
            ),
            ("[cluster]\nsweep_ms = 5", "cluster.sweep_ms", "at least 10"),
            ("[cluster]\nbus = \"redis\"", "cluster.bus", "redis.url"),
            ("[log]\nformat = \"xml\"", "log.format", "xml"),
            (
                "[http]\ncors_origins = [\"app.example.com\"]",
                "http.cors_origins",
                "is not `*` or an origin",
            ),
            (
                "[http]\ninternal_bind = \"metrics\"",
                "http.internal_bind",
                "expected an address",
            ),
            (
                "[http]\ninternal_bind = \"127.0.0.1:8080\"",
                "http.internal_bind",
                "must differ from `http.bind`",
            ),
            (
                "[http]\nbind = \"10.1.2.3:8080\"",
                "auth.dev_tokens",
                "not a loopback address",
            ),
            (
                "[http]\nbind = \"[::]:8080\"\n[auth]\ndev_tokens = false",
                "auth.jwt_secret",
                "shipped development secret is public",
            ),
        ] {
            let err = refusal(toml);
            assert!(err.contains(key), "{toml}: {err}");
            assert!(err.contains(why), "{toml}: {err}");
        }
    }

    #[test]
    fn a_public_address_with_an_own_secret_and_no_minting_is_accepted() {
        let f = repo_config().merge(Toml::string(
            "[http]\nbind = \"0.0.0.0:8080\"\n[auth]\ndev_tokens = false\njwt_secret = \"a-secret-of-our-own-0123\"",
        ));
        let settings = Settings::from_figment(f).expect("accepted");
        assert!(!settings.http.bind.ip().is_loopback());
        // The refusal compares with what config.toml really ships.
        let shipped = Settings::from_figment(repo_config()).expect("shipped config");
        assert_eq!(shipped.auth.jwt_secret.expose_secret(), SHIPPED_JWT_SECRET);
    }

    #[test]
    fn a_malformed_value_names_its_key() {
        let f = repo_config().merge(Toml::string("[sse]\nheartbeat_secs = \"soon\""));
        let err = Settings::from_figment(f).expect_err("invalid").to_string();
        assert!(err.contains("sse.heartbeat_secs"), "{err}");
    }

    #[test]
    fn a_missing_key_names_itself() {
        let toml = "[http]\nbind=\"127.0.0.1:0\"\nworkers=1\nmax_body_bytes=65536\nshutdown_timeout_secs=1\nreuse_port=false\ncors_origins=[]\ninternal_bind=\"\"\ntrusted_proxies=[]\n[http.tls]\ncert=\"\"\nkey=\"\"\nreload_check_secs=5\n";
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
        assert!(err.contains("unknown event type"), "{err}");
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
