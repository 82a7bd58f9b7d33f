//! The executor runtime's in-process path, task in to result out, beside the raw hand-off it
//! is built on: a batch of noop (`echo`) tasks through a runtime over the in-memory
//! transport (intake, admission, worker pool, executor, result batching, report) against
//! the same number of messages through a crossbeam channel to as many threads and back.
//!
//! Run: `cargo bench -p gamelan --bench pool` (add `-- --warm-up-time 1 --measurement-time 3`
//! for a quick pass). The worker pool itself is private to the runtime, so it is measured
//! through the runtime's public builder.

use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gamelan::executors::Echo;
use gamelan::runtime::local::LocalEngine;
use gamelan::runtime::{PoolSettings, Runtime, RuntimeSettings};
use gamelan::sdk::Declared;
use gamelan_domain::{BatchPolicy, CommunicationType, ExecutorMetadata, JsonObject, Task};

const BATCH: usize = 1000;
const THREADS: usize = 2;
const PAYLOAD: usize = 128;

fn input() -> JsonObject {
    let mut input = JsonObject::new();
    input.insert("data".into(), "x".repeat(PAYLOAD).into());
    input
}

fn runtime_round_trip(iters: u64) -> Duration {
    let engine = LocalEngine::new();
    let mut meta = ExecutorMetadata::new("echo").communication(CommunicationType::Local);
    meta.max_concurrent_tasks = 1000;
    let runtime = Runtime::builder()
        .settings(RuntimeSettings {
            pool: PoolSettings {
                threads: THREADS,
                // Room for a whole batch and more: with a queue exactly as long as the
                // batch, the intake asks with zero credit and sleeps out its receive wait
                // (see BENCHMARKS.md), which would measure that stall, not the pool.
                queue_size: 2 * BATCH,
                ..PoolSettings::default()
            },
            batch: BatchPolicy {
                max_size: 100,
                max_age: Duration::ZERO,
            },
            heartbeat_enabled: false,
            ..RuntimeSettings::default()
        })
        .discover(false)
        .executor(Declared::new(Echo, meta))
        .transport(CommunicationType::Local, engine.transport())
        .start()
        .expect("runtime starts");
    assert!(runtime.wait_ready(Duration::from_secs(10)));
    let input = input();
    let mut n = 0usize;
    let started = Instant::now();
    for _ in 0..iters {
        for _ in 0..BATCH {
            let mut task = Task::new(format!("r{n}"), "n", "echo", 1);
            task.context.clone_from(&input);
            engine.push_task(task);
            n += 1;
        }
        let target = n;
        assert!(
            engine.wait_until(Duration::from_secs(60), |v| v.results().len() >= target),
            "results missing"
        );
    }
    let elapsed = started.elapsed();
    runtime.shutdown();
    elapsed
}

fn pool(c: &mut Criterion) {
    let mut group = c.benchmark_group("pool_round_trip");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);
    group.bench_function("runtime_local_echo", |b| b.iter_custom(runtime_round_trip));

    let (to_workers, work) = crossbeam_channel::unbounded::<Vec<u8>>();
    let (done, from_workers) = crossbeam_channel::unbounded::<Vec<u8>>();
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let (work, done) = (work.clone(), done.clone());
            thread::spawn(move || {
                while let Ok(m) = work.recv() {
                    if done.send(m).is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    let payload = vec![0xA5u8; PAYLOAD];
    group.bench_function("raw_crossbeam_hand_off", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                to_workers.send(payload.clone()).expect("workers alive");
            }
            for _ in 0..BATCH {
                black_box(from_workers.recv().expect("workers alive"));
            }
        });
    });
    group.finish();
    drop(to_workers);
    for w in workers {
        w.join().expect("worker exits");
    }
}

criterion_group!(benches, pool);
criterion_main!(benches);
