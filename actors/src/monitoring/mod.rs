//! Watching the router itself: a reporter that sums up every interval, and an alert evaluator with
//! the four alert rules' thresholds (`[alerts]` in `config.toml`). Both read the app's
//! [`metrics`](crate::metrics) and speak through the journal, as `metrics_report`, `system_alert`
//! and `system_alert_resolved` events of the user [`SYSTEM_USER`]: stored, published to the
//! operations topic, audited, and shown on every admin's operations feed.

mod alerts;
mod reporter;
mod window;

pub use alerts::{
    AlertBook, AlertEvaluator, AlertRule, AlertRules, Evaluate, Measure, SnapshotSource,
};
pub use reporter::{MonitoringReporter, ReportNow};
pub use window::Window;

use crate::event::{Envelope, EventData};
use crate::journal::{Append, EventJournal};
use actix::Addr;

/// The user id system events are stored under.
pub const SYSTEM_USER: &str = "system";

/// The `source` of system events.
pub const MONITORING_SOURCE: &str = "nft-event-router-monitoring";

/// Stores a system event; a failure is logged (the next interval reports again).
async fn emit(journal: Addr<EventJournal>, data: EventData) {
    let envelope = Envelope::new(SYSTEM_USER, data, MONITORING_SOURCE, None);
    match journal.send(Append { envelope }).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => log::warn!("monitoring: cannot store a system event: {e}"),
        Err(_) => log::warn!("monitoring: the journal stopped"),
    }
}
