//! End-to-end throughput of the Kafka transport beside raw rdkafka on the same broker.
//!
//! `cargo run --release -p gamelan-kafka --example throughput -- [TASKS]`
//!
//! Starts a `tansu` broker (or uses `GAMELAN_KAFKA_BOOTSTRAP`), then measures:
//! - raw: TASKS messages of a task's size produced and consumed back with plain rdkafka;
//! - transport: TASKS echo tasks produced to `workflow-tasks.echo`, taken by a
//!   `KafkaTransport` (intake thread + reporting thread, as the runtime drives it), results
//!   produced to `workflow-results` and read back, offsets committed on the way.
//!
//! The transport does two hops (task, then result) where raw does one.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{
    ECHO, EchoWorker, ResultReader, produce_tasks, settings, tasks, transport, wait_until,
};
use gamelan_kafka::messages::encode_task;
use gamelan_kafka::raw::{RawBench, produce_consume};
use gamelan_kafka::test_broker::TansuBroker;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    // Kept alive until the end of the run (killed on drop).
    let broker = std::env::var("GAMELAN_KAFKA_BOOTSTRAP")
        .is_err()
        .then(TansuBroker::start);
    let bootstrap = broker.as_ref().map_or_else(
        || std::env::var("GAMELAN_KAFKA_BOOTSTRAP").unwrap_or_default(),
        TansuBroker::bootstrap,
    );
    let all = tasks("bench", n);
    let mut one = Vec::new();
    encode_task(&all[0], ECHO, &mut one);

    // The same client properties for both measurements.
    let s = settings(&bootstrap);
    let mut bench = RawBench::new(bootstrap.clone(), n, one.len());
    bench.properties.clone_from(&s.properties);
    let raw = produce_consume(&bench).expect("raw run");
    println!(
        "raw rdkafka:     {n} x {} B produced+consumed in {:.2?} = {:.0} msgs/s (produce alone {:.2?})",
        one.len(),
        raw.elapsed,
        raw.messages_per_second(),
        raw.produce
    );

    let topics = s.topics.clone();
    let worker = EchoWorker::start(transport(s, "bench-echo", ECHO), true);
    wait_until(Duration::from_secs(60), "partitions", || {
        worker.transport.assignment().len() == 4
    });
    let mut reader = ResultReader::new(&bootstrap, &topics);
    reader.wait_assigned(Duration::from_secs(60));
    let started = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| produce_tasks(&bootstrap, &topics, &all));
        reader.wait_for(
            all.iter().map(|t| t.task_id.clone()),
            Duration::from_secs(300),
        );
    });
    let elapsed = started.elapsed();
    let rate = n as f64 / elapsed.as_secs_f64();
    println!(
        "KafkaTransport:  {n} echo tasks end to end in {elapsed:.2?} = {rate:.0} tasks/s ({:.2} of raw)",
        rate / raw.messages_per_second()
    );
    let t = worker.stop();
    gamelan_ports::EngineTransport::close(&*t);
}
