//! `gamelan bench` end to end: the binary's JSON report has the documented shape and every
//! task finished. No timing is asserted (machines are shared and noisy); figures are only
//! checked to be present and sane.

use std::process::Command;
use std::time::Duration;

use gamelan::commands::bench::{self, BenchOptions, BenchReport, BenchTransport};
use serde_json::Value;

fn bench_json(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_gamelan"))
        .arg("bench")
        .args(args)
        .output()
        .expect("gamelan runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "gamelan bench {args:?} failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "--json prints one object: {stdout}");
    serde_json::from_str(lines[0]).expect("valid JSON")
}

fn count(v: &Value, key: &str) -> u64 {
    v.get(key)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{key} is not a count in {v}"))
}

fn number(v: &Value, path: &[&str]) -> f64 {
    let mut cur = v;
    for p in path {
        cur = cur
            .get(p)
            .unwrap_or_else(|| panic!("missing {path:?} in {v}"));
    }
    cur.as_f64()
        .unwrap_or_else(|| panic!("{path:?} is not a number in {v}"))
}

#[test]
fn local_bench_reports_every_field_and_finishes_all_tasks() {
    let v = bench_json(&[
        "--transport",
        "local",
        "--tasks",
        "2000",
        "--json",
        "--in-process",
    ]);
    assert_eq!(v["transport"], "local");
    assert_eq!(v["mode"], "in-process");
    assert_eq!(count(&v, "tasks"), 2000);
    assert_eq!(count(&v, "completed"), 2000);
    assert_eq!(count(&v, "failed"), 0);
    assert_eq!(count(&v, "unfinished"), 0);
    for key in ["tasks_per_sec", "baseline_per_sec", "ratio", "ready_ms"] {
        let x = number(&v, &[key]);
        assert!(x.is_finite() && x > 0.0, "{key} = {x}");
    }
    let ratio = number(&v, &["ratio"]);
    let expected = number(&v, &["tasks_per_sec"]) / number(&v, &["baseline_per_sec"]);
    assert!((ratio - expected).abs() <= 1e-9 * expected.max(1.0));
    let (p50, p90, p99, max) = (
        number(&v, &["latency_us", "p50"]),
        number(&v, &["latency_us", "p90"]),
        number(&v, &["latency_us", "p99"]),
        number(&v, &["latency_us", "max"]),
    );
    assert!(p50 >= 1.0 && p50 <= p90 && p90 <= p99 && p99 <= max, "{v}");
    let rss = v.get("rss_bytes").expect("rss_bytes");
    assert!(rss.get("engine").is_some() && rss.get("executor").is_some());
    assert!(number(&v, &["rss_bytes", "process"]) > 0.0);
}

fn small(transport: BenchTransport) -> BenchOptions {
    BenchOptions {
        transport,
        tasks: 3000,
        payload_bytes: 64,
        executors: 2,
        window: 1000,
        submit_batch: 250,
        timeout: Duration::from_secs(120),
        exe: Some(env!("CARGO_BIN_EXE_gamelan").into()),
        ..BenchOptions::default()
    }
}

fn assert_complete(r: &BenchReport) {
    assert_eq!(
        (r.completed, r.failed, r.unfinished),
        (r.tasks, 0, 0),
        "{r:?}"
    );
    assert!(r.tasks_per_sec > 0.0);
    assert!(r.latency_us.p50 >= 1 && r.latency_us.p50 <= r.latency_us.max);
    assert!(r.baseline_per_sec.is_some_and(|x| x > 0.0));
    // A ratio only in closed loop: in open loop the throughput is the arrival rate.
    assert_eq!(r.ratio.is_some(), r.rate.is_none(), "{r:?}");
}

#[cfg(feature = "grpc")]
#[test]
fn grpc_bench_with_separate_processes_measures_both_sides() {
    let r = bench::run(&small(BenchTransport::Grpc)).expect("bench runs");
    assert_complete(&r);
    assert_eq!(r.mode, "processes");
    assert!(r.rss_bytes.engine.is_some_and(|b| b > 0));
    assert!(r.rss_bytes.executor.is_some_and(|b| b > 0));
    assert!(r.rss_bytes.executor_idle.is_some_and(|b| b > 0));
    assert!(r.ready_ms.is_some_and(|ms| ms > 0.0));
    assert!(r.engine_ready_ms.is_some_and(|ms| ms > 0.0));
}

#[cfg(feature = "rest")]
#[test]
fn rest_bench_in_process_open_loop_finishes_every_task() {
    let opts = BenchOptions {
        in_process: true,
        tasks: 500,
        rate: Some(2000.0),
        ..small(BenchTransport::Rest)
    };
    let r = bench::run(&opts).expect("bench runs");
    assert_complete(&r);
    assert_eq!((r.mode, r.arrival), ("in-process", "open-loop"));
}

/// Needs the `tansu` broker (installed by `.ci/install.sh`), as the Kafka adapter's tests do.
#[cfg(feature = "kafka")]
#[test]
fn kafka_bench_runs_over_a_throw_away_broker() {
    let opts = BenchOptions {
        tasks: 2000,
        executors: 1,
        warmup: 200,
        ..small(BenchTransport::Kafka)
    };
    let r = bench::run(&opts).expect("bench runs");
    assert_complete(&r);
    assert_eq!((r.transport, r.mode), ("kafka", "processes"));
    assert!(r.baseline.as_ref().is_some_and(|b| b.messages == 2000));
}
