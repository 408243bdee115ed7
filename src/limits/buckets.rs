//! Token buckets keyed by who asks (a service, an address, a user), in this process or, on a
//! Redis cluster, shared by every instance.
//!
//! Both sides run the same algorithm (GCRA, the token bucket as one timestamp per key):
//! in-process through `governor`, on Redis as a Lua script over the server's clock, so that
//! the instances agree on "now". A Redis that does not answer degrades to the local bucket
//! (each instance then allows the configured rate on its own), as the stream leases do: an
//! outage must not refuse every request.

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use redis::aio::ConnectionManager;
use std::num::NonZeroU32;
use std::time::Duration;

/// A rate: `per_sec` tokens a second, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_sec: f64,
    pub burst: NonZeroU32,
}

/// Takes one token per call, or says how long until one is there.
pub struct Buckets {
    /// Names the buckets in Redis keys and log lines.
    name: &'static str,
    rate: Rate,
    local: DefaultKeyedRateLimiter<String>,
    shared: Option<Shared>,
}

struct Shared {
    conn: ConnectionManager,
    prefix: String,
    script: redis::Script,
}

/// One GCRA step on the key's theoretical arrival time (TAT, microseconds of the Redis
/// clock): allowed when the TAT after this request is at most `burst` intervals ahead of now.
/// Returns 0 when allowed, else the microseconds until a token is there.
const TAKE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local ahead = new_tat - now
if ahead > interval * burst then
  return math.ceil(ahead - interval * burst)
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil(ahead / 1000) + 1)
return 0
";

impl Buckets {
    /// `None` when `rate` allows everything (a rate of 0 is "no limit").
    pub fn new(name: &'static str, rate: Rate) -> Option<Buckets> {
        if rate.per_sec <= 0.0 {
            return None;
        }
        let quota = Quota::with_period(Duration::from_secs_f64(1.0 / rate.per_sec))?
            .allow_burst(rate.burst);
        Some(Buckets {
            name,
            rate,
            local: RateLimiter::keyed(quota),
            shared: None,
        })
    }

    /// Shares the buckets through Redis under `prefix`.
    pub fn shared(mut self, conn: ConnectionManager, prefix: &str) -> Buckets {
        self.shared = Some(Shared {
            conn,
            prefix: format!("{prefix}rate:{}:", self.name),
            script: redis::Script::new(TAKE),
        });
        self
    }

    /// Takes a token for `key`: `Err(wait)` when the bucket is empty.
    pub async fn take(&self, key: &str) -> Result<(), Duration> {
        if let Some(shared) = &self.shared {
            let interval = (1_000_000.0 / self.rate.per_sec).max(1.0);
            let mut conn = shared.conn.clone();
            let taken: redis::RedisResult<i64> = shared
                .script
                .key(format!("{}{key}", shared.prefix))
                .arg(interval)
                .arg(self.rate.burst.get())
                .invoke_async(&mut conn)
                .await;
            match taken {
                Ok(0) => return Ok(()),
                Ok(wait_us) => return Err(Duration::from_micros(wait_us.unsigned_abs())),
                Err(e) => log::warn!("the {} rate limit is local for now: {e}", self.name),
            }
        }
        self.local
            .check_key(&key.to_owned())
            .map_err(|not_until| not_until.wait_time_from(self.local.clock().now()))
    }

    /// Forgets keys whose buckets are full again, so the map holds only recent askers.
    pub fn forget_idle(&self) {
        self.local.retain_recent();
        self.local.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(per_sec: f64, burst: u32) -> Rate {
        Rate {
            per_sec,
            burst: NonZeroU32::new(burst).expect("non-zero"),
        }
    }

    #[actix_web::test]
    async fn a_burst_is_allowed_then_the_rate_with_a_wait_for_the_rest() {
        let buckets = Buckets::new("test", rate(1.0, 3)).expect("limited");
        for _ in 0..3 {
            assert_eq!(buckets.take("a").await, Ok(()));
        }
        let wait = buckets.take("a").await.expect_err("empty");
        assert!(wait > Duration::from_millis(500) && wait <= Duration::from_secs(1));
        assert_eq!(buckets.take("b").await, Ok(()), "keys are separate");
    }

    #[test]
    fn a_zero_rate_is_no_limit() {
        assert!(Buckets::new("test", rate(0.0, 1)).is_none());
    }
}
