//! Engine counters and gauges in Prometheus text form.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Counters are bumped where things happen (atomics, cheap on the hot path); gauges are
/// filled from the engine state when the text is rendered.
#[derive(Debug)]
pub(super) struct EngineMetrics {
    registry: Registry,
    pub submitted: Counter,
    pub completed: Counter,
    pub failed: Counter,
    pub redispatched: Counter,
    pub duplicate: Counter,
    pub stale: Counter,
    pub forgotten: Counter,
    pub executors_alive: Gauge,
    pub pending: Gauge,
    pub in_flight: Gauge,
    pub retained: Gauge,
    pub types_unserved: Gauge,
}

/// Gauge values sampled from the engine state.
#[derive(Debug, Clone, Copy)]
pub(super) struct GaugeSample {
    pub executors_alive: u64,
    pub pending: u64,
    pub in_flight: u64,
    pub retained: u64,
    pub types_unserved: u64,
}

impl EngineMetrics {
    pub(super) fn new() -> Self {
        let mut registry = Registry::default();
        let submitted = Counter::default();
        let completed = Counter::default();
        let failed = Counter::default();
        let redispatched = Counter::default();
        let duplicate = Counter::default();
        let stale = Counter::default();
        let forgotten = Counter::default();
        let executors_alive = Gauge::default();
        let pending = Gauge::default();
        let in_flight = Gauge::default();
        let retained = Gauge::default();
        let types_unserved = Gauge::default();
        // prometheus-client appends `_total` to counter names.
        registry.register(
            "gamelan_engine_tasks_submitted",
            "Tasks accepted by the engine",
            submitted.clone(),
        );
        registry.register(
            "gamelan_engine_tasks_completed",
            "Tasks finished COMPLETED",
            completed.clone(),
        );
        registry.register(
            "gamelan_engine_tasks_failed",
            "Tasks finished FAILED for good",
            failed.clone(),
        );
        registry.register(
            "gamelan_engine_tasks_redispatched",
            "Attempts taken back from an executor (stream closed, executor dead, ack timeout, release)",
            redispatched.clone(),
        );
        registry.register(
            "gamelan_engine_results_duplicate",
            "Results answered ALREADY_PROCESSED",
            duplicate.clone(),
        );
        registry.register(
            "gamelan_engine_results_stale",
            "Results answered STALE (an older attempt)",
            stale.clone(),
        );
        registry.register(
            "gamelan_engine_tasks_forgotten",
            "Finished tasks dropped by retention (age or count)",
            forgotten.clone(),
        );
        registry.register(
            "gamelan_engine_executors_alive",
            "Registered executors with a recent heartbeat",
            executors_alive.clone(),
        );
        registry.register(
            "gamelan_engine_tasks_pending",
            "Tasks queued or waiting for a retry delay",
            pending.clone(),
        );
        registry.register(
            "gamelan_engine_tasks_in_flight",
            "Tasks assigned to an executor without a result yet",
            in_flight.clone(),
        );
        registry.register(
            "gamelan_engine_tasks_retained",
            "Finished tasks still queryable",
            retained.clone(),
        );
        registry.register(
            "gamelan_engine_types_unserved",
            "Node types with queued tasks and no live executor that handles them",
            types_unserved.clone(),
        );
        Self {
            registry,
            submitted,
            completed,
            failed,
            redispatched,
            duplicate,
            stale,
            forgotten,
            executors_alive,
            pending,
            in_flight,
            retained,
            types_unserved,
        }
    }

    pub(super) fn render(&self, sample: GaugeSample) -> String {
        self.executors_alive
            .set(i64::try_from(sample.executors_alive).unwrap_or(i64::MAX));
        self.pending
            .set(i64::try_from(sample.pending).unwrap_or(i64::MAX));
        self.in_flight
            .set(i64::try_from(sample.in_flight).unwrap_or(i64::MAX));
        self.retained
            .set(i64::try_from(sample.retained).unwrap_or(i64::MAX));
        self.types_unserved
            .set(i64::try_from(sample.types_unserved).unwrap_or(i64::MAX));
        let mut out = String::with_capacity(2048);
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_series_with_prometheus_names() {
        let m = EngineMetrics::new();
        m.submitted.inc_by(3);
        m.stale.inc();
        let text = m.render(GaugeSample {
            executors_alive: 2,
            pending: 5,
            in_flight: 1,
            retained: 4,
            types_unserved: 1,
        });
        for line in [
            "gamelan_engine_tasks_submitted_total 3",
            "gamelan_engine_tasks_completed_total 0",
            "gamelan_engine_tasks_failed_total 0",
            "gamelan_engine_tasks_redispatched_total 0",
            "gamelan_engine_results_duplicate_total 0",
            "gamelan_engine_results_stale_total 1",
            "gamelan_engine_executors_alive 2",
            "gamelan_engine_tasks_pending 5",
            "gamelan_engine_tasks_in_flight 1",
            "gamelan_engine_tasks_forgotten_total 0",
            "gamelan_engine_tasks_retained 4",
            "gamelan_engine_types_unserved 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
    }
}
