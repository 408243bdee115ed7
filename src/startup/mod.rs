//! Building and running the application. Tests start exactly this, on port 0, so the test path
//! is the production path.

mod kafka;
mod parts;
mod server;

pub use server::{listen, shutdown_signal};

use self::kafka::KafkaPath;
use crate::cluster::Cluster;
use crate::config::Settings;
use crate::kafka::KafkaCluster;
use actix::Addr;
use actix_web::dev::Server;
use actors::metrics::Metrics;
use actors::registry::{CloseAll, Drain, GetStats, SessionRegistry};
use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

/// A built, not yet running, router.
pub struct Application {
    port: u16,
    internal_port: Option<u16>,
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
        let bind = settings.http.bind;
        let listener = listen(bind, settings.http.reuse_port)
            .map_err(|e| anyhow::anyhow!("cannot listen on {bind} (key `http.bind`): {e}"))?;
        Application::with_listener(settings, listener).await
    }

    /// Builds the application on an already bound listener: foundations (store, cache,
    /// cluster, metrics), the stream registries, the delivery paths, the domain,
    /// housekeeping, then the HTTP server over all of them.
    pub async fn with_listener(
        settings: &Settings,
        listener: TcpListener,
    ) -> anyhow::Result<Application> {
        let port = listener.local_addr()?.port();
        let internal = match settings.http.internal_bind {
            Some(addr) => Some(listen(addr, settings.http.reuse_port).map_err(|e| {
                anyhow::anyhow!("cannot listen on {addr} (key `http.internal_bind`): {e}")
            })?),
            None => None,
        };
        let internal_port = match &internal {
            Some(listener) => Some(listener.local_addr()?.port()),
            None => None,
        };
        let base = parts::open_foundations(settings).await?;
        let registries = parts::start_registries(settings, &base);
        let delivery = parts::start_delivery(settings, &base, &registries).await?;
        let domain = parts::start_domain(settings, &base, &delivery.journal).await?;
        parts::start_housekeeping(settings, &base, &delivery.journal);
        let server = server::serve(
            settings,
            listener,
            internal,
            &base,
            &registries,
            &delivery,
            domain,
        )?;
        Ok(Application {
            port,
            internal_port,
            server,
            registry: registries.users,
            operations: registries.operations,
            kafka: delivery.kafka,
            cluster: base.cluster,
            metrics: base.metrics,
            drain: Drain {
                window: settings.cluster.drain,
                retry: settings.sse.retry,
            },
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The internal listener's port (`http.internal_bind`), if there is one.
    pub fn internal_port(&self) -> Option<u16> {
        self.internal_port
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
    pub fn broker(&self) -> Arc<KafkaCluster> {
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
