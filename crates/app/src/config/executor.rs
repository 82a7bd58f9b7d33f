//! `gamelan.executor.*`: the configuration of an executor process.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use gamelan_domain::{BatchPolicy, CommunicationType, RetryPolicy};
use url::Url;

use super::error::{ConfigError, Warning};
use super::kafka::{self, HasKafka, KafkaSettings};
use super::load::{self, Loaded, Sources};
use super::logging::{self, HasLog, LogSettings};
use super::schema::{Checker, Key, Schema, Table};
use super::secret::Secret;
use super::value::{self, Unit, show_duration, show_path};

/// Everything an executor process reads from `gamelan.executor.*` (plus the few `quarkus.*`
/// keys the seeds use). Both spellings the seeds use for a setting land in one field.
/// Defaults are the seeds' values where the seeds give one.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutorConfig {
    /// `executor-name` (env also `GAMELAN_EXECUTOR_NAME`): the service name sent with
    /// registrations and put into tokens.
    pub executor_name: Option<String>,
    /// `executor-version` (default `1.0.0`).
    pub executor_version: String,
    pub runtime: RuntimeSettings,
    pub engine: EngineConnection,
    pub heartbeat: HeartbeatSettings,
    pub task: TaskSettings,
    pub error: ErrorSettings,
    pub result: ResultSettings,
    pub metrics: MetricsSettings,
    /// `transport`: grpc (default), kafka, rest or local.
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
    /// `runtime.enabled` (default true): false loads the configuration but starts nothing.
    pub enabled: bool,
    /// `runtime.executor-id`; unset: generated at start.
    pub executor_id: Option<String>,
    /// `runtime.max-parallel-tasks` (default 50): tasks executing at once across all types.
    pub max_parallel_tasks: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConnection {
    /// `engine.url` / `engine-url` (default `http://localhost:8080`).
    pub url: Url,
    /// `engine.connect-timeout`, bare numbers in seconds (default 30 s).
    pub connect_timeout: Duration,
    /// `engine.request-timeout`, bare numbers in seconds (default 300 s).
    pub request_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatSettings {
    /// `heartbeat.enabled` (default true).
    pub enabled: bool,
    /// `heartbeat.interval` / `heartbeat.interval-seconds` (default 30 s).
    pub interval: Duration,
    /// `heartbeat.timeout` / `heartbeat.timeout-seconds`: must exceed the interval. Unset,
    /// it is 60 s or twice the interval, whichever is larger, so that raising only the
    /// interval (as the seeds' tuning examples do) stays valid.
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSettings {
    /// `task.queue-size` / `queue-size` (default 1000): tasks waiting for a worker; a full
    /// queue is backpressure, never a drop.
    pub queue_size: usize,
    /// `task.dispatch-threads` / `thread-pool-size` (default 10): worker threads.
    pub dispatch_threads: usize,
    /// `task.max-abandoned-threads` (default 10): per executor type, threads stuck past a
    /// TIMEOUT that get a replacement worker; beyond it the type is reported unhealthy.
    pub max_abandoned_threads: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ErrorSettings {
    /// `error.max-retries` (default 3): retries of a technical failure; 0 disables them.
    pub max_retries: u32,
    /// `error.backoff-initial`, bare numbers in milliseconds (default 1000 ms).
    pub backoff_initial: Duration,
    /// `error.backoff-multiplier` (default 2, at least 1).
    pub backoff_multiplier: f64,
    /// `error.backoff-max`, bare numbers in milliseconds (default 5 min): cap on one delay.
    pub backoff_max: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultSettings {
    /// `result.batch-size` (default 100): results reported in one call.
    pub batch_size: usize,
    /// `result.batch-timeout`, bare numbers in milliseconds: how long a result may wait for
    /// others to join its batch. Default 0, not the 5000 of the seed's tuning example: the
    /// reporter sends as soon as it is free, and results that arrive while a report is in
    /// flight form the next batch, so batches grow with load without delaying a lone result
    /// (a linger would also cap throughput, as the engine allows only
    /// `max_concurrent_tasks` unfinished tasks per executor).
    pub batch_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSettings {
    /// `metrics.enabled` (default true).
    pub enabled: bool,
    /// `metrics.export-interval`, bare numbers in seconds (default 60 s).
    pub export_interval: Duration,
    /// `quarkus.micrometer.export.prometheus.enabled` (default true): serve `/metrics`.
    pub prometheus_enabled: bool,
}

/// How tasks arrive over gRPC (DESIGN.md section 4).
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
    /// `grpc.port` (default 9090): this executor's server, used by push delivery.
    pub port: u16,
    /// `grpc.host` (default `0.0.0.0`).
    pub host: String,
    /// `grpc.engine-url`: the engine's gRPC address when it differs from `engine-url`.
    pub engine_url: Option<Url>,
    /// `grpc.delivery` (default execute-stream).
    pub delivery: GrpcDelivery,
    /// `grpc.keep-alive-time-seconds` (default 30 s): HTTP/2 ping interval.
    pub keep_alive_time: Duration,
    /// `grpc.keep-alive-timeout-seconds` (default 10 s): how long a ping may go unanswered.
    pub keep_alive_timeout: Duration,
    /// `grpc.max-concurrent-streams` (default 1000).
    pub max_concurrent_streams: u32,
    /// `grpc.flow-control-window` in bytes (default 1 MiB; HTTP/2 allows 65535..2^31-1).
    pub flow_control_window: u32,
    /// `grpc.max-message-size` in bytes or with a unit (default 4 MiB).
    pub max_message_size: usize,
    /// `grpc.use-ssl` (default false).
    pub use_ssl: bool,
    /// `grpc.certificate-path` / `grpc.private-key-path`: client identity for mTLS (both or
    /// neither).
    pub certificate_path: Option<PathBuf>,
    pub private_key_path: Option<PathBuf>,
    /// `grpc.ca-certificate-path`: trust root for the engine's certificate.
    pub ca_certificate_path: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtSettings {
    /// `jwt.secret`: HMAC key for the tokens this executor signs.
    pub secret: Option<Secret>,
    /// `jwt.issuer` (default `gamelan-executor`).
    pub issuer: String,
    /// `jwt.expiry`, bare numbers in seconds (default 5 min): lifetime of a signed token.
    pub expiry: Duration,
    /// `jwt.enabled`: defaults to true when a secret or a static token is set.
    pub enabled: bool,
    /// `security.jwt.token`: a ready-made token sent as is, instead of signing one.
    pub token: Option<Secret>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// `http.port` / `quarkus.http.port` (default 8080; 0 = any free port): health and
    /// metrics endpoint.
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
            },
            heartbeat: HeartbeatSettings {
                enabled: true,
                interval: Duration::from_secs(30),
                timeout: Duration::from_secs(60),
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

impl ExecutorConfig {
    /// Loads `files` (later ones override earlier ones) and `env` (over the files), then
    /// validates. The error lists every problem found.
    pub fn load(
        files: &[PathBuf],
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Self, Vec<Warning>), ConfigError> {
        let loaded = Self::load_sources(&Sources::new().files(files).env(env))?;
        Ok((loaded.config, loaded.warnings))
    }

    /// Like [`ExecutorConfig::load`], with `--set` overrides and the effective values and
    /// their origins for display.
    pub fn load_sources(sources: &Sources) -> Result<Loaded<Self>, ConfigError> {
        load::load(sources)
    }

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

    /// An `env_logger` filter built from the configured levels.
    pub fn log_filter(&self) -> String {
        self.log.filter_spec("gamelan.executor")
    }
}

impl HasKafka for ExecutorConfig {
    fn kafka(&self) -> &KafkaSettings {
        &self.kafka
    }
    fn kafka_mut(&mut self) -> &mut KafkaSettings {
        &mut self.kafka
    }
}

impl HasLog for ExecutorConfig {
    fn log(&self) -> &LogSettings {
        &self.log
    }
    fn log_mut(&mut self) -> &mut LogSettings {
        &mut self.log
    }
}

const PREFIX: &str = "gamelan.executor.";

fn p(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| format!("{PREFIX}{n}")).collect()
}

/// A URL as printed: without any password it may carry.
fn show_url(u: &Url) -> String {
    let mut u = u.clone();
    if u.password().is_some() {
        let _ = u.set_password(Some(super::secret::MASK));
    }
    u.to_string()
}

type K = Key<ExecutorConfig>;

fn table() -> Table<ExecutorConfig> {
    let mut keys: Vec<K> = vec![
        // runtime.*
        K::new(
            p(&["runtime.enabled"]),
            |c, v| {
                c.runtime.enabled = value::boolean(v)?;
                Ok(())
            },
            |c| Some(c.runtime.enabled.to_string()),
        ),
        K::new(
            p(&["runtime.executor-id"]),
            |c, v| {
                c.runtime.executor_id = value::optional_text(v);
                Ok(())
            },
            |c| c.runtime.executor_id.clone(),
        ),
        K::new(
            p(&["runtime.max-parallel-tasks"]),
            |c, v| {
                c.runtime.max_parallel_tasks = value::positive(v)?;
                Ok(())
            },
            |c| Some(c.runtime.max_parallel_tasks.to_string()),
        ),
        // engine.*
        K::new(
            p(&["engine.url", "engine-url"]),
            |c, v| {
                c.engine.url = value::http_url(v)?;
                Ok(())
            },
            |c| Some(show_url(&c.engine.url)),
        ),
        K::new(
            p(&["engine.connect-timeout"]),
            |c, v| {
                c.engine.connect_timeout = value::positive_duration(v, Unit::Seconds)?;
                Ok(())
            },
            |c| Some(show_duration(c.engine.connect_timeout)),
        ),
        K::new(
            p(&["engine.request-timeout"]),
            |c, v| {
                c.engine.request_timeout = value::positive_duration(v, Unit::Seconds)?;
                Ok(())
            },
            |c| Some(show_duration(c.engine.request_timeout)),
        ),
        // heartbeat.*
        K::new(
            p(&["heartbeat.enabled"]),
            |c, v| {
                c.heartbeat.enabled = value::boolean(v)?;
                Ok(())
            },
            |c| Some(c.heartbeat.enabled.to_string()),
        ),
        K::new(
            p(&["heartbeat.interval", "heartbeat.interval-seconds"]),
            |c, v| {
                c.heartbeat.interval = value::positive_duration(v, Unit::Seconds)?;
                Ok(())
            },
            |c| Some(show_duration(c.heartbeat.interval)),
        ),
        K::new(
            p(&["heartbeat.timeout", "heartbeat.timeout-seconds"]),
            |c, v| {
                c.heartbeat.timeout = value::positive_duration(v, Unit::Seconds)?;
                Ok(())
            },
            |c| Some(show_duration(c.heartbeat.timeout)),
        ),
        // task.*
        K::new(
            p(&["task.queue-size", "queue-size"]),
            |c, v| {
                c.task.queue_size = value::positive(v)?;
                Ok(())
            },
            |c| Some(c.task.queue_size.to_string()),
        ),
        K::new(
            p(&["task.dispatch-threads", "thread-pool-size"]),
            |c, v| {
                c.task.dispatch_threads = value::positive(v)?;
                Ok(())
            },
            |c| Some(c.task.dispatch_threads.to_string()),
        ),
        K::new(
            p(&["task.max-abandoned-threads"]),
            |c, v| {
                c.task.max_abandoned_threads = value::number(v)?;
                Ok(())
            },
            |c| Some(c.task.max_abandoned_threads.to_string()),
        ),
        // error.*
        K::new(
            p(&["error.max-retries"]),
            |c, v| {
                c.error.max_retries = value::number(v)?;
                Ok(())
            },
            |c| Some(c.error.max_retries.to_string()),
        ),
        K::new(
            p(&["error.backoff-initial"]),
            |c, v| {
                c.error.backoff_initial = value::duration(v, Unit::Millis)?;
                Ok(())
            },
            |c| Some(show_duration(c.error.backoff_initial)),
        ),
        K::new(
            p(&["error.backoff-multiplier"]),
            |c, v| {
                c.error.backoff_multiplier = value::multiplier(v)?;
                Ok(())
            },
            |c| Some(c.error.backoff_multiplier.to_string()),
        ),
        K::new(
            p(&["error.backoff-max"]),
            |c, v| {
                c.error.backoff_max = value::duration(v, Unit::Millis)?;
                Ok(())
            },
            |c| Some(show_duration(c.error.backoff_max)),
        ),
        // result.*
        K::new(
            p(&["result.batch-size"]),
            |c, v| {
                c.result.batch_size = value::positive(v)?;
                Ok(())
            },
            |c| Some(c.result.batch_size.to_string()),
        ),
        K::new(
            p(&["result.batch-timeout"]),
            |c, v| {
                c.result.batch_timeout = value::duration(v, Unit::Millis)?;
                Ok(())
            },
            |c| Some(show_duration(c.result.batch_timeout)),
        ),
        // metrics.*
        K::new(
            p(&["metrics.enabled"]),
            |c, v| {
                c.metrics.enabled = value::boolean(v)?;
                Ok(())
            },
            |c| Some(c.metrics.enabled.to_string()),
        ),
        K::new(
            p(&["metrics.export-interval"]),
            |c, v| {
                c.metrics.export_interval = value::positive_duration(v, Unit::Seconds)?;
                Ok(())
            },
            |c| Some(show_duration(c.metrics.export_interval)),
        ),
        K::new(
            ["quarkus.micrometer.export.prometheus.enabled".to_owned()],
            |c, v| {
                c.metrics.prometheus_enabled = value::boolean(v)?;
                Ok(())
            },
            |c| Some(c.metrics.prometheus_enabled.to_string()),
        ),
        // identity
        K::new(
            p(&["executor-name"]),
            |c, v| {
                c.executor_name = value::optional_text(v);
                Ok(())
            },
            |c| c.executor_name.clone(),
        )
        .env_alias("GAMELAN_EXECUTOR_NAME"),
        K::new(
            p(&["executor-version"]),
            |c, v| {
                c.executor_version = value::text(v)?;
                Ok(())
            },
            |c| Some(c.executor_version.clone()),
        ),
        K::new(
            p(&["transport"]),
            |c, v| {
                c.transport = CommunicationType::from_str(v)
                    .map_err(|_| "one of grpc, kafka, rest, local".to_owned())?;
                Ok(())
            },
            |c| Some(c.transport.as_str().to_ascii_lowercase()),
        ),
        // grpc.*
        K::new(
            p(&["grpc.port"]),
            |c, v| {
                c.grpc.port = value::port(v)?;
                Ok(())
            },
            |c| Some(c.grpc.port.to_string()),
        ),
        K::new(
            p(&["grpc.host"]),
            |c, v| {
                c.grpc.host = value::text(v)?;
                Ok(())
            },
            |c| Some(c.grpc.host.clone()),
        ),
        K::new(
            p(&["grpc.engine-url"]),
            |c, v| {
                c.grpc.engine_url = if v.is_empty() {
                    None
                } else {
                    Some(value::http_url(v)?)
                };
                Ok(())
            },
            |c| c.grpc.engine_url.as_ref().map(show_url),
        ),
        K::new(
            p(&["grpc.delivery"]),
            |c, v| {
                c.grpc.delivery = v.parse()?;
                Ok(())
            },
            |c| Some(c.grpc.delivery.as_str().to_owned()),
        ),
        K::new(
            p(&["grpc.keep-alive-time-seconds"]),
            |c, v| {
                c.grpc.keep_alive_time = value::positive_duration(v, Unit::Seconds)?;
                Ok(())
            },
            |c| Some(show_duration(c.grpc.keep_alive_time)),
        ),
        K::new(
            p(&["grpc.keep-alive-timeout-seconds"]),
            |c, v| {
                c.grpc.keep_alive_timeout = value::positive_duration(v, Unit::Seconds)?;
                Ok(())
            },
            |c| Some(show_duration(c.grpc.keep_alive_timeout)),
        ),
        K::new(
            p(&["grpc.max-concurrent-streams"]),
            |c, v| {
                c.grpc.max_concurrent_streams = value::positive(v)?;
                Ok(())
            },
            |c| Some(c.grpc.max_concurrent_streams.to_string()),
        ),
        K::new(
            p(&["grpc.flow-control-window"]),
            |c, v| {
                let n = value::size(v)?;
                c.grpc.flow_control_window = u32::try_from(n)
                    .ok()
                    .filter(|n| (65_535..=0x7fff_ffff).contains(n))
                    .ok_or("a window between 65535 and 2147483647 bytes (HTTP/2 limits)")?;
                Ok(())
            },
            |c| Some(c.grpc.flow_control_window.to_string()),
        ),
        K::new(
            p(&["grpc.max-message-size"]),
            |c, v| {
                c.grpc.max_message_size = usize::try_from(value::size(v)?)
                    .map_err(|_| "a size that fits in memory".to_owned())?;
                Ok(())
            },
            |c| Some(c.grpc.max_message_size.to_string()),
        ),
        K::new(
            p(&["grpc.use-ssl"]),
            |c, v| {
                c.grpc.use_ssl = value::boolean(v)?;
                Ok(())
            },
            |c| Some(c.grpc.use_ssl.to_string()),
        ),
        K::new(
            p(&["grpc.certificate-path"]),
            |c, v| {
                c.grpc.certificate_path = value::optional_path(v);
                Ok(())
            },
            |c| show_path(c.grpc.certificate_path.as_ref()),
        ),
        K::new(
            p(&["grpc.private-key-path"]),
            |c, v| {
                c.grpc.private_key_path = value::optional_path(v);
                Ok(())
            },
            |c| show_path(c.grpc.private_key_path.as_ref()),
        ),
        K::new(
            p(&["grpc.ca-certificate-path"]),
            |c, v| {
                c.grpc.ca_certificate_path = value::optional_path(v);
                Ok(())
            },
            |c| show_path(c.grpc.ca_certificate_path.as_ref()),
        ),
        // jwt.*
        K::new(
            p(&["jwt.secret"]),
            |c, v| {
                c.jwt.secret = value::optional_text(v).map(Secret::new);
                Ok(())
            },
            |c| c.jwt.secret.as_ref().map(ToString::to_string),
        ),
        K::new(
            p(&["jwt.issuer"]),
            |c, v| {
                c.jwt.issuer = value::text(v)?;
                Ok(())
            },
            |c| Some(c.jwt.issuer.clone()),
        ),
        K::new(
            p(&["jwt.expiry"]),
            |c, v| {
                c.jwt.expiry = value::positive_duration(v, Unit::Seconds)?;
                Ok(())
            },
            |c| Some(show_duration(c.jwt.expiry)),
        ),
        K::new(
            p(&["jwt.enabled"]),
            |c, v| {
                c.jwt.enabled = value::boolean(v)?;
                Ok(())
            },
            |c| Some(c.jwt.enabled.to_string()),
        ),
        K::new(
            p(&["security.jwt.token"]),
            |c, v| {
                c.jwt.token = value::optional_text(v).map(Secret::new);
                Ok(())
            },
            |c| c.jwt.token.as_ref().map(ToString::to_string),
        ),
        // http
        K::new(
            [format!("{PREFIX}http.port"), "quarkus.http.port".to_owned()],
            |c, v| {
                c.http.port = value::port(v)?;
                Ok(())
            },
            |c| Some(c.http.port.to_string()),
        ),
    ];
    keys.extend(kafka::keys(PREFIX));
    keys.extend(logging::keys(PREFIX));
    Table::new(
        keys,
        vec![
            kafka::pass_through(PREFIX, "GAMELAN_EXECUTOR_"),
            logging::categories(),
        ],
    )
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
        if !explicit("gamelan.executor.heartbeat.timeout") {
            self.heartbeat.timeout = self.heartbeat.timeout.max(self.heartbeat.interval * 2);
        }
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
        if self.error.backoff_max < self.error.backoff_initial {
            check.fail(
                "gamelan.executor.error.backoff-max",
                show_duration(self.error.backoff_max),
                format!(
                    "at least error.backoff-initial ({})",
                    show_duration(self.error.backoff_initial)
                ),
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
