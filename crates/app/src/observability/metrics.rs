//! The seed's runtime metrics in Prometheus form, labelled by executor type:
//! `executor_tasks_total`, `executor_tasks_completed_total`, `executor_tasks_failed_total`
//! (counters carry the `_total` suffix Prometheus requires), `executor_tasks_duration`
//! (histogram, seconds), `executor_registry_size` and `executor_queue_size`.
//!
//! Served in the Prometheus text format (0.0.4), which `promtool check metrics` and every
//! Prometheus server read.

use std::time::Duration;

use gamelan_ports::{MetricsSink, TaskOutcome};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder, exponential_buckets,
};

/// Handles resolved once per executor type, so the hot path is a few atomic adds.
struct PerType {
    name: String,
    total: IntCounter,
    completed: IntCounter,
    failed: IntCounter,
    duration: Histogram,
    queue: IntGauge,
}

struct Families {
    total: IntCounterVec,
    completed: IntCounterVec,
    failed: IntCounterVec,
    duration: HistogramVec,
    queue: IntGaugeVec,
}

pub struct RuntimeMetrics {
    registry: Registry,
    families: Families,
    per_type: Vec<PerType>,
    registry_size: IntGauge,
}

const LABEL: &[&str] = &["executor_type"];

impl Families {
    fn new() -> Result<Self, prometheus::Error> {
        // 50 us .. ~7 min: noop tasks and long-running ones both land in a useful bucket.
        let buckets = exponential_buckets(0.000_05, 2.5, 18)?;
        Ok(Self {
            total: IntCounterVec::new(Opts::new("executor_tasks_total", "Tasks received"), LABEL)?,
            completed: IntCounterVec::new(
                Opts::new(
                    "executor_tasks_completed_total",
                    "Tasks completed successfully",
                ),
                LABEL,
            )?,
            failed: IntCounterVec::new(
                Opts::new("executor_tasks_failed_total", "Tasks that ended FAILED"),
                LABEL,
            )?,
            duration: HistogramVec::new(
                HistogramOpts::new(
                    "executor_tasks_duration",
                    "Task execution time in seconds, admission to result",
                )
                .buckets(buckets),
                LABEL,
            )?,
            queue: IntGaugeVec::new(
                Opts::new(
                    "executor_queue_size",
                    "Tasks admitted and waiting for a worker",
                ),
                LABEL,
            )?,
        })
    }

    fn per_type(&self, name: &str) -> PerType {
        let l = &[name];
        PerType {
            name: name.to_owned(),
            total: self.total.with_label_values(l),
            completed: self.completed.with_label_values(l),
            failed: self.failed.with_label_values(l),
            duration: self.duration.with_label_values(l),
            queue: self.queue.with_label_values(l),
        }
    }

    fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.total.clone()))?;
        registry.register(Box::new(self.completed.clone()))?;
        registry.register(Box::new(self.failed.clone()))?;
        registry.register(Box::new(self.duration.clone()))?;
        registry.register(Box::new(self.queue.clone()))?;
        Ok(())
    }
}

impl RuntimeMetrics {
    /// Builds the metric set. The names and buckets are constants checked by the unit test
    /// below, so failing here is a programming error, never an input or network condition.
    pub fn new<'a>(executor_types: impl IntoIterator<Item = &'a str>) -> Self {
        let registry = Registry::new();
        let families = Families::new().expect("constant metric definitions are valid");
        families
            .register(&registry)
            .expect("metric names are unique");
        let registry_size = IntGauge::new(
            "executor_registry_size",
            "Executors registered in this runtime",
        )
        .expect("constant metric definition is valid");
        registry
            .register(Box::new(registry_size.clone()))
            .expect("metric names are unique");
        let per_type = executor_types
            .into_iter()
            .map(|t| families.per_type(t))
            .collect();
        Self {
            registry,
            families,
            per_type,
            registry_size,
        }
    }

    fn with_type(&self, executor_type: &str, f: impl FnOnce(&PerType)) {
        if let Some(p) = self.per_type.iter().find(|p| p.name == executor_type) {
            f(p);
        } else {
            // A type not hosted here (e.g. NO_EXECUTOR results): resolve through the family.
            f(&self.families.per_type(executor_type));
        }
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = Vec::with_capacity(4096);
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            log::error!(target: "gamelan.executor.error", "encoding metrics failed: {e}");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

impl MetricsSink for RuntimeMetrics {
    fn task_received(&self, executor_type: &str) {
        self.with_type(executor_type, |p| p.total.inc());
    }

    fn task_finished(&self, executor_type: &str, outcome: TaskOutcome, duration: Duration) {
        self.with_type(executor_type, |p| {
            match outcome {
                TaskOutcome::Completed => p.completed.inc(),
                TaskOutcome::Failed => p.failed.inc(),
            }
            p.duration.observe(duration.as_secs_f64());
        });
    }

    fn queue_size(&self, executor_type: &str, size: usize) {
        self.with_type(executor_type, |p| {
            p.queue.set(i64::try_from(size).unwrap_or(i64::MAX));
        });
    }

    fn registry_size(&self, size: usize) {
        self.registry_size
            .set(i64::try_from(size).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_the_seed_metric_names_per_type() {
        let m = RuntimeMetrics::new(["calculate-tax", "echo"]);
        m.task_received("calculate-tax");
        m.task_finished(
            "calculate-tax",
            TaskOutcome::Completed,
            Duration::from_millis(2),
        );
        m.task_received("echo");
        m.task_finished("echo", TaskOutcome::Failed, Duration::from_millis(1));
        m.queue_size("echo", 7);
        m.registry_size(2);
        let text = m.encode();
        for needle in [
            "executor_tasks_total{executor_type=\"calculate-tax\"} 1",
            "executor_tasks_completed_total{executor_type=\"calculate-tax\"} 1",
            "executor_tasks_failed_total{executor_type=\"echo\"} 1",
            "executor_tasks_duration_count{executor_type=\"echo\"} 1",
            "executor_queue_size{executor_type=\"echo\"} 7",
            "executor_registry_size 2",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
