//! The executor side's producer: results, executor records, and the messages the transport
//! writes on its own (FAILED results for poison tasks, dead letters), whose delivery
//! reports decide when an offset may be committed.

use std::sync::{Arc, Mutex, PoisonError};

use rdkafka::ClientContext;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{DeliveryResult, ProducerContext};

use super::consumer::ConsumerState;
use crate::delivery::BatchWaiter;
use crate::offsets::Partition;

/// What a delivery report completes.
pub(crate) enum Delivery {
    /// One message of a batch a caller waits for.
    Batch {
        waiter: Arc<BatchWaiter>,
        index: usize,
    },
    /// A message written for a consumed one: once acknowledged, that offset is done.
    Settles {
        consumer: Arc<ConsumerState>,
        partition: Partition,
        offset: i64,
    },
}

/// A settling message whose delivery failed, to be sent again by the intake thread.
pub(crate) struct Retry {
    pub message: OwnedMessage,
    pub consumer: Arc<ConsumerState>,
    pub partition: Partition,
    pub offset: i64,
}

#[derive(Default)]
pub(crate) struct ProducerCtx {
    pub retries: Arc<Mutex<Vec<Retry>>>,
}

impl ClientContext for ProducerCtx {}

impl ProducerContext for ProducerCtx {
    type DeliveryOpaque = Box<Delivery>;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Box<Delivery>) {
        match *opaque {
            Delivery::Batch { waiter, index } => {
                waiter.complete(
                    index,
                    result.as_ref().map(|_| ()).map_err(|(e, _)| e.to_string()),
                );
            }
            Delivery::Settles {
                consumer,
                partition,
                offset,
            } => match result {
                Ok(_) => consumer.settle(&partition, offset),
                Err((e, msg)) => {
                    log::warn!(target: "gamelan.executor.error", "writing to '{}' for {}[{}]@{offset} failed: {e}; will retry", msg.topic(), partition.topic, partition.partition);
                    self.retries
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(Retry {
                            message: msg.detach(),
                            consumer,
                            partition,
                            offset,
                        });
                }
            },
        }
    }
}
