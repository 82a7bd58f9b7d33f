//! Engine -> executor protobuf: `ExecutionTask` (alone and inside `EngineMessage`) and the
//! push `ExecutionRequest`, decoded with prost and converted into the domain `Task` exactly
//! as the gRPC client does. A task that converts must survive the way back unchanged.
#![no_main]

use gamelan_grpc::convert::{execution_request_to_task, task_from_proto, task_to_proto};
use gamelan_grpc::proto::dispatcher::ExecutionRequest;
use gamelan_grpc::proto::v1::{EngineMessage, ExecutionTask, engine_message};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fn convert(wire: ExecutionTask) {
    if let Ok(task) = task_from_proto(wire) {
        let again = task_from_proto(task_to_proto(&task));
        assert_eq!(
            again.as_ref(),
            Ok(&task),
            "a decoded task must re-encode to itself"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(task) = ExecutionTask::decode(data) {
        convert(task);
    }
    if let Ok(EngineMessage {
        message: Some(engine_message::Message::Task(task)),
    }) = EngineMessage::decode(data)
    {
        convert(task);
    }
    if let Ok(request) = ExecutionRequest::decode(data) {
        let _ = execution_request_to_task(request.clone(), None);
        let _ = execution_request_to_task(request, Some("echo"));
    }
});
