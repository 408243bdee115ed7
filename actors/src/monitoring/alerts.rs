//! `AlertEvaluator`: the four alert rules as an actor. Every interval it compares the interval's
//! figures with each rule's threshold; a rule whose figure goes above raises one `system_alert`,
//! and resolves with one `system_alert_resolved` only after its figure has been back within the
//! threshold for `clear_after` evaluations in a row, so a figure hovering at the threshold does not
//! flood the feed.

use super::{emit, Window};
use crate::event::{EventData, SystemAlert};
use crate::journal::EventJournal;
use crate::metrics::MetricsSnapshot;
use actix::prelude::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which figure of a [`Window`] a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    SseErrorRatePercent,
    MaxConsumerLag,
    AvgProcessingMs,
    OpenConnections,
}

impl Measure {
    fn of(self, w: &Window) -> f64 {
        match self {
            Measure::SseErrorRatePercent => w.sse_error_rate_percent(),
            Measure::MaxConsumerLag => w.max_consumer_lag as f64,
            Measure::AvgProcessingMs => w.avg_processing_ms,
            Measure::OpenConnections => w.open_connections as f64,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AlertRule {
    /// `sseConnectionErrors`, `kafkaLag`, `eventProcessingDelay` or `sseConnectionLimit`.
    pub name: String,
    pub severity: String,
    pub threshold: f64,
    pub measure: Measure,
}

/// The rule set and its timing.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRules {
    pub rules: Vec<AlertRule>,
    pub interval: Duration,
    /// Evaluations within the threshold, in a row, before a raised alert resolves.
    pub clear_after: u32,
}

impl AlertRules {
    /// The four alert rules with the given thresholds.
    pub fn seed(
        sse_error_rate_percent: f64,
        consumer_lag: f64,
        avg_processing_ms: f64,
        active_connections: f64,
        interval: Duration,
        clear_after: u32,
    ) -> AlertRules {
        let rule = |name: &str, severity: &str, threshold: f64, measure| AlertRule {
            name: name.to_owned(),
            severity: severity.to_owned(),
            threshold,
            measure,
        };
        AlertRules {
            rules: vec![
                rule(
                    "sseConnectionErrors",
                    "warning",
                    sse_error_rate_percent,
                    Measure::SseErrorRatePercent,
                ),
                rule(
                    "kafkaLag",
                    "critical",
                    consumer_lag,
                    Measure::MaxConsumerLag,
                ),
                rule(
                    "eventProcessingDelay",
                    "warning",
                    avg_processing_ms,
                    Measure::AvgProcessingMs,
                ),
                rule(
                    "sseConnectionLimit",
                    "info",
                    active_connections,
                    Measure::OpenConnections,
                ),
            ],
            interval,
            clear_after,
        }
    }
}

/// Where each rule stands.
#[derive(Debug, Clone, Default)]
struct RuleState {
    raised: bool,
    /// Evaluations in a row within the threshold while raised.
    calm: u32,
}

/// The decisions, without an actor: what to emit for one window.
#[derive(Debug, Clone)]
pub struct AlertBook {
    rules: AlertRules,
    states: Vec<RuleState>,
}

impl AlertBook {
    pub fn new(rules: AlertRules) -> Self {
        let states = vec![RuleState::default(); rules.rules.len()];
        AlertBook { rules, states }
    }

    /// The events this window causes: at most one per rule.
    pub fn evaluate(&mut self, window: &Window) -> Vec<EventData> {
        let mut out = Vec::new();
        for (rule, state) in self.rules.rules.iter().zip(self.states.iter_mut()) {
            let value = rule.measure.of(window);
            let alert = || SystemAlert {
                name: rule.name.clone(),
                severity: rule.severity.clone(),
                threshold: rule.threshold,
                value,
            };
            if value > rule.threshold {
                state.calm = 0;
                if !state.raised {
                    state.raised = true;
                    out.push(EventData::SystemAlert(alert()));
                }
            } else if state.raised {
                state.calm += 1;
                if state.calm >= self.rules.clear_after.max(1) {
                    state.raised = false;
                    state.calm = 0;
                    out.push(EventData::SystemAlertResolved(alert()));
                }
            }
        }
        out
    }

    /// Names of the alerts raised now.
    pub fn active(&self) -> Vec<String> {
        self.rules
            .rules
            .iter()
            .zip(&self.states)
            .filter(|(_, s)| s.raised)
            .map(|(r, _)| r.name.clone())
            .collect()
    }
}

/// Where snapshots come from: the app's metrics, or a test's figures.
pub type SnapshotSource = Arc<dyn Fn() -> MetricsSnapshot + Send + Sync>;

/// Evaluate now (besides the interval); answers the events emitted.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Vec<EventData>")]
pub struct Evaluate;

pub struct AlertEvaluator {
    book: AlertBook,
    source: SnapshotSource,
    journal: Addr<EventJournal>,
    last: (MetricsSnapshot, Instant),
}

impl AlertEvaluator {
    pub fn new(rules: AlertRules, source: SnapshotSource, journal: Addr<EventJournal>) -> Self {
        let first = source();
        AlertEvaluator {
            book: AlertBook::new(rules),
            source,
            journal,
            last: (first, Instant::now()),
        }
    }

    fn evaluate(&mut self, ctx: &mut Context<Self>) -> Vec<EventData> {
        let now = ((self.source)(), Instant::now());
        let secs = now.1.duration_since(self.last.1).as_secs();
        let window = Window::between(&self.last.0, &now.0, secs);
        self.last = now;
        let events = self.book.evaluate(&window);
        for data in &events {
            if let EventData::SystemAlert(a) | EventData::SystemAlertResolved(a) = data {
                log::warn!(
                    "{} {}: {} (threshold {})",
                    data.event_type(),
                    a.name,
                    a.value,
                    a.threshold
                );
            }
            ctx.spawn(emit(self.journal.clone(), data.clone()).into_actor(self));
        }
        events
    }
}

impl Actor for AlertEvaluator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.book.rules.interval, |evaluator, ctx| {
            evaluator.evaluate(ctx);
        });
    }
}

impl Handler<Evaluate> for AlertEvaluator {
    type Result = MessageResult<Evaluate>;

    fn handle(&mut self, _: Evaluate, ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.evaluate(ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connections(n: u64) -> Window {
        Window {
            open_connections: n,
            ..Window::default()
        }
    }

    #[test]
    fn one_alert_when_crossed_and_one_resolution_after_a_calm_spell() {
        let mut book = AlertBook::new(AlertRules::seed(
            5.0,
            1000.0,
            500.0,
            3.0,
            Duration::from_secs(1),
            2,
        ));
        assert!(book.evaluate(&connections(2)).is_empty());
        let raised = book.evaluate(&connections(5));
        assert!(
            matches!(&raised[..], [EventData::SystemAlert(a)] if a.name == "sseConnectionLimit" && a.value == 5.0)
        );
        assert!(book.evaluate(&connections(6)).is_empty(), "raised once");
        assert!(
            book.evaluate(&connections(1)).is_empty(),
            "one calm evaluation"
        );
        assert!(
            book.evaluate(&connections(4)).is_empty(),
            "back above: still raised"
        );
        assert_eq!(book.active(), vec!["sseConnectionLimit".to_owned()]);
        assert!(book.evaluate(&connections(1)).is_empty());
        let resolved = book.evaluate(&connections(0));
        assert!(matches!(&resolved[..], [EventData::SystemAlertResolved(a)] if a.value == 0.0));
        assert!(book.active().is_empty());
        assert!(book.evaluate(&connections(0)).is_empty(), "resolved once");
    }
}
