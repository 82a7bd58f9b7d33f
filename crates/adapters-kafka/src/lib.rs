//! Kafka transport for the Gamelan executor runtime and reference engine.
//!
//! - [`KafkaTransport`]: the executor side, a synchronous `EngineTransport` over
//!   `workflow-tasks.<type>` (consumer group per type) and `workflow-results`.
//! - [`KafkaEngineBridge`]: the engine side, feeding an `EngineService` from the result and
//!   executor topics and dispatching tasks to Kafka executors by producing them.
//! - [`messages`]: the JSON messages and their validated conversions.
//! - [`raw`]: plain produce + consume, the baseline for benchmarks.
//! - [`test_broker`]: starts a throw-away `tansu` broker for tests and benchmarks.
//!
//! librdkafka (through `rdkafka`'s synchronous clients) does the Kafka protocol; no async
//! type appears in this crate's API.

mod admin;
pub mod bridge;
mod delivery;
pub mod dlq;
pub mod error;
pub mod messages;
mod offsets;
pub mod raw;
pub mod settings;
pub mod test_broker;
pub mod transport;

pub use bridge::{BridgeStatus, KafkaEngineBridge};
pub use error::KafkaError;
pub use settings::{KafkaClientSettings, KafkaEngineSettings, KafkaTopics};
pub use transport::{KafkaTransport, RESULT_TOO_LARGE};
