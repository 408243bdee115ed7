//! The listener's front door: the user stream is served on its socket by a lean task, every
//! other request by actix-web.
//!
//! Why: actix-web's HTTP/1 dispatcher keeps an 8 KiB read and an 8 KiB write buffer for every
//! connection for as long as it is open. An SSE stream reads nothing after its request and its
//! frames are already encoded, shared bytes, so for the connections that make up almost all of
//! a router's sockets those buffers are pure overhead: they are most of the ~16 KiB a bare
//! actix-web SSE connection costs. Each accepted connection is first *peeked* (nothing consumed); a
//! complete `GET /api/v1/user/nft-events` head is consumed and answered by
//! [`stream::serve`], which writes the session's frames straight to the socket. Anything else
//! (another route, a body, an odd or malformed request, a head still incomplete after the
//! request timeout) is handed, untouched, to actix-web's own HTTP service, which serves it as
//! before. The actix-web route for the stream stays, for a keep-alive connection whose first
//! request was something else.

pub mod h2;
pub mod head;
mod stream;
pub mod tls;

use crate::auth::JwtKeys;
use actix_http::error::DispatchError;
use actix_service::{fn_factory, fn_service, Service, ServiceFactory};
use head::Peeked;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// What the lean stream path needs, shared by every worker.
pub struct Streams {
    /// Which other origins may open streams (the actix-web routes apply the same policy).
    pub cors: crate::cors::CorsPolicy,
    pub keys: Arc<JwtKeys>,
    /// Where user streams open (registry and leases), as for the actix-web route.
    pub door: crate::streams::StreamDoor,
    /// How long a connection may take to send its request head before actix-web takes over.
    pub patience: Duration,
    /// A stream whose client takes no bytes for this long is closed.
    pub stall_limit: Duration,
    /// `SO_SNDBUF` for stream sockets (`None`: the kernel's autotuning).
    pub send_buffer: Option<usize>,
}

/// The per-worker service for accepted connections, around actix-web's `http` service.
pub fn service<F>(
    http: F,
    streams: Arc<Streams>,
) -> impl ServiceFactory<TcpStream, Config = (), Response = (), Error = (), InitError = ()>
where
    F: ServiceFactory<TcpStream, Config = (), Response = (), Error = DispatchError, InitError = ()>
        + 'static,
    F::Service: 'static,
{
    fn_factory(move || {
        let http = http.new_service(());
        let streams = streams.clone();
        async move {
            let http = Rc::new(http.await?);
            Ok::<_, ()>(fn_service(move |io: TcpStream| {
                let (http, streams) = (http.clone(), streams.clone());
                async move {
                    accept(io, http, streams).await;
                    Ok::<_, ()>(())
                }
            }))
        }
    })
}

/// One connection's whole life: lean streams for as long as it asks for them, then actix-web.
async fn accept<S>(mut io: TcpStream, http: Rc<S>, streams: Arc<Streams>)
where
    S: Service<TcpStream, Response = (), Error = DispatchError>,
{
    loop {
        // Boxed: the look at the head is short-lived and should not size the stream's task.
        match Box::pin(head::peek(&io, streams.patience)).await {
            Peeked::Closed => return,
            Peeked::Other => break,
            Peeked::Stream(request) => {
                // The head is in the socket's receive queue already: take exactly it.
                let mut consumed = vec![0u8; request.head_len];
                if io.read_exact(&mut consumed).await.is_err() {
                    return;
                }
                drop(consumed);
                // Frames are small and latency matters more than packet count.
                let _ = io.set_nodelay(true);
                if let Some(bytes) = streams.send_buffer {
                    // Best effort: a refusal leaves the kernel's default, which still works.
                    let _ = socket2::SockRef::from(&io).set_send_buffer_size(bytes);
                }
                match stream::serve(&mut io, Box::new(request), &streams).await {
                    stream::After::KeepAlive => continue,
                    stream::After::Close => return,
                }
            }
        }
    }
    // Boxed: the HTTP/1 dispatcher's state is large, and a lean stream's task should not
    // reserve room for it.
    if let Err(e) = Box::pin(http.call(io)).await {
        log::debug!("connection ended: {e}");
    }
}
