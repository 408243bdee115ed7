use crate::auth::{Principal, Role};
use crate::cluster::Leases;
use crate::error::ApiError;
use crate::peer::PeerSocket;
use actix::Addr;
use actix_web::http::header::HeaderValue;
use actix_web::{get, web, HttpRequest, HttpResponse};
use actors::metrics::{metrics, Refusal};
use actors::registry::{Connect, SessionRegistry};
use actors::session::ClientGone;
use actors::supervisor::SessionHandle;
use actors::{ConnectError, Resume};
use futures_util::StreamExt;
use std::convert::Infallible;
use std::sync::Arc;
use tokio_stream::wrappers::ReceiverStream;

/// Where the client wants to resume: the `Last-Event-ID` header that `EventSource` sends on
/// reconnect, else a `lastEventId` query parameter for clients that cannot set headers. A
/// header that is not text counts as empty.
pub fn resume_point(last_event_id: Option<&[u8]>, query: &str) -> Resume {
    let header = last_event_id.map(|v| {
        HeaderValue::from_bytes(v)
            .ok()
            .and_then(|h| h.to_str().ok().map(str::to_owned))
            .unwrap_or_default()
    });
    let cursor = header.or_else(|| {
        web::Query::<std::collections::HashMap<String, String>>::from_query(query)
            .ok()
            .and_then(|q| q.get("lastEventId").cloned())
    });
    match cursor {
        None => Resume::Live,
        Some(c) if c.trim().is_empty() => Resume::Live,
        Some(c) => c.trim().parse().map_or(Resume::Invalid, Resume::After),
    }
}

/// The headers of every stream response, whichever acceptor writes it.
pub const STREAM_HEADERS: [(&str, &str); 5] = [
    ("content-type", "text/event-stream"),
    ("cache-control", "no-cache"),
    ("x-accel-buffering", "no"),
    ("access-control-allow-origin", "*"),
    (
        "access-control-allow-headers",
        "Cache-Control, Last-Event-ID, Authorization",
    ),
];

/// The admin sessions' door, beside the users' one: its sessions share one stream, the
/// operations feed.
pub struct OperationsSessions(pub StreamDoor);

/// What opening a stream takes: the registry of its sessions and, when the per-user limit is
/// cluster-wide, the leases that count it.
#[derive(Clone)]
pub struct StreamDoor {
    pub registry: Addr<SessionRegistry>,
    pub leases: Option<Arc<Leases>>,
    pub limit: usize,
}

impl StreamDoor {
    /// Per-instance limits only.
    pub fn local(registry: Addr<SessionRegistry>, limit: usize) -> Self {
        StreamDoor {
            registry,
            leases: None,
            limit,
        }
    }
}

/// The user's event stream. The session actor behind it writes already-encoded frames into a
/// bounded queue; this body only drains the queue onto the socket. When the client goes away
/// the body (and with it the queue's receiver) is dropped, which ends the session.
#[get("/api/v1/user/nft-events")]
pub async fn user_stream(
    req: HttpRequest,
    principal: Result<Principal, ApiError>,
    door: web::Data<StreamDoor>,
) -> Result<HttpResponse, ApiError> {
    let principal = count_unauthorized(principal)?;
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
    let principal = count_unauthorized(principal)?;
    principal.require(&[Role::Admin])?;
    open_stream(&req, &principal, &sessions.0).await
}

/// Passes the principal through, counting a refused (401) stream in the metrics; the handlers
/// take the principal as a `Result` to see that refusal.
pub fn count_unauthorized(principal: Result<Principal, ApiError>) -> Result<Principal, ApiError> {
    principal.inspect_err(|e| {
        if let ApiError::Unauthorized(_) = e {
            metrics().connection_refused(Refusal::Unauthorized);
        }
    })
}

/// Opens a session for `user_id` through `door`: 429 at the user's connection limit (across
/// the cluster when it has leases), 503 while shutting down. Refusals are counted in the
/// metrics. When the leases cannot be reached the stream is admitted on this instance's limit
/// alone: a Redis outage degrades the limit, it does not refuse every stream.
pub async fn connect(
    door: &StreamDoor,
    user_id: &str,
    resume: Resume,
    client_gone: Option<ClientGone>,
) -> Result<SessionHandle, ApiError> {
    let lease = match &door.leases {
        None => None,
        Some(leases) => match leases.acquire(user_id, door.limit).await {
            Ok(Some(lease)) => Some(lease),
            Ok(None) => {
                metrics().connection_refused(Refusal::RateLimited);
                return Err(ApiError::RateLimited);
            }
            Err(e) => {
                log::warn!("stream for {user_id} admitted on the local limit: {e}");
                None
            }
        },
    };
    let handle = door
        .registry
        .send(Connect {
            user_id: user_id.to_owned(),
            resume,
            client_gone,
            home: actix::Arbiter::try_current(),
            lease,
        })
        .await
        .map_err(|_| ApiError::Unavailable("session registry is not running".to_owned()))?
        .map_err(|e| match e {
            ConnectError::LimitReached { .. } => {
                metrics().connection_refused(Refusal::RateLimited);
                ApiError::RateLimited
            }
            ConnectError::Unavailable => {
                metrics().connection_refused(Refusal::Unavailable);
                ApiError::Unavailable("the router is shutting down".to_owned())
            }
        })?;
    log::debug!("stream {} opened for user {user_id}", handle.id);
    Ok(handle)
}

/// Opens a session for `principal` through `door` and streams its frames.
async fn open_stream(
    req: &HttpRequest,
    principal: &Principal,
    door: &StreamDoor,
) -> Result<HttpResponse, ApiError> {
    let last_event_id = req.headers().get("Last-Event-ID").map(|v| v.as_bytes());
    let handle = connect(
        door,
        &principal.user_id,
        resume_point(last_event_id, req.query_string()),
        req.conn_data::<PeerSocket>().and_then(|p| p.watch_close()),
    )
    .await?;
    let body = ReceiverStream::new(handle.frames).map(Ok::<_, Infallible>);
    let mut response = HttpResponse::Ok();
    for header in STREAM_HEADERS {
        response.insert_header(header);
    }
    Ok(response.streaming(body))
}
