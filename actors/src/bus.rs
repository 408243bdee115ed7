//! The live bus: how an event stored by one router instance reaches the sessions that other
//! instances hold.
//!
//! The bus is a fast path and never the truth. Every user event it carries has its cursor, so
//! a session that sees a jump fills the gap from the store before writing on, and a periodic
//! sweep ([`HeadSweeper`](crate::sweeper::HeadSweeper)) compares the store's heads with what
//! each supervisor saw, which catches the last event of a burst whose message was dropped. A
//! message the bus loses therefore delays an event; it never loses one.
//!
//! The port is fire-and-forget on purpose: publishing runs on the journal's commit path and
//! must never wait on the network. [`NoBus`] is the single-instance bus: nothing leaves the
//! process, and everything is delivered in-process as before.

use crate::event::EventType;
use std::sync::Arc;

/// What one instance tells the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusMessage {
    /// A user event as stored: its cursor, its type (sessions that hide the type still advance
    /// their cursor past it) and the envelope exactly as stored.
    UserEvent {
        user_id: Arc<str>,
        seq: u64,
        event_type: EventType,
        envelope_json: Arc<str>,
    },
    /// The operations feed has new entries: each instance's tailer reads them now.
    FeedMoved,
    /// An instance that does not hold the relay turn stored events: the holder relays now
    /// instead of at its next poll.
    OutboxMoved,
}

/// How the bus is doing, for readiness and the admin pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusStatus {
    /// `none` (one instance) or the engine's name.
    pub backend: &'static str,
    /// The subscriber connection is up (always true for [`NoBus`]).
    pub connected: bool,
    /// Users whose channel this instance is subscribed to.
    pub watched_users: usize,
    /// Messages published since start.
    pub published: u64,
    /// Messages that could not be published (queue full or engine down); the sweep delivers
    /// their events instead.
    pub dropped: u64,
    /// Messages received from other instances.
    pub received: u64,
    /// Times the subscriber connection was re-established.
    pub reconnects: u64,
    /// The last failure, cleared when the connection is back.
    pub last_error: Option<String>,
}

/// The live bus between router instances.
pub trait LiveBus: Send + Sync + 'static {
    /// Sends `message` to the other instances, without waiting.
    fn publish(&self, message: BusMessage);
    /// This instance now holds sessions of `user_id`: receive that user's events.
    fn watch(&self, user_id: &str);
    /// This instance holds no more sessions of `user_id`.
    fn unwatch(&self, user_id: &str);
    /// Whether other instances exist to tell: without a bus, the sweep has nothing to catch.
    fn is_shared(&self) -> bool;
    fn status(&self) -> BusStatus;
}

/// One instance alone: nothing to publish, nothing to receive.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoBus;

impl LiveBus for NoBus {
    fn publish(&self, _: BusMessage) {}
    fn watch(&self, _: &str) {}
    fn unwatch(&self, _: &str) {}
    fn is_shared(&self) -> bool {
        false
    }
    fn status(&self) -> BusStatus {
        BusStatus {
            backend: "none",
            connected: true,
            watched_users: 0,
            published: 0,
            dropped: 0,
            received: 0,
            reconnects: 0,
            last_error: None,
        }
    }
}
