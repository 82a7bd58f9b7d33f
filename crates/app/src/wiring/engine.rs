//! `gamelan engine`: the reference engine behind one listening port that speaks gRPC
//! (HTTP/2 cleartext) and the HTTP API at once, so the Java runtime's
//! `engine-url=http://gamelan-engine:8080` works for every transport.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt as _;
#[cfg(any(feature = "grpc", feature = "rest", feature = "kafka"))]
use gamelan_ports::EngineService;
use gamelan_ports::{AllowAll, NoToken, SystemClock, TokenSource, TokenVerifier};

use crate::config::EngineConfig;
use crate::engine::{Engine, EngineSettings};
use crate::security::{JwtSigner, JwtVerifier};

/// Lifetime of the tokens the engine signs for push calls (re-signed when a fifth is left).
const PUSH_TOKEN_LIFETIME: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum WiringEngineError {
    #[error("cannot start the engine's async runtime: {0}")]
    Runtime(String),
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: String, reason: String },
    #[error("engine: {0}")]
    Engine(#[from] gamelan_ports::EngineError),
    #[error("cannot read {what} '{path}': {reason}")]
    TlsFile {
        what: &'static str,
        path: String,
        reason: String,
    },
    #[error("gRPC TLS needs the grpc feature")]
    TlsUnavailable,
    #[error("Kafka: {0}")]
    Kafka(String),
}

/// A running engine; dropping it without [`EngineProcess::shutdown`] stops it abruptly.
pub struct EngineProcess {
    pub engine: Arc<Engine>,
    /// The main listener (HTTP API, health, metrics and gRPC).
    pub addr: SocketAddr,
    /// The optional separate gRPC listener.
    pub grpc_addr: Option<SocketAddr>,
    runtime: Option<tokio::runtime::Runtime>,
    #[cfg(feature = "kafka")]
    kafka: Option<gamelan_kafka::KafkaEngineBridge>,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    servers: Vec<tokio::task::JoinHandle<()>>,
}

/// How to run an engine, independent of where the values came from.
pub struct EngineOptions {
    pub settings: EngineSettings,
    pub bind: SocketAddr,
    pub grpc_bind: Option<SocketAddr>,
    pub verifier: Arc<dyn TokenVerifier>,
    /// Sent as `authorization: Bearer` on every push call to an executor.
    pub push_token: Arc<dyn TokenSource>,
    pub max_body_bytes: usize,
    pub max_long_polls: usize,
    /// The longest one REST long poll waits, whatever its `waitMs`.
    pub max_long_poll_wait: Duration,
    /// TLS (and with a client CA, mutual TLS) on the separate gRPC listener; the same
    /// certificate, key and CA serve push calls to executors registered as `https://`.
    pub grpc_tls: Option<crate::config::EngineGrpcTls>,
    /// Serve Kafka executors through this broker configuration.
    pub kafka: Option<crate::config::KafkaSettings>,
}

impl EngineOptions {
    pub fn from_config(cfg: &EngineConfig) -> Self {
        let host: std::net::IpAddr = cfg.host.parse().unwrap_or([0, 0, 0, 0].into());
        let verifier: Arc<dyn TokenVerifier> = match (&cfg.jwt.secret, cfg.jwt.enabled) {
            (Some(secret), true) => Arc::new(JwtVerifier::new(secret.expose(), &cfg.jwt.issuer)),
            _ => Arc::new(AllowAll),
        };
        // Push calls carry a token signed with the same secret and issuer executors use.
        let push_token: Arc<dyn TokenSource> = match (&cfg.jwt.secret, cfg.jwt.enabled) {
            (Some(secret), true) => Arc::new(JwtSigner::new(
                secret.expose(),
                &cfg.jwt.issuer,
                "gamelan-engine",
                PUSH_TOKEN_LIFETIME,
                None,
                None,
                None,
            )),
            _ => Arc::new(NoToken),
        };
        Self {
            settings: EngineSettings {
                heartbeat_timeout: cfg.heartbeat_timeout,
                ack_timeout: cfg.ack_timeout,
                sweep_interval: (cfg.heartbeat_timeout / 4)
                    .clamp(Duration::from_millis(20), Duration::from_secs(1)),
                retry: cfg.retry_policy(),
                data_dir: (!cfg.ephemeral).then(|| cfg.data_dir.clone()),
                max_long_polls: cfg.max_long_polls,
                retention: cfg.results_retention,
                max_retained: cfg.results_max_retained,
            },
            bind: SocketAddr::new(host, cfg.port),
            grpc_bind: cfg.grpc_port.map(|p| SocketAddr::new(host, p)),
            verifier,
            push_token,
            max_body_bytes: usize::try_from(cfg.max_body_size).unwrap_or(usize::MAX),
            max_long_polls: cfg.max_long_polls,
            max_long_poll_wait: cfg.max_long_poll_wait,
            grpc_tls: cfg.grpc_tls.use_ssl.then(|| cfg.grpc_tls.clone()),
            kafka: cfg.kafka_enabled.then(|| cfg.kafka.clone()),
        }
    }
}

pub fn start_engine(cfg: &EngineConfig) -> Result<EngineProcess, WiringEngineError> {
    start_engine_with(EngineOptions::from_config(cfg))
}

fn bind(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
) -> Result<tokio::net::TcpListener, WiringEngineError> {
    rt.block_on(tokio::net::TcpListener::bind(addr))
        .map_err(|e| WiringEngineError::Bind {
            addr: addr.to_string(),
            reason: e.to_string(),
        })
}

/// The gRPC service's settings, with how it pushes to executors (token, TLS).
#[cfg(feature = "grpc")]
fn grpc_settings(
    opts: &EngineOptions,
) -> Result<gamelan_grpc::GrpcServerSettings, WiringEngineError> {
    let tls = match &opts.grpc_tls {
        Some(t) => {
            let cert = read_pem(
                "gamelan.engine.grpc.certificate-path",
                t.certificate_path.as_ref(),
            )?;
            let key = read_pem(
                "gamelan.engine.grpc.private-key-path",
                t.private_key_path.as_ref(),
            )?;
            Some(gamelan_grpc::ClientTls {
                ca_certificate_pem: read_pem(
                    "gamelan.engine.grpc.ca-certificate-path",
                    t.ca_certificate_path.as_ref(),
                )?,
                identity: cert.zip(key),
                domain: None,
            })
        }
        None => None,
    };
    Ok(gamelan_grpc::GrpcServerSettings {
        max_message_size: opts.max_body_bytes,
        verifier: Arc::clone(&opts.verifier),
        push_client: gamelan_grpc::PushClientSettings {
            max_message_size: opts.max_body_bytes,
            tls,
            ..gamelan_grpc::PushClientSettings::default()
        },
        push_token: Arc::clone(&opts.push_token),
    })
}

fn router(engine: &Arc<Engine>, opts: &EngineOptions) -> Result<axum::Router, WiringEngineError> {
    let router = axum::Router::new();
    #[cfg(feature = "grpc")]
    let router = {
        let settings = grpc_settings(opts)?;
        let service: Arc<dyn EngineService> = Arc::clone(engine) as Arc<dyn EngineService>;
        router.merge(gamelan_grpc::routes(service, settings).into_axum_router())
    };
    #[cfg(feature = "rest")]
    let router = {
        let metrics_engine = Arc::clone(engine);
        let health_engine = Arc::clone(engine);
        let settings = gamelan_rest::HttpServerSettings {
            max_body_bytes: opts.max_body_bytes,
            max_long_polls: opts.max_long_polls,
            max_wait: opts.max_long_poll_wait,
            verifier: Arc::clone(&opts.verifier),
            metrics: Arc::new(move || metrics_engine.metrics_text()),
            health: Arc::new(move || {
                let stats = health_engine.statistics();
                (
                    true,
                    serde_json::json!({
                        "status": "UP",
                        "executors": stats.executors,
                        "aliveExecutors": stats.alive_executors,
                        "tasksPending": stats.tasks_pending,
                        "tasksInFlight": stats.tasks_in_flight,
                    }),
                )
            }),
            ..gamelan_rest::HttpServerSettings::default()
        };
        let service: Arc<dyn EngineService> = Arc::clone(engine) as Arc<dyn EngineService>;
        router.merge(gamelan_rest::router(service, settings))
    };
    #[cfg(not(any(feature = "grpc", feature = "rest")))]
    let _ = (engine, opts);
    Ok(router)
}

/// Small messages (tasks, results, acks) must not wait for Nagle's algorithm.
fn nodelay(tcp: &mut tokio::net::TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        log::debug!(target: "gamelan.engine", "TCP_NODELAY not set: {e}");
    }
}

pub fn start_engine_with(opts: EngineOptions) -> Result<EngineProcess, WiringEngineError> {
    let engine = Engine::open(opts.settings.clone(), Arc::new(SystemClock))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("gamelan-engine-io")
        .enable_all()
        .build()
        .map_err(|e| WiringEngineError::Runtime(e.to_string()))?;
    let listener = bind(&runtime, opts.bind)?;
    let addr = listener.local_addr().map_err(|e| WiringEngineError::Bind {
        addr: opts.bind.to_string(),
        reason: e.to_string(),
    })?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let app = router(&engine, &opts)?;
    let mut servers = Vec::new();
    let mut rx = stop_rx.clone();
    servers.push(runtime.spawn(async move {
        let shutdown = async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        if let Err(e) = axum::serve(listener.tap_io(nodelay), app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            log::error!(target: "gamelan.engine", "server stopped: {e}");
        }
    }));
    let mut grpc_addr = None;
    if let Some(gb) = opts.grpc_bind {
        let l = bind(&runtime, gb)?;
        grpc_addr = l.local_addr().ok();
        let rx = stop_rx.clone();
        servers.push(grpc_listener(&runtime, l, &engine, &opts, rx)?);
    }
    #[cfg(feature = "kafka")]
    let kafka = match &opts.kafka {
        Some(k) => {
            let settings = gamelan_kafka::KafkaEngineSettings {
                bootstrap_servers: k.bootstrap_servers.clone(),
                group_id: k
                    .group_id
                    .clone()
                    .unwrap_or_else(|| "gamelan-engine".into()),
                topics: k.topics.clone(),
                partitions: k.partitions,
                replication_factor: k.replication_factor,
                properties: k.properties.to_pairs(),
                ..gamelan_kafka::KafkaEngineSettings::default()
            };
            let service: Arc<dyn EngineService> = Arc::clone(&engine) as Arc<dyn EngineService>;
            let bridge = gamelan_kafka::KafkaEngineBridge::start(service, settings)
                .map_err(|e| WiringEngineError::Kafka(e.to_string()))?;
            log::info!(target: "gamelan.engine", "serving Kafka executors through {}", k.bootstrap_servers);
            Some(bridge)
        }
        None => None,
    };
    #[cfg(not(feature = "kafka"))]
    if opts.kafka.is_some() {
        return Err(WiringEngineError::Kafka(
            "this binary was built without the kafka feature".into(),
        ));
    }
    log::info!(
        target: "gamelan.engine",
        "engine listening on {addr} (gRPC + HTTP){}; storage: {}",
        grpc_addr.map(|a| format!(", gRPC also on {a}")).unwrap_or_default(),
        opts.settings
            .data_dir
            .as_ref()
            .map_or_else(|| "in memory (ephemeral)".to_owned(), |d| d.display().to_string())
    );
    Ok(EngineProcess {
        engine,
        addr,
        grpc_addr,
        runtime: Some(runtime),
        #[cfg(feature = "kafka")]
        kafka,
        stop: Some(stop_tx),
        servers,
    })
}

fn read_pem(
    what: &'static str,
    path: Option<&std::path::PathBuf>,
) -> Result<Option<Vec<u8>>, WiringEngineError> {
    path.map(|p| {
        std::fs::read(p).map_err(|e| WiringEngineError::TlsFile {
            what,
            path: p.display().to_string(),
            reason: e.to_string(),
        })
    })
    .transpose()
}

/// The separate gRPC listener: plain gRPC + HTTP like the main port, or gRPC over TLS.
fn grpc_listener(
    runtime: &tokio::runtime::Runtime,
    listener: tokio::net::TcpListener,
    engine: &Arc<Engine>,
    opts: &EngineOptions,
    mut rx: tokio::sync::watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, WiringEngineError> {
    let shutdown = async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    if let Some(tls) = &opts.grpc_tls {
        let cert = read_pem(
            "gamelan.engine.grpc.certificate-path",
            tls.certificate_path.as_ref(),
        )?;
        let key = read_pem(
            "gamelan.engine.grpc.private-key-path",
            tls.private_key_path.as_ref(),
        )?;
        let ca = read_pem(
            "gamelan.engine.grpc.ca-certificate-path",
            tls.ca_certificate_path.as_ref(),
        )?;
        #[cfg(feature = "grpc")]
        {
            let server_tls = gamelan_grpc::ServerTls {
                certificate_pem: cert.unwrap_or_default(),
                key_pem: key.unwrap_or_default(),
                client_ca_pem: ca,
            };
            let settings = grpc_settings(opts)?;
            let service: Arc<dyn EngineService> = Arc::clone(engine) as Arc<dyn EngineService>;
            let routes = gamelan_grpc::routes(service, settings);
            return Ok(runtime.spawn(async move {
                if let Err(e) =
                    gamelan_grpc::serve(listener, routes, Some(server_tls), shutdown).await
                {
                    log::error!(target: "gamelan.engine", "gRPC TLS listener stopped: {e}");
                }
            }));
        }
        #[cfg(not(feature = "grpc"))]
        {
            let _ = (cert, key, ca);
            return Err(WiringEngineError::TlsUnavailable);
        }
    }
    let app = router(engine, opts)?;
    Ok(runtime.spawn(async move {
        if let Err(e) = axum::serve(listener.tap_io(nodelay), app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            log::error!(target: "gamelan.engine", "gRPC listener stopped: {e}");
        }
    }))
}

impl EngineProcess {
    /// Stops accepting connections, lets open calls finish briefly, then stops the engine
    /// (which commits what it holds).
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        #[cfg(feature = "kafka")]
        if let Some(k) = self.kafka.take() {
            k.shutdown();
        }
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(true);
        }
        if let Some(rt) = self.runtime.take() {
            for s in self.servers.drain(..) {
                let _ =
                    rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), s).await });
            }
            rt.shutdown_timeout(Duration::from_secs(1));
        }
        self.engine.shutdown();
    }
}

impl Drop for EngineProcess {
    fn drop(&mut self) {
        self.stop_now();
    }
}
