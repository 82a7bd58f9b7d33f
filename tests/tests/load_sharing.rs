//! Two executor processes with the same executor types and different runtime ids share the
//! work, and the engine never gives either more tasks at once than its declared maximum.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gamelan_e2e::workload::sleep_requests;
use gamelan_e2e::{Engine, EngineSpec, Executor, ExecutorSpec, e2e};

/// More sleep tasks than both executors may hold at once (2 x 100), so the limit binds.
const TASKS: usize = 300;
const SLEEP_MS: u64 = 300;
/// The built-in `sleep` executor's declared max concurrent tasks.
const SLEEP_MAX: u64 = 100;

/// The highest figures seen while the tasks ran.
#[derive(Debug, Default)]
struct Peaks {
    /// Engine view: tasks assigned to the executor without a result yet.
    engine_in_flight: HashMap<String, u64>,
    /// Executor view (`/health`): sleep tasks running in the process.
    active: HashMap<String, u64>,
    /// Any moment an executor had more than its maximum.
    violations: Vec<String>,
    samples: usize,
}

fn sample(engine: &Engine, executors: &[&Executor], peaks: &Mutex<Peaks>) {
    let views = engine.api.executors().unwrap_or_default();
    let mut p = peaks.lock().expect("peaks");
    p.samples += 1;
    for v in views.iter().filter(|v| v.executor_type == "sleep") {
        if v.in_flight > v.max_concurrent_tasks {
            p.violations.push(format!(
                "engine: {} in flight {} > max {}",
                v.executor_id, v.in_flight, v.max_concurrent_tasks
            ));
        }
        let peak = p.engine_in_flight.entry(v.executor_id.clone()).or_default();
        *peak = (*peak).max(v.in_flight);
    }
    for x in executors {
        if let Ok((active, max)) = x.active_tasks("sleep") {
            if active > max {
                p.violations
                    .push(format!("{}: {active} running > max {max}", x.runtime_id));
            }
            let peak = p.active.entry(x.runtime_id.clone()).or_default();
            *peak = (*peak).max(active);
        }
    }
}

fn two_executors_share_load(transport: &str) -> anyhow::Result<()> {
    let engine = Engine::start(&EngineSpec::ephemeral())?;
    let spec = |id: &str| {
        ExecutorSpec::new(id, &engine)
            .with("GAMELAN_EXECUTOR_TRANSPORT", transport)
            // Enough workers that the engine's limit, not the pool, bounds concurrency.
            .with("GAMELAN_EXECUTOR_TASK_DISPATCH_THREADS", 110)
            .with("GAMELAN_EXECUTOR_RUNTIME_MAX_PARALLEL_TASKS", 220)
    };
    let a = Executor::start(&spec("share-a"))?;
    let b = Executor::start(&spec("share-b"))?;
    let views = engine.wait_alive(&[a.id("sleep"), b.id("sleep")])?;
    for v in views.iter().filter(|v| v.executor_type == "sleep") {
        assert_eq!(v.max_concurrent_tasks, SLEEP_MAX, "{v:?}");
        assert_eq!(v.communication_type, transport.to_uppercase(), "{v:?}");
    }

    let peaks = Mutex::new(Peaks::default());
    let stop = AtomicBool::new(false);
    let done = std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Acquire) {
                sample(&engine, &[&a, &b], &peaks);
                std::thread::park_timeout(Duration::from_millis(5));
            }
        });
        let result = engine
            .api
            .submit(&sleep_requests(transport, TASKS, SLEEP_MS))
            .and_then(|submitted| {
                engine
                    .api
                    .await_completions(&submitted, Duration::from_secs(60))
            });
        stop.store(true, Ordering::Release);
        result
    })?;
    let peaks = peaks.into_inner().expect("peaks");
    eprintln!("{transport}: {peaks:?}");

    done.assert_each_completed_once(TASKS);
    let mut by_executor: HashMap<&str, usize> = HashMap::new();
    for v in done.by_key.values() {
        *by_executor
            .entry(v.executor_id.as_deref().unwrap_or("?"))
            .or_default() += 1;
    }
    let ran_a = by_executor
        .get(a.id("sleep").as_str())
        .copied()
        .unwrap_or(0);
    let ran_b = by_executor
        .get(b.id("sleep").as_str())
        .copied()
        .unwrap_or(0);
    assert_eq!(ran_a + ran_b, TASKS, "tasks ran elsewhere: {by_executor:?}");
    // Each executor can hold at most 100 of the 300 at a time, so neither can have done
    // (nearly) all of them.
    assert!(
        ran_a >= 50 && ran_b >= 50,
        "load not shared: {by_executor:?}"
    );

    // The engine's own per-executor counters agree.
    let a_view = engine.executor(&a.id("sleep"))?.expect("a listed");
    let b_view = engine.executor(&b.id("sleep"))?.expect("b listed");
    assert_eq!(a_view.completed_tasks, ran_a as u64);
    assert_eq!(b_view.completed_tasks, ran_b as u64);

    assert!(
        peaks.violations.is_empty(),
        "over the limit: {:?}",
        peaks.violations
    );
    assert!(peaks.samples > 5, "too few samples to judge: {peaks:?}");
    for x in [&a, &b] {
        let engine_peak = peaks
            .engine_in_flight
            .get(&x.id("sleep"))
            .copied()
            .unwrap_or(0);
        assert!(engine_peak <= SLEEP_MAX, "{peaks:?}");
        // The limit was reached, not merely respected by an idle executor.
        assert!(
            engine_peak >= SLEEP_MAX / 2,
            "{} never busy: {peaks:?}",
            x.runtime_id
        );
        let active_peak = peaks.active.get(&x.runtime_id).copied().unwrap_or(0);
        assert!(active_peak <= SLEEP_MAX, "{peaks:?}");
    }
    let stats = engine.api.statistics()?;
    assert_eq!(stats.tasks_completed, TASKS as u64);
    assert_eq!(stats.results_duplicate, 0);
    Ok(())
}

#[test]
fn two_grpc_executors_share_load_within_their_limits() {
    e2e(|| two_executors_share_load("grpc"));
}

#[test]
fn two_rest_executors_share_load_within_their_limits() {
    e2e(|| two_executors_share_load("rest"));
}
