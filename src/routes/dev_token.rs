//! `POST /api/v1/dev/token {userId, role?}` → `{token}`: development tokens over HTTP, so the
//! browser pages (`/`, `/admin`) work without a terminal.
//!
//! Minting grants any role, so it is fenced three ways beyond `auth.dev_tokens = true` (without
//! it the route answers the very 404 of an unknown route):
//!
//! * **only this machine**: the peer is a loopback address, the `Host` is a loopback name (so a
//!   DNS-rebinding page cannot borrow a browser on this machine), and no proxy header says the
//!   request was forwarded (a reverse proxy on this box would otherwise make every visitor look
//!   local). The configuration also refuses `dev_tokens` on a non-loopback `http.bind`.
//! * **only the router's own pages**: the request carries the page key (`X-Dev-Token-Key`),
//!   which the router writes into the pages it serves to such a local client. A page of another
//!   origin cannot read it (same-origin policy), and cannot send the header without a preflight
//!   the router does not grant, so a cross-site "simple" POST is refused.
//! * the CLI (`nft-event-router token`) remains the way to mint from a terminal.

use super::domain::{invalid, parse};
use super::publish::read_body;
use super::BodyLimit;
use crate::auth::{JwtKeys, Role};
use crate::config::AuthSettings;
use crate::error::{ApiError, ApiErrorBody};
use actix_web::http::header;
use actix_web::{post, web, HttpRequest, HttpResponse};
use actors::event::check_id;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// The header that carries the page key.
pub const PAGE_KEY_HEADER: &str = "X-Dev-Token-Key";

/// Headers a forwarding proxy adds: their presence means the client is not this machine,
/// whatever the peer address says.
const FORWARDING_HEADERS: &[&str] = &["forwarded", "x-forwarded-for", "x-real-ip", "via"];

/// Whether this router mints development tokens over HTTP, how long they live, and the key
/// its pages prove themselves with. The pages read it too, to offer a "mint" button or ask
/// for a token.
#[derive(Debug, Clone)]
pub struct DevTokens {
    pub enabled: bool,
    pub ttl_secs: u64,
    /// Random per process; handed only to local clients, inside the pages.
    page_key: Arc<str>,
}

impl DevTokens {
    /// Warns when minting is on: an operator who left the development default in place
    /// should read about it in the start-up log, not find out from an incident.
    pub fn from_settings(auth: &AuthSettings) -> Self {
        if auth.dev_tokens {
            log::warn!(
                "auth.dev_tokens is on: the pages served to this machine (loopback) mint tokens \
                 of any role (set it to false in production)"
            );
        }
        DevTokens {
            enabled: auth.dev_tokens,
            ttl_secs: auth.dev_token_ttl.as_secs(),
            page_key: uuid::Uuid::new_v4().simple().to_string().into(),
        }
    }

    /// The key to write into a page served to `req`: only when minting is on and the client
    /// is this machine.
    pub fn page_key_for(&self, req: &HttpRequest) -> Option<&str> {
        (self.enabled && is_local_client(req)).then_some(&*self.page_key)
    }

    fn admits(&self, req: &HttpRequest) -> Result<(), ApiError> {
        if !is_local_client(req) {
            return Err(ApiError::ForbiddenBecause(
                "development tokens are minted only for pages served to this machine \
                 (loopback, not forwarded); use `nft-event-router token`"
                    .to_owned(),
            ));
        }
        let sent = req
            .headers()
            .get(PAGE_KEY_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !constant_time_eq(sent, self.page_key.as_bytes()) {
            return Err(ApiError::ForbiddenBecause(format!(
                "development tokens are minted only for the router's own pages \
                 (the {PAGE_KEY_HEADER} header is missing or wrong)"
            )));
        }
        Ok(())
    }
}

/// The peer is loopback, the `Host` names loopback, and nothing says the request was
/// forwarded.
fn is_local_client(req: &HttpRequest) -> bool {
    let peer_is_loopback = req.peer_addr().is_some_and(|a| a.ip().is_loopback());
    let forwarded = FORWARDING_HEADERS
        .iter()
        .any(|h| req.headers().contains_key(*h));
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    peer_is_loopback && !forwarded && is_loopback_host(host)
}

/// `localhost`, `127.x.y.z` or `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Compares without an early exit, so the time taken says nothing about the key.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenRequest {
    #[schema(format = "identifier")]
    user_id: String,
    /// `user` when absent, as with the `token` subcommand.
    #[serde(default)]
    role: Option<Role>,
}

/// Mints a token for any user and role: development only, for the router's own pages on this
/// machine (see the module documentation).
#[utoipa::path(
    post, path = "/api/v1/dev/token", tag = "development",
    request_body = TokenRequest,
    params(("X-Dev-Token-Key" = Option<String>, Header, description = "The key the router's own pages carry")),
    responses(
        (status = 200, description = "A token (development only)", body = Object),
        (status = 400, description = "A malformed request; `field` names what is wrong", body = ApiErrorBody),
        (status = 403, description = "The route requires another role", body = ApiErrorBody),
        (status = 404, description = "Not found", body = ApiErrorBody)
    )
)]
#[post("/api/v1/dev/token")]
pub async fn dev_token(
    req: HttpRequest,
    payload: web::Payload,
    limit: web::Data<BodyLimit>,
    dev: web::Data<DevTokens>,
    keys: web::Data<JwtKeys>,
) -> Result<HttpResponse, ApiError> {
    if !dev.enabled {
        return Err(ApiError::NotFound("No such route".to_owned()));
    }
    dev.admits(&req)?;
    let body = read_body(payload, limit.0).await?;
    let request: TokenRequest = parse(&body)?;
    check_id("userId", &request.user_id).map_err(invalid)?;
    let role = request.role.unwrap_or(Role::User);
    let token = keys.mint(&request.user_id, role, dev.ttl_secs)?;
    log::info!(
        user_id = request.user_id.as_str(),
        role:? = role;
        "development token minted over HTTP"
    );
    Ok(HttpResponse::Ok()
        // A credential: no cache may keep it.
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({ "token": token })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_told_from_others() {
        for host in [
            "localhost",
            "LOCALHOST:8080",
            "127.0.0.1",
            "127.9.9.9:80",
            "[::1]:8080",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "",
            "example.com",
            "10.0.0.1:8080",
            "localhost.evil.com",
            "[::2]",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn keys_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
