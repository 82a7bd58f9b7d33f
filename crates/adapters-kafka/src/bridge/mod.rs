//! Engine side: [`KafkaEngineBridge`] connects an `EngineService` to the Kafka topics.
//!
//! One thread consumes `executor-registrations`, `executor-heartbeats`,
//! `executor-unregistrations` and `workflow-results` in the engine's consumer group, feeds
//! them to the engine (results through its idempotent intake, so repeats come back as
//! ALREADY_PROCESSED) and commits the offsets only after the engine took them. Tasks for a
//! Kafka executor leave through a [`TaskSink`](gamelan_ports::TaskSink) that produces them
//! to `workflow-tasks.<type>`.

mod sink;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use gamelan_domain::{Backoff, TaskResult};
use gamelan_ports::{EngineError, EngineService, StreamId};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use self::sink::{KafkaTaskSink, SinkCtx};
use crate::admin::Admin;
use crate::dlq;
use crate::error::KafkaError;
use crate::messages::{ExecutorRecord, MessageError, decode_record, decode_result};
use crate::settings::KafkaEngineSettings;

/// How long one poll waits, which bounds how late a shutdown is noticed.
const POLL_WAIT: Duration = Duration::from_millis(100);
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// What `/health` can say about the bridge.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BridgeStatus {
    /// Topics exist and the consumer is subscribed.
    pub ready: bool,
    /// The last failure (broker unreachable, topic creation refused), cleared on recovery.
    pub last_error: Option<String>,
    /// Kafka executors with a task stream attached.
    pub executors: usize,
}

struct Attached {
    stream: StreamId,
    sink: Arc<KafkaTaskSink>,
}

struct Shared {
    engine: Arc<dyn EngineService>,
    settings: KafkaEngineSettings,
    producer: ThreadedProducer<SinkCtx>,
    admin: Admin,
    stop: AtomicBool,
    streams: Mutex<HashMap<String, Attached>>,
    status: Mutex<BridgeStatus>,
}

/// The running bridge. Dropping it shuts it down.
pub struct KafkaEngineBridge {
    shared: Arc<Shared>,
    stop_tx: Mutex<Option<Sender<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for KafkaEngineBridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaEngineBridge")
            .field("bootstrap_servers", &self.shared.settings.bootstrap_servers)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl KafkaEngineBridge {
    /// Creates the clients and starts the bridge thread. Fails only on invalid settings;
    /// an unreachable broker is retried in the background and shown by [`Self::status`].
    pub fn start(
        engine: Arc<dyn EngineService>,
        settings: KafkaEngineSettings,
    ) -> Result<Self, KafkaError> {
        let producer: ThreadedProducer<SinkCtx> = settings
            .producer_config()
            .create_with_context(SinkCtx {
                engine: Arc::downgrade(&engine),
            })
            .map_err(KafkaError::config("engine producer"))?;
        let consumer: BaseConsumer = settings
            .consumer_config()
            .create()
            .map_err(KafkaError::config("engine consumer"))?;
        let admin = Admin::new(
            &settings.admin_config(),
            &settings.bootstrap_servers,
            settings.partitions,
            settings.replication_factor,
            settings.request_timeout,
        )?;
        let shared = Arc::new(Shared {
            engine,
            settings,
            producer,
            admin,
            stop: AtomicBool::new(false),
            streams: Mutex::new(HashMap::new()),
            status: Mutex::new(BridgeStatus::default()),
        });
        let (stop_tx, stop_rx) = mpsc::channel();
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("gamelan-kafka-engine".into())
            .spawn(move || worker.run(&consumer, &stop_rx))?;
        Ok(Self {
            shared,
            stop_tx: Mutex::new(Some(stop_tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    pub fn status(&self) -> BridgeStatus {
        let mut s = self
            .shared
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        s.executors = self
            .shared
            .streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        s
    }

    /// Stops consuming, detaches the Kafka executors' streams (their unfinished tasks go
    /// back to the engine's queues) and flushes tasks still in the producer. Idempotent.
    pub fn shutdown(&self) {
        self.shared.stop.store(true, Ordering::Release);
        drop(
            self.stop_tx
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(t) = thread
            && t.join().is_err()
        {
            log::error!(target: "gamelan.engine", "the Kafka bridge thread panicked");
        }
        let streams: Vec<(String, Attached)> = self
            .shared
            .streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .collect();
        for (id, a) in streams {
            self.shared.engine.detach(&id, a.stream);
        }
        if let Err(e) = self
            .shared
            .producer
            .flush(self.shared.settings.request_timeout)
        {
            log::warn!(target: "gamelan.engine", "Kafka producer flush on shutdown: {e}");
        }
    }
}

impl Drop for KafkaEngineBridge {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Errors after which the same result may be taken later.
fn retryable(e: &EngineError) -> bool {
    matches!(
        e,
        EngineError::Overloaded { .. } | EngineError::Storage(_) | EngineError::ShuttingDown
    )
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    fn set_error(&self, e: Option<String>) {
        let mut s = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        s.last_error = e;
    }

    /// Waits `d` or until shutdown; true when shutting down.
    fn pause(&self, stop: &Receiver<()>, d: Duration) -> bool {
        match stop.recv_timeout(d) {
            Err(RecvTimeoutError::Timeout) => self.stopping(),
            Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
        }
    }

    fn run(&self, consumer: &BaseConsumer, stop: &Receiver<()>) {
        let topics = &self.settings.topics;
        let mut backoff = Backoff::new(BACKOFF_START, BACKOFF_MAX);
        loop {
            if self.stopping() {
                return;
            }
            let ready = self
                .admin
                .check_broker(self.settings.request_timeout)
                .and_then(|()| self.admin.ensure_topics(&topics.shared()))
                .and_then(|()| {
                    consumer
                        .subscribe(&[
                            &topics.results,
                            &topics.registrations,
                            &topics.heartbeats,
                            &topics.unregistrations,
                        ])
                        .map_err(|e| KafkaError::Consume(format!("cannot subscribe: {e}")))
                });
            match ready {
                Ok(()) => break,
                Err(e) => {
                    let wait = backoff.next_delay();
                    log::error!(target: "gamelan.engine", "Kafka bridge not ready: {e}; retrying in {wait:?}");
                    self.set_error(Some(e.to_string()));
                    if self.pause(stop, wait) {
                        return;
                    }
                }
            }
        }
        {
            let mut s = self.status.lock().unwrap_or_else(PoisonError::into_inner);
            s.ready = true;
            s.last_error = None;
        }
        log::info!(target: "gamelan.engine", "Kafka bridge consuming from {} (group {})", self.settings.bootstrap_servers, self.settings.group_id);
        let mut positions: HashMap<(String, i32), i64> = HashMap::new();
        while !self.stopping() {
            if let Some(commit) = self.batch(consumer, stop) {
                for (k, v) in commit {
                    positions.insert(k, v);
                }
                commit_positions(consumer, &positions, CommitMode::Async);
            }
        }
        commit_positions(consumer, &positions, CommitMode::Sync);
    }

    /// Polls one batch and feeds it to the engine; returns the positions to commit, or
    /// `None` when shutdown interrupted it before the engine took everything.
    fn batch(
        &self,
        consumer: &BaseConsumer,
        stop: &Receiver<()>,
    ) -> Option<HashMap<(String, i32), i64>> {
        let topics = &self.settings.topics;
        let mut msgs: Vec<BorrowedMessage<'_>> = Vec::new();
        let mut timeout = POLL_WAIT;
        while msgs.len() < self.settings.max_batch.max(1) {
            match consumer.poll(timeout) {
                None => break,
                Some(Ok(m)) => msgs.push(m),
                Some(Err(e)) => {
                    log::warn!(target: "gamelan.engine", "Kafka bridge consumer: {e}");
                    self.set_error(Some(format!("Kafka consumer: {e}")));
                    break;
                }
            }
            timeout = Duration::ZERO;
        }
        if msgs.is_empty() {
            return Some(HashMap::new());
        }
        let mut results = Vec::new();
        let mut result_msgs = Vec::new();
        for (i, m) in msgs.iter().enumerate() {
            let topic = m.topic();
            if topic == topics.results {
                match decode_result(m.payload()) {
                    Ok(r) => {
                        results.push(r);
                        result_msgs.push(i);
                    }
                    Err(e) => self.dead_letter(m, &e),
                }
            } else if topic == topics.registrations {
                self.on_record(m, Self::on_registration);
            } else if topic == topics.heartbeats {
                self.on_record(m, Self::on_heartbeat);
            } else if topic == topics.unregistrations {
                self.on_record(m, Self::on_unregistration);
            }
        }
        if !results.is_empty() && !self.report(results, &msgs, &result_msgs, stop) {
            return None;
        }
        let mut commit = HashMap::new();
        for m in &msgs {
            commit.insert((m.topic().to_owned(), m.partition()), m.offset() + 1);
        }
        Some(commit)
    }

    /// Hands results to the engine's intake, retrying those it could not take yet.
    fn report(
        &self,
        results: Vec<TaskResult>,
        msgs: &[BorrowedMessage<'_>],
        result_msgs: &[usize],
        stop: &Receiver<()>,
    ) -> bool {
        let mut batch = results;
        let mut indices: Vec<usize> = result_msgs.to_vec();
        let mut backoff = Backoff::new(BACKOFF_START, BACKOFF_MAX);
        loop {
            let answers = self.engine.report(batch);
            let mut again = Vec::new();
            for (&i, answer) in indices.iter().zip(answers) {
                match answer {
                    Ok(acceptance) => {
                        log::trace!(target: "gamelan.engine", "Kafka result at offset {}: {}", msgs[i].offset(), acceptance.as_str());
                    }
                    Err(e) if retryable(&e) => again.push(i),
                    Err(e) => {
                        log::warn!(target: "gamelan.engine", "Kafka result at {}[{}]@{} refused: {e}", msgs[i].topic(), msgs[i].partition(), msgs[i].offset());
                    }
                }
            }
            if again.is_empty() {
                return true;
            }
            let wait = backoff.next_delay();
            log::warn!(target: "gamelan.engine", "engine could not take {} Kafka result(s) yet; retrying in {wait:?}", again.len());
            if self.pause(stop, wait) {
                return false;
            }
            // Decoded again from the messages kept for this, instead of cloning every result.
            batch = again
                .iter()
                .filter_map(|&i| decode_result(msgs[i].payload()).ok())
                .collect();
            indices = again;
        }
    }

    fn on_record(&self, m: &BorrowedMessage<'_>, handle: fn(&Self, ExecutorRecord)) {
        match decode_record(m.payload()) {
            Ok(rec) => handle(self, rec),
            Err(e) => self.dead_letter(m, &e),
        }
    }

    fn on_registration(&self, rec: ExecutorRecord) {
        let reg = match rec.to_registration() {
            Ok(r) => r,
            Err(e) => {
                log::warn!(target: "gamelan.engine", "Kafka registration of '{}' ignored: {e}", rec.executor_id);
                return;
            }
        };
        let executor_type = reg.metadata.executor_type.clone();
        let max = reg.metadata.max_concurrent_tasks;
        match self.engine.register(reg) {
            Ok(_) => {
                log::info!(target: "gamelan.engine", "Kafka executor {} ({executor_type}) registered", rec.executor_id);
                self.attach(&rec.executor_id, &executor_type, max);
            }
            Err(e) => {
                log::warn!(target: "gamelan.engine", "Kafka registration of '{}' refused: {e}", rec.executor_id);
            }
        }
    }

    fn on_heartbeat(&self, rec: ExecutorRecord) {
        let hb = rec.to_heartbeat();
        match self.engine.heartbeat(&hb) {
            Ok(()) => {
                let attached = self
                    .streams
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(&rec.executor_id)
                    .is_some_and(|a| a.sink.usable());
                if !attached {
                    // Known to the engine but without a stream here (this bridge restarted,
                    // or a send was refused): attach one.
                    match self.engine.executor(&rec.executor_id) {
                        Ok(view) => {
                            self.attach(
                                &rec.executor_id,
                                &view.executor_type,
                                view.max_concurrent_tasks,
                            );
                        }
                        Err(e) => {
                            log::warn!(target: "gamelan.engine", "heartbeat of {}: {e}", rec.executor_id);
                        }
                    }
                }
            }
            Err(EngineError::UnknownExecutor(_)) if !rec.executor_type.is_empty() => {
                // The engine forgot it (restarted without a store): the heartbeat carries
                // the registration.
                self.on_registration(rec);
                if let Err(e) = self.engine.heartbeat(&hb) {
                    log::warn!(target: "gamelan.engine", "heartbeat of {}: {e}", hb.executor_id);
                }
            }
            Err(e) => {
                log::warn!(target: "gamelan.engine", "heartbeat of {}: {e}", hb.executor_id);
            }
        }
    }

    fn on_unregistration(&self, rec: ExecutorRecord) {
        let old = self
            .streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&rec.executor_id);
        if let Some(a) = old {
            self.engine.detach(&rec.executor_id, a.stream);
        }
        match self.engine.unregister(&rec.executor_id) {
            Ok(()) | Err(EngineError::UnknownExecutor(_)) => {
                log::info!(target: "gamelan.engine", "Kafka executor {} unregistered", rec.executor_id);
            }
            Err(e) => {
                log::warn!(target: "gamelan.engine", "unregistering {}: {e}", rec.executor_id);
            }
        }
    }

    /// Opens (or re-opens) the executor's task stream, producing to its type's topic.
    fn attach(&self, executor_id: &str, executor_type: &str, max_in_flight: u32) {
        let topic = self.settings.topics.tasks_for(executor_type);
        if let Err(e) = self.admin.ensure_topics(&[&topic]) {
            log::error!(target: "gamelan.engine", "{e}");
            self.set_error(Some(e.to_string()));
        }
        let old = self
            .streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(executor_id);
        if let Some(a) = old {
            self.engine.detach(executor_id, a.stream);
        }
        let sink = Arc::new(KafkaTaskSink::new(
            self.producer.clone(),
            topic,
            executor_type.to_owned(),
            executor_id,
        ));
        match self
            .engine
            .attach(executor_id, max_in_flight.max(1), Arc::clone(&sink) as _)
        {
            Ok(stream) => {
                self.streams
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(executor_id.to_owned(), Attached { stream, sink });
            }
            Err(e) => {
                log::warn!(target: "gamelan.engine", "cannot attach Kafka executor {executor_id}: {e}");
            }
        }
    }

    /// An unusable message on the engine's topics goes to the dead letter topic.
    fn dead_letter(&self, m: &BorrowedMessage<'_>, reason: &MessageError) {
        let dlq = &self.settings.topics.dlq;
        let reason = reason.to_string();
        log::warn!(target: "gamelan.engine", "unusable message at {}[{}]@{} sent to {dlq}: {reason}", m.topic(), m.partition(), m.offset());
        let headers = dlq::headers(m, &reason, &self.settings.group_id);
        // Best effort: the engine's own topics are not where poison is expected to pile up.
        let mut record: BaseRecord<'_, [u8], [u8], Box<sink::SinkDelivery>> =
            BaseRecord::with_opaque_to(dlq, Box::new(sink::SinkDelivery::DeadLetter))
                .headers(headers);
        if let Some(k) = m.key() {
            record = record.key(k);
        }
        if let Some(p) = m.payload() {
            record = record.payload(p);
        }
        if let Err((e, _)) = self.producer.send(record) {
            log::error!(target: "gamelan.engine", "cannot write dead letter to {dlq}: {e}");
        }
    }
}

fn commit_positions(
    consumer: &BaseConsumer,
    positions: &HashMap<(String, i32), i64>,
    mode: CommitMode,
) {
    if positions.is_empty() {
        return;
    }
    let mut tpl = TopicPartitionList::with_capacity(positions.len());
    for ((topic, partition), pos) in positions {
        if let Err(e) = tpl.add_partition_offset(topic, *partition, Offset::Offset(*pos)) {
            log::warn!(target: "gamelan.engine", "Kafka bridge commit: {e}");
            return;
        }
    }
    if let Err(e) = consumer.commit(&tpl, mode) {
        log::warn!(target: "gamelan.engine", "Kafka bridge commit failed: {e}");
    }
}
