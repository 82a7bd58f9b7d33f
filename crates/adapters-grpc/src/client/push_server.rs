//! Push delivery, executor side: serves `dispatcher.Executor.Execute` and buffers what the
//! engine pushes until the runtime takes it.
//!
//! The server checks the engine's bearer token on every call (the verifier given at start)
//! and serves TLS, with a client CA mutual TLS, when the settings carry a [`ServerTls`].
//!
//! [`ServerTls`]: crate::settings::ServerTls

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex, PoisonError};

use gamelan_ports::TokenVerifier;
use tokio::sync::oneshot;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

use crate::auth::VerifyInterceptor;
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
    pub(crate) async fn start(
        settings: &GrpcClientSettings,
        verifier: Arc<dyn TokenVerifier>,
    ) -> Result<Self, GrpcError> {
        let listener = tokio::net::TcpListener::bind(settings.push_listen_addr).await?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(PushShared {
            inbox: Arc::new(Inbox::default()),
            config: Mutex::new(PushConfig::default()),
        });
        let service = ExecutorServer::new(PushService(Arc::clone(&shared)))
            .max_decoding_message_size(settings.max_message_size)
            .max_encoding_message_size(settings.max_message_size);
        let service = InterceptedService::new(service, VerifyInterceptor(verifier));
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = &settings.push_tls {
            builder = builder
                .tls_config(tls.config())
                .map_err(|e| GrpcError::Tls(e.to_string()))?;
        }
        let (stop, stopped) = oneshot::channel::<()>();
        let server = builder
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
        log::info!(target: "gamelan.executor.runtime", "push server listening on {local_addr}{}",
        match &settings.push_tls {
            Some(t) if t.client_ca_pem.is_some() => " (mutual TLS)",
            Some(_) => " (TLS)",
            None => "",
        });
        Ok(Self {
            local_addr,
            shared,
            _stop: stop,
        })
    }

    /// What the engine should dial: `https://host:port` with TLS, else the plain `host:port`
    /// the Java engine expects. The host is the configured one, else the bound IP, else (bound
    /// to an unspecified IP, which no engine can dial) `$HOSTNAME` if it resolves, else
    /// loopback with a warning.
    pub(crate) fn advertised(&self, settings: &GrpcClientSettings) -> String {
        let host = settings
            .push_advertised_host
            .clone()
            .unwrap_or_else(|| default_host(self.local_addr));
        let host = match host.parse::<IpAddr>() {
            Ok(IpAddr::V6(ip)) => format!("[{ip}]"),
            _ => host,
        };
        let port = self.local_addr.port();
        if settings.push_tls.is_some() {
            format!("https://{host}:{port}")
        } else {
            format!("{host}:{port}")
        }
    }
}

fn default_host(bound: SocketAddr) -> String {
    if !bound.ip().is_unspecified() {
        return bound.ip().to_string();
    }
    if let Ok(name) = std::env::var("HOSTNAME")
        && !name.is_empty()
        && (name.as_str(), bound.port())
            .to_socket_addrs()
            .is_ok_and(|mut a| a.next().is_some())
    {
        return name;
    }
    log::warn!(target: "gamelan.executor.runtime",
        "push server listens on {bound} and $HOSTNAME is unset or does not resolve; \
         advertising 127.0.0.1, which only an engine on this machine can dial \
         (set grpc.advertised-host)");
    std::net::Ipv4Addr::LOCALHOST.to_string()
}
