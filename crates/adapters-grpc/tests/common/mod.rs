//! A small in-memory engine and a harness serving it over real sockets.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use gamelan_domain::{Acceptance, ExecutorMetadata, ResultIntake, Task, TaskResult};
use gamelan_grpc::{Delivery, GrpcClientSettings, GrpcServerSettings};
use gamelan_ports::{
    EngineError, EngineService, EngineStatistics, ExecutorView, Heartbeat, Registered,
    Registration, StreamId, SubmitRequest, TaskSink, TaskView,
};
use tokio::runtime::Runtime;

struct Attached {
    executor_id: String,
    max: usize,
    sink: Arc<dyn TaskSink>,
    in_flight: Vec<Task>,
}

#[derive(Default)]
pub struct Inner {
    pub executors: HashMap<String, Registration>,
    pub heartbeats: Vec<Heartbeat>,
    pub queue: VecDeque<Task>,
    streams: BTreeMap<StreamId, Attached>,
    next_stream: StreamId,
    intake: ResultIntake,
    pub accepted: Vec<TaskResult>,
    pub acked: Vec<String>,
    /// Deliveries so far, and the most tasks ever in flight on one stream.
    pub delivered: usize,
    pub max_in_flight_seen: usize,
    pub detached: usize,
}

impl Inner {
    pub fn attached(&self) -> usize {
        self.streams.len()
    }

    pub fn in_flight(&self) -> usize {
        self.streams.values().map(|s| s.in_flight.len()).sum()
    }

    /// Like a real engine: a sink that refuses (its stream is gone) is dropped and its tasks
    /// requeued, and the task tries the next stream.
    fn dispatch(&mut self) {
        let mut waiting = VecDeque::new();
        while let Some(task) = self.queue.pop_front() {
            let executors = &self.executors;
            let target = self
                .streams
                .iter()
                .find(|(_, s)| {
                    s.in_flight.len() < s.max
                        && executors
                            .get(&s.executor_id)
                            .is_some_and(|r| r.metadata.handles(&task.node_type))
                })
                .map(|(id, _)| *id);
            let Some(id) = target else {
                waiting.push_back(task);
                continue;
            };
            let Some(s) = self.streams.get_mut(&id) else {
                continue;
            };
            if s.sink.deliver(Arc::new(task.clone())) {
                s.in_flight.push(task);
                self.delivered += 1;
                self.max_in_flight_seen = self.max_in_flight_seen.max(s.in_flight.len());
            } else {
                if let Some(dead) = self.streams.remove(&id) {
                    self.detached += 1;
                    self.queue.extend(dead.in_flight);
                }
                self.queue.push_front(task);
            }
        }
        self.queue = waiting;
    }

    fn take_in_flight(&mut self, task_id: &str) -> Option<Task> {
        for s in self.streams.values_mut() {
            if let Some(i) = s.in_flight.iter().position(|t| t.task_id == task_id) {
                return Some(s.in_flight.remove(i));
            }
        }
        None
    }
}

/// Thread-safe, in-memory; every change wakes [`FakeEngine::wait_for`].
#[derive(Default)]
pub struct FakeEngine {
    inner: Mutex<Inner>,
    changed: Condvar,
}

impl FakeEngine {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }

    fn mutate<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let r = f(&mut self.lock());
        self.changed.notify_all();
        r
    }

    pub fn read<T>(&self, f: impl FnOnce(&Inner) -> T) -> T {
        f(&self.lock())
    }

    /// Waits until `cond` holds; false after `timeout`.
    pub fn wait_for(&self, timeout: Duration, cond: impl Fn(&Inner) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut g = self.lock();
        while !cond(&g) {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            g = self.changed.wait_timeout(g, deadline - now).unwrap().0;
        }
        true
    }

    /// Many tasks with one dispatch pass.
    pub fn enqueue_many(&self, tasks: impl IntoIterator<Item = Task>) {
        self.mutate(|s| {
            for task in tasks {
                s.intake.dispatched(
                    &task.run_id,
                    &task.node_id,
                    task.attempt,
                    &task.execution_token,
                );
                s.queue.push_back(task);
            }
            s.dispatch();
        });
    }

    /// A task as the engine would dispatch it (the intake learns its attempt and token).
    pub fn enqueue(&self, task: Task) {
        self.mutate(|s| {
            s.intake.dispatched(
                &task.run_id,
                &task.node_id,
                task.attempt,
                &task.execution_token,
            );
            s.queue.push_back(task);
            s.dispatch();
        });
    }
}

impl EngineService for FakeEngine {
    fn register(&self, registration: Registration) -> Result<Registered, EngineError> {
        self.mutate(|s| {
            let id = registration.executor_id.clone();
            s.executors.insert(id.clone(), registration);
            s.dispatch();
            Ok(Registered {
                executor_id: id,
                status: "REGISTERED".into(),
                registered_at_ms: 1_700_000_000_000,
            })
        })
    }

    fn unregister(&self, executor_id: &str) -> Result<(), EngineError> {
        self.mutate(|s| {
            s.executors
                .remove(executor_id)
                .map(|_| ())
                .ok_or_else(|| EngineError::UnknownExecutor(executor_id.into()))
        })
    }

    fn heartbeat(&self, heartbeat: &Heartbeat) -> Result<(), EngineError> {
        self.mutate(|s| {
            if !s.executors.contains_key(&heartbeat.executor_id) {
                return Err(EngineError::UnknownExecutor(heartbeat.executor_id.clone()));
            }
            s.heartbeats.push(heartbeat.clone());
            Ok(())
        })
    }

    fn attach(
        &self,
        executor_id: &str,
        max_in_flight: u32,
        sink: Arc<dyn TaskSink>,
    ) -> Result<StreamId, EngineError> {
        self.mutate(|s| {
            if !s.executors.contains_key(executor_id) {
                return Err(EngineError::UnknownExecutor(executor_id.into()));
            }
            s.next_stream += 1;
            let id = s.next_stream;
            s.streams.insert(
                id,
                Attached {
                    executor_id: executor_id.into(),
                    max: max_in_flight as usize,
                    sink,
                    in_flight: Vec::new(),
                },
            );
            s.dispatch();
            Ok(id)
        })
    }

    fn detach(&self, _executor_id: &str, stream: StreamId) {
        self.mutate(|s| {
            if let Some(a) = s.streams.remove(&stream) {
                s.detached += 1;
                for t in a.in_flight.into_iter().rev() {
                    s.queue.push_front(t);
                }
                s.dispatch();
            }
        });
    }

    fn acknowledge(&self, task_id: &str) -> Result<(), EngineError> {
        self.mutate(|s| {
            let known = s
                .streams
                .values()
                .any(|a| a.in_flight.iter().any(|t| t.task_id == task_id));
            // Recorded either way: an ack may overtake nothing but may trail its result.
            s.acked.push(task_id.into());
            if known {
                Ok(())
            } else {
                Err(EngineError::UnknownTask(task_id.into()))
            }
        })
    }

    fn poll(&self, _: &str, _: usize, _: Duration) -> Result<Vec<Task>, EngineError> {
        Ok(Vec::new())
    }

    fn release(&self, _executor_id: &str, task_ids: &[String]) -> Result<(), EngineError> {
        self.mutate(|s| {
            for id in task_ids {
                if let Some(t) = s.take_in_flight(id) {
                    s.queue.push_back(t);
                }
            }
            s.dispatch();
            Ok(())
        })
    }

    fn report(&self, results: Vec<TaskResult>) -> Vec<Result<Acceptance, EngineError>> {
        self.mutate(|s| {
            let answers = results
                .into_iter()
                .map(|r| {
                    let a = s.intake.report(
                        r.run_id(),
                        r.node_id(),
                        r.attempt(),
                        r.execution_token(),
                    )?;
                    if a == Acceptance::Accept {
                        s.take_in_flight(r.task_id());
                        s.accepted.push(r);
                    }
                    Ok(a)
                })
                .collect();
            s.dispatch();
            answers
        })
    }

    fn submit(&self, _: SubmitRequest) -> Result<TaskView, EngineError> {
        Err(EngineError::Invalid("not supported by the fake".into()))
    }

    fn completions(&self, after: u64, _: usize, _: Duration) -> (Vec<TaskView>, u64) {
        (Vec::new(), after)
    }

    fn task(&self, task_id: &str) -> Result<TaskView, EngineError> {
        Err(EngineError::UnknownTask(task_id.into()))
    }

    fn executors(&self) -> Vec<ExecutorView> {
        let ids: Vec<String> = self.read(|s| s.executors.keys().cloned().collect());
        ids.iter().filter_map(|id| self.executor(id).ok()).collect()
    }

    fn executor(&self, executor_id: &str) -> Result<ExecutorView, EngineError> {
        self.read(|s| {
            let r = s
                .executors
                .get(executor_id)
                .ok_or_else(|| EngineError::UnknownExecutor(executor_id.into()))?;
            Ok(ExecutorView {
                executor_id: r.executor_id.clone(),
                executor_type: r.metadata.executor_type.clone(),
                communication_type: r.metadata.communication_type.to_string(),
                endpoint: r.endpoint.clone(),
                supported_node_types: r.metadata.supported_node_types.clone(),
                max_concurrent_tasks: r.metadata.max_concurrent_tasks,
                version: r.metadata.version.clone(),
                alive: true,
                in_flight: 0,
                status: "READY".into(),
                registered_at_ms: 0,
                last_heartbeat_ms: 0,
                completed_tasks: 0,
                failed_tasks: 0,
            })
        })
    }

    fn statistics(&self) -> EngineStatistics {
        EngineStatistics::default()
    }
}

/// The engine's gRPC server on its own runtime; `kill` drops every connection at once, as a
/// crashed engine would.
pub struct EngineServer {
    pub addr: SocketAddr,
    runtime: Option<Runtime>,
}

impl EngineServer {
    pub fn start(engine: Arc<FakeEngine>, settings: GrpcServerSettings) -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), engine, settings)
    }

    pub fn start_on(
        addr: SocketAddr,
        engine: Arc<FakeEngine>,
        settings: GrpcServerSettings,
    ) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(addr))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        runtime.spawn(async move {
            let routes = gamelan_grpc::routes(engine, settings);
            gamelan_grpc::serve(listener, routes, None, std::future::pending())
                .await
                .unwrap();
        });
        Self {
            addr,
            runtime: Some(runtime),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn kill(mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }

    /// A runtime for raw clients in tests.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.as_ref().unwrap().block_on(f)
    }
}

impl Drop for EngineServer {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

pub fn registration(id: &str, executor_type: &str, max: u32) -> Registration {
    Registration {
        executor_id: id.into(),
        metadata: ExecutorMetadata::new(executor_type).max_concurrent_tasks(max),
        endpoint: String::new(),
        attributes: BTreeMap::new(),
    }
}

pub fn task(i: usize, node_type: &str) -> Task {
    let mut t = Task::new(format!("run-{i}"), "node", node_type, 1);
    t.execution_token = format!("tok-{i}");
    t.context.insert("amount".into(), (i * 100).into());
    t
}

pub fn client_settings(url: &str, delivery: Delivery) -> GrpcClientSettings {
    GrpcClientSettings {
        engine_url: url.into(),
        delivery,
        push_listen_addr: "127.0.0.1:0".parse().unwrap(),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        ..GrpcClientSettings::default()
    }
}

pub const PATIENCE: Duration = Duration::from_secs(10);
