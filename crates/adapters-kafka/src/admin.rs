//! Broker checks and topic creation. The broker in the tests (and many managed clusters)
//! does not create topics on first use, so each side creates the topics it uses.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::error::{KafkaError, broker_error};

pub(crate) struct Admin {
    client: AdminClient<DefaultClientContext>,
    brokers: String,
    partitions: i32,
    replication_factor: i32,
    timeout: Duration,
    /// Topics known to exist, so registrations do not ask the broker every time.
    known: Mutex<HashSet<String>>,
}

impl Admin {
    pub fn new(
        config: &ClientConfig,
        brokers: &str,
        partitions: u32,
        replication_factor: u16,
        timeout: Duration,
    ) -> Result<Self, KafkaError> {
        let client = config
            .create()
            .map_err(KafkaError::config("admin client"))?;
        Ok(Self {
            client,
            brokers: brokers.to_owned(),
            partitions: i32::try_from(partitions.max(1)).unwrap_or(i32::MAX),
            replication_factor: i32::from(replication_factor.max(1)),
            timeout,
            known: Mutex::new(HashSet::new()),
        })
    }

    /// Succeeds once a broker answered a metadata request within `timeout`.
    pub fn check_broker(&self, timeout: Duration) -> Result<(), KafkaError> {
        let md = self
            .client
            .inner()
            .fetch_metadata(None, timeout)
            .map_err(|e| broker_error(&self.brokers, &e))?;
        if md.brokers().is_empty() {
            return Err(KafkaError::Unreachable {
                brokers: self.brokers.clone(),
                reason: "the cluster reported no brokers".into(),
            });
        }
        Ok(())
    }

    /// Forgets which topics exist, so the next `ensure_topics` asks the broker again (after
    /// a reconnect the cluster may be a new one).
    pub fn forget_topics(&self) {
        self.known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Creates the topics that are missing (an existing topic is fine, whatever its size).
    pub fn ensure_topics(&self, names: &[&str]) -> Result<(), KafkaError> {
        let missing: Vec<&str> = {
            let known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
            names
                .iter()
                .copied()
                .filter(|n| !known.contains(*n))
                .collect::<HashSet<_>>()
                .into_iter()
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let topics: Vec<NewTopic<'_>> = missing
            .iter()
            .map(|n| {
                NewTopic::new(
                    n,
                    self.partitions,
                    TopicReplication::Fixed(self.replication_factor),
                )
            })
            .collect();
        let opts = AdminOptions::new()
            .request_timeout(Some(self.timeout))
            .operation_timeout(Some(self.timeout));
        let fail = |topic: &str, reason: String| KafkaError::TopicCreation {
            topic: topic.to_owned(),
            brokers: self.brokers.clone(),
            reason,
        };
        let results = futures_executor::block_on(self.client.create_topics(&topics, &opts))
            .map_err(|e| fail(&missing.join(", "), e.to_string()))?;
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        for r in results {
            match r {
                Ok(name) | Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    known.insert(name);
                }
                Err((name, code)) => {
                    log::error!(target: "gamelan.executor.error", "cannot create Kafka topic '{name}' on broker(s) {}: {code}", self.brokers);
                    return Err(fail(&name, code.to_string()));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::base_config;

    #[test]
    fn a_failed_topic_creation_names_the_topic_and_the_brokers() {
        // Nobody listens there: the request times out, as a refused one would fail.
        let port = crate::test_broker::free_port().unwrap();
        let brokers = format!("127.0.0.1:{port}");
        let admin = Admin::new(
            &base_config(&brokers, &[]),
            &brokers,
            4,
            1,
            Duration::from_millis(300),
        )
        .unwrap();
        let err = admin.ensure_topics(&["workflow-results"]).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, KafkaError::TopicCreation { .. }), "{err:?}");
        assert!(
            text.contains("workflow-results") && text.contains(&brokers),
            "{text}"
        );
        assert!(matches!(
            admin.check_broker(Duration::from_millis(200)),
            Err(KafkaError::Unreachable { .. })
        ));
    }
}
