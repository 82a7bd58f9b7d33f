#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The executor's HTTP port: health probes and Prometheus metrics, checked with promtool.

mod common;

use std::sync::Arc;
use std::time::Duration;

use gamelan::executors::{CalculateTax, Fault};
use gamelan::runtime::local::LocalEngine;
use gamelan::runtime::{Runtime, RuntimeHandle, RuntimeSettings};
use gamelan::sdk::{CommunicationType, Declared, ExecutorMetadata, Task};
use serde_json::{Value, json};

/// A runtime hosting only `calculate-tax` over `engine`, with an HTTP port in `settings`.
fn start_tax(engine: &LocalEngine, settings: RuntimeSettings) -> RuntimeHandle {
    Runtime::builder()
        .discover(false)
        .settings(settings)
        .transport(CommunicationType::Local, engine.transport())
        .executor(Declared::new(
            CalculateTax,
            ExecutorMetadata::new("calculate-tax"),
        ))
        .start()
        .unwrap()
}

fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent
        .get(&format!("http://{addr}{path}"))
        .call()
        .expect("request");
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().expect("body"))
}

fn content_type(addr: std::net::SocketAddr, path: &str, accept: Option<&str>) -> (u16, String) {
    let mut req = ureq::get(&format!("http://{addr}{path}"));
    if let Some(a) = accept {
        req = req.header("Accept", a);
    }
    let resp = req.call().expect("request");
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (resp.status().as_u16(), ct)
}

#[test]
fn health_and_metrics_endpoints_serve_real_figures() {
    let engine = LocalEngine::new();
    let engine_down = engine.clone();
    engine_down.set_down(true);
    let settings = RuntimeSettings {
        runtime_id: "http".into(),
        http_addr: Some("127.0.0.1:0".parse().unwrap()),
        reconnect_initial: Duration::from_millis(20),
        reconnect_max: Duration::from_millis(50),
        ..RuntimeSettings::default()
    };
    let h = Runtime::builder()
        .discover(false)
        .settings(settings)
        .transport(CommunicationType::Local, engine.transport())
        .executor(Declared::new(
            CalculateTax,
            ExecutorMetadata::new("calculate-tax").max_concurrent_tasks(50),
        ))
        .executor(Declared::new(Fault, ExecutorMetadata::new("fault")))
        .start()
        .unwrap();
    let addr = h.http_addr().expect("http port bound");

    // Engine unreachable: alive but not ready.
    let (live, _) = get(addr, "/q/health/live");
    assert_eq!(live, 200);
    let (ready, body) = get(addr, "/q/health/ready");
    assert_eq!(ready, 503, "{body}");

    engine.set_down(false);
    assert!(h.wait_ready(Duration::from_secs(20)));
    for path in ["/health/ready", "/q/health/ready", "/health/live"] {
        assert_eq!(get(addr, path).0, 200, "{path}");
    }
    for i in 0..5 {
        let mut t = Task::new(format!("r{i}"), "n", "calculate-tax", 1);
        t.context
            .insert("amount".into(), json!(100.0 * f64::from(i)));
        engine.push_task(t);
    }
    let mut bad = Task::new("bad", "n", "fault", 1);
    bad.context.insert("mode".into(), json!("business"));
    engine.push_task(bad);
    assert!(engine.wait_until(Duration::from_secs(20), |v| v.results().len() == 6));

    let (status, body) = get(addr, "/health");
    assert_eq!(status, 200);
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "UP");
    assert_eq!(health["runtimeId"], "http");
    assert_eq!(health["executors"].as_array().unwrap().len(), 2);
    assert_eq!(health["completedTasks"], 5);
    assert_eq!(health["failedTasks"], 1);
    assert!(health.get("queueSize").is_some() && health.get("activeTasks").is_some());
    assert!(health["workerThreads"].as_u64().unwrap() >= 1);
    for e in health["executors"].as_array().unwrap() {
        assert_eq!(e["healthy"], true, "{e}");
        assert_eq!(e["abandonedThreads"], 0, "{e}");
        assert_eq!(e["deferredTasks"], 0, "{e}");
        assert!(e.get("reason").is_none(), "{e}");
    }

    let (status, text) = get(addr, "/q/metrics");
    assert_eq!(status, 200);
    assert!(
        text.contains("executor_tasks_total{executor_type=\"calculate-tax\"} 5"),
        "{text}"
    );
    assert!(text.contains("executor_tasks_completed_total{executor_type=\"calculate-tax\"} 5"));
    assert!(text.contains("executor_tasks_failed_total{executor_type=\"fault\"} 1"));
    // Micrometer's names for the timer `executor.tasks.duration`.
    for series in [
        "executor_tasks_duration_seconds_bucket{executor_type=\"calculate-tax\",le=\"+Inf\"} 5",
        "executor_tasks_duration_seconds_count{executor_type=\"calculate-tax\"} 5",
        "executor_tasks_duration_seconds_sum{executor_type=\"calculate-tax\"}",
        "executor_tasks_duration_seconds_max{executor_type=\"calculate-tax\"}",
    ] {
        assert!(text.contains(series), "missing {series} in\n{text}");
    }
    assert!(text.contains("executor_registry_size 2"));
    assert!(text.contains("executor_queue_size{executor_type=\"calculate-tax\"} 0"));
    // Prometheus picks its parser by the content type: it must name the 0.0.4 text format,
    // whatever the scraper prefers.
    for path in ["/metrics", "/q/metrics"] {
        for accept in [
            None,
            Some(
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
            ),
        ] {
            let (status, content_type) = content_type(addr, path, accept);
            assert_eq!(status, 200, "{path}");
            assert_eq!(
                content_type, "text/plain; version=0.0.4; charset=utf-8",
                "{path} {accept:?}"
            );
        }
    }
    assert_eq!(get(addr, "/nope").0, 404);

    common::assert_promtool_accepts(&text);
    let _ = Arc::new(());
    h.shutdown();
}

#[test]
fn metrics_can_be_turned_off_and_the_probes_stay() {
    let engine = LocalEngine::new();
    let settings = RuntimeSettings {
        runtime_id: "no-metrics".into(),
        http_addr: Some("127.0.0.1:0".parse().unwrap()),
        metrics_endpoint: false,
        ..RuntimeSettings::default()
    };
    let h = start_tax(&engine, settings);
    let addr = h.http_addr().expect("http port bound");
    assert!(h.wait_ready(Duration::from_secs(20)));
    for path in ["/metrics", "/q/metrics"] {
        let (status, body) = get(addr, path);
        assert_eq!(status, 404, "{path}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"], "metrics_disabled");
        assert_eq!(body["key"], "quarkus.micrometer.export.prometheus.enabled");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("quarkus.micrometer.export.prometheus.enabled=false"),
            "{body}"
        );
    }
    for path in ["/health", "/health/live", "/health/ready"] {
        assert_eq!(get(addr, path).0, 200, "{path}");
    }
    h.shutdown();
}

#[test]
fn a_runtime_that_gave_up_reconnecting_is_live_but_never_ready() {
    let engine = LocalEngine::new();
    engine.set_down(true);
    let settings = RuntimeSettings {
        runtime_id: "gives-up".into(),
        http_addr: Some("127.0.0.1:0".parse().unwrap()),
        reconnect_initial: Duration::from_millis(5),
        reconnect_max: Duration::from_millis(10),
        reconnect_max_retries: Some(2),
        ..RuntimeSettings::default()
    };
    let h = start_tax(&engine, settings);
    let addr = h.http_addr().expect("http port bound");
    assert!(h.wait_gave_up(Duration::from_secs(20)));
    engine.set_down(false);
    assert_eq!(get(addr, "/health/live").0, 200);
    assert_eq!(get(addr, "/health/ready").0, 503);
    let (status, body) = get(addr, "/health");
    assert_eq!(status, 503, "{body}");
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["state"], "FAILED");
    assert!(
        health["failure"]
            .as_str()
            .unwrap()
            .contains("engine.reconnect.max-retries=2"),
        "{health}"
    );
    h.shutdown();
}
