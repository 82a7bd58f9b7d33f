//! Executor side: [`KafkaTransport`], an `EngineTransport` over Kafka topics.
//!
//! Tasks come from `workflow-tasks.<type>` through a consumer group per executor type (so
//! instances of a type share its partitions); results go to `workflow-results` with acks=all
//! and idempotence; a task's offset is committed only after its result was acknowledged,
//! and per partition only up to the first unfinished task. A crash therefore re-delivers,
//! never loses.

mod consumer;
mod producer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use gamelan_domain::{Acceptance, ErrorInfo, ExecutorMetadata, Task, TaskResult, codes};
use gamelan_ports::{
    EngineTransport, Heartbeat, Inbound, Registration, ReportOutcome, TransportError,
};
use rdkafka::Timestamp;
use rdkafka::error::{KafkaError as RdKafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};

use self::consumer::{Pending, TypeConsumer};
use self::producer::{Delivery, ProducerCtx, Retry};
use crate::admin::Admin;
use crate::delivery::BatchWaiter;
use crate::error::{KafkaError, is_auth_failure};
use crate::messages::{ExecutorRecord, PoisonTask, decode_task, encode_result, time};
use crate::offsets::{Partition, Tracked};
use crate::settings::KafkaClientSettings;

/// Error code of the FAILED result that replaces one too large for the broker.
pub const RESULT_TOO_LARGE: &str = "RESULT_TOO_LARGE";

/// Header names on dead letters.
pub mod dlq_headers {
    pub const REASON: &str = "gamelan.dlq.reason";
    pub const TOPIC: &str = "gamelan.dlq.topic";
    pub const PARTITION: &str = "gamelan.dlq.partition";
    pub const OFFSET: &str = "gamelan.dlq.offset";
    pub const GROUP: &str = "gamelan.dlq.group";
}

/// How long one poll slice lasts when several consumers (types) take turns.
const POLL_SLICE: Duration = Duration::from_millis(20);
/// How long a full producer queue is waited out before a send gives up.
const QUEUE_FULL_POLL: Duration = Duration::from_millis(5);

/// The executor side of the Kafka transport. Thread-safe, every call bounded by the
/// request timeout (`receive` by its `wait`).
pub struct KafkaTransport {
    settings: KafkaClientSettings,
    closed: AtomicBool,
    /// The last `connect` reached a broker; until then other calls fail fast.
    connected: AtomicBool,
    /// A connect succeeded once: later connects after a loss renew the producer.
    ever_connected: AtomicBool,
    conn: Mutex<Option<Arc<Connection>>>,
    executors: RwLock<Arc<Executors>>,
    /// Wakes a `receive` that waits for the first registration.
    registered: (Mutex<bool>, Condvar),
}

#[derive(Default)]
struct Executors {
    by_id: HashMap<String, ExecutorMetadata>,
}

impl Executors {
    fn handles(&self, node_type: &str) -> bool {
        self.by_id.values().any(|m| m.handles(node_type))
    }
}

/// The clients, created by the first successful `connect` and kept across broker outages
/// (librdkafka reconnects by itself; a new consumer would lose the group's progress).
struct Connection {
    producer: ThreadedProducer<ProducerCtx>,
    retries: Arc<Mutex<Vec<Retry>>>,
    admin: Admin,
    consumers: RwLock<Vec<Arc<TypeConsumer>>>,
    /// Which consumer polls first, so several types share the wait fairly.
    turn: AtomicUsize,
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Dropped without close: hand partitions over at once rather than wait for results.
        for c in self
            .consumers
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            c.state.closing.store(true, Ordering::Release);
        }
    }
}

impl std::fmt::Debug for KafkaTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaTransport")
            .field("bootstrap_servers", &self.settings.bootstrap_servers)
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl KafkaTransport {
    /// Creates nothing yet: clients are made by [`EngineTransport::connect`].
    pub fn new(settings: KafkaClientSettings) -> Self {
        Self {
            settings,
            closed: AtomicBool::new(false),
            connected: AtomicBool::new(false),
            ever_connected: AtomicBool::new(false),
            conn: Mutex::new(None),
            executors: RwLock::new(Arc::new(Executors::default())),
            registered: (Mutex::new(false), Condvar::new()),
        }
    }

    pub fn settings(&self) -> &KafkaClientSettings {
        &self.settings
    }

    /// The partitions this instance holds now, as `(topic, partition)` (diagnostics, tests).
    pub fn assignment(&self) -> Vec<(String, i32)> {
        let Some(conn) = self.current() else {
            return Vec::new();
        };
        let mut out: Vec<(String, i32)> = conn
            .consumers()
            .iter()
            .flat_map(|c| {
                c.state
                    .lock()
                    .offsets
                    .assigned()
                    .map(|p| (p.topic.to_string(), p.partition))
                    .collect::<Vec<_>>()
            })
            .collect();
        out.sort();
        out
    }

    fn current(&self) -> Option<Arc<Connection>> {
        self.conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn connection(&self) -> Result<Arc<Connection>, TransportError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(TransportError::Closed);
        }
        self.current()
            .filter(|_| self.connected.load(Ordering::Acquire))
            .ok_or_else(|| {
                TransportError::Unavailable(format!(
                    "not connected to Kafka broker(s) {}",
                    self.settings.bootstrap_servers
                ))
            })
    }

    /// The clients, created on first use. `fresh` replaces the producer and admin client
    /// (after an outage the broker may have lost the idempotent producer's state) while the
    /// consumers, and with them the group membership and offsets in flight, stay.
    fn open(&self, fresh: bool) -> Result<Arc<Connection>, KafkaError> {
        let mut slot = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = &*slot
            && !fresh
        {
            return Ok(Arc::clone(c));
        }
        let ctx = ProducerCtx {
            retries: slot
                .as_ref()
                .map_or_else(Arc::default, |old| Arc::clone(&old.retries)),
        };
        let retries = Arc::clone(&ctx.retries);
        let producer = self
            .settings
            .producer_config()
            .create_with_context(ctx)
            .map_err(KafkaError::config("producer"))?;
        let admin = Admin::new(
            &self.settings.admin_config(),
            &self.settings.bootstrap_servers,
            self.settings.partitions,
            self.settings.replication_factor,
            self.settings.request_timeout,
        )?;
        let consumers = slot.as_ref().map_or_else(Vec::new, |old| {
            std::mem::take(
                &mut *old
                    .consumers
                    .write()
                    .unwrap_or_else(PoisonError::into_inner),
            )
        });
        let conn = Arc::new(Connection {
            producer,
            retries,
            admin,
            consumers: RwLock::new(consumers),
            turn: AtomicUsize::new(0),
        });
        *slot = Some(Arc::clone(&conn));
        Ok(conn)
    }

    /// Creates the consumers the registered types need and subscribes them.
    fn ensure_consumers(&self, conn: &Connection, types: &[String]) -> Result<(), KafkaError> {
        let topics = &self.settings.topics;
        let mut consumers = conn
            .consumers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if self.settings.group_id.is_some() {
            // One group for all types: one consumer subscribed to every task topic.
            if consumers.is_empty() {
                let group = self.settings.group_for("");
                let config = self.settings.consumer_config(&group);
                consumers.push(Arc::new(TypeConsumer::new(
                    &config,
                    group,
                    self.settings.revoke_grace,
                    self.settings.commit_interval,
                )?));
            }
            let names: Vec<String> = types.iter().map(|t| topics.tasks_for(t)).collect();
            consumers[0].subscribe(&names)?;
        } else {
            for t in types {
                let topic = topics.tasks_for(t);
                if consumers.iter().any(|c| c.handles_topic(&topic)) {
                    continue;
                }
                let group = self.settings.group_for(t);
                let config = self.settings.consumer_config(&group);
                let c = TypeConsumer::new(
                    &config,
                    group,
                    self.settings.revoke_grace,
                    self.settings.commit_interval,
                )?;
                c.subscribe(&[topic])?;
                consumers.push(Arc::new(c));
            }
        }
        Ok(())
    }

    /// Produces one record per item and waits for the broker's acknowledgements.
    fn produce_records(
        &self,
        conn: &Connection,
        topic: &str,
        records: &[(String, Vec<u8>)],
    ) -> Result<(), TransportError> {
        let deadline = Instant::now() + self.settings.request_timeout;
        let waiter = Arc::new(BatchWaiter::new(records.len()));
        for (i, (key, payload)) in records.iter().enumerate() {
            let record = BaseRecord::with_opaque_to(
                topic,
                Box::new(Delivery::Batch {
                    waiter: Arc::clone(&waiter),
                    index: i,
                }),
            )
            .key(key.as_bytes())
            .payload(payload.as_slice());
            if let Err(e) = send(&conn.producer, record, deadline) {
                waiter.complete(i, Err(e.to_string()));
            }
        }
        let outcomes = waiter.wait(deadline);
        for o in outcomes {
            match o {
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    return Err(KafkaError::Produce {
                        topic: topic.to_owned(),
                        reason: e,
                    }
                    .into());
                }
                None => {
                    return Err(KafkaError::Produce {
                        topic: topic.to_owned(),
                        reason: format!(
                            "no acknowledgement from {} within {:?}",
                            self.settings.bootstrap_servers, self.settings.request_timeout
                        ),
                    }
                    .into());
                }
            }
        }
        Ok(())
    }

    fn executors(&self) -> Arc<Executors> {
        Arc::clone(
            &self
                .executors
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Waits for the first registration (nothing to consume before it).
    fn wait_for_registration(&self, wait: Duration) {
        let (lock, cv) = &self.registered;
        let guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = cv
            .wait_timeout_while(guard, wait, |registered| {
                !*registered && !self.closed.load(Ordering::Acquire)
            })
            .unwrap_or_else(PoisonError::into_inner);
    }
}

impl Connection {
    fn consumers(&self) -> Vec<Arc<TypeConsumer>> {
        self.consumers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Sends again what the transport wrote for consumed messages and did not get through.
    fn resend_failed(&self) {
        let retries =
            std::mem::take(&mut *self.retries.lock().unwrap_or_else(PoisonError::into_inner));
        for r in retries {
            self.send_settling(r);
        }
    }

    /// Sends a message that settles a consumed offset once the broker acknowledges it; a
    /// send that fails at once is kept for the next round, so the offset never gets stuck.
    fn send_settling(&self, r: Retry) {
        let mut record = BaseRecord::with_opaque_to(
            r.message.topic(),
            Box::new(Delivery::Settles {
                consumer: Arc::clone(&r.consumer),
                partition: r.partition.clone(),
                offset: r.offset,
            }),
        );
        if let Some(k) = r.message.key() {
            record = record.key(k);
        }
        if let Some(p) = r.message.payload() {
            record = record.payload(p);
        }
        if let Some(h) = r.message.headers() {
            record = record.headers(h.clone());
        }
        if let Err((e, _)) = self.producer.send(record) {
            log::warn!(target: "gamelan.executor.error", "writing to '{}' failed: {e}; will retry", r.message.topic());
            self.retries
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(r);
        }
    }
}

/// Sends, waiting out a full local queue until `deadline`.
fn send(
    producer: &ThreadedProducer<ProducerCtx>,
    mut record: BaseRecord<'_, [u8], [u8], Box<Delivery>>,
    deadline: Instant,
) -> Result<(), RdKafkaError> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((RdKafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                if Instant::now() < deadline =>
            {
                producer.poll(QUEUE_FULL_POLL);
                record = back;
            }
            Err((e, _)) => return Err(e),
        }
    }
}

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
            let partition_text = msg.partition().to_string();
            let offset_text = offset.to_string();
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: dlq_headers::REASON,
                    value: Some(reason.as_bytes()),
                })
                .insert(Header {
                    key: dlq_headers::TOPIC,
                    value: Some(msg.topic().as_bytes()),
                })
                .insert(Header {
                    key: dlq_headers::PARTITION,
                    value: Some(partition_text.as_bytes()),
                })
                .insert(Header {
                    key: dlq_headers::OFFSET,
                    value: Some(offset_text.as_bytes()),
                })
                .insert(Header {
                    key: dlq_headers::GROUP,
                    value: Some(consumer.state.group.as_bytes()),
                });
            OwnedMessage::new(
                msg.payload().map(<[u8]>::to_vec),
                msg.key().map(<[u8]>::to_vec),
                topics.dlq.clone(),
                Timestamp::NotAvailable,
                -1,
                -1,
                Some(headers),
            )
        };
        conn.send_settling(Retry {
            message,
            consumer: Arc::clone(&consumer.state),
            partition,
            offset,
        });
    }

    /// Polls the consumers until a task arrives or `deadline`, then drains without waiting.
    fn poll_into(
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
            for k in 0..n {
                let c = &consumers[(first + k) % n];
                let mut timeout = if out.is_empty() && n == 1 {
                    deadline.saturating_duration_since(Instant::now())
                } else if out.is_empty() {
                    POLL_SLICE.min(deadline.saturating_duration_since(Instant::now()))
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
            if !out.is_empty() || Instant::now() >= deadline {
                return Ok(());
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
    fn note<T>(&self, result: Result<T, TransportError>) -> Result<T, TransportError> {
        if matches!(result, Err(TransportError::Unavailable(_))) {
            self.connected.store(false, Ordering::Release);
        }
        result
    }
}

/// A FAILED stand-in for a result the broker would refuse as too large.
fn too_large(r: &TaskResult, len: usize) -> TaskResult {
    let mut task = Task::new(r.run_id(), r.node_id(), "", r.attempt());
    r.task_id().clone_into(&mut task.task_id);
    r.execution_token().clone_into(&mut task.execution_token);
    r.tenant_id().clone_into(&mut task.tenant_id);
    TaskResult::failed(
        &task,
        ErrorInfo::new(
            RESULT_TOO_LARGE,
            format!("result of {len} bytes is larger than the broker accepts"),
        ),
        r.completed_at_ms(),
    )
}

impl EngineTransport for KafkaTransport {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn connect(&self) -> Result<(), TransportError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(TransportError::Closed);
        }
        // Reconnecting after an outage: new producer and admin client, same consumers.
        let fresh =
            !self.connected.load(Ordering::Acquire) && self.ever_connected.load(Ordering::Acquire);
        let conn = self.open(fresh)?;
        // Called at start and after a loss: the cluster may have lost topics (or be a new
        // one), so ask again rather than trust what was created before.
        conn.admin.forget_topics();
        let timeout = self
            .settings
            .connect_timeout
            .min(self.settings.request_timeout);
        let ready = conn
            .admin
            .check_broker(timeout)
            .and_then(|()| conn.admin.ensure_topics(&self.settings.topics.shared()));
        if let Err(e) = &ready {
            log::warn!(target: "gamelan.executor.error", "{e}");
        }
        self.connected.store(ready.is_ok(), Ordering::Release);
        if ready.is_ok() {
            self.ever_connected.store(true, Ordering::Release);
        }
        Ok(ready?)
    }

    fn register(&self, registrations: &[Registration]) -> Result<(), TransportError> {
        let conn = self.connection()?;
        let mut types: Vec<String> = Vec::new();
        {
            let mut guard = self
                .executors
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let mut next = Executors {
                by_id: guard.by_id.clone(),
            };
            for r in registrations {
                next.by_id.insert(r.executor_id.clone(), r.metadata.clone());
                if !types.contains(&r.metadata.executor_type) {
                    types.push(r.metadata.executor_type.clone());
                }
            }
            *guard = Arc::new(next);
        }
        let task_topics: Vec<String> = types
            .iter()
            .map(|t| self.settings.topics.tasks_for(t))
            .collect();
        let names: Vec<&str> = task_topics.iter().map(String::as_str).collect();
        conn.admin.ensure_topics(&names)?;
        self.ensure_consumers(&conn, &types)?;
        let now = time::now_ms();
        let records: Vec<(String, Vec<u8>)> = registrations
            .iter()
            .map(|r| {
                (
                    r.executor_id.clone(),
                    ExecutorRecord::registration(r, now).encode(),
                )
            })
            .collect();
        self.note(self.produce_records(&conn, &self.settings.topics.registrations, &records))?;
        let (lock, cv) = &self.registered;
        *lock.lock().unwrap_or_else(PoisonError::into_inner) = true;
        cv.notify_all();
        Ok(())
    }

    fn heartbeat(&self, heartbeats: &[Heartbeat]) -> Result<(), TransportError> {
        let conn = self.connection()?;
        let executors = self.executors();
        let now = time::now_ms();
        let records: Vec<(String, Vec<u8>)> = heartbeats
            .iter()
            .map(|h| {
                let meta = executors.by_id.get(&h.executor_id);
                (
                    h.executor_id.clone(),
                    ExecutorRecord::heartbeat(h, meta, now).encode(),
                )
            })
            .collect();
        self.note(self.produce_records(&conn, &self.settings.topics.heartbeats, &records))
    }

    fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Inbound>, TransportError> {
        let conn = self.connection()?;
        let deadline = Instant::now() + wait;
        conn.resend_failed();
        let consumers = conn.consumers();
        if consumers.is_empty() {
            self.wait_for_registration(wait);
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity(max.min(1024));
        // Tasks already in hand (no credit earlier, or handed back) go first.
        for c in &consumers {
            let mut inner = c.state.lock();
            while out.len() < max {
                let Some(p) = inner.pending.pop_front() else {
                    break;
                };
                out.push(Inbound::Task(p.task));
            }
        }
        for c in &consumers {
            c.set_paused(max == 0);
        }
        let polled = if out.len() < max || max == 0 {
            self.poll_into(&conn, &consumers, max, deadline, &mut out)
        } else {
            Ok(())
        };
        for c in &consumers {
            c.commit_due();
        }
        polled?;
        Ok(out)
    }

    fn report(&self, results: &[TaskResult]) -> Result<Vec<ReportOutcome>, TransportError> {
        let conn = self.connection()?;
        if results.is_empty() {
            return Ok(Vec::new());
        }
        let topic = self.settings.topics.results.as_str();
        let deadline = Instant::now() + self.settings.request_timeout;
        let waiter = Arc::new(BatchWaiter::new(results.len()));
        let mut buf = Vec::with_capacity(512);
        for (i, r) in results.iter().enumerate() {
            buf.clear();
            encode_result(r, &mut buf);
            let opaque = || {
                Box::new(Delivery::Batch {
                    waiter: Arc::clone(&waiter),
                    index: i,
                })
            };
            let record = BaseRecord::with_opaque_to(topic, opaque())
                .key(r.run_id().as_bytes())
                .payload(buf.as_slice());
            let sent = match send(&conn.producer, record, deadline) {
                Err(RdKafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)) => {
                    let len = buf.len();
                    log::error!(target: "gamelan.executor.error", "result for {} ({len} bytes) is too large for the broker; reporting {RESULT_TOO_LARGE}", r.task_id());
                    let mut small = Vec::with_capacity(256);
                    encode_result(&too_large(r, len), &mut small);
                    let record = BaseRecord::with_opaque_to(topic, opaque())
                        .key(r.run_id().as_bytes())
                        .payload(small.as_slice());
                    send(&conn.producer, record, deadline)
                }
                other => other,
            };
            if let Err(e) = sent {
                waiter.complete(i, Err(e.to_string()));
            }
        }
        let outcomes = waiter.wait(deadline);
        let acked = || {
            results
                .iter()
                .zip(&outcomes)
                .filter(|(_, o)| matches!(o, Some(Ok(()))))
                .map(|(r, _)| r.task_id())
        };
        for c in conn.consumers() {
            c.state.finish_tasks(acked());
            c.commit_due();
        }
        let answered = outcomes
            .iter()
            .take_while(|o| matches!(o, Some(Ok(()))))
            .count();
        if answered == 0 {
            let reason = match outcomes.first() {
                Some(Some(Err(e))) => e.clone(),
                _ => format!(
                    "no acknowledgement from {} within {:?}",
                    self.settings.bootstrap_servers, self.settings.request_timeout
                ),
            };
            return self.note(Err(TransportError::Unavailable(format!(
                "producing results to '{topic}' failed: {reason}"
            ))));
        }
        Ok(vec![ReportOutcome::Accepted(Acceptance::Accept); answered])
    }

    fn release(&self, tasks: &[Task]) -> Result<(), TransportError> {
        let conn = self.connection()?;
        // Handed back tasks stay uncommitted and are offered again before anything new;
        // on close they are simply not committed, so the group re-delivers them.
        for task in tasks.iter().rev() {
            for c in conn.consumers() {
                let mut inner = c.state.lock();
                if let Some((partition, offset)) = inner.offsets.location(&task.task_id) {
                    inner.pending.push_front(Pending {
                        partition,
                        offset,
                        task: task.clone(),
                    });
                    break;
                }
            }
        }
        Ok(())
    }

    fn unregister(&self, executor_ids: &[String]) -> Result<(), TransportError> {
        let conn = self.connection()?;
        let executors = self.executors();
        let now = time::now_ms();
        let records: Vec<(String, Vec<u8>)> = executor_ids
            .iter()
            .map(|id| {
                (
                    id.clone(),
                    ExecutorRecord::unregistration(id, executors.by_id.get(id), now).encode(),
                )
            })
            .collect();
        self.note(self.produce_records(&conn, &self.settings.topics.unregistrations, &records))
    }

    fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.registered.1.notify_all();
        let Some(conn) = self
            .conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return;
        };
        for c in conn.consumers() {
            c.state.closing.store(true, Ordering::Release);
            c.commit_all();
        }
        conn.consumers
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        if let Err(e) = conn.producer.flush(self.settings.request_timeout) {
            log::warn!(target: "gamelan.executor.error", "Kafka producer flush on close: {e}");
        }
    }
}

impl Drop for KafkaTransport {
    fn drop(&mut self) {
        // Not `close`: whatever finished is committed by the revoke the consumer's exit
        // triggers, and nothing else is.
        self.closed.store(true, Ordering::Release);
    }
}
