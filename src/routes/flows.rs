//! The unlock and upgrade flows (docs/DOMAIN.md): `POST /api/v1/user/unlock-nft` and
//! `POST /api/v1/user/upgrade-nft` answer 202 with an operation id as soon as the flow is
//! stored; `GET /api/v1/user/operations/{id}` reports how it went. The outcome also arrives on
//! the user's stream.

use super::domain::{command, correlation, parse};
use super::publish::read_body;
use super::BodyLimit;
use crate::auth::{Principal, Role};
use crate::error::{ApiError, ApiErrorBody};
use actix::Addr;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use actors::domain::{GetOperation, NftDomain, StartUnlock, StartUpgrade};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UnlockBody {
    tier_id: u32,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpgradeBody {
    target_tier_id: u32,
}

fn accepted(operation_id: String) -> HttpResponse {
    HttpResponse::Accepted()
        .insert_header((
            "Location",
            format!("/api/v1/user/operations/{operation_id}"),
        ))
        .json(json!({ "operationId": operation_id, "status": "pending" }))
}

/// Mint the caller's first NFT, of a tier they qualify for.
#[utoipa::path(
    post, path = "/api/v1/user/unlock-nft", tag = "user",
    request_body = UnlockBody,
    responses(
        (status = 202, description = "The unlock runs; poll `Location`", body = Object,
            headers(("Location" = String, description = "The operation's URL"))),
        (status = 400, description = "A malformed request; `field` names what is wrong", body = ApiErrorBody),
        (status = 401, description = "No token, or one that does not verify", body = ApiErrorBody),
        (status = 403, description = "The route requires another role", body = ApiErrorBody),
        (status = 409, description = "An unlock or upgrade for this user is running", body = ApiErrorBody),
        (status = 422, description = "Refused by the NFT domain's rules", body = ApiErrorBody),
        (status = 503, description = "The store is down, or a stream cap is reached (with `Retry-After`)", body = ApiErrorBody)
    ),
    security(("bearer" = []))
)]
#[post("/api/v1/user/unlock-nft")]
pub async fn unlock_nft(
    req: HttpRequest,
    principal: Principal,
    payload: web::Payload,
    limit: web::Data<BodyLimit>,
    domain: web::Data<Addr<NftDomain>>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&[Role::User])?;
    let body: UnlockBody = parse(&read_body(payload, limit.0).await?)?;
    let operation_id = command(
        &domain,
        StartUnlock {
            user_id: principal.user_id,
            tier_id: body.tier_id,
            correlation_id: correlation(&req),
        },
    )
    .await?;
    Ok(accepted(operation_id))
}

/// Burn the caller's NFT and mint the next tier, consuming the badges it requires.
#[utoipa::path(
    post, path = "/api/v1/user/upgrade-nft", tag = "user",
    request_body = UpgradeBody,
    responses(
        (status = 202, description = "The upgrade runs; poll `Location`", body = Object,
            headers(("Location" = String, description = "The operation's URL"))),
        (status = 400, description = "A malformed request; `field` names what is wrong", body = ApiErrorBody),
        (status = 401, description = "No token, or one that does not verify", body = ApiErrorBody),
        (status = 403, description = "The route requires another role", body = ApiErrorBody),
        (status = 409, description = "An unlock or upgrade for this user is running", body = ApiErrorBody),
        (status = 422, description = "Refused by the NFT domain's rules", body = ApiErrorBody),
        (status = 503, description = "The store is down, or a stream cap is reached (with `Retry-After`)", body = ApiErrorBody)
    ),
    security(("bearer" = []))
)]
#[post("/api/v1/user/upgrade-nft")]
pub async fn upgrade_nft(
    req: HttpRequest,
    principal: Principal,
    payload: web::Payload,
    limit: web::Data<BodyLimit>,
    domain: web::Data<Addr<NftDomain>>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&[Role::User])?;
    let body: UpgradeBody = parse(&read_body(payload, limit.0).await?)?;
    let operation_id = command(
        &domain,
        StartUpgrade {
            user_id: principal.user_id,
            target_tier_id: body.target_tier_id,
            correlation_id: correlation(&req),
        },
    )
    .await?;
    Ok(accepted(operation_id))
}

/// One of the caller's flows: `pending | completed | failed`, with the reason of a failure.
#[utoipa::path(
    get, path = "/api/v1/user/operations/{operation_id}", tag = "user",
    params(("operation_id" = String, Path, description = "From an unlock or upgrade")),
    responses(
        (status = 200, description = "The operation's state", body = Object),
        (status = 400, description = "A malformed request; `field` names what is wrong", body = ApiErrorBody),
        (status = 401, description = "No token, or one that does not verify", body = ApiErrorBody),
        (status = 404, description = "Not found", body = ApiErrorBody),
        (status = 503, description = "The store is down, or a stream cap is reached (with `Retry-After`)", body = ApiErrorBody)
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/user/operations/{operation_id}")]
pub async fn operation(
    path: web::Path<String>,
    principal: Principal,
    domain: web::Data<Addr<NftDomain>>,
) -> Result<HttpResponse, ApiError> {
    let operation_id = path.into_inner();
    let flow = command(
        &domain,
        GetOperation {
            user_id: principal.user_id,
            operation_id: operation_id.clone(),
        },
    )
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no operation {operation_id} for this user")))?;
    Ok(HttpResponse::Ok().json(json!({
        "operationId": flow.operation_id,
        "kind": flow.kind,
        "status": flow.status,
        "targetTierId": flow.target_tier,
        "reason": flow.reason,
        "oldNft": flow.old_nft,
        "newNft": flow.new_nft,
        "consumedBadges": flow.consumed_badges,
        "createdAt": flow.created_at,
        "updatedAt": flow.updated_at,
    })))
}
