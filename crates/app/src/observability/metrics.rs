//! The seed's runtime metrics in Prometheus form, labelled by executor type:
//! `executor_tasks_total`, `executor_tasks_completed_total`, `executor_tasks_failed_total`
//! (counters carry the `_total` suffix Prometheus requires), `executor_tasks_duration`
//! (histogram, seconds), `executor_registry_size` and `executor_queue_size`.

use std::time::Duration;

use gamelan_ports::{MetricsSink, TaskOutcome};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabel {
    executor_type: String,
}

/// Handles resolved once per executor type, so the hot path is a few atomic adds.
struct PerType {
    name: String,
    total: Counter,
    completed: Counter,
    failed: Counter,
    duration: Histogram,
    queue: Gauge,
}

pub struct RuntimeMetrics {
    registry: Registry,
    per_type: Vec<PerType>,
    registry_size: Gauge,
    fallback: PerTypeFamilies,
}

struct PerTypeFamilies {
    total: Family<TypeLabel, Counter>,
    completed: Family<TypeLabel, Counter>,
    failed: Family<TypeLabel, Counter>,
    duration: Family<TypeLabel, Histogram>,
    queue: Family<TypeLabel, Gauge>,
}

fn new_histogram() -> Histogram {
    // 50 us .. ~7 min: noop tasks and long-running ones both land in a useful bucket.
    Histogram::new(exponential_buckets(0.000_05, 2.5, 18))
}

impl RuntimeMetrics {
    pub fn new<'a>(executor_types: impl IntoIterator<Item = &'a str>) -> Self {
        let mut registry = Registry::default();
        let f = PerTypeFamilies {
            total: Family::default(),
            completed: Family::default(),
            failed: Family::default(),
            duration: Family::new_with_constructor(new_histogram),
            queue: Family::default(),
        };
        registry.register("executor_tasks", "Tasks received", f.total.clone());
        registry.register(
            "executor_tasks_completed",
            "Tasks completed successfully",
            f.completed.clone(),
        );
        registry.register(
            "executor_tasks_failed",
            "Tasks that ended FAILED",
            f.failed.clone(),
        );
        registry.register(
            "executor_tasks_duration",
            "Task execution time in seconds, admission to result",
            f.duration.clone(),
        );
        registry.register(
            "executor_queue_size",
            "Tasks admitted and waiting for a worker",
            f.queue.clone(),
        );
        let registry_size = Gauge::default();
        registry.register(
            "executor_registry_size",
            "Executors registered in this runtime",
            registry_size.clone(),
        );
        let per_type = executor_types
            .into_iter()
            .map(|t| {
                let l = TypeLabel {
                    executor_type: t.to_owned(),
                };
                PerType {
                    name: t.to_owned(),
                    total: f.total.get_or_create(&l).clone(),
                    completed: f.completed.get_or_create(&l).clone(),
                    failed: f.failed.get_or_create(&l).clone(),
                    duration: f.duration.get_or_create(&l).clone(),
                    queue: f.queue.get_or_create(&l).clone(),
                }
            })
            .collect();
        Self {
            registry,
            per_type,
            registry_size,
            fallback: f,
        }
    }

    fn with_type(&self, executor_type: &str, f: impl FnOnce(&PerType)) {
        if let Some(p) = self.per_type.iter().find(|p| p.name == executor_type) {
            f(p);
        } else {
            // A type not hosted here (e.g. NO_EXECUTOR results): resolve through the family.
            let l = TypeLabel {
                executor_type: executor_type.to_owned(),
            };
            let p = PerType {
                name: executor_type.to_owned(),
                total: self.fallback.total.get_or_create(&l).clone(),
                completed: self.fallback.completed.get_or_create(&l).clone(),
                failed: self.fallback.failed.get_or_create(&l).clone(),
                duration: self.fallback.duration.get_or_create(&l).clone(),
                queue: self.fallback.queue.get_or_create(&l).clone(),
            };
            f(&p);
        }
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(4096);
        if let Err(e) = encode(&mut out, &self.registry) {
            log::error!(target: "gamelan.executor.error", "encoding metrics failed: {e}");
        }
        out
    }
}

impl MetricsSink for RuntimeMetrics {
    fn task_received(&self, executor_type: &str) {
        self.with_type(executor_type, |p| {
            p.total.inc();
        });
    }

    fn task_finished(&self, executor_type: &str, outcome: TaskOutcome, duration: Duration) {
        self.with_type(executor_type, |p| {
            match outcome {
                TaskOutcome::Completed => p.completed.inc(),
                TaskOutcome::Failed => p.failed.inc(),
            };
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
