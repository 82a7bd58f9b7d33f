//! The adapter's error type, and how Kafka failures read to the runtime.

use gamelan_ports::TransportError;
use rdkafka::error::{KafkaError as RdKafkaError, RDKafkaErrorCode};

use crate::messages::MessageError;

#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// librdkafka refused the configuration (an unknown or invalid property).
    #[error("invalid Kafka client configuration for {client}: {source}")]
    Config {
        client: &'static str,
        #[source]
        source: RdKafkaError,
    },
    /// No broker answered within the timeout.
    #[error("Kafka broker(s) {brokers} unreachable: {reason}")]
    Unreachable { brokers: String, reason: String },
    /// The broker refused the credentials or the ACLs deny the operation.
    #[error("Kafka broker(s) {brokers} refused access: {reason}")]
    Unauthorized { brokers: String, reason: String },
    #[error("cannot create Kafka topic '{topic}' on broker(s) {brokers}: {reason}")]
    TopicCreation {
        topic: String,
        brokers: String,
        reason: String,
    },
    #[error("producing to Kafka topic '{topic}' failed: {reason}")]
    Produce { topic: String, reason: String },
    #[error("Kafka consumer failed: {0}")]
    Consume(String),
    #[error(transparent)]
    Message(#[from] MessageError),
    #[error("cannot start a thread: {0}")]
    Thread(#[from] std::io::Error),
    #[error("the Kafka client is closed")]
    Closed,
}

impl KafkaError {
    pub(crate) fn config(client: &'static str) -> impl FnOnce(RdKafkaError) -> Self {
        move |source| Self::Config { client, source }
    }

    /// What the runtime should do about it: reconnect (`Unavailable`), fix credentials, or
    /// give up on the request.
    pub fn to_transport(&self) -> TransportError {
        match self {
            Self::Unauthorized { .. } => TransportError::Unauthenticated(self.to_string()),
            Self::Config { .. } | Self::Message(_) => TransportError::Rejected(self.to_string()),
            Self::Closed => TransportError::Closed,
            Self::Unreachable { .. }
            | Self::TopicCreation { .. }
            | Self::Produce { .. }
            | Self::Consume(_)
            | Self::Thread(_) => TransportError::Unavailable(self.to_string()),
        }
    }
}

impl From<KafkaError> for TransportError {
    fn from(e: KafkaError) -> Self {
        e.to_transport()
    }
}

/// Whether a librdkafka error means "your credentials or ACLs", as opposed to "try later".
pub(crate) fn is_auth_failure(err: &RdKafkaError) -> bool {
    matches!(
        err.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::Authentication
                | RDKafkaErrorCode::SaslAuthenticationFailed
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::GroupAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::TransactionalIdAuthorizationFailed
        )
    )
}

/// A broker-level failure with the broker list in the message, split by kind.
pub(crate) fn broker_error(brokers: &str, err: &RdKafkaError) -> KafkaError {
    if is_auth_failure(err) {
        KafkaError::Unauthorized {
            brokers: brokers.to_owned(),
            reason: err.to_string(),
        }
    } else {
        KafkaError::Unreachable {
            brokers: brokers.to_owned(),
            reason: err.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_what_the_runtime_should_do() {
        let down = KafkaError::Unreachable {
            brokers: "b:9092".into(),
            reason: "timed out".into(),
        };
        assert!(
            matches!(down.to_transport(), TransportError::Unavailable(m) if m.contains("b:9092"))
        );
        let topic = KafkaError::TopicCreation {
            topic: "workflow-results".into(),
            brokers: "b:9092".into(),
            reason: "denied".into(),
        };
        let text = topic.to_transport().to_string();
        assert!(
            text.contains("workflow-results") && text.contains("b:9092"),
            "{text}"
        );
        let auth = broker_error(
            "b:1",
            &RdKafkaError::MetadataFetch(RDKafkaErrorCode::SaslAuthenticationFailed),
        );
        assert!(matches!(
            auth.to_transport(),
            TransportError::Unauthenticated(_)
        ));
        let other = broker_error(
            "b:1",
            &RdKafkaError::MetadataFetch(RDKafkaErrorCode::AllBrokersDown),
        );
        assert!(matches!(
            other.to_transport(),
            TransportError::Unavailable(_)
        ));
        assert_eq!(KafkaError::Closed.to_transport(), TransportError::Closed);
    }
}
