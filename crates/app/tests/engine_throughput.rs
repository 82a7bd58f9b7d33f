//! Throughput of the engine core, printed (run with `--nocapture`, in release for real
//! figures): submission alone, ephemeral vs durable, and a full loop of submit -> stream
//! delivery -> batched result reports -> completion feed, with no transport in between.
//! The assertions check that nothing was lost; the figures are for reading.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use gamelan::engine::{Engine, EngineSettings};
use gamelan_domain::{Acceptance, ExecutorMetadata, JsonObject, Task, TaskResult};
use gamelan_ports::{EngineService, Registration, SubmitRequest, SystemClock, TaskSink};

const TYPE: &str = "noop";
const BATCH: usize = 1000;

fn tasks() -> usize {
    std::env::var("GAMELAN_ENGINE_BENCH_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) {
            20_000
        } else {
            200_000
        })
}

fn open(durable: Option<&std::path::Path>) -> Arc<Engine> {
    let settings = EngineSettings {
        data_dir: durable.map(std::path::Path::to_path_buf),
        ..EngineSettings::default()
    };
    Engine::open(settings, Arc::new(SystemClock)).expect("engine opens")
}

fn requests(n: usize) -> Vec<SubmitRequest> {
    (0..n)
        .map(|i| {
            let mut input = JsonObject::new();
            input.insert("i".into(), i.into());
            SubmitRequest {
                executor_type: Some(TYPE.into()),
                input,
                ..SubmitRequest::default()
            }
        })
        .collect()
}

/// Submits `n` tasks in batches; returns tasks per second.
fn submit_all(engine: &Engine, n: usize) -> f64 {
    let start = Instant::now();
    let mut left = n;
    while left > 0 {
        let k = left.min(BATCH);
        for answer in engine.submit_batch(requests(k)) {
            answer.expect("accepted");
        }
        left -= k;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

struct ChannelSink(Sender<Task>);

impl TaskSink for ChannelSink {
    fn deliver(&self, task: Arc<Task>) -> bool {
        self.0.send(Arc::unwrap_or_clone(task)).is_ok()
    }
    fn cancel(&self, _: &str, _: &str) -> bool {
        true
    }
}

/// An executor that completes every task at once, reporting in batches.
fn noop_worker(engine: Arc<Engine>, rx: Receiver<Task>) -> u64 {
    let mut accepted = 0;
    let mut batch = Vec::with_capacity(512);
    while let Ok(first) = rx.recv() {
        batch.push(TaskResult::completed(&first, JsonObject::new(), 0));
        while batch.len() < 512 {
            match rx.try_recv() {
                Ok(t) => batch.push(TaskResult::completed(&t, JsonObject::new(), 0)),
                Err(_) => break,
            }
        }
        for answer in engine.report(std::mem::take(&mut batch)) {
            if answer == Ok(Acceptance::Accept) {
                accepted += 1;
            }
        }
    }
    accepted
}

/// Full loop; returns tasks per second from first submission to last completion seen.
fn full_loop(engine: &Arc<Engine>, n: usize) -> f64 {
    let metadata = ExecutorMetadata::new(TYPE).max_concurrent_tasks(4096);
    engine
        .register(Registration {
            executor_id: "bench".into(),
            metadata,
            endpoint: String::new(),
            attributes: BTreeMap::new(),
        })
        .expect("registers");
    let (tx, rx) = crossbeam_channel::unbounded();
    let stream = engine
        .attach("bench", 4096, Arc::new(ChannelSink(tx)))
        .expect("attaches");
    let worker = {
        let engine = Arc::clone(engine);
        std::thread::spawn(move || noop_worker(engine, rx))
    };
    let start = Instant::now();
    let submitter = {
        let engine = Arc::clone(engine);
        std::thread::spawn(move || submit_all(&engine, n))
    };
    let mut cursor = 0;
    let deadline = Instant::now() + Duration::from_secs(600);
    while (cursor as usize) < n && Instant::now() < deadline {
        let (views, next) = engine.completions(cursor, 10_000, Duration::from_millis(200));
        assert!(
            views
                .iter()
                .all(|v| v.status == gamelan_ports::TaskState::Completed)
        );
        cursor = next;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    submitter.join().expect("submitter");
    engine.detach("bench", stream);
    // Detaching dropped the sink, which ends the worker.
    let accepted = worker.join().expect("worker");
    engine.shutdown();
    assert_eq!(cursor as usize, n, "every task completed");
    assert_eq!(accepted as usize, n, "every result accepted once");
    rate
}

#[test]
fn engine_throughput_ephemeral_vs_durable() {
    let n = tasks();
    let dir = tempfile::tempdir().expect("temp dir");

    let ephemeral = open(None);
    let submit_ephemeral = submit_all(&ephemeral, n);
    assert_eq!(ephemeral.statistics().tasks_submitted as usize, n);
    ephemeral.shutdown();

    let durable = open(Some(&dir.path().join("submit")));
    let submit_durable = submit_all(&durable, n);
    assert_eq!(durable.statistics().tasks_submitted as usize, n);
    durable.shutdown();

    let loop_ephemeral = full_loop(&open(None), n);
    let loop_durable = full_loop(&open(Some(&dir.path().join("loop"))), n);

    let reopened = open(Some(&dir.path().join("loop")));
    let stats = reopened.statistics();
    assert_eq!(
        (stats.tasks_completed as usize, stats.tasks_pending),
        (n, 0),
        "a durable run is complete after reopening"
    );

    println!(
        "engine core, {n} tasks, batches of {BATCH} ({} build):",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    println!(
        "  submit only: ephemeral {submit_ephemeral:>10.0} tasks/s, durable {submit_durable:>10.0} tasks/s (ratio {:.2})",
        submit_durable / submit_ephemeral
    );
    println!(
        "  full loop:   ephemeral {loop_ephemeral:>10.0} tasks/s, durable {loop_durable:>10.0} tasks/s (ratio {:.2})",
        loop_durable / loop_ephemeral
    );
}
