//! The stream routes on actix-web: the user's stream and the admins' operations feed. The
//! contract they share with the lean acceptor is in `crate::streams`.

use crate::auth::{Principal, Role};
use crate::error::ApiError;
use crate::hangup::PeerSocket;
use crate::streams::{connect, resume_point, Opened, StreamDoor, STREAM_HEADERS};
use actix_web::{get, web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use std::convert::Infallible;
use tokio_stream::wrappers::ReceiverStream;

/// The admin sessions' door, beside the users' one: its sessions share one stream, the
/// operations feed.
pub struct OperationsSessions(pub StreamDoor);

/// The user's event stream. The session actor behind it writes already-encoded frames into a
/// bounded queue; this body only drains the queue onto the socket. When the client goes away
/// the body (and with it the queue's receiver) is dropped, which ends the session.
#[get("/api/v1/user/nft-events")]
pub async fn user_stream(
    req: HttpRequest,
    principal: Result<Principal, ApiError>,
    door: web::Data<StreamDoor>,
) -> Result<HttpResponse, ApiError> {
    let principal = door.count_unauthorized(principal)?;
    open_stream(&req, &principal, &door).await
}

/// The operations feed (admins only): every event routed to admins, alerts and metrics
/// reports, with the same wire format, heartbeats and `Last-Event-ID` resume as a user stream.
/// Its ids are the feed's own cursor.
#[get("/api/v1/admin/operations")]
pub async fn operations_stream(
    req: HttpRequest,
    principal: Result<Principal, ApiError>,
    sessions: web::Data<OperationsSessions>,
) -> Result<HttpResponse, ApiError> {
    let principal = sessions.0.count_unauthorized(principal)?;
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
        &principal.user_id,
        req.peer_addr().map(|a| a.ip()),
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
            Ok::<_, Infallible>(frame)
        });
    let mut response = HttpResponse::Ok();
    for header in STREAM_HEADERS {
        response.insert_header(header);
    }
    Ok(response.streaming(body))
}
