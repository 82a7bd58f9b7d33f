//! Executor side: [`GrpcTransport`], the synchronous [`EngineTransport`] over a tonic client.
//!
//! The transport owns a two-thread tokio runtime. Blocking callers hand futures to it and
//! wait on a std channel (unary calls), on the [`inbox::Inbox`] (tasks) or on
//! [`verdicts::Verdicts`] (result acknowledgements); no async type leaves this module.
//!
//! Heartbeats: with `ExecuteStream` delivery they travel on the open stream (no round trip,
//! and the engine attaches every executor id it sees in one); a refusal ends the stream,
//! which the next call reports as `Unavailable`. The other modes use the unary `Heartbeat`.
//!
//! `release` has no message in this protocol: it is a no-op. Tasks never acknowledged return
//! to the engine's queue when the stream closes, acknowledged ones after its ack timeout.

mod inbox;
mod push_server;
mod verdicts;

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gamelan_domain::{Task, TaskResult};
use gamelan_ports::sync::lock;
use gamelan_ports::{
    AllowAll, EngineTransport, HealthStatus, Heartbeat, Inbound, Registration, ReportOutcome,
    TokenSource, TokenVerifier, TransportError,
};
use prost::Message as _;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio::task::AbortHandle;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use crate::auth::BearerInterceptor;
use crate::convert::{
    DELIVERY_KEY, heartbeat_to_proto, millis_to_timestamp, registration_to_proto, result_to_proto,
    task_from_proto,
};
use crate::error::{GrpcError, status_to_transport};
use crate::proto::v1 as pb;
use crate::proto::v1::executor_service_client::ExecutorServiceClient;
use crate::settings::{Delivery, GrpcClientSettings};
use inbox::Inbox;
use push_server::{PushConfig, PushServer};
use verdicts::Verdicts;

pub use gamelan_domain::codes::RESULT_TOO_LARGE;

/// Room for the gRPC frame and the `ExecutorMessage` wrapper around a result.
const FRAME_OVERHEAD: usize = 64;

type Client = ExecutorServiceClient<InterceptedService<Channel, BearerInterceptor>>;

/// One dialled connection and everything that dies with it.
struct Connection {
    client: Client,
    inbox: Arc<Inbox>,
    /// Push delivery shares the push server's inbox across reconnects (its tasks were already
    /// acknowledged to the engine and must run); stream modes own theirs.
    owns_inbox: bool,
    verdicts: Verdicts,
    outbound: Mutex<Option<UnboundedSender<pb::ExecutorMessage>>>,
    lost: Mutex<Option<TransportError>>,
    pulling: Mutex<HashSet<String>>,
    tasks: Mutex<Vec<AbortHandle>>,
}

impl Connection {
    fn lost(&self) -> Option<TransportError> {
        lock(&self.lost).clone()
    }

    fn fail(&self, err: TransportError) {
        {
            let mut lost = lock(&self.lost);
            if lost.is_some() {
                return;
            }
            log::warn!(target: "gamelan.executor.runtime", "gRPC connection lost: {err}");
            *lost = Some(err.clone());
        }
        if self.owns_inbox {
            self.inbox.break_with(err.clone());
        }
        self.verdicts.break_with(err);
    }

    fn send(&self, message: pb::executor_message::Message) -> Result<(), TransportError> {
        let sent = lock(&self.outbound).as_ref().is_some_and(|tx| {
            tx.send(pb::ExecutorMessage {
                message: Some(message),
            })
            .is_ok()
        });
        if sent {
            Ok(())
        } else {
            let err = TransportError::Unavailable("ExecuteStream is closed".into());
            self.fail(err.clone());
            Err(self.lost().unwrap_or(err))
        }
    }

    fn track(&self, handle: AbortHandle) {
        lock(&self.tasks).push(handle);
    }

    /// Stops the readers and ends the outbound stream.
    fn shutdown(&self) {
        lock(&self.outbound).take();
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
        self.fail(TransportError::Closed);
    }

    fn on_engine_message(&self, message: pb::EngineMessage) {
        use pb::engine_message::Message as M;
        match message.message {
            Some(M::Task(t)) => match task_from_proto(t) {
                Ok(task) => self.inbox.push_task(task),
                Err(e) => {
                    log::error!(target: "gamelan.executor.error", "engine sent an unusable task: {e}");
                }
            },
            Some(M::Cancellation(c)) => self.inbox.push_cancel(c.task_id, c.reason),
            Some(M::ResultAcks(a)) => self.verdicts.deliver(a.acks),
            Some(M::ConfigUpdate(_)) => {
                log::info!(target: "gamelan.executor.runtime", "ignoring a configuration update from the engine");
            }
            None => {}
        }
    }
}

/// A broken stream always means "reconnect", whatever status ended it, except credentials.
fn stream_lost(status: &Status) -> TransportError {
    match status_to_transport(status) {
        e @ TransportError::Unauthenticated(_) => e,
        _ => TransportError::Unavailable(format!("stream ended: {}", status.message())),
    }
}

fn epoch_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

async fn run_execute_stream(
    conn: Arc<Connection>,
    mut client: Client,
    outbound: UnboundedReceiverStream<pb::ExecutorMessage>,
) {
    let mut inbound = match client.execute_stream(outbound).await {
        Ok(r) => r.into_inner(),
        Err(s) => return conn.fail(stream_lost(&s)),
    };
    loop {
        match inbound.message().await {
            Ok(Some(m)) => conn.on_engine_message(m),
            Ok(None) => {
                return conn.fail(TransportError::Unavailable(
                    "engine closed the ExecuteStream".into(),
                ));
            }
            Err(s) => return conn.fail(stream_lost(&s)),
        }
    }
}

async fn run_stream_tasks(
    conn: Arc<Connection>,
    mut client: Client,
    request: pb::StreamTasksRequest,
) {
    let executor = request.executor_id.clone();
    let mut inbound = match client.stream_tasks(request).await {
        Ok(r) => r.into_inner(),
        Err(s) => return conn.fail(stream_lost(&s)),
    };
    loop {
        match inbound.message().await {
            Ok(Some(t)) => match task_from_proto(t) {
                Ok(task) => conn.inbox.push_task(task),
                Err(e) => {
                    log::error!(target: "gamelan.executor.error", "engine sent an unusable task: {e}");
                }
            },
            Ok(None) => {
                return conn.fail(TransportError::Unavailable(format!(
                    "engine closed the task stream of '{executor}'"
                )));
            }
            Err(s) => return conn.fail(stream_lost(&s)),
        }
    }
}

fn unary<T>(message: T, timeout: Duration) -> Request<T> {
    let mut r = Request::new(message);
    r.set_timeout(timeout);
    r
}

async fn send_results(
    mut client: Client,
    results: Vec<pb::TaskResult>,
    timeout: Duration,
) -> Result<(), TransportError> {
    let mut request = Request::new(tokio_stream::iter(results));
    request.set_timeout(timeout);
    client
        .report_results(request)
        .await
        .map(|_| ())
        .map_err(|s| status_to_transport(&s))
}

#[derive(Default)]
struct State {
    conn: Option<Arc<Connection>>,
    registrations: Vec<Registration>,
    push: Option<PushServer>,
}

/// The gRPC [`EngineTransport`]. Create it once; `connect` dials (and re-dials after a loss).
pub struct GrpcTransport {
    settings: GrpcClientSettings,
    token: Arc<dyn TokenSource>,
    runtime: Option<Runtime>,
    handle: Handle,
    state: Mutex<State>,
    /// Serializes dialling without blocking `receive`/`report` on the state lock meanwhile.
    connecting: Mutex<()>,
    closed: AtomicBool,
    /// Checks the engine's token on every push call.
    push_verifier: Arc<dyn TokenVerifier>,
}

impl GrpcTransport {
    /// Checks the settings (a bad URL fails here, at start) and starts the adapter's runtime.
    pub fn new(
        settings: GrpcClientSettings,
        token: Arc<dyn TokenSource>,
    ) -> Result<Self, GrpcError> {
        settings.endpoint()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("gamelan-grpc")
            .enable_all()
            .build()?;
        Ok(Self {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
            settings,
            token,
            state: Mutex::new(State::default()),
            connecting: Mutex::new(()),
            closed: AtomicBool::new(false),
            push_verifier: Arc::new(AllowAll),
        })
    }

    /// The check the push server applies to the engine's `authorization` metadata (default:
    /// none). Takes effect when the push server starts, i.e. before the first registration.
    #[must_use]
    pub fn with_push_verifier(mut self, verifier: Arc<dyn TokenVerifier>) -> Self {
        self.push_verifier = verifier;
        self
    }

    pub fn settings(&self) -> &GrpcClientSettings {
        &self.settings
    }

    /// The push server's bound address, once `connect` started it (push delivery only).
    pub fn push_local_addr(&self) -> Option<SocketAddr> {
        lock(&self.state).push.as_ref().map(|p| p.local_addr)
    }

    /// Tasks received from the engine and not yet handed to the runtime.
    pub fn buffered(&self) -> usize {
        let st = lock(&self.state);
        st.conn.as_ref().map_or(0, |c| c.inbox.buffered())
    }

    /// Runs `fut` on the adapter's runtime and waits for it, at most `timeout`. Works from any
    /// thread, including one inside another runtime, unlike `Handle::block_on`.
    fn block<T, F>(&self, timeout: Duration, fut: F) -> Result<T, TransportError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, TransportError>> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let r = tokio::time::timeout(timeout, fut)
                .await
                .unwrap_or_else(|_| {
                    Err(TransportError::Unavailable(format!(
                        "no answer from the engine within {timeout:?}"
                    )))
                });
            let _ = tx.send(r);
        });
        rx.recv()
            .unwrap_or_else(|_| Err(TransportError::Unavailable("gRPC runtime stopped".into())))
    }

    /// TLS 1.3 servers check the client certificate after the client finished its
    /// handshake, so a refused certificate reaches us only as a broken connection on the
    /// first call (closed, broken pipe, not ready, or an alert, depending on timing); a
    /// server certificate we distrust is named by the handshake itself and left alone. Say what that most likely means instead of leaving the user to guess.
    fn explain_tls_refusal(&self, err: TransportError) -> TransportError {
        match err {
            TransportError::Unavailable(msg)
                if self.settings.tls.is_some()
                    && msg.contains("transport error")
                    && !msg.contains("tcp connect")
                    && !msg.contains("certificate") =>
            {
                let whose = if self
                    .settings
                    .tls
                    .as_ref()
                    .is_some_and(|t| t.identity.is_some())
                {
                    "this executor's client certificate (grpc.certificate-path) is not signed by the CA the engine trusts"
                } else {
                    "the engine requires a client certificate (mutual TLS) and none is configured (grpc.certificate-path, grpc.private-key-path)"
                };
                TransportError::Unavailable(format!(
                    "{msg}; over TLS this usually means the engine refused the connection: {whose}"
                ))
            }
            other => other,
        }
    }

    /// A call on `conn`; a connection-level failure marks it lost so `connect` re-dials.
    fn call<T, F>(&self, conn: &Connection, fut: F) -> Result<T, TransportError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, TransportError>> + Send + 'static,
    {
        let r = self.block(self.settings.request_timeout, fut);
        if let Err(e) = &r
            && e.is_connection_loss()
        {
            conn.fail(e.clone());
        }
        r
    }

    fn conn(&self) -> Result<Arc<Connection>, TransportError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(TransportError::Closed);
        }
        let conn = lock(&self.state)
            .conn
            .clone()
            .ok_or_else(|| TransportError::Unavailable("not connected".into()))?;
        match conn.lost() {
            Some(e) => Err(e),
            None => Ok(conn),
        }
    }

    fn ensure_push_server(&self) -> Result<Arc<Inbox>, TransportError> {
        if let Some(p) = &lock(&self.state).push {
            return Ok(Arc::clone(&p.shared.inbox));
        }
        let settings = self.settings.clone();
        let verifier = Arc::clone(&self.push_verifier);
        let server = self.block(self.settings.connect_timeout, async move {
            PushServer::start(&settings, verifier).await.map_err(|e| {
                TransportError::Rejected(format!(
                    "cannot serve push delivery on {}: {e}",
                    settings.push_listen_addr
                ))
            })
        })?;
        let inbox = Arc::clone(&server.shared.inbox);
        lock(&self.state).push = Some(server);
        Ok(inbox)
    }

    fn dial(&self) -> Result<Client, TransportError> {
        let endpoint = self
            .settings
            .endpoint()
            .map_err(|e| TransportError::Rejected(e.to_string()))?;
        let url = self.settings.engine_url.clone();
        let channel = self.block(
            self.settings.connect_timeout + Duration::from_millis(100),
            async move {
                endpoint.connect().await.map_err(|e| {
                    TransportError::Unavailable(format!(
                        "cannot connect to {url}: {}",
                        crate::error::with_sources(&e)
                    ))
                })
            },
        )?;
        let max = self.settings.max_message_size;
        Ok(ExecutorServiceClient::with_interceptor(
            channel,
            BearerInterceptor(Arc::clone(&self.token)),
        )
        .max_decoding_message_size(max)
        .max_encoding_message_size(max))
    }

    /// Push delivery registers the push server's address; attributes say which delivery.
    fn prepare(&self, r: &Registration, push: Option<&str>) -> Registration {
        let mut r = r.clone();
        let mode = match self.settings.delivery {
            Delivery::Push => "push",
            Delivery::ExecuteStream | Delivery::StreamTasks => "stream",
        };
        r.attributes
            .entry(DELIVERY_KEY.to_owned())
            .or_insert_with(|| mode.to_owned());
        if let Some(ep) = push
            && r.endpoint.is_empty()
        {
            ep.clone_into(&mut r.endpoint);
        }
        r
    }

    fn remember(&self, regs: &[Registration]) {
        let mut st = lock(&self.state);
        for r in regs {
            st.registrations.retain(|o| o.executor_id != r.executor_id);
            st.registrations.push(r.clone());
        }
        Self::update_push_config(&st);
    }

    fn update_push_config(st: &State) {
        if let Some(p) = &st.push {
            let types: HashSet<&str> = st
                .registrations
                .iter()
                .map(|r| r.metadata.executor_type.as_str())
                .collect();
            let config = PushConfig {
                default_node_type: (types.len() == 1)
                    .then(|| types.into_iter().next().map(str::to_owned))
                    .flatten(),
                capacity: st
                    .registrations
                    .iter()
                    .map(|r| r.metadata.max_concurrent_tasks as usize)
                    .sum(),
            };
            *lock(&p.shared.config) = config;
        }
    }

    /// A result too large for one message would break the stream on every resend: it goes
    /// out as a FAILED result instead, so the engine learns what happened.
    fn fit(&self, result: &TaskResult) -> pb::TaskResult {
        let message = result_to_proto(result);
        let len = message.encoded_len();
        let limit = self.settings.max_message_size;
        if len + FRAME_OVERHEAD <= limit {
            return message;
        }
        log::error!(target: "gamelan.executor.error",
            "result of task {} is {len} bytes, over the {limit} byte message limit: reporting it as FAILED",
            message.task_id);
        result_to_proto(&result.too_large(format!(
            "result of {len} bytes exceeds the {limit} byte gRPC message limit"
        )))
    }

    fn report_on_stream(
        &self,
        conn: &Connection,
        results: &[TaskResult],
    ) -> Result<Vec<ReportOutcome>, TransportError> {
        let messages: Vec<pb::TaskResult> = results.iter().map(|r| self.fit(r)).collect();
        let ticket = conn
            .verdicts
            .expect(messages.iter().map(|m| (m.task_id.clone(), m.attempt)))?;
        for m in messages {
            conn.send(pb::executor_message::Message::Result(m))?;
        }
        let r = conn
            .verdicts
            .wait(&ticket, Instant::now() + self.settings.request_timeout);
        if let Err(e) = &r {
            // A fresh stream for the resend: the old one may be wedged, or the engine may be
            // one that never sends verdicts.
            conn.fail(e.clone());
        }
        r
    }

    fn report_unary(
        &self,
        conn: &Connection,
        results: &[TaskResult],
    ) -> Result<Vec<ReportOutcome>, TransportError> {
        let timeout = self.settings.request_timeout;
        let messages: Vec<pb::TaskResult> = results.iter().map(|r| self.fit(r)).collect();
        let accept = ReportOutcome::Accepted(gamelan_domain::Acceptance::Accept);
        match self.call(conn, send_results(conn.client.clone(), messages, timeout)) {
            Ok(()) => Ok(vec![accept; results.len()]),
            Err(TransportError::Rejected(why)) if results.len() == 1 => {
                Ok(vec![ReportOutcome::Rejected(why)])
            }
            // One bad result fails the whole call: find it by sending each alone (the good
            // ones are applied once; their repeats are harmless duplicates).
            Err(TransportError::Rejected(_)) => results
                .iter()
                .map(|r| {
                    let one = vec![self.fit(r)];
                    match self.call(conn, send_results(conn.client.clone(), one, timeout)) {
                        Ok(()) => Ok(accept.clone()),
                        Err(TransportError::Rejected(why)) => Ok(ReportOutcome::Rejected(why)),
                        Err(e) => Err(e),
                    }
                })
                .collect(),
            Err(e) => Err(e),
        }
    }

    fn acknowledge(&self, conn: &Connection, tasks: &[&Task]) -> Result<(), TransportError> {
        let at = millis_to_timestamp(epoch_millis());
        match self.settings.delivery {
            Delivery::ExecuteStream => {
                for t in tasks {
                    conn.send(pb::executor_message::Message::Ack(
                        pb::TaskAcknowledgement {
                            task_id: t.task_id.clone(),
                            acknowledged_at: at,
                        },
                    ))?;
                }
            }
            Delivery::StreamTasks => {
                let timeout = self.settings.request_timeout;
                for t in tasks {
                    let mut client = conn.client.clone();
                    let ack = pb::TaskAcknowledgement {
                        task_id: t.task_id.clone(),
                        acknowledged_at: at,
                    };
                    self.handle.spawn(async move {
                        let id = ack.task_id.clone();
                        if let Err(s) = client.acknowledge_task(unary(ack, timeout)).await {
                            log::warn!(target: "gamelan.executor.runtime",
                                "acknowledging task {id} failed: {}", s.message());
                        }
                    });
                }
            }
            // The push answer already acknowledged the task.
            Delivery::Push => {}
        }
        Ok(())
    }
}

impl EngineTransport for GrpcTransport {
    fn name(&self) -> &'static str {
        "grpc"
    }

    fn connect(&self) -> Result<(), TransportError> {
        let _dialling = lock(&self.connecting);
        if self.closed.load(Ordering::Acquire) {
            return Err(TransportError::Closed);
        }
        if let Some(c) = lock(&self.state).conn.take() {
            if c.lost().is_none() {
                lock(&self.state).conn = Some(c);
                return Ok(());
            }
            c.shutdown();
        }
        let push_inbox = match self.settings.delivery {
            Delivery::Push => Some(self.ensure_push_server()?),
            Delivery::ExecuteStream | Delivery::StreamTasks => None,
        };
        let client = self.dial()?;
        let (outbound, outbound_rx) = match self.settings.delivery {
            Delivery::ExecuteStream => {
                let (tx, rx) = unbounded_channel();
                (Some(tx), Some(rx))
            }
            Delivery::StreamTasks | Delivery::Push => (None, None),
        };
        let conn = Arc::new(Connection {
            client: client.clone(),
            owns_inbox: push_inbox.is_none(),
            inbox: push_inbox.unwrap_or_default(),
            verdicts: Verdicts::default(),
            outbound: Mutex::new(outbound),
            lost: Mutex::new(None),
            pulling: Mutex::new(HashSet::new()),
            tasks: Mutex::new(Vec::new()),
        });
        if let Some(rx) = outbound_rx {
            let reader = self.handle.spawn(run_execute_stream(
                Arc::clone(&conn),
                client,
                UnboundedReceiverStream::new(rx),
            ));
            conn.track(reader.abort_handle());
        }
        lock(&self.state).conn = Some(conn);
        log::info!(target: "gamelan.executor.runtime",
            "connected to engine {} ({} delivery)", self.settings.engine_url, self.settings.delivery);
        Ok(())
    }

    fn register(&self, registrations: &[Registration]) -> Result<(), TransportError> {
        let conn = self.conn()?;
        let push = match self.settings.delivery {
            Delivery::Push => lock(&self.state)
                .push
                .as_ref()
                .map(|p| p.advertised(&self.settings)),
            Delivery::ExecuteStream | Delivery::StreamTasks => None,
        };
        let regs: Vec<Registration> = registrations
            .iter()
            .map(|r| self.prepare(r, push.as_deref()))
            .collect();
        // Before registering: a push engine may deliver as soon as it knows the executor.
        self.remember(&regs);
        let requests: Vec<_> = regs.iter().map(registration_to_proto).collect();
        let mut client = conn.client.clone();
        let timeout = self.settings.request_timeout;
        self.call(&conn, async move {
            for req in requests {
                client
                    .register_executor(unary(req, timeout))
                    .await
                    .map_err(|s| status_to_transport(&s))?;
            }
            Ok(())
        })
        .map_err(|e| self.explain_tls_refusal(e))?;
        match self.settings.delivery {
            Delivery::ExecuteStream => {
                for r in &regs {
                    let hello = Heartbeat {
                        executor_id: r.executor_id.clone(),
                        status: HealthStatus::Ready,
                        ..Heartbeat::default()
                    };
                    conn.send(pb::executor_message::Message::Heartbeat(
                        heartbeat_to_proto(&hello),
                    ))?;
                }
            }
            Delivery::StreamTasks => {
                for r in &regs {
                    if !lock(&conn.pulling).insert(r.executor_id.clone()) {
                        continue;
                    }
                    let request = pb::StreamTasksRequest {
                        executor_id: r.executor_id.clone(),
                        max_concurrent: i32::try_from(r.metadata.max_concurrent_tasks)
                            .unwrap_or(i32::MAX),
                    };
                    let reader = self.handle.spawn(run_stream_tasks(
                        Arc::clone(&conn),
                        conn.client.clone(),
                        request,
                    ));
                    conn.track(reader.abort_handle());
                }
            }
            Delivery::Push => {}
        }
        Ok(())
    }

    fn heartbeat(&self, heartbeats: &[Heartbeat]) -> Result<(), TransportError> {
        let conn = self.conn()?;
        if self.settings.delivery == Delivery::ExecuteStream {
            for h in heartbeats {
                conn.send(pb::executor_message::Message::Heartbeat(
                    heartbeat_to_proto(h),
                ))?;
            }
            return Ok(());
        }
        let requests: Vec<_> = heartbeats.iter().map(heartbeat_to_proto).collect();
        let mut client = conn.client.clone();
        let timeout = self.settings.request_timeout;
        let r = self.call(&conn, async move {
            for req in requests {
                let id = req.executor_id.clone();
                match client.heartbeat(unary(req, timeout)).await {
                    Ok(_) => {}
                    // The engine forgot us (restart without persistence, or declared dead):
                    // a reconnect re-registers.
                    Err(s) if s.code() == Code::NotFound => {
                        return Err(TransportError::Unavailable(format!(
                            "engine does not know executor '{id}': {}",
                            s.message()
                        )));
                    }
                    Err(s) => return Err(status_to_transport(&s)),
                }
            }
            Ok(())
        });
        if let Err(e) = &r
            && e.is_connection_loss()
        {
            conn.fail(e.clone());
        }
        r
    }

    fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Inbound>, TransportError> {
        let conn = self.conn()?;
        let items = conn.inbox.take(max, wait)?;
        let tasks: Vec<&Task> = items
            .iter()
            .filter_map(|i| match i {
                Inbound::Task(t) => Some(t),
                Inbound::Cancel { .. } => None,
            })
            .collect();
        if !tasks.is_empty() {
            self.acknowledge(&conn, &tasks)?;
        }
        Ok(items)
    }

    fn report(&self, results: &[TaskResult]) -> Result<Vec<ReportOutcome>, TransportError> {
        if results.is_empty() {
            return Ok(Vec::new());
        }
        let conn = self.conn()?;
        match self.settings.delivery {
            Delivery::ExecuteStream => self.report_on_stream(&conn, results),
            Delivery::StreamTasks | Delivery::Push => self.report_unary(&conn, results),
        }
    }

    fn release(&self, tasks: &[Task]) -> Result<(), TransportError> {
        if !tasks.is_empty() {
            log::debug!(target: "gamelan.executor.runtime",
                "releasing {} unstarted task(s): the engine re-dispatches them when the stream closes or their ack times out",
                tasks.len());
        }
        Ok(())
    }

    fn unregister(&self, executor_ids: &[String]) -> Result<(), TransportError> {
        let conn = self.conn()?;
        let mut client = conn.client.clone();
        let timeout = self.settings.request_timeout;
        let ids = executor_ids.to_vec();
        self.call(&conn, async move {
            for id in ids {
                let req = pb::UnregisterExecutorRequest { executor_id: id };
                match client.unregister_executor(unary(req, timeout)).await {
                    Ok(_) => {}
                    Err(s) if s.code() == Code::NotFound => {}
                    Err(s) => return Err(status_to_transport(&s)),
                }
            }
            Ok(())
        })?;
        let mut st = lock(&self.state);
        st.registrations
            .retain(|r| !executor_ids.contains(&r.executor_id));
        Self::update_push_config(&st);
        Ok(())
    }

    fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let (conn, push) = {
            let mut st = lock(&self.state);
            (st.conn.take(), st.push.take())
        };
        if let Some(c) = conn {
            c.shutdown();
        }
        drop(push);
    }
}

impl Drop for GrpcTransport {
    fn drop(&mut self) {
        self.close();
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
