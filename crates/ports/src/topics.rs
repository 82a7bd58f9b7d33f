//! The Kafka topics executors and engine share. Both the configuration (which must parse
//! without the Kafka adapter built in) and the adapter name them, so they are defined here,
//! once, with the one function that derives a type's task topic.

/// Topic names, each configurable; the defaults are the Java Gamelan engine's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaTopics {
    /// Tasks for executor type `T` go to `<tasks_prefix>.T`, so each type scales on its own
    /// partitions and its own consumer group.
    pub tasks_prefix: String,
    pub results: String,
    pub registrations: String,
    pub heartbeats: String,
    pub unregistrations: String,
    /// Dead letters: task messages without a usable identity, with the reason in a header.
    pub dlq: String,
}

impl Default for KafkaTopics {
    fn default() -> Self {
        Self {
            tasks_prefix: "workflow-tasks".into(),
            results: "workflow-results".into(),
            registrations: "executor-registrations".into(),
            heartbeats: "executor-heartbeats".into(),
            unregistrations: "executor-unregistrations".into(),
            dlq: "workflow-dlq".into(),
        }
    }
}

impl KafkaTopics {
    /// The task topic of one executor type. Characters Kafka does not allow in a topic
    /// name become `_`; both sides use this function, so they always agree.
    pub fn tasks_for(&self, executor_type: &str) -> String {
        let mut name = String::with_capacity(self.tasks_prefix.len() + 1 + executor_type.len());
        name.push_str(&self.tasks_prefix);
        name.push('.');
        name.extend(executor_type.chars().map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        }));
        name
    }

    /// The topics both sides share (everything but the per-type task topics).
    pub fn shared(&self) -> [&str; 5] {
        [
            &self.results,
            &self.registrations,
            &self.heartbeats,
            &self.unregistrations,
            &self.dlq,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_topics_are_per_type_and_valid_kafka_names() {
        let t = KafkaTopics::default();
        assert_eq!(t.tasks_for("echo"), "workflow-tasks.echo");
        assert_eq!(
            t.tasks_for("payment processor/v2"),
            "workflow-tasks.payment_processor_v2"
        );
    }
}
