//! Publishes events at a fixed rate, over a small pool of keep-alive connections, and counts
//! what the server accepted for each user: through the router's `POST /api/v1/events`, or
//! in the publish dialect of nchan or Pushpin ([`TargetKind`]).
//!
//! Event `i` goes to user `i % users`. Its data carries the send time in microseconds since
//! the UNIX epoch (`previousVolume`: an f64 field, exact for such integers) and `i`
//! (`currentVolume`), read back by the subscribers. The peers keep no per-user journal, so
//! their events also carry the user's own sequence number, `lgSeq` = `i / users + 1`, which
//! the subscribers check in place of the router's cursor.

use crate::probe::Clock;
use crate::scenario::TargetKind;
use anyhow::Context;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How one request can take longer than this only when the server is in trouble.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What to publish and where.
#[derive(Debug, Clone)]
pub struct PublishPlan {
    pub kind: TargetKind,
    /// Full URL of the publish endpoint, per user (the same for every user but nchan's).
    pub endpoints: Arc<[String]>,
    /// A `service` token.
    pub token: String,
    /// Every user's id, already JSON-encoded (quoted and escaped).
    pub user_ids_json: Arc<[String]>,
    pub rate: f64,
    pub duration: Duration,
    pub max_events: Option<u64>,
    /// Requests in flight at most.
    pub concurrency: usize,
}

/// Counters the progress line reads while publishing goes on.
#[derive(Debug, Default)]
pub struct PublishCounters {
    pub attempted: AtomicU64,
    pub accepted: AtomicU64,
}

/// What publishing did.
#[derive(Debug, Clone, Default)]
pub struct PublishOutcome {
    pub attempted: u64,
    pub accepted: u64,
    /// Accepted (202) events per user index.
    pub accepted_per_user: Vec<u64>,
    /// The index of every accepted event, in the order the answers came: what the Kafka path
    /// must have carried (a request that failed may still have been stored).
    pub accepted_indexes: Vec<u64>,
    /// Failed requests by cause (`HTTP 503`, `timeout`, …).
    pub failures: BTreeMap<String, u64>,
    /// From the first scheduled send to the last answer.
    pub elapsed: Duration,
    /// How far behind its schedule a send started, at worst (all requests in flight).
    pub max_lag: Duration,
}

/// The publish body of event `index` for the user whose JSON-encoded id is `user_json`.
pub fn event_body(user_json: &str, index: u64, sent_us: u64) -> String {
    format!(
        r#"{{"eventType":"volume_milestone_reached","userId":{user_json},"data":{{"previousVolume":{sent_us},"currentVolume":{index},"milestone":100000,"tierUnlocked":1}}}}"#
    )
}

/// The data of event `index` for a peer: what the subscribers read, plus the per-user
/// sequence number `seq`.
pub fn peer_event_data(seq: u64, index: u64, sent_us: u64) -> String {
    format!(r#"{{"lgSeq":{seq},"previousVolume":{sent_us},"currentVolume":{index}}}"#)
}

/// The request body that publishes event `index` to `users` users in `kind`'s dialect.
fn publish_body(
    kind: TargetKind,
    user_json: &str,
    users: usize,
    index: u64,
    sent_us: u64,
) -> String {
    let seq = index / users as u64 + 1;
    match kind {
        TargetKind::Router => event_body(user_json, index, sent_us),
        TargetKind::Nchan => peer_event_data(seq, index, sent_us),
        TargetKind::Pushpin => {
            let frame = format!(
                "id: {seq}\ndata: {}\n\n",
                peer_event_data(seq, index, sent_us)
            );
            let content = serde_json::to_string(&frame).unwrap_or_default();
            format!(
                r#"{{"items":[{{"channel":{user_json},"formats":{{"http-stream":{{"content":{content}}}}}}}]}}"#
            )
        }
    }
}

/// Publishes until `plan.duration` has passed or `plan.max_events` were sent, then waits for
/// the answers still outstanding.
pub async fn publish(
    plan: PublishPlan,
    clock: Clock,
    counters: Arc<PublishCounters>,
) -> anyhow::Result<PublishOutcome> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(plan.concurrency)
        .no_proxy()
        .tcp_nodelay(true)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .context("building the publish HTTP client")?;
    let users = plan.user_ids_json.len();
    let auth = format!("Bearer {}", plan.token);
    let permits = Arc::new(Semaphore::new(plan.concurrency));
    let mut outcome = PublishOutcome {
        accepted_per_user: vec![0; users],
        ..PublishOutcome::default()
    };
    let mut in_flight = JoinSet::new();
    let start = Instant::now();
    let end = start + plan.duration;
    for index in 0u64.. {
        if plan.max_events.is_some_and(|max| index >= max) {
            break;
        }
        let due = start + Duration::from_secs_f64(index as f64 / plan.rate);
        if due >= end {
            break;
        }
        tokio::time::sleep_until(due).await;
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .context("publish permits closed")?;
        outcome.max_lag = outcome
            .max_lag
            .max(Instant::now().saturating_duration_since(due));
        let user = (index % users as u64) as usize;
        let request = client
            .post(&plan.endpoints[user])
            .header(reqwest::header::AUTHORIZATION, &auth)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        let user_json = plan.user_ids_json[user].clone();
        let kind = plan.kind;
        counters.attempted.fetch_add(1, Ordering::Relaxed);
        in_flight.spawn(async move {
            let _permit = permit;
            let body = publish_body(kind, &user_json, users, index, clock.now_us());
            (user, index, send(kind, request.body(body)).await)
        });
        while let Some(done) = in_flight.try_join_next() {
            tally(&mut outcome, &counters, done);
        }
    }
    while let Some(done) = in_flight.join_next().await {
        tally(&mut outcome, &counters, done);
    }
    outcome.elapsed = start.elapsed();
    Ok(outcome)
}

/// Sends one request and reads its answer to the end (so its connection can be reused). The
/// router accepts with 202; nchan answers 201 or 202, Pushpin 200.
async fn send(kind: TargetKind, request: reqwest::RequestBuilder) -> Result<(), String> {
    let response = request.send().await.map_err(|e| error_label(&e))?;
    let status = response.status();
    response.bytes().await.map_err(|e| error_label(&e))?;
    let accepted = match kind {
        TargetKind::Router => status == reqwest::StatusCode::ACCEPTED,
        TargetKind::Nchan | TargetKind::Pushpin => status.is_success(),
    };
    if accepted {
        Ok(())
    } else {
        Err(format!("HTTP {}", status.as_u16()))
    }
}

fn error_label(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".to_owned()
    } else if e.is_connect() {
        "connect".to_owned()
    } else {
        "request".to_owned()
    }
}

fn tally(
    outcome: &mut PublishOutcome,
    counters: &PublishCounters,
    done: Result<(usize, u64, Result<(), String>), tokio::task::JoinError>,
) {
    outcome.attempted += 1;
    match done {
        Ok((user, index, Ok(()))) => {
            outcome.accepted += 1;
            outcome.accepted_per_user[user] += 1;
            outcome.accepted_indexes.push(index);
            counters.accepted.fetch_add(1, Ordering::Relaxed);
        }
        Ok((_, _, Err(label))) => *outcome.failures.entry(label).or_default() += 1,
        Err(_) => {
            *outcome
                .failures
                .entry("task failed".to_owned())
                .or_default() += 1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_a_valid_volume_milestone_event() {
        let user = serde_json::to_string("u\"1").expect("json");
        let body: serde_json::Value =
            serde_json::from_str(&event_body(&user, 7, 1_780_000_000_000_123)).expect("json");
        assert_eq!(body["eventType"], "volume_milestone_reached");
        assert_eq!(body["userId"], "u\"1");
        assert_eq!(body["data"]["currentVolume"], 7);
        let sent = body["data"]["previousVolume"].as_f64().expect("number");
        assert_eq!(sent as u64, 1_780_000_000_000_123, "exact as an f64");
    }

    #[test]
    fn a_pushpin_item_carries_an_sse_frame_with_the_user_sequence() {
        let user = serde_json::to_string("lg-3").expect("json");
        let body = publish_body(TargetKind::Pushpin, &user, 10, 23, 5);
        let body: serde_json::Value = serde_json::from_str(&body).expect("json");
        let item = &body["items"][0];
        assert_eq!(item["channel"], "lg-3");
        assert_eq!(
            item["formats"]["http-stream"]["content"],
            "id: 3\ndata: {\"lgSeq\":3,\"previousVolume\":5,\"currentVolume\":23}\n\n"
        );
        let nchan = publish_body(TargetKind::Nchan, &user, 10, 3, 5);
        assert_eq!(nchan, r#"{"lgSeq":1,"previousVolume":5,"currentVolume":3}"#);
    }
}
