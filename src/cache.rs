//! The cache (counters, cached portfolios): Redis when `redis.url` is set, the in-process [`MemoryCache`] otherwise.
//!
//! Redis is reached through the `redis` crate's `ConnectionManager`, which reconnects on its
//! own after a failure. It is created on first use rather than at start-up, so a router whose
//! Redis is down still starts, reports "not ready" and fills the counters in once Redis is
//! back (the analytics consumer keeps the database counts and resyncs the cache).

use actors::consumers::{Cache, CacheError, CacheFuture, MemoryCache};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// Bounds every Redis call so a hung server looks like a down one, quickly.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// Which cache is in use, for readiness output.
pub fn backend_name(url: Option<&str>) -> &'static str {
    if url.is_some() {
        "redis"
    } else {
        "in-process"
    }
}

/// The configured cache. `key_prefix` is put before every key in Redis (several routers or
/// test runs can share one Redis without sharing counters).
pub fn open(url: Option<&str>, key_prefix: &str) -> Result<Arc<dyn Cache>, CacheError> {
    match url {
        None => Ok(Arc::new(MemoryCache::new())),
        Some(url) => Ok(Arc::new(RedisCache::new(url, key_prefix)?)),
    }
}

pub struct RedisCache {
    client: redis::Client,
    prefix: String,
    manager: Arc<Mutex<Option<ConnectionManager>>>,
}

impl RedisCache {
    pub fn new(url: &str, key_prefix: &str) -> Result<Self, CacheError> {
        let client =
            redis::Client::open(url).map_err(|e| CacheError(format!("invalid redis.url: {e}")))?;
        Ok(RedisCache {
            client,
            prefix: key_prefix.to_owned(),
            manager: Arc::new(Mutex::new(None)),
        })
    }

    /// The shared connection manager, created on first use.
    fn connection(
        &self,
    ) -> impl std::future::Future<Output = Result<ConnectionManager, CacheError>> {
        let (client, slot) = (self.client.clone(), self.manager.clone());
        async move {
            let mut slot = slot.lock().await;
            if let Some(manager) = slot.as_ref() {
                return Ok(manager.clone());
            }
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(REDIS_TIMEOUT))
                .set_response_timeout(Some(REDIS_TIMEOUT))
                .set_number_of_retries(1);
            let manager = ConnectionManager::new_with_config(client, config)
                .await
                .map_err(|e| CacheError(e.to_string()))?;
            *slot = Some(manager.clone());
            Ok(manager)
        }
    }
}

impl RedisCache {
    /// `key` under this cache's prefix.
    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Runs one command on the shared connection.
    fn query<T: redis::FromRedisValue + Send + 'static>(&self, cmd: redis::Cmd) -> CacheFuture<T> {
        let connection = self.connection();
        Box::pin(async move {
            let mut conn = connection.await?;
            cmd.query_async::<T>(&mut conn).await.map_err(redis_error)
        })
    }
}

fn redis_error(e: redis::RedisError) -> CacheError {
    CacheError(e.to_string())
}

impl Cache for RedisCache {
    fn set_counters(&self, counters: Vec<(String, u64)>) -> CacheFuture<()> {
        let connection = self.connection();
        let prefix = self.prefix.clone();
        Box::pin(async move {
            if counters.is_empty() {
                return Ok(());
            }
            let mut conn = connection.await?;
            let mut pipe = redis::pipe();
            for (key, value) in &counters {
                pipe.set(format!("{prefix}{key}"), *value).ignore();
            }
            pipe.query_async::<()>(&mut conn).await.map_err(redis_error)
        })
    }

    fn get_counter(&self, key: String) -> CacheFuture<Option<u64>> {
        self.query(redis::cmd("GET").arg(self.key(&key)).clone())
    }

    fn ping(&self) -> CacheFuture<()> {
        let pong: CacheFuture<String> = self.query(redis::cmd("PING"));
        Box::pin(async move { pong.await.map(|_| ()) })
    }

    fn get_document(&self, key: String) -> CacheFuture<Option<String>> {
        self.query(redis::cmd("GET").arg(self.key(&key)).clone())
    }

    fn put_document(&self, key: String, value: String, ttl: Duration) -> CacheFuture<()> {
        let millis = ttl.as_millis().max(1) as u64;
        self.query(
            redis::cmd("SET")
                .arg(self.key(&key))
                .arg(value)
                .arg("PX")
                .arg(millis)
                .clone(),
        )
    }

    fn remove(&self, key: String) -> CacheFuture<()> {
        self.query(redis::cmd("DEL").arg(self.key(&key)).clone())
    }
}
