//! Which instances are alive, and what each holds: every instance writes a short report to
//! Redis every `cluster.heartbeat_ms`, under a key that expires after three missed reports.
//! `/api/v1/admin/sse-stats` and `/api/v1/admin/instances` read them back, so any instance
//! answers for the whole cluster.

use actix::Addr;
use actors::bus::LiveBus;
use actors::registry::{GetStats, SessionRegistry};
use actors::SseStats;
use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// One instance as the others see it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InstanceReport {
    pub instance_id: String,
    pub started_at: DateTime<Utc>,
    pub reported_at: DateTime<Utc>,
    /// Draining: refusing new streams, closing the open ones.
    pub draining: bool,
    pub bus_connected: bool,
    pub stats: SseStats,
}

/// What this instance is, from which its report is made fresh each time.
pub struct SelfReport {
    pub instance_id: Arc<str>,
    pub started_at: DateTime<Utc>,
    /// Set on SIGTERM: readiness answers 503 and reports carry it.
    pub draining: Arc<AtomicBool>,
    pub bus: Arc<dyn LiveBus>,
}

impl SelfReport {
    /// This instance's report now, with `registry`'s connection statistics.
    pub async fn now(&self, registry: &Addr<SessionRegistry>) -> InstanceReport {
        InstanceReport {
            instance_id: self.instance_id.to_string(),
            started_at: self.started_at,
            reported_at: Utc::now(),
            draining: self.draining.load(Ordering::Relaxed),
            bus_connected: self.bus.status().connected,
            stats: registry.send(GetStats).await.unwrap_or_default(),
        }
    }
}

pub struct Members {
    conn: ConnectionManager,
    index: String,
    prefix: String,
    heartbeat: Duration,
}

impl Members {
    pub fn new(conn: ConnectionManager, prefix: &str, heartbeat: Duration) -> Members {
        Members {
            conn,
            index: format!("{prefix}nftr:instances"),
            prefix: prefix.to_owned(),
            heartbeat,
        }
    }

    fn key(&self, instance: &str) -> String {
        format!("{}nftr:instance:{instance}", self.prefix)
    }

    /// Writes `report` with a lifetime of three heartbeats.
    pub async fn report(&self, report: &InstanceReport) -> Result<(), String> {
        let json = serde_json::to_string(report).map_err(|e| e.to_string())?;
        let mut conn = self.conn.clone();
        redis::pipe()
            .cmd("SET")
            .arg(self.key(&report.instance_id))
            .arg(json)
            .arg("PX")
            .arg((self.heartbeat * 3).as_millis() as u64)
            .ignore()
            .cmd("SADD")
            .arg(&self.index)
            .arg(&report.instance_id)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| e.to_string())
    }

    /// Removes this instance at once (a clean stop), rather than after three heartbeats.
    pub async fn leave(&self, instance: &str) {
        let mut conn = self.conn.clone();
        let _ = redis::pipe()
            .cmd("DEL")
            .arg(self.key(instance))
            .ignore()
            .cmd("SREM")
            .arg(&self.index)
            .arg(instance)
            .ignore()
            .query_async::<()>(&mut conn)
            .await;
    }

    /// The live instances' latest reports, by id; ids whose report expired are dropped from
    /// the index on the way.
    pub async fn list(&self) -> Result<Vec<InstanceReport>, String> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(&self.index)
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.key(id)).collect();
        let reports: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        let mut live = Vec::new();
        let mut gone = Vec::new();
        for (id, report) in ids.into_iter().zip(reports) {
            match report.and_then(|r| serde_json::from_str::<InstanceReport>(&r).ok()) {
                Some(report) => live.push(report),
                None => gone.push(id),
            }
        }
        if !gone.is_empty() {
            let _: Result<(), _> = redis::cmd("SREM")
                .arg(&self.index)
                .arg(&gone)
                .query_async(&mut conn)
                .await;
        }
        live.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
        Ok(live)
    }

    /// Reports every heartbeat until the runtime stops.
    pub fn keep_reporting(self: Arc<Self>, me: Arc<SelfReport>, registry: Addr<SessionRegistry>) {
        actix::spawn(async move {
            let mut tick = tokio::time::interval(self.heartbeat);
            loop {
                tick.tick().await;
                if let Err(e) = self.report(&me.now(&registry).await).await {
                    log::debug!("cannot report this instance: {e}");
                }
            }
        });
    }
}

/// Connection statistics of the whole cluster: the per-instance [`SseStats`] figures
/// (`totalConnections`, `uniqueUsers`, …) summed over instances, plus each instance's own
/// figures.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStats {
    #[serde(flatten)]
    pub total: SseStats,
    /// The instance that answered.
    pub instance_id: String,
    pub instances: Vec<InstanceStats>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStats {
    pub instance_id: String,
    pub total_connections: usize,
    pub unique_users: usize,
    pub draining: bool,
}

/// Sums `reports` (one per instance) into the cluster's statistics.
pub fn merge(answering: &str, reports: &[InstanceReport]) -> ClusterStats {
    let mut per_user: BTreeMap<String, usize> = BTreeMap::new();
    for report in reports {
        for (user, n) in &report.stats.connections_per_user {
            *per_user.entry(user.clone()).or_default() += n;
        }
    }
    let total_connections: usize = per_user.values().sum();
    let unique_users = per_user.len();
    ClusterStats {
        total: SseStats {
            total_connections,
            unique_users,
            average_connections_per_user: if unique_users > 0 {
                total_connections as f64 / unique_users as f64
            } else {
                0.0
            },
            connections_per_user: per_user,
        },
        instance_id: answering.to_owned(),
        instances: reports
            .iter()
            .map(|r| InstanceStats {
                instance_id: r.instance_id.clone(),
                total_connections: r.stats.total_connections,
                unique_users: r.stats.unique_users,
                draining: r.draining,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: &str, users: &[(&str, usize)]) -> InstanceReport {
        let per_user: BTreeMap<String, usize> =
            users.iter().map(|(u, n)| (u.to_string(), *n)).collect();
        InstanceReport {
            instance_id: id.into(),
            started_at: Utc::now(),
            reported_at: Utc::now(),
            draining: false,
            bus_connected: true,
            stats: SseStats {
                total_connections: per_user.values().sum(),
                unique_users: per_user.len(),
                connections_per_user: per_user,
                average_connections_per_user: 0.0,
            },
        }
    }

    #[test]
    fn the_cluster_sums_users_across_instances() {
        let merged = merge(
            "a",
            &[
                report("a", &[("u1", 2), ("u2", 1)]),
                report("b", &[("u1", 1)]),
            ],
        );
        assert_eq!(merged.total.total_connections, 4);
        assert_eq!(merged.total.unique_users, 2);
        assert_eq!(merged.total.connections_per_user["u1"], 3);
        assert_eq!(merged.total.average_connections_per_user, 2.0);
        assert_eq!(merged.instances.len(), 2);
        assert_eq!(merged.instances[1].total_connections, 1);
    }
}
