use actix_web::{get, HttpResponse};
use actors::metrics::{metrics, CONTENT_TYPE};

/// Every metric of this process in the Prometheus text format. Open to anyone, like the
/// health checks: a scraper carries no token, and the figures name no user.
#[get("/metrics")]
pub async fn prometheus_metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .body(metrics().render())
}
