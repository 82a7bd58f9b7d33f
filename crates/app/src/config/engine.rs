//! `gamelan.engine.*`: the configuration of the reference engine process.

use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use gamelan_domain::RetryPolicy;

use super::error::{ConfigError, Warning};
use super::kafka::{self, HasKafka, KafkaSettings};
use super::load::{self, Loaded, Sources};
use super::logging::{self, HasLog, LogSettings};
use super::schema::{Checker, Key, Schema, Table};
use super::secret::Secret;
use super::value::{self, Unit, show_duration, show_path};

/// Everything `gamelan engine` reads from `gamelan.engine.*`.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// `host` (default `0.0.0.0`): address every listener binds.
    pub host: String,
    /// `port` (default 8080; 0 = any free port): the main listener (REST API, health,
    /// metrics).
    pub port: u16,
    /// `grpc.port`: an additional, separate gRPC listener.
    pub grpc_port: Option<u16>,
    /// TLS on the separate gRPC listener (`grpc.use-ssl`, `grpc.certificate-path`,
    /// `grpc.private-key-path`; `grpc.ca-certificate-path` makes it mutual TLS: clients
    /// must present a certificate signed by that CA). The main port stays plain, for probes.
    pub grpc_tls: EngineGrpcTls,
    /// `heartbeat.timeout` (default 60 s): an executor silent this long is dead and its
    /// in-flight tasks go back to the queue.
    pub heartbeat_timeout: Duration,
    /// `ack-timeout` (default 300 s): a dispatched task without a result after this long is
    /// dispatched again.
    pub ack_timeout: Duration,
    pub jwt: EngineJwt,
    /// `data-dir` (default `./gamelan-data`): where the task store lives.
    pub data_dir: PathBuf,
    /// `ephemeral` (default false): keep everything in memory, nothing on disk.
    pub ephemeral: bool,
    /// `max-body-size` (default 4 MiB): largest accepted request body or message.
    pub max_body_size: u64,
    pub retry: EngineRetry,
    /// `max-long-polls` (default 256): REST long polls waiting at once; more are answered
    /// immediately with no tasks.
    pub max_long_polls: usize,
    /// `max-long-poll-wait`, bare numbers in milliseconds (default 30 s): the longest a REST
    /// long poll (`waitMs`) or completion feed call waits; longer requests wait this long.
    pub max_long_poll_wait: Duration,
    /// `results.retention` (default 1 h): how long a finished task stays queryable and
    /// de-duplicates resent results; then it is forgotten, in memory and on disk.
    pub results_retention: Duration,
    /// `results.max-retained` (default 100000): finished tasks kept at most; the oldest
    /// go first.
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
    /// `jwt.secret`: HMAC key executors' tokens must be signed with.
    pub secret: Option<Secret>,
    /// `jwt.issuer` (default `gamelan-executor`, what executors sign with by default).
    pub issuer: String,
    /// `jwt.enabled`: defaults to true when a secret is set; then every executor call needs
    /// a valid token.
    pub enabled: bool,
}

/// Engine-side retries of tasks whose result was a technical failure.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineRetry {
    /// `retry.max-attempts` (default 3): re-dispatches after the first attempt.
    pub max_attempts: u32,
    /// `retry.backoff-initial`, bare numbers in milliseconds (default 1000 ms).
    pub backoff_initial: Duration,
    /// `retry.backoff-multiplier` (default 2, at least 1).
    pub backoff_multiplier: f64,
    /// `retry.backoff-max`, bare numbers in milliseconds (default 5 min).
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

impl EngineConfig {
    /// Loads `files` (later ones override earlier ones) and `env` (over the files), then
    /// validates. The error lists every problem found.
    pub fn load(
        files: &[PathBuf],
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Self, Vec<Warning>), ConfigError> {
        let loaded = Self::load_sources(&Sources::new().files(files).env(env))?;
        Ok((loaded.config, loaded.warnings))
    }

    /// Like [`EngineConfig::load`], with `--set` overrides and the effective values and
    /// their origins for display.
    pub fn load_sources(sources: &Sources) -> Result<Loaded<Self>, ConfigError> {
        load::load(sources)
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.retry.max_attempts,
            initial_delay: self.retry.backoff_initial,
            multiplier: self.retry.backoff_multiplier,
            max_delay: self.retry.backoff_max,
            ..RetryPolicy::default()
        }
    }

    /// An `env_logger` filter built from the configured levels.
    pub fn log_filter(&self) -> String {
        self.log.filter_spec("gamelan.engine")
    }
}

impl HasKafka for EngineConfig {
    fn kafka(&self) -> &KafkaSettings {
        &self.kafka
    }
    fn kafka_mut(&mut self) -> &mut KafkaSettings {
        &mut self.kafka
    }
}

impl HasLog for EngineConfig {
    fn log(&self) -> &LogSettings {
        &self.log
    }
    fn log_mut(&mut self) -> &mut LogSettings {
        &mut self.log
    }
}

const PREFIX: &str = "gamelan.engine.";

fn p(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| format!("{PREFIX}{n}")).collect()
}

type K = Key<EngineConfig>;

fn table() -> Table<EngineConfig> {
    let mut keys: Vec<K> = vec![
        K::new(
            p(&["host"]),
            |c, v| {
                c.host = value::text(v)?;
                Ok(())
            },
            |c| Some(c.host.clone()),
        ),
        K::new(
            p(&["port"]),
            |c, v| {
                c.port = value::port(v)?;
                Ok(())
            },
            |c| Some(c.port.to_string()),
        ),
        K::new(
            p(&["grpc.port"]),
            |c, v| {
                c.grpc_port = if v.is_empty() {
                    None
                } else {
                    Some(value::port(v)?)
                };
                Ok(())
            },
            |c| c.grpc_port.map(|p| p.to_string()),
        ),
        K::new(
            p(&["grpc.use-ssl"]),
            |c, v| {
                c.grpc_tls.use_ssl = value::boolean(v)?;
                Ok(())
            },
            |c| Some(c.grpc_tls.use_ssl.to_string()),
        ),
        K::new(
            p(&["grpc.certificate-path"]),
            |c, v| {
                c.grpc_tls.certificate_path = value::optional_path(v);
                Ok(())
            },
            |c| show_path(c.grpc_tls.certificate_path.as_ref()),
        ),
        K::new(
            p(&["grpc.private-key-path"]),
            |c, v| {
                c.grpc_tls.private_key_path = value::optional_path(v);
                Ok(())
            },
            |c| show_path(c.grpc_tls.private_key_path.as_ref()),
        ),
        K::new(
            p(&["grpc.ca-certificate-path"]),
            |c, v| {
                c.grpc_tls.ca_certificate_path = value::optional_path(v);
                Ok(())
            },
            |c| show_path(c.grpc_tls.ca_certificate_path.as_ref()),
        ),
        K::new(
            p(&["heartbeat.timeout", "heartbeat.timeout-seconds"]),
            |c, v| {
                c.heartbeat_timeout = value::positive_duration(v, Unit::Seconds)?;
                Ok(())
            },
            |c| Some(show_duration(c.heartbeat_timeout)),
        ),
        K::new(
            p(&["ack-timeout"]),
            |c, v| {
                c.ack_timeout = value::positive_duration(v, Unit::Seconds)?;
                Ok(())
            },
            |c| Some(show_duration(c.ack_timeout)),
        ),
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
            p(&["jwt.enabled"]),
            |c, v| {
                c.jwt.enabled = value::boolean(v)?;
                Ok(())
            },
            |c| Some(c.jwt.enabled.to_string()),
        ),
        K::new(
            p(&["data-dir"]),
            |c, v| {
                c.data_dir = PathBuf::from(value::text(v)?);
                Ok(())
            },
            |c| Some(c.data_dir.display().to_string()),
        ),
        K::new(
            p(&["ephemeral"]),
            |c, v| {
                c.ephemeral = value::boolean(v)?;
                Ok(())
            },
            |c| Some(c.ephemeral.to_string()),
        ),
        K::new(
            p(&["max-body-size"]),
            |c, v| {
                c.max_body_size = value::size(v)?;
                Ok(())
            },
            |c| Some(c.max_body_size.to_string()),
        ),
        K::new(
            p(&["retry.max-attempts"]),
            |c, v| {
                c.retry.max_attempts = value::number(v)?;
                Ok(())
            },
            |c| Some(c.retry.max_attempts.to_string()),
        ),
        K::new(
            p(&["retry.backoff-initial"]),
            |c, v| {
                c.retry.backoff_initial = value::duration(v, Unit::Millis)?;
                Ok(())
            },
            |c| Some(show_duration(c.retry.backoff_initial)),
        ),
        K::new(
            p(&["retry.backoff-multiplier"]),
            |c, v| {
                c.retry.backoff_multiplier = value::multiplier(v)?;
                Ok(())
            },
            |c| Some(c.retry.backoff_multiplier.to_string()),
        ),
        K::new(
            p(&["retry.backoff-max"]),
            |c, v| {
                c.retry.backoff_max = value::duration(v, Unit::Millis)?;
                Ok(())
            },
            |c| Some(show_duration(c.retry.backoff_max)),
        ),
        K::new(
            p(&["max-long-polls"]),
            |c, v| {
                c.max_long_polls = value::positive(v)?;
                Ok(())
            },
            |c| Some(c.max_long_polls.to_string()),
        ),
        K::new(
            p(&["max-long-poll-wait"]),
            |c, v| {
                c.max_long_poll_wait = value::positive_duration(v, Unit::Millis)?;
                Ok(())
            },
            |c| Some(show_duration(c.max_long_poll_wait)),
        ),
        K::new(
            p(&["results.retention"]),
            |c, v| {
                c.results_retention = value::positive_duration(v, Unit::Seconds)?;
                Ok(())
            },
            |c| Some(show_duration(c.results_retention)),
        ),
        K::new(
            p(&["results.max-retained"]),
            |c, v| {
                c.results_max_retained = value::positive(v)?;
                Ok(())
            },
            |c| Some(c.results_max_retained.to_string()),
        ),
    ];
    keys.extend(kafka::keys(PREFIX));
    keys.extend(logging::keys(PREFIX));
    Table::new(
        keys,
        vec![
            kafka::pass_through(PREFIX, "GAMELAN_ENGINE_"),
            logging::categories(),
        ],
    )
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
        if self.retry.backoff_max < self.retry.backoff_initial {
            check.fail(
                "gamelan.engine.retry.backoff-max",
                show_duration(self.retry.backoff_max),
                format!(
                    "at least retry.backoff-initial ({})",
                    show_duration(self.retry.backoff_initial)
                ),
            );
        }
    }
}
