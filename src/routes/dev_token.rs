//! `POST /api/v1/dev/token {userId, role?}` → `{token}`: development tokens over HTTP, so the
//! browser pages (`/`, `/admin`) work without a terminal. It exists only with
//! `auth.dev_tokens = true`; otherwise it answers the very 404 of an unknown route, so a
//! production router does not even reveal that it has one.

use super::domain::{invalid, parse};
use super::publish::read_body;
use super::BodyLimit;
use crate::auth::{JwtKeys, Role};
use crate::config::AuthSettings;
use crate::error::ApiError;
use actix_web::http::header;
use actix_web::{post, web, HttpResponse};
use actors::event::check_id;
use serde::Deserialize;
use serde_json::json;

/// Whether this router mints development tokens over HTTP, and how long they live. The pages
/// read it too, to offer a "mint" button or ask for a token.
#[derive(Debug, Clone, Copy)]
pub struct DevTokens {
    pub enabled: bool,
    pub ttl_secs: u64,
}

impl DevTokens {
    /// Warns when minting is on: an operator who left the development default in place
    /// should read about it in the start-up log, not find out from an incident.
    pub fn from_settings(auth: &AuthSettings) -> Self {
        if auth.dev_tokens {
            log::warn!(
                "auth.dev_tokens is on: POST /api/v1/dev/token mints tokens of any role for \
                 anyone who can reach the router (set it to false in production)"
            );
        }
        DevTokens {
            enabled: auth.dev_tokens,
            ttl_secs: auth.dev_token_ttl.as_secs(),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TokenRequest {
    user_id: String,
    /// `user` when absent, as with the `token` subcommand.
    #[serde(default)]
    role: Option<Role>,
}

/// Mints a token for any user and role: development only (see `auth.dev_tokens`).
#[post("/api/v1/dev/token")]
pub async fn dev_token(
    payload: web::Payload,
    limit: web::Data<BodyLimit>,
    dev: web::Data<DevTokens>,
    keys: web::Data<JwtKeys>,
) -> Result<HttpResponse, ApiError> {
    if !dev.enabled {
        return Err(ApiError::NotFound("No such route".to_owned()));
    }
    let body = read_body(payload, limit.0).await?;
    let request: TokenRequest = parse(&body)?;
    check_id("userId", &request.user_id).map_err(invalid)?;
    let role = request.role.unwrap_or(Role::User);
    let token = keys.mint(&request.user_id, role, dev.ttl_secs)?;
    log::info!(
        "development token minted over HTTP for {} ({role:?})",
        request.user_id
    );
    Ok(HttpResponse::Ok()
        // A credential: no cache may keep it.
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({ "token": token })))
}
