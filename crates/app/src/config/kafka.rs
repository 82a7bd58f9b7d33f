//! Kafka settings shared by the executor (`gamelan.executor.kafka.*`) and the engine
//! (`gamelan.engine.kafka.*`): broker list, consumer group, topic names, and any other key
//! passed to the Kafka client library as a property.

use std::collections::BTreeMap;
use std::fmt;

use super::schema::{Family, Key, Suspicion, keys};
use super::secret::{MASK, is_secret_key};
use super::value;

#[derive(Debug, Clone, PartialEq)]
pub struct KafkaSettings {
    /// `kafka.bootstrap-servers`: comma-separated `host:port` (default `localhost:9092`).
    pub bootstrap_servers: String,
    /// `kafka.group-id`. Unset: one group per executor type, so instances of a type share
    /// the partitions of the task topic.
    pub group_id: Option<String>,
    pub topics: KafkaTopics,
    /// `kafka.partitions`: partitions for topics this process creates (default 4).
    pub partitions: u32,
    /// `kafka.replication-factor` for topics this process creates (default 1).
    pub replication_factor: u16,
    /// Every other `kafka.*` key, handed to the client library as is
    /// (`kafka.security.protocol`, `kafka.sasl.password`, ...), applied after the typed ones.
    pub properties: KafkaProperties,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self {
            bootstrap_servers: "localhost:9092".into(),
            group_id: None,
            topics: KafkaTopics::default(),
            partitions: 4,
            replication_factor: 1,
            properties: KafkaProperties::default(),
        }
    }
}

pub use gamelan_ports::topics::KafkaTopics;

/// Pass-through client properties. `Debug` masks the sensitive ones (passwords, JAAS
/// configuration, keys); [`KafkaProperties::iter`] gives the real values to the client.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct KafkaProperties(BTreeMap<String, String>);

impl KafkaProperties {
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The owned pairs the Kafka adapter's settings take.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        self.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0.insert(key.into(), value.into());
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for KafkaProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.0
                    .iter()
                    .map(|(k, v)| (k, if is_secret_key(k) { MASK } else { v.as_str() })),
            )
            .finish()
    }
}

/// Gives the generic key builders access to a configuration's Kafka section.
pub(crate) trait HasKafka {
    fn kafka(&self) -> &KafkaSettings;
    fn kafka_mut(&mut self) -> &mut KafkaSettings;
}

/// The typed keys, relative to `prefix` (`gamelan.executor.`).
const TYPED: [&str; 10] = [
    "bootstrap-servers",
    "group-id",
    "tasks-topic",
    "results-topic",
    "registrations-topic",
    "heartbeats-topic",
    "unregistrations-topic",
    "dlq-topic",
    "partitions",
    "replication-factor",
];

pub(crate) fn keys<C: HasKafka>(prefix: &str) -> Vec<Key<C>> {
    keys!(C, prefix, HasKafka::kafka, HasKafka::kafka_mut;
        "kafka.bootstrap-servers" => bootstrap_servers: value::host_port_list, "brokers, comma-separated `host:port`";
        "kafka.group-id" => group_id: value::optional(value::text), "consumer group", default "`gamelan-executor-<type>` (executor), `gamelan-engine` (engine)";
        "kafka.tasks-topic" => topics.tasks_prefix: value::text, "prefix of the per-type task topics";
        "kafka.results-topic" => topics.results: value::text, "topic name";
        "kafka.registrations-topic" => topics.registrations: value::text, "topic name";
        "kafka.heartbeats-topic" => topics.heartbeats: value::text, "topic name";
        "kafka.unregistrations-topic" => topics.unregistrations: value::text, "topic name";
        "kafka.dlq-topic" => topics.dlq: value::text, "topic name";
        "kafka.partitions" => partitions: value::positive, "partitions of topics created when missing";
        "kafka.replication-factor" => replication_factor: value::positive, "replication factor of topics created when missing";
    )
}

/// Every other `<prefix>kafka.*` key (and `<ENV_PREFIX>KAFKA_*` variable, underscores read
/// as dots) is a client property.
pub(crate) fn pass_through<C: HasKafka>(prefix: &str, env_prefix: &str) -> Family<C> {
    Family {
        prefix: format!("{prefix}kafka."),
        suffix: "",
        env_prefix: format!("{env_prefix}KAFKA_"),
        env_suffix: "",
        quote: false,
        set: |c: &mut C, member, v| {
            c.kafka_mut().properties.insert(member, v);
            Ok(())
        },
        list: |c| {
            c.kafka()
                .properties
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        },
        suspect,
        member_doc: "<client property>",
        meaning: "passed to the client library as is (`security.protocol`, `sasl.*`, `ssl.*`)",
    }
}

/// Client property names are dotted lower case (`sasl.password`); one that reads like a typed
/// key (`group.id`, `bootstrap.server`) or contains `-` is probably a mistake.
fn suspect(member: &str) -> Option<Suspicion> {
    let norm = |s: &str| s.replace(['-', '_'], ".");
    let m = norm(member);
    let nearest = TYPED
        .iter()
        .map(|t| (strsim::levenshtein(&m, &norm(t)), *t))
        .min();
    match nearest {
        Some((d, t)) if d <= 2 => Some(Suspicion::LooksLike(t)),
        _ if member.contains('-') => Some(Suspicion::Malformed),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_masks_sensitive_properties() {
        let mut p = KafkaProperties::default();
        p.insert("sasl.password", "hunter2");
        p.insert("security.protocol", "SASL_SSL");
        let shown = format!("{p:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("SASL_SSL"));
        assert_eq!(p.get("sasl.password"), Some("hunter2"));
    }

    /// The suspicion check compares with the typed keys by name.
    #[test]
    fn typed_names_are_the_table_keys() {
        struct K(KafkaSettings);
        impl HasKafka for K {
            fn kafka(&self) -> &KafkaSettings {
                &self.0
            }
            fn kafka_mut(&mut self) -> &mut KafkaSettings {
                &mut self.0
            }
        }
        let names: Vec<String> = keys::<K>("")
            .into_iter()
            .map(|k| k.names[0].clone())
            .collect();
        let typed: Vec<String> = TYPED.iter().map(|t| format!("kafka.{t}")).collect();
        assert_eq!(names, typed);
    }

    #[test]
    fn typos_of_typed_keys_are_suspect() {
        assert_eq!(suspect("group.id"), Some(Suspicion::LooksLike("group-id")));
        assert_eq!(
            suspect("bootstrap.server"),
            Some(Suspicion::LooksLike("bootstrap-servers"))
        );
        assert_eq!(suspect("sasl-mechanism"), Some(Suspicion::Malformed));
        assert_eq!(suspect("sasl.mechanism"), None);
        assert_eq!(suspect("security.protocol"), None);
    }
}
