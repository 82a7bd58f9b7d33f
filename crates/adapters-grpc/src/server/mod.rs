//! Engine side: `ExecutorService` over a synchronous [`EngineService`].
//!
//! Calls that may block on the engine's durable store (register, unregister, report) run on
//! tokio's blocking pool; the rest are in-memory and called directly.

mod push;
mod streams;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use gamelan_domain::TaskResult;
use gamelan_ports::{EngineError, EngineService, TaskSink};
use tokio::net::TcpListener;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio_stream::Stream;
use tonic::service::Routes;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::VerifyInterceptor;
use crate::convert::{
    accepted_ack, heartbeat_from_proto, millis_to_timestamp, registration_from_proto, rejected_ack,
    result_from_proto,
};
use crate::error::{GrpcError, engine_error_to_status, is_final_rejection};
use crate::proto::v1 as pb;
use crate::proto::v1::executor_service_server::{ExecutorService, ExecutorServiceServer};
use crate::settings::{GrpcServerSettings, ServerTls};
use push::PushDispatch;
use streams::{BidiSink, DetachGuard, OutStream, Outbound, PullSink};

/// Results handed to the engine in one `report` call at most.
const MAX_BATCH: usize = 1024;

/// How long `serve` lets open streams run after shutdown was requested. Executor streams
/// never end on their own, so without a bound shutdown would wait forever.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// The `ExecutorService` routes, ready to serve alone ([`serve`]) or merged with an axum
/// router (`routes.into_axum_router().merge(http)`; set TCP_NODELAY on that listener's
/// connections too). Building needs no runtime; serving needs tokio.
pub fn routes(engine: Arc<dyn EngineService>, settings: GrpcServerSettings) -> Routes {
    let push = Arc::new(PushDispatch::new(
        Arc::clone(&engine),
        settings.push_client.clone(),
        Arc::clone(&settings.push_token),
    ));
    let service = ExecutorServiceServer::new(EngineGrpc { engine, push })
        .max_decoding_message_size(settings.max_message_size)
        .max_encoding_message_size(settings.max_message_size);
    Routes::new(InterceptedService::new(
        service,
        VerifyInterceptor(settings.verifier),
    ))
}

/// Serves `routes` (HTTP/2 cleartext, or TLS) on `listener` until `shutdown` completes, then
/// gives open calls [`SHUTDOWN_GRACE`] to finish.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    tls: Option<ServerTls>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), GrpcError> {
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &tls {
        builder = builder
            .tls_config(tls.config())
            .map_err(|e| GrpcError::Tls(e.to_string()))?;
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server =
        builder
            .add_routes(routes)
            .serve_with_incoming_shutdown(nodelay(listener), async {
                let _ = stopped.await;
            });
    tokio::pin!(server);
    tokio::pin!(shutdown);
    tokio::select! {
        r = &mut server => return r.map_err(GrpcError::from),
        () = &mut shutdown => {}
    }
    let _ = stop.send(());
    match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        Ok(r) => r.map_err(GrpcError::from),
        Err(_) => Ok(()),
    }
}

/// Small messages both ways: Nagle's algorithm would hold them back waiting for ACKs.
pub(crate) fn nodelay(listener: TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

struct EngineGrpc {
    engine: Arc<dyn EngineService>,
    push: Arc<PushDispatch>,
}

fn invalid(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(e.to_string())
}

fn engine_status(e: EngineError) -> Status {
    engine_error_to_status(&e)
}

/// Runs an engine operation: inline on the async worker when the engine never blocks on
/// I/O (it only takes its lock briefly), else on the blocking pool. A panic inside the
/// engine becomes INTERNAL for this call; the server lives on.
async fn engine_call<T: Send + 'static>(
    engine: &Arc<dyn EngineService>,
    f: impl FnOnce(&dyn EngineService) -> T + Send + 'static,
) -> Result<T, Status> {
    if engine.waits_on_io() {
        let engine = Arc::clone(engine);
        tokio::task::spawn_blocking(move || f(engine.as_ref()))
            .await
            .map_err(|e| Status::internal(format!("engine call failed: {e}")))
    } else {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(engine.as_ref())))
            .map_err(|_| Status::internal("engine call failed: it panicked"))
    }
}

/// The next message if one is already buffered, without waiting: lets a batch grow to what
/// has arrived. `None` = nothing ready now.
async fn ready_now<S: Stream + Unpin>(s: &mut S) -> Option<Option<S::Item>> {
    std::future::poll_fn(|cx| match Pin::new(&mut *s).poll_next(cx) {
        Poll::Ready(item) => Poll::Ready(Some(item)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

enum Slot {
    Pending,
    Done(pb::ResultAck),
}

/// Results of one batch in arrival order, the undecodable ones already answered.
#[derive(Default)]
struct ResultBatch {
    slots: Vec<Slot>,
    results: Vec<TaskResult>,
    keys: Vec<(String, u32)>,
}

impl ResultBatch {
    fn push(&mut self, r: pb::TaskResult) {
        let (task_id, attempt) = (r.task_id.clone(), r.attempt);
        match result_from_proto(r) {
            Ok(res) => {
                self.keys.push((task_id, res.attempt()));
                self.results.push(res);
                self.slots.push(Slot::Pending);
            }
            Err(e) => self
                .slots
                .push(Slot::Done(rejected_ack(task_id, attempt, e.to_string()))),
        }
    }

    fn len(&self) -> usize {
        self.slots.len()
    }

    /// One verdict per result; a transient engine failure fails the whole batch instead, so
    /// the executor keeps and resends it.
    async fn flush(self, engine: &Arc<dyn EngineService>) -> Result<Vec<pb::ResultAck>, Status> {
        let answers = if self.results.is_empty() {
            Vec::new()
        } else {
            let results = self.results;
            engine_call(engine, move |e| e.report(results)).await?
        };
        let mut answers = answers.into_iter();
        let mut keys = self.keys.into_iter();
        let mut acks = Vec::with_capacity(self.slots.len());
        for slot in self.slots {
            let ack = match slot {
                Slot::Done(a) => a,
                Slot::Pending => {
                    let (Some((task_id, attempt)), Some(answer)) = (keys.next(), answers.next())
                    else {
                        return Err(Status::internal("engine answered fewer results than sent"));
                    };
                    match answer {
                        Ok(acceptance) => accepted_ack(task_id, attempt, acceptance),
                        Err(e) if is_final_rejection(&e) => {
                            rejected_ack(task_id, attempt as i32, e.to_string())
                        }
                        Err(e) => return Err(engine_status(e)),
                    }
                }
            };
            acks.push(ack);
        }
        Ok(acks)
    }
}

/// One ExecuteStream: attaches each executor id seen in a heartbeat, forwards acks, reports
/// results in batches and answers them with `ResultAcks`, detaches everything at the end.
async fn bidi_session(
    engine: Arc<dyn EngineService>,
    mut inbound: Streaming<pb::ExecutorMessage>,
    tx: UnboundedSender<Outbound<pb::EngineMessage>>,
) {
    let sink: Arc<dyn TaskSink> = Arc::new(BidiSink(tx.clone()));
    let mut guard = DetachGuard::new(Arc::clone(&engine));
    let end = loop {
        let first = match inbound.message().await {
            Ok(Some(m)) => m,
            Ok(None) => break None,
            Err(s) => break Some(s),
        };
        let mut batch = ResultBatch::default();
        let mut failure = None;
        let mut ended = false;
        let mut next = Some(first);
        while let Some(m) = next.take() {
            if let Err(s) = on_executor_message(&engine, &sink, &mut guard, &mut batch, m) {
                failure = Some(s);
                break;
            }
            if batch.len() >= MAX_BATCH {
                break;
            }
            next = match ready_now(&mut inbound).await {
                Some(Some(Ok(m))) => Some(m),
                Some(None) => {
                    ended = true;
                    None
                }
                Some(Some(Err(s))) => {
                    failure = Some(s);
                    None
                }
                None => None,
            };
        }
        if batch.len() > 0 {
            match batch.flush(&engine).await {
                Ok(acks) => {
                    let m = pb::engine_message::Message::ResultAcks(pb::ResultAcks { acks });
                    if tx
                        .send(Outbound::Item(pb::EngineMessage { message: Some(m) }))
                        .is_err()
                    {
                        break None;
                    }
                }
                Err(s) => break Some(s),
            }
        }
        if failure.is_some() {
            break failure;
        }
        if ended {
            break None;
        }
    };
    drop(guard);
    if let Some(s) = &end {
        log::debug!("ExecuteStream ended: {s}");
    }
    let _ = tx.send(Outbound::End(end));
}

fn on_executor_message(
    engine: &Arc<dyn EngineService>,
    sink: &Arc<dyn TaskSink>,
    guard: &mut DetachGuard,
    batch: &mut ResultBatch,
    message: pb::ExecutorMessage,
) -> Result<(), Status> {
    use pb::executor_message::Message as M;
    match message.message {
        Some(M::Heartbeat(h)) => {
            let hb = heartbeat_from_proto(h).map_err(invalid)?;
            engine.heartbeat(&hb).map_err(engine_status)?;
            if !guard.has(&hb.executor_id) {
                let max = engine
                    .executor(&hb.executor_id)
                    .map_err(engine_status)?
                    .max_concurrent_tasks;
                let stream = engine
                    .attach(&hb.executor_id, max, Arc::clone(sink))
                    .map_err(engine_status)?;
                guard.add(hb.executor_id, stream);
            }
        }
        Some(M::Ack(a)) => {
            if let Err(e) = engine.acknowledge(&a.task_id) {
                log::debug!("ack for {}: {e}", a.task_id);
            }
        }
        Some(M::Result(r)) => batch.push(r),
        None => {}
    }
    Ok(())
}

#[tonic::async_trait]
impl ExecutorService for EngineGrpc {
    async fn register_executor(
        &self,
        request: Request<pb::RegisterExecutorRequest>,
    ) -> Result<Response<pb::ExecutorRegistration>, Status> {
        let registration = registration_from_proto(request.into_inner()).map_err(invalid)?;
        let id = registration.executor_id.clone();
        let endpoint = registration.endpoint.clone();
        let max = registration.metadata.max_concurrent_tasks;
        let registered = engine_call(&self.engine, move |e| e.register(registration))
            .await?
            .map_err(engine_status)?;
        if endpoint.is_empty() {
            self.push.forget(&id);
        } else {
            self.push.register(&id, &endpoint, max)?;
        }
        Ok(Response::new(pb::ExecutorRegistration {
            executor_id: registered.executor_id,
            status: registered.status,
            registered_at: millis_to_timestamp(registered.registered_at_ms),
        }))
    }

    async fn unregister_executor(
        &self,
        request: Request<pb::UnregisterExecutorRequest>,
    ) -> Result<Response<()>, Status> {
        let id = request.into_inner().executor_id;
        if id.is_empty() {
            return Err(Status::invalid_argument("executor_id must not be empty"));
        }
        self.push.forget(&id);
        engine_call(&self.engine, move |e| e.unregister(&id))
            .await?
            .map_err(engine_status)?;
        Ok(Response::new(()))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<()>, Status> {
        let hb = heartbeat_from_proto(request.into_inner()).map_err(invalid)?;
        self.engine.heartbeat(&hb).map_err(engine_status)?;
        self.push.reattach(&hb.executor_id)?;
        Ok(Response::new(()))
    }

    type StreamTasksStream = OutStream<pb::ExecutionTask>;

    async fn stream_tasks(
        &self,
        request: Request<pb::StreamTasksRequest>,
    ) -> Result<Response<Self::StreamTasksStream>, Status> {
        let req = request.into_inner();
        if req.executor_id.is_empty() {
            return Err(Status::invalid_argument("executor_id must not be empty"));
        }
        let max = match u32::try_from(req.max_concurrent) {
            Ok(n) if n > 0 => n,
            _ => {
                self.engine
                    .executor(&req.executor_id)
                    .map_err(engine_status)?
                    .max_concurrent_tasks
            }
        };
        let (tx, rx) = unbounded_channel();
        let stream = self
            .engine
            .attach(&req.executor_id, max, Arc::new(PullSink(tx)))
            .map_err(engine_status)?;
        let mut guard = DetachGuard::new(Arc::clone(&self.engine));
        guard.add(req.executor_id, stream);
        Ok(Response::new(OutStream::new(rx, Some(guard))))
    }

    async fn acknowledge_task(
        &self,
        request: Request<pb::TaskAcknowledgement>,
    ) -> Result<Response<()>, Status> {
        self.engine
            .acknowledge(&request.into_inner().task_id)
            .map_err(engine_status)?;
        Ok(Response::new(()))
    }

    /// Applies every valid result, then answers for the call as a whole: a transient engine
    /// failure wins (the executor resends everything, repeats are harmless), else the first
    /// refusal, else OK.
    async fn report_results(
        &self,
        request: Request<Streaming<pb::TaskResult>>,
    ) -> Result<Response<()>, Status> {
        let mut inbound = request.into_inner();
        let mut refused: Option<Status> = None;
        let mut refused_count = 0usize;
        let mut transient: Option<Status> = None;
        let mut ended = false;
        while !ended {
            let mut batch = Vec::new();
            match inbound.message().await? {
                Some(m) => batch.push(m),
                None => break,
            }
            while batch.len() < MAX_BATCH {
                match ready_now(&mut inbound).await {
                    Some(Some(Ok(m))) => batch.push(m),
                    Some(None) => {
                        ended = true;
                        break;
                    }
                    Some(Some(Err(s))) => return Err(s),
                    None => break,
                }
            }
            let mut results = Vec::with_capacity(batch.len());
            for m in batch {
                match result_from_proto(m) {
                    Ok(r) => results.push(r),
                    Err(e) => {
                        refused_count += 1;
                        refused.get_or_insert_with(|| invalid(e));
                    }
                }
            }
            if results.is_empty() {
                continue;
            }
            for answer in engine_call(&self.engine, move |e| e.report(results)).await? {
                match answer {
                    Ok(_) => {}
                    Err(e) if is_final_rejection(&e) => {
                        refused_count += 1;
                        refused.get_or_insert_with(|| engine_error_to_status(&e));
                    }
                    Err(e) => {
                        transient.get_or_insert_with(|| engine_error_to_status(&e));
                    }
                }
            }
        }
        if let Some(s) = transient {
            return Err(s);
        }
        if let Some(s) = refused {
            return Err(Status::new(
                s.code(),
                format!("{refused_count} result(s) refused; first: {}", s.message()),
            ));
        }
        Ok(Response::new(()))
    }

    type ExecuteStreamStream = OutStream<pb::EngineMessage>;

    async fn execute_stream(
        &self,
        request: Request<Streaming<pb::ExecutorMessage>>,
    ) -> Result<Response<Self::ExecuteStreamStream>, Status> {
        let (tx, rx) = unbounded_channel();
        tokio::spawn(bidi_session(
            Arc::clone(&self.engine),
            request.into_inner(),
            tx,
        ));
        Ok(Response::new(OutStream::new(rx, None)))
    }
}
