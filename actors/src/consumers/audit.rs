//! `AuditConsumer` (group `nft-audit-group`): the append-only audit log of the operations topic.

use super::{parse_record, AuditStore, Consume, ConsumeError, NewAuditEntry, Outcome};
use crate::journal::blocking;
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

impl Handler<Consume> for AuditConsumer {
    type Result = ResponseFuture<Result<Outcome, ConsumeError>>;

    fn handle(&mut self, msg: Consume, _: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        let parsed = parse_record(&msg.0);
        // Stored verbatim: the audit log keeps what was on the wire, not a re-encoding.
        let raw = String::from_utf8_lossy(&msg.0.payload).into_owned();
        Box::pin(async move {
            let event = parsed?;
            let entry = NewAuditEntry {
                event_id: event.event_id,
                event_type: event.event_type.as_str().to_owned(),
                user_id: event.user_id,
                source: event.source,
                correlation_id: event.correlation_id,
                envelope_json: raw,
                occurred_at: event.timestamp,
                recorded_at: chrono::Utc::now(),
            };
            let appended = blocking(move || store.append_audit(&entry)).await?;
            Ok(Outcome::of(appended))
        })
    }
}
