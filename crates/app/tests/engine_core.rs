//! The reference engine driven through `EngineService` with a hand-moved clock and
//! recording sinks: every wait is on a condition, never a sleep.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gamelan::engine::testing::{ManualClock, RecordingSink};
use gamelan::engine::{Engine, EngineSettings};
use gamelan_domain::{
    Acceptance, ExecutionError, ExecutorMetadata, IntakeError, JsonObject, RetryPolicy, Task,
    TaskResult, codes,
};
use gamelan_ports::{
    EngineError, EngineService, HealthStatus, Heartbeat, Registration, SubmitRequest, TaskState,
};

const TYPE: &str = "calculate-tax";

fn settings() -> EngineSettings {
    EngineSettings {
        heartbeat_timeout: Duration::from_secs(10),
        ack_timeout: Duration::from_secs(30),
        // The tests sweep by hand; the thread stays out of the way.
        sweep_interval: Duration::from_secs(3600),
        retry: RetryPolicy {
            max_attempts: 2,
            initial_delay: Duration::from_secs(1),
            multiplier: 2.0,
            max_delay: Duration::from_secs(10),
            jitter: 0.0,
        },
        data_dir: None,
        max_long_polls: 256,
        retention: Duration::from_secs(3600),
        max_retained: 100_000,
    }
}

fn open(settings: EngineSettings) -> (Arc<Engine>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new());
    let engine = Engine::open(settings, clock.clone()).expect("engine opens");
    (engine, clock)
}

fn registration(id: &str, max: u32) -> Registration {
    Registration {
        executor_id: id.into(),
        metadata: ExecutorMetadata::new(TYPE).max_concurrent_tasks(max),
        endpoint: String::new(),
        attributes: BTreeMap::new(),
    }
}

fn heartbeat(id: &str) -> Heartbeat {
    Heartbeat {
        executor_id: id.into(),
        status: HealthStatus::Ready,
        ..Heartbeat::default()
    }
}

fn request(amount: u64) -> SubmitRequest {
    let mut input = JsonObject::new();
    input.insert("amount".into(), amount.into());
    SubmitRequest {
        executor_type: Some(TYPE.into()),
        input,
        ..SubmitRequest::default()
    }
}

fn submit(engine: &Engine, n: u64) -> Vec<String> {
    engine
        .submit_batch((0..n).map(request).collect())
        .into_iter()
        .map(|r| r.expect("accepted").task_id)
        .collect()
}

fn done(task: &Task) -> TaskResult {
    let mut output = JsonObject::new();
    output.insert("by".into(), task.task_id.clone().into());
    TaskResult::completed(task, output, 1)
}

fn accept_all(engine: &Engine, tasks: &[Task]) {
    let answers = engine.report(tasks.iter().map(done).collect());
    for a in answers {
        assert_eq!(a, Ok(Acceptance::Accept));
    }
}

/// Polls `cond` every few milliseconds until it holds or `limit` passes.
fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::yield_now();
        std::thread::park_timeout(Duration::from_millis(2));
    }
    cond()
}

#[test]
fn dispatch_respects_capacity_and_spreads_load() {
    let (engine, _clock) = open(settings());
    engine.register(registration("a", 3)).unwrap();
    engine.register(registration("b", 3)).unwrap();
    let sink_a = RecordingSink::new();
    let sink_b = RecordingSink::new();
    engine.attach("a", 10, sink_a.clone()).unwrap();
    engine.attach("b", 10, sink_b.clone()).unwrap();

    let ids = submit(&engine, 20);
    assert_eq!(sink_a.len(), 3, "a is capped at its max concurrent tasks");
    assert_eq!(sink_b.len(), 3);
    let stats = engine.statistics();
    assert_eq!((stats.tasks_pending, stats.tasks_in_flight), (14, 6));

    let mut completed = HashSet::new();
    let (mut held_a, mut held_b) = (sink_a.take(), sink_b.take());
    for step in 0..20 {
        // Finish one task per step, alternating executors while both have work, and check
        // the cap after every step.
        let held = if (step % 2 == 0 && !held_a.is_empty()) || held_b.is_empty() {
            &mut held_a
        } else {
            &mut held_b
        };
        let task = held.remove(0);
        accept_all(&engine, std::slice::from_ref(&task));
        assert!(completed.insert(task.task_id.clone()));
        held_a.extend(sink_a.take());
        held_b.extend(sink_b.take());
        assert!(held_a.len() <= 3 && held_b.len() <= 3);
        for view in engine.executors() {
            assert!(
                view.in_flight <= 3,
                "{} has {} in flight",
                view.executor_id,
                view.in_flight
            );
        }
    }
    assert_eq!(completed.len(), 20);
    let ids: HashSet<_> = ids.into_iter().collect();
    assert_eq!(completed, ids);
    let views = engine.executors();
    assert_eq!(views.len(), 2);
    assert_eq!(views[0].completed_tasks + views[1].completed_tasks, 20);
    assert!(
        views.iter().all(|v| v.completed_tasks >= 3),
        "both executors got work: {views:?}"
    );
    assert_eq!(engine.statistics().tasks_completed, 20);
}

#[test]
fn stream_credit_caps_below_max_concurrent_and_ties_rotate() {
    let (engine, _clock) = open(settings());
    engine.register(registration("a", 10)).unwrap();
    engine.register(registration("b", 10)).unwrap();
    let sink_a = RecordingSink::new();
    let sink_b = RecordingSink::new();
    engine.attach("a", 2, sink_a.clone()).unwrap();
    engine.attach("b", 2, sink_b.clone()).unwrap();
    submit(&engine, 3);
    assert_eq!(sink_a.len() + sink_b.len(), 3);
    assert!(
        !sink_a.is_empty() && !sink_b.is_empty(),
        "least loaded first"
    );
    submit(&engine, 5);
    assert_eq!(
        (sink_a.len(), sink_b.len()),
        (2, 2),
        "stream credit is the cap"
    );
    assert_eq!(engine.statistics().tasks_pending, 4);
}

#[test]
fn a_task_waits_until_an_executor_with_room_appears() {
    let (engine, _clock) = open(settings());
    let id = submit(&engine, 1).remove(0);
    assert_eq!(engine.task(&id).unwrap().status, TaskState::Pending);

    engine.register(registration("a", 1)).unwrap();
    assert_eq!(
        engine.task(&id).unwrap().status,
        TaskState::Pending,
        "registered but no open route: nothing is sent"
    );
    let sink = RecordingSink::new();
    engine.attach("a", 1, sink.clone()).unwrap();
    let delivered = sink.take();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].task_id, id);
    assert_eq!(delivered[0].context["amount"], 0);
    assert!(!delivered[0].execution_token.is_empty());
    let view = engine.task(&id).unwrap();
    assert_eq!(view.status, TaskState::Running);
    assert_eq!(view.executor_id.as_deref(), Some("a"));

    // The executor is full: the next task waits until a result frees room.
    let second = submit(&engine, 1).remove(0);
    assert!(sink.is_empty());
    accept_all(&engine, &delivered);
    let next = sink.take();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].task_id, second);

    // A task of a type nobody handles stays pending.
    let other = engine
        .submit(SubmitRequest {
            node_type: Some("other".into()),
            ..SubmitRequest::default()
        })
        .unwrap();
    accept_all(&engine, &next);
    assert_eq!(
        engine.task(&other.task_id).unwrap().status,
        TaskState::Pending
    );
    assert!(sink.is_empty());
}

#[test]
fn heartbeat_timeout_moves_a_dead_executors_tasks_to_the_other() {
    let (engine, clock) = open(settings());
    engine.register(registration("a", 2)).unwrap();
    engine.register(registration("b", 2)).unwrap();
    let sink_a = RecordingSink::new();
    let sink_b = RecordingSink::new();
    engine.attach("a", 2, sink_a.clone()).unwrap();
    engine.attach("b", 2, sink_b.clone()).unwrap();
    submit(&engine, 4);
    let on_a = sink_a.take();
    let on_b = sink_b.take();
    assert_eq!((on_a.len(), on_b.len()), (2, 2));

    // b keeps beating, a falls silent past the 10 s timeout.
    for _ in 0..3 {
        clock.advance(Duration::from_secs(4));
        engine.heartbeat(&heartbeat("b")).unwrap();
        engine.sweep();
    }
    let a_view = engine.executor("a").unwrap();
    assert!(!a_view.alive, "a is declared dead");
    assert_eq!(a_view.in_flight, 0);
    assert!(engine.executor("b").unwrap().alive);
    assert_eq!(engine.statistics().tasks_redispatched, 2);
    for t in &on_a {
        let view = engine.task(&t.task_id).unwrap();
        assert_eq!((view.status, view.attempt), (TaskState::Pending, 2));
    }

    // b frees its slots and picks up a's tasks as attempt 2.
    accept_all(&engine, &on_b);
    let moved = sink_b.take();
    assert_eq!(moved.len(), 2);
    let moved_runs: HashSet<_> = moved.iter().map(|t| t.run_id.clone()).collect();
    let a_runs: HashSet<_> = on_a.iter().map(|t| t.run_id.clone()).collect();
    assert_eq!(moved_runs, a_runs);
    assert!(moved.iter().all(|t| t.attempt == 2));

    // a's late results are stale; b's are accepted: each task accepted exactly once.
    for answer in engine.report(on_a.iter().map(done).collect()) {
        assert_eq!(answer, Ok(Acceptance::Stale));
    }
    accept_all(&engine, &moved);
    let stats = engine.statistics();
    assert_eq!((stats.tasks_completed, stats.results_stale), (4, 2));
    for t in &on_a {
        let view = engine.task(&t.task_id).unwrap();
        assert_eq!(view.executor_id.as_deref(), Some("b"));
        assert_eq!(
            view.output.unwrap()["by"],
            format!("{}:{}:2", t.run_id, t.node_id)
        );
    }

    // The dead executor receives nothing more until it beats again.
    submit(&engine, 1);
    assert!(sink_a.is_empty());
    assert_eq!(sink_b.len(), 1);
    engine.heartbeat(&heartbeat("a")).unwrap();
    assert!(engine.executor("a").unwrap().alive);
    submit(&engine, 1);
    assert_eq!(sink_a.len() + sink_b.len(), 2);
}

#[test]
fn detach_requeues_as_a_new_attempt_and_a_refusing_sink_is_detached() {
    let (engine, _clock) = open(settings());
    engine.register(registration("a", 5)).unwrap();
    let first = RecordingSink::new();
    let stream = engine.attach("a", 5, first.clone()).unwrap();
    submit(&engine, 2);
    let old = first.take();
    engine.acknowledge(&old[0].task_id).unwrap();

    engine.detach("a", stream);
    for t in &old {
        let view = engine.task(&t.task_id).unwrap();
        assert_eq!((view.status, view.attempt), (TaskState::Pending, 2));
    }
    let second = RecordingSink::new();
    engine.attach("a", 5, second.clone()).unwrap();
    let new = second.take();
    assert_eq!(new.len(), 2);
    for (o, n) in old.iter().zip(&new) {
        assert_eq!(n.attempt, 2);
        assert_ne!(o.execution_token, n.execution_token);
    }
    assert_eq!(
        engine.report(vec![done(&old[0])]),
        vec![Ok(Acceptance::Stale)]
    );
    accept_all(&engine, &new);

    // A sink that refuses has lost its stream: the task waits (same attempt, it never
    // left) and goes out on the next stream.
    second.close();
    let id = submit(&engine, 1).remove(0);
    let view = engine.task(&id).unwrap();
    assert_eq!((view.status, view.attempt), (TaskState::Pending, 1));
    let third = RecordingSink::new();
    engine.attach("a", 5, third.clone()).unwrap();
    let got = third.take();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].task_id.as_str(), got[0].attempt), (id.as_str(), 1));
}

#[test]
fn duplicate_stale_and_invalid_results_are_answered_one_by_one() {
    let (engine, _clock) = open(settings());
    engine.register(registration("a", 5)).unwrap();
    let sink = RecordingSink::new();
    engine.attach("a", 5, sink.clone()).unwrap();
    submit(&engine, 2);
    let tasks = sink.take();

    let mut wrong_token = tasks[1].clone();
    wrong_token.execution_token = "forged".into();
    let mut future = tasks[1].clone();
    future.attempt = 5;
    future.task_id = format!("{}:{}:5", future.run_id, future.node_id);
    let unknown = Task::new("nobody", "node", TYPE, 1);
    let answers = engine.report(vec![
        done(&tasks[0]),
        done(&wrong_token),
        done(&tasks[0]),
        done(&future),
        done(&unknown),
        done(&tasks[1]),
    ]);
    assert_eq!(answers[0], Ok(Acceptance::Accept));
    assert_eq!(
        answers[1],
        Err(EngineError::Intake(IntakeError::TokenMismatch {
            attempt: 1
        }))
    );
    assert_eq!(answers[2], Ok(Acceptance::AlreadyProcessed));
    assert_eq!(
        answers[3],
        Err(EngineError::Intake(IntakeError::FutureAttempt {
            reported: 5,
            current: 1
        }))
    );
    assert!(matches!(answers[4], Err(EngineError::UnknownTask(_))));
    assert_eq!(
        answers[5],
        Ok(Acceptance::Accept),
        "the batch's others are unaffected"
    );
    let stats = engine.statistics();
    assert_eq!((stats.tasks_completed, stats.results_duplicate), (2, 1));
    // A result for a task accepted but never dispatched cannot carry its token.
    let queued = engine
        .submit(SubmitRequest {
            node_type: Some("unhosted".into()),
            ..SubmitRequest::default()
        })
        .unwrap();
    assert_eq!(
        engine.task(&queued.task_id).unwrap().status,
        TaskState::Pending
    );
    let guess = Task::new(&queued.run_id, &queued.node_id, "unhosted", 1);
    assert!(matches!(
        engine.report(vec![done(&guess)])[0],
        Err(EngineError::Intake(IntakeError::TokenMismatch { .. }))
    ));
}

#[test]
fn a_technical_failure_is_retried_as_a_new_attempt_and_the_old_result_is_stale() {
    let (engine, clock) = open(settings());
    engine.register(registration("a", 5)).unwrap();
    let sink = RecordingSink::new();
    engine.attach("a", 5, sink.clone()).unwrap();
    let id = submit(&engine, 1).remove(0);
    let first = sink.take().remove(0);

    let technical = ExecutionError::technical("NET", "dependency down").to_error_info();
    let failure = TaskResult::failed(&first, technical.clone(), 1);
    assert_eq!(
        engine.report(vec![failure.clone()]),
        vec![Ok(Acceptance::Accept)]
    );
    let view = engine.task(&id).unwrap();
    assert_eq!((view.status, view.attempt), (TaskState::Pending, 2));
    assert_eq!(view.error.as_ref().map(|e| e.code.as_str()), Some("NET"));

    // Not before the policy's 1 s delay.
    clock.advance(Duration::from_millis(999));
    engine.sweep();
    assert!(sink.is_empty());
    clock.advance(Duration::from_millis(1));
    engine.sweep();
    let second = sink.take().remove(0);
    assert_eq!(second.attempt, 2);
    assert_ne!(second.execution_token, first.execution_token);
    assert_eq!(
        second.task_id,
        format!("{}:{}:2", first.run_id, first.node_id)
    );
    assert_eq!(
        second.context["amount"], 0,
        "the input travels with every attempt"
    );

    // The old attempt's late (or repeated) result is stale.
    assert_eq!(
        engine.report(vec![done(&first)]),
        vec![Ok(Acceptance::Stale)]
    );
    assert_eq!(engine.report(vec![failure]), vec![Ok(Acceptance::Stale)]);
    accept_all(&engine, &[second]);
    let view = engine.task(&id).unwrap();
    assert_eq!((view.status, view.attempt), (TaskState::Completed, 2));
    assert!(view.error.is_none());
    assert_eq!(
        engine.task(&view.task_id).unwrap(),
        view,
        "any attempt's id finds it"
    );
}

#[test]
fn final_failures_and_exhausted_retries() {
    let (engine, clock) = open(settings());
    engine.register(registration("a", 5)).unwrap();
    let sink = RecordingSink::new();
    engine.attach("a", 5, sink.clone()).unwrap();
    let mut once = request(1);
    once.max_attempts = Some(1);
    let ids: Vec<_> = engine
        .submit_batch(vec![request(0), request(0), request(0), once])
        .into_iter()
        .map(|r| r.unwrap().task_id)
        .collect();
    let tasks = sink.take();
    let errors = [
        ExecutionError::business("MISSING_AMOUNT", "amount is required").to_error_info(),
        ExecutionError::NoExecutor(TYPE.into()).to_error_info(),
        ExecutionError::Panic("boom".into()).to_error_info(),
    ];
    let results: Vec<_> = tasks[..3]
        .iter()
        .zip(errors.iter())
        .map(|(t, e)| TaskResult::failed(t, e.clone(), 1))
        .collect();
    assert!(
        engine
            .report(results)
            .iter()
            .all(|a| *a == Ok(Acceptance::Accept))
    );
    for (id, code) in ids
        .iter()
        .zip(["MISSING_AMOUNT", codes::NO_EXECUTOR, codes::EXECUTOR_PANIC])
    {
        let view = engine.task(id).unwrap();
        assert_eq!((view.status, view.attempt), (TaskState::Failed, 1));
        assert_eq!(view.error.unwrap().code, code);
    }

    // One retry allowed: the second technical failure is final.
    let technical = ExecutionError::technical("NET", "down").to_error_info();
    let t = tasks[3].clone();
    engine.report(vec![TaskResult::failed(&t, technical.clone(), 1)]);
    clock.advance(Duration::from_secs(1));
    engine.sweep();
    let retry = sink.take().remove(0);
    engine.report(vec![TaskResult::failed(&retry, technical, 1)]);
    let view = engine.task(&ids[3]).unwrap();
    assert_eq!((view.status, view.attempt), (TaskState::Failed, 2));
    assert_eq!(engine.statistics().tasks_failed, 4);
}

#[test]
fn ack_timeout_and_release_requeue() {
    let (engine, clock) = open(settings());
    engine.register(registration("a", 5)).unwrap();
    let sink = RecordingSink::new();
    engine.attach("a", 5, sink.clone()).unwrap();
    submit(&engine, 2);
    let tasks = sink.take();

    // 20 s in, task 0 is acknowledged, which restarts its 30 s clock.
    clock.advance(Duration::from_secs(20));
    engine.heartbeat(&heartbeat("a")).unwrap();
    engine.acknowledge(&tasks[0].task_id).unwrap();
    clock.advance(Duration::from_secs(9));
    engine.heartbeat(&heartbeat("a")).unwrap();
    engine.sweep();
    assert!(sink.is_empty());
    clock.advance(Duration::from_secs(2));
    engine.heartbeat(&heartbeat("a")).unwrap();
    engine.sweep();
    let again = sink.take();
    assert_eq!(again.len(), 1, "only the unacknowledged one timed out");
    assert_eq!(
        (again[0].run_id.as_str(), again[0].attempt),
        (tasks[1].run_id.as_str(), 2)
    );

    // Released tasks come back at once, as a new attempt.
    engine.release("a", &[tasks[0].task_id.clone()]).unwrap();
    let back = sink.take();
    assert_eq!(back.len(), 1);
    assert_eq!(
        (back[0].run_id.as_str(), back[0].attempt),
        (tasks[0].run_id.as_str(), 2)
    );
    assert_eq!(engine.statistics().tasks_redispatched, 2);
    assert!(matches!(
        engine.acknowledge("r:n:1"),
        Err(EngineError::UnknownTask(_))
    ));
}

#[test]
fn executor_table_registration_heartbeat_and_unregistration() {
    let (engine, clock) = open(settings());
    assert!(matches!(
        engine.heartbeat(&heartbeat("a")),
        Err(EngineError::UnknownExecutor(_))
    ));
    let mut reg = registration("a", 0);
    reg.metadata.supported_node_types = vec!["vat".into()];
    reg.attributes
        .insert("gamelan.grpc.delivery".into(), "stream".into());
    let registered = engine.register(reg.clone()).unwrap();
    assert_eq!(registered.status, "REGISTERED");
    assert_eq!(engine.executor("a").unwrap().max_concurrent_tasks, 10);
    let sink = RecordingSink::new();
    engine.attach("a", 0, sink.clone()).unwrap();
    let vat = engine
        .submit(SubmitRequest {
            node_type: Some("vat".into()),
            ..SubmitRequest::default()
        })
        .unwrap();
    accept_all(&engine, &sink.take());
    assert_eq!(
        engine.task(&vat.task_id).unwrap().status,
        TaskState::Completed
    );

    // Re-registration keeps the statistics and revives a dead executor.
    clock.advance(Duration::from_secs(11));
    engine.sweep();
    assert!(!engine.executor("a").unwrap().alive);
    engine.register(reg).unwrap();
    let view = engine.executor("a").unwrap();
    assert!(view.alive);
    assert_eq!(view.completed_tasks, 1);
    assert_eq!(view.supported_node_types, vec!["vat".to_owned()]);

    // Unregistering requeues what it had in flight.
    submit(&engine, 1);
    assert_eq!(sink.len(), 1);
    engine.unregister("a").unwrap();
    assert!(matches!(
        engine.executor("a"),
        Err(EngineError::UnknownExecutor(_))
    ));
    let stats = engine.statistics();
    assert_eq!(
        (stats.executors, stats.tasks_pending, stats.tasks_in_flight),
        (0, 1, 0)
    );
    assert!(matches!(
        engine.unregister("a"),
        Err(EngineError::UnknownExecutor(_))
    ));

    assert!(matches!(
        engine.register(registration("", 1)),
        Err(EngineError::Invalid(_))
    ));
    engine.register(registration("b", 1)).unwrap();
    let stats = engine.statistics();
    assert_eq!(stats.executors_by_type.get(TYPE), Some(&1));
}

#[test]
fn submission_validation_defaults_and_idempotency() {
    let (engine, _clock) = open(settings());
    let err = engine.submit(SubmitRequest::default()).unwrap_err();
    assert!(
        matches!(&err, EngineError::Invalid(m) if m.contains("executorType") && m.contains("nodeType")),
        "{err}"
    );
    let mut bad = request(1);
    bad.node_id = Some("a:b".into());
    assert!(matches!(engine.submit(bad), Err(EngineError::Invalid(_))));

    let a = engine.submit(request(1)).unwrap();
    let b = engine.submit(request(1)).unwrap();
    assert_ne!(a.run_id, b.run_id, "a fresh run id each time");
    assert_eq!(a.node_id, "node");
    assert_eq!(a.task_id, format!("{}:node:1", a.run_id));

    let mut fixed = request(1);
    fixed.run_id = Some("order-7".into());
    fixed.node_id = Some("tax".into());
    let first = engine.submit(fixed.clone()).unwrap();
    let again = engine.submit(fixed).unwrap();
    assert_eq!(first.task_id, "order-7:tax:1");
    assert_eq!(again.task_id, first.task_id);
    assert_eq!(
        engine.statistics().tasks_submitted,
        3,
        "a resubmission is not a new task"
    );
    assert_eq!(engine.task("order-7:tax").unwrap().task_id, "order-7:tax:1");
    assert!(matches!(
        engine.task("order-7:nope:1"),
        Err(EngineError::UnknownTask(_))
    ));
}

#[test]
fn long_poll_returns_at_once_when_queued_and_waits_otherwise() {
    let (engine, _clock) = open(EngineSettings {
        max_long_polls: 1,
        ..settings()
    });
    engine.register(registration("p", 4)).unwrap();
    submit(&engine, 3);
    let start = Instant::now();
    let got = engine.poll("p", 2, Duration::from_secs(30)).unwrap();
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(got.len(), 2);
    assert_eq!(
        engine.executor("p").unwrap().in_flight,
        2,
        "handed-out tasks are in flight"
    );
    let got2 = engine.poll("p", 5, Duration::from_secs(30)).unwrap();
    assert_eq!(got2.len(), 1);

    // Room left (4 - 3 = 1) but nothing queued: empty after the wait.
    let start = Instant::now();
    let none = engine.poll("p", 5, Duration::from_millis(50)).unwrap();
    assert!(none.is_empty());
    assert!(start.elapsed() >= Duration::from_millis(50));

    // A waiting poll gets a task submitted while it waits; a second poll is refused.
    let waiter = {
        let engine = engine.clone();
        std::thread::spawn(move || engine.poll("p", 5, Duration::from_secs(30)))
    };
    assert!(
        eventually(Duration::from_secs(10), || matches!(
            engine.poll("p", 1, Duration::ZERO),
            Err(EngineError::Overloaded { .. })
        )),
        "the second long poll is refused while the first waits"
    );
    let id = submit(&engine, 1).remove(0);
    let woke = waiter.join().unwrap().unwrap();
    assert_eq!(woke.len(), 1);
    assert_eq!(woke[0].task_id, id);
    accept_all(&engine, &got);
    assert_eq!(engine.executor("p").unwrap().in_flight, 2);
    assert!(matches!(
        engine.poll("nobody", 1, Duration::ZERO),
        Err(EngineError::UnknownExecutor(_))
    ));
}

#[test]
fn one_long_poll_covers_several_executors_and_hands_out_at_most_max() {
    let (engine, _clock) = open(EngineSettings {
        max_long_polls: 1,
        ..settings()
    });
    let typed = |id: &str, executor_type: &str| Registration {
        metadata: ExecutorMetadata::new(executor_type).max_concurrent_tasks(4),
        ..registration(id, 4)
    };
    engine.register(typed("a", "alpha")).unwrap();
    engine.register(typed("b", "beta")).unwrap();
    let of_type = |executor_type: &str, n: usize| -> Vec<String> {
        let requests = (0..n)
            .map(|_| SubmitRequest {
                executor_type: Some(executor_type.into()),
                ..SubmitRequest::default()
            })
            .collect();
        engine
            .submit_batch(requests)
            .into_iter()
            .map(|r| r.expect("accepted").task_id)
            .collect()
    };
    let ids = |names: &[&str]| -> Vec<String> { names.iter().map(|&n| n.to_owned()).collect() };

    // Waiting on both, woken by a task for the second.
    let waiter = {
        let engine = engine.clone();
        std::thread::spawn(move || engine.poll_many(&ids(&["a", "b"]), 3, Duration::from_secs(30)))
    };
    assert!(
        eventually(Duration::from_secs(10), || matches!(
            engine.poll("a", 1, Duration::ZERO),
            Err(EngineError::Overloaded { .. })
        )),
        "the poll never started waiting"
    );
    let beta = of_type("beta", 1).remove(0);
    let woke = waiter.join().unwrap().unwrap();
    assert_eq!(woke.len(), 1);
    assert_eq!(
        (woke[0].executor_id.as_str(), woke[0].task.task_id.as_str()),
        ("b", beta.as_str())
    );

    // Six queued, four asked for: two of each, round-robin; the rest goes back to the
    // queue with its attempt (it never left the engine) and the next poll gets it.
    let queued_a = of_type("alpha", 3);
    let queued_b = of_type("beta", 3);
    let got = engine
        .poll_many(&ids(&["a", "b"]), 4, Duration::ZERO)
        .unwrap();
    let owners: Vec<&str> = got.iter().map(|p| p.executor_id.as_str()).collect();
    assert_eq!(owners, ["a", "b", "a", "b"]);
    let stats = engine.statistics();
    assert_eq!(
        (stats.tasks_pending, stats.tasks_in_flight),
        (2, 5),
        "the woken task is in flight too"
    );
    assert_eq!(
        stats.tasks_redispatched, 0,
        "a task taken back from a mailbox keeps its attempt"
    );
    assert_eq!(engine.executor("a").unwrap().in_flight, 2);
    assert_eq!(engine.executor("b").unwrap().in_flight, 3);
    let rest = engine
        .poll_many(&ids(&["b", "a"]), 10, Duration::ZERO)
        .unwrap();
    let mut seen: Vec<String> = got
        .iter()
        .chain(&rest)
        .map(|p| p.task.task_id.clone())
        .collect();
    seen.sort();
    let mut expected: Vec<String> = queued_a.into_iter().chain(queued_b).collect();
    expected.sort();
    assert_eq!(seen, expected, "every task once, first attempts only");
    for p in got.iter().chain(&rest) {
        let task_type = if p.executor_id == "a" {
            "alpha"
        } else {
            "beta"
        };
        assert_eq!(p.task.node_type, task_type, "{p:?}");
    }

    assert!(matches!(
        engine.poll_many(&ids(&["a", "nobody"]), 1, Duration::ZERO),
        Err(EngineError::UnknownExecutor(id)) if id == "nobody"
    ));
}

#[test]
fn completions_feed_follows_completion_order_and_wakes_waiters() {
    let (engine, _clock) = open(settings());
    engine.register(registration("a", 10)).unwrap();
    let sink = RecordingSink::new();
    engine.attach("a", 10, sink.clone()).unwrap();
    submit(&engine, 3);
    let tasks = sink.take();
    accept_all(&engine, &[tasks[2].clone()]);
    accept_all(&engine, &[tasks[0].clone(), tasks[1].clone()]);
    let (views, cursor) = engine.completions(0, 10, Duration::ZERO);
    assert_eq!(cursor, 3);
    let order: Vec<_> = views.iter().map(|v| v.task_id.clone()).collect();
    assert_eq!(
        order,
        vec![
            tasks[2].task_id.clone(),
            tasks[0].task_id.clone(),
            tasks[1].task_id.clone()
        ]
    );
    assert!(views.iter().all(|v| v.status == TaskState::Completed));
    let (page, cursor) = engine.completions(1, 1, Duration::ZERO);
    assert_eq!((page.len(), cursor), (1, 2));
    assert_eq!(page[0].task_id, tasks[0].task_id);

    let start = Instant::now();
    let (none, same) = engine.completions(3, 10, Duration::from_millis(30));
    assert!(none.is_empty() && same == 3 && start.elapsed() >= Duration::from_millis(30));

    let reader = {
        let engine = engine.clone();
        std::thread::spawn(move || engine.completions(3, 10, Duration::from_secs(30)))
    };
    submit(&engine, 1);
    let last = sink.take();
    accept_all(&engine, &last);
    let (views, cursor) = reader.join().unwrap();
    assert_eq!(cursor, 4);
    assert_eq!(views[0].task_id, last[0].task_id);
}

#[test]
fn restart_with_a_data_dir_loses_nothing_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let durable = || EngineSettings {
        data_dir: Some(dir.path().to_path_buf()),
        ..settings()
    };
    // Executor "a" takes three of five tasks, finishes one and so takes a fourth; one task
    // never leaves the engine.
    let (ids, old_tasks, extra) = {
        let (engine, _clock) = open(durable());
        engine.register(registration("a", 3)).unwrap();
        let sink = RecordingSink::new();
        engine.attach("a", 3, sink.clone()).unwrap();
        let ids = submit(&engine, 5);
        let tasks = sink.take();
        assert_eq!(tasks.len(), 3);
        accept_all(&engine, &tasks[..1]);
        let extra = sink.take();
        assert_eq!(extra.len(), 1);
        engine.shutdown();
        assert!(matches!(
            engine.submit(request(1)),
            Err(EngineError::ShuttingDown)
        ));
        (ids, tasks, extra)
    };
    let delivered: HashSet<_> = old_tasks
        .iter()
        .chain(&extra)
        .map(|t| t.task_id.clone())
        .collect();

    let (engine, _clock) = open(durable());
    let view = engine.task(&ids[0]).unwrap();
    assert_eq!(view.status, TaskState::Completed);
    assert_eq!(view.output.unwrap()["by"], ids[0]);
    assert_eq!(view.executor_id.as_deref(), Some("a"));
    // A restart is not an attempt: delivered tasks wait for "a", the others are queued.
    for id in &ids[1..] {
        let view = engine.task(id).unwrap();
        let expected = if delivered.contains(id) {
            TaskState::Running
        } else {
            TaskState::Pending
        };
        assert_eq!((view.status, view.attempt), (expected, 1), "{id}");
    }
    let stats = engine.statistics();
    assert_eq!(
        (
            stats.tasks_submitted,
            stats.tasks_completed,
            stats.tasks_pending,
            stats.tasks_in_flight,
            stats.executors
        ),
        (5, 1, 1, 3, 0)
    );
    let (feed, cursor) = engine.completions(0, 10, Duration::ZERO);
    assert_eq!((feed.len(), cursor), (1, 1));
    // Until it registers again the engine does not know "a": its heartbeat says so, which
    // is what makes an executor register.
    assert!(matches!(
        engine.heartbeat(&heartbeat("a")),
        Err(EngineError::UnknownExecutor(_))
    ));
    assert!(engine.executors().is_empty());

    // "a" comes back: the three it holds fill its three slots.
    engine.register(registration("a", 3)).unwrap();
    let sink = RecordingSink::new();
    engine.attach("a", 3, sink.clone()).unwrap();
    assert!(sink.is_empty());
    // Results held from before the restart: the applied one is a repeat, the others count.
    let answers = engine.report(old_tasks.iter().map(done).collect());
    assert_eq!(
        answers,
        vec![
            Ok(Acceptance::AlreadyProcessed),
            Ok(Acceptance::Accept),
            Ok(Acceptance::Accept)
        ]
    );
    // The task that never left goes out now, still as attempt 1.
    let last = sink.take();
    assert_eq!(last.len(), 1);
    assert!(last[0].attempt == 1 && last[0].context["amount"].is_u64());
    accept_all(&engine, &[extra[0].clone(), last[0].clone()]);
    let new_id = submit(&engine, 1).remove(0);
    accept_all(&engine, &sink.take());
    drop(engine);

    let (engine, _clock) = open(durable());
    let (feed, cursor) = engine.completions(0, 10, Duration::ZERO);
    assert_eq!(cursor, 6);
    assert_eq!(feed[0].task_id, ids[0]);
    assert_eq!(feed[5].task_id, new_id);
    assert!(
        feed.iter()
            .all(|v| v.status == TaskState::Completed && v.attempt == 1)
    );
    assert_eq!(engine.statistics().tasks_pending, 0);
}

#[test]
fn after_a_restart_only_an_executor_that_does_not_come_back_costs_an_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let durable = || EngineSettings {
        data_dir: Some(dir.path().to_path_buf()),
        ..settings()
    };
    let (ids, old) = {
        let (engine, _clock) = open(durable());
        engine.register(registration("a", 10)).unwrap();
        engine.register(registration("b", 10)).unwrap();
        let sink_a = RecordingSink::new();
        let sink_b = RecordingSink::new();
        engine.attach("a", 10, sink_a.clone()).unwrap();
        engine.attach("b", 10, sink_b.clone()).unwrap();
        let ids = submit(&engine, 4);
        let (a, b) = (sink_a.take(), sink_b.take());
        assert_eq!((a.len(), b.len()), (2, 2));
        (ids, [a, b])
    };

    let (engine, clock) = open(durable());
    // "b" registers again and reports one of its two; the other was lost on the way.
    engine.register(registration("b", 10)).unwrap();
    accept_all(&engine, &old[1][..1]);
    // Neither "a" (silent) nor the lost task of "b" gets a new attempt before its timeout.
    clock.advance(Duration::from_secs(9));
    engine.heartbeat(&heartbeat("b")).unwrap();
    engine.sweep();
    for id in &ids {
        assert_eq!(engine.task(id).unwrap().attempt, 1, "{id}");
    }
    // Past the heartbeat timeout (10 s) "a" is given up: its tasks become attempt 2 and go
    // to "b" once it has a route; its late results are stale.
    clock.advance(Duration::from_secs(2));
    engine.heartbeat(&heartbeat("b")).unwrap();
    engine.sweep();
    let sink = RecordingSink::new();
    engine.attach("b", 10, sink.clone()).unwrap();
    let moved = sink.take();
    assert_eq!(moved.len(), 2);
    assert!(moved.iter().all(|t| t.attempt == 2));
    assert_eq!(
        engine.report(old[0].iter().map(done).collect()),
        vec![Ok(Acceptance::Stale), Ok(Acceptance::Stale)]
    );
    accept_all(&engine, &moved);
    // The task "b" never reported comes back after the ack timeout (30 s).
    let lost = engine.task(&old[1][1].task_id).unwrap();
    assert_eq!((lost.status, lost.attempt), (TaskState::Running, 1));
    for _ in 0..4 {
        clock.advance(Duration::from_secs(8));
        engine.heartbeat(&heartbeat("b")).unwrap();
        engine.sweep();
    }
    let again = sink.take();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempt, 2);
    accept_all(&engine, &again);
    let attempts: Vec<u32> = ids
        .iter()
        .map(|id| engine.task(id).unwrap().attempt)
        .collect();
    assert_eq!(attempts.iter().filter(|&&a| a == 2).count(), 3);
    assert_eq!(engine.statistics().tasks_completed, 4);
}

#[test]
fn the_submission_id_finds_the_task_whichever_attempt_finishes_it() {
    let (engine, clock) = open(settings());
    engine.register(registration("a", 5)).unwrap();
    let sink = RecordingSink::new();
    engine.attach("a", 5, sink.clone()).unwrap();
    let submitted = engine.submit(request(7)).unwrap();
    assert_eq!(submitted.submission_id, submitted.task_id);
    let first = sink.take().remove(0);
    let technical = ExecutionError::technical("NET", "down").to_error_info();
    engine
        .report(vec![TaskResult::failed(&first, technical, 1)])
        .remove(0)
        .unwrap();
    clock.advance(Duration::from_secs(1));
    engine.sweep();
    let second = sink.take().remove(0);
    accept_all(&engine, std::slice::from_ref(&second));
    let (feed, _) = engine.completions(0, 10, Duration::ZERO);
    assert_eq!(feed.len(), 1);
    assert_eq!(
        feed[0].task_id, second.task_id,
        "the wire id of the finishing attempt"
    );
    assert_eq!(feed[0].submission_id, submitted.task_id);
    let view = engine.task(&submitted.task_id).unwrap();
    assert_eq!(
        (view.attempt, view.submission_id),
        (2, submitted.task_id.clone())
    );
    // Submitting the same run and node again answers the same submission id.
    let again = engine
        .submit(SubmitRequest {
            run_id: Some(submitted.run_id.clone()),
            ..request(7)
        })
        .unwrap();
    assert_eq!(again.submission_id, submitted.task_id);
}

/// Runs `n` tasks through executor "a" (attached to `sink`) to a COMPLETED result.
fn complete(engine: &Engine, sink: &RecordingSink, n: u64) -> Vec<Task> {
    submit(engine, n);
    let tasks = sink.take();
    assert_eq!(tasks.len() as u64, n);
    accept_all(engine, &tasks);
    tasks
}

#[test]
fn retention_forgets_the_oldest_results_beyond_the_count() {
    let (engine, _clock) = open(EngineSettings {
        max_retained: 3,
        ..settings()
    });
    engine.register(registration("a", 10)).unwrap();
    let sink = RecordingSink::new();
    engine.attach("a", 10, sink.clone()).unwrap();
    let tasks = complete(&engine, &sink, 5);

    for old in &tasks[..2] {
        assert!(matches!(
            engine.task(&old.task_id),
            Err(EngineError::UnknownTask(_))
        ));
    }
    for kept in &tasks[2..] {
        assert_eq!(
            engine.task(&kept.task_id).unwrap().status,
            TaskState::Completed
        );
    }
    // A reader behind the window resumes at the oldest kept result; numbering goes on.
    let (feed, cursor) = engine.completions(0, 10, Duration::ZERO);
    assert_eq!(cursor, 5);
    let ids: Vec<_> = feed.iter().map(|v| v.task_id.clone()).collect();
    let kept: Vec<_> = tasks[2..].iter().map(|t| t.task_id.clone()).collect();
    assert_eq!(ids, kept);
    let (page, cursor) = engine.completions(3, 1, Duration::ZERO);
    assert_eq!(
        (page[0].task_id.as_str(), cursor),
        (tasks[3].task_id.as_str(), 4)
    );

    // A resend for a forgotten task is refused by name; a kept one is still a repeat.
    let answers = engine.report(vec![done(&tasks[0]), done(&tasks[4])]);
    assert!(matches!(&answers[0], Err(EngineError::UnknownTask(id)) if *id == tasks[0].task_id));
    assert_eq!(answers[1], Ok(Acceptance::AlreadyProcessed));

    // Freed slots carry new tasks, dispatched to the right executor type only.
    let mut other = registration("b", 10);
    other.metadata = ExecutorMetadata::new("other").max_concurrent_tasks(10);
    engine.register(other).unwrap();
    let other_sink = RecordingSink::new();
    engine.attach("b", 10, other_sink.clone()).unwrap();
    let mut to_other = request(7);
    to_other.executor_type = Some("other".into());
    let other_id = engine.submit(to_other).unwrap().task_id;
    let more = complete(&engine, &sink, 4);
    assert!(more.iter().all(|t| t.node_type == TYPE));
    let delivered_other = other_sink.take();
    assert_eq!(delivered_other.len(), 1);
    assert_eq!(delivered_other[0].task_id, other_id);
    assert_eq!(engine.completions(0, 100, Duration::ZERO).1, 9);

    let text = engine.metrics_text();
    for line in [
        "gamelan_engine_tasks_forgotten_total 6",
        "gamelan_engine_tasks_retained 3",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
    }
}

#[test]
fn retention_forgets_results_older_than_the_window_on_the_sweep() {
    let (engine, clock) = open(EngineSettings {
        retention: Duration::from_secs(60),
        ..settings()
    });
    engine.register(registration("a", 10)).unwrap();
    let sink = RecordingSink::new();
    engine.attach("a", 10, sink.clone()).unwrap();
    let old = complete(&engine, &sink, 2);
    clock.advance(Duration::from_secs(45));
    let young = complete(&engine, &sink, 1);
    engine.heartbeat(&heartbeat("a")).unwrap();
    clock.advance(Duration::from_secs(20));
    engine.heartbeat(&heartbeat("a")).unwrap();
    engine.sweep();
    for t in &old {
        assert!(
            engine.task(&t.task_id).is_err(),
            "{} outlived retention",
            t.task_id
        );
    }
    assert_eq!(
        engine.task(&young[0].task_id).unwrap().status,
        TaskState::Completed
    );
    let (feed, cursor) = engine.completions(0, 10, Duration::ZERO);
    assert_eq!((feed.len(), cursor), (1, 3));
}

#[test]
fn retention_survives_a_restart_and_numbering_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let durable = || EngineSettings {
        data_dir: Some(dir.path().to_path_buf()),
        max_retained: 2,
        ..settings()
    };
    let tasks = {
        let (engine, _clock) = open(durable());
        engine.register(registration("a", 10)).unwrap();
        let sink = RecordingSink::new();
        engine.attach("a", 10, sink.clone()).unwrap();
        let tasks = complete(&engine, &sink, 4);
        engine.shutdown();
        tasks
    };
    let (engine, _clock) = open(durable());
    assert!(
        engine.task(&tasks[1].task_id).is_err(),
        "forgotten stays forgotten"
    );
    let (feed, cursor) = engine.completions(0, 10, Duration::ZERO);
    let ids: Vec<_> = feed.iter().map(|v| v.task_id.clone()).collect();
    assert_eq!(
        ids,
        vec![tasks[2].task_id.clone(), tasks[3].task_id.clone()]
    );
    assert_eq!(cursor, 4);
    assert_eq!(engine.statistics().tasks_completed, 2);

    engine.register(registration("a", 10)).unwrap();
    let sink = RecordingSink::new();
    engine.attach("a", 10, sink.clone()).unwrap();
    let next = complete(&engine, &sink, 1);
    let (page, cursor) = engine.completions(4, 10, Duration::ZERO);
    assert_eq!(
        (page[0].task_id.as_str(), cursor),
        (next[0].task_id.as_str(), 5)
    );
}

#[test]
fn metrics_text_shows_the_engine_counters() {
    let (engine, clock) = open(settings());
    engine.register(registration("a", 1)).unwrap();
    let sink = RecordingSink::new();
    engine.attach("a", 1, sink.clone()).unwrap();
    submit(&engine, 2);
    let t = sink.take();
    accept_all(&engine, &t);
    engine.report(vec![done(&t[0])]);
    clock.advance(Duration::from_secs(11));
    engine.sweep();
    let text = engine.metrics_text();
    for line in [
        "gamelan_engine_tasks_submitted_total 2",
        "gamelan_engine_tasks_completed_total 1",
        "gamelan_engine_tasks_failed_total 0",
        "gamelan_engine_tasks_redispatched_total 1",
        "gamelan_engine_results_duplicate_total 1",
        "gamelan_engine_results_stale_total 0",
        "gamelan_engine_executors_alive 0",
        "gamelan_engine_tasks_pending 1",
        "gamelan_engine_tasks_in_flight 0",
        // Its only executor is dead: the queued task's type is served by nobody.
        "gamelan_engine_types_unserved 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
    }
    common::assert_promtool_accepts(&text);
}

#[test]
fn a_type_nobody_serves_is_counted_until_an_executor_for_it_registers() {
    let (engine, _clock) = open(settings());
    let unserved = |engine: &Engine| -> String {
        engine
            .metrics_text()
            .lines()
            .find(|l| l.starts_with("gamelan_engine_types_unserved "))
            .unwrap_or_default()
            .to_owned()
    };
    engine.sweep();
    assert_eq!(unserved(&engine), "gamelan_engine_types_unserved 0");
    let id = submit(&engine, 1).remove(0);
    engine.sweep();
    assert_eq!(unserved(&engine), "gamelan_engine_types_unserved 1");
    assert_eq!(engine.task(&id).unwrap().status, TaskState::Pending);

    engine.register(registration("late", 1)).unwrap();
    let sink = RecordingSink::new();
    engine.attach("late", 1, sink.clone()).unwrap();
    let got = sink.take();
    assert_eq!(
        got.len(),
        1,
        "the waiting task goes to the executor that registered"
    );
    engine.sweep();
    assert_eq!(unserved(&engine), "gamelan_engine_types_unserved 0");
}

#[test]
fn the_sweeper_thread_declares_silent_executors_dead() {
    let (engine, clock) = open(EngineSettings {
        sweep_interval: Duration::from_millis(5),
        ..settings()
    });
    engine.register(registration("a", 1)).unwrap();
    clock.advance(Duration::from_secs(11));
    assert!(
        eventually(Duration::from_secs(10), || !engine
            .executor("a")
            .unwrap()
            .alive),
        "the sweeper ran"
    );
    engine.shutdown();
}

fn registration_with_timeout(id: &str, max: u32, timeout_ms: &str) -> Registration {
    let mut r = registration(id, max);
    r.attributes.insert(
        gamelan_ports::HEARTBEAT_TIMEOUT_KEY.into(),
        timeout_ms.into(),
    );
    r
}

#[test]
fn an_executor_sent_heartbeat_timeout_replaces_the_engine_default_for_it() {
    // Engine default 10 s; "quick" asks for 3 s, "patient" for 30 s, "plain" sends none.
    let (engine, clock) = open(settings());
    engine
        .register(registration_with_timeout("quick", 1, "3000"))
        .unwrap();
    engine
        .register(registration_with_timeout("patient", 1, "30000"))
        .unwrap();
    engine.register(registration("plain", 1)).unwrap();

    clock.advance(Duration::from_secs(4));
    engine.sweep();
    assert!(!engine.executor("quick").unwrap().alive, "3 s passed");
    assert!(engine.executor("patient").unwrap().alive);
    assert!(engine.executor("plain").unwrap().alive);

    clock.advance(Duration::from_secs(7));
    engine.sweep();
    assert!(
        !engine.executor("plain").unwrap().alive,
        "the engine default (10 s) still applies to an executor that sent none"
    );
    assert!(engine.executor("patient").unwrap().alive, "11 s < 30 s");

    clock.advance(Duration::from_secs(20));
    engine.sweep();
    assert!(!engine.executor("patient").unwrap().alive, "31 s > 30 s");

    // Re-registering without the key puts the executor back on the default.
    engine.register(registration("quick", 1)).unwrap();
    clock.advance(Duration::from_secs(4));
    engine.sweep();
    assert!(engine.executor("quick").unwrap().alive);
}

#[test]
fn an_executor_heartbeat_timeout_is_bounded_and_must_be_readable() {
    let (engine, clock) = open(settings());
    // 1 ms is raised to the floor (1 s): alive at 0.5 s, dead past 1 s.
    engine
        .register(registration_with_timeout("tiny", 1, "1"))
        .unwrap();
    clock.advance(Duration::from_millis(500));
    engine.sweep();
    assert!(engine.executor("tiny").unwrap().alive);
    clock.advance(Duration::from_millis(600));
    engine.sweep();
    assert!(!engine.executor("tiny").unwrap().alive);

    for bad in ["soon", "-5", "0", ""] {
        let err = engine
            .register(registration_with_timeout("bad", 1, bad))
            .unwrap_err();
        match err {
            EngineError::Invalid(msg) => {
                assert!(msg.contains(gamelan_ports::HEARTBEAT_TIMEOUT_KEY), "{msg}");
            }
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    assert!(
        engine.executor("bad").is_err(),
        "a refused registration leaves nothing"
    );
}
