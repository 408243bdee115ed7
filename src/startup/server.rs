//! The HTTP side of the composition root: what handlers find in the app data, actix-web's
//! server spelled out with the lean stream acceptor in front, and binding the listener.

use super::parts::{Delivery, Domain, Foundations, Registries};
use crate::acceptor;
use crate::auth::JwtKeys;
use crate::cluster::Cluster;
use crate::config::Settings;
use crate::cors::CorsPolicy;
use crate::forwarded::TrustedProxies;
use crate::limits::Limits;
use crate::routes::{self, BodyLimit, Readiness};
use crate::store::Store;
use crate::streams::StreamDoor;
use actix::Addr;
use actix_http::{Extensions, HttpServiceBuilder};
use actix_service::map_config;
use actix_web::body::BoxBody;
use actix_web::dev::{AppConfig, Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::rt::net::TcpStream;
use actix_web::{web, App};
use actors::consumers::Cache;
use actors::domain::{DomainRules, NftDomain};
use actors::journal::EventJournal;
use actors::metrics::Metrics;
use actors::registry::SessionRegistry;
use actors::StreamConfig;
use secrecy::ExposeSecret;
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::server::TlsStream;

/// How long a client may take to send a request head (actix-web's default).
const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Pending connections the kernel queues before the server accepts them: a reconnect storm of
/// thousands of SSE clients must not be refused at the door.
const LISTEN_BACKLOG: i32 = 4096;

/// What every route's handlers find in the app data: each shared thing once.
#[derive(Clone)]
struct AppData {
    metrics: web::Data<Metrics>,
    readiness: web::Data<Readiness>,
    keys: web::Data<JwtKeys>,
    registry: web::Data<Addr<SessionRegistry>>,
    door: web::Data<StreamDoor>,
    cluster: web::Data<Arc<Cluster>>,
    operations: web::Data<routes::OperationsSessions>,
    journal: web::Data<Addr<EventJournal>>,
    domain: web::Data<Addr<NftDomain>>,
    rules: web::Data<Arc<DomainRules>>,
    store: web::Data<Store>,
    cache: web::Data<Arc<dyn Cache>>,
    limit: web::Data<BodyLimit>,
    stream_config: web::Data<StreamConfig>,
    dev_tokens: web::Data<routes::DevTokens>,
    portfolio_ttl: web::Data<routes::PortfolioTtl>,
    cors: web::Data<CorsPolicy>,
    limits: web::Data<Limits>,
    /// What the public listener's health and metrics routes tell (all, without an internal
    /// listener).
    disclosure: web::Data<routes::Disclosure>,
}

impl AppData {
    /// One worker's actix-web application; `tls`: served over TLS (cookies get `Secure`).
    fn app(
        &self,
        tls: bool,
    ) -> App<
        impl ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse<BoxBody>,
            Error = actix_web::Error,
            InitError = (),
        >,
    > {
        App::new()
            .wrap(actix_web::middleware::from_fn(crate::cors::apply))
            .wrap(actix_web::middleware::from_fn(crate::request_id::track))
            .app_data(self.cors.clone())
            .app_data(self.metrics.clone())
            .app_data(self.keys.clone())
            .app_data(self.registry.clone())
            .app_data(self.door.clone())
            .app_data(self.cluster.clone())
            .app_data(self.operations.clone())
            .app_data(self.journal.clone())
            .app_data(self.domain.clone())
            .app_data(self.rules.clone())
            .app_data(self.store.clone())
            .app_data(self.cache.clone())
            .app_data(self.readiness.clone())
            .app_data(self.limit.clone())
            .app_data(self.stream_config.clone())
            .app_data(self.dev_tokens.clone())
            .app_data(self.portfolio_ttl.clone())
            .app_data(self.disclosure.clone())
            .app_data(self.limits.clone())
            .app_data(web::Data::new(routes::Transport { tls }))
            .configure(routes::configure)
    }

    /// One worker's application on the internal listener: health, detailed readiness and
    /// metrics only.
    fn internal_app(
        &self,
    ) -> App<
        impl ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse<BoxBody>,
            Error = actix_web::Error,
            InitError = (),
        >,
    > {
        App::new()
            .wrap(actix_web::middleware::from_fn(crate::request_id::track))
            .app_data(self.metrics.clone())
            .app_data(self.cluster.clone())
            .app_data(self.store.clone())
            .app_data(self.cache.clone())
            .app_data(self.readiness.clone())
            .app_data(web::Data::new(routes::Disclosure { details: true }))
            .configure(routes::configure_internal)
    }
}

/// Builds the HTTP server over everything started before it: the routes' app data, and the
/// stream acceptor that serves `GET` streams before actix-web parses them, and the internal
/// listener when there is one.
pub fn serve(
    settings: &Settings,
    listener: TcpListener,
    internal: Option<TcpListener>,
    base: &Foundations,
    registries: &Registries,
    delivery: &Delivery,
    domain: Domain,
) -> std::io::Result<Server> {
    let limit = settings.sse.max_connections_per_user.get();
    let cors = CorsPolicy::new(&settings.http.cors_origins);
    let keys = Arc::new(jwt_keys(settings)?);
    let limits = Limits::new(&settings.limits, base.cluster.redis(), base.metrics.clone());
    forget_idle_askers(limits.clone());
    let door = StreamDoor {
        registry: registries.users.clone(),
        leases: base.cluster.leases(),
        limit,
        limits: limits.clone(),
        metrics: base.metrics.clone(),
        proxies: Arc::new(TrustedProxies::new(&settings.http.trusted_proxies)),
    };
    let data = AppData {
        metrics: web::Data::from(base.metrics.clone()),
        readiness: web::Data::new(Readiness {
            broker: delivery.kafka.broker.clone(),
            cache_backend: base.cache_backend,
        }),
        keys: web::Data::from(keys.clone()),
        registry: web::Data::new(registries.users.clone()),
        door: web::Data::new(door.clone()),
        cluster: web::Data::new(base.cluster.clone()),
        operations: web::Data::new(routes::OperationsSessions(
            door.local(registries.operations.clone()),
        )),
        journal: web::Data::new(delivery.journal.clone()),
        domain: web::Data::new(domain.actor),
        rules: web::Data::new(domain.rules),
        store: web::Data::new(base.store.clone()),
        cache: web::Data::new(base.cache.clone()),
        limit: web::Data::new(BodyLimit(settings.http.max_body_bytes)),
        stream_config: web::Data::new(settings.stream_config()),
        dev_tokens: web::Data::new(routes::DevTokens::from_settings(&settings.auth)),
        portfolio_ttl: web::Data::new(routes::PortfolioTtl(settings.chain.portfolio_cache)),
        cors: web::Data::new(cors.clone()),
        limits: web::Data::from(limits),
        disclosure: web::Data::new(routes::Disclosure {
            details: internal.is_none(),
        }),
    };
    let streams = acceptor::Streams {
        cors,
        keys,
        door,
        patience: CLIENT_REQUEST_TIMEOUT,
        stall_limit: settings.sse.heartbeat * 2,
        send_buffer: Some(settings.sse.send_buffer_bytes).filter(|&b| b > 0),
    };
    let tls = match &settings.http.tls.files {
        None => None,
        Some((cert, key)) => {
            let store =
                crate::tls::CertificateStore::open(cert, key).map_err(std::io::Error::other)?;
            crate::reload::watch(store.clone(), settings.http.tls.reload_check);
            let config = store.server_config().map_err(std::io::Error::other)?;
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
        }
    };
    http_server(settings, listener, internal, data, Arc::new(streams), tls)
}

/// The JWT keys: the HS256 secret, and the public keys when configured (watched for a
/// rotation). A keys file that does not load fails start-up, naming it.
fn jwt_keys(settings: &Settings) -> std::io::Result<JwtKeys> {
    let auth = &settings.auth;
    let keys = JwtKeys::new(auth.jwt_secret.expose_secret().as_bytes())
        .with_query_tokens(auth.query_tokens);
    let Some(path) = &auth.jwt_public_keys else {
        return Ok(keys);
    };
    let public = crate::auth::keyset::PublicKeys::open(std::path::Path::new(path))
        .map_err(std::io::Error::other)?;
    crate::reload::watch(public.clone(), auth.jwt_keys_reload_check);
    Ok(keys.with_public_keys(
        public,
        auth.jwt_issuer.as_deref(),
        auth.jwt_audience.as_deref(),
    ))
}

/// How often the local token buckets forget askers whose buckets are full again.
const FORGET_IDLE_EVERY: Duration = Duration::from_secs(60);

/// Keeps the buckets' maps to recent askers, so a scan from many addresses does not grow them
/// for good.
fn forget_idle_askers(limits: Arc<Limits>) {
    actix_web::rt::spawn(async move {
        let mut every = actix_web::rt::time::interval(FORGET_IDLE_EVERY);
        loop {
            every.tick().await;
            limits.forget_idle();
        }
    });
}

/// actix-web's `HttpServer`, spelled out, so that each connection passes the lean stream
/// acceptor first (`crate::acceptor`), with the settings `HttpServer` would use.
fn http_server(
    settings: &Settings,
    listener: TcpListener,
    internal: Option<TcpListener>,
    data: AppData,
    streams: Arc<acceptor::Streams>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> std::io::Result<Server> {
    let mut server = actix_server::Server::build()
        .disable_signals()
        .shutdown_timeout(settings.http.shutdown_timeout.as_secs());
    // Tells idle keep-alive connections to close when the server stops, as `HttpServer`
    // does, so a stop does not wait out their keep-alive.
    let stopping = server.graceful_shutdown_signal();
    if settings.http.workers > 0 {
        server = server.workers(settings.http.workers);
    }
    if let Some(internal) = internal {
        let (stopping, data) = (stopping.clone(), data.clone());
        server = server.listen("nft-event-router-internal", internal, move || {
            http_builder(stopping.clone())
                .finish(map_config(data.internal_app(), |_| AppConfig::default()))
                .tcp()
        })?;
    }
    if let Some(tls) = tls {
        let metrics = data.metrics.clone().into_inner();
        return Ok(server
            .listen("nft-event-router", listener, move || {
                let served = acceptor::tls::Served {
                    http: http_builder(stopping.clone())
                        .on_connect_ext(|io: &TlsStream<TcpStream>, ext: &mut Extensions| {
                            crate::hangup::remember_socket(io.get_ref().0, ext)
                        })
                        .finish(map_config(data.app(true), |_| AppConfig::default())),
                    app: map_config(data.app(true), |_| AppConfig::default()),
                    stopping: stopping.clone(),
                };
                acceptor::tls::service(served, tls.clone(), metrics.clone())
            })?
            .run());
    }
    Ok(server
        .listen("nft-event-router", listener, move || {
            // Plain connections: HTTP/1.1, or HTTP/2 with prior knowledge (h2c).
            let http = http_builder(stopping.clone())
                .on_connect_ext(|io: &TcpStream, ext: &mut Extensions| {
                    crate::hangup::remember_socket(io, ext)
                })
                .finish(map_config(data.app(false), |_| AppConfig::default()))
                .tcp_auto_h2c();
            acceptor::service(http, streams.clone())
        })?
        .run())
}

/// The settings every listener's HTTP service shares, as `HttpServer` would set them: idle
/// keep-alive connections close when the server stops, and the request-head and disconnect
/// timeouts.
fn http_builder<T, S>(stopping: actix_server::GracefulShutdownSignal) -> HttpServiceBuilder<T, S>
where
    S: actix_service::ServiceFactory<actix_http::Request, Config = ()>,
    S::Error: Into<actix_http::Response<BoxBody>> + 'static,
    S::InitError: std::fmt::Debug,
    <S::Service as actix_service::Service<actix_http::Request>>::Future: 'static,
{
    HttpServiceBuilder::default()
        .graceful_shutdown_signal(move || {
            let stopping = stopping.clone();
            async move { stopping.notified().await }
        })
        .client_request_timeout(CLIENT_REQUEST_TIMEOUT)
        .client_disconnect_timeout(Duration::from_secs(1))
}

/// Binds `addr`; with `reuse_port`, other processes may bind it too (SO_REUSEPORT), and the
/// kernel spreads new connections across all of them.
pub fn listen(addr: SocketAddr, reuse_port: bool) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Installs SIGINT and SIGTERM handlers now (so a signal that arrives before the returned
/// future is first polled is not lost) and returns a future that resolves on either.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
    })
}
