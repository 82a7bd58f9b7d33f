//! Settings of both sides and the librdkafka configurations built from them.

use std::time::Duration;

use rdkafka::ClientConfig;

pub use gamelan_ports::topics::KafkaTopics;

/// Executor side (`gamelan.executor.kafka.*`).
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaClientSettings {
    /// Comma-separated `host:port` list.
    pub bootstrap_servers: String,
    /// One group for every executor type of this process. `None`: one consumer and one group
    /// per type, `gamelan-executor-<type>`, so instances of a type share its partitions.
    pub group_id: Option<String>,
    pub topics: KafkaTopics,
    /// Partitions of the topics this process creates when they are missing.
    pub partitions: u32,
    pub replication_factor: u16,
    /// Passed to librdkafka as is after the typed settings (`security.protocol`, `sasl.*`,
    /// `ssl.*`, tuning), so any of them can be overridden.
    pub properties: Vec<(String, String)>,
    /// Bound on every blocking call: delivery reports, topic creation, commits on close.
    pub request_timeout: Duration,
    /// How long `connect` waits for the first broker answer before reporting `Unavailable`.
    pub connect_timeout: Duration,
    /// How long a rebalance that takes partitions away waits for the results of tasks
    /// already handed out from them, so their offsets can be committed before another
    /// member takes over (fewer duplicates). Zero: hand them over at once.
    pub revoke_grace: Duration,
    /// How often finished offsets are committed while running (always on close and before
    /// partitions go). Longer means fewer commit requests and more re-delivery after a crash.
    pub commit_interval: Duration,
}

impl Default for KafkaClientSettings {
    fn default() -> Self {
        Self {
            bootstrap_servers: "localhost:9092".into(),
            group_id: None,
            topics: KafkaTopics::default(),
            partitions: 4,
            replication_factor: 1,
            properties: Vec::new(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            revoke_grace: Duration::from_secs(5),
            commit_interval: Duration::from_millis(200),
        }
    }
}

impl KafkaClientSettings {
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            ..Self::default()
        }
    }

    /// The consumer group of one executor type.
    pub fn group_for(&self, executor_type: &str) -> String {
        match &self.group_id {
            Some(g) => g.clone(),
            None => format!("gamelan-executor-{executor_type}"),
        }
    }

    pub(crate) fn producer_config(&self) -> ClientConfig {
        producer_config(
            &self.bootstrap_servers,
            &self.properties,
            self.request_timeout,
        )
    }

    pub(crate) fn consumer_config(&self, group: &str) -> ClientConfig {
        consumer_config(&self.bootstrap_servers, &self.properties, group)
    }

    pub(crate) fn admin_config(&self) -> ClientConfig {
        base_config(&self.bootstrap_servers, &self.properties)
    }
}

/// Engine side (`gamelan.engine.kafka.*`).
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaEngineSettings {
    pub bootstrap_servers: String,
    /// The engine's consumer group on the result and executor topics.
    pub group_id: String,
    pub topics: KafkaTopics,
    pub partitions: u32,
    pub replication_factor: u16,
    pub properties: Vec<(String, String)>,
    pub request_timeout: Duration,
    /// Most results handed to the engine in one `report` call.
    pub max_batch: usize,
}

impl Default for KafkaEngineSettings {
    fn default() -> Self {
        Self {
            bootstrap_servers: "localhost:9092".into(),
            group_id: "gamelan-engine".into(),
            topics: KafkaTopics::default(),
            partitions: 4,
            replication_factor: 1,
            properties: Vec::new(),
            request_timeout: Duration::from_secs(30),
            max_batch: 1000,
        }
    }
}

impl KafkaEngineSettings {
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            ..Self::default()
        }
    }

    pub(crate) fn producer_config(&self) -> ClientConfig {
        producer_config(
            &self.bootstrap_servers,
            &self.properties,
            self.request_timeout,
        )
    }

    pub(crate) fn consumer_config(&self) -> ClientConfig {
        consumer_config(&self.bootstrap_servers, &self.properties, &self.group_id)
    }

    pub(crate) fn admin_config(&self) -> ClientConfig {
        base_config(&self.bootstrap_servers, &self.properties)
    }
}

fn millis(d: Duration) -> String {
    d.as_millis().clamp(1, i32::MAX as u128).to_string()
}

fn apply(config: &mut ClientConfig, properties: &[(String, String)]) {
    for (k, v) in properties {
        config.set(k, v);
    }
}

pub(crate) fn base_config(bootstrap: &str, properties: &[(String, String)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("client.id", "gamelan");
    apply(&mut c, properties);
    c
}

/// acks=all with idempotence: a result the broker acknowledged is on every in-sync replica,
/// and a retried send never writes it twice. A delivery that cannot finish within the request
/// timeout is reported as failed, so the caller's own retry takes over.
pub(crate) fn producer_config(
    bootstrap: &str,
    properties: &[(String, String)],
    request_timeout: Duration,
) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("client.id", "gamelan")
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "0")
        .set("message.timeout.ms", millis(request_timeout));
    apply(&mut c, properties);
    c
}

/// Offsets are committed by hand, and only for finished work; a new group starts from the
/// earliest offset so tasks produced before the first executor joined are not skipped.
///
/// `fetch.wait.max.ms` is 10 instead of librdkafka's 500: some Kafka-protocol brokers
/// (tansu among them) answer a fetch only when that wait ends, not when data arrives, which
/// put up to half a second on each of a task's two topic hops (p50 0.8 s at 1,000 tasks/s).
/// A broker that answers early is unaffected apart from idle consumers fetching about 100
/// times a second; `properties` can set it back.
pub(crate) fn consumer_config(
    bootstrap: &str,
    properties: &[(String, String)],
    group: &str,
) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("client.id", "gamelan")
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "10");
    apply(&mut c, properties);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_default_to_one_per_type() {
        let mut s = KafkaClientSettings::new("b:9092");
        assert_eq!(s.group_for("tax"), "gamelan-executor-tax");
        s.group_id = Some("tax-executor-group".into());
        assert_eq!(s.group_for("tax"), "tax-executor-group");
    }

    #[test]
    fn properties_override_typed_settings() {
        let mut s = KafkaClientSettings::new("b:9092");
        s.properties = vec![
            ("security.protocol".into(), "SASL_SSL".into()),
            ("linger.ms".into(), "0".into()),
        ];
        let p = s.producer_config();
        assert_eq!(p.get("acks"), Some("all"));
        assert_eq!(p.get("enable.idempotence"), Some("true"));
        assert_eq!(p.get("linger.ms"), Some("0"));
        assert_eq!(p.get("security.protocol"), Some("SASL_SSL"));
        let c = s.consumer_config("g");
        assert_eq!(c.get("group.id"), Some("g"));
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
        assert_eq!(c.get("fetch.wait.max.ms"), Some("10"));
        s.properties = vec![("fetch.wait.max.ms".into(), "500".into())];
        assert_eq!(s.consumer_config("g").get("fetch.wait.max.ms"), Some("500"));
    }
}
