//! The TLS listener's front door: the handshake, then actix-web's HTTP service on the
//! protocol ALPN chose (`h2`, else HTTP/1.1), streams included.
//!
//! The lean stream path ([`super::service`]) peeks the plain socket, which a TLS connection
//! cannot offer, so over TLS every request, streams included, is served by actix-web; over
//! HTTP/2 a stream costs one h2 stream on a shared connection rather than a socket.
//!
//! A handshake that fails or times out is counted (`nft_router_tls_handshake_failures_total`)
//! and logged, and ends only its own connection.

use actix_http::error::DispatchError;
use actix_http::Protocol;
use actix_service::{fn_factory, fn_service, Service, ServiceFactory};
use actors::metrics::Metrics;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How long a client may take to complete its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The per-worker service for accepted TLS connections, around actix-web's service for TLS
/// streams.
pub fn service<F>(
    http: F,
    acceptor: TlsAcceptor,
    metrics: Arc<Metrics>,
) -> impl ServiceFactory<TcpStream, Config = (), Response = (), Error = (), InitError = ()>
where
    F: ServiceFactory<
            (TlsStream<TcpStream>, Protocol, Option<SocketAddr>),
            Config = (),
            Response = (),
            Error = DispatchError,
            InitError = (),
        > + 'static,
    F::Service: 'static,
{
    fn_factory(move || {
        let http = http.new_service(());
        let (acceptor, metrics) = (acceptor.clone(), metrics.clone());
        async move {
            let http = Rc::new(http.await?);
            Ok::<_, ()>(fn_service(move |io: TcpStream| {
                let (http, acceptor, metrics) = (http.clone(), acceptor.clone(), metrics.clone());
                async move {
                    accept(io, http, acceptor, metrics).await;
                    Ok::<_, ()>(())
                }
            }))
        }
    })
}

async fn accept<S>(io: TcpStream, http: Rc<S>, acceptor: TlsAcceptor, metrics: Arc<Metrics>)
where
    S: Service<
        (TlsStream<TcpStream>, Protocol, Option<SocketAddr>),
        Response = (),
        Error = DispatchError,
    >,
{
    let peer = io.peer_addr().ok();
    let _ = io.set_nodelay(true);
    let tls = match actix_web::rt::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            metrics.tls_handshake_failed();
            log::info!("TLS handshake with {} failed: {e}", show(peer));
            return;
        }
        Err(_) => {
            metrics.tls_handshake_failed();
            log::info!("TLS handshake with {} timed out", show(peer));
            return;
        }
    };
    let protocol = match tls.get_ref().1.alpn_protocol() {
        Some(b"h2") => Protocol::Http2,
        _ => Protocol::Http1,
    };
    // Boxed: the dispatcher's state is large and the handshake's task need not reserve it.
    if let Err(e) = Box::pin(http.call((tls, protocol, peer))).await {
        log::debug!("TLS connection ended: {e}");
    }
}

fn show(peer: Option<SocketAddr>) -> String {
    peer.map_or_else(|| "an unknown peer".to_owned(), |p| p.to_string())
}
