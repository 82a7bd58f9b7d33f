//! How the engine hands a task to a Kafka executor: by producing it to the executor type's
//! topic. A send only enqueues (librdkafka's queue), so `deliver` never blocks the engine.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use gamelan_domain::Task;
use gamelan_ports::{EngineService, TaskSink};
use rdkafka::ClientContext;
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};

use crate::messages::encode_task;

/// What a delivery report is about.
pub(crate) enum SinkDelivery {
    Task {
        executor_id: Arc<str>,
        task_id: String,
    },
    /// A dead letter: nothing to do when it fails but log.
    DeadLetter,
}

/// A task the broker never took goes back to the engine's queue at once instead of
/// waiting for its timeout.
pub(crate) struct SinkCtx {
    pub engine: Weak<dyn EngineService>,
}

impl ClientContext for SinkCtx {}

impl ProducerContext for SinkCtx {
    type DeliveryOpaque = Box<SinkDelivery>;

    fn delivery(&self, result: &DeliveryResult<'_>, d: Box<SinkDelivery>) {
        let Err((e, _)) = result else { return };
        match *d {
            SinkDelivery::Task {
                executor_id,
                task_id,
            } => {
                log::warn!(target: "gamelan.engine", "task {task_id} for executor {executor_id} did not reach Kafka: {e}; requeued");
                if let Some(engine) = self.engine.upgrade()
                    && let Err(e) = engine.release(&executor_id, std::slice::from_ref(&task_id))
                {
                    log::warn!(target: "gamelan.engine", "cannot requeue task {task_id}: {e}");
                }
            }
            SinkDelivery::DeadLetter => {
                log::error!(target: "gamelan.engine", "a dead letter did not reach Kafka: {e}");
            }
        }
    }
}

pub(crate) struct KafkaTaskSink {
    producer: ThreadedProducer<SinkCtx>,
    topic: String,
    executor_type: String,
    executor_id: Arc<str>,
    /// Set when a send was refused: the engine then detached this stream, and the next
    /// heartbeat of the executor attaches a new one.
    refused: AtomicBool,
}

impl KafkaTaskSink {
    pub fn new(
        producer: ThreadedProducer<SinkCtx>,
        topic: String,
        executor_type: String,
        executor_id: &str,
    ) -> Self {
        Self {
            producer,
            topic,
            executor_type,
            executor_id: Arc::from(executor_id),
            refused: AtomicBool::new(false),
        }
    }

    pub fn usable(&self) -> bool {
        !self.refused.load(Ordering::Acquire)
    }
}

impl TaskSink for KafkaTaskSink {
    fn deliver(&self, task: Arc<Task>) -> bool {
        let mut buf = Vec::with_capacity(256);
        encode_task(&task, &self.executor_type, &mut buf);
        let opaque = Box::new(SinkDelivery::Task {
            executor_id: Arc::clone(&self.executor_id),
            task_id: task.task_id.clone(),
        });
        let record = BaseRecord::with_opaque_to(&self.topic, opaque)
            .key(task.run_id.as_bytes())
            .payload(buf.as_slice());
        match self.producer.send(record) {
            Ok(()) => true,
            Err((e, _)) => {
                log::warn!(target: "gamelan.engine", "cannot produce a task to '{}': {e}; the engine requeues it", self.topic);
                self.refused.store(true, Ordering::Release);
                false
            }
        }
    }

    /// The Kafka protocol here has no cancellation message: the task runs to its end and
    /// its result is judged by the engine's intake as usual.
    fn cancel(&self, task_id: &str, reason: &str) -> bool {
        log::debug!(target: "gamelan.engine", "cancel of {task_id} ({reason}) not sent: Kafka executors have no cancellation topic");
        true
    }
}
