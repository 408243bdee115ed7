//! The contract of a user stream, shared by every path that serves one (the actix-web routes
//! in `routes::stream` and the lean acceptor in `acceptor::stream`): where the client resumes,
//! the response headers, and the door a stream is opened through (the per-user limit, local
//! or cluster-wide, refusals counted in the metrics).

use crate::auth::Principal;
use crate::cluster::Leases;
use crate::error::ApiError;
use crate::forwarded::TrustedProxies;
use crate::limits::caps::StreamSlot;
use crate::limits::Limits;
use actix::Addr;
use actix_web::http::header::HeaderValue;
use actix_web::web;
use actors::metrics::{Metrics, Refusal};
use actors::registry::{Connect, SessionRegistry};
use actors::session::ClientGone;
use actors::supervisor::SessionHandle;
use actors::{ConnectError, Resume};
use std::net::IpAddr;
use std::sync::Arc;

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

/// The headers of every stream response, whichever acceptor writes it. Cross-origin access
/// is not among them: `crate::cors` adds it for allowed origins only.
pub const STREAM_HEADERS: [(&str, &str); 3] = [
    ("content-type", "text/event-stream"),
    ("cache-control", "no-cache"),
    ("x-accel-buffering", "no"),
];

/// What opening a stream takes: the registry of its sessions and, when the per-user limit is
/// cluster-wide, the leases that count it.
#[derive(Clone)]
pub struct StreamDoor {
    pub registry: Addr<SessionRegistry>,
    pub leases: Option<Arc<Leases>>,
    pub limit: usize,
    /// Connect rates and open-stream caps.
    pub limits: Arc<Limits>,
    /// Where refusals are counted.
    pub metrics: Arc<Metrics>,
    /// Whose `X-Forwarded-For` names the client the per-address limits count.
    pub proxies: Arc<TrustedProxies>,
}

/// An open stream: its session's handle and its place under the stream caps, which the
/// serving path holds for as long as it writes the stream.
pub struct Opened {
    pub handle: SessionHandle,
    pub slot: StreamSlot,
}

impl StreamDoor {
    /// The same door, on `registry`'s sessions, with per-instance limits only.
    pub fn local(&self, registry: Addr<SessionRegistry>) -> Self {
        StreamDoor {
            registry,
            leases: None,
            ..self.clone()
        }
    }

    /// The address a stream from `peer` counts against: the peer, or behind a trusted proxy
    /// the client its `X-Forwarded-For` names (`crate::forwarded`).
    pub fn client_address<'a>(
        &self,
        peer: Option<IpAddr>,
        forwarded_for: impl IntoIterator<Item = &'a [u8]>,
    ) -> Option<IpAddr> {
        peer.map(|peer| self.proxies.client(peer, forwarded_for))
    }

    /// Passes the principal through, counting a refused (401) stream; the handlers take the
    /// principal as a `Result` to see that refusal.
    pub fn count_unauthorized(
        &self,
        principal: Result<Principal, ApiError>,
    ) -> Result<Principal, ApiError> {
        principal.inspect_err(|e| {
            if let ApiError::Unauthorized(_) = e {
                self.metrics.connection_refused(Refusal::Unauthorized);
            }
        })
    }
}

/// Opens a session for `principal`, connecting from `address`, through `door`, to end when
/// the principal's token expires: 429 past a
/// connect rate (`crate::limits`) or at the user's connection limit (across the cluster when it
/// has leases), 503 at a stream cap or while shutting down. Refusals are counted in the
/// metrics. When the leases cannot be reached the stream is admitted on this instance's limit
/// alone: a Redis outage degrades the limit, it does not refuse every stream.
pub async fn connect(
    door: &StreamDoor,
    principal: &Principal,
    address: Option<IpAddr>,
    resume: Resume,
    client_gone: Option<ClientGone>,
) -> Result<Opened, ApiError> {
    let user_id = principal.user_id.as_str();
    let slot = door.limits.open_stream(address, user_id).await?;
    let lease = match &door.leases {
        None => None,
        Some(leases) => match leases.acquire(user_id, door.limit).await {
            Ok(Some(lease)) => Some(lease),
            Ok(None) => {
                door.metrics.connection_refused(Refusal::RateLimited);
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
            expires_at: Some(principal.expires_at),
        })
        .await
        .map_err(|_| ApiError::Unavailable("session registry is not running".to_owned()))?
        .map_err(|e| match e {
            ConnectError::LimitReached { .. } => {
                door.metrics.connection_refused(Refusal::RateLimited);
                ApiError::RateLimited
            }
            ConnectError::Unavailable => {
                door.metrics.connection_refused(Refusal::Unavailable);
                ApiError::Unavailable("the router is shutting down".to_owned())
            }
        })?;
    log::debug!("stream {} opened for user {user_id}", handle.id);
    Ok(Opened { handle, slot })
}
