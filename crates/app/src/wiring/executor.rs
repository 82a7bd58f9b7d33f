//! `gamelan executor`: the runtime built from an [`ExecutorConfig`].

use std::net::SocketAddr;
#[cfg(feature = "grpc")]
use std::path::Path;
use std::sync::Arc;

use gamelan_domain::CommunicationType;
use gamelan_ports::{EngineTransport, NoToken, TokenSource};

use crate::config::ExecutorConfig;
use crate::runtime::{PoolSettings, Runtime, RuntimeBuilder, RuntimeSettings};
use crate::security::{JwtSigner, StaticToken};

#[derive(Debug, thiserror::Error)]
pub enum WiringError {
    #[error("the {0} transport is not built into this binary (enable the cargo feature)")]
    NotBuiltIn(CommunicationType),
    #[error(
        "the local transport exists only inside one process (tests); choose grpc, rest or kafka"
    )]
    LocalNotConfigurable,
    #[error("cannot read {what} '{path}': {reason}")]
    File {
        what: &'static str,
        path: String,
        reason: String,
    },
    #[error("{key} '{value}': {reason}")]
    Setting {
        key: &'static str,
        value: String,
        reason: String,
    },
    #[error("{transport} transport: {reason}")]
    Transport {
        transport: &'static str,
        reason: String,
    },
}

/// The runtime id: `runtime.executor-id`, else `executor-name`, else the host name.
fn runtime_id(cfg: &ExecutorConfig) -> String {
    cfg.runtime
        .executor_id
        .clone()
        .or_else(|| cfg.executor_name.clone())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| format!("executor-{}", std::process::id()))
}

pub fn runtime_settings(cfg: &ExecutorConfig) -> RuntimeSettings {
    let http_addr = (cfg.metrics.enabled || cfg.http.port != 0)
        .then(|| SocketAddr::from(([0, 0, 0, 0], cfg.http.port)));
    RuntimeSettings {
        enabled: cfg.runtime.enabled,
        runtime_id: runtime_id(cfg),
        executor_version: cfg.executor_version.clone(),
        pool: PoolSettings {
            threads: cfg.task.dispatch_threads,
            queue_size: cfg.task.queue_size,
            max_parallel: cfg.runtime.max_parallel_tasks,
            retry: cfg.retry_policy(),
            default_timeout: cfg.engine.request_timeout,
            max_abandoned_threads: cfg.task.max_abandoned_threads,
        },
        batch: cfg.batch_policy(),
        heartbeat_enabled: cfg.heartbeat.enabled,
        heartbeat_interval: cfg.heartbeat.interval,
        heartbeat_timeout: cfg.heartbeat.send_timeout.then_some(cfg.heartbeat.timeout),
        reconnect_initial: cfg.engine.reconnect_initial,
        reconnect_max: cfg.engine.reconnect_max_delay,
        reconnect_max_retries: cfg.engine.reconnect_max_retries,
        metrics_endpoint: cfg.metrics.prometheus_enabled,
        http_addr,
        ..RuntimeSettings::default()
    }
}

/// What the executor sends as `authorization: Bearer`: a static token, a signed JWT, or
/// nothing.
pub fn token_source(cfg: &ExecutorConfig, subject: &str) -> Arc<dyn TokenSource> {
    if let Some(t) = &cfg.jwt.token {
        return Arc::new(StaticToken(t.expose().to_owned()));
    }
    match (&cfg.jwt.secret, cfg.jwt.enabled) {
        (Some(secret), true) => Arc::new(JwtSigner::new(
            secret.expose(),
            &cfg.jwt.issuer,
            subject,
            cfg.jwt.expiry,
            cfg.executor_name.clone(),
            Some(cfg.executor_version.clone()),
            None,
        )),
        _ => Arc::new(NoToken),
    }
}

#[cfg(feature = "grpc")]
mod push;

#[cfg(feature = "grpc")]
fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, WiringError> {
    std::fs::read(path).map_err(|e| WiringError::File {
        what,
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Builds the transport for `communication` from the configuration.
pub fn transport_for(
    cfg: &ExecutorConfig,
    communication: CommunicationType,
    token: Arc<dyn TokenSource>,
) -> Result<Arc<dyn EngineTransport>, WiringError> {
    match communication {
        CommunicationType::Grpc => grpc(cfg, token),
        CommunicationType::Rest => rest(cfg, token),
        CommunicationType::Kafka => kafka(cfg),
        CommunicationType::Local => Err(WiringError::LocalNotConfigurable),
    }
}

#[cfg(feature = "grpc")]
fn grpc(
    cfg: &ExecutorConfig,
    token: Arc<dyn TokenSource>,
) -> Result<Arc<dyn EngineTransport>, WiringError> {
    use crate::config::GrpcDelivery;
    use gamelan_grpc::{ClientTls, Delivery, GrpcClientSettings, GrpcTransport};

    let g = &cfg.grpc;
    let push = g.delivery == GrpcDelivery::Push;
    let mut push_tls = None;
    let tls = if g.use_ssl {
        let identity = match (&g.certificate_path, &g.private_key_path) {
            (Some(c), Some(k)) => Some((
                read("grpc.certificate-path", c)?,
                read("grpc.private-key-path", k)?,
            )),
            _ => None,
        };
        let ca = match &g.ca_certificate_path {
            Some(p) => Some(read("grpc.ca-certificate-path", p)?),
            None => None,
        };
        if push {
            push_tls = Some(push::server_tls(identity.clone(), ca.clone())?);
        }
        Some(ClientTls {
            ca_certificate_pem: ca,
            identity,
            domain: None,
        })
    } else {
        None
    };
    let push_listen_addr = if push {
        push::listen_addr(&g.host, g.port)?
    } else {
        SocketAddr::from(([0, 0, 0, 0], g.port))
    };
    let mut url = cfg.grpc_engine_url().to_string();
    if g.use_ssl && url.starts_with("http://") {
        url = url.replacen("http://", "https://", 1);
    }
    let settings = GrpcClientSettings {
        engine_url: url.trim_end_matches('/').to_owned(),
        delivery: match g.delivery {
            GrpcDelivery::ExecuteStream => Delivery::ExecuteStream,
            GrpcDelivery::StreamTasks => Delivery::StreamTasks,
            GrpcDelivery::Push => Delivery::Push,
        },
        push_listen_addr,
        push_advertised_host: g.advertised_host.clone(),
        push_tls,
        connect_timeout: cfg.engine.connect_timeout,
        request_timeout: cfg.engine.request_timeout,
        keep_alive_time: g.keep_alive_time,
        keep_alive_timeout: g.keep_alive_timeout,
        max_message_size: g.max_message_size,
        flow_control_window: Some(g.flow_control_window),
        max_concurrent_streams: Some(g.max_concurrent_streams),
        tls,
    };
    let t = GrpcTransport::new(settings, token).map_err(|e| WiringError::Transport {
        transport: "grpc",
        reason: e.to_string(),
    })?;
    Ok(Arc::new(if push {
        t.with_push_verifier(push::verifier(cfg))
    } else {
        t
    }))
}

#[cfg(not(feature = "grpc"))]
fn grpc(
    _: &ExecutorConfig,
    _: Arc<dyn TokenSource>,
) -> Result<Arc<dyn EngineTransport>, WiringError> {
    Err(WiringError::NotBuiltIn(CommunicationType::Grpc))
}

#[cfg(feature = "rest")]
fn rest(
    cfg: &ExecutorConfig,
    token: Arc<dyn TokenSource>,
) -> Result<Arc<dyn EngineTransport>, WiringError> {
    use gamelan_rest::{RestClientSettings, RestTransport};
    let mut s = RestClientSettings::new(cfg.engine.url.as_str().trim_end_matches('/'));
    s.connect_timeout = cfg.engine.connect_timeout;
    s.request_timeout = cfg.engine.request_timeout;
    s.token = token;
    let t = RestTransport::new(s).map_err(|e| WiringError::Transport {
        transport: "rest",
        reason: e.to_string(),
    })?;
    Ok(Arc::new(t))
}

#[cfg(not(feature = "rest"))]
fn rest(
    _: &ExecutorConfig,
    _: Arc<dyn TokenSource>,
) -> Result<Arc<dyn EngineTransport>, WiringError> {
    Err(WiringError::NotBuiltIn(CommunicationType::Rest))
}

#[cfg(feature = "kafka")]
#[allow(clippy::unnecessary_wraps)] // one signature for every transport constructor
fn kafka(cfg: &ExecutorConfig) -> Result<Arc<dyn EngineTransport>, WiringError> {
    let k = &cfg.kafka;
    let settings = gamelan_kafka::KafkaClientSettings {
        bootstrap_servers: k.bootstrap_servers.clone(),
        group_id: k.group_id.clone(),
        topics: k.topics.clone(),
        partitions: k.partitions,
        replication_factor: k.replication_factor,
        properties: k.properties.to_pairs(),
        request_timeout: cfg
            .engine
            .request_timeout
            .min(std::time::Duration::from_secs(60)),
        connect_timeout: cfg.engine.connect_timeout,
        ..gamelan_kafka::KafkaClientSettings::default()
    };
    Ok(Arc::new(gamelan_kafka::KafkaTransport::new(settings)))
}

#[cfg(not(feature = "kafka"))]
fn kafka(_cfg: &ExecutorConfig) -> Result<Arc<dyn EngineTransport>, WiringError> {
    Err(WiringError::NotBuiltIn(CommunicationType::Kafka))
}

/// A runtime builder with settings and the configured transport; add executors (or let
/// discovery find them) and start it.
pub fn runtime_builder(cfg: &ExecutorConfig) -> Result<RuntimeBuilder, WiringError> {
    let settings = runtime_settings(cfg);
    let token = token_source(cfg, &settings.runtime_id);
    let transport = transport_for(cfg, cfg.transport, token)?;
    let mut builder = Runtime::builder()
        .settings(settings)
        .transport(cfg.transport, transport)
        .default_transport(cfg.transport);
    // "Multiple executors per service": executors declaring Kafka use the broker when one is
    // configured, whatever the process's default transport.
    if cfg.transport != CommunicationType::Kafka && cfg.kafka_configured {
        builder = builder.transport(CommunicationType::Kafka, kafka(cfg)?);
    }
    Ok(builder)
}
