//! Several router instances behaving as one (one store, one Kafka, one Redis).
//!
//! # Layout
//!
//! * [`bus`]: [`bus::RedisBus`], the live bus on Redis pub/sub behind the actors' `LiveBus`
//!   port: per-user channels, subscribed while this instance holds the user's sessions.
//! * [`leases`]: [`leases::Leases`], the per-user stream limit across instances as expiring
//!   Redis leases.
//! * [`members`]: [`members::Members`], each instance's heartbeat report, and the cluster-wide
//!   connection statistics built from them.
//! * [`relay_turn`]: [`relay_turn::RelayClaim`], which instance relays the shared outbox to
//!   Kafka.
//!
//! With `cluster.bus = "none"` there is one instance: [`Cluster`] then holds the in-process
//! [`NoBus`] and nothing here touches the network.

pub mod bus;
pub mod leases;
pub mod members;
pub mod relay_turn;

use crate::config::{BusKind, Settings};
use actix::Addr;
use actors::bus::{BusStatus, LiveBus, NoBus};
use actors::outbox::RelayTurn;
use actors::registry::SessionRegistry;
use chrono::Utc;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use bus::{Inbound, RedisBus};
pub use leases::Leases;
pub use members::{ClusterStats, InstanceReport, Members, SelfReport};
pub use relay_turn::RelayClaim;

/// Bounds every Redis call of the cluster layer, so a hung Redis looks like a down one.
const REDIS_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("invalid redis.url for the live bus (key `cluster.bus`): {0}")]
    InvalidUrl(String),
    #[error("the live bus cannot reach Redis at `redis.url` (key `cluster.bus`): {0}")]
    Unreachable(String),
    #[error("cannot start the live bus: {0}")]
    Start(String),
}

/// This instance's place in the cluster.
pub struct Cluster {
    me: Arc<SelfReport>,
    redis: Option<Shared>,
}

/// What only a Redis-backed cluster has.
struct Shared {
    /// The one connection (multiplexed) the cluster's Redis calls share.
    conn: ConnectionManager,
    prefix: String,
    bus: Arc<RedisBus>,
    leases: Arc<Leases>,
    members: Arc<Members>,
    relay: Arc<RelayClaim>,
}

impl Cluster {
    /// Connects to the bus named by `cluster.bus`. A configured bus that does not answer now
    /// is a start-up error: an instance that silently ran alone would break the cluster's
    /// promises without anyone noticing. (Once running, a lost bus only degrades.)
    pub async fn open(settings: &Settings) -> Result<Cluster, ClusterError> {
        let instance_id: Arc<str> = Arc::from(settings.cluster.instance_id_or_new().as_str());
        let me = |bus: Arc<dyn LiveBus>| {
            Arc::new(SelfReport {
                instance_id: instance_id.clone(),
                started_at: Utc::now(),
                draining: Arc::new(AtomicBool::new(false)),
                bus,
            })
        };
        let url = match (settings.cluster.bus, settings.redis.url()) {
            (BusKind::None, _) => {
                return Ok(Cluster {
                    me: me(Arc::new(NoBus)),
                    redis: None,
                })
            }
            (BusKind::Redis, Some(url)) => url,
            (BusKind::Redis, None) => return Err(ClusterError::InvalidUrl("empty".into())),
        };
        let client =
            redis::Client::open(url).map_err(|e| ClusterError::InvalidUrl(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1);
        let mut conn = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(|e| ClusterError::Unreachable(e.to_string()))?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map_err(|e| ClusterError::Unreachable(e.to_string()))?;
        let prefix = &settings.redis.key_prefix;
        let bus = Arc::new(RedisBus::new(
            client,
            conn.clone(),
            prefix,
            instance_id.clone(),
        ));
        let leases = Leases::start(
            conn.clone(),
            prefix,
            instance_id.clone(),
            settings.cluster.lease,
        );
        let relay = RelayClaim::new(
            conn.clone(),
            prefix,
            instance_id.clone(),
            settings.cluster.lease,
        );
        let members = Arc::new(Members::new(
            conn.clone(),
            prefix,
            settings.cluster.heartbeat,
        ));
        Ok(Cluster {
            me: me(bus.clone()),
            redis: Some(Shared {
                conn,
                prefix: prefix.clone(),
                bus,
                leases,
                members,
                relay,
            }),
        })
    }

    pub fn instance_id(&self) -> &str {
        &self.me.instance_id
    }

    /// Turns readiness to 503 and marks this instance draining in its reports.
    pub fn start_draining(&self) {
        self.me.draining.store(true, Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.me.draining.load(Ordering::Relaxed)
    }

    /// The bus the journal, the registry and the operations feed use.
    pub fn bus(&self) -> Arc<dyn LiveBus> {
        self.me.bus.clone()
    }

    pub fn bus_status(&self) -> BusStatus {
        self.me.bus.status()
    }

    /// The cluster's Redis connection and key prefix, for what else is shared through it (the
    /// rate limits).
    pub fn redis(&self) -> Option<(ConnectionManager, &str)> {
        self.redis
            .as_ref()
            .map(|r| (r.conn.clone(), r.prefix.as_str()))
    }

    /// The cluster-wide limit, when there is a cluster.
    pub fn leases(&self) -> Option<Arc<Leases>> {
        self.redis.as_ref().map(|r| r.leases.clone())
    }

    /// Whether this instance's outbox relay publishes: always alone, by turn in a cluster.
    pub fn relay_turn(&self) -> RelayTurn {
        match &self.redis {
            Some(shared) => shared.relay.turn(),
            None => RelayTurn::always(),
        }
    }

    /// Starts receiving from the bus, claiming the relay turn and reporting this instance.
    pub fn start(
        &self,
        inbound: Inbound,
        registry: Addr<SessionRegistry>,
    ) -> Result<(), ClusterError> {
        let Some(shared) = &self.redis else {
            return Ok(());
        };
        let relay = inbound.outbox.clone();
        shared.bus.start(inbound)?;
        shared.relay.clone().keep_claiming(relay);
        shared
            .members
            .clone()
            .keep_reporting(self.me.clone(), registry);
        Ok(())
    }

    /// The live instances, this one always among them with fresh figures (the others as of
    /// their last report). Without Redis, or while it is down, this instance alone.
    pub async fn instances(&self, registry: &Addr<SessionRegistry>) -> Vec<InstanceReport> {
        let own = self.me.now(registry).await;
        let mut reports = match &self.redis {
            Some(shared) => shared.members.list().await.unwrap_or_else(|e| {
                log::warn!("cannot read the other instances' reports: {e}");
                Vec::new()
            }),
            None => Vec::new(),
        };
        reports.retain(|r| r.instance_id != own.instance_id);
        reports.push(own);
        reports.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
        reports
    }

    /// Connection statistics of the whole cluster.
    pub async fn stats(&self, registry: &Addr<SessionRegistry>) -> ClusterStats {
        members::merge(self.instance_id(), &self.instances(registry).await)
    }

    /// Takes this instance out of the reports and hands the relay turn on at once (a clean
    /// stop).
    pub async fn leave(&self) {
        if let Some(shared) = &self.redis {
            shared.relay.give_back().await;
            shared.members.leave(self.instance_id()).await;
        }
    }
}
