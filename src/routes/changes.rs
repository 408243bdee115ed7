use super::params::Params;
use crate::auth::Principal;
use crate::error::{ApiError, ApiErrorBody};
use crate::store::Store;
use actix_web::{get, web, HttpRequest, HttpResponse};
use actors::frame::SNAPSHOT_URL;
use actors::journal::{check_cursor, CursorCheck, LogError};
use actors::StreamConfig;
use serde::Serialize;
use serde_json::value::RawValue;

/// Page size when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest page a client may ask for.
pub const MAX_LIMIT: usize = 1000;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Change<'a> {
    cursor: String,
    /// The stored envelope, byte for byte what the stream sent.
    #[schema(value_type = actors::Envelope)]
    event: &'a RawValue,
}

/// A page of the polling fallback.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangesPage<'a> {
    events: Vec<Change<'a>>,
    next_cursor: String,
    has_more: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    resync: Option<serde_json::Value>,
}

/// The polling fallback (docs/DELIVERY.md): the same events and cursors as the stream, oldest
/// first. Pass the previous page's `nextCursor` as `since`. A `since` that can no longer be resumed
/// exactly answers `resync` (as the stream does) with `nextCursor` at the stream's head.
#[utoipa::path(
    get, path = "/api/v1/user/nft-portfolio-changes", tag = "user",
    params(
        ("since" = Option<u64>, Query, description = "The last cursor seen; 0 or absent: from the start"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Events per page (100)"),
    ),
    responses(
        (status = 200, description = "The caller's events after `since`, oldest first", body = ChangesPage),
        (status = 400, description = "A malformed request; `field` names what is wrong", body = ApiErrorBody),
        (status = 401, description = "No token, or one that does not verify", body = ApiErrorBody),
        (status = 503, description = "The store is down, or a stream cap is reached (with `Retry-After`)", body = ApiErrorBody)
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/user/nft-portfolio-changes")]
pub async fn portfolio_changes(
    req: HttpRequest,
    principal: Principal,
    store: web::Data<Store>,
    streams: web::Data<StreamConfig>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::of(&req)?;
    let since = params.uint("since", 0, 0..=super::params::MAX_CURSOR)?;
    let limit = params.uint("limit", DEFAULT_LIMIT as u64, 1..=MAX_LIMIT as u64)? as usize;

    let log = store.get_ref().clone();
    let user = principal.user_id;
    let (bounds, mut rows) = web::block(move || -> Result<_, LogError> {
        let bounds = log.stream_bounds(&user)?;
        if check_cursor(since, bounds) == CursorCheck::Resync {
            return Ok((bounds, None));
        }
        Ok((bounds, Some(log.events_after(&user, since, limit + 1)?)))
    })
    .await??;

    let Some(rows) = rows.as_mut() else {
        return Ok(HttpResponse::Ok().json(ChangesPage {
            events: Vec::new(),
            next_cursor: bounds.1.to_string(),
            has_more: false,
            resync: Some(serde_json::json!({ "type": "resync", "snapshotUrl": SNAPSHOT_URL })),
        }));
    };
    let has_more = rows.len() > limit;
    rows.truncate(limit);
    let mut events = Vec::with_capacity(rows.len());
    for row in rows.iter() {
        // Left out as on the stream; `nextCursor` still moves past them.
        if !streams.shows_type(row.event_type.known()) {
            continue;
        }
        let event: &RawValue = serde_json::from_str(&row.envelope_json)
            .map_err(|e| ApiError::Internal(format!("stored event is not JSON: {e}")))?;
        events.push(Change {
            cursor: row.seq.to_string(),
            event,
        });
    }
    let next_cursor = rows.last().map_or(since, |r| r.seq).to_string();
    Ok(HttpResponse::Ok().json(ChangesPage {
        events,
        next_cursor,
        has_more,
        resync: None,
    }))
}
