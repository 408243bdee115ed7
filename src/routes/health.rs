use crate::cluster::Cluster;
use crate::kafka::{broker_health, KafkaCluster};
use crate::store::Store;
use actix_web::{get, web, HttpResponse};
use actors::consumers::Cache;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long readiness waits for each dependency.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What readiness checks beyond the store, the cache and the cluster (which handlers share):
/// the Kafka cluster in use and the name of the cache's backend.
pub struct Readiness {
    pub broker: Arc<KafkaCluster>,
    pub cache_backend: &'static str,
}

/// How much the health and metrics routes of one listener tell. With `http.internal_bind`
/// set, the public listener answers readiness with its status only (what a load balancer
/// needs) and has no `/metrics`; the internal listener, and a router without one, tell all
/// (dependency addresses, latencies, the relay's role, per-partition figures).
#[derive(Debug, Clone, Copy)]
pub struct Disclosure {
    pub details: bool,
}

/// Liveness: the process answers HTTP.
#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process answers", body = Object))
)]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

fn millis(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// Readiness, separating "cannot serve" from "serves, degraded". Without the database nothing
/// can be accepted or resumed, and a draining instance wants no new streams: 503
/// `not_ready`, so the load balancer sends traffic elsewhere. A broker, cache or bus outage
/// only delays the Kafka path, counters or cross-instance delivery while publishing and local
/// streams go on: 200 `degraded`, naming what is down, so one shared outage does not take
/// every instance out of the load balancer at once.
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "`ready` or `degraded` (naming what is down)", body = Object),
        (status = 503, description = "`not_ready`: no database, or draining", body = Object)
    )
)]
#[get("/readyz")]
pub async fn readyz(
    deps: web::Data<Readiness>,
    store: web::Data<Store>,
    cache: web::Data<Arc<dyn Cache>>,
    cluster: web::Data<Arc<Cluster>>,
    disclosure: web::Data<Disclosure>,
) -> HttpResponse {
    let (database, kafka, cache) = tokio::join!(
        check_database(&store),
        check_kafka(&deps, &cluster),
        check_cache(cache.get_ref(), deps.cache_backend)
    );
    let bus = check_bus(&cluster);
    let draining = cluster.is_draining();
    let serving = database["status"] == "up" && !draining;
    let whole = [&kafka, &cache, &bus].iter().all(|c| c["status"] == "up");
    let status = match (serving, whole) {
        (false, _) => "not_ready",
        (true, true) => "ready",
        (true, false) => "degraded",
    };
    let body = if !disclosure.details {
        json!({ "status": status })
    } else {
        json!({
            "status": status,
            "instanceId": cluster.instance_id(),
            "draining": draining,
            "checks": { "database": database, "kafka": kafka, "cache": cache, "bus": bus },
        })
    };
    if serving {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

fn check_bus(cluster: &Cluster) -> Value {
    let bus = cluster.bus_status();
    json!({
        "status": if bus.connected { "up" } else { "down" },
        "backend": bus.backend,
        "watchedUsers": bus.watched_users,
        "published": bus.published,
        "dropped": bus.dropped,
        "received": bus.received,
        "reconnects": bus.reconnects,
        "error": bus.last_error,
    })
}

async fn check_database(store: &Store) -> Value {
    let store = store.clone();
    let backend = store.backend();
    let started = Instant::now();
    match web::block(move || store.ping()).await {
        Ok(Ok(())) => json!({ "status": "up", "backend": backend, "latencyMs": millis(started) }),
        Ok(Err(e)) => json!({ "status": "down", "backend": backend, "error": e.to_string() }),
        Err(e) => json!({ "status": "down", "backend": backend, "error": e.to_string() }),
    }
}

async fn check_kafka(deps: &Readiness, cluster: &Cluster) -> Value {
    let bootstrap = deps.broker.bootstrap().to_owned();
    let started = Instant::now();
    let mut check = match broker_health(&bootstrap, CHECK_TIMEOUT).await {
        Ok(brokers) => json!({ "status": "up", "brokers": brokers, "latencyMs": millis(started) }),
        Err(e) => json!({ "status": "down", "error": e }),
    };
    check["bootstrapServers"] = json!(bootstrap);
    check["embedded"] = json!(deps.broker.is_embedded());
    // In a cluster one instance relays the shared outbox; the others stand by.
    let relay = if cluster.relay_turn().holds() {
        "active"
    } else {
        "standby"
    };
    check["relay"] = json!(relay);
    check
}

async fn check_cache(cache: &Arc<dyn Cache>, backend: &str) -> Value {
    let started = Instant::now();
    match tokio::time::timeout(CHECK_TIMEOUT, cache.ping()).await {
        Ok(Ok(())) => {
            json!({ "status": "up", "backend": backend, "latencyMs": millis(started) })
        }
        Ok(Err(e)) => {
            json!({ "status": "down", "backend": backend, "error": e.to_string() })
        }
        Err(_) => json!({ "status": "down", "backend": backend, "error": "timed out" }),
    }
}
