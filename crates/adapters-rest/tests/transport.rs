//! RestTransport against the real router over real sockets.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::routing::{get, post};
use common::{FakeEngine, OnlyGood, Server, StaticToken, wait_until};
use gamelan_ports::domain::{
    Acceptance, CommunicationType, ErrorInfo, ExecutorMetadata, JsonObject, Task, TaskResult,
};
use gamelan_ports::{
    EngineTransport, HealthStatus, Heartbeat, Inbound, Registration, ReportOutcome, TransportError,
};
use gamelan_rest::{HttpServerSettings, RestClientSettings, RestTransport};

fn registration(id: &str, executor_type: &str) -> Registration {
    Registration {
        executor_id: id.to_owned(),
        metadata: ExecutorMetadata::new(executor_type)
            .communication(CommunicationType::Rest)
            .max_concurrent_tasks(8)
            .version("2.1.0"),
        endpoint: String::new(),
        attributes: BTreeMap::from([("gamelan.executor.version".to_owned(), "2.1.0".to_owned())]),
    }
}

fn transport(server: &Server) -> RestTransport {
    let mut settings = RestClientSettings::new(&server.url);
    settings.connect_timeout = Duration::from_secs(5);
    settings.request_timeout = Duration::from_secs(10);
    settings.long_poll_wait = Duration::from_secs(5);
    RestTransport::new(settings).expect("valid settings")
}

fn tasks(inbound: Vec<Inbound>) -> Vec<Task> {
    inbound
        .into_iter()
        .map(|i| match i {
            Inbound::Task(t) => t,
            Inbound::Cancel { task_id, .. } => panic!("unexpected cancel of {task_id}"),
        })
        .collect()
}

fn output(n: i64) -> JsonObject {
    let mut o = JsonObject::new();
    o.insert("n".into(), n.into());
    o
}

#[test]
fn register_heartbeat_poll_report_release_unregister() {
    let engine = FakeEngine::new();
    let server = Server::start(engine.clone(), HttpServerSettings::default());
    let t = transport(&server);
    assert_eq!(t.name(), "rest");
    t.connect().unwrap();
    t.register(&[registration("rt-echo", "echo")]).unwrap();
    let stored = engine.registration("rt-echo").expect("registered");
    assert_eq!(stored.metadata.executor_type, "echo");
    assert_eq!(stored.metadata.communication_type, CommunicationType::Rest);
    assert_eq!(stored.metadata.max_concurrent_tasks, 8);
    assert_eq!(stored.metadata.version, "2.1.0");

    t.heartbeat(&[Heartbeat {
        executor_id: "rt-echo".into(),
        current_task_count: 3,
        status: HealthStatus::Busy,
        completed_tasks: 7,
        failed_tasks: 1,
        ..Heartbeat::default()
    }])
    .unwrap();
    let beats = engine.heartbeats();
    assert_eq!(beats.len(), 1);
    assert_eq!(
        (
            beats[0].current_task_count,
            beats[0].status,
            beats[0].completed_tasks
        ),
        (3, HealthStatus::Busy, 7)
    );

    // Queued before the poll: answered at once, not after the 5 s wait.
    engine.enqueue(Task::new("run-a", "n1", "echo", 1));
    engine.enqueue(Task::new("run-b", "n1", "echo", 1));
    let started = Instant::now();
    let got = tasks(t.receive(10, Duration::from_secs(5)).unwrap());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    let ids: Vec<&str> = got.iter().map(|t| t.task_id.as_str()).collect();
    assert_eq!(ids, ["run-a:n1:1", "run-b:n1:1"]);

    // Per-result answers: accept, repeat, never dispatched.
    let first = TaskResult::completed(&got[0], output(1), 5);
    let ghost = TaskResult::completed(&Task::new("ghost", "n", "echo", 1), output(0), 5);
    let outcomes = t.report(&[first.clone(), ghost]).unwrap();
    assert_eq!(outcomes[0], ReportOutcome::Accepted(Acceptance::Accept));
    match &outcomes[1] {
        ReportOutcome::Rejected(reason) => {
            assert!(reason.contains("no task was dispatched"), "{reason}");
        }
        other @ ReportOutcome::Accepted(_) => panic!("expected a rejection, got {other:?}"),
    }
    assert!(engine.completed("run-a:n1:1"));
    let again = t.report(&[first]).unwrap();
    assert_eq!(
        again,
        [ReportOutcome::Accepted(Acceptance::AlreadyProcessed)]
    );

    // Handing back the unstarted task requeues it for the next poll.
    t.release(&got[1..]).unwrap();
    assert_eq!(engine.released(), ["run-b:n1:1"]);
    let again = tasks(t.receive(10, Duration::from_secs(5)).unwrap());
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].task_id, "run-b:n1:1");

    t.unregister(&["rt-echo".to_owned()]).unwrap();
    assert!(engine.executor_ids().is_empty());
    // Unregistering what is already gone is not an error.
    t.unregister(&["rt-echo".to_owned()]).unwrap();
}

#[test]
fn long_poll_is_empty_after_the_wait_and_wakes_for_new_tasks() {
    let engine = FakeEngine::new();
    let server = Server::start(engine.clone(), HttpServerSettings::default());
    let t = Arc::new(transport(&server));
    t.register(&[registration("rt-echo", "echo")]).unwrap();

    let started = Instant::now();
    let got = t.receive(10, Duration::from_millis(300)).unwrap();
    let took = started.elapsed();
    assert!(got.is_empty());
    assert!(
        took >= Duration::from_millis(300),
        "returned early: {took:?}"
    );
    assert!(took < Duration::from_secs(4), "waited too long: {took:?}");

    let waiter = {
        let t = t.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            (t.receive(10, Duration::from_secs(20)), started.elapsed())
        })
    };
    assert!(
        wait_until(Duration::from_secs(10), || engine
            .waiting
            .load(Ordering::SeqCst)
            > 0),
        "the long poll never reached the engine"
    );
    engine.enqueue(Task::new("late", "n", "echo", 1));
    let (got, took) = waiter.join().unwrap();
    let got = tasks(got.unwrap());
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].task_id, "late:n:1");
    assert!(took < Duration::from_secs(5), "woke late: {took:?}");
}

#[test]
fn no_credit_means_no_traffic_and_close_ends_the_wait() {
    let engine = FakeEngine::new();
    let server = Server::start(engine.clone(), HttpServerSettings::default());
    let t = Arc::new(transport(&server));
    t.register(&[registration("rt-echo", "echo")]).unwrap();
    engine.enqueue(Task::new("kept", "n", "echo", 1));

    let started = Instant::now();
    assert!(t.receive(0, Duration::from_millis(200)).unwrap().is_empty());
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(
        engine.polls.load(Ordering::SeqCst),
        0,
        "max=0 must not poll"
    );
    assert_eq!(engine.queued(), 1);

    let waiter = {
        let t = t.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            (t.receive(0, Duration::from_secs(30)), started.elapsed())
        })
    };
    t.close();
    let (result, took) = waiter.join().unwrap();
    assert_eq!(result, Err(TransportError::Closed));
    assert!(
        took < Duration::from_secs(10),
        "close did not end the wait: {took:?}"
    );
    assert_eq!(t.heartbeat(&[]), Err(TransportError::Closed));
    assert_eq!(t.connect(), Err(TransportError::Closed));
}

#[test]
fn polls_spread_over_executors_and_results_go_back_under_the_receiving_id() {
    let engine = FakeEngine::new();
    let server = Server::start(engine.clone(), HttpServerSettings::default());
    let t = transport(&server);
    t.register(&[registration("rt-a", "alpha"), registration("rt-b", "beta")])
        .unwrap();
    engine.enqueue(Task::new("r1", "n", "beta", 1));
    engine.enqueue(Task::new("r2", "n", "alpha", 1));
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < 2 && Instant::now() < deadline {
        got.extend(tasks(t.receive(10, Duration::from_millis(200)).unwrap()));
    }
    got.sort_by(|a, b| a.task_id.cmp(&b.task_id));
    assert_eq!(got.len(), 2, "{got:?}");

    let before = engine.lookups().len();
    let results: Vec<TaskResult> = got
        .iter()
        .map(|task| TaskResult::completed(task, output(2), 9))
        .collect();
    let outcomes = t.report(&results).unwrap();
    assert_eq!(
        outcomes,
        [
            ReportOutcome::Accepted(Acceptance::Accept),
            ReportOutcome::Accepted(Acceptance::Accept)
        ]
    );
    let mut posted: Vec<String> = engine.lookups()[before..].to_vec();
    posted.sort();
    assert_eq!(posted, ["rt-a", "rt-b"], "one batch per receiving executor");

    // A result the transport never saw goes out under the first registered id.
    let before = engine.lookups().len();
    let orphan = TaskResult::failed(
        &Task::new("orphan", "n", "beta", 1),
        ErrorInfo::new("X", "boom"),
        1,
    );
    let outcome = t.report(&[orphan]).unwrap();
    assert!(matches!(outcome[0], ReportOutcome::Rejected(_)));
    assert_eq!(engine.lookups()[before..], ["rt-a"]);
}

/// A runtime hosting several executor types waits on all of them with one request: a task
/// for any of them ends the wait, whichever executor the rotation puts first.
#[test]
fn one_long_poll_waits_for_every_executor_of_the_runtime() {
    let engine = FakeEngine::new();
    let server = Server::start(engine.clone(), HttpServerSettings::default());
    let mut settings = RestClientSettings::new(&server.url);
    settings.request_timeout = Duration::from_secs(10);
    // Longer than the test's deadline below: a poll waiting on the wrong executor fails
    // the test instead of returning empty and being retried.
    settings.long_poll_wait = Duration::from_secs(60);
    let t = Arc::new(RestTransport::new(settings).unwrap());
    t.register(&[
        registration("rt-a", "alpha"),
        registration("rt-b", "beta"),
        registration("rt-c", "gamma"),
    ])
    .unwrap();
    let rounds = [
        ("gamma", "rt-c"),
        ("alpha", "rt-a"),
        ("beta", "rt-b"),
        ("gamma", "rt-c"),
    ];
    for (round, (node_type, owner)) in rounds.into_iter().enumerate() {
        let polls = engine.polls.load(Ordering::SeqCst);
        let waiting = engine.waiting.load(Ordering::SeqCst);
        let waiter = {
            let t = t.clone();
            std::thread::spawn(move || t.receive(10, Duration::from_secs(60)))
        };
        assert!(
            wait_until(Duration::from_secs(10), || engine
                .waiting
                .load(Ordering::SeqCst)
                > waiting),
            "round {round}: the long poll never reached the engine"
        );
        let run = format!("late-{round}");
        engine.enqueue(Task::new(&run, "n", node_type, 1));
        let got = tasks(waiter.join().unwrap().unwrap());
        assert_eq!(got.len(), 1, "round {round}: {got:?}");
        assert_eq!(got[0].run_id, run);
        assert_eq!(
            engine.polls.load(Ordering::SeqCst) - polls,
            1,
            "round {round}: one request covers every executor"
        );
        let before = engine.lookups().len();
        let outcome = t
            .report(&[TaskResult::completed(&got[0], output(1), 1)])
            .unwrap();
        assert_eq!(outcome, [ReportOutcome::Accepted(Acceptance::Accept)]);
        assert_eq!(engine.lookups()[before..], [owner], "round {round}");
    }
}

/// More executor types than one poll may name: each poll names a rotating window of them,
/// so a task for any type is still received.
#[test]
fn a_runtime_with_more_types_than_one_poll_names_still_gets_every_task() {
    let engine = FakeEngine::new();
    let server = Server::start(engine.clone(), HttpServerSettings::default());
    let mut settings = RestClientSettings::new(&server.url);
    settings.request_timeout = Duration::from_secs(10);
    settings.long_poll_wait = Duration::from_millis(50);
    let t = RestTransport::new(settings).unwrap();
    let registrations: Vec<Registration> = (0..300)
        .map(|i| registration(&format!("rt-{i}"), &format!("type-{i}")))
        .collect();
    t.register(&registrations).unwrap();
    engine.enqueue(Task::new("far", "n", "type-299", 1));
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.is_empty() && Instant::now() < deadline {
        got = tasks(t.receive(10, Duration::from_millis(50)).unwrap());
    }
    assert_eq!(got.len(), 1, "the task for the 300th type never arrived");
    assert_eq!(got[0].run_id, "far");
}

#[test]
fn a_poll_over_several_executors_registers_them_again_after_an_engine_restart() {
    let engine = FakeEngine::new();
    let server = Server::start(engine.clone(), HttpServerSettings::default());
    let t = transport(&server);
    t.register(&[registration("rt-a", "alpha"), registration("rt-b", "beta")])
        .unwrap();
    engine.forget_executors();
    engine.enqueue(Task::new("after-restart", "n", "beta", 1));
    let got = tasks(t.receive(5, Duration::from_secs(5)).unwrap());
    assert_eq!(got.len(), 1);
    assert_eq!(engine.executor_ids(), ["rt-a", "rt-b"]);
}

#[test]
fn stale_attempts_are_reported_as_stale() {
    let engine = FakeEngine::new();
    let server = Server::start(engine.clone(), HttpServerSettings::default());
    let t = transport(&server);
    t.register(&[registration("rt-echo", "echo")]).unwrap();
    engine.enqueue(Task::new("run", "n", "echo", 2));
    let got = tasks(t.receive(1, Duration::from_secs(5)).unwrap());
    let old = TaskResult::completed(&Task::new("run", "n", "echo", 1), output(1), 1);
    let current = TaskResult::completed(&got[0], output(2), 1);
    assert_eq!(
        t.report(&[old, current]).unwrap(),
        [
            ReportOutcome::Accepted(Acceptance::Stale),
            ReportOutcome::Accepted(Acceptance::Accept)
        ]
    );
}

#[test]
fn a_forgotten_executor_is_registered_again_transparently() {
    let engine = FakeEngine::new();
    let server = Server::start(engine.clone(), HttpServerSettings::default());
    let t = transport(&server);
    t.register(&[registration("rt-echo", "echo")]).unwrap();
    engine.forget_executors();
    t.heartbeat(&[Heartbeat {
        executor_id: "rt-echo".into(),
        ..Heartbeat::default()
    }])
    .unwrap();
    assert_eq!(engine.executor_ids(), ["rt-echo"]);
    engine.forget_executors();
    engine.enqueue(Task::new("after-restart", "n", "echo", 1));
    let got = tasks(t.receive(5, Duration::from_secs(5)).unwrap());
    assert_eq!(got.len(), 1);
}

#[test]
fn oversized_result_batches_are_split() {
    let engine = FakeEngine::new();
    let settings = HttpServerSettings {
        max_body_bytes: 4 * 1024,
        ..HttpServerSettings::default()
    };
    let server = Server::start(engine.clone(), settings);
    let t = transport(&server);
    t.register(&[registration("rt-echo", "echo")]).unwrap();
    for i in 0..24 {
        engine.enqueue(Task::new(format!("run-{i}"), "n", "echo", 1));
    }
    let mut got = Vec::new();
    while got.len() < 24 {
        let batch = tasks(t.receive(24, Duration::from_secs(5)).unwrap());
        assert!(!batch.is_empty());
        got.extend(batch);
    }
    let padding = "x".repeat(400);
    let results: Vec<TaskResult> = got
        .iter()
        .map(|task| {
            let mut o = output(1);
            o.insert("pad".into(), padding.clone().into());
            TaskResult::completed(task, o, 1)
        })
        .collect();
    let outcomes = t.report(&results).unwrap();
    assert_eq!(outcomes.len(), 24);
    assert!(
        outcomes
            .iter()
            .all(|o| *o == ReportOutcome::Accepted(Acceptance::Accept)),
        "{outcomes:?}"
    );
    assert!(got.iter().all(|task| engine.completed(&task.task_id)));
}

#[test]
fn credentials_are_checked_and_refusals_are_classified() {
    let engine = FakeEngine::new();
    let settings = HttpServerSettings {
        verifier: Arc::new(OnlyGood),
        ..HttpServerSettings::default()
    };
    let server = Server::start(engine.clone(), settings);

    let mut bad = RestClientSettings::new(&server.url);
    bad.token = Arc::new(StaticToken("forged"));
    let bad = RestTransport::new(bad).unwrap();
    match bad.register(&[registration("rt-echo", "echo")]) {
        Err(TransportError::Unauthenticated(m)) => assert!(m.contains("signature"), "{m}"),
        other => panic!("expected Unauthenticated, got {other:?}"),
    }
    let anonymous = transport(&server);
    match anonymous.register(&[registration("rt-echo", "echo")]) {
        Err(TransportError::Unauthenticated(m)) => assert!(m.contains("missing"), "{m}"),
        other => panic!("expected Unauthenticated, got {other:?}"),
    }
    assert!(engine.executor_ids().is_empty());

    let mut good = RestClientSettings::new(&server.url);
    good.token = Arc::new(StaticToken("good"));
    let good = RestTransport::new(good).unwrap();
    good.register(&[registration("rt-echo", "echo")]).unwrap();

    // The engine's own refusal comes back as Rejected with its message.
    match good.register(&[registration(" ", "echo")]) {
        Err(TransportError::Rejected(m)) => assert!(m.contains("executorId"), "{m}"),
        other => panic!("expected Rejected, got {other:?}"),
    }
}

#[test]
fn an_unreachable_engine_is_unavailable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut settings = RestClientSettings::new(format!("http://127.0.0.1:{port}"));
    settings.connect_timeout = Duration::from_secs(2);
    let t = RestTransport::new(settings).unwrap();
    assert!(matches!(
        t.register(&[registration("rt", "echo")]),
        Err(TransportError::Unavailable(_))
    ));
    // A peer that accepts the connection but never answers: the request timeout applies.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut settings = RestClientSettings::new(format!("http://{}", silent.local_addr().unwrap()));
    settings.request_timeout = Duration::from_millis(300);
    let t = RestTransport::new(settings).unwrap();
    let started = Instant::now();
    match t.register(&[registration("rt", "echo")]) {
        Err(TransportError::Unavailable(m)) => assert!(m.contains("timeout"), "{m}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(silent);
    assert!(RestTransport::new(RestClientSettings::new("ftp://x")).is_err());
    assert!(RestTransport::new(RestClientSettings::new("not a url")).is_err());
}

#[test]
fn server_errors_are_unavailable_and_garbage_is_a_protocol_error() {
    let router = axum::Router::new()
        .route("/api/v1/executors", post(|| async { StatusCode::OK }))
        .route(
            "/api/v1/executors/{id}/heartbeat",
            post(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "database on fire") }),
        )
        .route(
            "/api/v1/executors/{id}/tasks",
            get(|| async { "this is not json" }),
        )
        .route("/api/v1/executors/{id}/results", post(|| async { "[]" }));
    let server = Server::start_router(router);
    let t = transport(&server);
    t.register(&[registration("rt", "echo")]).unwrap();
    match t.heartbeat(&[Heartbeat {
        executor_id: "rt".into(),
        ..Heartbeat::default()
    }]) {
        Err(TransportError::Unavailable(m)) => assert!(m.contains("database on fire"), "{m}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(matches!(
        t.receive(1, Duration::from_millis(10)),
        Err(TransportError::Protocol(_))
    ));
    let result = TaskResult::completed(&Task::new("r", "n", "echo", 1), output(1), 1);
    assert!(matches!(
        t.report(&[result]),
        Err(TransportError::Protocol(_))
    ));
}
