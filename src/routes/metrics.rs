use actix_web::{get, web, HttpResponse};
use actors::metrics::{Metrics, CONTENT_TYPE};

/// Every metric of this router in the Prometheus text format. Open to anyone, like the
/// health checks: a scraper carries no token, and the figures name no user.
#[get("/metrics")]
pub async fn prometheus_metrics(metrics: web::Data<Metrics>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .body(metrics.render())
}
