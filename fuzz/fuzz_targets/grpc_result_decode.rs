//! Executor -> engine protobuf: `TaskResult` (alone and inside `ExecutorMessage`),
//! heartbeats and registrations, decoded with prost and converted into the domain exactly as
//! the engine's gRPC service does. A result that converts must survive the way back
//! unchanged.
#![no_main]

use gamelan_grpc::convert::{
    heartbeat_from_proto, registration_from_proto, result_from_proto, result_to_proto,
};
use gamelan_grpc::proto::v1::{
    ExecutorMessage, HeartbeatRequest, RegisterExecutorRequest, TaskResult, executor_message,
};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fn convert(wire: TaskResult) {
    if let Ok(result) = result_from_proto(wire) {
        let again = result_from_proto(result_to_proto(&result));
        assert_eq!(
            again.as_ref(),
            Ok(&result),
            "a decoded result must re-encode to itself"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(result) = TaskResult::decode(data) {
        convert(result);
    }
    match ExecutorMessage::decode(data).map(|m| m.message) {
        Ok(Some(executor_message::Message::Result(result))) => convert(result),
        Ok(Some(executor_message::Message::Heartbeat(h))) => {
            let _ = heartbeat_from_proto(h);
        }
        _ => {}
    }
    if let Ok(h) = HeartbeatRequest::decode(data) {
        let _ = heartbeat_from_proto(h);
    }
    if let Ok(r) = RegisterExecutorRequest::decode(data) {
        let _ = registration_from_proto(r);
    }
});
