//! The engine side against a real broker: a `KafkaEngineBridge` in front of a small
//! in-memory engine, with `KafkaTransport` executors on the other end.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use gamelan_domain::{Acceptance, ResultIntake, Task, TaskResult};
use gamelan_kafka::messages::encode_result;
use gamelan_kafka::{KafkaEngineBridge, KafkaEngineSettings};
use gamelan_ports::{
    EngineError, EngineService, EngineStatistics, EngineTransport, ExecutorView, HealthStatus,
    Heartbeat, Registered, Registration, StreamId, SubmitRequest, TaskSink, TaskView,
};

const LONG: Duration = Duration::from_secs(60);

#[derive(Default)]
struct State {
    registered: HashMap<String, Registration>,
    registrations: usize,
    unregistered: Vec<String>,
    heartbeats: Vec<Heartbeat>,
    streams: HashMap<String, (StreamId, u32, Arc<dyn TaskSink>)>,
    detached: Vec<StreamId>,
    next_stream: StreamId,
    intake: ResultIntake,
    answers: Vec<(String, Acceptance)>,
}

/// Just enough of an engine: a registration table, push streams and the idempotent intake.
#[derive(Default)]
struct FakeEngine {
    state: Mutex<State>,
}

impl FakeEngine {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Dispatches as the engine does: record the attempt, push to the executor's stream.
    fn dispatch(&self, executor_id: &str, task: Task) -> bool {
        let sink = {
            let mut s = self.state();
            s.intake.dispatched(
                &task.run_id,
                &task.node_id,
                task.attempt,
                &task.execution_token,
            );
            Arc::clone(&s.streams[executor_id].2)
        };
        sink.deliver(Arc::new(task))
    }

    fn answers(&self, a: Acceptance) -> usize {
        self.state().answers.iter().filter(|(_, x)| *x == a).count()
    }
}

impl EngineService for FakeEngine {
    fn register(&self, registration: Registration) -> Result<Registered, EngineError> {
        let mut s = self.state();
        s.registrations += 1;
        let id = registration.executor_id.clone();
        s.registered.insert(id.clone(), registration);
        Ok(Registered {
            executor_id: id,
            status: "REGISTERED".into(),
            registered_at_ms: 1,
        })
    }

    fn unregister(&self, executor_id: &str) -> Result<(), EngineError> {
        let mut s = self.state();
        s.unregistered.push(executor_id.to_owned());
        s.registered
            .remove(executor_id)
            .map(|_| ())
            .ok_or_else(|| EngineError::UnknownExecutor(executor_id.to_owned()))
    }

    fn heartbeat(&self, heartbeat: &Heartbeat) -> Result<(), EngineError> {
        let mut s = self.state();
        if !s.registered.contains_key(&heartbeat.executor_id) {
            return Err(EngineError::UnknownExecutor(heartbeat.executor_id.clone()));
        }
        s.heartbeats.push(heartbeat.clone());
        Ok(())
    }

    fn attach(
        &self,
        executor_id: &str,
        max_in_flight: u32,
        sink: Arc<dyn TaskSink>,
    ) -> Result<StreamId, EngineError> {
        let mut s = self.state();
        if !s.registered.contains_key(executor_id) {
            return Err(EngineError::UnknownExecutor(executor_id.to_owned()));
        }
        s.next_stream += 1;
        let id = s.next_stream;
        s.streams
            .insert(executor_id.to_owned(), (id, max_in_flight, sink));
        Ok(id)
    }

    fn detach(&self, executor_id: &str, stream: StreamId) {
        let mut s = self.state();
        if s.streams.get(executor_id).is_some_and(|e| e.0 == stream) {
            s.streams.remove(executor_id);
        }
        s.detached.push(stream);
    }

    fn acknowledge(&self, _task_id: &str) -> Result<(), EngineError> {
        Ok(())
    }

    fn poll(&self, _: &str, _: usize, _: Duration) -> Result<Vec<Task>, EngineError> {
        Ok(Vec::new())
    }

    fn release(&self, _: &str, _: &[String]) -> Result<(), EngineError> {
        Ok(())
    }

    fn report(&self, results: Vec<TaskResult>) -> Vec<Result<Acceptance, EngineError>> {
        let mut s = self.state();
        results
            .into_iter()
            .map(|r| {
                let a =
                    s.intake
                        .report(r.run_id(), r.node_id(), r.attempt(), r.execution_token())?;
                s.answers.push((r.task_id().to_owned(), a));
                Ok(a)
            })
            .collect()
    }

    fn submit(&self, _: SubmitRequest) -> Result<TaskView, EngineError> {
        Err(EngineError::Invalid("not in this fake".into()))
    }

    fn completions(&self, after: u64, _: usize, _: Duration) -> (Vec<TaskView>, u64) {
        (Vec::new(), after)
    }

    fn task(&self, task_id: &str) -> Result<TaskView, EngineError> {
        Err(EngineError::UnknownTask(task_id.to_owned()))
    }

    fn executors(&self) -> Vec<ExecutorView> {
        Vec::new()
    }

    fn executor(&self, executor_id: &str) -> Result<ExecutorView, EngineError> {
        let s = self.state();
        let r = s
            .registered
            .get(executor_id)
            .ok_or_else(|| EngineError::UnknownExecutor(executor_id.to_owned()))?;
        Ok(ExecutorView {
            executor_id: executor_id.to_owned(),
            executor_type: r.metadata.executor_type.clone(),
            communication_type: "KAFKA".into(),
            endpoint: String::new(),
            supported_node_types: Vec::new(),
            max_concurrent_tasks: r.metadata.max_concurrent_tasks,
            version: r.metadata.version.clone(),
            alive: true,
            in_flight: 0,
            status: "READY".into(),
            registered_at_ms: 1,
            last_heartbeat_ms: 1,
            completed_tasks: 0,
            failed_tasks: 0,
        })
    }

    fn statistics(&self) -> EngineStatistics {
        EngineStatistics::default()
    }
}

fn engine_settings(bootstrap: &str) -> KafkaEngineSettings {
    let mut s = KafkaEngineSettings::new(bootstrap);
    s.properties = fast_properties();
    s.request_timeout = Duration::from_secs(15);
    s
}

#[test]
fn the_bridge_dispatches_to_kafka_executors_and_feeds_results_to_the_intake() {
    let broker = start_broker();
    let engine = Arc::new(FakeEngine::default());
    let bridge = KafkaEngineBridge::start(
        Arc::clone(&engine) as Arc<dyn EngineService>,
        engine_settings(&broker.bootstrap()),
    )
    .unwrap();
    wait_until(LONG, "the bridge to be ready", || bridge.status().ready);
    assert_eq!(bridge.status().last_error, None);

    // Registration travels over Kafka; the bridge registers and attaches a stream.
    let s = settings(&broker.bootstrap());
    let topics = s.topics.clone();
    let worker = EchoWorker::start(transport(s, "rt-1-echo", ECHO), true);
    wait_until(LONG, "the executor's stream", || {
        engine.state().streams.contains_key("rt-1-echo")
    });
    assert_eq!(engine.state().streams["rt-1-echo"].1, 64, "max in flight");
    assert_eq!(bridge.status().executors, 1);

    let all = tasks("bridge", 100);
    for t in all.clone() {
        assert!(engine.dispatch("rt-1-echo", t), "deliver enqueues");
    }
    wait_until(LONG, "100 accepted results", || {
        engine.answers(Acceptance::Accept) == 100
    });

    // A repeated result (at-least-once) is ALREADY_PROCESSED at the intake.
    let mut again = Vec::new();
    encode_result(&echo(&all[0]), &mut again);
    produce_raw(
        &broker.bootstrap(),
        &topics.results,
        &[(Some("bridge-0"), &again)],
    );
    wait_until(LONG, "the repeat to be judged", || {
        engine.answers(Acceptance::AlreadyProcessed) == 1
    });

    // Heartbeats reach the engine with their load.
    let hb = Heartbeat {
        executor_id: "rt-1-echo".into(),
        current_task_count: 3,
        status: HealthStatus::Busy,
        ..Heartbeat::default()
    };
    worker
        .transport
        .heartbeat(std::slice::from_ref(&hb))
        .unwrap();
    wait_until(LONG, "the heartbeat", || {
        engine.state().heartbeats.contains(&hb)
    });

    // Unregistration detaches the stream.
    worker.transport.unregister(&["rt-1-echo".into()]).unwrap();
    wait_until(LONG, "the unregistration", || {
        let s = engine.state();
        s.unregistered == ["rt-1-echo"] && !s.streams.contains_key("rt-1-echo")
    });

    // An engine that forgot the executor learns it again from its next heartbeat.
    worker.transport.heartbeat(&[hb]).unwrap();
    wait_until(LONG, "re-registration from a heartbeat", || {
        let s = engine.state();
        s.registrations == 2 && s.streams.contains_key("rt-1-echo")
    });

    bridge.shutdown();
    assert!(engine.state().streams.is_empty(), "shutdown detaches");
    assert_eq!(bridge.status().executors, 0);
}

#[test]
fn the_bridge_reports_an_unreachable_broker_in_its_status() {
    let port = gamelan_kafka::test_broker::free_port().unwrap();
    let mut s = engine_settings(&format!("127.0.0.1:{port}"));
    s.request_timeout = Duration::from_millis(300);
    let engine = Arc::new(FakeEngine::default());
    let bridge = KafkaEngineBridge::start(engine as Arc<dyn EngineService>, s).unwrap();
    wait_until(LONG, "an error in the status", || {
        bridge.status().last_error.is_some()
    });
    let status = bridge.status();
    assert!(!status.ready);
    let err = status.last_error.unwrap();
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    bridge.shutdown();
}
