//! The executor-side transport against the engine-side routes, over real loopback sockets.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{EngineServer, FakeEngine, PATIENCE, client_settings, registration, task};
use gamelan_domain::{Acceptance, JsonObject, ResultStatus, Task, TaskResult};
use gamelan_grpc::proto::dispatcher;
use gamelan_grpc::proto::dispatcher::executor_client::ExecutorClient;
use gamelan_grpc::{Delivery, GrpcServerSettings, GrpcTransport, RESULT_TOO_LARGE};
use gamelan_ports::{
    AuthError, EngineTransport, HealthStatus, Heartbeat, Inbound, NoToken, ReportOutcome,
    TokenSource, TokenVerifier, TransportError,
};

const ACCEPT: ReportOutcome = ReportOutcome::Accepted(Acceptance::Accept);

fn transport(url: &str, delivery: Delivery) -> GrpcTransport {
    GrpcTransport::new(client_settings(url, delivery), Arc::new(NoToken)).unwrap()
}

/// Receives until `n` tasks arrived (failing after [`PATIENCE`]).
fn receive_tasks(t: &GrpcTransport, n: usize) -> Vec<Task> {
    let deadline = Instant::now() + PATIENCE;
    let mut got = Vec::new();
    while got.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} tasks arrived",
            got.len()
        );
        for item in t
            .receive(n - got.len(), Duration::from_millis(100))
            .unwrap()
        {
            if let Inbound::Task(task) = item {
                got.push(task);
            }
        }
    }
    got
}

fn complete(tasks: &[Task]) -> Vec<TaskResult> {
    tasks
        .iter()
        .map(|t| {
            let mut out = JsonObject::new();
            out.insert(
                "tax".into(),
                (t.context["amount"].as_f64().unwrap() * 0.1).into(),
            );
            TaskResult::completed(t, out, 1)
        })
        .collect()
}

fn heartbeat(id: &str, current: u32) -> Heartbeat {
    Heartbeat {
        executor_id: id.into(),
        current_task_count: current,
        status: HealthStatus::Busy,
        completed_tasks: 5,
        ..Heartbeat::default()
    }
}

/// Register, heartbeat, tasks in, results out, then the engine's verdicts for repeats, stale
/// attempts and unknown tasks: the whole executor cycle in one delivery mode.
fn full_cycle(delivery: Delivery) {
    let engine = FakeEngine::new();
    let server = EngineServer::start(engine.clone(), GrpcServerSettings::default());
    let t = transport(&server.url(), delivery);
    t.connect().unwrap();
    t.register(&[registration("rt-calc", "calc", 4)]).unwrap();
    assert!(engine.wait_for(PATIENCE, |s| s.attached() == 1));
    assert_eq!(
        engine.read(|s| s.executors["rt-calc"].metadata.max_concurrent_tasks),
        4
    );

    t.heartbeat(&[heartbeat("rt-calc", 3)]).unwrap();
    assert!(engine.wait_for(PATIENCE, |s| {
        s.heartbeats
            .iter()
            .any(|h| h.current_task_count == 3 && h.status == HealthStatus::Busy)
    }));

    for i in 1..=10 {
        engine.enqueue(task(i, "calc"));
    }
    let mut done = Vec::new();
    while done.len() < 10 {
        let batch = receive_tasks(&t, 1);
        let results = complete(&batch);
        assert_eq!(t.report(&results).unwrap(), vec![ACCEPT; results.len()]);
        done.extend(results);
    }
    assert!(engine.wait_for(PATIENCE, |s| s.accepted.len() == 10));
    let taxes: Vec<f64> = engine.read(|s| {
        let mut v: Vec<f64> = s
            .accepted
            .iter()
            .map(|r| r.output()["tax"].as_f64().unwrap())
            .collect();
        v.sort_by(f64::total_cmp);
        v
    });
    assert!((taxes[0] - 10.0).abs() < 1e-9, "{taxes:?}");
    assert!((taxes[9] - 100.0).abs() < 1e-9, "{taxes:?}");
    if delivery != Delivery::Push {
        assert!(engine.wait_for(PATIENCE, |s| s.acked.len() == 10));
    }

    let repeat = t.report(&done[..1]).unwrap();
    // A newer attempt of a reported task makes that report stale.
    let stale_attempt = done[1].clone();
    let mut retry = Task::new(stale_attempt.run_id(), stale_attempt.node_id(), "calc", 2);
    retry.execution_token = "tok-retry".into();
    engine.enqueue(retry);
    let unknown = TaskResult::completed(&task(999, "calc"), JsonObject::new(), 1);
    let outcomes = t
        .report(&[done[0].clone(), stale_attempt, unknown])
        .unwrap();
    match delivery {
        Delivery::ExecuteStream => {
            assert_eq!(
                repeat,
                vec![ReportOutcome::Accepted(Acceptance::AlreadyProcessed)]
            );
            assert_eq!(
                outcomes[..2],
                [
                    ReportOutcome::Accepted(Acceptance::AlreadyProcessed),
                    ReportOutcome::Accepted(Acceptance::Stale)
                ]
            );
        }
        // Unary ReportResults has one answer per call: OK = accepted.
        Delivery::StreamTasks | Delivery::Push => {
            assert_eq!(repeat, vec![ACCEPT]);
            assert_eq!(outcomes[..2], [ACCEPT, ACCEPT]);
        }
    }
    assert!(
        matches!(&outcomes[2], ReportOutcome::Rejected(why) if why.contains("run-999")),
        "{outcomes:?}"
    );
    assert_eq!(
        engine.read(|s| s.accepted.len()),
        10,
        "nothing applied twice"
    );

    t.unregister(&["rt-calc".to_owned()]).unwrap();
    assert!(engine.read(|s| s.executors.is_empty()));
    t.close();
    assert_eq!(t.receive(1, Duration::ZERO), Err(TransportError::Closed));
}

#[test]
fn execute_stream_full_cycle() {
    full_cycle(Delivery::ExecuteStream);
}

#[test]
fn stream_tasks_full_cycle() {
    full_cycle(Delivery::StreamTasks);
}

#[test]
fn push_full_cycle() {
    full_cycle(Delivery::Push);
}

#[test]
fn push_registers_its_endpoint_and_keeps_typed_context() {
    let engine = FakeEngine::new();
    let server = EngineServer::start(engine.clone(), GrpcServerSettings::default());
    let t = transport(&server.url(), Delivery::Push);
    t.connect().unwrap();
    let addr = t.push_local_addr().unwrap();
    t.register(&[registration("rt-calc", "calc", 2)]).unwrap();
    let reg = engine.read(|s| s.executors["rt-calc"].clone());
    assert_eq!(reg.endpoint, addr.to_string());
    assert_eq!(reg.attributes["gamelan.grpc.delivery"], "push");

    let mut sent = task(7, "calc");
    sent.configuration.insert("mode".into(), "fast".into());
    sent.timeout_seconds = Some(12);
    engine.enqueue(sent.clone());
    let got = receive_tasks(&t, 1);
    assert_eq!(got[0], sent);
    assert!(engine.wait_for(PATIENCE, |s| s.acked == vec![sent.task_id.clone()]));
}

#[test]
fn push_server_answers_429_when_full_and_400_when_malformed() {
    let engine = FakeEngine::new();
    let server = EngineServer::start(engine.clone(), GrpcServerSettings::default());
    let t = transport(&server.url(), Delivery::Push);
    t.connect().unwrap();
    t.register(&[registration("rt-calc", "calc", 2)]).unwrap();
    let url = format!("http://{}", t.push_local_addr().unwrap());
    let acks: Vec<dispatcher::ExecutionAck> = server.block_on(async {
        let mut client = ExecutorClient::connect(url).await.unwrap();
        let mut acks = Vec::new();
        // The single registered type stands in for a missing nodeType, as from a Java engine.
        for (run, attempt) in [("a", 1), ("b", 1), ("c", 1), ("d", 0)] {
            let req = dispatcher::ExecutionRequest {
                run_id: run.into(),
                node_id: "n".into(),
                attempt,
                token: "t".into(),
                variables: [("amount".to_owned(), "5".to_owned())].into(),
                ..Default::default()
            };
            acks.push(client.execute(req).await.unwrap().into_inner());
        }
        acks
    });
    let codes: Vec<(bool, i32)> = acks.iter().map(|a| (a.accepted, a.code)).collect();
    assert_eq!(
        codes,
        vec![(true, 200), (true, 200), (false, 429), (false, 400)]
    );
    let got = receive_tasks(&t, 2);
    assert_eq!(got[0].node_type, "calc");
    assert_eq!(got[0].context["amount"], "5");
}

#[test]
fn receive_zero_takes_nothing_and_the_engine_limit_holds() {
    let engine = FakeEngine::new();
    let server = EngineServer::start(engine.clone(), GrpcServerSettings::default());
    let t = transport(&server.url(), Delivery::ExecuteStream);
    t.connect().unwrap();
    t.register(&[registration("rt-calc", "calc", 3)]).unwrap();
    for i in 1..=10 {
        engine.enqueue(task(i, "calc"));
    }
    assert!(engine.wait_for(PATIENCE, |s| s.delivered == 3));
    let deadline = Instant::now() + PATIENCE;
    while t.buffered() < 3 {
        assert!(Instant::now() < deadline, "tasks never reached the buffer");
        assert!(t.receive(0, Duration::from_millis(10)).unwrap().is_empty());
    }
    assert!(t.receive(0, Duration::from_millis(20)).unwrap().is_empty());
    assert_eq!(t.buffered(), 3);
    assert_eq!(engine.read(|s| (s.delivered, s.acked.len())), (3, 0));

    let first = receive_tasks(&t, 3);
    assert_eq!(t.buffered(), 0);
    t.report(&complete(&first)).unwrap();
    assert!(engine.wait_for(PATIENCE, |s| s.delivered == 6));
    let rest = receive_tasks(&t, 3);
    t.report(&complete(&rest)).unwrap();
    assert!(engine.wait_for(PATIENCE, |s| s.delivered == 9));
    assert_eq!(engine.read(|s| s.max_in_flight_seen), 3);
}

#[test]
fn stream_tasks_window_is_unacknowledged_tasks() {
    let engine = FakeEngine::new();
    let server = EngineServer::start(engine.clone(), GrpcServerSettings::default());
    let t = transport(&server.url(), Delivery::StreamTasks);
    t.connect().unwrap();
    t.register(&[registration("rt-calc", "calc", 2)]).unwrap();
    for i in 1..=5 {
        engine.enqueue(task(i, "calc"));
    }
    assert!(engine.wait_for(PATIENCE, |s| s.delivered == 2));
    assert!(t.receive(0, Duration::from_millis(20)).unwrap().is_empty());
    assert_eq!(engine.read(|s| s.acked.len()), 0);
    let got = receive_tasks(&t, 2);
    assert!(engine.wait_for(PATIENCE, |s| s.acked.len() == 2));
    t.report(&complete(&got)).unwrap();
    assert!(engine.wait_for(PATIENCE, |s| s.delivered == 4));
    assert!(engine.read(|s| s.max_in_flight_seen) <= 2);
}

fn lose_and_recover(delivery: Delivery) {
    let engine = FakeEngine::new();
    let server = EngineServer::start(engine.clone(), GrpcServerSettings::default());
    let addr = server.addr;
    let t = transport(&server.url(), delivery);
    t.connect().unwrap();
    t.register(&[registration("rt-calc", "calc", 4)]).unwrap();
    engine.enqueue(task(1, "calc"));
    let first = receive_tasks(&t, 1);

    server.kill();
    let deadline = Instant::now() + PATIENCE;
    let err = loop {
        assert!(Instant::now() < deadline, "the loss was never noticed");
        let r = match delivery {
            Delivery::Push => t.heartbeat(&[heartbeat("rt-calc", 0)]).map(|()| Vec::new()),
            _ => t.receive(1, Duration::from_millis(20)),
        };
        if let Err(e) = r {
            break e;
        }
    };
    assert!(matches!(err, TransportError::Unavailable(_)), "{err:?}");
    assert!(err.is_connection_loss());
    assert!(matches!(
        t.report(&complete(&first)),
        Err(TransportError::Unavailable(_))
    ));
    assert!(matches!(t.connect(), Err(TransportError::Unavailable(_))));

    let _server = EngineServer::start_on(addr, engine.clone(), GrpcServerSettings::default());
    t.connect().unwrap();
    t.register(&[registration("rt-calc", "calc", 4)]).unwrap();
    // The outbox is resent after the reconnect.
    assert_eq!(t.report(&complete(&first)).unwrap(), vec![ACCEPT]);
    engine.enqueue(task(2, "calc"));
    // The engine may hand run-1 out again (it was in flight on the lost stream); completing
    // it twice must not apply it twice.
    let deadline = Instant::now() + PATIENCE;
    loop {
        assert!(Instant::now() < deadline, "run-2 never arrived");
        let got = receive_tasks(&t, 1);
        let outcomes = t.report(&complete(&got)).unwrap();
        assert!(
            matches!(outcomes[0], ReportOutcome::Accepted(_)),
            "{outcomes:?}"
        );
        if got[0].run_id == "run-2" {
            break;
        }
    }
    assert!(engine.wait_for(PATIENCE, |s| s.accepted.len() == 2));
    assert_eq!(engine.read(|s| s.accepted.len()), 2);
}

#[test]
fn execute_stream_loss_then_reconnect() {
    lose_and_recover(Delivery::ExecuteStream);
}

#[test]
fn stream_tasks_loss_then_reconnect() {
    lose_and_recover(Delivery::StreamTasks);
}

#[test]
fn push_loss_then_reconnect() {
    lose_and_recover(Delivery::Push);
}

#[test]
fn no_engine_is_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let t = transport(&format!("http://127.0.0.1:{port}"), Delivery::ExecuteStream);
    assert!(matches!(t.connect(), Err(TransportError::Unavailable(_))));
    assert!(matches!(
        t.receive(1, Duration::ZERO),
        Err(TransportError::Unavailable(_))
    ));
}

#[test]
fn a_result_over_the_message_limit_goes_out_as_failed() {
    let engine = FakeEngine::new();
    let server = EngineServer::start(engine.clone(), GrpcServerSettings::default());
    let mut settings = client_settings(&server.url(), Delivery::ExecuteStream);
    settings.max_message_size = 16 * 1024;
    let t = GrpcTransport::new(settings, Arc::new(NoToken)).unwrap();
    t.connect().unwrap();
    t.register(&[registration("rt-calc", "calc", 4)]).unwrap();
    engine.enqueue(task(1, "calc"));
    let got = receive_tasks(&t, 1);
    let mut out = JsonObject::new();
    out.insert("blob".into(), "x".repeat(64 * 1024).into());
    let big = TaskResult::completed(&got[0], out, 1);
    assert_eq!(t.report(&[big]).unwrap(), vec![ACCEPT]);
    let r = engine.read(|s| s.accepted[0].clone());
    assert_eq!(r.status(), ResultStatus::Failed);
    assert_eq!(r.error().unwrap().code, RESULT_TOO_LARGE);
}

struct Secret;

impl TokenVerifier for Secret {
    fn verify(&self, authorization: Option<&str>) -> Result<String, AuthError> {
        match authorization {
            None => Err(AuthError::Missing),
            Some("Bearer s3cret") => Ok("executor".into()),
            Some(_) => Err(AuthError::BadSignature),
        }
    }
}

struct Fixed(&'static str);

impl TokenSource for Fixed {
    fn bearer(&self) -> Option<String> {
        Some(self.0.into())
    }
}

#[test]
fn a_bad_or_missing_token_is_unauthenticated() {
    let engine = FakeEngine::new();
    let settings = GrpcServerSettings {
        verifier: Arc::new(Secret),
        ..GrpcServerSettings::default()
    };
    let server = EngineServer::start(engine.clone(), settings);
    let reg = [registration("rt-calc", "calc", 1)];
    for delivery in [Delivery::ExecuteStream, Delivery::StreamTasks] {
        let s = client_settings(&server.url(), delivery);
        let wrong = GrpcTransport::new(s.clone(), Arc::new(Fixed("guess"))).unwrap();
        wrong.connect().unwrap();
        assert!(
            matches!(wrong.register(&reg), Err(TransportError::Unauthenticated(m)) if m.contains("signature")),
        );
        let none = GrpcTransport::new(s.clone(), Arc::new(NoToken)).unwrap();
        none.connect().unwrap();
        assert!(
            matches!(none.register(&reg), Err(TransportError::Unauthenticated(m)) if m.contains("missing bearer token"))
        );
        let right = GrpcTransport::new(s, Arc::new(Fixed("s3cret"))).unwrap();
        right.connect().unwrap();
        right.register(&reg).unwrap();
        right.heartbeat(&[heartbeat("rt-calc", 0)]).unwrap();
        assert!(engine.wait_for(PATIENCE, |s| s.attached() >= 1));
    }
}
