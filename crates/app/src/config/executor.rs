//! `gamelan.executor.*`: the configuration of an executor process.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use gamelan_domain::{BatchPolicy, CommunicationType, RetryPolicy};
use url::Url;

use super::kafka::KafkaSettings;
use super::logging::LogSettings;
use super::schema::{Checker, Schema, Table, config_type, keys};
use super::secret::Secret;
use super::value::{self, Show, show_duration};

/// Everything an executor process reads from `gamelan.executor.*` (plus the few `quarkus.*`
/// keys the Java runtime uses). Both spellings it uses for a setting land in one field.
/// Defaults are the Java runtime's values where it gives one. Each field's keys, parser and
/// meaning are one line of the key table below (`gamelan config keys` prints it).
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutorConfig {
    pub executor_name: Option<String>,
    pub executor_version: String,
    pub runtime: RuntimeSettings,
    pub engine: EngineConnection,
    pub heartbeat: HeartbeatSettings,
    pub task: TaskSettings,
    pub error: ErrorSettings,
    pub result: ResultSettings,
    pub metrics: MetricsSettings,
    pub transport: CommunicationType,
    pub grpc: GrpcSettings,
    pub kafka: KafkaSettings,
    /// True when `kafka.bootstrap-servers` was given: executors declaring Kafka then use the
    /// broker even when `transport` is another.
    pub kafka_configured: bool,
    pub jwt: JwtSettings,
    pub http: HttpSettings,
    pub log: LogSettings,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeSettings {
    pub enabled: bool,
    /// Unset: `executor-name`, else the host name, at start.
    pub executor_id: Option<String>,
    pub max_parallel_tasks: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConnection {
    pub url: Url,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Reconnect back-off: the first wait after a failed connection, doubling up to
    /// `reconnect_max_delay`.
    pub reconnect_initial: Duration,
    pub reconnect_max_delay: Duration,
    /// Failed reconnect attempts tolerated in a row before the runtime gives up (stays
    /// FAILED, not ready); `None` retries for ever.
    pub reconnect_max_retries: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatSettings {
    pub enabled: bool,
    pub interval: Duration,
    /// Must exceed the interval. Unset, it is 60 s or twice the interval, whichever is
    /// larger, so that raising only the interval (as the Java runtime's tuning examples do) stays
    /// valid.
    pub timeout: Duration,
    /// Whether `timeout` is sent at registration: when it was set, or raised above its
    /// default by a longer interval. Otherwise nothing is sent, so the engine's own
    /// `gamelan.engine.heartbeat.timeout` keeps applying.
    pub send_timeout: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSettings {
    pub queue_size: usize,
    pub dispatch_threads: usize,
    pub max_abandoned_threads: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ErrorSettings {
    pub max_retries: u32,
    pub backoff_initial: Duration,
    pub backoff_multiplier: f64,
    pub backoff_max: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultSettings {
    pub batch_size: usize,
    /// Default 0, not the 5000 ms of the Java runtime's tuning example: the reporter sends as soon
    /// as it is free, and results that arrive while a report is in flight form the next
    /// batch, so batches grow with load without delaying a lone result (a linger would also
    /// cap throughput, as the engine allows only `max_concurrent_tasks` unfinished tasks per
    /// executor).
    pub batch_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSettings {
    pub enabled: bool,
    pub export_interval: Duration,
    pub prometheus_enabled: bool,
}

/// How tasks arrive over gRPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GrpcDelivery {
    /// One bidirectional `ExecuteStream`: tasks, results, acks and heartbeats multiplexed.
    #[default]
    ExecuteStream,
    /// `StreamTasks` pull plus `ReportResults`.
    StreamTasks,
    /// The engine calls this executor's own `Executor.Execute` server at grpc.host:port.
    Push,
}

impl GrpcDelivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ExecuteStream => "execute-stream",
            Self::StreamTasks => "stream-tasks",
            Self::Push => "push",
        }
    }
}

impl FromStr for GrpcDelivery {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "execute-stream" => Ok(Self::ExecuteStream),
            "stream-tasks" | "stream" => Ok(Self::StreamTasks),
            "push" => Ok(Self::Push),
            _ => Err("one of execute-stream, stream-tasks, push".into()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcSettings {
    /// This executor's own server, used by push delivery.
    pub port: u16,
    /// An IP, or a host name resolved at start.
    pub host: String,
    /// The host the engine is told to dial (push delivery); unset: see `registration`.
    pub advertised_host: Option<String>,
    /// Unset: `engine.url`.
    pub engine_url: Option<Url>,
    pub delivery: GrpcDelivery,
    pub keep_alive_time: Duration,
    pub keep_alive_timeout: Duration,
    pub max_concurrent_streams: u32,
    pub flow_control_window: u32,
    pub max_message_size: usize,
    pub use_ssl: bool,
    /// Client identity for mTLS: both or neither.
    pub certificate_path: Option<PathBuf>,
    pub private_key_path: Option<PathBuf>,
    pub ca_certificate_path: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtSettings {
    pub secret: Option<Secret>,
    pub issuer: String,
    pub expiry: Duration,
    /// Unset: true when a secret or a static token is set.
    pub enabled: bool,
    /// `security.jwt.token`: a ready-made token sent as is, instead of signing one.
    pub token: Option<Secret>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// Health and metrics endpoint; 0 = any free port.
    pub port: u16,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            executor_name: None,
            executor_version: "1.0.0".into(),
            runtime: RuntimeSettings {
                enabled: true,
                executor_id: None,
                max_parallel_tasks: 50,
            },
            engine: EngineConnection {
                url: Url::parse("http://localhost:8080").expect("constant URL parses"),
                connect_timeout: Duration::from_secs(30),
                request_timeout: Duration::from_secs(300),
                reconnect_initial: Duration::from_secs(1),
                reconnect_max_delay: Duration::from_secs(30),
                reconnect_max_retries: None,
            },
            heartbeat: HeartbeatSettings {
                enabled: true,
                interval: Duration::from_secs(30),
                timeout: Duration::from_secs(60),
                send_timeout: false,
            },
            task: TaskSettings {
                queue_size: 1000,
                dispatch_threads: 10,
                max_abandoned_threads: 10,
            },
            error: ErrorSettings {
                max_retries: 3,
                backoff_initial: Duration::from_secs(1),
                backoff_multiplier: 2.0,
                backoff_max: Duration::from_secs(300),
            },
            result: ResultSettings {
                batch_size: 100,
                batch_timeout: Duration::ZERO,
            },
            metrics: MetricsSettings {
                enabled: true,
                export_interval: Duration::from_secs(60),
                prometheus_enabled: true,
            },
            transport: CommunicationType::Grpc,
            grpc: GrpcSettings {
                port: 9090,
                host: "0.0.0.0".into(),
                advertised_host: None,
                engine_url: None,
                delivery: GrpcDelivery::ExecuteStream,
                keep_alive_time: Duration::from_secs(30),
                keep_alive_timeout: Duration::from_secs(10),
                max_concurrent_streams: 1000,
                flow_control_window: 1024 * 1024,
                max_message_size: 4 * 1024 * 1024,
                use_ssl: false,
                certificate_path: None,
                private_key_path: None,
                ca_certificate_path: None,
            },
            kafka: KafkaSettings::default(),
            kafka_configured: false,
            jwt: JwtSettings {
                secret: None,
                issuer: "gamelan-executor".into(),
                expiry: Duration::from_secs(300),
                enabled: false,
                token: None,
            },
            http: HttpSettings { port: 8080 },
            log: LogSettings::default(),
        }
    }
}

config_type!(ExecutorConfig);

impl ExecutorConfig {
    /// The address gRPC connects to: `grpc.engine-url`, else `engine-url`.
    pub fn grpc_engine_url(&self) -> &Url {
        self.grpc.engine_url.as_ref().unwrap_or(&self.engine.url)
    }

    /// The retry schedule for technical failures (`error.*`).
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.error.max_retries,
            initial_delay: self.error.backoff_initial,
            multiplier: self.error.backoff_multiplier,
            max_delay: self.error.backoff_max,
            ..RetryPolicy::default()
        }
    }

    /// The result batching policy (`result.*`).
    pub fn batch_policy(&self) -> BatchPolicy {
        BatchPolicy {
            max_size: self.result.batch_size,
            max_age: self.result.batch_timeout,
        }
    }
}

const PREFIX: &str = "gamelan.executor.";

impl Show for GrpcDelivery {
    fn show(&self) -> Option<String> {
        Some(self.as_str().to_owned())
    }
}

/// An HTTP/2 flow-control window.
fn window(v: &str) -> Result<u32, String> {
    u32::try_from(value::size(v)?)
        .ok()
        .filter(|n| (65_535..=0x7fff_ffff).contains(n))
        .ok_or_else(|| "a window between 65535 and 2147483647 bytes (HTTP/2 limits)".to_owned())
}

/// `engine.reconnect.max-retries`: a count, or `unlimited` (also an empty value).
fn retry_limit(v: &str) -> Result<Option<u32>, String> {
    if v.is_empty() || v.eq_ignore_ascii_case("unlimited") {
        return Ok(None);
    }
    v.parse()
        .map(Some)
        .map_err(|_| format!("a whole number from 0 to {}, or unlimited", u32::MAX))
}

fn table() -> Table<ExecutorConfig> {
    use value::{boolean, optional, positive, positive_secs, text};
    Table::process(keys!(ExecutorConfig, PREFIX;
        "runtime.enabled" => runtime.enabled: boolean, "false loads the configuration and starts nothing (no connection, no HTTP port), whatever the entry point";
        "runtime.executor-id" => runtime.executor_id: optional(text), "runtime id; executor ids are `<runtime-id>-<type>`", default "`executor-name`, else `$HOSTNAME`";
        "runtime.max-parallel-tasks" => runtime.max_parallel_tasks: positive, "tasks executing at once, all types together";
        "engine.url" | "engine-url" => engine.url: value::http_url, "the engine (gRPC and REST on one port)";
        "engine.connect-timeout" => engine.connect_timeout: positive_secs, "connect timeout (bare numbers: seconds)";
        "engine.request-timeout" => engine.request_timeout: positive_secs, "request timeout, and the task timeout when a task has none (bare numbers: seconds)";
        "engine.reconnect.initial" => engine.reconnect_initial: value::positive_millis, "first wait before reconnecting to a lost engine; doubles on each failure (bare numbers: ms)";
        "engine.reconnect.max-delay" => engine.reconnect_max_delay: value::positive_millis, "cap on one reconnect wait (bare numbers: ms)";
        "engine.reconnect.max-retries" => engine.reconnect_max_retries: retry_limit, "failed reconnects in a row before giving up: the runtime stays FAILED, logs an ERROR and `/health/ready` answers 503 (liveness stays 200)", default "unlimited";
        "heartbeat.enabled" => heartbeat.enabled: boolean, "send heartbeats";
        "heartbeat.interval" | "heartbeat.interval-seconds" => heartbeat.interval: positive_secs, "heartbeat period (bare numbers: seconds)";
        "heartbeat.timeout" | "heartbeat.timeout-seconds" => heartbeat.timeout: positive_secs, "when set (or raised by a longer interval), sent at registration: the engine declares this executor dead after this long without a heartbeat instead of after its own `heartbeat.timeout`; must exceed the interval (bare numbers: seconds)", default "60s or 2x interval";
        "task.queue-size" | "queue-size" => task.queue_size: positive, "tasks admitted and waiting; full = backpressure, never a drop";
        "task.dispatch-threads" | "thread-pool-size" => task.dispatch_threads: positive, "worker threads";
        "task.max-abandoned-threads" => task.max_abandoned_threads: value::number, "per executor type: threads stuck in a blocking executor past their TIMEOUT that get a replacement worker; beyond it none, and the type shows `\"healthy\": false` in `/health`";
        "error.max-retries" => error.max_retries: value::number, "retries of a technical failure (0: none)";
        "error.backoff-initial" => error.backoff_initial: value::millis, "first retry delay (bare numbers: ms)";
        "error.backoff-multiplier" => error.backoff_multiplier: value::multiplier, "delay growth (>= 1)";
        "error.backoff-max" => error.backoff_max: value::millis, "cap on one delay (bare numbers: ms)";
        "result.batch-size" => result.batch_size: positive, "results per report";
        "result.batch-timeout" => result.batch_timeout: value::millis, "longest a result waits for others to join its batch (0: send when the reporter is free; batches still form under load; bare numbers: ms)";
        "metrics.enabled" => metrics.enabled: boolean, "collect metrics";
        "metrics.export-interval" => metrics.export_interval: positive_secs, "no effect: `/metrics` is scraped (pull), so the scraper's interval applies; setting it logs a warning at start (bare numbers: seconds)";
        "quarkus.micrometer.export.prometheus.enabled" => metrics.prometheus_enabled: boolean, "serve `/metrics` (false: 404 naming this key; health endpoints stay)";
        "executor-name" env "GAMELAN_EXECUTOR_NAME" => executor_name: optional(text), "service name, put in tokens";
        "executor-version" => executor_version: text, "sent at registration";
        "transport" => transport: value::transport, "grpc, kafka, rest or local";
        "grpc.port" => grpc.port: value::port, "push-delivery server port";
        "grpc.host" => grpc.host: text, "push-delivery server address (an IP, or a host name resolved at start)";
        "grpc.advertised-host" => grpc.advertised_host: optional(text), "the host the engine dials for push delivery", default "the bound IP; for 0.0.0.0 `$HOSTNAME`, else 127.0.0.1";
        "grpc.engine-url" => grpc.engine_url: optional(value::http_url), "the engine's gRPC address if different", default "`engine-url`";
        "grpc.delivery" => grpc.delivery: str::parse, "execute-stream, stream-tasks or push";
        "grpc.keep-alive-time-seconds" => grpc.keep_alive_time: positive_secs, "HTTP/2 ping interval";
        "grpc.keep-alive-timeout-seconds" => grpc.keep_alive_timeout: positive_secs, "how long a ping may go unanswered";
        "grpc.max-concurrent-streams" => grpc.max_concurrent_streams: positive, "streams per connection (push server)";
        "grpc.flow-control-window" => grpc.flow_control_window: window, "HTTP/2 window in bytes (65535 to 2147483647)";
        "grpc.max-message-size" => grpc.max_message_size: value::memory_size, "larger messages are refused with a status (bytes, or e.g. 4MiB)";
        "grpc.use-ssl" => grpc.use_ssl: boolean, "TLS to the engine, and on the push server";
        "grpc.certificate-path" => grpc.certificate_path: optional(value::path), "client certificate for mTLS (with the private key); the push server's certificate";
        "grpc.private-key-path" => grpc.private_key_path: optional(value::path), "client private key for mTLS (with the certificate); the push server's key";
        "grpc.ca-certificate-path" => grpc.ca_certificate_path: optional(value::path), "trust root for the engine; makes the push server require engine certificates signed by it";
        "jwt.secret" => jwt.secret: optional(value::secret), "HS256 key; enables signed tokens, and the push server's check of the engine's";
        "jwt.issuer" => jwt.issuer: text, "`iss` claim";
        "jwt.expiry" => jwt.expiry: positive_secs, "token lifetime, refreshed before expiry (bare numbers: seconds)";
        "jwt.enabled" => jwt.enabled: boolean, "send a token with every call", default "true when a secret or token is set";
        "security.jwt.token" => jwt.token: optional(value::secret), "a static token sent instead of signing one";
        "http.port" | "quarkus.http.port" => http.port: value::port, "health and metrics port (0 = any free)";
    ))
}

static TABLE: LazyLock<Table<ExecutorConfig>> = LazyLock::new(table);

impl Schema for ExecutorConfig {
    const PREFIX: &'static str = PREFIX;
    const ENV_PREFIX: &'static str = "GAMELAN_EXECUTOR_";
    const FOREIGN: &'static [&'static str] = &["gamelan.engine."];

    fn table() -> &'static Table<Self> {
        &TABLE
    }

    fn finish(&mut self, explicit: &dyn Fn(&str) -> bool) {
        self.kafka_configured = explicit("gamelan.executor.kafka.bootstrap-servers");
        let timeout_given = explicit("gamelan.executor.heartbeat.timeout");
        if !timeout_given {
            self.heartbeat.timeout = self.heartbeat.timeout.max(self.heartbeat.interval * 2);
        }
        self.heartbeat.send_timeout =
            timeout_given || self.heartbeat.timeout != Self::default().heartbeat.timeout;
        if !explicit("gamelan.executor.jwt.enabled") {
            self.jwt.enabled = self.jwt.secret.is_some() || self.jwt.token.is_some();
        }
    }

    fn validate(&self, check: &mut Checker<'_>) {
        let hb = &self.heartbeat;
        if hb.timeout <= hb.interval {
            check.fail(
                "gamelan.executor.heartbeat.timeout",
                show_duration(hb.timeout),
                format!(
                    "a timeout greater than heartbeat.interval ({}), or the engine declares the executor dead between two heartbeats",
                    show_duration(hb.interval)
                ),
            );
        }
        let error = &self.error;
        check.backoff(PREFIX, "error", error.backoff_initial, error.backoff_max);
        let engine = &self.engine;
        if engine.reconnect_max_delay < engine.reconnect_initial {
            check.fail(
                "gamelan.executor.engine.reconnect.max-delay",
                show_duration(engine.reconnect_max_delay),
                format!(
                    "at least engine.reconnect.initial ({})",
                    show_duration(engine.reconnect_initial)
                ),
            );
        }
        if check.is_explicit("gamelan.executor.metrics.export-interval") {
            check.warn(
                "gamelan.executor.metrics.export-interval",
                "has no effect: metrics are pulled from /metrics, so the scraper's own interval \
                 (Prometheus scrape_interval) decides how often they are read",
            );
        }
        if self.jwt.enabled && self.jwt.secret.is_none() && self.jwt.token.is_none() {
            check.fail(
                "gamelan.executor.jwt.enabled",
                "true",
                "gamelan.executor.jwt.secret (or security.jwt.token) to be set when JWT is enabled",
            );
        }
        match (&self.grpc.certificate_path, &self.grpc.private_key_path) {
            (Some(_), None) => check.fail(
                "gamelan.executor.grpc.private-key-path",
                "(not set)",
                "a private key path: grpc.certificate-path is set and mTLS needs both",
            ),
            (None, Some(_)) => check.fail(
                "gamelan.executor.grpc.certificate-path",
                "(not set)",
                "a certificate path: grpc.private-key-path is set and mTLS needs both",
            ),
            _ => {}
        }
    }
}
