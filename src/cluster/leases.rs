//! The per-user stream limit across instances: each open stream holds a lease in a Redis
//! sorted set per user (member = instance and slot, score = expiry on Redis's own clock).
//!
//! Taking a slot is one Lua script: drop the expired members, count, add if below the limit,
//! so fifty simultaneous connects spread over any number of instances admit exactly the limit.
//! Each instance renews its leases every third of their lifetime; the slots of an instance that
//! dies expire on their own within `cluster.lease_secs`. A stream that ends gives its slot back
//! at once: the [`Lease`] the supervisor holds sends the release when dropped.

use actors::supervisor::Lease;
use redis::aio::ConnectionManager;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// KEYS[1]: the user's lease set; ARGV: member, limit, lease in ms. 1 if admitted.
const ACQUIRE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
";

/// KEYS: lease sets; ARGV[1]: lease in ms, ARGV[1 + i]: the member in KEYS[i]. Extends only
/// members that still exist (`XX`): a slot that already expired is not brought back.
const RENEW: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', now + lease, ARGV[i + 1])
  redis.call('PEXPIRE', key, lease)
end
return #KEYS
";

/// Leases renewed per script call.
const RENEW_CHUNK: usize = 500;

/// Why a slot could not be decided; the caller admits on the local limit alone.
#[derive(Debug, thiserror::Error)]
#[error("connection leases unavailable: {0}")]
pub struct LeaseError(String);

#[derive(Clone)]
struct Held {
    key: String,
    member: String,
}

/// Cluster-wide connection slots.
pub struct Leases {
    conn: ConnectionManager,
    prefix: String,
    instance: Arc<str>,
    lease: Duration,
    next: AtomicU64,
    held: Arc<Mutex<HashMap<u64, Held>>>,
    release: mpsc::UnboundedSender<Held>,
    acquire: redis::Script,
}

/// Gives its slot back when dropped.
struct SlotGuard {
    id: u64,
    held: Arc<Mutex<HashMap<u64, Held>>>,
    release: mpsc::UnboundedSender<Held>,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let held = self.held.lock().ok().and_then(|mut h| h.remove(&self.id));
        if let Some(held) = held {
            let _ = self.release.send(held);
        }
    }
}

impl Leases {
    /// Starts the renew-and-release task on the current runtime.
    pub fn start(
        conn: ConnectionManager,
        prefix: &str,
        instance: Arc<str>,
        lease: Duration,
    ) -> Arc<Leases> {
        let (release_tx, release_rx) = mpsc::unbounded_channel();
        let leases = Arc::new(Leases {
            conn: conn.clone(),
            prefix: prefix.to_owned(),
            instance,
            lease,
            next: AtomicU64::new(1),
            held: Arc::new(Mutex::new(HashMap::new())),
            release: release_tx,
            acquire: redis::Script::new(ACQUIRE),
        });
        actix::spawn(keep(conn, leases.held.clone(), release_rx, lease));
        leases
    }

    /// Takes one of `user_id`'s `limit` slots: `Ok(None)` when all are held (anywhere).
    pub async fn acquire(&self, user_id: &str, limit: usize) -> Result<Option<Lease>, LeaseError> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let held = Held {
            key: format!("{}nftr:conn:{user_id}", self.prefix),
            member: format!("{}:{id}", self.instance),
        };
        let mut conn = self.conn.clone();
        let admitted: i64 = self
            .acquire
            .key(&held.key)
            .arg(&held.member)
            .arg(limit)
            .arg(self.lease.as_millis() as u64)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| LeaseError(e.to_string()))?;
        if admitted != 1 {
            return Ok(None);
        }
        if let Ok(mut map) = self.held.lock() {
            map.insert(id, held);
        }
        Ok(Some(Lease::new(SlotGuard {
            id,
            held: self.held.clone(),
            release: self.release.clone(),
        })))
    }

    /// Slots this instance holds now.
    pub fn held(&self) -> usize {
        self.held.lock().map(|h| h.len()).unwrap_or(0)
    }
}

/// Releases slots as their streams end and renews the rest every third of a lease.
async fn keep(
    mut conn: ConnectionManager,
    held: Arc<Mutex<HashMap<u64, Held>>>,
    mut release: mpsc::UnboundedReceiver<Held>,
    lease: Duration,
) {
    let renew_script = redis::Script::new(RENEW);
    let mut renew = tokio::time::interval(lease / 3);
    renew.reset();
    let mut batch = Vec::new();
    loop {
        tokio::select! {
            n = release.recv_many(&mut batch, 256) => {
                if n == 0 {
                    return;
                }
                let mut pipe = redis::pipe();
                for slot in &batch {
                    pipe.cmd("ZREM").arg(&slot.key).arg(&slot.member).ignore();
                }
                if let Err(e) = pipe.query_async::<()>(&mut conn).await {
                    // The lease expires on its own within one lifetime.
                    log::debug!("leases: {n} releases not sent: {e}");
                }
                batch.clear();
            }
            _ = renew.tick() => {
                let all: Vec<Held> = held.lock().map(|h| h.values().cloned().collect()).unwrap_or_default();
                for chunk in all.chunks(RENEW_CHUNK) {
                    let mut call = renew_script.prepare_invoke();
                    call.arg(lease.as_millis() as u64);
                    for slot in chunk {
                        call.key(&slot.key).arg(&slot.member);
                    }
                    if let Err(e) = call.invoke_async::<i64>(&mut conn).await {
                        log::warn!("leases: cannot renew {} slots: {e}", chunk.len());
                        break;
                    }
                }
            }
        }
    }
}
