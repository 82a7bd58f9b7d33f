//! A rough load check, ignored by default: `cargo test --release -p gamelan-grpc --test
//! throughput -- --ignored --nocapture`. Prints tasks/s through each pull delivery mode
//! against the in-memory engine, beside the raw echo baseline.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{EngineServer, FakeEngine, client_settings, registration, task};
use gamelan_domain::{JsonObject, TaskResult};
use gamelan_grpc::{Delivery, GrpcServerSettings, GrpcTransport};
use gamelan_ports::{EngineTransport, Inbound, NoToken};

fn run(delivery: Delivery, total: usize) -> f64 {
    let engine = FakeEngine::new();
    let server = EngineServer::start(engine.clone(), GrpcServerSettings::default());
    let t =
        GrpcTransport::new(client_settings(&server.url(), delivery), Arc::new(NoToken)).unwrap();
    t.connect().unwrap();
    t.register(&[registration("rt-noop", "noop", 512)]).unwrap();
    let started = Instant::now();
    let mut next = 1;
    let mut done = 0;
    while done < total {
        // Keep the fake's queue short: it scans it on every dispatch.
        let queued = engine.read(|s| s.queue.len());
        if queued < 1024 && next <= total {
            let upto = (next + 1024).min(total + 1);
            engine.enqueue_many((next..upto).map(|i| task(i, "noop")));
            next = upto;
        }
        let got = t.receive(512, Duration::from_millis(50)).unwrap();
        let results: Vec<TaskResult> = got
            .iter()
            .filter_map(|i| match i {
                Inbound::Task(t) => Some(TaskResult::completed(t, JsonObject::new(), 1)),
                Inbound::Cancel { .. } => None,
            })
            .collect();
        if !results.is_empty() {
            done += t.report(&results).unwrap().len();
        }
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    drop(server);
    rate
}

#[test]
#[ignore = "load check; run in release"]
fn throughput() {
    let raw = gamelan_grpc::raw_echo::run_loopback(100_000, 64).unwrap();
    println!("raw echo: {:.0} msgs/s", raw.messages_per_second());
    for d in [Delivery::ExecuteStream, Delivery::StreamTasks] {
        let rate = run(d, 20_000);
        println!(
            "{d}: {rate:.0} tasks/s ({:.2} of raw)",
            rate / raw.messages_per_second()
        );
    }
}
