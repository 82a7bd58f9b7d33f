//! Hot in-process domain paths: what the engine and the runtime do once per task.
//!
//! Run: `cargo bench -p gamelan-domain` (add `-- --warm-up-time 1 --measurement-time 2`
//! for a quick pass).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gamelan_domain::{
    Acceptance, Balancer, BatchPolicy, Batcher, Candidate, JsonObject, ResultIntake, RetryPolicy,
    Task,
};

/// One assignment among `n` executors of uneven load, then one completion elsewhere, so
/// the set stays in a steady state with ties, full and dead executors mixed in.
fn balancer(c: &mut Criterion) {
    let mut group = c.benchmark_group("balancer_choose");
    for n in [4usize, 16, 64] {
        let mut candidates: Vec<Candidate> = (0..n)
            .map(|i| Candidate {
                alive: i % 7 != 3,
                in_flight: (i % 5) as u32,
                capacity: 10,
            })
            .collect();
        let mut balancer = Balancer::new();
        let mut done = 0usize;
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                if let Some(i) = balancer.choose(black_box(&candidates)) {
                    candidates[i].in_flight += 1;
                }
                // Complete on the next busy executor, round the set.
                for _ in 0..n {
                    done = (done + 1) % n;
                    if candidates[done].in_flight > 0 {
                        candidates[done].in_flight -= 1;
                        break;
                    }
                }
            });
        });
    }
    group.finish();
}

/// The whole retry schedule of one task: every delay until retries run out.
fn retry(c: &mut Criterion) {
    let policy = RetryPolicy {
        max_attempts: 10,
        initial_delay: Duration::from_millis(100),
        multiplier: 1.5,
        max_delay: Duration::from_secs(30),
        jitter: 0.2,
    };
    let mut group = c.benchmark_group("retry");
    group.throughput(Throughput::Elements(u64::from(policy.max_attempts)));
    group.bench_function("schedule_10", |b| {
        b.iter(|| {
            let policy = black_box(&policy);
            let mut total = Duration::ZERO;
            let mut done = 0;
            while let Some(d) = policy.next_delay(done, 0.37) {
                total += d;
                done += 1;
            }
            total
        });
    });
    group.finish();
}

/// 1,000 results through a batcher of 100: ten size flushes, then a final age flush.
fn batch(c: &mut Criterion) {
    const N: u64 = 1_000;
    let policy = BatchPolicy {
        max_size: 100,
        max_age: Duration::from_millis(5),
    };
    let t0 = Instant::now();
    let mut group = c.benchmark_group("batch");
    group.throughput(Throughput::Elements(N));
    group.bench_function("push_flush_1000_by_100", |b| {
        let mut batcher = Batcher::new(policy);
        b.iter(|| {
            let mut flushed = 0usize;
            for i in 0..N {
                let now = t0 + Duration::from_micros(i);
                if let Some(batch) = batcher.push(black_box(i), now) {
                    flushed += batch.len();
                }
            }
            if let Some(batch) = batcher.poll(t0 + Duration::from_secs(1)) {
                flushed += batch.len();
            }
            flushed
        });
    });
    group.finish();
}

/// Engine-side intake: a fresh attempt dispatched and its result reported (accepted), then
/// the redelivered duplicate (already processed), across 1,024 live tasks.
fn intake(c: &mut Criterion) {
    const TASKS: usize = 1_024;
    let runs: Vec<String> = (0..TASKS).map(|i| format!("run-{:06}", i / 8)).collect();
    let nodes: Vec<String> = (0..TASKS).map(|i| format!("node-{}", i % 8)).collect();
    let mut intake = ResultIntake::new();
    for i in 0..TASKS {
        intake.dispatched(&runs[i], &nodes[i], 1, "token");
    }
    let mut group = c.benchmark_group("intake");
    group.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    let mut attempt = 1u32;
    group.bench_function("dispatch_report_repeat", |b| {
        b.iter(|| {
            i += 1;
            if i == TASKS {
                i = 0;
                attempt += 1;
            }
            let (run, node) = (&runs[i], &nodes[i]);
            intake.dispatched(run, node, attempt, "token");
            let first = intake.report(run, node, attempt, "token");
            let again = intake.report(run, node, attempt, "token");
            debug_assert_eq!(first, Ok(Acceptance::Accept));
            debug_assert_eq!(again, Ok(Acceptance::AlreadyProcessed));
            (first, again)
        });
    });
    group.bench_function("report_repeat", |b| {
        b.iter(|| {
            i = (i + 1) % TASKS;
            intake.report(black_box(&runs[i]), &nodes[i], attempt, "token")
        });
    });
    group.finish();
}

/// A task as the wire carries it in JSON (REST and Kafka transports).
fn task_json(c: &mut Criterion) {
    let mut task = Task::new("run-0001", "node-7", "echo", 1);
    task.node_name = "Echo".into();
    task.execution_token = "0123456789abcdef".into();
    task.tenant_id = "tenant-a".into();
    task.timeout_seconds = Some(30);
    task.scheduled_at_ms = 1_763_900_000_000;
    let mut context = JsonObject::new();
    context.insert("orderId".into(), "A-1001".into());
    context.insert("amount".into(), 129.5.into());
    context.insert("items".into(), serde_json::json!(["x", "y"]));
    task.context = context;
    task.configuration
        .insert("mode".into(), serde_json::Value::from("fast"));
    let encoded = serde_json::to_vec(&task).unwrap_or_default();

    let mut group = c.benchmark_group("task_json");
    group.throughput(Throughput::Bytes(encoded.len() as u64));
    group.bench_function("serialize", |b| {
        let mut buf = Vec::with_capacity(encoded.len() * 2);
        b.iter(|| {
            buf.clear();
            serde_json::to_writer(&mut buf, black_box(&task)).map(|()| buf.len())
        });
    });
    group.bench_function("deserialize", |b| {
        b.iter(|| serde_json::from_slice::<Task>(black_box(&encoded)));
    });
    group.bench_function("round_trip_owned", |b| {
        b.iter_batched(
            || task.clone(),
            |t| serde_json::to_vec(&t).and_then(|v| serde_json::from_slice::<Task>(&v)),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, balancer, retry, batch, intake, task_json);
criterion_main!(benches);
