//! HTTP routes, one file each. Handlers validate and translate; the actors do the work.

mod analytics;
mod audit;
mod changes;
mod dev_token;
mod domain;
mod flows;
mod health;
mod metrics;
mod notifications;
pub mod openapi;
mod pages;
mod params;
mod portfolio;
mod publish;
mod stats;
mod stream;

use crate::error::ApiError;
use actix_web::web;

pub use dev_token::DevTokens;
pub use health::{Disclosure, Readiness};
pub use portfolio::PortfolioTtl;
pub use stream::{OperationsSessions, Transport};

/// Request-size limits shared by the handlers that read a body.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(stream::user_stream)
        .service(stream::operations_stream)
        .service(stream::set_stream_cookie)
        .service(stream::clear_stream_cookie)
        .service(publish::publish_event)
        .service(stats::sse_stats)
        .service(stats::instances)
        .service(changes::portfolio_changes)
        .service(notifications::list_notifications)
        .service(notifications::mark_read)
        .service(audit::audit_log)
        .service(analytics::analytics)
        .service(domain::trading_volume)
        .service(domain::award_badge)
        .service(domain::activate_badge)
        .service(portfolio::portfolio)
        .service(flows::unlock_nft)
        .service(flows::upgrade_nft)
        .service(flows::operation)
        .service(health::healthz)
        .service(health::readyz)
        .service(metrics::prometheus_metrics)
        .service(dev_token::dev_token)
        .service(openapi::openapi_document)
        .service(pages::demo_page)
        .service(pages::admin_page)
        .service(pages::samples)
        .service(pages::client_module)
        .service(pages::asset)
        .default_service(web::to(no_route));
}

/// The internal listener's routes (`http.internal_bind`): health, detailed readiness and
/// metrics, nothing that takes a token.
pub fn configure_internal(cfg: &mut web::ServiceConfig) {
    cfg.service(health::healthz)
        .service(health::readyz)
        .service(metrics::prometheus_metrics)
        .default_service(web::to(not_found));
}

/// What no route answers: 405 with `Allow` for a path the API has under other methods, else
/// 404.
async fn no_route(req: actix_web::HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    let methods = openapi::methods_of(req.path());
    if methods.is_empty() || req.method() == actix_web::http::Method::OPTIONS {
        return not_found().await;
    }
    Err(ApiError::MethodNotAllowed(methods.join(", ")))
}

async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound("No such route".to_owned()))
}
