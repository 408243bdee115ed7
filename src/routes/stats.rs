use crate::auth::{Principal, Role};
use crate::error::ApiError;
use actix::Addr;
use actix_web::{get, web, HttpResponse};
use actors::registry::{GetStats, SessionRegistry};

/// The seed's `getStats()`: connections in total, per user, and on average.
#[get("/api/v1/admin/sse-stats")]
pub async fn sse_stats(
    principal: Principal,
    registry: web::Data<Addr<SessionRegistry>>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&[Role::Admin])?;
    let stats = registry
        .send(GetStats)
        .await
        .map_err(|_| ApiError::Unavailable("session registry is not running".to_owned()))?;
    Ok(HttpResponse::Ok().json(stats))
}
