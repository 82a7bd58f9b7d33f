//! The engine-side routes against a raw client sending what a well-behaved executor never
//! would: every refusal is a gRPC status, and the server keeps serving afterwards.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::{EngineServer, FakeEngine, PATIENCE, registration, task};
use gamelan_domain::{JsonObject, TaskResult};
use gamelan_grpc::GrpcServerSettings;
use gamelan_grpc::convert::{registration_to_proto, result_to_proto};
use gamelan_grpc::proto::v1 as pb;
use gamelan_grpc::proto::v1::executor_service_client::ExecutorServiceClient;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Streaming};

const BIG: usize = 64 * 1024 * 1024;

async fn raw(url: String) -> ExecutorServiceClient<Channel> {
    ExecutorServiceClient::connect(url)
        .await
        .unwrap()
        .max_decoding_message_size(BIG)
        .max_encoding_message_size(BIG)
}

async fn still_serving(client: &mut ExecutorServiceClient<Channel>, id: &str) {
    client
        .register_executor(registration_to_proto(&registration(id, "calc", 2)))
        .await
        .unwrap();
    client
        .heartbeat(pb::HeartbeatRequest {
            executor_id: id.into(),
            ..Default::default()
        })
        .await
        .unwrap();
}

fn bad_result() -> pb::TaskResult {
    // FAILED without an error, attempt 0.
    pb::TaskResult {
        task_id: "r:n:0".into(),
        run_id: "r".into(),
        node_id: "n".into(),
        attempt: 0,
        status: pb::TaskStatus::Failed as i32,
        ..Default::default()
    }
}

async fn open_stream(
    client: &mut ExecutorServiceClient<Channel>,
) -> (
    UnboundedSender<pb::ExecutorMessage>,
    Streaming<pb::EngineMessage>,
) {
    let (tx, rx) = unbounded_channel();
    let inbound = client
        .execute_stream(UnboundedReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    (tx, inbound)
}

fn send(tx: &UnboundedSender<pb::ExecutorMessage>, m: pb::executor_message::Message) {
    tx.send(pb::ExecutorMessage { message: Some(m) }).unwrap();
}

async fn next(inbound: &mut Streaming<pb::EngineMessage>) -> pb::engine_message::Message {
    tokio::time::timeout(PATIENCE, inbound.message())
        .await
        .expect("no engine message in time")
        .unwrap()
        .unwrap()
        .message
        .unwrap()
}

#[test]
fn malformed_results_are_invalid_argument_and_the_good_ones_still_count() {
    let engine = FakeEngine::new();
    let server = EngineServer::start(engine.clone(), GrpcServerSettings::default());
    let url = server.url();
    server.block_on(async {
        let mut client = raw(url).await;
        still_serving(&mut client, "rt-calc").await;
        let (tx, mut inbound) = open_stream(&mut client).await;
        send(
            &tx,
            pb::executor_message::Message::Heartbeat(pb::HeartbeatRequest {
                executor_id: "rt-calc".into(),
                ..Default::default()
            }),
        );
        assert!(engine.wait_for(PATIENCE, |s| s.attached() == 1));
        engine.enqueue(task(1, "calc"));
        let pb::engine_message::Message::Task(t) = next(&mut inbound).await else {
            panic!("expected a task");
        };
        let t = gamelan_grpc::convert::task_from_proto(t).unwrap();
        let good = result_to_proto(&TaskResult::completed(&t, JsonObject::new(), 1));

        // ReportResults: the bad one refuses the call, the good one is applied anyway.
        let err = client
            .report_results(tokio_stream::iter(vec![bad_result(), good.clone()]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().contains("must carry an error") || err.message().contains("attempt"));
        assert!(engine.wait_for(PATIENCE, |s| s.accepted.len() == 1));

        // ExecuteStream: one verdict per result, the stream stays open.
        send(&tx, pb::executor_message::Message::Result(bad_result()));
        send(&tx, pb::executor_message::Message::Result(good));
        let mut verdicts = Vec::new();
        while verdicts.len() < 2 {
            if let pb::engine_message::Message::ResultAcks(a) = next(&mut inbound).await {
                verdicts.extend(a.acks);
            }
        }
        let outcomes: Vec<&str> = verdicts.iter().map(|a| a.outcome.as_str()).collect();
        assert_eq!(outcomes, ["REJECTED", "ALREADY_PROCESSED"]);
        assert!(!verdicts[0].message.is_empty());
        engine.enqueue(task(2, "calc"));
        assert!(matches!(
            next(&mut inbound).await,
            pb::engine_message::Message::Task(t) if t.run_id == "run-2"
        ));
        still_serving(&mut client, "rt-other").await;
    });
}

#[test]
fn oversized_messages_get_a_status_and_the_server_keeps_serving() {
    let engine = FakeEngine::new();
    let settings = GrpcServerSettings {
        max_message_size: 64 * 1024,
        ..GrpcServerSettings::default()
    };
    let server = EngineServer::start(engine.clone(), settings);
    let url = server.url();
    server.block_on(async {
        let mut client = raw(url).await;
        let mut huge = registration_to_proto(&registration("rt-big", "calc", 1));
        huge.metadata.insert("blob".into(), "x".repeat(200 * 1024));
        let err = client.register_executor(huge).await.unwrap_err();
        assert_ne!(err.code(), Code::Ok);
        assert!(
            matches!(err.code(), Code::OutOfRange | Code::ResourceExhausted),
            "{err:?}"
        );
        assert!(engine.read(|s| s.executors.is_empty()));

        let (tx, mut inbound) = open_stream(&mut client).await;
        let mut blob = bad_result();
        blob.execution_token = "y".repeat(200 * 1024);
        send(&tx, pb::executor_message::Message::Result(blob));
        let ended = tokio::time::timeout(PATIENCE, inbound.message())
            .await
            .unwrap();
        assert!(ended.is_err(), "{ended:?}");

        still_serving(&mut client, "rt-calc").await;
    });
}

#[test]
fn unknown_executors_are_not_found_and_bad_ids_invalid() {
    let engine = FakeEngine::new();
    let server = EngineServer::start(engine.clone(), GrpcServerSettings::default());
    let url = server.url();
    server.block_on(async {
        let mut client = raw(url).await;
        let hb = pb::HeartbeatRequest {
            executor_id: "ghost".into(),
            ..Default::default()
        };
        let err = client.heartbeat(hb.clone()).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
        assert!(err.message().contains("ghost"));

        let err = client
            .stream_tasks(pb::StreamTasksRequest {
                executor_id: "ghost".into(),
                max_concurrent: 1,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound);

        let err = client
            .register_executor(pb::RegisterExecutorRequest::default())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);

        let (tx, mut inbound) = open_stream(&mut client).await;
        send(&tx, pb::executor_message::Message::Heartbeat(hb));
        let ended = tokio::time::timeout(PATIENCE, inbound.message())
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(ended.code(), Code::NotFound);

        still_serving(&mut client, "rt-calc").await;
    });
}

#[test]
fn closing_a_stream_requeues_its_unfinished_tasks() {
    let engine = FakeEngine::new();
    let server = EngineServer::start(engine.clone(), GrpcServerSettings::default());
    let url = server.url();
    server.block_on(async {
        let mut client = raw(url).await;
        still_serving(&mut client, "rt-calc").await;
        let mut tasks = client
            .stream_tasks(pb::StreamTasksRequest {
                executor_id: "rt-calc".into(),
                max_concurrent: 2,
            })
            .await
            .unwrap()
            .into_inner();
        for i in 1..=3 {
            engine.enqueue(task(i, "calc"));
        }
        for _ in 0..2 {
            tokio::time::timeout(PATIENCE, tasks.message())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
        }
        assert_eq!(engine.read(|s| (s.in_flight(), s.queue.len())), (2, 1));
        drop(tasks);
        assert!(engine.wait_for(PATIENCE, |s| s.attached() == 0 && s.queue.len() == 3));
    });
}
