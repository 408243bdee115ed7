use super::health::Disclosure;
use crate::error::{ApiError, ApiErrorBody};
use actix_web::{get, web, HttpResponse};
use actors::metrics::{Metrics, CONTENT_TYPE};

/// Every metric of this router in the Prometheus text format. Open to anyone who reaches the
/// listener, like the health checks: a scraper carries no token, and the figures name no user.
/// With `http.internal_bind` set it is served there only: the public listener answers 404,
/// as for any route it does not have.
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
        (status = 404, description = "Not found", body = ApiErrorBody)
    )
)]
#[get("/metrics")]
pub async fn prometheus_metrics(
    metrics: web::Data<Metrics>,
    disclosure: web::Data<Disclosure>,
) -> Result<HttpResponse, ApiError> {
    if !disclosure.details {
        return Err(ApiError::NotFound("No such route".to_owned()));
    }
    Ok(HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .body(metrics.render()))
}
