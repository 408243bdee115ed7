//! Tunables of the SSE streams, handed to the registry once and shared by its supervisors and
//! sessions.

use crate::frame::Frame;
use crate::EventType;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Sessions one user may hold at once (3 by default).
    pub max_connections_per_user: usize,
    /// Frames a session may have queued and unwritten before it is closed as too slow.
    pub session_queue: usize,
    /// Interval of the heartbeat frame.
    pub heartbeat: Duration,
    /// The `retry:` hint sent once per stream.
    pub retry: Duration,
    /// Event types these streams do not carry, live or replayed (the SSE column of the routing
    /// table, docs/KAFKA.md: `nft_minted` and `nft_burned` are for admins, not for the user's
    /// own stream). Their cursors are skipped, so ids on a stream may jump; resuming still
    /// works.
    pub hidden_types: Vec<EventType>,
}

impl StreamConfig {
    /// The one rule for what these streams write, live or replayed: every frame but a stored
    /// event of a hidden type. (A type this build does not know is shown: it is the user's.)
    pub fn shows(&self, frame: &Frame) -> bool {
        self.shows_type(frame.event_type())
    }

    /// The same rule for a stored event of this type (`None`: a type this build does not
    /// know), for the paths that serve events without framing them (polling).
    pub fn shows_type(&self, event_type: Option<EventType>) -> bool {
        event_type.is_none_or(|t| !self.hidden_types.contains(&t))
    }
}

/// The numbers of the shipped `config.toml` (a test there holds them equal), with every event
/// type shown: what an embedding or a test gets without a configuration file.
impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            max_connections_per_user: 3,
            session_queue: 256,
            heartbeat: Duration::from_secs(30),
            retry: Duration::from_secs(3),
            hidden_types: Vec::new(),
        }
    }
}

/// The smallest queue that still holds a stream's opening frames (welcome, retry) plus one
/// event.
pub const MIN_SESSION_QUEUE: usize = 4;
