//! One outbox relay per cluster: the instance holding the Redis key `nftr:relay` publishes the
//! shared outbox to Kafka, the others stand by.
//!
//! Every instance reads the same outbox. Were all of them to relay it, each unpublished row
//! would go to Kafka once per instance and a user's records could interleave between relays.
//! So the turn is a lease: the holder renews it every third of `cluster.lease_secs`; when the
//! holder stops cleanly it gives the key back at once, and when it dies the key expires and
//! the next instance to ask takes it. Standby relays pass their commits to the holder over the
//! bus ([`BusMessage::OutboxMoved`](actors::bus::BusMessage::OutboxMoved)).
//!
//! While Redis cannot be reached, every instance keeps the turn it had: the holder goes on
//! relaying (a Redis outage must not stop the Kafka path) and nobody else starts. Only a holder
//! cut off from Redis for longer than the lease, while another instance reaches it, makes two
//! relays for a while; their duplicates carry the same `eventId`, which every consumer already
//! deduplicates.

use actix::Recipient;
use actors::outbox::{RelayNow, RelayTurn};
use redis::aio::ConnectionManager;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// KEYS[1]: the turn; ARGV: this instance, lease in ms. 1 while this instance holds it.
const CLAIM: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
";

/// KEYS[1]: the turn; ARGV[1]: this instance. Deletes the key only if this instance holds it.
const GIVE_BACK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// This instance's claim on the relay turn.
pub struct RelayClaim {
    conn: ConnectionManager,
    key: String,
    instance: Arc<str>,
    lease: Duration,
    turn: RelayTurn,
    stop: watch::Sender<bool>,
}

impl RelayClaim {
    pub fn new(
        conn: ConnectionManager,
        prefix: &str,
        instance: Arc<str>,
        lease: Duration,
    ) -> Arc<RelayClaim> {
        Arc::new(RelayClaim {
            conn,
            key: format!("{prefix}nftr:relay"),
            instance,
            lease,
            turn: RelayTurn::contested(),
            stop: watch::channel(false).0,
        })
    }

    /// The flag the relay reads before each pass.
    pub fn turn(&self) -> RelayTurn {
        self.turn.clone()
    }

    /// Claims and renews the turn until [`RelayClaim::give_back`]; `relay` is told when this
    /// instance wins it, so the backlog the last holder left goes out at once.
    pub fn keep_claiming(self: Arc<Self>, relay: Recipient<RelayNow>) {
        let mut stop = self.stop.subscribe();
        actix::spawn(async move {
            let script = redis::Script::new(CLAIM);
            let period = self.lease / 3;
            loop {
                let mut conn = self.conn.clone();
                let claimed: Result<i64, _> = script
                    .key(&self.key)
                    .arg(&*self.instance)
                    .arg(millis(self.lease))
                    .invoke_async(&mut conn)
                    .await;
                match claimed {
                    Ok(held) => {
                        let held = held == 1;
                        if self.turn.set(held) {
                            if held {
                                log::info!("this instance now relays the outbox to Kafka");
                                relay.do_send(RelayNow::Elsewhere);
                            } else {
                                log::info!("another instance relays the outbox to Kafka");
                            }
                        }
                    }
                    Err(e) => log::debug!("relay turn not renewed (kept as it was): {e}"),
                }
                tokio::select! {
                    _ = stop.changed() => break,
                    () = tokio::time::sleep(period) => {}
                }
            }
        });
    }

    /// Stops claiming and gives the turn back, so another instance takes it within one of its
    /// claim periods instead of after the lease.
    pub async fn give_back(&self) {
        let _ = self.stop.send(true);
        if !self.turn.set(false) {
            return;
        }
        let mut conn = self.conn.clone();
        let given: Result<i64, _> = redis::Script::new(GIVE_BACK)
            .key(&self.key)
            .arg(&*self.instance)
            .invoke_async(&mut conn)
            .await;
        if let Err(e) = given {
            log::warn!("cannot give the relay turn back (it expires on its own): {e}");
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
