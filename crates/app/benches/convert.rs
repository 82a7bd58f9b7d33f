//! Task and result conversions on the transport hot paths: domain <-> protobuf (with the
//! JSON <-> `google.protobuf.Struct` mapping of context and output), with and without the
//! protobuf encoding, beside the JSON round trip the REST and Kafka transports do.
//!
//! Run: `cargo bench -p gamelan --bench convert`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gamelan_domain::{JsonObject, Task, TaskResult};
use gamelan_grpc::convert::{result_from_proto, result_to_proto, task_from_proto, task_to_proto};
use gamelan_grpc::proto::v1 as pb;
use prost::Message;
use serde_json::json;

fn task(payload: usize) -> Task {
    let mut t = Task::new("run-0000042", "node-7", "echo", 1);
    t.node_name = "Echo".into();
    t.execution_token = "0f6c1a4e-8d3b-4f1e-9c55-3a7e2b9d1c40".into();
    t.tenant_id = "tenant-a".into();
    t.scheduled_at_ms = 1_790_000_000_000;
    t.timeout_seconds = Some(30);
    let mut ctx = JsonObject::new();
    ctx.insert("data".into(), "x".repeat(payload).into());
    ctx.insert("amount".into(), json!(123.45));
    ctx.insert("items".into(), json!([{"sku": "A-1", "qty": 2}]));
    t.context = ctx;
    t
}

fn conversions(c: &mut Criterion) {
    for payload in [128usize, 4096] {
        let t = task(payload);
        let mut group = c.benchmark_group(format!("task_{payload}B"));
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("proto", "to+from"), |b| {
            b.iter(|| task_from_proto(task_to_proto(black_box(&t))).expect("valid"));
        });
        group.bench_function(BenchmarkId::new("proto", "to+encode+decode+from"), |b| {
            b.iter(|| {
                let bytes = task_to_proto(black_box(&t)).encode_to_vec();
                let p = pb::ExecutionTask::decode(bytes.as_slice()).expect("decodes");
                task_from_proto(p).expect("valid")
            });
        });
        group.bench_function(BenchmarkId::new("json", "serialize+deserialize"), |b| {
            b.iter(|| {
                let bytes = serde_json::to_vec(black_box(&t)).expect("serializes");
                serde_json::from_slice::<Task>(&bytes).expect("deserializes")
            });
        });
        group.finish();

        let r = TaskResult::completed(&t, t.context.clone(), 1_790_000_000_123);
        let mut group = c.benchmark_group(format!("result_{payload}B"));
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("proto", "to+encode+decode+from"), |b| {
            b.iter(|| {
                let bytes = result_to_proto(black_box(&r)).encode_to_vec();
                let p = pb::TaskResult::decode(bytes.as_slice()).expect("decodes");
                result_from_proto(p).expect("valid")
            });
        });
        group.bench_function(BenchmarkId::new("json", "serialize+deserialize"), |b| {
            b.iter(|| {
                let bytes = serde_json::to_vec(black_box(&r)).expect("serializes");
                serde_json::from_slice::<TaskResult>(&bytes).expect("deserializes")
            });
        });
        group.finish();
    }
}

criterion_group!(benches, conversions);
criterion_main!(benches);
