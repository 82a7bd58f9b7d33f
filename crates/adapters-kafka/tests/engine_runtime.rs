//! Everything real: the reference engine behind a `KafkaEngineBridge`, the executor runtime
//! hosting the echo executor over a `KafkaTransport`, and a broker between them.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    ECHO, ResultReader, fast_properties, produce_tasks, settings, start_broker, tasks, wait_until,
};
use gamelan::engine::{Engine, EngineSettings};
use gamelan::executors::Echo;
use gamelan::runtime::{Runtime, RuntimeHandle, RuntimeSettings};
use gamelan::sdk::Declared;
use gamelan_domain::{CommunicationType, ExecutorMetadata, JsonObject};
use gamelan_kafka::test_broker::{TansuBroker, free_port};
use gamelan_kafka::{KafkaClientSettings, KafkaEngineBridge, KafkaEngineSettings, KafkaTransport};
use gamelan_ports::{EngineService, EngineTransport, SubmitRequest, SystemClock, TaskState};

const LONG: Duration = Duration::from_secs(60);

fn runtime(transport: KafkaClientSettings) -> RuntimeHandle {
    let settings = RuntimeSettings {
        runtime_id: "kafka-rt".into(),
        heartbeat_interval: Duration::from_millis(200),
        receive_wait: Duration::from_millis(20),
        reconnect_initial: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(500),
        drain_timeout: Duration::from_secs(10),
        ..RuntimeSettings::default()
    };
    Runtime::builder()
        .discover(false)
        .settings(settings)
        .transport(
            CommunicationType::Kafka,
            Arc::new(KafkaTransport::new(transport)) as Arc<dyn EngineTransport>,
        )
        .executor(Declared::new(
            Echo,
            ExecutorMetadata::new(ECHO)
                .communication(CommunicationType::Kafka)
                .max_concurrent_tasks(32),
        ))
        .start()
        .expect("runtime starts")
}

#[test]
fn the_reference_engine_and_the_runtime_exchange_tasks_over_kafka() {
    let broker = start_broker();
    let engine = Engine::open(EngineSettings::ephemeral(), Arc::new(SystemClock)).unwrap();
    let mut bridge_settings = KafkaEngineSettings::new(broker.bootstrap());
    bridge_settings.properties = fast_properties();
    let bridge = KafkaEngineBridge::start(
        Arc::clone(&engine) as Arc<dyn EngineService>,
        bridge_settings,
    )
    .unwrap();
    wait_until(LONG, "the bridge", || bridge.status().ready);

    let rt = runtime(settings(&broker.bootstrap()));
    assert!(
        rt.wait_ready(LONG),
        "runtime never became ready: {:?}",
        rt.health()
    );
    wait_until(LONG, "the engine to know the Kafka executor", || {
        engine
            .executor("kafka-rt-echo")
            .is_ok_and(|e| e.alive && e.communication_type == "KAFKA")
    });

    let n = 300;
    let requests = (0..n)
        .map(|i| {
            let mut input = JsonObject::new();
            input.insert("i".into(), serde_json::json!(i));
            SubmitRequest {
                executor_type: Some(ECHO.into()),
                input,
                ..SubmitRequest::default()
            }
        })
        .collect();
    // Keyed by run and node: a task taken back and dispatched again (at-least-once, e.g.
    // across a consumer-group rebalance) finishes under a later attempt's task id.
    let mut expected: HashMap<(String, String), usize> = HashMap::new();
    for (i, view) in engine.submit_batch(requests).into_iter().enumerate() {
        let view = view.expect("submitted");
        expected.insert((view.run_id, view.node_id), i);
    }

    // Follow the engine's completion feed until every task finished.
    let deadline = Instant::now() + LONG;
    let mut cursor = 0;
    let mut done = HashMap::new();
    while done.len() < n {
        assert!(
            Instant::now() < deadline,
            "{} of {n} tasks finished",
            done.len()
        );
        let (views, next) = engine.completions(cursor, 1000, Duration::from_millis(100));
        cursor = next;
        for v in views {
            let first = done.insert((v.run_id.clone(), v.node_id.clone()), v);
            assert!(first.is_none(), "a task finished twice: {first:?}");
        }
    }
    for (key, i) in &expected {
        let v = done
            .get(key)
            .unwrap_or_else(|| panic!("{key:?} never finished"));
        assert_eq!(v.status, TaskState::Completed, "{v:?}");
        assert_eq!(v.output.as_ref().unwrap()["i"], *i, "{v:?}");
    }
    assert_eq!(engine.statistics().tasks_completed, n as u64);

    let report = rt.shutdown();
    assert_eq!(report.unreported, 0, "{report:?}");
    bridge.shutdown();
    engine.shutdown();
}

#[test]
fn a_runtime_started_before_its_broker_is_not_ready_then_recovers() {
    let port = free_port().unwrap();
    let mut s = settings(&format!("127.0.0.1:{port}"));
    s.connect_timeout = Duration::from_millis(300);
    let topics = s.topics.clone();
    let rt = runtime(s);
    assert!(
        !rt.wait_ready(Duration::from_secs(1)),
        "ready without a broker"
    );
    let health = rt.health();
    assert!(
        !health.ready && health.transports.iter().all(|t| !t.connected),
        "{health:?}"
    );

    let broker = TansuBroker::start_on(port);
    assert!(
        rt.wait_ready(LONG),
        "runtime never recovered: {:?}",
        rt.health()
    );
    let all = tasks("late-broker", 20);
    produce_tasks(&broker.bootstrap(), &topics, &all);
    let mut reader = ResultReader::new(&broker.bootstrap(), &topics);
    reader.wait_for(all.iter().map(|t| t.task_id.clone()), LONG);
    assert!(reader.results.values().all(|r| r[0].is_completed()));
    let report = rt.shutdown();
    assert_eq!(report.unreported, 0, "{report:?}");
}

#[test]
fn a_runtime_that_loses_its_broker_goes_not_ready_and_still_shuts_down_promptly() {
    let mut broker = start_broker();
    let s = settings(&broker.bootstrap());
    let rt = runtime(s);
    assert!(rt.wait_ready(LONG), "{:?}", rt.health());

    broker.stop();
    wait_until(LONG, "the runtime to notice the outage", || !rt.is_ready());
    assert!(rt.health().transports.iter().all(|t| !t.connected));
    // Recovery is shown by the test that starts the broker late: an in-memory broker
    // restarted under live clients comes back with new topic ids, which librdkafka 2.12
    // does not survive (see README).
    let started = Instant::now();
    let _ = rt.shutdown();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "shutdown took {:?} without a broker",
        started.elapsed()
    );
}
