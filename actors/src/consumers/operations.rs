//! `OperationsConsumer` (group `nft-operations-feed-group`): stores every record of the
//! operations topic in the admin operations feed, once, in the order it commits. The feed is
//! read by each router instance's [`OperationsFeed`](crate::operations_feed::OperationsFeed),
//! so admins see events accepted by any instance, whichever instance consumed them.

use super::{parse_record, Consume, ConsumeError, OperationsStore, Outcome};
use crate::journal::blocking;
use crate::operations_feed::FeedMoved;
use actix::prelude::*;
use std::sync::Arc;

pub struct OperationsConsumer {
    store: Arc<dyn OperationsStore>,
    stored: Option<Recipient<FeedMoved>>,
}

impl OperationsConsumer {
    pub fn new(store: Arc<dyn OperationsStore>) -> Self {
        OperationsConsumer {
            store,
            stored: None,
        }
    }

    /// Tells `feed` after each new entry, so admins see it now rather than at the next poll.
    pub fn notify(mut self, feed: Recipient<FeedMoved>) -> Self {
        self.stored = Some(feed);
        self
    }
}

impl Actor for OperationsConsumer {
    type Context = Context<Self>;
}

impl Handler<Consume> for OperationsConsumer {
    type Result = ResponseFuture<Result<Outcome, ConsumeError>>;

    fn handle(&mut self, msg: Consume, _: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        let feed = self.stored.clone();
        let parsed = parse_record(&msg.0);
        // Kept as it was on the wire, so the feed sends what every other reader of the topic
        // reads.
        let raw = String::from_utf8_lossy(&msg.0.payload).into_owned();
        Box::pin(async move {
            let event = parsed?;
            let stored = blocking(move || {
                store.record_operation(
                    &event.event_id,
                    event.event_type.as_str(),
                    &event.user_id,
                    &raw,
                )
            })
            .await?;
            if let (true, Some(feed)) = (stored, feed) {
                feed.do_send(FeedMoved { remote: false });
            }
            Ok(Outcome::of(stored))
        })
    }
}
