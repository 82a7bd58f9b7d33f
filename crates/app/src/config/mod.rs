//! Configuration of the executor (`gamelan.executor.*`) and the engine (`gamelan.engine.*`).
//!
//! # Sources and precedence
//! Lowest to highest: built-in defaults, then each file in the order given (`.properties`
//! or `.yml`/`.yaml`; a later file overrides an earlier one), then environment variables,
//! then `--set KEY=VALUE` overrides. Both processes may share a file: each ignores the other's
//! namespace. Keys outside `gamelan.*` and `quarkus.*` are ignored, so a Quarkus
//! `application.properties` can be used as is.
//!
//! # Spellings
//! Every key of the Java Gamelan executor runtime's documentation is accepted, in every
//! spelling it uses; both spellings of a setting load into one typed field (`engine.url`
//! and `engine-url`, `heartbeat.interval` and `heartbeat.interval-seconds`,
//! `task.queue-size` and `queue-size`, `task.dispatch-threads` and `thread-pool-size`,
//! `http.port` and `quarkus.http.port`). Each process's keys are one table, one line a
//! setting (`keys!`), which also gives `config check` its output and `gamelan config keys`
//! (and README.md) the reference.
//! An unknown `gamelan.*` key is a [`Warning`] naming the nearest known key.
//!
//! # Environment
//! A variable maps to the key whose name, upper-cased with `.` and `-` turned into `_`,
//! equals it: `GAMELAN_EXECUTOR_ENGINE_URL` is `engine.url`/`engine-url`,
//! `GAMELAN_EXECUTOR_THREAD_POOL_SIZE` is `thread-pool-size`, `GAMELAN_ENGINE_JWT_SECRET` is
//! `gamelan.engine.jwt.secret`, `QUARKUS_LOG_LEVEL` is `quarkus.log.level`.
//! `GAMELAN_EXECUTOR_NAME` is `executor-name` (as in the Java runtime's compose file). Other
//! `GAMELAN_EXECUTOR_KAFKA_*` variables become Kafka client properties (`_` read as `.`),
//! and `QUARKUS_LOG_CATEGORY__A_B__LEVEL` sets the level of category `a.b`. The environment
//! is always passed in (`std::env::vars()` in the binary), never read behind the caller's back.
//!
//! # Values
//! File values may use `${VAR}` and `${VAR:default}` (defaults may nest); an unset variable
//! without a default is an error naming the key. Durations are a bare number in the key's
//! unit (seconds, or milliseconds for `error.backoff-initial`, `error.backoff-max`,
//! `result.batch-timeout` and the engine's `retry.backoff-*`) or a value with a unit (`30s`,
//! `500ms`, `2m`). Sizes are bytes or a value with a unit (`4MiB`). In `.properties` files a
//! `#` after whitespace starts a comment, as the Java runtime's examples use it.
//!
//! # Errors and secrets
//! Loading reports every problem at once ([`ConfigError`]), each naming the key, the value
//! and what would have been accepted. Secrets (`jwt.secret`, `security.jwt.token`, Kafka
//! passwords and the like) are [`Secret`]s: masked in `Debug`, in `config check` output and
//! in error messages.

mod check;
mod engine;
mod error;
mod executor;
mod files;
mod interpolate;
mod kafka;
mod load;
mod logging;
mod reference;
mod schema;
mod secret;
mod value;

pub use check::{CheckRequest, check};
pub use engine::{EngineConfig, EngineGrpcTls, EngineJwt, EngineRetry};
pub use error::{ConfigError, Origin, Problem, Warning, WarningKind};
pub use executor::{
    EngineConnection, ErrorSettings, ExecutorConfig, GrpcDelivery, GrpcSettings, HeartbeatSettings,
    HttpSettings, JwtSettings, MetricsSettings, ResultSettings, RuntimeSettings, TaskSettings,
};
pub use files::discover;
pub use kafka::{KafkaProperties, KafkaSettings, KafkaTopics};
pub use load::{Effective, Loaded, Sources};
pub use logging::LogSettings;
pub use reference::reference;
pub use secret::{MASK, Secret};

#[cfg(test)]
mod tests;
