//! Building and running the application. Tests start exactly this, on port 0, so the test path
//! is the production path.

use crate::acceptor;
use crate::auth::JwtKeys;
use crate::cache;
use crate::cluster::{Cluster, Inbound};
use crate::config::Settings;
use crate::kafka::Broker;
use crate::kafka_path::KafkaPath;
use crate::routes::{self, BodyLimit};
use crate::store::{OperationsLog, Store};
use crate::streams::StreamDoor;
use actix::{Actor, Addr};
use actix_http::{Extensions, HttpService};
use actix_service::map_config;
use actix_web::body::BoxBody;
use actix_web::dev::{AppConfig, Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::rt::net::TcpStream;
use actix_web::{web, App};
use actors::consumers::Cache;
use actors::domain::{DomainRules, LocalLedger, NftDomain, ResumeFlows};
use actors::journal::{EventJournal, EventLog, RetentionPruner};
use actors::metrics::Metrics;
use actors::monitoring::{AlertEvaluator, MonitoringReporter, SnapshotSource};
use actors::operations_feed::OperationsFeed;
use actors::registry::{CloseAll, Drain, GetStats, SessionRegistry};
use actors::sweeper::HeadSweeper;
use actors::StreamConfig;
use anyhow::Context as _;
use secrecy::ExposeSecret;
use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

/// What readiness checks, shared with the `/readyz` handler.
pub struct Dependencies {
    pub store: Store,
    pub broker: Arc<Broker>,
    pub cache: Arc<dyn Cache>,
    pub cache_backend: &'static str,
    pub cluster: Arc<Cluster>,
}

/// A built, not yet running, router.
pub struct Application {
    port: u16,
    server: Server,
    registry: Addr<SessionRegistry>,
    operations: Addr<SessionRegistry>,
    kafka: KafkaPath,
    cluster: Arc<Cluster>,
    metrics: Arc<Metrics>,
    drain: Drain,
}

impl Application {
    /// Binds `http.bind` and builds the application. Must run inside an actix `System`.
    pub async fn build(settings: &Settings) -> anyhow::Result<Application> {
        let listener = listen(&settings.http.bind, settings.http.reuse_port).map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {} (key `http.bind`): {e}",
                settings.http.bind
            )
        })?;
        Application::with_listener(settings, listener).await
    }

    /// Builds the application on an already bound listener.
    pub async fn with_listener(
        settings: &Settings,
        listener: TcpListener,
    ) -> anyhow::Result<Application> {
        let port = listener.local_addr()?.port();
        // Connecting runs the migrations: blocking work, kept off the async thread.
        let (url, pool_size) = (settings.store.url.clone(), settings.store.pool_size);
        let sync = settings.store.sqlite_sync();
        let store = tokio::task::spawn_blocking(move || {
            Store::connect_with(url.expose_secret(), pool_size, sync)
        })
        .await
        .context("the store connection task failed")?
        .context("cannot open the event store (key `store.url`)")?;
        log::info!("event store: {}", store.backend());
        let cache_url = settings.redis.url();
        let cache = cache::open(cache_url, &settings.redis.key_prefix)
            .context("cannot set up the cache (key `redis.url`)")?;

        let cluster = Arc::new(Cluster::open(settings).await?);
        log::info!(
            "instance {} (live bus: {})",
            cluster.instance_id(),
            cluster.bus_status().backend
        );
        let bus = cluster.bus();
        let metrics = Arc::new(
            Metrics::for_instance(cluster.instance_id()).context("cannot define the metrics")?,
        );

        let event_log: Arc<dyn EventLog> = Arc::new(store.clone());
        let registry = SessionRegistry::new(settings.stream_config(), event_log.clone())
            .with_bus(bus.clone())
            .with_metrics(metrics.clone())
            .start();

        // The admin operations feed: its own registry over the feed table, fed by a tailer
        // that the operations consumer (here or on another instance, over the bus) nudges.
        let feed_log: Arc<dyn EventLog> = Arc::new(OperationsLog(store.clone()));
        // Admins see every event type on the feed.
        let feed_config = StreamConfig {
            hidden_types: Vec::new(),
            ..settings.stream_config()
        };
        let operations = SessionRegistry::new(feed_config, feed_log.clone())
            .with_metrics(metrics.clone())
            .start();
        let feed = OperationsFeed::new(
            feed_log.clone(),
            operations.clone(),
            Duration::from_millis(settings.monitoring.feed_poll_ms),
        )
        .with_bus(bus.clone())
        .start();

        let kafka = KafkaPath::start(
            settings,
            &store,
            cache.clone(),
            feed.clone().recipient(),
            &cluster,
            &metrics,
        )
        .await?;
        let journal = EventJournal::new(event_log.clone(), registry.clone().recipient())
            .notify_committed(kafka.relay.clone().recipient())
            .with_bus(bus.clone())
            .with_metrics(metrics.clone())
            .start();
        if bus.is_shared() {
            let sweeper = HeadSweeper::new(
                event_log.clone(),
                registry.clone(),
                settings.cluster.sweep_interval(),
            )
            .start();
            cluster.start(
                Inbound {
                    events: registry.clone().recipient(),
                    feed: feed.recipient(),
                    outbox: kafka.relay.clone().recipient(),
                    sweep: sweeper.recipient(),
                },
                registry.clone(),
            )?;
        }
        let rules = Arc::new(settings.domain_rules()?);
        let chain = Arc::new(LocalLedger::new(
            Arc::new(store.clone()),
            settings.ledger_faults(),
        ));
        let domain = NftDomain::new(
            rules.clone(),
            Arc::new(store.clone()),
            journal.clone(),
            chain,
            cache.clone(),
            settings.flow_policy(),
        )
        .start();
        // Flows a previous run left pending (stopped mid-flow) are resumed or compensated.
        match domain.send(ResumeFlows).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => log::info!("resuming {n} interrupted flow(s)"),
            Ok(Err(e)) => log::warn!("cannot read interrupted flows: {e}"),
            Err(_) => log::warn!("the NFT domain stopped before resuming flows"),
        }
        RetentionPruner::new(
            event_log.clone(),
            settings.store.retention(),
            Duration::from_secs(settings.store.prune_interval_secs),
        )
        .start();

        // Watching the router: summaries and alerts, posted on the operations feed.
        let snapshots: SnapshotSource = {
            let metrics = metrics.clone();
            Arc::new(move || metrics.snapshot())
        };
        MonitoringReporter::new(
            snapshots.clone(),
            journal.clone(),
            Duration::from_secs(settings.monitoring.report_interval_secs),
        )
        .start();
        AlertEvaluator::new(settings.alert_rules(), snapshots, journal.clone()).start();

        RetentionPruner::new(
            feed_log,
            settings.store.retention(),
            Duration::from_secs(settings.store.prune_interval_secs),
        )
        .start();

        let keys = Arc::new(JwtKeys::new(
            settings.auth.jwt_secret.expose_secret().as_bytes(),
        ));
        let door = StreamDoor {
            registry: registry.clone(),
            leases: cluster.leases(),
            limit: settings.sse.max_connections_per_user,
            metrics: metrics.clone(),
        };
        let data = AppData {
            metrics: web::Data::from(metrics.clone()),
            dependencies: web::Data::new(Dependencies {
                store: store.clone(),
                broker: kafka.broker.clone(),
                cache: cache.clone(),
                cache_backend: cache::backend_name(cache_url),
                cluster: cluster.clone(),
            }),
            keys: web::Data::from(keys.clone()),
            registry: web::Data::new(registry.clone()),
            door: web::Data::new(door.clone()),
            cluster: web::Data::new(cluster.clone()),
            operations: web::Data::new(routes::OperationsSessions(StreamDoor::local(
                operations.clone(),
                settings.sse.max_connections_per_user,
                metrics.clone(),
            ))),
            journal: web::Data::new(journal),
            domain: web::Data::new(domain),
            rules: web::Data::new(rules),
            event_log: web::Data::new(event_log),
            store: web::Data::new(store),
            cache: web::Data::new(cache),
            limit: web::Data::new(BodyLimit(settings.http.max_body_bytes)),
            stream_config: web::Data::new(settings.stream_config()),
            dev_tokens: web::Data::new(routes::DevTokens::from_settings(&settings.auth)),
            portfolio_ttl: web::Data::new(routes::PortfolioTtl(Duration::from_secs(
                settings.chain.portfolio_cache_secs,
            ))),
        };
        let streams = acceptor::Streams {
            keys,
            door,
            patience: CLIENT_REQUEST_TIMEOUT,
            stall_limit: Duration::from_secs(settings.sse.heartbeat_secs * 2),
        };
        let server = http_server(settings, listener, data, Arc::new(streams))?;
        Ok(Application {
            port,
            server,
            registry,
            operations,
            kafka,
            cluster,
            metrics,
            drain: Drain {
                window: settings.cluster.drain_window(),
                retry: Duration::from_millis(settings.sse.retry_ms),
            },
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The registry, for in-process inspection (tests, embedding).
    pub fn registry(&self) -> Addr<SessionRegistry> {
        self.registry.clone()
    }

    /// This router's metrics (what `GET /metrics` renders), for in-process inspection.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// The Kafka cluster in use (the embedded one can be given faults in tests).
    pub fn broker(&self) -> Arc<Broker> {
        self.kafka.broker.clone()
    }

    /// This instance's id in the cluster.
    pub fn instance_id(&self) -> &str {
        self.cluster.instance_id()
    }

    /// Serves until `shutdown` resolves, then drains: readiness turns `not_ready`, new streams
    /// are refused, and the open ones close spread over `cluster.drain_secs`, each with its own
    /// `retry:`. Then it stops accepting, lets in-flight requests finish (up to
    /// `http.shutdown_timeout_secs`), stops the consumers and returns.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let handle = self.server.handle();
        let server = actix_web::rt::spawn(self.server);
        shutdown.await;
        drain(&self.cluster, &self.registry, &self.operations, &self.drain).await;
        log::info!("shutting down: closing streams");
        self.registry.do_send(CloseAll);
        self.operations.do_send(CloseAll);
        // Let sessions flush their close before the server stops polling connections.
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        handle.stop(true).await;
        self.kafka.stop();
        self.cluster.leave().await;
        match server.await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}

/// Turns not-ready, then closes the streams spread over the drain window and waits for them to
/// be gone (a little past the window at most: the rest are closed at once after).
async fn drain(
    cluster: &Cluster,
    registry: &Addr<SessionRegistry>,
    operations: &Addr<SessionRegistry>,
    drain: &Drain,
) {
    cluster.start_draining();
    let window = drain.window;
    let open = registry
        .send(GetStats)
        .await
        .map_or(0, |s| s.total_connections);
    log::info!(
        "draining: not ready; closing {open} streams over {} s",
        window.as_secs()
    );
    if window.is_zero() || open == 0 {
        return;
    }
    registry.do_send(Drain {
        window,
        retry: drain.retry,
    });
    operations.do_send(Drain {
        window,
        retry: drain.retry,
    });
    let deadline = tokio::time::Instant::now() + window + Duration::from_secs(1);
    while tokio::time::Instant::now() < deadline {
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        let left = registry
            .send(GetStats)
            .await
            .map_or(0, |s| s.total_connections);
        if left == 0 {
            break;
        }
    }
}

/// What every route's handlers find in the app data.
#[derive(Clone)]
struct AppData {
    metrics: web::Data<Metrics>,
    dependencies: web::Data<Dependencies>,
    keys: web::Data<JwtKeys>,
    registry: web::Data<Addr<SessionRegistry>>,
    door: web::Data<StreamDoor>,
    cluster: web::Data<Arc<Cluster>>,
    operations: web::Data<routes::OperationsSessions>,
    journal: web::Data<Addr<EventJournal>>,
    domain: web::Data<Addr<NftDomain>>,
    rules: web::Data<Arc<DomainRules>>,
    event_log: web::Data<Arc<dyn EventLog>>,
    store: web::Data<Store>,
    cache: web::Data<Arc<dyn Cache>>,
    limit: web::Data<BodyLimit>,
    stream_config: web::Data<StreamConfig>,
    dev_tokens: web::Data<routes::DevTokens>,
    portfolio_ttl: web::Data<routes::PortfolioTtl>,
}

impl AppData {
    /// One worker's actix-web application.
    fn app(
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
            .app_data(self.keys.clone())
            .app_data(self.registry.clone())
            .app_data(self.door.clone())
            .app_data(self.cluster.clone())
            .app_data(self.operations.clone())
            .app_data(self.journal.clone())
            .app_data(self.domain.clone())
            .app_data(self.rules.clone())
            .app_data(self.event_log.clone())
            .app_data(self.store.clone())
            .app_data(self.cache.clone())
            .app_data(self.dependencies.clone())
            .app_data(self.limit.clone())
            .app_data(self.stream_config.clone())
            .app_data(self.dev_tokens.clone())
            .app_data(self.portfolio_ttl.clone())
            .configure(routes::configure)
    }
}

/// actix-web's `HttpServer`, spelled out, so that each connection passes the lean stream
/// acceptor first (`crate::acceptor`), with the settings `HttpServer` would use.
fn http_server(
    settings: &Settings,
    listener: TcpListener,
    data: AppData,
    streams: Arc<acceptor::Streams>,
) -> std::io::Result<Server> {
    let mut server = actix_server::Server::build()
        .disable_signals()
        .shutdown_timeout(settings.http.shutdown_timeout_secs);
    // Tells idle keep-alive connections to close when the server stops, as `HttpServer`
    // does, so a stop does not wait out their keep-alive.
    let stopping = server.graceful_shutdown_signal();
    if settings.http.workers > 0 {
        server = server.workers(settings.http.workers);
    }
    Ok(server
        .listen("nft-event-router", listener, move || {
            let stopping = stopping.clone();
            let http = HttpService::build()
                .graceful_shutdown_signal(move || {
                    let stopping = stopping.clone();
                    async move { stopping.notified().await }
                })
                .client_request_timeout(CLIENT_REQUEST_TIMEOUT)
                .client_disconnect_timeout(Duration::from_secs(1))
                .on_connect_ext(|io: &TcpStream, ext: &mut Extensions| {
                    crate::hangup::remember_socket(io, ext)
                })
                .finish(map_config(data.app(), |_| AppConfig::default()))
                .tcp();
            acceptor::service(http, streams.clone())
        })?
        .run())
}

/// How long a client may take to send a request head (actix-web's default).
const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Pending connections the kernel queues before the server accepts them: a reconnect storm of
/// thousands of SSE clients must not be refused at the door.
const LISTEN_BACKLOG: i32 = 4096;

/// Binds `addr`; with `reuse_port`, other processes may bind it too (SO_REUSEPORT), and the
/// kernel spreads new connections across all of them.
pub fn listen(addr: &str, reuse_port: bool) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let addr: std::net::SocketAddr = addr
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
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
