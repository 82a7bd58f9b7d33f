//! Executor side: [`KafkaTransport`], an `EngineTransport` over Kafka topics.
//!
//! Tasks come from `workflow-tasks.<type>` through a consumer group per executor type (so
//! instances of a type share its partitions); results go to `workflow-results` with acks=all
//! and idempotence; a task's offset is committed only after its result was acknowledged,
//! and per partition only up to the first unfinished task. A crash therefore re-delivers,
//! never loses.

mod arrivals;
mod consumer;
mod intake;
mod producer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use gamelan_domain::{Acceptance, ExecutorMetadata, Task, TaskResult};
use gamelan_ports::{
    EngineTransport, Heartbeat, Inbound, Registration, ReportOutcome, TransportError,
};
use rdkafka::error::{KafkaError as RdKafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};

use self::arrivals::Arrivals;
use self::consumer::{Pending, TypeConsumer};
use self::producer::{Delivery, ProducerCtx, Retry};
use crate::admin::Admin;
use crate::delivery::BatchWaiter;
use crate::error::KafkaError;
use crate::messages::{ExecutorRecord, encode_result, time};
use crate::settings::KafkaClientSettings;

pub use gamelan_domain::codes::RESULT_TOO_LARGE;

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
    /// The clients were renewed since the last loss (once per outage is enough).
    renewed: AtomicBool,
    conn: Mutex<Option<Arc<Connection>>>,
    executors: RwLock<Arc<Executors>>,
    /// Wakes a `receive` that waits for the first registration.
    registered: (Mutex<bool>, Condvar),
    /// Signalled by every consumer's queue turning non-empty; kept across reconnects with
    /// the consumers themselves.
    arrivals: Arc<Arrivals>,
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
            renewed: AtomicBool::new(false),
            conn: Mutex::new(None),
            executors: RwLock::new(Arc::new(Executors::default())),
            registered: (Mutex::new(false), Condvar::new()),
            arrivals: Arc::default(),
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
                    &self.arrivals,
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
                    &self.arrivals,
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
        // An outage noticed meanwhile (by the intake) ends the wait: no point in more.
        let outcomes = waiter.wait(deadline, || !self.connected.load(Ordering::Acquire));
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

impl EngineTransport for KafkaTransport {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn connect(&self) -> Result<(), TransportError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(TransportError::Closed);
        }
        // Reconnecting after an outage: new producer and admin client, same consumers.
        let fresh = !self.connected.load(Ordering::Acquire)
            && self.ever_connected.load(Ordering::Acquire)
            && !self.renewed.swap(true, Ordering::AcqRel);
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
            self.renewed.store(false, Ordering::Release);
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
                    let replacement = r.too_large(format!(
                        "result of {len} bytes is larger than the broker accepts"
                    ));
                    encode_result(&replacement, &mut small);
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
        // An outage noticed meanwhile (by the intake) ends the wait: no point in more.
        let outcomes = waiter.wait(deadline, || !self.connected.load(Ordering::Acquire));
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
        // Without a broker there is nobody to commit to or flush to: close at once, and
        // what was not committed is re-delivered (never lost).
        let reachable = self.connected.load(Ordering::Acquire);
        for c in conn.consumers() {
            c.state.closing.store(true, Ordering::Release);
            if reachable {
                c.commit_all();
            }
        }
        conn.consumers
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        if reachable && let Err(e) = conn.producer.flush(self.settings.request_timeout) {
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
