//! What protects the router from its clients: token buckets on publishing (per service) and on
//! stream connects (per client address and per user), and caps on open streams (per process
//! and per address). Configured in `[limits]`; a refusal is 429 `RATE_LIMITED` or, at a stream
//! cap, 503 `UNAVAILABLE`, both with `Retry-After`, and is counted in
//! `nft_router_requests_limited_total{limit}`.
//!
//! * [`buckets`]: the token buckets, shared through Redis when the cluster has it.
//! * [`caps`]: the open-stream caps and the slot each stream holds.

pub mod buckets;
pub mod caps;

use crate::config::LimitSettings;
use crate::error::ApiError;
use actors::metrics::Metrics;
use buckets::{Buckets, Rate};
use caps::{CapReached, StreamCaps, StreamSlot};
use redis::aio::ConnectionManager;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

pub use caps::{open_file_limit, open_files};

/// What a client refused at a stream cap is told to wait: long enough for a burst of
/// reconnects to spread, short enough that a freed place is taken soon.
const CAP_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Every limit, built once and shared by the routes and the stream acceptor.
pub struct Limits {
    publish: Option<Buckets>,
    connect_address: Option<Buckets>,
    connect_user: Option<Buckets>,
    caps: Arc<StreamCaps>,
    metrics: Arc<Metrics>,
}

impl Limits {
    /// The limits of `settings`, the buckets shared through `redis` (connection and key
    /// prefix) when given.
    pub fn new(
        settings: &LimitSettings,
        redis: Option<(ConnectionManager, &str)>,
        metrics: Arc<Metrics>,
    ) -> Arc<Limits> {
        let bucket = |name, per_sec, burst| {
            let buckets = Buckets::new(name, Rate { per_sec, burst })?;
            Some(match &redis {
                Some((conn, prefix)) => buckets.shared(conn.clone(), prefix),
                None => buckets,
            })
        };
        let max = settings.max_streams();
        log::info!("open streams are capped at {max} (key `limits.max_streams`)");
        Arc::new(Limits {
            publish: bucket("publish", settings.publish_per_sec, settings.publish_burst),
            connect_address: bucket(
                "connect_address",
                settings.connects_per_address_per_sec,
                settings.connects_per_address_burst,
            ),
            connect_user: bucket(
                "connect_user",
                settings.connects_per_user_per_sec,
                settings.connects_per_user_burst,
            ),
            caps: StreamCaps::new(
                max,
                Some(settings.max_streams_per_address).filter(|&n| n > 0),
            ),
            metrics,
        })
    }

    /// No limits at all (embedding and tests of other things).
    pub fn none(metrics: Arc<Metrics>) -> Arc<Limits> {
        Arc::new(Limits {
            publish: None,
            connect_address: None,
            connect_user: None,
            caps: StreamCaps::new(usize::MAX, None),
            metrics,
        })
    }

    /// A service may publish (or make another service write) now.
    pub async fn publish(&self, service: &str) -> Result<(), ApiError> {
        self.take(&self.publish, "publish", service).await
    }

    /// A stream may open for `user` from `address`: the connect rates of both, then the
    /// caps. The slot holds the stream's place until it is dropped.
    pub async fn open_stream(
        &self,
        address: Option<IpAddr>,
        user: &str,
    ) -> Result<StreamSlot, ApiError> {
        if let Some(address) = address {
            let key = address.to_string();
            self.take(&self.connect_address, "connect_address", &key)
                .await?;
        }
        self.take(&self.connect_user, "connect_user", user).await?;
        self.caps.admit(address).map_err(|reached| {
            let (limit, message) = match reached {
                CapReached::Process(max) => (
                    "streams",
                    format!("this instance holds its most streams ({max}); retry shortly"),
                ),
                CapReached::Address(max) => (
                    "streams_per_address",
                    format!("this address holds its most streams ({max})"),
                ),
            };
            self.metrics.limited(limit);
            ApiError::AtCapacity {
                message,
                retry_after: CAP_RETRY_AFTER,
            }
        })
    }

    /// Streams open now under the caps.
    pub fn open_streams(&self) -> usize {
        self.caps.open()
    }

    /// Forgets idle keys in the local buckets; run on a schedule.
    pub fn forget_idle(&self) {
        for buckets in [&self.publish, &self.connect_address, &self.connect_user]
            .into_iter()
            .flatten()
        {
            buckets.forget_idle();
        }
    }

    async fn take(
        &self,
        buckets: &Option<Buckets>,
        limit: &'static str,
        key: &str,
    ) -> Result<(), ApiError> {
        let Some(buckets) = buckets else {
            return Ok(());
        };
        buckets.take(key).await.map_err(|retry_after| {
            self.metrics.limited(limit);
            ApiError::Throttled { limit, retry_after }
        })
    }
}
