#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Deferred results (`ctx.defer()`): the pool thread is released at once while the task keeps
//! its permits, its deadline and its cancellation; and a blocking executor stuck past its
//! timeout costs a bounded number of threads. Over the in-memory transport with the real
//! pool; every wait is on a condition with a deadline.

mod local_runtime;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use gamelan::executors::Echo;
use gamelan::runtime::local::LocalEngine;
use gamelan::runtime::{RuntimeHandle, RuntimeSettings};
use gamelan::sdk::{
    Deferred, ExecutionContext, ExecutionError, JsonObject, Task, WorkflowExecutor,
};
use gamelan_domain::{ResultStatus, codes};
use serde_json::json;

use local_runtime::{WAIT, local, result_for, settings_with, start, wait_results};

fn settings(threads: usize, queue: usize) -> RuntimeSettings {
    settings_with(threads, queue, 2000)
}

fn task(i: usize, node_type: &str) -> Task {
    let mut t = Task::new(format!("run-{i}"), "n", node_type, 1);
    t.execution_token = format!("tok-{i}");
    t.context.insert("i".into(), json!(i));
    t
}

/// Where a deferring executor leaves its handles, for the test to complete from its own
/// thread (standing in for an I/O callback).
#[derive(Default)]
struct Parking {
    handles: Mutex<Vec<(Task, Deferred)>>,
    cv: Condvar,
    /// Most handles parked at once.
    max_seen: AtomicUsize,
    executions: AtomicUsize,
}

impl Parking {
    fn wait_parked(&self, n: usize) -> bool {
        let deadline = Instant::now() + WAIT;
        let mut h = self.handles.lock().unwrap();
        while h.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            h = self.cv.wait_timeout(h, left).unwrap().0;
        }
        true
    }

    fn take(&self) -> Vec<(Task, Deferred)> {
        std::mem::take(&mut *self.handles.lock().unwrap())
    }
}

/// Defers every task and parks the handle; `drop_handle` drops it instead.
struct Parker {
    parking: Arc<Parking>,
    drop_handle: bool,
}

impl WorkflowExecutor for Parker {
    fn execute(&self, task: &Task, ctx: &ExecutionContext) -> Result<JsonObject, ExecutionError> {
        self.parking.executions.fetch_add(1, Ordering::SeqCst);
        let handle = ctx.defer();
        if self.drop_handle {
            drop(handle);
        } else {
            let mut h = self.parking.handles.lock().unwrap();
            h.push((task.clone(), handle));
            self.parking.max_seen.fetch_max(h.len(), Ordering::SeqCst);
            self.parking.cv.notify_all();
        }
        // Ignored: the handle settles the task.
        Ok(JsonObject::new())
    }
}

fn parker(parking: &Arc<Parking>, max: u32) -> Arc<dyn WorkflowExecutor> {
    local(
        Parker {
            parking: Arc::clone(parking),
            drop_handle: false,
        },
        "parked",
        max,
    )
}

#[test]
fn a_deferred_task_completes_from_another_thread_without_holding_a_worker() {
    let engine = LocalEngine::new();
    let parking = Arc::new(Parking::default());
    let h = start(
        &engine,
        settings(1, 100),
        vec![parker(&parking, 10), local(Echo, "echo", 4)],
    );
    for i in 0..3 {
        engine.push_task(task(i, "parked"));
    }
    // Three tasks in flight on a single worker thread.
    assert!(parking.wait_parked(3));
    // `execute` has returned for all three (the last may still be returning when parked).
    let parked = |h: &RuntimeHandle| {
        h.health()
            .executors
            .into_iter()
            .find(|e| e.executor_type == "parked")
            .unwrap()
    };
    assert!(engine.wait_until(WAIT, |_| parked(&h).deferred_tasks == 3));
    assert_eq!(
        parked(&h).active_tasks,
        3,
        "deferred tasks keep their permits"
    );
    // The worker is free: other work runs meanwhile.
    engine.push_task(task(9, "echo"));
    wait_results(&engine, 1);
    assert!(result_for(&engine, "run-9").is_completed());
    let handles = parking.take();
    let completer = std::thread::spawn(move || {
        handles
            .into_iter()
            .map(|(t, d)| {
                let mut out = JsonObject::new();
                out.insert("echo".into(), t.context["i"].clone());
                d.complete(Ok(out))
            })
            .collect::<Vec<bool>>()
    });
    assert_eq!(completer.join().unwrap(), vec![true; 3]);
    wait_results(&engine, 4);
    for i in 0..3 {
        let r = result_for(&engine, &format!("run-{i}"));
        assert!(r.is_completed(), "run-{i}");
        assert_eq!(r.output()["echo"], json!(i));
    }
    assert!(engine.wait_until(WAIT, |_| h.health().active_tasks == 0));
    h.shutdown();
    assert_eq!(engine.results().len(), 4, "each task reported once");
}

/// 1,000 tasks in flight at once on two worker threads: the completer holds back every
/// handle until all 1,000 are parked, which blocking executors on two threads could
/// never reach.
#[test]
fn a_thousand_deferred_tasks_on_two_workers_all_complete() {
    const N: usize = 1000;
    let engine = LocalEngine::new();
    let parking = Arc::new(Parking::default());
    let h = start(&engine, settings(2, 2 * N), vec![parker(&parking, 2000)]);
    for i in 0..N {
        engine.push_task(task(i, "parked"));
    }
    assert!(
        parking.wait_parked(N),
        "only {} in flight",
        parking.handles.lock().unwrap().len()
    );
    for (_, d) in parking.take() {
        assert!(d.complete(Ok(JsonObject::new())));
    }
    wait_results(&engine, N);
    assert!(
        engine
            .results()
            .iter()
            .all(gamelan::sdk::TaskResult::is_completed)
    );
    assert_eq!(h.health().worker_threads, 2);
    h.shutdown();
    assert_eq!(engine.results().len(), N);
}

#[test]
fn the_deadline_fires_timeout_and_a_late_completion_is_dropped() {
    let engine = LocalEngine::new();
    let parking = Arc::new(Parking::default());
    let mut s = settings(1, 10);
    s.pool.default_timeout = Duration::from_millis(200);
    let h = start(&engine, s, vec![parker(&parking, 4)]);
    engine.push_task(task(1, "parked"));
    wait_results(&engine, 1);
    let r = result_for(&engine, "run-1");
    assert_eq!(r.status(), ResultStatus::Failed);
    assert_eq!(r.error().unwrap().code, codes::TIMEOUT);
    let (_, d) = parking.take().pop().unwrap();
    assert!(d.is_cancelled(), "the handle sees the deadline passed");
    assert!(
        !d.complete(Ok(JsonObject::new())),
        "late completion dropped"
    );
    assert!(engine.wait_until(WAIT, |_| h.health().active_tasks == 0));
    h.shutdown();
    assert_eq!(engine.results().len(), 1);
}

#[test]
fn an_engine_cancel_reaches_a_deferred_task() {
    let engine = LocalEngine::new();
    let parking = Arc::new(Parking::default());
    let h = start(&engine, settings(1, 10), vec![parker(&parking, 4)]);
    engine.push_task(task(1, "parked"));
    assert!(parking.wait_parked(1));
    engine.push_cancel("run-1:n:1", "user asked");
    wait_results(&engine, 1);
    assert_eq!(
        result_for(&engine, "run-1").error().unwrap().code,
        codes::CANCELLED
    );
    let (_, d) = parking.take().pop().unwrap();
    assert!(d.is_cancelled());
    assert!(!d.complete(Ok(JsonObject::new())));
    assert!(engine.wait_until(WAIT, |_| h.health().active_tasks == 0));
    h.shutdown();
    assert_eq!(engine.results().len(), 1);
}

#[test]
fn a_dropped_handle_is_a_technical_failure_retried_then_failed() {
    let engine = LocalEngine::new();
    let parking = Arc::new(Parking::default());
    let h = start(
        &engine,
        settings(1, 10),
        vec![local(
            Parker {
                parking: Arc::clone(&parking),
                drop_handle: true,
            },
            "dropper",
            4,
        )],
    );
    engine.push_task(task(1, "dropper"));
    wait_results(&engine, 1);
    let r = result_for(&engine, "run-1");
    let err = r.error().unwrap();
    assert_eq!(err.code, codes::DEFERRED_DROPPED);
    assert!(err.message.contains("after 3 retries"), "{}", err.message);
    assert_eq!(
        parking.executions.load(Ordering::SeqCst),
        4,
        "first run + 3 retries"
    );
    h.shutdown();
}

#[test]
fn a_deferred_task_keeps_its_permits() {
    const N: usize = 6;
    let engine = LocalEngine::new();
    let parking = Arc::new(Parking::default());
    let h = start(&engine, settings(4, 100), vec![parker(&parking, 2)]);
    for i in 0..N {
        engine.push_task(task(i, "parked"));
    }
    let mut done = 0;
    while done < N {
        assert!(parking.wait_parked(2.min(N - done)));
        let e = h.health();
        let parked = &e.executors[0];
        assert!(parked.active_tasks <= 2, "{parked:?}");
        for (_, d) in parking.take() {
            assert!(d.complete(Ok(JsonObject::new())));
            done += 1;
        }
    }
    wait_results(&engine, N);
    assert_eq!(
        parking.max_seen.load(Ordering::SeqCst),
        2,
        "per-type limit held"
    );
    h.shutdown();
}

/// A blocking executor that never returns until released (ignores cancellation).
#[derive(Default)]
struct Stuck {
    open: Mutex<bool>,
    cv: Condvar,
    inside: AtomicUsize,
}

impl Stuck {
    fn release(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }
}

struct StuckExec(Arc<Stuck>);

impl WorkflowExecutor for StuckExec {
    fn execute(&self, task: &Task, _: &ExecutionContext) -> Result<JsonObject, ExecutionError> {
        self.0.inside.fetch_add(1, Ordering::SeqCst);
        let mut open = self.0.open.lock().unwrap();
        while !*open {
            open = self.0.cv.wait(open).unwrap();
        }
        drop(open);
        self.0.inside.fetch_sub(1, Ordering::SeqCst);
        Ok(task.context.clone())
    }
}

#[test]
fn stuck_threads_past_the_cap_are_not_replaced_and_mark_the_type_unhealthy() {
    let engine = LocalEngine::new();
    let stuck = Arc::new(Stuck::default());
    let mut s = settings(2, 10);
    s.pool.default_timeout = Duration::from_millis(200);
    s.pool.max_abandoned_threads = 1;
    let h = start(
        &engine,
        s,
        vec![
            local(StuckExec(Arc::clone(&stuck)), "stuck", 4),
            local(Echo, "echo", 4),
        ],
    );
    let entry = |h: &RuntimeHandle, ty: &str| {
        h.health()
            .executors
            .into_iter()
            .find(|e| e.executor_type == ty)
            .unwrap()
    };
    assert!(entry(&h, "stuck").healthy);
    // First hang: TIMEOUT, its thread replaced; the replacement budget (1) is used up.
    engine.push_task(task(1, "stuck"));
    wait_results(&engine, 1);
    assert_eq!(
        result_for(&engine, "run-1").error().unwrap().code,
        codes::TIMEOUT
    );
    assert!(engine.wait_until(WAIT, |_| h.health().worker_threads == 3));
    let e = entry(&h, "stuck");
    assert_eq!(e.abandoned_threads, 1);
    assert!(!e.healthy);
    assert!(
        e.reason
            .as_deref()
            .unwrap()
            .contains("max-abandoned-threads")
    );
    // Second hang: TIMEOUT, but no replacement; its task keeps the type's permit.
    engine.push_task(task(2, "stuck"));
    wait_results(&engine, 2);
    assert_eq!(
        result_for(&engine, "run-2").error().unwrap().code,
        codes::TIMEOUT
    );
    assert!(engine.wait_until(WAIT, |_| entry(&h, "stuck").abandoned_threads == 2));
    assert_eq!(h.health().worker_threads, 3, "no thread beyond the cap");
    assert_eq!(
        entry(&h, "stuck").active_tasks,
        1,
        "the unreplaced task holds its permit"
    );
    assert_eq!(stuck.inside.load(Ordering::SeqCst), 2);
    // The remaining worker still serves other types.
    engine.push_task(task(3, "echo"));
    wait_results(&engine, 3);
    assert!(result_for(&engine, "run-3").is_completed());
    // Once the executor lets go, the threads come back and the type is healthy again.
    stuck.release();
    assert!(engine.wait_until(WAIT, |_| {
        let e = entry(&h, "stuck");
        e.healthy && e.abandoned_threads == 0 && e.active_tasks == 0
    }));
    assert_eq!(h.health().worker_threads, 2);
    h.shutdown();
    assert_eq!(engine.results().len(), 3, "late results dropped");
}

/// Defers, parks the handle, then stays in `execute` until cancelled: the cancel arrives
/// while the task is not yet marked deferred, and must still end it.
struct DeferThenLinger(Arc<Parking>);

impl WorkflowExecutor for DeferThenLinger {
    fn execute(&self, task: &Task, ctx: &ExecutionContext) -> Result<JsonObject, ExecutionError> {
        let handle = ctx.defer();
        {
            let mut h = self.0.handles.lock().unwrap();
            h.push((task.clone(), handle));
            self.0.cv.notify_all();
        }
        ctx.cancellation().wait(WAIT);
        Ok(JsonObject::new())
    }
}

#[test]
fn a_cancel_while_execute_still_runs_after_deferring_ends_the_task() {
    let engine = LocalEngine::new();
    let parking = Arc::new(Parking::default());
    let h = start(
        &engine,
        settings(1, 10),
        vec![local(DeferThenLinger(Arc::clone(&parking)), "linger", 4)],
    );
    engine.push_task(task(1, "linger"));
    assert!(parking.wait_parked(1));
    engine.push_cancel("run-1:n:1", "user asked");
    wait_results(&engine, 1);
    assert_eq!(
        result_for(&engine, "run-1").error().unwrap().code,
        codes::CANCELLED
    );
    let (_, d) = parking.take().pop().unwrap();
    assert!(!d.complete(Ok(JsonObject::new())));
    assert!(engine.wait_until(WAIT, |_| h.health().active_tasks == 0));
    h.shutdown();
    assert_eq!(engine.results().len(), 1);
}

#[test]
fn shutdown_hands_back_deferred_tasks_still_unsettled_at_the_drain_deadline() {
    let engine = LocalEngine::new();
    let parking = Arc::new(Parking::default());
    let mut s = settings(1, 10);
    s.drain_timeout = Duration::from_millis(300);
    let h = start(&engine, s, vec![parker(&parking, 4)]);
    engine.push_task(task(1, "parked"));
    engine.push_task(task(2, "parked"));
    assert!(parking.wait_parked(2));
    let mut handles = parking.take();
    handles.sort_by_key(|(t, _)| t.run_id.clone());
    let (_, second) = handles.pop().unwrap();
    let (_, first) = handles.pop().unwrap();
    assert!(first.complete(Ok(JsonObject::new())));
    wait_results(&engine, 1);
    let report = h.shutdown();
    assert_eq!(report.released, 1);
    assert_eq!(engine.released()[0].run_id, "run-2");
    assert!(
        second.is_cancelled(),
        "the unsettled handle learns it was given up"
    );
    assert!(!second.complete(Ok(JsonObject::new())));
    assert_eq!(engine.results().len(), 1);
    assert_eq!(engine.results()[0].run_id(), "run-1");
}
