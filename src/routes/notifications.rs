use super::params::Params;
use crate::auth::Principal;
use crate::error::{ApiError, ApiErrorBody};
use crate::store::{NotificationRow, Store, StoreError};
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::Serialize;

const DEFAULT_LIMIT: u64 = 20;
const MAX_LIMIT: u64 = 100;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NotificationsPage {
    notifications: Vec<NotificationRow>,
    unread_count: u64,
    /// Pass as `before` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_before: Option<u64>,
}

/// The caller's notifications, newest first, written by the notification consumer.
#[utoipa::path(
    get, path = "/api/v1/user/notifications", tag = "user",
    params(
        ("before" = Option<u64>, Query, description = "`nextBefore` of the previous page"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Notifications per page (20)"),
    ),
    responses(
        (status = 200, description = "The caller's notifications, newest first", body = Object),
        (status = 400, description = "A malformed request; `field` names what is wrong", body = ApiErrorBody),
        (status = 401, description = "No token, or one that does not verify", body = ApiErrorBody),
        (status = 503, description = "The store is down, or a stream cap is reached (with `Retry-After`)", body = ApiErrorBody)
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/user/notifications")]
pub async fn list_notifications(
    req: HttpRequest,
    principal: Principal,
    store: web::Data<Store>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::of(&req)?;
    let before = params.opt_uint("before")?;
    let limit = params.uint("limit", DEFAULT_LIMIT, 1..=MAX_LIMIT)? as usize;
    let store = store.get_ref().clone();
    let user = principal.user_id;
    let (mut notifications, unread_count) = blocking(move || {
        let rows = store.list_notifications(&user, before, limit + 1)?;
        Ok((rows, store.unread_count(&user)?))
    })
    .await?;
    let next_before = if notifications.len() > limit {
        notifications.truncate(limit);
        notifications.last().map(|n| n.id)
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(NotificationsPage {
        notifications,
        unread_count,
        next_before,
    }))
}

/// Marks one of the caller's notifications read. 404 when it is not theirs or does not exist.
#[utoipa::path(
    post, path = "/api/v1/user/notifications/{id}/read", tag = "user",
    params(("id" = i64, Path, minimum = 0, description = "The notification's id")),
    responses(
        (status = 200, description = "Marked read", body = Object),
        (status = 400, description = "A malformed request; `field` names what is wrong", body = ApiErrorBody),
        (status = 401, description = "No token, or one that does not verify", body = ApiErrorBody),
        (status = 404, description = "Not found", body = ApiErrorBody),
        (status = 503, description = "The store is down, or a stream cap is reached (with `Retry-After`)", body = ApiErrorBody)
    ),
    security(("bearer" = []))
)]
#[post("/api/v1/user/notifications/{id}/read")]
pub async fn mark_read(
    path: web::Path<String>,
    principal: Principal,
    store: web::Data<Store>,
) -> Result<HttpResponse, ApiError> {
    let id: u64 = path
        .into_inner()
        .parse()
        .ok()
        .filter(|&id| id <= super::params::MAX_CURSOR)
        .ok_or_else(|| ApiError::InvalidParameter {
            name: "id",
            reason: "must be a notification id".to_owned(),
        })?;
    let store = store.get_ref().clone();
    let user = principal.user_id;
    let found = blocking(move || store.mark_notification_read(&user, id)).await?;
    if !found {
        return Err(ApiError::NotFound(format!("no notification {id}")));
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "id": id, "read": true })))
}

/// Runs a store call on the blocking pool, mapping its failure to the API's.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    Ok(web::block(f).await??)
}
