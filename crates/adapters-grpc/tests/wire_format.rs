//! Pins the wire format: bytes built by hand from the field numbers the Java engine uses must
//! equal what the adapter encodes, and decode back to the same domain values.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use gamelan_domain::{ErrorInfo, JsonObject, Task, TaskResult};
use gamelan_grpc::convert::{result_from_proto, result_to_proto, task_from_proto, task_to_proto};
use gamelan_grpc::proto::v1 as pb;
use prost::Message;

const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;

fn varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn tag(field: u32, wire_type: u32, out: &mut Vec<u8>) {
    varint(u64::from((field << 3) | wire_type), out);
}

fn uint(field: u32, n: u64, out: &mut Vec<u8>) {
    tag(field, VARINT, out);
    varint(n, out);
}

fn bytes(field: u32, b: &[u8], out: &mut Vec<u8>) {
    tag(field, LEN, out);
    varint(b.len() as u64, out);
    out.extend_from_slice(b);
}

fn string(field: u32, s: &str, out: &mut Vec<u8>) {
    bytes(field, s.as_bytes(), out);
}

fn double(field: u32, v: f64, out: &mut Vec<u8>) {
    tag(field, FIXED64, out);
    out.extend_from_slice(&v.to_le_bytes());
}

fn message(field: u32, build: impl FnOnce(&mut Vec<u8>), out: &mut Vec<u8>) {
    let mut inner = Vec::new();
    build(&mut inner);
    bytes(field, &inner, out);
}

/// google.protobuf.Struct { map<string, Value> fields = 1 } with one number entry;
/// Value.number_value = 2.
fn struct_with_number(field: u32, key: &str, value: f64, out: &mut Vec<u8>) {
    message(
        field,
        |s| {
            message(
                1,
                |entry| {
                    string(1, key, entry);
                    message(2, |v| double(2, value, v), entry);
                },
                s,
            );
        },
        out,
    );
}

/// google.protobuf.Timestamp { int64 seconds = 1; int32 nanos = 2; }
fn timestamp(field: u32, seconds: u64, nanos: u64, out: &mut Vec<u8>) {
    message(
        field,
        |t| {
            uint(1, seconds, t);
            if nanos != 0 {
                uint(2, nanos, t);
            }
        },
        out,
    );
}

#[test]
fn execution_task_bytes_match_the_java_field_numbers() {
    let mut task = Task::new("run-1", "node-a", "calculate-tax", 2);
    task.node_name = "Tax".into();
    task.execution_token = "tok".into();
    task.context.insert("amount".into(), 100.into());
    task.timeout_seconds = Some(30);
    task.scheduled_at_ms = 1_500;
    task.tenant_id = "acme".into();

    let mut expected = Vec::new();
    string(1, "run-1:node-a:2", &mut expected); // task_id
    string(2, "run-1", &mut expected); // run_id
    string(3, "node-a", &mut expected); // node_id
    string(4, "Tax", &mut expected); // node_name
    string(5, "calculate-tax", &mut expected); // node_type
    uint(6, 2, &mut expected); // attempt
    string(7, "tok", &mut expected); // execution_token
    struct_with_number(8, "amount", 100.0, &mut expected); // context
    // configuration (9) is empty and omitted
    uint(10, 30, &mut expected); // timeout_seconds
    timestamp(11, 1, 500_000_000, &mut expected); // scheduled_at
    string(12, "acme", &mut expected); // tenant_id

    let encoded = task_to_proto(&task).encode_to_vec();
    assert_eq!(encoded, expected);
    let decoded = task_from_proto(pb::ExecutionTask::decode(expected.as_slice()).unwrap()).unwrap();
    assert_eq!(decoded, task);
}

#[test]
fn task_result_bytes_match_the_java_field_numbers() {
    let task = {
        let mut t = Task::new("r", "n", "t", 3);
        t.execution_token = "k".into();
        t.tenant_id = "t1".into();
        t
    };
    let failed = TaskResult::failed(&task, ErrorInfo::new("BOOM", "broke"), 2_000);

    let mut expected = Vec::new();
    string(1, "r:n:3", &mut expected); // task_id
    string(2, "r", &mut expected); // run_id
    string(3, "n", &mut expected); // node_id
    uint(4, 3, &mut expected); // attempt
    string(5, "k", &mut expected); // execution_token
    uint(6, 4, &mut expected); // status = TASK_STATUS_FAILED
    // output (7) empty and omitted
    message(
        8,
        |e| {
            string(1, "BOOM", e); // ErrorInfo.code
            string(2, "broke", e); // ErrorInfo.message
        },
        &mut expected,
    );
    timestamp(9, 2, 0, &mut expected); // completed_at
    string(10, "t1", &mut expected); // tenant_id

    assert_eq!(result_to_proto(&failed).encode_to_vec(), expected);
    let back = result_from_proto(pb::TaskResult::decode(expected.as_slice()).unwrap()).unwrap();
    assert_eq!(back, failed);

    let mut output = JsonObject::new();
    output.insert("tax".into(), serde_json::json!(10.5));
    let completed = TaskResult::completed(&task, output, 0);
    let mut expected = Vec::new();
    string(1, "r:n:3", &mut expected);
    string(2, "r", &mut expected);
    string(3, "n", &mut expected);
    uint(4, 3, &mut expected);
    string(5, "k", &mut expected);
    uint(6, 3, &mut expected); // status = TASK_STATUS_COMPLETED
    struct_with_number(7, "tax", 10.5, &mut expected); // output
    string(10, "t1", &mut expected);
    assert_eq!(result_to_proto(&completed).encode_to_vec(), expected);
}

#[test]
fn stream_envelopes_use_the_java_oneof_numbers_and_the_extension_is_field_4() {
    let ack = pb::ExecutorMessage {
        message: Some(pb::executor_message::Message::Ack(
            pb::TaskAcknowledgement {
                task_id: "x".into(),
                acknowledged_at: None,
            },
        )),
    };
    let mut expected = Vec::new();
    message(3, |a| string(1, "x", a), &mut expected);
    assert_eq!(ack.encode_to_vec(), expected);

    let acks = pb::EngineMessage {
        message: Some(pb::engine_message::Message::ResultAcks(pb::ResultAcks {
            acks: vec![pb::ResultAck {
                task_id: "x".into(),
                attempt: 1,
                outcome: "ACCEPT".into(),
                message: String::new(),
            }],
        })),
    };
    let mut expected = Vec::new();
    message(
        4,
        |r| {
            message(
                1,
                |a| {
                    string(1, "x", a);
                    uint(2, 1, a);
                    string(3, "ACCEPT", a);
                },
                r,
            );
        },
        &mut expected,
    );
    assert_eq!(acks.encode_to_vec(), expected);

    // A Java engine's decoder skips the unknown field 4; ours ignores unknown fields too.
    let mut with_unknown = Vec::new();
    message(1, |t| string(1, "r:n:1", t), &mut with_unknown);
    string(99, "future", &mut with_unknown);
    let m = pb::EngineMessage::decode(with_unknown.as_slice()).unwrap();
    assert!(
        matches!(m.message, Some(pb::engine_message::Message::Task(t)) if t.task_id == "r:n:1")
    );
}
