use super::notifications::blocking;
use crate::auth::{Principal, Role};
use crate::error::{ApiError, ApiErrorBody};
use crate::store::Store;
use actix_web::{get, web, HttpResponse};
use actors::consumers::{counter_key, Cache};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What the analytics consumer has counted: per event type totals from the database, and the
/// `nft:{eventType}:count` counters as the cache holds them (`null` while the cache is down).
#[utoipa::path(
    get, path = "/api/v1/admin/analytics", tag = "admin",
    responses(
        (status = 200, description = "Event totals and counters", body = Object),
        (status = 401, description = "No token, or one that does not verify", body = ApiErrorBody),
        (status = 403, description = "The route requires another role", body = ApiErrorBody),
        (status = 503, description = "The store is down, or a stream cap is reached (with `Retry-After`)", body = ApiErrorBody)
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/admin/analytics")]
pub async fn analytics(
    principal: Principal,
    store: web::Data<Store>,
    cache: web::Data<Arc<dyn Cache>>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&[Role::Admin])?;
    let store = store.get_ref().clone();
    let totals = blocking(move || store.totals()).await?;
    let mut counters = BTreeMap::new();
    for (event_type, _) in &totals {
        let key = counter_key(event_type);
        let value = cache.get_counter(key.clone()).await.ok().flatten();
        counters.insert(key, value);
    }
    let totals: BTreeMap<String, u64> = totals.into_iter().collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "totals": totals, "counters": counters })))
}
