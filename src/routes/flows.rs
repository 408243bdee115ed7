//! The unlock and upgrade flows (docs/DOMAIN.md): `POST /api/v1/user/unlock-nft` and
//! `POST /api/v1/user/upgrade-nft` answer 202 with an operation id as soon as the flow is
//! stored; `GET /api/v1/user/operations/{id}` reports how it went. The outcome also arrives on
//! the user's stream.

use super::domain::{command, correlation, parse};
use super::publish::read_body;
use super::BodyLimit;
use crate::auth::{Principal, Role};
use crate::error::ApiError;
use actix::Addr;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use actors::domain::{GetOperation, NftDomain, StartUnlock, StartUpgrade};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UnlockBody {
    tier_id: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpgradeBody {
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
