//! Dead letters: an unusable message kept as it was, with why and where from in headers.

use rdkafka::Timestamp;
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders, OwnedMessage};

/// Why the message is here.
pub const REASON: &str = "gamelan.dlq.reason";
/// Where it was read: topic, partition, offset, and the consumer group that read it.
pub const TOPIC: &str = "gamelan.dlq.topic";
pub const PARTITION: &str = "gamelan.dlq.partition";
pub const OFFSET: &str = "gamelan.dlq.offset";
pub const GROUP: &str = "gamelan.dlq.group";

pub(crate) fn headers(msg: &BorrowedMessage<'_>, reason: &str, group: &str) -> OwnedHeaders {
    let partition = msg.partition().to_string();
    let offset = msg.offset().to_string();
    [
        (REASON, reason),
        (TOPIC, msg.topic()),
        (PARTITION, partition.as_str()),
        (OFFSET, offset.as_str()),
        (GROUP, group),
    ]
    .into_iter()
    .fold(OwnedHeaders::new_with_capacity(5), |h, (key, value)| {
        h.insert(Header {
            key,
            value: Some(value),
        })
    })
}

/// The dead letter of `msg` for topic `dlq`: same key and value, reason in the headers.
pub(crate) fn letter(
    msg: &BorrowedMessage<'_>,
    dlq: &str,
    reason: &str,
    group: &str,
) -> OwnedMessage {
    OwnedMessage::new(
        msg.payload().map(<[u8]>::to_vec),
        msg.key().map(<[u8]>::to_vec),
        dlq.to_owned(),
        Timestamp::NotAvailable,
        -1,
        -1,
        Some(headers(msg, reason, group)),
    )
}
