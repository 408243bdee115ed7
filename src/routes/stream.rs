//! The stream routes on actix-web: the user's stream and the admins' operations feed. The
//! contract they share with the lean acceptor is in `crate::streams`.

use crate::auth::{JwtKeys, Principal, Role, StreamPrincipal, STREAM_COOKIE};
use crate::error::{ApiError, ApiErrorBody};
use crate::hangup::PeerSocket;
use crate::streams::{connect, resume_point, Opened, StreamDoor, STREAM_HEADERS};
use actix_web::{get, web, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::StreamExt;
use std::convert::Infallible;
use tokio_stream::wrappers::ReceiverStream;

/// The admin sessions' door, beside the users' one: its sessions share one stream, the
/// operations feed.
pub struct OperationsSessions(pub StreamDoor);

/// The user's event stream. The session actor behind it writes already-encoded frames into a
/// bounded queue; this body only drains the queue onto the socket. When the client goes away
/// the body (and with it the queue's receiver) is dropped, which ends the session.
#[utoipa::path(
    get, path = "/api/v1/user/nft-events", tag = "user",
    params(
        ("Last-Event-ID" = Option<String>, Header, description = "The last cursor seen: resume after it"),
        ("lastEventId" = Option<String>, Query, description = "As `Last-Event-ID`, for clients that cannot set headers"),
    ),
    responses(
        (status = 200, description = "Server-Sent Events: `id: <cursor>` and `data: <envelope>` per event, heartbeats, control frames", content_type = "text/event-stream", body = String),
        (status = 401, description = "No token, or one that does not verify", body = ApiErrorBody),
        (status = 429, description = "A rate limit of `[limits]`, with `Retry-After`", body = ApiErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "The store is down, or a stream cap is reached (with `Retry-After`)", body = ApiErrorBody)
    ),
    security(("bearer" = []), ("access_token" = []))
)]
#[get("/api/v1/user/nft-events")]
pub async fn user_stream(
    req: HttpRequest,
    principal: Result<StreamPrincipal, ApiError>,
    door: web::Data<StreamDoor>,
) -> Result<HttpResponse, ApiError> {
    let principal = door.count_unauthorized(principal.map(|p| p.0))?;
    open_stream(&req, &principal, &door).await
}

/// The operations feed (admins only): every event routed to admins, alerts and metrics
/// reports, with the same wire format, heartbeats and `Last-Event-ID` resume as a user stream.
/// Its ids are the feed's own cursor.
#[utoipa::path(
    get, path = "/api/v1/admin/operations", tag = "admin",
    params(("Last-Event-ID" = Option<String>, Header, description = "The last feed cursor seen")),
    responses(
        (status = 200, description = "Server-Sent Events: every event routed to admins, alerts, metrics reports", content_type = "text/event-stream", body = String),
        (status = 401, description = "No token, or one that does not verify", body = ApiErrorBody),
        (status = 403, description = "The route requires another role", body = ApiErrorBody),
        (status = 429, description = "A rate limit of `[limits]`, with `Retry-After`", body = ApiErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "The store is down, or a stream cap is reached (with `Retry-After`)", body = ApiErrorBody)
    ),
    security(("bearer" = []), ("access_token" = []))
)]
#[get("/api/v1/admin/operations")]
pub async fn operations_stream(
    req: HttpRequest,
    principal: Result<StreamPrincipal, ApiError>,
    sessions: web::Data<OperationsSessions>,
) -> Result<HttpResponse, ApiError> {
    let principal = sessions.0.count_unauthorized(principal.map(|p| p.0))?;
    principal.require(&[Role::Admin])?;
    open_stream(&req, &principal, &sessions.0).await
}

/// Opens a session for `principal` through `door` and streams its frames.
async fn open_stream(
    req: &HttpRequest,
    principal: &Principal,
    door: &StreamDoor,
) -> Result<HttpResponse, ApiError> {
    let last_event_id = req.headers().get("Last-Event-ID").map(|v| v.as_bytes());
    let Opened { handle, slot } = connect(
        door,
        principal,
        door.client_address(
            req.peer_addr().map(|a| a.ip()),
            req.headers()
                .get_all(crate::forwarded::FORWARDED_FOR)
                .map(|v| v.as_bytes()),
        ),
        resume_point(last_event_id, req.query_string()),
        req.conn_data::<PeerSocket>().and_then(|p| p.watch_close()),
    )
    .await?;
    // A session cut off for falling behind ends the body at once, without its backlog.
    let cut_off = async move {
        if handle.cut_off.await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    // The body holds the stream's place under the caps until actix-web drops it.
    let body = ReceiverStream::new(handle.frames)
        .take_until(cut_off)
        .map(move |frame| {
            let _held = &slot;
            Ok::<_, Infallible>(Bytes::from(frame))
        });
    let mut response = HttpResponse::Ok();
    for header in STREAM_HEADERS {
        response.insert_header(header);
    }
    Ok(response.streaming(body))
}

/// Whether the listener is TLS, so cookies it sets carry `Secure`.
#[derive(Debug, Clone, Copy)]
pub struct Transport {
    pub tls: bool,
}

/// Which stream a cookie is for. Each has its own cookie, scoped to that stream's path, so a
/// browser with the demo page and the dashboard open keeps both: the admin's token does not
/// replace the user's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum CookieStream {
    /// `GET /api/v1/user/nft-events`.
    User,
    /// `GET /api/v1/admin/operations` (admins only).
    Operations,
}

impl CookieStream {
    /// `?stream=` of `req`: `user` (also when absent) or `operations`.
    fn of(req: &HttpRequest) -> Result<CookieStream, ApiError> {
        match super::params::Params::of(req)?.text("stream")? {
            None | Some("user") => Ok(CookieStream::User),
            Some("operations") => Ok(CookieStream::Operations),
            Some(_) => Err(ApiError::InvalidParameter {
                name: "stream",
                reason: "must be `user` or `operations`".to_owned(),
            }),
        }
    }

    /// The path the cookie is scoped to: the only one it is sent on.
    fn path(self) -> &'static str {
        match self {
            CookieStream::User => "/api/v1/user/nft-events",
            CookieStream::Operations => "/api/v1/admin/operations",
        }
    }
}

/// Sets the stream cookie for the caller's token, so a browser opens a stream (the user's, or
/// for an admin the operations feed) without a token in the URL: `HttpOnly` (scripts cannot
/// read it), `SameSite=Strict` (other sites' pages do not send it), `Secure` on TLS, scoped to
/// that stream's path alone. It holds a token of the router's own that ends when the caller's
/// does, so the stream still ends at the token's expiry.
#[utoipa::path(
    post, path = "/api/v1/user/stream-cookie", tag = "user",
    params(("stream" = Option<CookieStream>, Query, description = "The stream the cookie is for: `user` (default) or `operations` (admins)")),
    responses(
        (status = 204, description = "The stream cookie is set (`Set-Cookie`)"),
        (status = 400, description = "An unknown `stream`", body = ApiErrorBody),
        (status = 401, description = "No token, or one that does not verify", body = ApiErrorBody),
        (status = 403, description = "`stream=operations` with a token that is not an admin's", body = ApiErrorBody)
    ),
    security(("bearer" = []))
)]
#[actix_web::post("/api/v1/user/stream-cookie")]
pub async fn set_stream_cookie(
    req: HttpRequest,
    principal: Principal,
    keys: web::Data<JwtKeys>,
    transport: web::Data<Transport>,
) -> Result<HttpResponse, ApiError> {
    let stream = CookieStream::of(&req)?;
    if stream == CookieStream::Operations {
        principal.require(&[Role::Admin])?;
    }
    let exp = principal
        .expires_at
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let token = keys.mint_until(&principal.user_id, principal.role, exp)?;
    let max_age = principal
        .expires_at
        .duration_since(std::time::SystemTime::now())
        .map(|d| d.as_secs())
        .unwrap_or_default();
    Ok(HttpResponse::NoContent()
        .insert_header((
            actix_web::http::header::SET_COOKIE,
            stream_cookie(stream, &token, max_age, transport.tls),
        ))
        .finish())
}

/// Clears a stream cookie (signing out); open streams end at their token's expiry or when
/// closed.
#[utoipa::path(
    delete, path = "/api/v1/user/stream-cookie", tag = "user",
    params(("stream" = Option<CookieStream>, Query, description = "The stream the cookie is for: `user` (default) or `operations` (admins)")),
    responses(
        (status = 204, description = "The stream cookie is cleared"),
        (status = 400, description = "An unknown `stream`", body = ApiErrorBody)
    )
)]
#[actix_web::delete("/api/v1/user/stream-cookie")]
pub async fn clear_stream_cookie(
    req: HttpRequest,
    transport: web::Data<Transport>,
) -> Result<HttpResponse, ApiError> {
    let stream = CookieStream::of(&req)?;
    Ok(HttpResponse::NoContent()
        .insert_header((
            actix_web::http::header::SET_COOKIE,
            stream_cookie(stream, "", 0, transport.tls),
        ))
        .finish())
}

fn stream_cookie(stream: CookieStream, value: &str, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    let path = stream.path();
    format!("{STREAM_COOKIE}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}")
}
