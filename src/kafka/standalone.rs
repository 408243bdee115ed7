//! A fixed bootstrap address in front of the embedded cluster, for `kafka-cluster`.
//!
//! The mock cluster listens on ports the OS picks, and librdkafka offers no way to choose them.
//! Several router instances sharing one cluster need an address they can be configured with
//! before it starts, so [`Forwarder`] listens on that address and relays each connection to the
//! cluster's first broker.
//!
//! Only bootstrapping goes through the forwarder: the metadata clients receive names the mock
//! brokers' own loopback listeners, and clients then connect to those directly. That is why the
//! shared cluster serves processes on the same machine only.

use super::{KafkaCluster, KafkaError};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// How long the forwarder pauses after a failed accept (out of file descriptors, say), so a
/// persistent failure does not spin the loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A listener on the fixed bootstrap address, not yet forwarding.
#[derive(Debug)]
pub struct Forwarder {
    listener: TcpListener,
    local: SocketAddr,
}

impl Forwarder {
    /// Listens on `addr` (port 0 picks a free port; [`Forwarder::local_addr`] tells which).
    /// Binding comes first so that an unusable address fails before any cluster is started.
    pub async fn bind(addr: SocketAddr) -> Result<Forwarder, KafkaError> {
        let bind_error = |source| KafkaError::Bind { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let local = listener.local_addr().map_err(bind_error)?;
        Ok(Forwarder { listener, local })
    }

    /// The address clients bootstrap from.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Relays every accepted connection to `upstream` until `shutdown` resolves. Open
    /// connections are cut when it returns; clients reconnect to whatever serves next.
    pub async fn run(self, upstream: SocketAddr, shutdown: impl Future<Output = ()>) {
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((client, peer)) => {
                        connections.spawn(relay(client, peer, upstream));
                    }
                    Err(e) => {
                        log::warn!("kafka forwarder on {}: accept failed: {e}", self.local);
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        connections.shutdown().await;
    }
}

/// The first listener in the embedded cluster's bootstrap list: the broker the forwarder
/// relays to. Any broker would do, since each one answers metadata for the whole cluster.
pub fn first_listener(broker: &KafkaCluster) -> Result<SocketAddr, KafkaError> {
    if !broker.is_embedded() {
        return Err(KafkaError::NotEmbedded(broker.bootstrap().to_owned()));
    }
    broker
        .bootstrap()
        .split(',')
        .next()
        .and_then(|first| first.trim().parse().ok())
        .ok_or_else(|| KafkaError::NoListener(broker.bootstrap().to_owned()))
}

/// Copies bytes both ways between one client and the upstream broker until either side closes.
async fn relay(mut client: TcpStream, peer: SocketAddr, upstream: SocketAddr) {
    let mut server = match TcpStream::connect(upstream).await {
        Ok(server) => server,
        Err(e) => {
            log::warn!("kafka forwarder: cannot reach broker {upstream} for {peer}: {e}");
            return;
        }
    };
    // Kafka requests are small and latency-bound; Nagle's delay would only slow them down.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    match tokio::io::copy_bidirectional(&mut client, &mut server).await {
        Ok((sent, received)) => {
            log::debug!("kafka forwarder: {peer} closed ({sent} bytes up, {received} down)")
        }
        Err(e) => log::debug!("kafka forwarder: {peer} ended: {e}"),
    }
}
