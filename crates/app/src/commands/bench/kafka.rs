//! `--transport kafka`: a throw-away `tansu` broker on a free loopback port, the engine's
//! Kafka bridge and Kafka executors pointed at it, and the adapter's raw produce + consume
//! of the same messages on the same broker as the baseline.

use super::baseline::Raw;
use super::error::BenchError;

#[cfg(feature = "kafka")]
pub struct Broker(gamelan_kafka::test_broker::TansuBroker);

#[cfg(feature = "kafka")]
impl Broker {
    pub fn start() -> Result<Self, BenchError> {
        let port = gamelan_kafka::test_broker::free_port()?;
        gamelan_kafka::test_broker::TansuBroker::try_start_on(port)
            .map(Self)
            .map_err(|reason| BenchError::Spawn {
                what: "Kafka broker".into(),
                reason,
            })
    }

    pub fn bootstrap(&self) -> String {
        self.0.bootstrap()
    }
}

#[cfg(feature = "kafka")]
pub fn raw(bootstrap: &str, messages: usize, payload_bytes: usize) -> Result<Raw, BenchError> {
    let bench = gamelan_kafka::raw::RawBench::new(bootstrap, messages, payload_bytes);
    let run = gamelan_kafka::raw::produce_consume(&bench).map_err(|e| BenchError::Baseline {
        name: "kafka",
        reason: e.to_string(),
    })?;
    Ok(Raw::new(
        format!(
            "rdkafka produce + consume of the same messages on the same broker ({} partitions)",
            bench.partitions
        ),
        messages,
        run.elapsed,
    ))
}

/// Without the kafka feature no broker can exist.
#[cfg(not(feature = "kafka"))]
pub enum Broker {}

#[cfg(not(feature = "kafka"))]
impl Broker {
    pub fn start() -> Result<Self, BenchError> {
        Err(not_built())
    }

    pub fn bootstrap(&self) -> String {
        match *self {}
    }
}

#[cfg(not(feature = "kafka"))]
pub fn raw(_: &str, _: usize, _: usize) -> Result<Raw, BenchError> {
    Err(not_built())
}

#[cfg(not(feature = "kafka"))]
fn not_built() -> BenchError {
    BenchError::NotWired(
        "kafka",
        "this binary was built without the kafka feature".into(),
    )
}
