//! `OperationsConsumer` (group `nft-operations-feed-group`): stores every record of the
//! operations topic in the admin operations feed, once, in the order it commits. The feed is
//! read by each router instance's [`OperationsFeed`](crate::operations_feed::OperationsFeed),
//! so admins see events accepted by any instance, whichever instance consumed them.

use super::{parse_record, Consume, ConsumeError, OperationsStore, Outcome};
use crate::journal::blocking;
use actix::prelude::*;
use std::sync::Arc;

pub struct OperationsConsumer {
    store: Arc<dyn OperationsStore>,
}

impl OperationsConsumer {
    pub fn new(store: Arc<dyn OperationsStore>) -> Self {
        OperationsConsumer { store }
    }
}

impl Actor for OperationsConsumer {
    type Context = Context<Self>;
}

impl Handler<Consume> for OperationsConsumer {
    type Result = ResponseFuture<Result<Outcome, ConsumeError>>;

    fn handle(&mut self, msg: Consume, _: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
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
            Ok(Outcome::of(stored))
        })
    }
}
