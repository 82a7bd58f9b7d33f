//! Hostile gRPC input against the running processes: bytes that are not protobuf, a message
//! over the 4 MiB limit, and a well-formed message that breaks the protocol's rules. Each gets
//! a gRPC error status, and the process keeps serving: a following normal call succeeds and
//! tasks still complete end to end.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use gamelan_e2e::workload::{check_tax, tax_requests};
use gamelan_e2e::{Engine, EngineSpec, Executor, ExecutorSpec, e2e};
use gamelan_grpc::proto::dispatcher::ExecutionRequest;
use gamelan_grpc::proto::dispatcher::executor_client::ExecutorClient;
use gamelan_grpc::proto::v1::executor_service_client::ExecutorServiceClient;
use gamelan_grpc::proto::v1::{
    CommunicationType, ErrorInfo, HeartbeatRequest, RegisterExecutorRequest, TaskResult, TaskStatus,
};
use prost::bytes::{Buf, BufMut};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic::{Code, Status};

const REGISTER: &str = "/tech.kayys.gamelan.grpc.v1.ExecutorService/RegisterExecutor";
const EXECUTE_STREAM: &str = "/tech.kayys.gamelan.grpc.v1.ExecutorService/ExecuteStream";
const EXECUTE: &str = "/tech.kayys.gamelan.dispatcher.Executor/Execute";
/// One byte over the default 4 MiB message limit, plus room for the rest of the message.
const OVERSIZED: usize = 4 * 1024 * 1024 + 64 * 1024;

/// Bytes passed through as the message, unchecked: what a broken or hostile peer sends.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;
#[derive(Debug)]
struct RawEncoder;
#[derive(Debug)]
struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut v = vec![0; src.remaining()];
        src.copy_to_slice(&mut v);
        Ok(Some(v))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

/// Not protobuf: field 1 (a string) claims 16 bytes and carries one.
fn garbage() -> Vec<u8> {
    vec![0x0a, 0x10, b'x']
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn channel(addr: SocketAddr) -> anyhow::Result<Channel> {
    Ok(Channel::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .connect()
        .await?)
}

async fn raw_unary(addr: SocketAddr, path: &'static str, body: Vec<u8>) -> Result<Vec<u8>, Status> {
    let channel = channel(addr)
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    grpc.unary(
        tonic::Request::new(body),
        PathAndQuery::from_static(path),
        RawCodec,
    )
    .await
    .map(tonic::Response::into_inner)
}

/// Opens a bidirectional stream, sends `body` as its one message and reads to the end.
async fn raw_bidi(
    addr: SocketAddr,
    path: &'static str,
    body: Vec<u8>,
) -> Result<Vec<Vec<u8>>, Status> {
    let channel = channel(addr)
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let mut stream = grpc
        .streaming(
            tonic::Request::new(tonic::codegen::tokio_stream::once(body)),
            PathAndQuery::from_static(path),
            RawCodec,
        )
        .await?
        .into_inner();
    let mut got = Vec::new();
    while let Some(m) = stream.message().await? {
        got.push(m);
    }
    Ok(got)
}

/// A rejection must be a status the server chose, not a broken connection.
fn assert_rejected<T: std::fmt::Debug>(what: &str, result: Result<T, Status>, codes: &[Code]) {
    match result {
        Ok(v) => panic!("{what}: accepted ({v:?})"),
        Err(s) => {
            eprintln!("{what}: {:?} {}", s.code(), s.message());
            assert!(
                codes.contains(&s.code()),
                "{what}: expected one of {codes:?}, got {:?}: {}",
                s.code(),
                s.message()
            );
        }
    }
}

fn registration(id: &str, metadata: HashMap<String, String>) -> RegisterExecutorRequest {
    RegisterExecutorRequest {
        executor_id: id.to_owned(),
        executor_type: "probe".to_owned(),
        communication_type: CommunicationType::Grpc as i32,
        endpoint: String::new(),
        metadata,
        supported_node_types: vec!["probe".to_owned()],
        max_concurrent_tasks: 1,
    }
}

/// Submits tax tasks and checks every answer: the processes still do real work.
fn tax_still_works(engine: &Engine, prefix: &str) -> anyhow::Result<()> {
    let submitted = engine.api.submit(&tax_requests(prefix, 100))?;
    let done = engine
        .api
        .await_completions(&submitted, Duration::from_secs(60))?;
    let wrong: Vec<_> = done
        .by_key
        .values()
        .filter_map(|v| check_tax(v).err())
        .collect();
    assert!(wrong.is_empty(), "{wrong:?}");
    Ok(())
}

#[test]
fn the_engine_answers_hostile_grpc_with_a_status_and_keeps_serving() {
    e2e(|| {
        let mut engine = Engine::start(&EngineSpec::ephemeral())?;
        let executor = Executor::start(&ExecutorSpec::new("calm", &engine))?;
        engine.wait_alive(&[executor.id("calculate-tax")])?;
        let addr = engine.addr;
        let rt = runtime();
        rt.block_on(async {
            assert_rejected(
                "bytes that are not protobuf",
                raw_unary(addr, REGISTER, garbage()).await,
                &[Code::Internal, Code::InvalidArgument],
            );

            assert_rejected(
                "bytes that are not protobuf on ExecuteStream",
                raw_bidi(addr, EXECUTE_STREAM, garbage()).await,
                &[Code::Internal, Code::InvalidArgument],
            );

            let mut client = ExecutorServiceClient::new(channel(addr).await?)
                .max_encoding_message_size(usize::MAX);
            let pad = HashMap::from([("pad".to_owned(), "x".repeat(OVERSIZED))]);
            assert_rejected(
                "a message over 4 MiB",
                client.register_executor(registration("huge", pad)).await,
                &[
                    Code::OutOfRange,
                    Code::ResourceExhausted,
                    Code::InvalidArgument,
                ],
            );

            let failed_without_error = TaskResult {
                task_id: "run-x:node:1".to_owned(),
                run_id: "run-x".to_owned(),
                node_id: "node".to_owned(),
                attempt: 1,
                execution_token: "token".to_owned(),
                status: TaskStatus::Failed as i32,
                error: None,
                ..TaskResult::default()
            };
            assert_rejected(
                "a FAILED result without an error",
                client
                    .report_results(tokio_stream_once(failed_without_error))
                    .await,
                &[Code::InvalidArgument],
            );
            let completed_with_error = TaskResult {
                status: TaskStatus::Completed as i32,
                error: Some(ErrorInfo {
                    code: "X".to_owned(),
                    ..ErrorInfo::default()
                }),
                task_id: "run-x:node:1".to_owned(),
                run_id: "run-x".to_owned(),
                node_id: "node".to_owned(),
                attempt: 1,
                ..TaskResult::default()
            };
            assert_rejected(
                "a COMPLETED result with an error",
                client
                    .report_results(tokio_stream_once(completed_with_error))
                    .await,
                &[Code::InvalidArgument],
            );
            assert_rejected(
                "a heartbeat from an executor nobody registered",
                client
                    .heartbeat(HeartbeatRequest {
                        executor_id: "nobody".to_owned(),
                        ..HeartbeatRequest::default()
                    })
                    .await,
                &[
                    Code::NotFound,
                    Code::FailedPrecondition,
                    Code::InvalidArgument,
                ],
            );

            // The same connection and a new one both still work.
            let ok = client
                .register_executor(registration("probe-1", HashMap::new()))
                .await?
                .into_inner();
            assert_eq!(ok.executor_id, "probe-1");
            assert_eq!(ok.status, "REGISTERED");
            let mut fresh = ExecutorServiceClient::new(channel(addr).await?);
            fresh
                .unregister_executor(gamelan_grpc::proto::v1::UnregisterExecutorRequest {
                    executor_id: "probe-1".to_owned(),
                })
                .await?;
            anyhow::Ok(())
        })?;
        assert!(
            engine.process.is_running(),
            "the engine must survive hostile input"
        );
        tax_still_works(&engine, "after-hostile-grpc")
    });
}

#[test]
fn a_push_executor_answers_hostile_grpc_with_a_status_and_keeps_serving() {
    e2e(|| {
        let engine = Engine::start(&EngineSpec::ephemeral())?;
        let executor = Executor::start(
            &ExecutorSpec::new("pushed", &engine)
                .with("GAMELAN_EXECUTOR_GRPC_DELIVERY", "push")
                .with("GAMELAN_EXECUTOR_GRPC_HOST", "127.0.0.1")
                .with("GAMELAN_EXECUTOR_GRPC_PORT", 0),
        )?;
        let views = engine.wait_alive(&[executor.id("calculate-tax")])?;
        let endpoint: SocketAddr = views
            .iter()
            .find(|v| v.executor_id == executor.id("calculate-tax"))
            .and_then(|v| v.endpoint.as_deref())
            .expect("a push executor registers its endpoint")
            .parse()?;
        let rt = runtime();
        rt.block_on(async {
            assert_rejected(
                "bytes that are not protobuf",
                raw_unary(endpoint, EXECUTE, garbage()).await,
                &[Code::Internal, Code::InvalidArgument],
            );
            let mut client =
                ExecutorClient::new(channel(endpoint).await?).max_encoding_message_size(usize::MAX);
            let huge = ExecutionRequest {
                run_id: "run-huge".to_owned(),
                node_id: "node".to_owned(),
                attempt: 1,
                token: "t".to_owned(),
                variables: HashMap::from([
                    ("nodeType".to_owned(), "echo".to_owned()),
                    ("pad".to_owned(), "x".repeat(OVERSIZED)),
                ]),
                ..ExecutionRequest::default()
            };
            assert_rejected(
                "a message over 4 MiB",
                client.execute(huge).await,
                &[
                    Code::OutOfRange,
                    Code::ResourceExhausted,
                    Code::InvalidArgument,
                ],
            );
            anyhow::Ok(())
        })?;
        tax_still_works(&engine, "after-hostile-push")
    });
}

fn tokio_stream_once<T: Send + 'static>(item: T) -> impl tonic::IntoStreamingRequest<Message = T> {
    tonic::codegen::tokio_stream::once(item)
}
