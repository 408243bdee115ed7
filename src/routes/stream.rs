use crate::auth::Principal;
use crate::error::ApiError;
use actix::Addr;
use actix_web::http::header;
use actix_web::{get, web, HttpResponse};
use actors::registry::{Connect, SessionRegistry};
use actors::ConnectError;
use futures_util::StreamExt;
use std::convert::Infallible;
use tokio_stream::wrappers::ReceiverStream;

/// The user's event stream. The session actor behind it writes already-encoded frames into a
/// bounded queue; this body only drains the queue onto the socket. When the client goes away
/// the body (and with it the queue's receiver) is dropped, which ends the session.
#[get("/api/v1/user/nft-events")]
pub async fn user_stream(
    principal: Principal,
    registry: web::Data<Addr<SessionRegistry>>,
) -> Result<HttpResponse, ApiError> {
    let handle = registry
        .send(Connect {
            user_id: principal.user_id.clone(),
        })
        .await
        .map_err(|_| ApiError::Unavailable("session registry is not running".to_owned()))?
        .map_err(|e| match e {
            ConnectError::LimitReached { .. } => ApiError::RateLimited,
            ConnectError::Unavailable => ApiError::Unavailable("the router is shutting down".to_owned()),
        })?;
    log::debug!("stream {} opened for user {}", handle.id, principal.user_id);

    let body = ReceiverStream::new(handle.frames).map(Ok::<_, Infallible>);
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .insert_header(("Access-Control-Allow-Origin", "*"))
        .insert_header(("Access-Control-Allow-Headers", "Cache-Control, Last-Event-ID, Authorization"))
        .streaming(body))
}
