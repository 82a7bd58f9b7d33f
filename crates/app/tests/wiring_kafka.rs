#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The `gamelan` wiring over a real Kafka-protocol broker (tansu, started by the test): an
//! engine with `kafka.bootstrap-servers` set serves a Kafka executor next to a gRPC one.
#![cfg(all(feature = "kafka", feature = "grpc"))]

use std::time::{Duration, Instant};

use gamelan::config::{EngineConfig, ExecutorConfig, Sources};
use gamelan::executors::CalculateTax;
use gamelan::sdk::{CommunicationType, Declared, ExecutorMetadata};
use gamelan::wiring::{self, engine::EngineOptions};
use gamelan_kafka::test_broker::TansuBroker;
use gamelan_ports::{EngineService, SubmitRequest, TaskState};
use serde_json::json;

#[test]
fn engine_serves_kafka_and_grpc_executors_at_once() {
    let broker = TansuBroker::start();
    let engine_cfg = EngineConfig::load_sources(
        &Sources::new()
            .set("gamelan.engine.kafka.bootstrap-servers", broker.bootstrap())
            .set("gamelan.engine.ephemeral", "true")
            .set("gamelan.engine.host", "127.0.0.1")
            .set("gamelan.engine.port", "0"),
    )
    .unwrap()
    .config;
    assert!(engine_cfg.kafka_enabled);
    let engine =
        wiring::engine::start_engine_with(EngineOptions::from_config(&engine_cfg)).unwrap();

    let exec_cfg = |transport: &str, id: &str| -> ExecutorConfig {
        ExecutorConfig::load_sources(
            &Sources::new()
                .set(
                    "gamelan.executor.engine-url",
                    format!("http://{}", engine.addr),
                )
                .set("gamelan.executor.transport", transport)
                .set(
                    "gamelan.executor.kafka.bootstrap-servers",
                    broker.bootstrap(),
                )
                .set("gamelan.executor.http.port", "0")
                .set("gamelan.executor.heartbeat.interval", "1s")
                .set("gamelan.executor.runtime.executor-id", id),
        )
        .unwrap()
        .config
    };
    let kafka_cfg = exec_cfg("kafka", "kfk");
    let kafka_rt = wiring::runtime_builder(&kafka_cfg)
        .unwrap()
        .discover(false)
        .executor(Declared::new(
            CalculateTax,
            ExecutorMetadata::new("kafka-tax").communication(CommunicationType::Kafka),
        ))
        .start()
        .unwrap();
    let grpc_rt = wiring::runtime_builder(&exec_cfg("grpc", "grpc"))
        .unwrap()
        .discover(false)
        .executor(Declared::new(
            CalculateTax,
            ExecutorMetadata::new("grpc-tax"),
        ))
        .start()
        .unwrap();
    assert!(
        kafka_rt.wait_ready(Duration::from_secs(60)),
        "kafka executor never ready"
    );
    assert!(
        grpc_rt.wait_ready(Duration::from_secs(30)),
        "grpc executor never ready"
    );

    // The engine learns of the Kafka executor from the registrations topic.
    let deadline = Instant::now() + Duration::from_secs(60);
    while engine.engine.executor("kfk-kafka-tax").is_err() {
        assert!(
            Instant::now() < deadline,
            "engine never saw the Kafka executor"
        );
        std::thread::park_timeout(Duration::from_millis(50));
    }

    let mut ids = Vec::new();
    for (i, ty) in (0..200).map(|i| (i, if i % 2 == 0 { "kafka-tax" } else { "grpc-tax" })) {
        let v = engine
            .engine
            .submit(SubmitRequest {
                executor_type: Some(ty.into()),
                input: json!({"amount": f64::from(i)})
                    .as_object()
                    .cloned()
                    .unwrap(),
                ..SubmitRequest::default()
            })
            .unwrap();
        ids.push((v.task_id, f64::from(i)));
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    for (id, amount) in &ids {
        loop {
            let t = engine.engine.task(id).unwrap();
            if t.status == TaskState::Completed {
                let tax = t.output.unwrap()["tax"].as_f64().unwrap();
                assert!((tax - amount * 0.1).abs() < 1e-9);
                break;
            }
            assert_ne!(t.status, TaskState::Failed, "{t:?}");
            assert!(
                Instant::now() < deadline,
                "task {id} never completed: {t:?}"
            );
            std::thread::park_timeout(Duration::from_millis(20));
        }
    }
    assert_eq!(engine.engine.statistics().tasks_completed, 200);
    assert_eq!(kafka_rt.shutdown().unreported, 0);
    grpc_rt.shutdown();
    engine.shutdown();
}
