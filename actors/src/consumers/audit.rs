//! `AuditConsumer` (group `nft-audit-group`): the append-only audit log of the operations topic.

use super::{
    answer_each_blocking, first_answer, parse_record, Answers, AuditStore, Consume, ConsumeBatch,
    ConsumeError, ConsumedRecord, NewAuditEntry, Outcome,
};
use actix::prelude::*;
use std::sync::Arc;

pub struct AuditConsumer {
    store: Arc<dyn AuditStore>,
}

impl AuditConsumer {
    pub fn new(store: Arc<dyn AuditStore>) -> Self {
        AuditConsumer { store }
    }
}

impl Actor for AuditConsumer {
    type Context = Context<Self>;
}

impl AuditConsumer {
    /// Appends each record's entry, in order, on the blocking pool.
    fn apply(&self, records: Vec<ConsumedRecord>) -> impl std::future::Future<Output = Answers> {
        let store = self.store.clone();
        answer_each_blocking(records, move |record| {
            let event = parse_record(record)?;
            let entry = NewAuditEntry {
                event_id: event.event_id,
                event_type: event.event_type.as_str().to_owned(),
                user_id: event.user_id,
                source: event.source,
                correlation_id: event.correlation_id,
                // Stored verbatim: the audit log keeps what was on the wire, not a re-encoding.
                envelope_json: String::from_utf8_lossy(&record.payload).into_owned(),
                occurred_at: event.timestamp,
                recorded_at: chrono::Utc::now(),
            };
            Ok(Outcome::of(store.append_audit(&entry)?))
        })
    }
}

impl Handler<Consume> for AuditConsumer {
    type Result = ResponseFuture<Result<Outcome, ConsumeError>>;

    fn handle(&mut self, msg: Consume, _: &mut Self::Context) -> Self::Result {
        let answers = self.apply(vec![msg.0]);
        Box::pin(async move { first_answer(answers.await) })
    }
}

impl Handler<ConsumeBatch> for AuditConsumer {
    type Result = ResponseFuture<Answers>;

    fn handle(&mut self, msg: ConsumeBatch, _: &mut Self::Context) -> Self::Result {
        Box::pin(self.apply(msg.0))
    }
}
