//! Tunables of the SSE streams, handed to the registry once and shared by its supervisors and
//! sessions.

use crate::EventType;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Sessions one user may hold at once (the seed's limit is 3).
    pub max_connections_per_user: usize,
    /// Frames a session may have queued and unwritten before it is closed as too slow.
    pub session_queue: usize,
    /// Interval of the seed's heartbeat frame.
    pub heartbeat: Duration,
    /// The `retry:` hint sent once per stream.
    pub retry: Duration,
    /// Event types these streams do not carry, live or replayed (DESIGN §5's SSE column:
    /// `nft_minted` and `nft_burned` are for admins, not for the user's own stream). Their
    /// cursors are skipped, so ids on a stream may jump; resuming still works.
    pub hidden_types: Vec<EventType>,
}

impl StreamConfig {
    pub fn shows(&self, event_type: EventType) -> bool {
        !self.hidden_types.contains(&event_type)
    }
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            max_connections_per_user: 3,
            session_queue: 64,
            heartbeat: Duration::from_secs(30),
            retry: Duration::from_secs(3),
            hidden_types: Vec::new(),
        }
    }
}

/// The smallest queue that still holds a stream's opening frames (welcome, retry) plus one
/// event.
pub const MIN_SESSION_QUEUE: usize = 4;
