use super::notifications::blocking;
use super::params::Params;
use crate::auth::{Principal, Role};
use crate::error::{ApiError, ApiErrorBody};
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
#[utoipa::path(
    get, path = "/api/v1/admin/audit", tag = "admin",
    params(
        ("eventType" = Option<EventType>, Query, description = "Only this type"),
        ("userId" = Option<String>, Query, format = "identifier", description = "Only this user"),
        ("from" = Option<String>, Query, format = DateTime, description = "Events at or after (RFC 3339)"),
        ("to" = Option<String>, Query, format = DateTime, description = "Events before (RFC 3339)"),
        ("before" = Option<u64>, Query, description = "`nextBefore` of the previous page"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Entries per page (50)"),
    ),
    responses(
        (status = 200, description = "Audit entries, newest first", body = Object),
        (status = 400, description = "A malformed request; `field` names what is wrong", body = ApiErrorBody),
        (status = 401, description = "No token, or one that does not verify", body = ApiErrorBody),
        (status = 403, description = "The route requires another role", body = ApiErrorBody),
        (status = 503, description = "The store is down, or a stream cap is reached (with `Retry-After`)", body = ApiErrorBody)
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/admin/audit")]
pub async fn audit_log(
    req: HttpRequest,
    principal: Principal,
    store: web::Data<Store>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&[Role::Admin])?;
    let params = Params::of(&req)?;
    let event_type = params
        .text("eventType")?
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
        user_id: params
            .text("userId")?
            .map(|user| {
                actors::event::check_id("userId", user)
                    .map(|()| user.to_owned())
                    .map_err(|e| ApiError::InvalidParameter {
                        name: "userId",
                        reason: e.message,
                    })
            })
            .transpose()?,
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
