use crate::auth::{Principal, Role};
use crate::cluster::Cluster;
use crate::error::{ApiError, ApiErrorBody};
use actix::Addr;
use actix_web::{get, web, HttpResponse};
use actors::registry::SessionRegistry;
use serde_json::json;
use std::sync::Arc;

/// The connection statistics for the whole cluster (connections in total, per user, and on
/// average, summed over the live instances), with each instance's own figures in `instances`.
/// The answering instance's figures are current; the others' are as of their last report.
#[utoipa::path(
    get, path = "/api/v1/admin/sse-stats", tag = "admin",
    responses(
        (status = 200, description = "Open streams for the cluster and per instance", body = Object),
        (status = 401, description = "No token, or one that does not verify", body = ApiErrorBody),
        (status = 403, description = "The route requires another role", body = ApiErrorBody)
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/admin/sse-stats")]
pub async fn sse_stats(
    principal: Principal,
    registry: web::Data<Addr<SessionRegistry>>,
    cluster: web::Data<Arc<Cluster>>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&[Role::Admin])?;
    Ok(HttpResponse::Ok().json(cluster.stats(&registry).await))
}

/// The live instances: id, start time, last report, whether draining, the bus, connections.
#[utoipa::path(
    get, path = "/api/v1/admin/instances", tag = "admin",
    responses(
        (status = 200, description = "The live instances of the cluster", body = Object),
        (status = 401, description = "No token, or one that does not verify", body = ApiErrorBody),
        (status = 403, description = "The route requires another role", body = ApiErrorBody)
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/admin/instances")]
pub async fn instances(
    principal: Principal,
    registry: web::Data<Addr<SessionRegistry>>,
    cluster: web::Data<Arc<Cluster>>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&[Role::Admin])?;
    let instances = cluster.instances(&registry).await;
    Ok(HttpResponse::Ok().json(json!({
        "instanceId": cluster.instance_id(),
        "bus": cluster.bus_status().backend,
        "instances": instances,
    })))
}
