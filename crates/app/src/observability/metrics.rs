//! The runtime metrics of the Java Gamelan executor runtime, named as its Micrometer
//! Prometheus registry exports them, so dashboards and alerts written for it keep working.
//! Labelled by executor type:
//!
//! | Micrometer meter | kind | Prometheus series |
//! |---|---|---|
//! | `executor.tasks.total` | counter | `executor_tasks_total` |
//! | `executor.tasks.completed` | counter | `executor_tasks_completed_total` |
//! | `executor.tasks.failed` | counter | `executor_tasks_failed_total` |
//! | `executor.tasks.duration` | timer | `executor_tasks_duration_seconds_{count,sum,bucket}`, `executor_tasks_duration_seconds_max` |
//! | `executor.registry.size` | gauge | `executor_registry_size` |
//! | `executor.queue.size` | gauge | `executor_queue_size` |
//!
//! Micrometer's convention: dots become underscores, counters end in `_total`, timers are in
//! the base unit seconds (`_seconds`) with a histogram and a separate `_max` gauge (the
//! largest sample of the last two minutes), gauges keep their name.
//!
//! Served in the Prometheus text format 0.0.4 ([`CONTENT_TYPE`]), which every Prometheus
//! server reads and `promtool check metrics` checks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::window_max::{DEFAULT_BUFFER_LENGTH, DEFAULT_EXPIRY, WindowMax};

use gamelan_ports::{MetricsSink, TaskOutcome};
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder, exponential_buckets,
};

/// The `Content-Type` of [`RuntimeMetrics::encode`]'s text (and of the engine's metrics):
/// the Prometheus text format 0.0.4. A Prometheus server picks its parser from this header,
/// so it must name the format the body is in.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The timer `executor.tasks.duration` in Micrometer's Prometheus naming.
const DURATION: &str = "executor_tasks_duration_seconds";

/// Handles resolved once per executor type, so the hot path is a few atomic adds.
struct PerType {
    name: String,
    total: IntCounter,
    completed: IntCounter,
    failed: IntCounter,
    duration: Histogram,
    max: Gauge,
    window: Arc<WindowMax>,
    queue: IntGauge,
}

struct Families {
    total: IntCounterVec,
    completed: IntCounterVec,
    failed: IntCounterVec,
    duration: HistogramVec,
    max: GaugeVec,
    queue: IntGaugeVec,
}

pub struct RuntimeMetrics {
    registry: Registry,
    families: Families,
    per_type: Vec<PerType>,
    /// Types not hosted here that still got results (e.g. NO_EXECUTOR), with their windows.
    others: Mutex<HashMap<String, Arc<WindowMax>>>,
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
                HistogramOpts::new(DURATION, "Task execution time, admission to result")
                    .buckets(buckets),
                LABEL,
            )?,
            max: GaugeVec::new(
                Opts::new(
                    format!("{DURATION}_max"),
                    "Longest task execution time of the last two minutes",
                ),
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

    fn per_type(&self, name: &str, window: Arc<WindowMax>) -> PerType {
        let l = &[name];
        PerType {
            name: name.to_owned(),
            total: self.total.with_label_values(l),
            completed: self.completed.with_label_values(l),
            failed: self.failed.with_label_values(l),
            duration: self.duration.with_label_values(l),
            max: self.max.with_label_values(l),
            window,
            queue: self.queue.with_label_values(l),
        }
    }

    fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.total.clone()))?;
        registry.register(Box::new(self.completed.clone()))?;
        registry.register(Box::new(self.failed.clone()))?;
        registry.register(Box::new(self.duration.clone()))?;
        registry.register(Box::new(self.max.clone()))?;
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
            .map(|t| families.per_type(t, new_window()))
            .collect();
        Self {
            registry,
            families,
            per_type,
            others: Mutex::new(HashMap::new()),
            registry_size,
        }
    }

    fn with_type(&self, executor_type: &str, f: impl FnOnce(&PerType)) {
        if let Some(p) = self.per_type.iter().find(|p| p.name == executor_type) {
            f(p);
        } else {
            // A type not hosted here (e.g. NO_EXECUTOR results): resolve through the family.
            let window = Arc::clone(
                self.lock_others()
                    .entry(executor_type.to_owned())
                    .or_insert_with(new_window),
            );
            f(&self.families.per_type(executor_type, window));
        }
    }

    fn lock_others(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<WindowMax>>> {
        self.others.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Prometheus text exposition (format 0.0.4, see [`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let now = Instant::now();
        for p in &self.per_type {
            p.max.set(p.window.get(now));
        }
        for (name, window) in self.lock_others().iter() {
            self.families
                .max
                .with_label_values(&[name.as_str()])
                .set(window.get(now));
        }
        let mut out = Vec::with_capacity(4096);
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            log::error!(target: "gamelan.executor.error", "encoding metrics failed: {e}");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

fn new_window() -> Arc<WindowMax> {
    Arc::new(WindowMax::new(
        DEFAULT_EXPIRY,
        DEFAULT_BUFFER_LENGTH,
        Instant::now(),
    ))
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
            let secs = duration.as_secs_f64();
            p.duration.observe(secs);
            p.window.record(secs, Instant::now());
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
    fn exposes_the_java_metric_names_per_type() {
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
            "executor_tasks_duration_seconds_count{executor_type=\"echo\"} 1",
            "executor_tasks_duration_seconds_sum{executor_type=\"echo\"} 0.001",
            "executor_tasks_duration_seconds_max{executor_type=\"echo\"} 0.001",
            "executor_tasks_duration_seconds_max{executor_type=\"calculate-tax\"} 0.002",
            "executor_queue_size{executor_type=\"echo\"} 7",
            "executor_registry_size 2",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
