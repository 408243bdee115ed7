//! `OperationsConsumer` (group `nft-operations-feed-group`): stores every record of the
//! operations topic in the admin operations feed, once, in the order it commits. The feed is
//! read by each router instance's [`OperationsFeed`](crate::operations_feed::OperationsFeed),
//! so admins see events accepted by any instance, whichever instance consumed them.

use super::{
    answer_each_blocking, first_answer, parse_record, Answers, Consume, ConsumeBatch, ConsumeError,
    ConsumedRecord, OperationsStore, Outcome,
};
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

impl OperationsConsumer {
    /// Stores each record in the feed, in order, on the blocking pool; tells the feed once if
    /// any was new.
    fn apply(&self, records: Vec<ConsumedRecord>) -> impl std::future::Future<Output = Answers> {
        let store = self.store.clone();
        let feed = self.stored.clone();
        let answers = answer_each_blocking(records, move |record| {
            let event = parse_record(record)?;
            // Kept as it was on the wire, so the feed sends what every other reader of the
            // topic reads.
            let raw = String::from_utf8_lossy(&record.payload);
            let stored = store.record_operation(
                &event.event_id,
                event.event_type.as_str(),
                &event.user_id,
                &raw,
            )?;
            Ok(Outcome::of(stored))
        });
        async move {
            let answers = answers.await;
            if let Some(feed) = feed {
                if answers.iter().any(|a| matches!(a, Ok(Outcome::Applied))) {
                    feed.do_send(FeedMoved { remote: false });
                }
            }
            answers
        }
    }
}

impl Handler<Consume> for OperationsConsumer {
    type Result = ResponseFuture<Result<Outcome, ConsumeError>>;

    fn handle(&mut self, msg: Consume, _: &mut Self::Context) -> Self::Result {
        let answers = self.apply(vec![msg.0]);
        Box::pin(async move { first_answer(answers.await) })
    }
}

impl Handler<ConsumeBatch> for OperationsConsumer {
    type Result = ResponseFuture<Answers>;

    fn handle(&mut self, msg: ConsumeBatch, _: &mut Self::Context) -> Self::Result {
        Box::pin(self.apply(msg.0))
    }
}
