use crate::store::Store;
use actix_web::{get, web, HttpResponse};
use std::time::Instant;

/// Liveness: the process answers HTTP.
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Readiness: every dependency answers. 503 with the reason when one does not, so a load
/// balancer stops sending traffic that would only get 503s.
#[get("/readyz")]
pub async fn readyz(store: web::Data<Store>) -> HttpResponse {
    let store = store.get_ref().clone();
    let backend = store.backend();
    let started = Instant::now();
    let ping = web::block(move || store.ping()).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let database = match ping {
        Ok(Ok(())) => serde_json::json!({
            "status": "up", "backend": backend, "latencyMs": latency_ms,
        }),
        Ok(Err(e)) => {
            serde_json::json!({ "status": "down", "backend": backend, "error": e.to_string() })
        }
        Err(e) => {
            serde_json::json!({ "status": "down", "backend": backend, "error": e.to_string() })
        }
    };
    let ready = database["status"] == "up";
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": { "database": database },
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
