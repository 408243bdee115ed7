//! Noticing that an SSE client hung up while its stream is idle.
//!
//! actix-web's HTTP/1 dispatcher only learns that a peer closed a streaming response when a
//! write fails, i.e. at the next heartbeat (30 s by default). Until then the closed stream would
//! hold one of the user's three slots, so a user who reloads a page a few times would be
//! refused. At accept time we remember the connection's socket; when a stream opens, the
//! socket is added to one process-wide epoll set that waits for the peer's end-of-file
//! (`EPOLLRDHUP`), and the session hears of it at once.
//!
//! One epoll set and one thread for all streams, rather than a watcher per stream on a
//! duplicate of its socket: a duplicate costs a second descriptor per connection, which halves
//! the streams one process can hold under its open-file limit. The set holds no reference to
//! the sockets: the kernel drops a socket from it when the connection closes, and every
//! registration carries its own token, so a late event for a closed stream (or a descriptor
//! number reused by a new connection) reaches no one.

use actors::session::ClientGone;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use tokio::sync::oneshot;

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
    /// A future that resolves once the peer has closed the connection; `None` when the
    /// watcher is unavailable (the stream then notices at its next failed write).
    ///
    /// Call only while the request on this connection is being handled: the descriptor is then
    /// owned by the live connection, which is what makes using its number sound.
    pub fn watch_close(self) -> Option<ClientGone> {
        let watcher = Watcher::get()?;
        let token = watcher.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        watcher.waiting.lock().ok()?.insert(token, tx);
        if let Err(e) = watcher.watch(self.0, token) {
            log::debug!("cannot watch socket {}: {e}", self.0);
            watcher.forget(token);
            return None;
        }
        let guard = Forget(token);
        Some(Box::pin(async move {
            let _guard = guard;
            // A dropped sender (the watcher thread gone) is not a hang-up: wait for the write
            // path instead.
            if rx.await.is_err() {
                std::future::pending::<()>().await;
            }
        }))
    }
}

/// Drops a registration's sender when its stream ends first.
struct Forget(u64);

impl Drop for Forget {
    fn drop(&mut self) {
        if let Some(watcher) = Watcher::get() {
            watcher.forget(self.0);
        }
    }
}

struct Watcher {
    epoll: RawFd,
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, oneshot::Sender<()>>>,
}

impl Watcher {
    /// The process-wide watcher, started on first use; `None` if the kernel refused an epoll
    /// set or a thread.
    fn get() -> Option<&'static Watcher> {
        static WATCHER: OnceLock<Option<&'static Watcher>> = OnceLock::new();
        *WATCHER.get_or_init(|| {
            // SAFETY: plain syscall; the result is checked.
            let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
            if epoll < 0 {
                log::warn!(
                    "no epoll set for hang-up detection: {}",
                    std::io::Error::last_os_error()
                );
                return None;
            }
            let watcher: &'static Watcher = Box::leak(Box::new(Watcher {
                epoll,
                next: AtomicU64::new(1),
                waiting: Mutex::new(HashMap::new()),
            }));
            let started = std::thread::Builder::new()
                .name("peer-hangups".into())
                .spawn(move || watcher.run());
            match started {
                Ok(_) => Some(watcher),
                Err(e) => {
                    log::warn!("no thread for hang-up detection: {e}");
                    None
                }
            }
        })
    }

    /// Adds `fd` to the set (or re-arms it: a keep-alive connection may open a second stream)
    /// for one end-of-file event carrying `token`.
    fn watch(&self, fd: RawFd, token: u64) -> std::io::Result<()> {
        let mut event = libc::epoll_event {
            events: (libc::EPOLLRDHUP | libc::EPOLLONESHOT) as u32,
            u64: token,
        };
        // SAFETY: `fd` is the open socket of the connection whose request is being handled
        // (see `watch_close`); `event` outlives the call.
        let added = unsafe { libc::epoll_ctl(self.epoll, libc::EPOLL_CTL_ADD, fd, &mut event) };
        if added == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EEXIST) {
            return Err(err);
        }
        // SAFETY: as above.
        let modified = unsafe { libc::epoll_ctl(self.epoll, libc::EPOLL_CTL_MOD, fd, &mut event) };
        if modified == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    fn forget(&self, token: u64) {
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.remove(&token);
        }
    }

    fn run(&self) {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
        loop {
            // SAFETY: the buffer holds `events.len()` entries and outlives the call.
            let n = unsafe {
                libc::epoll_wait(self.epoll, events.as_mut_ptr(), events.len() as i32, -1)
            };
            if n < 0 {
                let err = std::io::Error::last_os_error();
                if err.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                log::warn!("hang-up detection stopped: {err}");
                return;
            }
            let Ok(mut waiting) = self.waiting.lock() else {
                return;
            };
            for event in &events[..n as usize] {
                let token = event.u64;
                if let Some(tx) = waiting.remove(&token) {
                    let _ = tx.send(());
                }
            }
        }
    }
}
