#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Engine and runtime in one process, talking over real sockets through the wiring the
//! `gamelan` binary uses: gRPC (each delivery) and REST against one engine port.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gamelan::config::{EngineConfig, ExecutorConfig, GrpcDelivery};
use gamelan::engine::EngineSettings;
use gamelan::executors::{CalculateTax, Fault};
use gamelan::sdk::{CommunicationType, Declared, ExecutorMetadata};
use gamelan::wiring::{self, engine::EngineOptions};
use gamelan_ports::{AllowAll, EngineService, SubmitRequest, TaskState};
use serde_json::json;

fn engine() -> wiring::EngineProcess {
    let cfg = EngineConfig::default();
    let mut opts = EngineOptions::from_config(&cfg);
    opts.bind = "127.0.0.1:0".parse().unwrap();
    opts.settings = EngineSettings {
        data_dir: None,
        ..EngineSettings::default()
    };
    opts.verifier = Arc::new(AllowAll);
    wiring::engine::start_engine_with(opts).unwrap()
}

fn executor_config(engine: &wiring::EngineProcess, transport: CommunicationType) -> ExecutorConfig {
    let mut cfg = ExecutorConfig::default();
    cfg.engine.url = format!("http://{}", engine.addr).parse().unwrap();
    cfg.transport = transport;
    cfg.http.port = 0;
    cfg.runtime.executor_id = Some(format!("it-{}", transport.as_str().to_lowercase()));
    cfg.heartbeat.interval = Duration::from_millis(200);
    cfg.grpc.host = "127.0.0.1".into();
    cfg.grpc.port = 0;
    cfg
}

fn run_tax_tasks(cfg: &ExecutorConfig, engine: &wiring::EngineProcess, n: usize) {
    let comm = cfg.transport;
    let rt = wiring::runtime_builder(cfg)
        .unwrap()
        .discover(false)
        .executor(Declared::new(
            CalculateTax,
            ExecutorMetadata::new("calculate-tax")
                .communication(comm)
                .max_concurrent_tasks(50),
        ))
        .executor(Declared::new(
            Fault,
            ExecutorMetadata::new("fault").communication(comm),
        ))
        .start()
        .unwrap();
    assert!(
        rt.wait_ready(Duration::from_secs(20)),
        "executor never ready"
    );
    let requests = (0..n)
        .map(|i| SubmitRequest {
            executor_type: Some("calculate-tax".into()),
            input: json!({"amount": i as f64}).as_object().unwrap().clone(),
            ..SubmitRequest::default()
        })
        .collect();
    let views: Vec<_> = engine
        .engine
        .submit_batch(requests)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let panic = engine
        .engine
        .submit(SubmitRequest {
            executor_type: Some("fault".into()),
            input: json!({"mode": "panic"}).as_object().unwrap().clone(),
            ..SubmitRequest::default()
        })
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut cursor = 0;
    let mut done = 0;
    while done < n + 1 {
        assert!(
            Instant::now() < deadline,
            "only {done} of {} finished",
            n + 1
        );
        let (items, next) = engine
            .engine
            .completions(cursor, 10_000, Duration::from_millis(200));
        cursor = next;
        done += items.len();
    }
    for (i, v) in views.iter().enumerate() {
        let t = engine.engine.task(&v.task_id).unwrap();
        assert_eq!(t.status, TaskState::Completed, "{t:?}");
        let tax = t.output.unwrap()["tax"].as_f64().unwrap();
        assert!((tax - i as f64 * 0.1).abs() < 1e-9);
    }
    let p = engine.engine.task(&panic.task_id).unwrap();
    assert_eq!(p.status, TaskState::Failed);
    assert_eq!(p.error.unwrap().code, "EXECUTOR_PANIC");
    let ids = rt.executor_ids();
    let report = rt.shutdown();
    assert_eq!(report.unreported, 0);
    for id in ids {
        assert!(
            engine.engine.executor(&id).is_err(),
            "{id} still registered"
        );
    }
}

#[test]
fn grpc_execute_stream_end_to_end() {
    let e = engine();
    let cfg = executor_config(&e, CommunicationType::Grpc);
    run_tax_tasks(&cfg, &e, 500);
    e.shutdown();
}

#[test]
fn grpc_stream_tasks_end_to_end() {
    let e = engine();
    let mut cfg = executor_config(&e, CommunicationType::Grpc);
    cfg.grpc.delivery = GrpcDelivery::StreamTasks;
    run_tax_tasks(&cfg, &e, 300);
    e.shutdown();
}

#[test]
fn grpc_push_end_to_end() {
    let e = engine();
    let mut cfg = executor_config(&e, CommunicationType::Grpc);
    cfg.grpc.delivery = GrpcDelivery::Push;
    run_tax_tasks(&cfg, &e, 200);
    e.shutdown();
}

#[test]
fn rest_end_to_end() {
    let e = engine();
    let cfg = executor_config(&e, CommunicationType::Rest);
    run_tax_tasks(&cfg, &e, 300);
    e.shutdown();
}

#[test]
fn the_executors_heartbeat_timeout_reaches_the_engine_over_grpc_and_rest() {
    for transport in [CommunicationType::Grpc, CommunicationType::Rest] {
        let engine = engine();
        let mut cfg = executor_config(&engine, transport);
        // No heartbeats at all, and a 1 s timeout sent at registration: the engine's own
        // default is 60 s, so only the executor's value can make it dead within seconds.
        cfg.heartbeat.enabled = false;
        cfg.heartbeat.timeout = Duration::from_secs(1);
        cfg.heartbeat.send_timeout = true;
        let rt = wiring::runtime_builder(&cfg)
            .unwrap()
            .discover(false)
            .executor(Declared::new(
                CalculateTax,
                ExecutorMetadata::new("calculate-tax").communication(transport),
            ))
            .start()
            .unwrap();
        assert!(
            rt.wait_ready(Duration::from_secs(20)),
            "{transport}: never ready"
        );
        let id = rt.executor_ids()[0].clone();
        let deadline = Instant::now() + Duration::from_secs(20);
        while engine.engine.executor(&id).unwrap().alive {
            assert!(
                Instant::now() < deadline,
                "{transport}: still alive long after its 1 s timeout"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        rt.shutdown();
    }
}
