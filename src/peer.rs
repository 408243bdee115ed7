//! Noticing that an SSE client hung up while its stream is idle.
//!
//! actix-web's HTTP/1 dispatcher only learns that a peer closed a streaming response when a
//! write fails, i.e. at the next heartbeat (30 s by default). Until then the closed stream would
//! hold one of the user's three slots, so a user who reloads a page a few times would be
//! refused. At accept time we remember the connection's socket; when a stream opens, a watcher
//! on a duplicate of that socket peeks (never reads) for end-of-file and reports it at once.

use actors::session::ClientGone;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

/// The raw socket of an accepted connection, stored in its connection data.
#[derive(Debug, Clone, Copy)]
pub struct PeerSocket(RawFd);

/// `HttpServer::on_connect` hook: remembers plain TCP sockets.
pub fn remember_socket(conn: &dyn std::any::Any, ext: &mut actix_web::dev::Extensions) {
    if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
        ext.insert(PeerSocket(tcp.as_raw_fd()));
    }
}

impl PeerSocket {
    /// A future that resolves once the peer has closed the connection.
    ///
    /// Call only while the request on this connection is being handled: the descriptor is then
    /// owned by the live connection, which is what makes borrowing it sound.
    pub fn watch_close(self) -> Option<ClientGone> {
        // SAFETY: the connection that owns this descriptor is serving the current request, so
        // the descriptor is open for the duration of this call; we only duplicate it.
        let owned = unsafe { BorrowedFd::borrow_raw(self.0) }
            .try_clone_to_owned()
            .ok()?;
        let std_stream = std::net::TcpStream::from(owned);
        std_stream.set_nonblocking(true).ok()?;
        Some(Box::pin(async move {
            // Registered with the reactor of whichever thread polls it (the session's).
            let Ok(stream) = tokio::net::TcpStream::from_std(std_stream) else {
                return std::future::pending().await;
            };
            let mut probe = [0u8; 1];
            loop {
                if stream.readable().await.is_err() {
                    return;
                }
                match stream.peek(&mut probe).await {
                    Ok(0) => return,
                    // The client sent bytes the dispatcher has not consumed (it should not
                    // during a stream); look again later instead of spinning on them.
                    Ok(_) => tokio::time::sleep(Duration::from_secs(1)).await,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(_) => return,
                }
            }
        }))
    }
}
