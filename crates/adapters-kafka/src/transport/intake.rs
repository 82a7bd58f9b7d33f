//! The intake half of the transport: polling the consumers, turning messages into tasks,
//! and settling the ones that cannot run (FAILED result or dead letter).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use gamelan_domain::{ErrorInfo, Task, TaskResult, codes};
use gamelan_ports::{Inbound, TransportError};
use rdkafka::Timestamp;
use rdkafka::error::{KafkaError as RdKafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message, OwnedMessage};

use super::consumer::{Pending, TypeConsumer};
use super::producer::Retry;
use super::{Connection, Executors, KafkaTransport};

/// Longest wait for an arrival signal before looking at every consumer again.
const ARRIVAL_WAIT_BOUND: Duration = Duration::from_millis(100);
use crate::dlq;
use crate::error::is_auth_failure;
use crate::messages::{PoisonTask, decode_task, encode_result, time};
use crate::offsets::{Partition, Tracked};

/// A task message that cannot be run here.
enum Unusable {
    Poison(PoisonTask),
    NoExecutor(Task),
}

/// What one consumed message turned into (a short-lived return value: no box).
#[allow(clippy::large_enum_variant)]
enum Taken {
    Task(Task),
    /// Written by the transport itself (FAILED result or dead letter); settles on delivery.
    Settled,
    Skipped,
}

impl KafkaTransport {
    /// Turns one consumed message into a task, or settles it as poison.
    fn take(
        &self,
        conn: &Connection,
        consumer: &Arc<TypeConsumer>,
        executors: &Executors,
        msg: &BorrowedMessage<'_>,
    ) -> Taken {
        let decoded = match decode_task(msg.payload()) {
            Ok(task) if executors.handles(&task.node_type) => Ok(task),
            Ok(task) => Err(Unusable::NoExecutor(task)),
            Err(p) => Err(Unusable::Poison(p)),
        };
        let mut inner = consumer.state.lock();
        let partition = inner.partition(msg.topic(), msg.partition());
        if !inner.offsets.is_assigned(&partition) {
            // Revoked between the fetch and now: the next owner takes it.
            return Taken::Skipped;
        }
        let offset = msg.offset();
        match decoded {
            Ok(task) => match inner.offsets.track(&partition, offset, Some(&task.task_id)) {
                Tracked::New | Tracked::Again => Taken::Task(task),
                Tracked::Behind => Taken::Skipped,
            },
            Err(unusable) => {
                if inner.offsets.track(&partition, offset, None) == Tracked::Behind {
                    return Taken::Skipped;
                }
                drop(inner);
                self.settle_unusable(conn, consumer, msg, partition, unusable);
                Taken::Settled
            }
        }
    }

    /// A FAILED result when the message names its task, else a dead letter with the reason.
    fn settle_unusable(
        &self,
        conn: &Connection,
        consumer: &Arc<TypeConsumer>,
        msg: &BorrowedMessage<'_>,
        partition: Partition,
        unusable: Unusable,
    ) {
        let offset = msg.offset();
        let topics = &self.settings.topics;
        let (identity, code, reason) = match unusable {
            Unusable::NoExecutor(task) => {
                let reason = format!("no executor here handles node type '{}'", task.node_type);
                (Some(Box::new(task)), codes::NO_EXECUTOR, reason)
            }
            Unusable::Poison(p) => (p.identity, codes::INVALID_TASK, p.error.to_string()),
        };
        let message = if let Some(task) = identity {
            log::warn!(target: "gamelan.executor.error", "task {} from {}[{}]@{offset}: {reason}", task.task_id, msg.topic(), msg.partition());
            let result = TaskResult::failed(&task, ErrorInfo::new(code, reason), time::now_ms());
            let mut buf = Vec::with_capacity(256);
            encode_result(&result, &mut buf);
            OwnedMessage::new(
                Some(buf),
                Some(task.run_id.into_bytes()),
                topics.results.clone(),
                Timestamp::NotAvailable,
                -1,
                -1,
                None,
            )
        } else {
            log::warn!(target: "gamelan.executor.error", "unusable message at {}[{}]@{offset} sent to {}: {reason}", msg.topic(), msg.partition(), topics.dlq);
            dlq::letter(msg, &topics.dlq, &reason, &consumer.state.group)
        };
        conn.send_settling(Retry {
            message,
            consumer: Arc::clone(&consumer.state),
            partition,
            offset,
        });
    }

    /// Polls the consumers until a task arrives or `deadline`, then drains without waiting.
    pub(super) fn poll_into(
        &self,
        conn: &Connection,
        consumers: &[Arc<TypeConsumer>],
        max: usize,
        deadline: Instant,
        out: &mut Vec<Inbound>,
    ) -> Result<(), TransportError> {
        let executors = self.executors();
        let n = consumers.len();
        let first = conn.turn.fetch_add(1, Ordering::Relaxed);
        loop {
            // Several consumers: look at each without waiting, then wait for any queue to
            // turn non-empty (noted before looking, so an arrival meanwhile is not missed).
            let seen = self.arrivals.generation();
            for k in 0..n {
                let c = &consumers[(first + k) % n];
                let mut timeout = if out.is_empty() && n == 1 {
                    deadline.saturating_duration_since(Instant::now())
                } else {
                    Duration::ZERO
                };
                loop {
                    let Some(polled) = c.consumer.poll(timeout) else {
                        break;
                    };
                    let msg = match polled {
                        Ok(m) => m,
                        Err(e) => {
                            if let Some(err) = self.poll_error(conn, &e) {
                                if out.is_empty() {
                                    return Err(err);
                                }
                                log::warn!(target: "gamelan.executor.error", "Kafka consumer: {e}");
                                return Ok(());
                            }
                            log::debug!(target: "gamelan.executor.runtime", "Kafka consumer: {e}");
                            break;
                        }
                    };
                    match self.take(conn, c, &executors, &msg) {
                        Taken::Task(task) => {
                            if out.len() < max {
                                out.push(Inbound::Task(task));
                            } else {
                                let mut inner = c.state.lock();
                                let partition = inner.partition(msg.topic(), msg.partition());
                                inner.pending.push_back(Pending {
                                    partition,
                                    offset: msg.offset(),
                                    task,
                                });
                            }
                        }
                        Taken::Settled | Taken::Skipped => {}
                    }
                    timeout = Duration::ZERO;
                    if max > 0 && out.len() >= max {
                        return Ok(());
                    }
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if !out.is_empty() || left.is_zero() {
                return Ok(());
            }
            if n > 1 {
                // Bounded, in case a signal is lost: the next look finds the task anyway.
                self.arrivals.wait_after(seen, left.min(ARRIVAL_WAIT_BOUND));
            }
        }
    }
}

impl KafkaTransport {
    /// Errors that mean the broker is gone (or refuses us), as opposed to noise librdkafka
    /// recovers from by itself. A broken connection is checked with a metadata request:
    /// brokers close idle connections, and that alone must not look like an outage.
    fn poll_error(&self, conn: &Connection, e: &RdKafkaError) -> Option<TransportError> {
        let brokers = &self.settings.bootstrap_servers;
        if is_auth_failure(e) {
            return Some(TransportError::Unauthenticated(format!(
                "Kafka broker(s) {brokers}: {e}"
            )));
        }
        let down = match e.rdkafka_error_code() {
            Some(RDKafkaErrorCode::AllBrokersDown) => true,
            Some(RDKafkaErrorCode::BrokerTransportFailure) => {
                let timeout = self
                    .settings
                    .connect_timeout
                    .min(self.settings.request_timeout);
                conn.admin.check_broker(timeout).is_err()
            }
            _ => false,
        };
        if !down {
            return None;
        }
        self.connected.store(false, Ordering::Release);
        Some(TransportError::Unavailable(format!(
            "Kafka broker(s) {brokers} unreachable: {e}"
        )))
    }

    /// A failed call that means the broker is unreachable marks the transport disconnected,
    /// so the other calls fail fast until the runtime reconnects.
    pub(super) fn note<T>(&self, result: Result<T, TransportError>) -> Result<T, TransportError> {
        if matches!(result, Err(TransportError::Unavailable(_))) {
            self.connected.store(false, Ordering::Release);
        }
        result
    }
}
