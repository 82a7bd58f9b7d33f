#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The runtime's guarantees, shown over the in-memory transport. Each test waits on
//! conditions with deadlines; none sleeps to synchronise.

mod local_runtime;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use gamelan::executors::{Echo, Fault, Sleep};
use gamelan::runtime::local::LocalEngine;
use gamelan::runtime::{Runtime, RuntimeSettings};
use gamelan::sdk::{
    CommunicationType, ExecutionContext, ExecutionError, ExecutorMetadata, JsonObject, Task,
    WorkflowExecutor,
};
use gamelan_domain::{BatchPolicy, ResultStatus, RuntimeState, codes};
use serde_json::json;

use local_runtime::{WAIT, local, result_for, settings_with, start, wait_results};

fn settings(threads: usize, queue: usize) -> RuntimeSettings {
    settings_with(threads, queue, 64)
}

fn task(i: usize, node_type: &str, ctx: serde_json::Value) -> Task {
    let mut t = Task::new(format!("run-{i}"), "n", node_type, 1);
    t.execution_token = format!("tok-{i}");
    if let serde_json::Value::Object(m) = ctx {
        t.context = m;
    }
    t
}

/// An executor that blocks until its gate opens, recording how many run at once.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
    running: AtomicUsize,
    max_seen: AtomicUsize,
    started: AtomicUsize,
}

impl Gate {
    fn release(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }
    fn wait_started(&self, n: usize) -> bool {
        let deadline = Instant::now() + WAIT;
        while self.started.load(Ordering::SeqCst) < n {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::yield_now();
        }
        true
    }
}

struct Gated {
    gate: Arc<Gate>,
    /// Ignore cancellation (a misbehaving executor) when false.
    cooperative: bool,
}

impl WorkflowExecutor for Gated {
    fn execute(&self, task: &Task, ctx: &ExecutionContext) -> Result<JsonObject, ExecutionError> {
        let g = &self.gate;
        let now = g.running.fetch_add(1, Ordering::SeqCst) + 1;
        g.max_seen.fetch_max(now, Ordering::SeqCst);
        g.started.fetch_add(1, Ordering::SeqCst);
        let mut open = g.open.lock().unwrap();
        while !*open {
            if self.cooperative && ctx.is_cancelled() {
                break;
            }
            open = g.cv.wait_timeout(open, Duration::from_millis(5)).unwrap().0;
        }
        drop(open);
        g.running.fetch_sub(1, Ordering::SeqCst);
        ctx.checkpoint()?;
        Ok(task.context.clone())
    }
}

#[test]
fn registers_and_completes_every_task_once() {
    let engine = LocalEngine::new();
    let h = start(&engine, settings(4, 100), vec![local(Echo, "echo", 10)]);
    let regs = engine.registrations();
    assert_eq!(regs.len(), 1);
    assert_eq!(regs[0].executor_id, "test-echo");
    assert_eq!(regs[0].attributes["gamelan.executor.version"], "1.0.0");
    for i in 0..300 {
        engine.push_task(task(i, "echo", json!({"i": i})));
    }
    wait_results(&engine, 300);
    let results = engine.results();
    assert_eq!(results.len(), 300);
    for r in &results {
        assert_eq!(r.status(), ResultStatus::Completed);
        let i: usize = r.run_id()[4..].parse().unwrap();
        assert_eq!(r.output()["i"], i);
        assert_eq!(r.execution_token(), format!("tok-{i}"));
    }
    assert_eq!(engine.duplicates(), 0);
    assert!(engine.wait_until(WAIT, |v| v.heartbeats() > 0));
    let report = h.shutdown();
    assert_eq!(report.unreported, 0);
    assert_eq!(engine.unregistered(), vec!["test-echo".to_owned()]);
}

#[test]
fn full_queue_is_backpressure_never_a_drop() {
    let engine = LocalEngine::new();
    let gate = Arc::new(Gate::default());
    let exec = local(
        Gated {
            gate: Arc::clone(&gate),
            cooperative: true,
        },
        "gated",
        10,
    );
    let h = start(&engine, settings(1, 2), vec![exec]);
    for i in 0..20 {
        engine.push_task(task(i, "gated", json!({})));
    }
    // One running, two queued: the runtime asks for nothing more and the rest stay with
    // the engine.
    assert!(gate.wait_started(1));
    assert!(engine.wait_until(WAIT, |v| v.zero_credit_polls() > 0 && v.queued() == 17));
    assert_eq!(h.health().queue_size, 2);
    gate.release();
    wait_results(&engine, 20);
    assert!(
        engine
            .results()
            .iter()
            .all(gamelan::sdk::TaskResult::is_completed)
    );
    h.shutdown();
}

#[test]
fn per_type_and_global_limits_hold() {
    let engine = LocalEngine::new();
    let a = Arc::new(Gate::default());
    let b = Arc::new(Gate::default());
    let mut s = settings(8, 100);
    s.pool.max_parallel = 3;
    let h = start(
        &engine,
        s,
        vec![
            local(
                Gated {
                    gate: Arc::clone(&a),
                    cooperative: true,
                },
                "a",
                2,
            ),
            local(
                Gated {
                    gate: Arc::clone(&b),
                    cooperative: true,
                },
                "b",
                10,
            ),
        ],
    );
    for i in 0..10 {
        engine.push_task(task(i, "a", json!({})));
    }
    assert!(a.wait_started(2));
    for i in 10..20 {
        engine.push_task(task(i, "b", json!({})));
    }
    assert!(b.wait_started(1));
    // a is capped at 2 by its own limit, so b gets exactly the one global permit left.
    assert!(engine.wait_until(WAIT, |v| v.queued() == 0));
    assert_eq!(a.running.load(Ordering::SeqCst), 2);
    assert_eq!(b.running.load(Ordering::SeqCst), 1);
    a.release();
    b.release();
    wait_results(&engine, 20);
    assert_eq!(a.max_seen.load(Ordering::SeqCst), 2);
    assert!(b.max_seen.load(Ordering::SeqCst) <= 3);
    h.shutdown();
}

#[test]
fn timeout_reports_timeout_and_the_pool_keeps_its_threads() {
    let engine = LocalEngine::new();
    let gate = Arc::new(Gate::default());
    let mut s = settings(1, 10);
    s.pool.default_timeout = Duration::from_millis(200);
    let h = start(
        &engine,
        s,
        vec![
            local(
                Gated {
                    gate: Arc::clone(&gate),
                    cooperative: false,
                },
                "stuck",
                4,
            ),
            local(Echo, "echo", 4),
        ],
    );
    engine.push_task(task(1, "stuck", json!({})));
    wait_results(&engine, 1);
    let r = result_for(&engine, "run-1");
    assert_eq!(r.status(), ResultStatus::Failed);
    assert_eq!(r.error().unwrap().code, codes::TIMEOUT);
    // The only worker is still stuck inside the executor, yet new work runs.
    assert_eq!(gate.running.load(Ordering::SeqCst), 1);
    engine.push_task(task(2, "echo", json!({"x": 1})));
    wait_results(&engine, 2);
    assert!(result_for(&engine, "run-2").is_completed());
    gate.release();
    h.shutdown();
    // The late result of the timed-out task was dropped, not reported twice.
    assert_eq!(engine.results().len(), 2);
}

#[test]
fn task_timeout_seconds_wins_over_the_default() {
    let engine = LocalEngine::new();
    let mut s = settings(2, 10);
    s.pool.default_timeout = Duration::from_millis(50);
    let h = start(&engine, s, vec![local(Sleep, "sleep", 4)]);
    let mut t = task(1, "sleep", json!({"ms": 300}));
    t.timeout_seconds = Some(30);
    engine.push_task(t);
    engine.push_task(task(2, "sleep", json!({"ms": 30_000})));
    wait_results(&engine, 2);
    assert!(result_for(&engine, "run-1").is_completed());
    let r = result_for(&engine, "run-2");
    assert_eq!(r.error().unwrap().code, codes::TIMEOUT);
    h.shutdown();
}

#[test]
fn panic_becomes_failed_and_the_worker_lives_on() {
    let engine = LocalEngine::new();
    let h = start(
        &engine,
        settings(1, 10),
        vec![local(Fault, "fault", 4), local(Echo, "echo", 4)],
    );
    engine.push_task(task(1, "fault", json!({"mode": "panic"})));
    engine.push_task(task(2, "echo", json!({})));
    engine.push_task(task(3, "fault", json!({"mode": "panic"})));
    engine.push_task(task(4, "echo", json!({})));
    wait_results(&engine, 4);
    for run in ["run-1", "run-3"] {
        let r = result_for(&engine, run);
        let e = r.error().unwrap();
        assert_eq!(e.code, codes::EXECUTOR_PANIC);
        assert!(e.message.contains("asked to panic"), "{}", e.message);
    }
    assert!(result_for(&engine, "run-2").is_completed());
    assert!(result_for(&engine, "run-4").is_completed());
    h.shutdown();
}

/// Counts executions, failing technically on the first `fail` runs or always with a
/// business error.
struct Counting {
    runs: Arc<AtomicUsize>,
    fail: usize,
    business: bool,
}

impl WorkflowExecutor for Counting {
    fn execute(&self, _: &Task, _: &ExecutionContext) -> Result<JsonObject, ExecutionError> {
        let n = self.runs.fetch_add(1, Ordering::SeqCst);
        if self.business {
            Err(ExecutionError::business("DECLINED", "no"))
        } else if n < self.fail {
            Err(ExecutionError::technical("NET", "flaky"))
        } else {
            Ok(JsonObject::new())
        }
    }
}

#[test]
fn technical_errors_retry_business_errors_do_not() {
    let engine = LocalEngine::new();
    let flaky = Arc::new(AtomicUsize::new(0));
    let broken = Arc::new(AtomicUsize::new(0));
    let business = Arc::new(AtomicUsize::new(0));
    let h = start(
        &engine,
        settings(2, 10),
        vec![
            local(
                Counting {
                    runs: Arc::clone(&flaky),
                    fail: 2,
                    business: false,
                },
                "flaky",
                4,
            ),
            local(
                Counting {
                    runs: Arc::clone(&broken),
                    fail: usize::MAX,
                    business: false,
                },
                "broken",
                4,
            ),
            local(
                Counting {
                    runs: Arc::clone(&business),
                    fail: 0,
                    business: true,
                },
                "business",
                4,
            ),
        ],
    );
    engine.push_task(task(1, "flaky", json!({})));
    engine.push_task(task(2, "broken", json!({})));
    engine.push_task(task(3, "business", json!({})));
    wait_results(&engine, 3);
    assert!(result_for(&engine, "run-1").is_completed());
    assert_eq!(flaky.load(Ordering::SeqCst), 3);
    let r = result_for(&engine, "run-2");
    assert_eq!(r.error().unwrap().code, "NET");
    assert!(r.error().unwrap().message.contains("after 3 retries"));
    assert_eq!(broken.load(Ordering::SeqCst), 4, "first run + 3 retries");
    assert_eq!(
        result_for(&engine, "run-3").error().unwrap().code,
        "DECLINED"
    );
    assert_eq!(business.load(Ordering::SeqCst), 1);
    h.shutdown();
}

#[test]
fn a_retry_waiting_for_its_backoff_does_not_hold_a_worker() {
    let engine = LocalEngine::new();
    let mut s = settings(1, 10);
    s.pool.retry.initial_delay = Duration::from_secs(30);
    s.pool.retry.max_delay = Duration::from_secs(30);
    let runs = Arc::new(AtomicUsize::new(0));
    let h = start(
        &engine,
        s,
        vec![
            local(
                Counting {
                    runs: Arc::clone(&runs),
                    fail: 1,
                    business: false,
                },
                "flaky",
                4,
            ),
            local(Echo, "echo", 4),
        ],
    );
    engine.push_task(task(1, "flaky", json!({})));
    assert!(engine.wait_until(WAIT, |_| runs.load(Ordering::SeqCst) == 1));
    // One thread only, and the flaky task waits 30 s for its retry: echo still runs now.
    engine.push_task(task(2, "echo", json!({})));
    wait_results(&engine, 1);
    assert!(result_for(&engine, "run-2").is_completed());
    assert_eq!(h.health().retrying_tasks, 1);
    // Shutdown hands the waiting retry back to the engine.
    let report = h.shutdown();
    assert_eq!(report.released, 1);
    assert_eq!(engine.released()[0].run_id, "run-1");
}

#[test]
fn results_are_batched_by_size_and_age() {
    let engine = LocalEngine::new();
    let mut s = settings(4, 100);
    s.batch = BatchPolicy {
        max_size: 5,
        max_age: Duration::from_millis(300),
    };
    let h = start(&engine, s, vec![local(Echo, "echo", 10)]);
    for i in 0..12 {
        engine.push_task(task(i, "echo", json!({})));
    }
    wait_results(&engine, 12);
    let batches = engine.report_batches();
    assert!(batches.iter().all(|&b| b <= 5), "{batches:?}");
    assert_eq!(batches.iter().sum::<usize>(), 12);
    // The two left over after two full batches went out only once they were old enough.
    assert!(batches.len() >= 3, "{batches:?}");
    h.shutdown();
}

#[test]
fn unknown_node_type_is_failed_no_executor() {
    let engine = LocalEngine::new();
    let h = start(&engine, settings(1, 10), vec![local(Echo, "echo", 4)]);
    engine.push_task(task(1, "nobody-home", json!({})));
    wait_results(&engine, 1);
    let r = result_for(&engine, "run-1");
    assert_eq!(r.error().unwrap().code, codes::NO_EXECUTOR);
    assert!(r.error().unwrap().message.contains("nobody-home"));
    h.shutdown();
}

#[test]
fn engine_cancellation_stops_a_running_task() {
    let engine = LocalEngine::new();
    let h = start(&engine, settings(1, 10), vec![local(Sleep, "sleep", 4)]);
    engine.push_task(task(1, "sleep", json!({"ms": 60_000})));
    assert!(engine.wait_until(WAIT, |v| v.queued() == 0));
    assert!(engine.wait_until(WAIT, |_| h.health().active_tasks == 1));
    engine.push_cancel("run-1:n:1", "user asked");
    wait_results(&engine, 1);
    assert_eq!(
        result_for(&engine, "run-1").error().unwrap().code,
        codes::CANCELLED
    );
    h.shutdown();
}

/// Cancels land wherever each task is at that moment (queued, handed to a worker, or
/// running): every one must end CANCELLED, none may run its full minute.
#[test]
fn every_cancel_reaches_its_task_wherever_it_is() {
    const N: usize = 40;
    let engine = LocalEngine::new();
    let h = start(&engine, settings(4, 64), vec![local(Sleep, "sleep", 8)]);
    for i in 0..N {
        engine.push_task(task(i, "sleep", json!({"ms": 60_000})));
    }
    assert!(engine.wait_until(WAIT, |v| v.queued() == 0));
    for i in 0..N {
        engine.push_cancel(&format!("run-{i}:n:1"), "user asked");
    }
    wait_results(&engine, N);
    for i in 0..N {
        let r = result_for(&engine, &format!("run-{i}"));
        assert_eq!(r.error().unwrap().code, codes::CANCELLED, "run-{i}");
    }
    h.shutdown();
}

#[test]
fn shutdown_drains_running_tasks_and_hands_back_the_rest() {
    let engine = LocalEngine::new();
    let gate = Arc::new(Gate::default());
    let h = start(
        &engine,
        settings(1, 10),
        vec![local(
            Gated {
                gate: Arc::clone(&gate),
                cooperative: false,
            },
            "gated",
            4,
        )],
    );
    for i in 0..5 {
        engine.push_task(task(i, "gated", json!({})));
    }
    assert!(gate.wait_started(1));
    assert!(engine.wait_until(WAIT, |v| v.queued() == 0));
    let g = Arc::clone(&gate);
    let opener = std::thread::spawn(move || {
        // Open the gate once shutdown has begun, so the running task finishes mid-drain.
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline && !*g.open.lock().unwrap() {
            std::thread::yield_now();
        }
    });
    let state_probe = h.health();
    assert_eq!(state_probe.queue_size, 4);
    let shut = std::thread::spawn(move || h.shutdown());
    assert!(engine.wait_until(WAIT, |v| v.released() == 4));
    gate.release();
    let report = shut.join().unwrap();
    opener.join().unwrap();
    assert_eq!(report.released, 4);
    assert_eq!(report.unreported, 0);
    assert_eq!(
        engine.results().len(),
        1,
        "the running task finished and was reported"
    );
    assert_eq!(engine.unregistered(), vec!["test-gated".to_owned()]);
}

#[test]
fn shutdown_deadline_hands_back_a_task_that_will_not_stop() {
    let engine = LocalEngine::new();
    let gate = Arc::new(Gate::default());
    let mut s = settings(1, 10);
    s.drain_timeout = Duration::from_millis(100);
    let h = start(
        &engine,
        s,
        vec![local(
            Gated {
                gate: Arc::clone(&gate),
                cooperative: false,
            },
            "gated",
            4,
        )],
    );
    engine.push_task(task(1, "gated", json!({})));
    assert!(gate.wait_started(1));
    let report = h.shutdown();
    assert_eq!(report.released, 1);
    assert_eq!(engine.released()[0].run_id, "run-1");
    gate.release();
    assert!(engine.results().is_empty());
}

#[test]
fn connection_loss_reconnects_reregisters_and_resends_the_outbox() {
    let engine = LocalEngine::new();
    let h = start(&engine, settings(2, 50), vec![local(Sleep, "sleep", 4)]);
    assert_eq!(engine.registrations_total(), 1);
    for i in 0..6 {
        engine.push_task(task(i, "sleep", json!({"ms": 100})));
    }
    assert!(engine.wait_until(WAIT, |v| v.queued() == 0));
    engine.set_down(true);
    assert!(engine.wait_until(WAIT, |_| h.state() == RuntimeState::Failed));
    // Tasks keep running while disconnected; their results wait in the outbox.
    assert!(engine.wait_until(WAIT, |_| h.health().unreported_results == 6));
    engine.set_down(false);
    wait_results(&engine, 6);
    assert!(
        engine.registrations_total() >= 2,
        "re-registered after reconnect"
    );
    assert!(h.wait_ready(WAIT));
    assert!(engine.connects() >= 2);
    h.shutdown();
}

#[test]
fn failed_reports_are_retried_until_confirmed() {
    let engine = LocalEngine::new();
    let h = start(&engine, settings(2, 50), vec![local(Echo, "echo", 4)]);
    engine.fail_next_reports(3);
    for i in 0..10 {
        engine.push_task(task(i, "echo", json!({})));
    }
    wait_results(&engine, 10);
    assert_eq!(engine.results().len(), 10);
    let report = h.shutdown();
    assert_eq!(report.unreported, 0);
}

#[test]
fn engine_down_at_start_means_not_ready_until_it_appears() {
    let engine = LocalEngine::new();
    engine.set_down(true);
    let h = Runtime::builder()
        .discover(false)
        .settings(settings(1, 10))
        .transport(CommunicationType::Local, engine.transport())
        .executor(gamelan::sdk::Declared::new(
            Echo,
            ExecutorMetadata::new("echo").communication(CommunicationType::Local),
        ))
        .start()
        .unwrap();
    assert!(engine.wait_until(WAIT, |_| h.state() == RuntimeState::Failed));
    assert!(!h.is_ready());
    engine.set_down(false);
    assert!(h.wait_ready(WAIT));
    engine.push_task(task(1, "echo", json!({})));
    wait_results(&engine, 1);
    h.shutdown();
}

fn echo_builder(engine: &LocalEngine, s: RuntimeSettings) -> gamelan::runtime::RuntimeBuilder {
    Runtime::builder()
        .discover(false)
        .settings(s)
        .transport(CommunicationType::Local, engine.transport())
        .executor(gamelan::sdk::Declared::new(
            Echo,
            ExecutorMetadata::new("echo").communication(CommunicationType::Local),
        ))
}

#[test]
fn the_heartbeat_timeout_travels_with_every_registration() {
    let engine = LocalEngine::new();
    let mut s = settings(1, 10);
    s.heartbeat_timeout = Some(Duration::from_secs(90));
    let h = start(&engine, s, vec![local(Echo, "echo", 4)]);
    let regs = engine.registrations();
    assert_eq!(regs.len(), 1);
    assert_eq!(
        regs[0]
            .attributes
            .get(gamelan_ports::HEARTBEAT_TIMEOUT_KEY)
            .map(String::as_str),
        Some("90000")
    );
    assert_eq!(
        regs[0].heartbeat_timeout(),
        Ok(Some(Duration::from_secs(90)))
    );
    h.shutdown();

    // Without one the engine's own default applies: nothing is sent.
    let engine = LocalEngine::new();
    let h = start(&engine, settings(1, 10), vec![local(Echo, "echo", 4)]);
    assert_eq!(engine.registrations()[0].heartbeat_timeout(), Ok(None));
    h.shutdown();
}

#[test]
fn a_disabled_runtime_neither_starts_nor_connects() {
    let engine = LocalEngine::new();
    let mut s = settings(1, 10);
    s.enabled = false;
    s.http_addr = Some("127.0.0.1:0".parse().unwrap());
    let started = echo_builder(&engine, s.clone()).start();
    assert!(
        matches!(started, Err(gamelan::runtime::RuntimeError::Disabled)),
        "start() must refuse"
    );
    // run() returns at once (no signal needed) with an empty report.
    let report = echo_builder(&engine, s).run().expect("run returns");
    assert_eq!(report, gamelan::runtime::ShutdownReport::default());
    assert_eq!(engine.connect_attempts(), 0);
    assert_eq!(engine.registrations_total(), 0);
}

#[test]
fn reconnecting_gives_up_after_max_retries_and_stays_failed() {
    let engine = LocalEngine::new();
    engine.set_down(true);
    let mut s = settings(1, 10);
    s.reconnect_initial = Duration::from_millis(5);
    s.reconnect_max = Duration::from_millis(20);
    s.reconnect_max_retries = Some(3);
    let h = echo_builder(&engine, s).start().unwrap();
    assert!(h.wait_gave_up(WAIT), "the runtime never gave up");
    // The first attempt and three retries, then no more.
    assert_eq!(engine.connect_attempts(), 4);
    assert_eq!(h.state(), RuntimeState::Failed);
    assert!(!h.is_ready());
    let why = h.failure().unwrap();
    assert!(why.contains("engine.reconnect.max-retries=3"), "{why}");
    let health = h.health();
    assert_eq!(health.status, "DOWN");
    assert_eq!(health.failure.as_deref(), Some(why.as_str()));
    // The engine coming back does not revive it: the supervisor stopped trying.
    engine.set_down(false);
    assert!(!engine.wait_until(Duration::from_millis(300), |v| v.connect_attempts() > 4));
    assert!(!h.is_ready());
    h.shutdown();
}

#[test]
fn a_success_resets_the_retry_budget() {
    let engine = LocalEngine::new();
    engine.set_down(true);
    let mut s = settings(1, 10);
    // Waits long enough apart that the test flips the engine between two attempts.
    s.reconnect_initial = Duration::from_millis(500);
    s.reconnect_max = Duration::from_millis(500);
    s.reconnect_max_retries = Some(2);
    let h = echo_builder(&engine, s).start().unwrap();
    // Two failures (within the budget), then the engine is back.
    assert!(engine.wait_until(WAIT, |v| v.connect_attempts() >= 2));
    engine.set_down(false);
    assert!(h.wait_ready(WAIT));
    assert!(h.failure().is_none());
    // A later outage gets the whole budget again before the runtime gives up.
    let before = engine.connect_attempts();
    engine.set_down(true);
    assert!(h.wait_gave_up(WAIT));
    assert_eq!(engine.connect_attempts() - before, 3);
    h.shutdown();
}
