//! The live bus on Redis pub/sub: one channel per user, subscribed only while this instance
//! holds sessions of that user, plus one channel for the operations feed.
//!
//! Publishing never waits: the journal's commit path puts each message on a bounded queue that
//! one task drains into pipelined `PUBLISH`es on a multiplexed connection. A full queue or a
//! failed pipeline drops messages, which only delays their events (the sweep finds them).
//! Receiving runs on a dedicated pub/sub connection. When it is lost, the task reconnects
//! with back-off, subscribes to every watched user again, and asks for a sweep of all of them,
//! since anything published in between was missed.

use super::ClusterError;
use actix::Recipient;
use actors::bus::{BusMessage, BusStatus, LiveBus};
use actors::operations_feed::FeedMoved;
use actors::outbox::RelayNow;
use actors::registry::Publish;
use actors::sweeper::SweepNow;
use actors::{EventType, Frame};
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, PubSubSink};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Messages waiting to be published; past this the bus drops rather than grow.
const PUBLISH_QUEUE: usize = 65_536;
/// Most `PUBLISH`es in one pipeline.
const PUBLISH_BATCH: usize = 256;
/// Channels per `SUBSCRIBE` when re-subscribing after a reconnect.
const SUBSCRIBE_CHUNK: usize = 1_000;
/// A subscriber connection that does not answer a ping this long is taken as lost.
const PING_EVERY: Duration = Duration::from_secs(5);
const PING_TIMEOUT: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Where received messages go: user events to the session registry, feed news to the
/// operations feed, outbox news to the relay, reconnects and fresh subscriptions to the
/// sweeper.
pub struct Inbound {
    pub events: Recipient<Publish>,
    pub feed: Recipient<FeedMoved>,
    pub outbox: Recipient<RelayNow>,
    pub sweep: Recipient<SweepNow>,
}

enum Watch {
    Add(Arc<str>),
    Remove(Arc<str>),
}

#[derive(Default)]
struct State {
    connected: AtomicBool,
    watched: AtomicUsize,
    published: AtomicU64,
    dropped: AtomicU64,
    received: AtomicU64,
    reconnects: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl State {
    fn failed(&self, error: String) {
        self.connected.store(false, Ordering::Relaxed);
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(error);
        }
    }

    fn up(&self) {
        self.connected.store(true, Ordering::Relaxed);
        if let Ok(mut last) = self.last_error.lock() {
            *last = None;
        }
    }
}

/// The channel names of one deployment (`redis.key_prefix` keeps deployments apart).
#[derive(Clone)]
struct Channels {
    user_prefix: String,
    feed: String,
    outbox: String,
}

impl Channels {
    fn new(prefix: &str) -> Self {
        Channels {
            user_prefix: format!("{prefix}nftr:user:"),
            feed: format!("{prefix}nftr:feed"),
            outbox: format!("{prefix}nftr:outbox"),
        }
    }

    fn user(&self, user_id: &str) -> String {
        format!("{}{user_id}", self.user_prefix)
    }
}

pub struct RedisBus {
    instance: Arc<str>,
    channels: Channels,
    outgoing: mpsc::Sender<(String, String)>,
    watch: mpsc::UnboundedSender<Watch>,
    state: Arc<State>,
    /// Taken by [`RedisBus::start`].
    pending: Mutex<Option<Pending>>,
}

struct Pending {
    client: redis::Client,
    publisher: ConnectionManager,
    outgoing: mpsc::Receiver<(String, String)>,
    watch: mpsc::UnboundedReceiver<Watch>,
}

impl RedisBus {
    /// A bus over `client`; `publisher` is the shared multiplexed connection. Nothing runs
    /// until [`RedisBus::start`].
    pub fn new(
        client: redis::Client,
        publisher: ConnectionManager,
        prefix: &str,
        instance: Arc<str>,
    ) -> Self {
        let (out_tx, out_rx) = mpsc::channel(PUBLISH_QUEUE);
        let (watch_tx, watch_rx) = mpsc::unbounded_channel();
        RedisBus {
            instance,
            channels: Channels::new(prefix),
            outgoing: out_tx,
            watch: watch_tx,
            state: Arc::new(State::default()),
            pending: Mutex::new(Some(Pending {
                client,
                publisher,
                outgoing: out_rx,
                watch: watch_rx,
            })),
        }
    }

    /// Starts the publisher and subscriber tasks on the current actix/tokio runtime.
    pub fn start(&self, inbound: Inbound) -> Result<(), ClusterError> {
        let pending = self
            .pending
            .lock()
            .map_err(|_| ClusterError::Start("bus state poisoned".into()))?
            .take()
            .ok_or_else(|| ClusterError::Start("the bus was started twice".into()))?;
        actix::spawn(publish_loop(
            pending.publisher,
            pending.outgoing,
            self.state.clone(),
        ));
        actix::spawn(
            Subscriber {
                client: pending.client,
                instance: self.instance.clone(),
                channels: self.channels.clone(),
                watch: pending.watch,
                watched: HashSet::new(),
                state: self.state.clone(),
                inbound,
            }
            .run(),
        );
        Ok(())
    }

    fn enqueue(&self, channel: String, payload: String) {
        if self.outgoing.try_send((channel, payload)).is_err() {
            self.state.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl LiveBus for RedisBus {
    fn publish(&self, message: BusMessage) {
        match message {
            BusMessage::UserEvent {
                user_id,
                seq,
                event_type,
                envelope_json,
            } => self.enqueue(
                self.channels.user(&user_id),
                encode_event(&self.instance, seq, event_type, &envelope_json),
            ),
            BusMessage::FeedMoved => {
                self.enqueue(self.channels.feed.clone(), self.instance.to_string())
            }
            BusMessage::OutboxMoved => {
                self.enqueue(self.channels.outbox.clone(), self.instance.to_string())
            }
        }
    }

    fn watch(&self, user_id: &str) {
        let _ = self.watch.send(Watch::Add(Arc::from(user_id)));
    }

    fn unwatch(&self, user_id: &str) {
        let _ = self.watch.send(Watch::Remove(Arc::from(user_id)));
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn status(&self) -> BusStatus {
        let s = &self.state;
        BusStatus {
            backend: "redis",
            connected: s.connected.load(Ordering::Relaxed),
            watched_users: s.watched.load(Ordering::Relaxed),
            published: s.published.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            received: s.received.load(Ordering::Relaxed),
            reconnects: s.reconnects.load(Ordering::Relaxed),
            last_error: s.last_error.lock().ok().and_then(|e| e.clone()),
        }
    }
}

/// `instance \n seq \n event_type \n envelope`: the envelope is compact JSON (one line), the
/// other fields never hold a newline (instance ids are validated at start-up).
fn encode_event(instance: &str, seq: u64, event_type: EventType, envelope: &str) -> String {
    let mut out = String::with_capacity(instance.len() + envelope.len() + 48);
    out.push_str(instance);
    out.push('\n');
    out.push_str(&seq.to_string());
    out.push('\n');
    out.push_str(event_type.as_str());
    out.push('\n');
    out.push_str(envelope);
    out
}

/// A received user event: who sent it and its frame.
#[derive(Debug, PartialEq, Eq)]
struct Received<'a> {
    instance: &'a str,
    seq: u64,
    event_type: EventType,
    envelope: &'a str,
}

fn decode_event(payload: &str) -> Option<Received<'_>> {
    let mut parts = payload.splitn(4, '\n');
    let instance = parts.next()?;
    let seq = parts.next()?.parse().ok()?;
    let event_type = parts.next()?.parse().ok()?;
    let envelope = parts.next()?;
    Some(Received {
        instance,
        seq,
        event_type,
        envelope,
    })
}

async fn publish_loop(
    mut conn: ConnectionManager,
    mut outgoing: mpsc::Receiver<(String, String)>,
    state: Arc<State>,
) {
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    while outgoing.recv_many(&mut batch, PUBLISH_BATCH).await > 0 {
        let mut pipe = redis::pipe();
        for (channel, payload) in &batch {
            pipe.cmd("PUBLISH").arg(channel).arg(payload).ignore();
        }
        let n = batch.len() as u64;
        match pipe.query_async::<()>(&mut conn).await {
            Ok(()) => state.published.fetch_add(n, Ordering::Relaxed),
            Err(e) => {
                log::debug!("bus: {n} messages not published: {e}");
                state.dropped.fetch_add(n, Ordering::Relaxed)
            }
        };
        batch.clear();
    }
}

struct Subscriber {
    client: redis::Client,
    instance: Arc<str>,
    channels: Channels,
    watch: mpsc::UnboundedReceiver<Watch>,
    /// Users whose channels this instance wants, whether or not the connection is up.
    watched: HashSet<Arc<str>>,
    state: Arc<State>,
    inbound: Inbound,
}

impl Subscriber {
    async fn run(mut self) {
        let mut backoff = MIN_BACKOFF;
        let mut first = true;
        loop {
            // Changes asked for while disconnected apply before subscribing again.
            while let Ok(change) = self.watch.try_recv() {
                self.apply(change);
            }
            match self.connect().await {
                Ok((sink, stream)) => {
                    backoff = MIN_BACKOFF;
                    self.state.up();
                    if first {
                        log::info!("live bus connected ({} users watched)", self.watched.len());
                    } else {
                        self.state.reconnects.fetch_add(1, Ordering::Relaxed);
                        log::warn!(
                            "live bus reconnected: catching up {} users from the store",
                            self.watched.len()
                        );
                        self.inbound.sweep.do_send(SweepNow(None));
                        self.inbound.feed.do_send(FeedMoved { remote: true });
                    }
                    first = false;
                    let why = self.serve(sink, stream).await;
                    log::warn!("live bus connection lost: {why}; local streams go on");
                    self.state.failed(why);
                }
                Err(e) => {
                    log::debug!("live bus: cannot connect: {e}");
                    self.state.failed(e);
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn apply(&mut self, change: Watch) -> Option<(bool, Arc<str>)> {
        let effect = match change {
            Watch::Add(user) => self.watched.insert(user.clone()).then_some((true, user)),
            Watch::Remove(user) => self.watched.remove(&user).then_some((false, user)),
        };
        self.state
            .watched
            .store(self.watched.len(), Ordering::Relaxed);
        effect
    }

    /// A pub/sub connection subscribed to the feed and every watched user.
    async fn connect(&self) -> Result<(PubSubSink, redis::aio::PubSubStream), String> {
        let pubsub = tokio::time::timeout(CONNECT_TIMEOUT, self.client.get_async_pubsub())
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        let (mut sink, stream) = pubsub.split();
        let mut channels = vec![self.channels.feed.clone(), self.channels.outbox.clone()];
        channels.extend(self.watched.iter().map(|u| self.channels.user(u)));
        for chunk in channels.chunks(SUBSCRIBE_CHUNK) {
            sink.subscribe(chunk).await.map_err(|e| e.to_string())?;
        }
        Ok((sink, stream))
    }

    /// Receives until the connection is lost; returns why.
    async fn serve(
        &mut self,
        mut sink: PubSubSink,
        mut stream: redis::aio::PubSubStream,
    ) -> String {
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.reset();
        loop {
            tokio::select! {
                message = stream.next() => match message {
                    Some(message) => self.receive(&message),
                    None => return "the server closed it".to_owned(),
                },
                change = self.watch.recv() => {
                    let Some(change) = change else { return "the router is stopping".to_owned() };
                    if let Err(e) = self.change_subscriptions(&mut sink, change).await {
                        return e;
                    }
                }
                _ = ping.tick() => {
                    // A subscribed connection answers PING with `["pong", ""]`, not `PONG`:
                    // any answer will do.
                    match tokio::time::timeout(PING_TIMEOUT, sink.ping::<redis::Value>()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return e.to_string(),
                        Err(_) => return "no answer to a ping".to_owned(),
                    }
                }
            }
        }
    }

    /// Applies `first` and every other change already queued, with one `SUBSCRIBE` and one
    /// `UNSUBSCRIBE`; the users newly subscribed are swept, since events stored before their
    /// subscription took effect were not received.
    async fn change_subscriptions(
        &mut self,
        sink: &mut PubSubSink,
        first: Watch,
    ) -> Result<(), String> {
        let mut added: Vec<Arc<str>> = Vec::new();
        let mut removed: Vec<Arc<str>> = Vec::new();
        let mut next = Some(first);
        while let Some(change) = next.take().or_else(|| self.watch.try_recv().ok()) {
            match self.apply(change) {
                Some((true, user)) => {
                    removed.retain(|u| u != &user);
                    added.push(user);
                }
                Some((false, user)) => {
                    added.retain(|u| u != &user);
                    removed.push(user);
                }
                None => {}
            }
        }
        if !added.is_empty() {
            let channels: Vec<String> = added.iter().map(|u| self.channels.user(u)).collect();
            sink.subscribe(&channels).await.map_err(|e| e.to_string())?;
            self.inbound.sweep.do_send(SweepNow(Some(added)));
        }
        if !removed.is_empty() {
            let channels: Vec<String> = removed.iter().map(|u| self.channels.user(u)).collect();
            sink.unsubscribe(&channels)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn receive(&self, message: &redis::Msg) {
        let channel = message.get_channel_name();
        let Ok(payload) = std::str::from_utf8(message.get_payload_bytes()) else {
            return;
        };
        if channel == self.channels.feed {
            if payload != &*self.instance {
                self.state.received.fetch_add(1, Ordering::Relaxed);
                self.inbound.feed.do_send(FeedMoved { remote: true });
            }
            return;
        }
        if channel == self.channels.outbox {
            if payload != &*self.instance {
                self.state.received.fetch_add(1, Ordering::Relaxed);
                self.inbound.outbox.do_send(RelayNow::Elsewhere);
            }
            return;
        }
        let Some(user_id) = channel.strip_prefix(&self.channels.user_prefix) else {
            return;
        };
        let Some(event) = decode_event(payload) else {
            log::warn!("live bus: a malformed message on {channel} was ignored");
            return;
        };
        if event.instance == &*self.instance {
            return;
        }
        self.state.received.fetch_add(1, Ordering::Relaxed);
        let frame = Frame::stored(event.seq, &event.event_type.into(), event.envelope);
        self.inbound.events.do_send(Publish {
            user_id: user_id.to_owned(),
            frame,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_message_round_trips() {
        let json = r#"{"eventId":"e1","data":{"note":"a\nb"}}"#;
        let payload = encode_event("nftr-1", 42, EventType::BadgeEarned, json);
        assert_eq!(
            decode_event(&payload),
            Some(Received {
                instance: "nftr-1",
                seq: 42,
                event_type: EventType::BadgeEarned,
                envelope: json,
            })
        );
    }

    #[test]
    fn malformed_messages_are_refused() {
        for bad in [
            "",
            "i",
            "i\nx\nbadge_earned\n{}",
            "i\n1\nno_such_type\n{}",
            "i\n1\n",
        ] {
            assert_eq!(decode_event(bad), None, "{bad:?}");
        }
    }
}
