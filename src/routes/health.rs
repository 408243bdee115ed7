use crate::kafka::broker_health;
use crate::startup::Dependencies;
use actix_web::{get, web, HttpResponse};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// How long readiness waits for each dependency.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Liveness: the process answers HTTP.
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

fn millis(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// Readiness: the database, the broker and the cache each answer. 503 with the reasons when
/// one does not, so a load balancer stops sending traffic that would only fail.
#[get("/readyz")]
pub async fn readyz(deps: web::Data<Dependencies>) -> HttpResponse {
    let (database, kafka, cache) = tokio::join!(
        check_database(&deps),
        check_kafka(&deps),
        check_cache(&deps)
    );
    let ready = [&database, &kafka, &cache]
        .iter()
        .all(|c| c["status"] == "up");
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": { "database": database, "kafka": kafka, "cache": cache },
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn check_database(deps: &Dependencies) -> Value {
    let store = deps.store.clone();
    let backend = store.backend();
    let started = Instant::now();
    match web::block(move || store.ping()).await {
        Ok(Ok(())) => json!({ "status": "up", "backend": backend, "latencyMs": millis(started) }),
        Ok(Err(e)) => json!({ "status": "down", "backend": backend, "error": e.to_string() }),
        Err(e) => json!({ "status": "down", "backend": backend, "error": e.to_string() }),
    }
}

async fn check_kafka(deps: &Dependencies) -> Value {
    let bootstrap = deps.broker.bootstrap().to_owned();
    let started = Instant::now();
    let mut check = match broker_health(&bootstrap, CHECK_TIMEOUT).await {
        Ok(brokers) => json!({ "status": "up", "brokers": brokers, "latencyMs": millis(started) }),
        Err(e) => json!({ "status": "down", "error": e }),
    };
    check["bootstrapServers"] = json!(bootstrap);
    check["embedded"] = json!(deps.broker.is_embedded());
    check
}

async fn check_cache(deps: &Dependencies) -> Value {
    let started = Instant::now();
    match tokio::time::timeout(CHECK_TIMEOUT, deps.cache.ping()).await {
        Ok(Ok(())) => {
            json!({ "status": "up", "backend": deps.cache_backend, "latencyMs": millis(started) })
        }
        Ok(Err(e)) => {
            json!({ "status": "down", "backend": deps.cache_backend, "error": e.to_string() })
        }
        Err(_) => json!({ "status": "down", "backend": deps.cache_backend, "error": "timed out" }),
    }
}
