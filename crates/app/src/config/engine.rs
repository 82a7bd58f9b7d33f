//! `gamelan.engine.*`: the configuration of the reference engine process.

use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use gamelan_domain::RetryPolicy;

use super::kafka::KafkaSettings;
use super::logging::LogSettings;
use super::schema::{Checker, Schema, Table, config_type, keys};
use super::secret::Secret;
use super::value;

/// Everything `gamelan engine` reads from `gamelan.engine.*`. Each field's keys, parser and
/// meaning are one line of the key table below (`gamelan config keys --engine` prints it).
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    pub host: String,
    /// The main listener (gRPC, REST API, health, metrics); 0 = any free port.
    pub port: u16,
    /// An additional, separate gRPC listener.
    pub grpc_port: Option<u16>,
    /// TLS on the separate gRPC listener; the main port stays plain, for probes.
    pub grpc_tls: EngineGrpcTls,
    pub heartbeat_timeout: Duration,
    pub ack_timeout: Duration,
    pub jwt: EngineJwt,
    pub data_dir: PathBuf,
    pub ephemeral: bool,
    pub max_body_size: u64,
    pub retry: EngineRetry,
    pub max_long_polls: usize,
    pub max_long_poll_wait: Duration,
    pub results_retention: Duration,
    pub results_max_retained: usize,
    pub kafka: KafkaSettings,
    /// True when `kafka.bootstrap-servers` was given: the engine then also serves Kafka
    /// executors through the broker.
    pub kafka_enabled: bool,
    pub log: LogSettings,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EngineGrpcTls {
    pub use_ssl: bool,
    pub certificate_path: Option<PathBuf>,
    pub private_key_path: Option<PathBuf>,
    pub ca_certificate_path: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineJwt {
    pub secret: Option<Secret>,
    pub issuer: String,
    /// Unset: true when a secret is set; then every executor call needs a valid token.
    pub enabled: bool,
}

/// Engine-side retries of tasks whose result was a technical failure.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineRetry {
    /// Re-dispatches after the first attempt.
    pub max_attempts: u32,
    pub backoff_initial: Duration,
    pub backoff_multiplier: f64,
    pub backoff_max: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            host: "0.0.0.0".into(),
            port: 8080,
            grpc_port: None,
            grpc_tls: EngineGrpcTls::default(),
            heartbeat_timeout: Duration::from_secs(60),
            ack_timeout: Duration::from_secs(300),
            jwt: EngineJwt {
                secret: None,
                issuer: "gamelan-executor".into(),
                enabled: false,
            },
            data_dir: PathBuf::from("./gamelan-data"),
            ephemeral: false,
            max_body_size: 4 * 1024 * 1024,
            retry: EngineRetry {
                max_attempts: 3,
                backoff_initial: Duration::from_secs(1),
                backoff_multiplier: 2.0,
                backoff_max: Duration::from_secs(300),
            },
            max_long_polls: 256,
            max_long_poll_wait: Duration::from_secs(30),
            results_retention: Duration::from_secs(3600),
            results_max_retained: 100_000,
            kafka: KafkaSettings::default(),
            kafka_enabled: false,
            log: LogSettings::default(),
        }
    }
}

config_type!(EngineConfig);

impl EngineConfig {
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.retry.max_attempts,
            initial_delay: self.retry.backoff_initial,
            multiplier: self.retry.backoff_multiplier,
            max_delay: self.retry.backoff_max,
            ..RetryPolicy::default()
        }
    }
}

const PREFIX: &str = "gamelan.engine.";

fn table() -> Table<EngineConfig> {
    use value::{boolean, optional, positive, positive_secs, text};
    Table::process(keys!(EngineConfig, PREFIX;
        "host" => host: text, "address every listener binds";
        "port" => port: value::port, "the one listener: gRPC (h2c) + HTTP API + health + metrics (0 = any free port)";
        "grpc.port" => grpc_port: optional(value::port), "an extra gRPC-only listener (the Java engine's 9090)";
        "grpc.use-ssl" => grpc_tls.use_ssl: boolean, "TLS on the extra gRPC listener (needs `grpc.port`)";
        "grpc.certificate-path" => grpc_tls.certificate_path: optional(value::path), "server certificate for TLS";
        "grpc.private-key-path" => grpc_tls.private_key_path: optional(value::path), "server private key for TLS";
        "grpc.ca-certificate-path" => grpc_tls.ca_certificate_path: optional(value::path), "makes it mutual TLS: clients need a certificate signed by this CA";
        "heartbeat.timeout" | "heartbeat.timeout-seconds" => heartbeat_timeout: positive_secs, "silent executors are declared dead; their tasks go elsewhere (bare numbers: seconds)";
        "ack-timeout" => ack_timeout: positive_secs, "a delivered task without a result is dispatched again (bare numbers: seconds)";
        "jwt.secret" => jwt.secret: optional(value::secret), "HS256 key executors' tokens must be signed with";
        "jwt.issuer" => jwt.issuer: text, "`iss` claim executors' tokens must carry";
        "jwt.enabled" => jwt.enabled: boolean, "token check on every executor call", default "true when a secret is set";
        "data-dir" => data_dir: value::path, "durable store (redb); also `--data-dir`";
        "ephemeral" => ephemeral: boolean, "keep everything in memory; also `--ephemeral`";
        "max-body-size" => max_body_size: value::size, "largest request body / gRPC message (bytes, or e.g. 4MiB)";
        "retry.max-attempts" => retry.max_attempts: value::number, "engine-side retries of technical failures (new attempt, new token)";
        "retry.backoff-initial" => retry.backoff_initial: value::millis, "first retry delay (bare numbers: ms)";
        "retry.backoff-multiplier" => retry.backoff_multiplier: value::multiplier, "delay growth (>= 1)";
        "retry.backoff-max" => retry.backoff_max: value::millis, "cap on one delay (bare numbers: ms)";
        "max-long-polls" => max_long_polls: positive, "REST long polls waiting at once; more get 429 + Retry-After";
        "max-long-poll-wait" => max_long_poll_wait: value::positive_millis, "the longest a REST long poll or completion feed call waits, whatever its `waitMs` (bare numbers: ms)";
        "results.retention" => results_retention: positive_secs, "finished tasks stay queryable (and de-duplicate resent results) this long; then they are forgotten, in memory and in the store";
        "results.max-retained" => results_max_retained: positive, "finished tasks kept at most; the oldest go first";
    ))
}

static TABLE: LazyLock<Table<EngineConfig>> = LazyLock::new(table);

impl Schema for EngineConfig {
    const PREFIX: &'static str = PREFIX;
    const ENV_PREFIX: &'static str = "GAMELAN_ENGINE_";
    const FOREIGN: &'static [&'static str] = &["gamelan.executor."];

    fn table() -> &'static Table<Self> {
        &TABLE
    }

    fn finish(&mut self, explicit: &dyn Fn(&str) -> bool) {
        self.kafka_enabled = explicit("gamelan.engine.kafka.bootstrap-servers");
        if !explicit("gamelan.engine.jwt.enabled") {
            self.jwt.enabled = self.jwt.secret.is_some();
        }
    }

    fn validate(&self, check: &mut Checker<'_>) {
        if self.grpc_tls.use_ssl {
            if self.grpc_port.is_none() {
                check.fail(
                    "gamelan.engine.grpc.use-ssl",
                    "true",
                    "gamelan.engine.grpc.port to be set: TLS is served on the separate gRPC listener",
                );
            }
            if self.grpc_tls.certificate_path.is_none() || self.grpc_tls.private_key_path.is_none()
            {
                check.fail(
                    "gamelan.engine.grpc.certificate-path",
                    "(not set)",
                    "both grpc.certificate-path and grpc.private-key-path when grpc.use-ssl is true",
                );
            }
        }
        if self.jwt.enabled && self.jwt.secret.is_none() {
            check.fail(
                "gamelan.engine.jwt.enabled",
                "true",
                "gamelan.engine.jwt.secret to be set when JWT is enabled",
            );
        }
        if let Some(grpc) = self.grpc_port
            && grpc != 0
            && grpc == self.port
        {
            check.fail(
                "gamelan.engine.grpc.port",
                grpc,
                format!("a port other than gamelan.engine.port ({})", self.port),
            );
        }
        let retry = &self.retry;
        check.backoff(PREFIX, "retry", retry.backoff_initial, retry.backoff_max);
    }
}
