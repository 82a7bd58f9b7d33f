//! The raw baseline for `gamelan bench --transport kafka`: N messages of B bytes produced
//! and consumed back with plain rdkafka on the same broker, nothing of the Gamelan protocol
//! around them. Measured in the same run as the real transport, it turns an absolute figure
//! into a ratio.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError as RdKafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use crate::admin::Admin;
use crate::error::KafkaError;
use crate::settings::{base_config, consumer_config, producer_config};

/// One baseline run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawBench {
    pub bootstrap_servers: String,
    pub properties: Vec<(String, String)>,
    /// Default: a fresh topic per run. A topic given here must be new or empty: the
    /// consumer reads it from the start and counts every message.
    pub topic: Option<String>,
    pub partitions: u32,
    pub messages: usize,
    pub payload_bytes: usize,
    /// Bound on the whole run (group join, produce, consume).
    pub timeout: Duration,
}

impl RawBench {
    pub fn new(
        bootstrap_servers: impl Into<String>,
        messages: usize,
        payload_bytes: usize,
    ) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            properties: Vec::new(),
            topic: None,
            partitions: 4,
            messages,
            payload_bytes,
            timeout: Duration::from_secs(120),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRun {
    pub messages: usize,
    pub payload_bytes: usize,
    /// Until the last message was acknowledged (acks=all, idempotent, as the transport).
    pub produce: Duration,
    /// From the first send until the last message was consumed (the two overlap).
    pub elapsed: Duration,
}

impl RawRun {
    pub fn messages_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.messages as f64 / secs
        } else {
            f64::INFINITY
        }
    }
}

/// Produces `messages` messages on one thread while this one consumes them back; the clock
/// starts once the consumer holds its partitions and a first message went through (group
/// join and connection set-up are not part of the figure).
pub fn produce_consume(bench: &RawBench) -> Result<RawRun, KafkaError> {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let deadline = Instant::now() + bench.timeout;
    let unique = format!(
        "gamelan-raw-{}-{}-{}",
        std::process::id(),
        crate::messages::time::now_ms(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    );
    let topic = bench.topic.clone().unwrap_or_else(|| unique.clone());
    let admin = Admin::new(
        &base_config(&bench.bootstrap_servers, &bench.properties),
        &bench.bootstrap_servers,
        bench.partitions,
        1,
        bench.timeout,
    )?;
    admin.check_broker(bench.timeout)?;
    admin.ensure_topics(&[&topic])?;

    let consumer: BaseConsumer =
        consumer_config(&bench.bootstrap_servers, &bench.properties, &unique)
            .create()
            .map_err(KafkaError::config("consumer"))?;
    consumer
        .subscribe(&[&topic])
        .map_err(|e| KafkaError::Consume(e.to_string()))?;
    let mut consumed = 0usize;
    while consumer
        .assignment()
        .map_err(|e| KafkaError::Consume(e.to_string()))?
        .count()
        == 0
    {
        if Instant::now() >= deadline {
            return Err(KafkaError::Consume("no partitions assigned in time".into()));
        }
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(50)) {
            consumed += 1;
        }
    }

    let producer: BaseProducer =
        producer_config(&bench.bootstrap_servers, &bench.properties, bench.timeout)
            .create()
            .map_err(KafkaError::config("producer"))?;
    let payload = vec![b'x'; bench.payload_bytes];
    // One message through first: connections, topic metadata and fetch positions are
    // settled, so the clock measures the steady state (as the transport figure does).
    produce_all(&producer, &topic, &payload, 1, deadline)?;
    while consumed < 1 {
        if Instant::now() >= deadline {
            return Err(KafkaError::Consume(
                "the warm-up message never arrived".into(),
            ));
        }
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(50)) {
            consumed += 1;
        }
    }
    consumed = 0;
    let n = bench.messages;
    let started = Instant::now();
    let produced = std::thread::scope(|s| {
        let sender = s.spawn(|| produce_all(&producer, &topic, &payload, n, deadline));
        while consumed < n && Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(_)) => consumed += 1,
                Some(Err(e)) => log::debug!("raw consumer: {e}"),
                None => {}
            }
        }
        sender.join()
    });
    let elapsed = started.elapsed();
    let produce = match produced {
        Ok(r) => r?,
        Err(_) => return Err(KafkaError::Consume("the producing thread panicked".into())),
    };
    if consumed < n {
        return Err(KafkaError::Consume(format!(
            "consumed {consumed} of {n} messages within {:?}",
            bench.timeout
        )));
    }
    Ok(RawRun {
        messages: n,
        payload_bytes: bench.payload_bytes,
        produce,
        elapsed,
    })
}

fn produce_all(
    producer: &BaseProducer,
    topic: &str,
    payload: &[u8],
    n: usize,
    deadline: Instant,
) -> Result<Duration, KafkaError> {
    let started = Instant::now();
    let fail = |reason: String| KafkaError::Produce {
        topic: topic.to_owned(),
        reason,
    };
    for i in 0..n {
        let key = (i % 1024).to_le_bytes();
        let mut record = BaseRecord::to(topic).key(&key[..]).payload(payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((RdKafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    if Instant::now() >= deadline {
                        return Err(fail("local queue full until the deadline".into()));
                    }
                    producer.poll(Duration::from_millis(1));
                    record = back;
                }
                Err((e, _)) => return Err(fail(e.to_string())),
            }
        }
        if i % 1024 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    producer
        .flush(deadline.saturating_duration_since(Instant::now()))
        .map_err(|e| fail(e.to_string()))?;
    Ok(started.elapsed())
}
