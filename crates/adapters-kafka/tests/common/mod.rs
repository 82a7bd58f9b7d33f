//! Shared by the Kafka integration tests: a real broker, a fast-reacting client setup, an
//! echo worker driving a `KafkaTransport` the way the runtime does (one intake thread, one
//! reporting thread), and plain clients to produce tasks and read results.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gamelan_domain::{CommunicationType, ExecutorMetadata, JsonObject, Task, TaskResult};
use gamelan_kafka::messages::{decode_result, encode_task};
use gamelan_kafka::test_broker::TansuBroker;
use gamelan_kafka::{KafkaClientSettings, KafkaTopics, KafkaTransport};
use gamelan_ports::{EngineTransport, Inbound, Registration};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

pub const ECHO: &str = "echo";

/// Polls `cond` every few milliseconds until it holds; panics naming `what` at `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::park_timeout(Duration::from_millis(10));
    }
}

/// Client properties that make group changes quick enough for tests.
pub fn fast_properties() -> Vec<(String, String)> {
    [
        ("heartbeat.interval.ms", "300"),
        ("session.timeout.ms", "6000"),
        ("topic.metadata.refresh.interval.ms", "1000"),
        ("fetch.wait.max.ms", "10"),
        // tansu answers a fetch on an empty partition in a way librdkafka backs off from.
        ("fetch.error.backoff.ms", "10"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

pub fn settings(bootstrap: &str) -> KafkaClientSettings {
    let mut s = KafkaClientSettings::new(bootstrap);
    s.properties = fast_properties();
    s.request_timeout = Duration::from_secs(15);
    s.connect_timeout = Duration::from_secs(5);
    s.revoke_grace = Duration::from_secs(2);
    s
}

pub fn registration(executor_id: &str, executor_type: &str) -> Registration {
    Registration {
        executor_id: executor_id.to_owned(),
        metadata: ExecutorMetadata::new(executor_type)
            .communication(CommunicationType::Kafka)
            .max_concurrent_tasks(64),
        endpoint: String::new(),
        attributes: std::collections::BTreeMap::default(),
    }
}

/// A transport connected and registered as one executor of `executor_type`.
pub fn transport(
    settings: KafkaClientSettings,
    executor_id: &str,
    executor_type: &str,
) -> Arc<KafkaTransport> {
    let t = Arc::new(KafkaTransport::new(settings));
    t.connect().expect("connect");
    t.register(&[registration(executor_id, executor_type)])
        .expect("register");
    t
}

/// `n` echo tasks for runs `<prefix>-0 ..`, each on its own run so keys spread over
/// partitions.
pub fn tasks(prefix: &str, n: usize) -> Vec<Task> {
    (0..n)
        .map(|i| {
            let mut t = Task::new(format!("{prefix}-{i}"), "node", ECHO, 1);
            t.execution_token = format!("tok-{i}");
            t.context.insert("i".into(), serde_json::json!(i));
            t
        })
        .collect()
}

pub fn producer(bootstrap: &str) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "1")
        .create()
        .expect("test producer")
}

/// Produces raw payloads to `topic` and waits until they are all acknowledged.
pub fn produce_raw(bootstrap: &str, topic: &str, messages: &[(Option<&str>, &[u8])]) {
    let p = producer(bootstrap);
    for (key, payload) in messages {
        let mut r: BaseRecord<'_, str, [u8]> = BaseRecord::to(topic).payload(payload);
        if let Some(k) = key {
            r = r.key(k);
        }
        p.send(r).map_err(|(e, _)| e).expect("send");
    }
    p.flush(Duration::from_secs(30)).expect("flush");
}

/// Produces task messages as the engine would (key = run id).
pub fn produce_tasks(bootstrap: &str, topics: &KafkaTopics, tasks: &[Task]) {
    let p = producer(bootstrap);
    let topic = topics.tasks_for(ECHO);
    for t in tasks {
        let mut buf = Vec::new();
        encode_task(t, ECHO, &mut buf);
        let mut record: BaseRecord<'_, str, [u8]> = BaseRecord::to(&topic)
            .key(t.run_id.as_str())
            .payload(buf.as_slice());
        loop {
            match p.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    p.poll(Duration::from_millis(5));
                    record = back;
                }
            }
        }
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(60)).expect("flush tasks");
}

pub fn consumer(bootstrap: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "10")
        .set("fetch.error.backoff.ms", "10")
        .set("heartbeat.interval.ms", "300")
        .create()
        .expect("test consumer")
}

/// Reads `workflow-results` in its own group, keeping every result by task id.
pub struct ResultReader {
    consumer: BaseConsumer,
    pub results: HashMap<String, Vec<TaskResult>>,
    pub undecodable: usize,
}

impl ResultReader {
    pub fn new(bootstrap: &str, topics: &KafkaTopics) -> Self {
        let consumer = consumer(bootstrap, &format!("test-results-{}", unique()));
        consumer.subscribe(&[&topics.results]).expect("subscribe");
        Self {
            consumer,
            results: HashMap::new(),
            undecodable: 0,
        }
    }

    /// Polls until results for every id in `ids` arrived; panics at `timeout`.
    pub fn wait_for(&mut self, ids: impl IntoIterator<Item = String>, timeout: Duration) {
        let mut missing: HashSet<String> = ids
            .into_iter()
            .filter(|id| !self.results.contains_key(id))
            .collect();
        let total = missing.len();
        let deadline = Instant::now() + timeout;
        while !missing.is_empty() {
            assert!(
                Instant::now() < deadline,
                "{} of {total} results missing after {timeout:?}",
                missing.len()
            );
            for id in self.poll(Duration::from_millis(10)) {
                missing.remove(&id);
            }
        }
    }

    /// Polls until the reader's group gave it partitions (so a clock started after this
    /// does not include the group join).
    pub fn wait_assigned(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.consumer.assignment().map_or(0, |a| a.count()) == 0 {
            assert!(
                Instant::now() < deadline,
                "no partitions for the result reader"
            );
            self.poll(Duration::from_millis(50));
        }
    }

    /// Takes what arrived within `wait`; returns the task ids of the new results.
    pub fn poll(&mut self, wait: Duration) -> Vec<String> {
        let mut new = Vec::new();
        let mut timeout = wait;
        while let Some(m) = self.consumer.poll(timeout) {
            timeout = Duration::ZERO;
            let Ok(m) = m else { continue };
            match decode_result(m.payload()) {
                Ok(r) => {
                    new.push(r.task_id().to_owned());
                    self.results
                        .entry(r.task_id().to_owned())
                        .or_default()
                        .push(r);
                }
                Err(_) => self.undecodable += 1,
            }
        }
        new
    }
}

/// What an echo worker saw.
#[derive(Default)]
pub struct Seen {
    pub received: Vec<String>,
    pub reported: usize,
}

/// Drives a transport like the runtime: an intake thread asks for tasks with credit, a
/// reporting thread sends echo results in batches. `report = false` takes tasks and never
/// reports them (a member that dies with work in hand).
pub struct EchoWorker {
    pub transport: Arc<KafkaTransport>,
    pub seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl EchoWorker {
    pub fn start(transport: Arc<KafkaTransport>, report: bool) -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = crossbeam_channel::unbounded::<Task>();
        let intake = {
            let (t, seen, stop) = (Arc::clone(&transport), Arc::clone(&seen), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    match t.receive(256, Duration::from_millis(50)) {
                        Ok(msgs) => {
                            for m in msgs {
                                if let Inbound::Task(task) = m {
                                    lock(&seen).received.push(task.task_id.clone());
                                    if tx.send(task).is_err() {
                                        return;
                                    }
                                }
                            }
                        }
                        Err(e) => {
                            if matches!(e, gamelan_ports::TransportError::Closed) {
                                return;
                            }
                            std::thread::park_timeout(Duration::from_millis(20));
                        }
                    }
                }
            })
        };
        let mut threads = vec![intake];
        if report {
            let (t, seen, stop) = (Arc::clone(&transport), Arc::clone(&seen), Arc::clone(&stop));
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    let Ok(first) = rx.recv_timeout(Duration::from_millis(50)) else {
                        continue;
                    };
                    let mut batch = vec![echo(&first)];
                    while batch.len() < 256 {
                        match rx.try_recv() {
                            Ok(task) => batch.push(echo(&task)),
                            Err(_) => break,
                        }
                    }
                    // Keep resending what was not acknowledged, as the runtime's outbox does.
                    while !batch.is_empty() && !stop.load(Ordering::Acquire) {
                        match t.report(&batch) {
                            Ok(outcomes) => {
                                lock(&seen).reported += outcomes.len();
                                batch.drain(..outcomes.len());
                            }
                            Err(_) => std::thread::park_timeout(Duration::from_millis(50)),
                        }
                    }
                }
            }));
        } else {
            // Hold the tasks forever (until the worker is dropped).
            threads.push(std::thread::spawn(move || {
                let mut held = Vec::new();
                while let Ok(t) = rx.recv() {
                    held.push(t);
                }
            }));
        }
        Self {
            transport,
            seen,
            stop,
            threads,
        }
    }

    pub fn received(&self) -> Vec<String> {
        lock(&self.seen).received.clone()
    }

    pub fn received_count(&self) -> usize {
        lock(&self.seen).received.len()
    }

    /// Stops the threads (the transport itself stays as it is).
    pub fn stop(mut self) -> Arc<KafkaTransport> {
        self.stop.store(true, Ordering::Release);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        Arc::clone(&self.transport)
    }
}

impl Drop for EchoWorker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub fn echo(task: &Task) -> TaskResult {
    let mut out = JsonObject::new();
    out.insert(
        "echo".into(),
        serde_json::Value::Object(task.context.clone()),
    );
    TaskResult::completed(task, out, 1)
}

pub fn unique() -> String {
    use std::sync::atomic::AtomicU64;
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The group's committed offsets on `topic` (partitions 0..partitions), summed.
pub fn committed_total(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> i64 {
    let c = consumer(bootstrap, group);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let committed = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            _ => 0,
        })
        .sum()
}

pub fn start_broker() -> TansuBroker {
    TansuBroker::start()
}
