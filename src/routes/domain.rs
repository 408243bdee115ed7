//! The NFT domain's routes (docs/DOMAIN.md): trading volume and badges, and the helpers the flow
//! and portfolio routes share. The `NftDomain` actor decides; these handlers check input and
//! translate.

use super::publish::{idempotency_key, read_body, CORRELATION_HEADER, REPLAYED_HEADER};
use super::BodyLimit;
use crate::auth::{Principal, Role};
use crate::error::{ApiError, ApiErrorBody};
use crate::limits::Limits;
use actix::Addr;
use actix_web::{post, web, HttpRequest, HttpResponse};
use actors::domain::{
    ActivateBadge, AwardBadge, CommandAnswer, DomainFailure, Keyed, NftDomain, RecordVolume,
};
use actors::event::{check_id, EventError};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeBody {
    #[schema(format = "identifier")]
    user_id: String,
    #[schema(minimum = 0)]
    volume: f64,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BadgeBody {
    #[schema(format = "identifier")]
    user_id: String,
    #[schema(format = "identifier")]
    badge_id: String,
}

/// Parses a JSON body, naming the field that does not fit.
pub(super) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::InvalidRequest(EventError {
            message: format!("body is not valid JSON: {e}"),
            field: None,
        })
    })?;
    actors::event::whole_numbers(&mut value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = inner
            .to_string()
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next())
            .map(str::to_owned)
            .or_else(|| (path != ".").then_some(path));
        ApiError::InvalidRequest(EventError {
            message: match &field {
                Some(f) => format!("{f}: {inner}"),
                None => format!("body is not valid JSON: {inner}"),
            },
            field,
        })
    })
}

pub(super) fn invalid(e: EventError) -> ApiError {
    ApiError::InvalidRequest(e)
}

pub(super) fn correlation(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(CORRELATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| check_id(CORRELATION_HEADER, v).is_ok())
        .map(str::to_owned)
}

async fn ask<M>(domain: &Addr<NftDomain>, msg: M) -> Result<M::Result, ApiError>
where
    M: actix::Message + Send + 'static,
    M::Result: Send,
    NftDomain: actix::Handler<M>,
{
    domain
        .send(msg)
        .await
        .map_err(|_| ApiError::Unavailable("the NFT domain is not running".to_owned()))
}

/// Asks the domain and turns both a stopped actor and the domain's refusal into an `ApiError`.
pub(super) async fn command<M, T>(domain: &Addr<NftDomain>, msg: M) -> Result<T, ApiError>
where
    M: actix::Message<Result = Result<T, DomainFailure>> + Send + 'static,
    T: Send + 'static,
    NftDomain: actix::Handler<M>,
{
    Ok(ask(domain, msg).await??)
}

fn events(answer: &CommandAnswer) -> serde_json::Value {
    json!(answer
        .events
        .iter()
        .map(|(cursor, id)| json!({ "cursor": cursor.to_string(), "eventId": id }))
        .collect::<Vec<_>>())
}

/// The route's answer, marked `Idempotent-Replayed: true` when it is a keyed retry's stored
/// first answer.
fn answered(
    mut response: actix_web::HttpResponseBuilder,
    answer: &CommandAnswer,
    body: serde_json::Value,
) -> HttpResponse {
    if answer.replayed {
        response.insert_header((REPLAYED_HEADER, "true"));
    }
    response.json(body)
}

/// The command's key, when the request carries an `Idempotency-Key`: scoped to the caller and
/// the route, fingerprinted by `request` (the facts a retry must repeat).
fn keyed(
    req: &HttpRequest,
    principal: &Principal,
    route: &str,
    request: &[&str],
) -> Result<Option<Keyed>, ApiError> {
    Ok(idempotency_key(req)?.map(|given| Keyed::new(&principal.user_id, route, given, request)))
}

/// A service reports a user's new cumulative trading volume: one `volume_milestone_reached`
/// per milestone crossed, and `tier_qualification_changed` when the qualified tiers change.
#[utoipa::path(
    post, path = "/api/v1/internal/trading-volume", tag = "service",
    request_body = VolumeBody,
    params(
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "Makes a retry return the first answer, marked `Idempotent-Replayed: true` (1 to 255 visible ASCII)"),
    ),
    responses(
        (status = 200, description = "The volume recorded and the events it caused", body = Object),
        (status = 400, description = "A malformed request; `field` names what is wrong", body = ApiErrorBody),
        (status = 401, description = "No token, or one that does not verify", body = ApiErrorBody),
        (status = 403, description = "The route requires another role", body = ApiErrorBody),
        (status = 422, description = "Refused by the NFT domain's rules (a volume lower than the recorded one), or an `Idempotency-Key` used for another request", body = ApiErrorBody),
        (status = 429, description = "A rate limit of `[limits]`, with `Retry-After`", body = ApiErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "The store is down, or a stream cap is reached (with `Retry-After`)", body = ApiErrorBody)
    ),
    security(("bearer" = []))
)]
#[post("/api/v1/internal/trading-volume")]
pub async fn trading_volume(
    req: HttpRequest,
    principal: Principal,
    payload: web::Payload,
    limit: web::Data<BodyLimit>,
    domain: web::Data<Addr<NftDomain>>,
    limits: web::Data<Limits>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&[Role::Service])?;
    limits.publish(&principal.user_id).await?;
    let body: VolumeBody = parse(&read_body(payload, limit.0).await?)?;
    check_id("userId", &body.user_id).map_err(invalid)?;
    if !(body.volume.is_finite() && body.volume >= 0.0) {
        return Err(invalid(EventError {
            field: Some("volume".into()),
            message: "volume: must be a non-negative number".into(),
        }));
    }
    let correlation_id = correlation(&req);
    let volume = body.volume.to_string();
    let once = keyed(
        &req,
        &principal,
        "POST /api/v1/internal/trading-volume",
        &[
            &body.user_id,
            &volume,
            correlation_id.as_deref().unwrap_or(""),
        ],
    )?;
    let answer = command(
        &domain,
        RecordVolume {
            user_id: body.user_id.clone(),
            volume: body.volume,
            correlation_id,
            once,
        },
    )
    .await?;
    let body = json!({
        "userId": body.user_id,
        "previousVolume": answer.previous_volume,
        "currentVolume": answer.current_volume,
        "qualifiedTiers": answer.qualified_tiers,
        "events": events(&answer),
    });
    Ok(answered(HttpResponse::Ok(), &answer, body))
}

/// An admin or a service awards a badge from the catalogue → `badge_earned`.
#[utoipa::path(
    post, path = "/api/v1/admin/badges", tag = "service",
    request_body = BadgeBody,
    params(
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "Makes a retry return the first answer, marked `Idempotent-Replayed: true` (1 to 255 visible ASCII)"),
    ),
    responses(
        (status = 201, description = "The badge awarded and the events it caused", body = Object),
        (status = 400, description = "A malformed request; `field` names what is wrong", body = ApiErrorBody),
        (status = 401, description = "No token, or one that does not verify", body = ApiErrorBody),
        (status = 403, description = "The route requires another role", body = ApiErrorBody),
        (status = 422, description = "Refused by the NFT domain's rules (unknown badge, already earned), or an `Idempotency-Key` used for another request", body = ApiErrorBody),
        (status = 429, description = "A rate limit of `[limits]`, with `Retry-After`", body = ApiErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "The store is down, or a stream cap is reached (with `Retry-After`)", body = ApiErrorBody)
    ),
    security(("bearer" = []))
)]
#[post("/api/v1/admin/badges")]
pub async fn award_badge(
    req: HttpRequest,
    principal: Principal,
    payload: web::Payload,
    limit: web::Data<BodyLimit>,
    domain: web::Data<Addr<NftDomain>>,
    limits: web::Data<Limits>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&[Role::Admin, Role::Service])?;
    limits.publish(&principal.user_id).await?;
    let body: BadgeBody = parse(&read_body(payload, limit.0).await?)?;
    check_id("userId", &body.user_id).map_err(invalid)?;
    check_id("badgeId", &body.badge_id).map_err(invalid)?;
    let correlation_id = correlation(&req);
    let once = keyed(
        &req,
        &principal,
        "POST /api/v1/admin/badges",
        &[
            &body.user_id,
            &body.badge_id,
            correlation_id.as_deref().unwrap_or(""),
        ],
    )?;
    let answer = command(
        &domain,
        AwardBadge {
            user_id: body.user_id.clone(),
            badge_id: body.badge_id.clone(),
            correlation_id,
            once,
        },
    )
    .await?;
    let body = json!({
        "userId": body.user_id,
        "badgeId": body.badge_id,
        "status": "earned",
        "events": events(&answer),
    });
    Ok(answered(HttpResponse::Created(), &answer, body))
}

/// The user activates one of their earned badges → `tier_qualification_changed` when that
/// changes which tiers they qualify for.
#[utoipa::path(
    post, path = "/api/v1/user/badges/{badge_id}/activate", tag = "user",
    params(("badge_id" = String, Path, description = "One of the caller's earned badges")),
    responses(
        (status = 200, description = "Activated, and the events it caused", body = Object),
        (status = 400, description = "A malformed request; `field` names what is wrong", body = ApiErrorBody),
        (status = 401, description = "No token, or one that does not verify", body = ApiErrorBody),
        (status = 403, description = "The route requires another role", body = ApiErrorBody),
        (status = 422, description = "Refused by the NFT domain's rules", body = ApiErrorBody),
        (status = 503, description = "The store is down, or a stream cap is reached (with `Retry-After`)", body = ApiErrorBody)
    ),
    security(("bearer" = []))
)]
#[post("/api/v1/user/badges/{badge_id}/activate")]
pub async fn activate_badge(
    req: HttpRequest,
    path: web::Path<String>,
    principal: Principal,
    domain: web::Data<Addr<NftDomain>>,
) -> Result<HttpResponse, ApiError> {
    let badge_id = path.into_inner();
    let answer = command(
        &domain,
        ActivateBadge {
            user_id: principal.user_id,
            badge_id: badge_id.clone(),
            correlation_id: correlation(&req),
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({
        "badgeId": badge_id,
        "status": "activated",
        "qualifiedTiers": answer.qualified_tiers,
        "events": events(&answer),
    })))
}
