//! A real Prometheus server (Debian's `prometheus` 2.42) scrapes a running engine and an
//! executor on every spelling of the metrics path: every target must be `up` with no scrape
//! error, and the series the Java runtime's Micrometer registry exports must be queryable with
//! the figures of the tasks that ran.

use std::time::Duration;

use gamelan_e2e::prometheus::{Prometheus, Sample, ScrapeJob};
use gamelan_e2e::workload::tax_requests;
use gamelan_e2e::{Engine, EngineSpec, Executor, ExecutorSpec, e2e};

const TASKS: usize = 25;
/// Scrapes run every second; this covers a slow start on a busy machine.
const SCRAPED: Duration = Duration::from_secs(60);

fn sum(samples: &[Sample]) -> f64 {
    samples.iter().map(|s| s.value).sum()
}

fn only_job<'a>(samples: &'a [Sample], job: &str) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| s.labels.get("job").and_then(|j| j.as_str()) == Some(job))
        .collect()
}

#[test]
fn prometheus_scrapes_engine_and_executor_on_every_metrics_path() {
    e2e(|| {
        let engine = Engine::start(&EngineSpec::ephemeral())?;
        let executor = Executor::start(&ExecutorSpec::new("prom", &engine))?;
        engine.wait_alive(&[executor.id("calculate-tax")])?;
        let submitted = engine.api.submit(&tax_requests("prom", TASKS))?;
        engine
            .api
            .await_completions(&submitted, Duration::from_secs(60))?;

        let prometheus = Prometheus::start(&[
            ScrapeJob::new("engine", engine.addr, "/metrics"),
            ScrapeJob::new("engine-q", engine.addr, "/q/metrics"),
            ScrapeJob::new("executor", executor.health_addr, "/metrics"),
            ScrapeJob::new("executor-q", executor.health_addr, "/q/metrics"),
        ])?;
        let targets = prometheus.wait_all_up(SCRAPED)?;
        assert_eq!(targets.len(), 4, "{targets:#?}");

        // The counters carry what ran, on both paths of the executor.
        let done = "executor_tasks_completed_total{executor_type=\"calculate-tax\"}";
        let completed = prometheus.wait_query(done, SCRAPED)?;
        for job in ["executor", "executor-q"] {
            let v = only_job(&completed, job);
            assert_eq!(v.len(), 1, "{job}: {completed:?}");
            assert!(
                (v[0].value - TASKS as f64).abs() < f64::EPSILON,
                "{job}: {completed:?}"
            );
        }
        let received = prometheus.query("executor_tasks_total{job=\"executor\"}")?;
        assert!(
            (sum(&received) - TASKS as f64).abs() < f64::EPSILON,
            "{received:?}"
        );
        // The timer `executor.tasks.duration` as Micrometer names it: count, sum, buckets, max.
        let count = prometheus.query(
            "executor_tasks_duration_seconds_count{job=\"executor\",executor_type=\"calculate-tax\"}",
        )?;
        assert!(
            (sum(&count) - TASKS as f64).abs() < f64::EPSILON,
            "{count:?}"
        );
        for series in [
            "executor_tasks_duration_seconds_sum",
            "executor_tasks_duration_seconds_max",
        ] {
            let s = prometheus.query(&format!(
                "{series}{{job=\"executor\",executor_type=\"calculate-tax\"}}"
            ))?;
            assert!(s.len() == 1 && s[0].value > 0.0, "{series}: {s:?}");
        }
        let inf = prometheus.query(
            "executor_tasks_duration_seconds_bucket{job=\"executor\",executor_type=\"calculate-tax\",le=\"+Inf\"}",
        )?;
        assert!((sum(&inf) - TASKS as f64).abs() < f64::EPSILON, "{inf:?}");
        for gauge in ["executor_registry_size", "executor_queue_size"] {
            assert!(
                !prometheus
                    .query(&format!("{gauge}{{job=\"executor\"}}"))?
                    .is_empty(),
                "{gauge} is not in prometheus"
            );
        }

        // The engine's series, on both of its paths.
        let engine_done = prometheus.query("gamelan_engine_tasks_completed_total")?;
        for job in ["engine", "engine-q"] {
            let v = only_job(&engine_done, job);
            assert!(
                v.len() == 1 && (v[0].value - TASKS as f64).abs() < f64::EPSILON,
                "{job}: {engine_done:?}"
            );
        }
        let alive = prometheus.query("gamelan_engine_executors_alive{job=\"engine\"}")?;
        assert!(alive.len() == 1 && alive[0].value >= 1.0, "{alive:?}");
        Ok(())
    });
}
