//! The TLS listener's front door: the handshake, then the protocol ALPN chose: `h2` to this
//! crate's HTTP/2 dispatcher ([`super::h2`]) in front of the application, else actix-web's
//! HTTP/1.1 service; streams included.
//!
//! The lean stream path ([`super::service`]) peeks the plain socket, which a TLS connection
//! cannot offer, so over TLS every request, streams included, goes through the application;
//! over HTTP/2 a stream costs one h2 stream on a shared connection rather than a socket.
//!
//! A handshake that fails or times out is counted (`nft_router_tls_handshake_failures_total`)
//! and logged, and ends only its own connection.

use actix_http::body::BoxBody;
use actix_http::error::DispatchError;
use actix_http::Protocol;
use actix_service::{fn_factory, fn_service, Service, ServiceFactory};
use actix_web::dev::ServiceResponse;
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

/// What a TLS connection is served with: actix-web's HTTP service (HTTP/1.1) and the
/// application itself (HTTP/2, through [`super::h2`]), per worker.
pub struct Served<H, A> {
    pub http: H,
    pub app: A,
    /// Tells HTTP/2 connections to wind down when the server stops.
    pub stopping: actix_server::GracefulShutdownSignal,
}

/// The per-worker service for accepted TLS connections.
pub fn service<F, AF>(
    served: Served<F, AF>,
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
    AF: ServiceFactory<
            actix_http::Request,
            Config = (),
            Response = ServiceResponse<BoxBody>,
            Error = actix_web::Error,
        > + 'static,
    AF::Service: 'static,
{
    let Served {
        http,
        app,
        stopping,
    } = served;
    fn_factory(move || {
        let (http, app) = (http.new_service(()), app.new_service(()));
        let (acceptor, metrics, stopping) = (acceptor.clone(), metrics.clone(), stopping.clone());
        async move {
            let http = Rc::new(http.await?);
            let app = Rc::new(app.await.map_err(|_| ())?);
            Ok::<_, ()>(fn_service(move |io: TcpStream| {
                let connection = Connection {
                    http: http.clone(),
                    app: app.clone(),
                    stopping: stopping.clone(),
                };
                let (acceptor, metrics) = (acceptor.clone(), metrics.clone());
                async move {
                    accept(io, connection, acceptor, metrics).await;
                    Ok::<_, ()>(())
                }
            }))
        }
    })
}

struct Connection<H, A> {
    http: Rc<H>,
    app: Rc<A>,
    stopping: actix_server::GracefulShutdownSignal,
}

async fn accept<H, A>(
    io: TcpStream,
    connection: Connection<H, A>,
    acceptor: TlsAcceptor,
    metrics: Arc<Metrics>,
) where
    H: Service<
        (TlsStream<TcpStream>, Protocol, Option<SocketAddr>),
        Response = (),
        Error = DispatchError,
    >,
    A: Service<actix_http::Request, Response = ServiceResponse<BoxBody>, Error = actix_web::Error>
        + 'static,
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
    // Boxed: a dispatcher's state is large and the handshake's task need not reserve it.
    if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
        Box::pin(super::h2::serve(
            tls,
            connection.app,
            peer,
            connection.stopping,
        ))
        .await;
    } else if let Err(e) = Box::pin(connection.http.call((tls, Protocol::Http1, peer))).await {
        log::debug!("TLS connection ended: {e}");
    }
}

fn show(peer: Option<SocketAddr>) -> String {
    peer.map_or_else(|| "an unknown peer".to_owned(), |p| p.to_string())
}
