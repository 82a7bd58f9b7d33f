//! Engine counters and gauges in the Prometheus text format (0.0.4), which `promtool check
//! metrics` and every Prometheus server read; counters carry the `_total` suffix in their
//! family name, as that format requires.

use prometheus::core::Collector;
use prometheus::{Encoder, IntCounter, IntGauge, Registry, TextEncoder};

/// Counters are bumped where things happen (atomics, cheap on the hot path); gauges are
/// filled from the engine state when the text is rendered.
#[derive(Debug)]
pub(super) struct EngineMetrics {
    registry: Registry,
    pub submitted: IntCounter,
    pub completed: IntCounter,
    pub failed: IntCounter,
    pub redispatched: IntCounter,
    pub duplicate: IntCounter,
    pub stale: IntCounter,
    pub forgotten: IntCounter,
    pub executors_alive: IntGauge,
    pub pending: IntGauge,
    pub in_flight: IntGauge,
    pub retained: IntGauge,
    pub types_unserved: IntGauge,
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

/// Registers one metric. The names are constants checked by the unit test below, so a
/// failure is a programming error, never an input or network condition.
fn registered<M: Collector + Clone + 'static>(
    registry: &Registry,
    metric: prometheus::Result<M>,
) -> M {
    let metric = metric.expect("constant metric definitions are valid");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

impl EngineMetrics {
    pub(super) fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| registered(&registry, IntCounter::new(name, help));
        let gauge = |name: &str, help: &str| registered(&registry, IntGauge::new(name, help));
        Self {
            submitted: counter(
                "gamelan_engine_tasks_submitted_total",
                "Tasks accepted by the engine",
            ),
            completed: counter(
                "gamelan_engine_tasks_completed_total",
                "Tasks finished COMPLETED",
            ),
            failed: counter(
                "gamelan_engine_tasks_failed_total",
                "Tasks finished FAILED for good",
            ),
            redispatched: counter(
                "gamelan_engine_tasks_redispatched_total",
                "Attempts taken back from an executor (stream closed, executor dead, ack timeout, release)",
            ),
            duplicate: counter(
                "gamelan_engine_results_duplicate_total",
                "Results answered ALREADY_PROCESSED",
            ),
            stale: counter(
                "gamelan_engine_results_stale_total",
                "Results answered STALE (an older attempt)",
            ),
            forgotten: counter(
                "gamelan_engine_tasks_forgotten_total",
                "Finished tasks dropped by retention (age or count)",
            ),
            executors_alive: gauge(
                "gamelan_engine_executors_alive",
                "Registered executors with a recent heartbeat",
            ),
            pending: gauge(
                "gamelan_engine_tasks_pending",
                "Tasks queued or waiting for a retry delay",
            ),
            in_flight: gauge(
                "gamelan_engine_tasks_in_flight",
                "Tasks assigned to an executor without a result yet",
            ),
            retained: gauge(
                "gamelan_engine_tasks_retained",
                "Finished tasks still queryable",
            ),
            types_unserved: gauge(
                "gamelan_engine_types_unserved",
                "Node types with queued tasks and no live executor that handles them",
            ),
            registry,
        }
    }

    pub(super) fn render(&self, sample: GaugeSample) -> String {
        let set = |g: &IntGauge, v: u64| g.set(i64::try_from(v).unwrap_or(i64::MAX));
        set(&self.executors_alive, sample.executors_alive);
        set(&self.pending, sample.pending);
        set(&self.in_flight, sample.in_flight);
        set(&self.retained, sample.retained);
        set(&self.types_unserved, sample.types_unserved);
        let mut out = Vec::with_capacity(2048);
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            log::error!(target: "gamelan.engine", "cannot render metrics: {e}");
        }
        String::from_utf8(out).unwrap_or_default()
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
