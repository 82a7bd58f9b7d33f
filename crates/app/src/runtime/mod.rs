//! The executor runtime: hosts executors, keeps them registered with an engine, feeds them
//! tasks through the worker pool and reports every result back.
//!
//! Lifecycle (driving [`RuntimeStateMachine`]): load config -> discover executors -> connect
//! -> register -> listen for tasks -> heartbeat; on a lost connection FAILED -> reconnect with
//! exponential back-off -> re-register -> resend the outbox -> READY. Shutdown stops intake,
//! drains the pool, hands back unstarted tasks, flushes results and unregisters.

mod core;
mod intake;
pub mod local;
mod pool;
mod reporter;
mod supervisor;
mod timer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gamelan_domain::{BatchPolicy, CommunicationType, RegistryError, RuntimeState};
use gamelan_ports::{Clock, EngineTransport, SystemClock, WorkflowExecutor};

pub use self::core::{Health, ShutdownReport};
pub use pool::PoolSettings;

use self::core::Core;

#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    /// False: [`RuntimeBuilder::start`] refuses with [`RuntimeError::Disabled`] and
    /// [`RuntimeBuilder::run`] returns an empty report at once; nothing connects
    /// (`gamelan.executor.runtime.enabled`).
    pub enabled: bool,
    /// Prefix of every executor id (`<runtime-id>-<executor-type>`).
    pub runtime_id: String,
    pub executor_version: String,
    pub pool: PoolSettings,
    pub batch: BatchPolicy,
    pub heartbeat_enabled: bool,
    pub heartbeat_interval: Duration,
    /// Sent at registration (metadata `gamelan.heartbeat.timeout-ms`): how long the engine
    /// waits for a heartbeat before declaring these executors dead. `None`: the engine's own.
    pub heartbeat_timeout: Option<Duration>,
    /// Reconnect back-off: starts here, doubles, capped at `reconnect_max`.
    pub reconnect_initial: Duration,
    pub reconnect_max: Duration,
    /// Failed connection attempts in a row after which the runtime gives up: it stays
    /// FAILED (not ready, still live) and logs an ERROR. `None`: retry for ever.
    pub reconnect_max_retries: Option<u32>,
    /// Serve `/metrics` on the HTTP port (`quarkus.micrometer.export.prometheus.enabled`).
    pub metrics_endpoint: bool,
    /// How long shutdown lets running tasks finish and results flush.
    pub drain_timeout: Duration,
    /// Longest a receive call waits; bounds how fast intake notices shutdown.
    pub receive_wait: Duration,
    /// Health and metrics endpoint; `None` = no HTTP port.
    pub http_addr: Option<SocketAddr>,
    /// Endpoint and attributes added to every registration, per communication type
    /// (push-mode gRPC announces its address here).
    pub registration_endpoint: Vec<(CommunicationType, String)>,
    pub registration_attributes: Vec<(CommunicationType, String, String)>,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            runtime_id: "executor-1".into(),
            executor_version: "1.0.0".into(),
            pool: PoolSettings::default(),
            batch: BatchPolicy {
                max_size: 100,
                max_age: Duration::ZERO,
            },
            heartbeat_enabled: true,
            heartbeat_interval: Duration::from_secs(30),
            heartbeat_timeout: None,
            reconnect_initial: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(30),
            reconnect_max_retries: None,
            metrics_endpoint: true,
            drain_timeout: Duration::from_secs(30),
            receive_wait: Duration::from_millis(100),
            http_addr: None,
            registration_endpoint: Vec::new(),
            registration_attributes: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("runtime disabled by gamelan.executor.runtime.enabled=false")]
    Disabled,
    #[error("no executors to host: register one with the executor! macro or the builder")]
    NoExecutors,
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(
        "executor '{executor_type}' wants the {wanted} transport, which is not configured (configured: {configured})"
    )]
    NoTransport {
        executor_type: String,
        wanted: CommunicationType,
        configured: String,
    },
    #[error(transparent)]
    Http(#[from] crate::observability::http::HttpError),
    #[error("cannot start runtime thread: {0}")]
    Spawn(String),
    #[error("cannot install signal handler: {0}")]
    Signal(String),
}

/// Builds a runtime: settings, executors (explicit and/or discovered) and transports.
pub struct RuntimeBuilder {
    settings: RuntimeSettings,
    executors: Vec<Arc<dyn WorkflowExecutor>>,
    transports: Vec<(CommunicationType, Arc<dyn EngineTransport>)>,
    default_transport: Option<CommunicationType>,
    discover: bool,
    clock: Arc<dyn Clock>,
}

pub struct Runtime;

impl Runtime {
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder {
            settings: RuntimeSettings::default(),
            executors: Vec::new(),
            transports: Vec::new(),
            default_transport: None,
            discover: true,
            clock: Arc::new(SystemClock),
        }
    }
}

impl RuntimeBuilder {
    #[must_use]
    pub fn settings(mut self, settings: RuntimeSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Hosts `executor` in addition to the discovered ones.
    #[must_use]
    pub fn executor(mut self, executor: impl WorkflowExecutor) -> Self {
        self.executors.push(Arc::new(executor));
        self
    }

    #[must_use]
    pub fn executor_arc(mut self, executor: Arc<dyn WorkflowExecutor>) -> Self {
        self.executors.push(executor);
        self
    }

    /// Whether executors registered with `gamelan::executor!` are hosted (default: yes).
    #[must_use]
    pub fn discover(mut self, on: bool) -> Self {
        self.discover = on;
        self
    }

    /// Adds a transport for executors of `communication`. The first one added is the default
    /// for executors whose declared transport is not configured.
    #[must_use]
    pub fn transport(
        mut self,
        communication: CommunicationType,
        transport: Arc<dyn EngineTransport>,
    ) -> Self {
        if self.default_transport.is_none() {
            self.default_transport = Some(communication);
        }
        self.transports.push((communication, transport));
        self
    }

    /// Makes `communication` the transport for executors whose own is not configured.
    #[must_use]
    pub fn default_transport(mut self, communication: CommunicationType) -> Self {
        self.default_transport = Some(communication);
        self
    }

    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Starts every thread and returns at once; the runtime connects in the background
    /// (use [`RuntimeHandle::wait_ready`] to wait for registration).
    ///
    /// With [`RuntimeSettings::enabled`] false it starts nothing, logs why and returns
    /// [`RuntimeError::Disabled`]: there is no handle to a runtime that does not run.
    pub fn start(self) -> Result<RuntimeHandle, RuntimeError> {
        if !self.settings.enabled {
            log_disabled();
            return Err(RuntimeError::Disabled);
        }
        let mut executors = self.executors;
        if self.discover {
            executors.extend(crate::sdk::discovered());
        }
        let core = Core::start(
            self.settings,
            executors,
            self.transports,
            self.default_transport,
            self.clock,
        )?;
        Ok(RuntimeHandle { core })
    }

    /// Starts, then blocks until SIGINT or SIGTERM, then shuts down gracefully.
    ///
    /// With [`RuntimeSettings::enabled`] false it starts nothing, logs why and returns an
    /// empty [`ShutdownReport`] at once (nothing ran, so nothing was handed back or lost):
    /// a process whose configuration disables the runtime exits successfully.
    pub fn run(self) -> Result<ShutdownReport, RuntimeError> {
        if !self.settings.enabled {
            log_disabled();
            return Ok(ShutdownReport::default());
        }
        let handle = self.start()?;
        handle.wait_for_signal()?;
        Ok(handle.shutdown())
    }
}

/// The one message every entry point logs when the configuration disables the runtime.
pub(crate) fn log_disabled() {
    log::warn!(target: "gamelan.executor.runtime", "{}", RuntimeError::Disabled);
}

/// A running runtime.
pub struct RuntimeHandle {
    core: Arc<Core>,
}

impl RuntimeHandle {
    pub fn state(&self) -> RuntimeState {
        self.core.state()
    }

    /// Registered with every engine and accepting tasks.
    pub fn is_ready(&self) -> bool {
        self.core.is_ready()
    }

    /// Waits up to `timeout` for readiness.
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        self.core.wait_ready(timeout)
    }

    /// Why the runtime stopped reconnecting (`reconnect_max_retries` used up), if it did.
    pub fn failure(&self) -> Option<String> {
        self.core.failure()
    }

    /// Waits up to `timeout` for the runtime to give up reconnecting.
    pub fn wait_gave_up(&self, timeout: Duration) -> bool {
        self.core.wait_gave_up(timeout)
    }

    pub fn health(&self) -> Health {
        self.core.health()
    }

    pub fn metrics_text(&self) -> String {
        self.core.metrics_text()
    }

    /// The bound health/metrics address, when an HTTP port is configured.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.core.http_addr()
    }

    pub fn executor_ids(&self) -> Vec<String> {
        self.core.executor_ids()
    }

    /// Blocks until SIGINT or SIGTERM arrives.
    pub fn wait_for_signal(&self) -> Result<(), RuntimeError> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
            .map_err(|e| RuntimeError::Signal(e.to_string()))?;
        if let Some(sig) = signals.forever().next() {
            log::info!(target: "gamelan.executor.runtime", "signal {sig} received: shutting down gracefully");
        }
        Ok(())
    }

    /// Graceful shutdown; see the module docs for the order of steps.
    pub fn shutdown(self) -> ShutdownReport {
        self.core.shutdown()
    }
}
