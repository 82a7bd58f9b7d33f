//! Push delivery, executor side: serves `dispatcher.Executor.Execute` and buffers what the
//! engine pushes until the runtime takes it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;
use tonic::{Request, Response, Status};

use crate::client::inbox::Inbox;
use crate::convert::execution_request_to_task;
use crate::error::GrpcError;
use crate::proto::dispatcher::executor_server::{Executor, ExecutorServer};
use crate::proto::dispatcher::{ExecutionAck, ExecutionRequest};
use crate::settings::GrpcClientSettings;

pub(crate) const CODE_ACCEPTED: i32 = 200;
pub(crate) const CODE_MALFORMED: i32 = 400;
pub(crate) const CODE_FULL: i32 = 429;

/// What the push server needs to know about the registered executors.
#[derive(Debug, Clone, Default)]
pub(crate) struct PushConfig {
    /// The node type of a request that names none: set only when one executor is registered.
    pub default_node_type: Option<String>,
    /// Tasks buffered before the server answers 429: the registered executors' capacity.
    pub capacity: usize,
}

pub(crate) struct PushShared {
    pub inbox: Arc<Inbox>,
    pub config: Mutex<PushConfig>,
}

struct PushService(Arc<PushShared>);

fn ack(accepted: bool, code: i32, message: impl Into<String>) -> Response<ExecutionAck> {
    Response::new(ExecutionAck {
        accepted,
        code,
        message: message.into(),
    })
}

#[tonic::async_trait]
impl Executor for PushService {
    async fn execute(
        &self,
        request: Request<ExecutionRequest>,
    ) -> Result<Response<ExecutionAck>, Status> {
        let config = self
            .0
            .config
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let task = match execution_request_to_task(
            request.into_inner(),
            config.default_node_type.as_deref(),
        ) {
            Ok(t) => t,
            Err(e) => return Ok(ack(false, CODE_MALFORMED, e.to_string())),
        };
        if self.0.inbox.try_push_task(task, config.capacity.max(1)) {
            Ok(ack(true, CODE_ACCEPTED, ""))
        } else {
            Ok(ack(false, CODE_FULL, "executor buffer full, retry later"))
        }
    }
}

/// A running push server; dropping it stops the server.
pub(crate) struct PushServer {
    pub local_addr: SocketAddr,
    pub shared: Arc<PushShared>,
    _stop: oneshot::Sender<()>,
}

impl PushServer {
    pub(crate) async fn start(settings: &GrpcClientSettings) -> Result<Self, GrpcError> {
        let listener = tokio::net::TcpListener::bind(settings.push_listen_addr).await?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(PushShared {
            inbox: Arc::new(Inbox::default()),
            config: Mutex::new(PushConfig::default()),
        });
        let service = ExecutorServer::new(PushService(Arc::clone(&shared)))
            .max_decoding_message_size(settings.max_message_size)
            .max_encoding_message_size(settings.max_message_size);
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tonic::transport::Server::builder()
            .max_concurrent_streams(settings.max_concurrent_streams)
            .initial_stream_window_size(settings.flow_control_window)
            .initial_connection_window_size(settings.flow_control_window)
            .add_service(service)
            .serve_with_incoming_shutdown(crate::server::nodelay(listener), async {
                let _ = stopped.await;
            });
        tokio::spawn(async move {
            if let Err(e) = server.await {
                log::error!(target: "gamelan.executor.error", "push server failed: {e}");
            }
        });
        log::info!(target: "gamelan.executor.runtime", "push server listening on {local_addr}");
        Ok(Self {
            local_addr,
            shared,
            _stop: stop,
        })
    }

    /// What the engine should dial: the configured address, else the bound one (loopback in
    /// place of an unspecified IP, which no engine can dial).
    pub(crate) fn advertised(&self, settings: &GrpcClientSettings) -> String {
        if let Some(a) = &settings.push_advertised_endpoint {
            return a.clone();
        }
        let mut addr = self.local_addr;
        if addr.ip().is_unspecified() {
            log::warn!(target: "gamelan.executor.runtime",
                "push server listens on {addr}; advertising loopback (set an advertised endpoint)");
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        addr.to_string()
    }
}
