//! `GET /api/v1/user/nfts`: the caller's portfolio. Rendered documents are cached (Redis, or
//! in-process) under the key the `NftDomain` drops on every change to the user, so a cached
//! answer is never older than the last change, except for a read racing a change, which the
//! short expiry (`chain.portfolio_cache_secs`) bounds. A cache that is down is bypassed.

use super::domain::command;
use crate::auth::Principal;
use crate::error::{ApiError, ApiErrorBody};
use actix::Addr;
use actix_web::{get, web, HttpResponse};
use actors::consumers::Cache;
use actors::domain::{portfolio_key, DomainRules, GetPortfolio, NftDomain, Portfolio};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// How long a rendered portfolio is cached.
#[derive(Debug, Clone, Copy)]
pub struct PortfolioTtl(pub Duration);

/// Answers whether the document came from the cache.
const CACHE_HEADER: &str = "X-Cache";

/// The caller's portfolio: current NFT, badges by state, volume, qualified tiers, the tiers.
#[utoipa::path(
    get, path = "/api/v1/user/nfts", tag = "user",
    responses(
        (status = 200, description = "The caller's NFT, badges and tiers", body = Object),
        (status = 401, description = "No token, or one that does not verify", body = ApiErrorBody),
        (status = 503, description = "The store is down, or a stream cap is reached (with `Retry-After`)", body = ApiErrorBody)
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/user/nfts")]
pub async fn portfolio(
    principal: Principal,
    domain: web::Data<Addr<NftDomain>>,
    rules: web::Data<Arc<DomainRules>>,
    cache: web::Data<Arc<dyn Cache>>,
    ttl: web::Data<PortfolioTtl>,
) -> Result<HttpResponse, ApiError> {
    let user_id = principal.user_id;
    let key = portfolio_key(&user_id);
    match cache.get_document(key.clone()).await {
        Ok(Some(document)) => {
            return Ok(HttpResponse::Ok()
                .content_type("application/json")
                .insert_header((CACHE_HEADER, "hit"))
                .body(document))
        }
        Ok(None) => {}
        Err(e) => log::warn!("portfolio cache unavailable, reading the database: {e}"),
    }
    let portfolio = command(
        &domain,
        GetPortfolio {
            user_id: user_id.clone(),
        },
    )
    .await?;
    let document = render(&user_id, &portfolio, &rules).to_string();
    if let Err(e) = cache.put_document(key, document.clone(), ttl.0).await {
        log::warn!("cannot cache the portfolio of {user_id}: {e}");
    }
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((CACHE_HEADER, "miss"))
        .body(document))
}

fn render(user_id: &str, found: &Portfolio, rules: &DomainRules) -> serde_json::Value {
    let state = &found.state;
    let badges: Vec<_> = state
        .badges
        .iter()
        .map(|(id, status)| {
            let rule = rules.badge(id);
            json!({
                "badgeId": id,
                "name": rule.map(|b| b.name.clone()),
                "requiredForTier": rule.map(|b| b.required_for_tier),
                "status": status.as_str(),
            })
        })
        .collect();
    let tiers: Vec<_> = rules
        .tiers()
        .iter()
        .map(|t| {
            json!({
                "tierId": t.id,
                "name": t.name,
                "milestone": t.milestone,
                "badgesRequired": t.badges_required,
                "qualified": found.qualified_tiers.contains(&t.id),
            })
        })
        .collect();
    let nft = state.nft.as_ref().map(|n| {
        let tier = rules.tier(n.tier_id);
        json!({
            "nftId": n.nft_id,
            "tierId": n.tier_id,
            "tierName": tier.map(|t| t.name.clone()),
            "imageUrl": tier.map(|t| t.image_url.clone()),
            "benefits": tier.map(|t| t.benefits.clone()),
            "mintAddress": n.mint_address,
            "acquiredAt": n.acquired_at,
            "status": if state.active_flow.is_some() { "upgrading" } else { "active" },
        })
    });
    json!({
        "userId": user_id,
        "volume": state.volume,
        "badges": badges,
        "qualifiedTiers": found.qualified_tiers,
        "nft": nft,
        "activeOperation": state.active_flow,
        "tiers": tiers,
    })
}
