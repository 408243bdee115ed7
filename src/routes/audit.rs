use super::notifications::blocking;
use super::params::Params;
use crate::auth::{Principal, Role};
use crate::error::ApiError;
use crate::store::{AuditQuery, AuditRow, Store};
use actix_web::{get, web, HttpRequest, HttpResponse};
use actors::EventType;
use serde::Serialize;

const DEFAULT_LIMIT: u64 = 50;
const MAX_LIMIT: u64 = 500;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AuditPage {
    entries: Vec<AuditRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_before: Option<u64>,
}

/// The audit log written by the audit consumer, newest first, filtered by `eventType`,
/// `userId` and the `from` (inclusive) / `to` (exclusive) times of the events.
#[get("/api/v1/admin/audit")]
pub async fn audit_log(
    req: HttpRequest,
    principal: Principal,
    store: web::Data<Store>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&[Role::Admin])?;
    let params = Params::of(&req)?;
    let event_type = params
        .text("eventType")
        .map(|t| {
            t.parse::<EventType>()
                .map(|t| t.as_str().to_owned())
                .map_err(|e| ApiError::InvalidParameter {
                    name: "eventType",
                    reason: e.to_string(),
                })
        })
        .transpose()?;
    let limit = params.uint("limit", DEFAULT_LIMIT, 1..=MAX_LIMIT)? as usize;
    let query = AuditQuery {
        event_type,
        user_id: params.text("userId").map(str::to_owned),
        from: params.time("from")?,
        to: params.time("to")?,
        before_id: params.opt_uint("before")?,
        limit: limit + 1,
    };
    let store = store.get_ref().clone();
    let mut entries = blocking(move || store.query_audit(&query)).await?;
    let next_before = if entries.len() > limit {
        entries.truncate(limit);
        entries.last().map(|e| e.id)
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(AuditPage {
        entries,
        next_before,
    }))
}
