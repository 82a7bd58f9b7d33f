//! Shared by the integration tests: a small thread-safe in-memory engine and the router
//! served on a real socket (127.0.0.1, port 0) by a tokio runtime owned by the test.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use gamelan_ports::domain::{Acceptance, IntakeError, Task, TaskResult};
use gamelan_ports::{
    AuthError, EngineError, EngineService, EngineStatistics, ExecutorView, Heartbeat, PolledTask,
    Registered, Registration, StreamId, SubmitRequest, TaskSink, TaskState, TaskView, TokenSource,
    TokenVerifier,
};
use gamelan_rest::HttpServerSettings;

#[derive(Default)]
struct State {
    executors: BTreeMap<String, Registration>,
    heartbeats: Vec<Heartbeat>,
    queue: VecDeque<Task>,
    /// task id -> (dispatched task, executor, result already applied)
    dispatched: HashMap<String, (Task, String, bool)>,
    views: HashMap<String, TaskView>,
    completions: Vec<TaskView>,
    released: Vec<String>,
    lookups: Vec<String>,
    /// Set by the test to end every waiting poll at once.
    gate_open: bool,
    submitted: u64,
}

/// Queues tasks by node type, hands them out by long poll, applies results idempotently.
#[derive(Default)]
pub struct FakeEngine {
    state: Mutex<State>,
    changed: Condvar,
    /// Polls currently waiting inside the engine.
    pub waiting: AtomicUsize,
    /// Every `poll` call, waiting or not.
    pub polls: AtomicUsize,
    /// Claims to block on I/O (the server then calls it on the blocking pool); set before
    /// starting the server.
    pub waits_on_io: std::sync::atomic::AtomicBool,
}

impl FakeEngine {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues a ready-made task (any attempt, any token).
    pub fn enqueue(&self, task: Task) {
        let mut s = self.state();
        s.views
            .insert(task.task_id.clone(), view_of(&task, TaskState::Pending));
        s.queue.push_back(task);
        drop(s);
        self.changed.notify_all();
    }

    pub fn open_gate(&self) {
        self.state().gate_open = true;
        self.changed.notify_all();
    }

    /// Forgets every executor, as an ephemeral engine does on restart.
    pub fn forget_executors(&self) {
        self.state().executors.clear();
    }

    pub fn executor_ids(&self) -> Vec<String> {
        self.state().executors.keys().cloned().collect()
    }

    pub fn registration(&self, id: &str) -> Option<Registration> {
        self.state().executors.get(id).cloned()
    }

    pub fn heartbeats(&self) -> Vec<Heartbeat> {
        self.state().heartbeats.clone()
    }

    pub fn released(&self) -> Vec<String> {
        self.state().released.clone()
    }

    pub fn queued(&self) -> usize {
        self.state().queue.len()
    }

    /// Executor ids looked up through `executor()` (the results endpoint checks its id).
    pub fn lookups(&self) -> Vec<String> {
        self.state().lookups.clone()
    }

    pub fn completed(&self, task_id: &str) -> bool {
        self.state()
            .views
            .get(task_id)
            .is_some_and(|v| v.status == TaskState::Completed)
    }
}

fn view_of(task: &Task, status: TaskState) -> TaskView {
    TaskView {
        task_id: task.task_id.clone(),
        submission_id: gamelan_domain::TaskId::new(task.run_id.as_str(), task.node_id.as_str(), 1)
            .to_string(),
        run_id: task.run_id.clone(),
        node_id: task.node_id.clone(),
        node_type: task.node_type.clone(),
        status,
        attempt: task.attempt,
        executor_id: None,
        output: None,
        error: None,
        submitted_at_ms: 1,
        completed_at_ms: None,
    }
}

fn executor_view(r: &Registration) -> ExecutorView {
    ExecutorView {
        executor_id: r.executor_id.clone(),
        executor_type: r.metadata.executor_type.clone(),
        communication_type: r.metadata.communication_type.as_str().to_owned(),
        endpoint: r.endpoint.clone(),
        supported_node_types: r.metadata.supported_node_types.clone(),
        max_concurrent_tasks: r.metadata.max_concurrent_tasks,
        version: r.metadata.version.clone(),
        alive: true,
        in_flight: 0,
        status: "READY".into(),
        registered_at_ms: 1,
        last_heartbeat_ms: 1,
        completed_tasks: 0,
        failed_tasks: 0,
    }
}

impl EngineService for FakeEngine {
    fn register(&self, registration: Registration) -> Result<Registered, EngineError> {
        let id = registration.executor_id.clone();
        self.state().executors.insert(id.clone(), registration);
        Ok(Registered {
            executor_id: id,
            status: "REGISTERED".into(),
            registered_at_ms: 1_700_000_000_000,
        })
    }

    fn unregister(&self, executor_id: &str) -> Result<(), EngineError> {
        self.state()
            .executors
            .remove(executor_id)
            .map(|_| ())
            .ok_or_else(|| EngineError::UnknownExecutor(executor_id.to_owned()))
    }

    fn heartbeat(&self, heartbeat: &Heartbeat) -> Result<(), EngineError> {
        let mut s = self.state();
        if !s.executors.contains_key(&heartbeat.executor_id) {
            return Err(EngineError::UnknownExecutor(heartbeat.executor_id.clone()));
        }
        s.heartbeats.push(heartbeat.clone());
        Ok(())
    }

    fn attach(&self, _: &str, _: u32, _: Arc<dyn TaskSink>) -> Result<StreamId, EngineError> {
        Err(EngineError::Invalid(
            "streams are not supported here".into(),
        ))
    }

    fn detach(&self, _: &str, _: StreamId) {}

    fn acknowledge(&self, _: &str) -> Result<(), EngineError> {
        Ok(())
    }

    fn waits_on_io(&self) -> bool {
        self.waits_on_io.load(Ordering::SeqCst)
    }

    fn poll(
        &self,
        executor_id: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Task>, EngineError> {
        let polled = self.poll_many(&[executor_id.to_owned()], max, wait)?;
        Ok(polled.into_iter().map(|p| p.task).collect())
    }

    /// Hands each queued task to the first named executor that handles it.
    fn poll_many(
        &self,
        executor_ids: &[String],
        max: usize,
        wait: Duration,
    ) -> Result<Vec<PolledTask>, EngineError> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        let deadline = Instant::now() + wait;
        let mut s = self.state();
        let mut registrations = Vec::new();
        for id in executor_ids {
            let Some(registration) = s.executors.get(id).cloned() else {
                return Err(EngineError::UnknownExecutor(id.clone()));
            };
            registrations.push(registration);
        }
        loop {
            let mut taken = Vec::new();
            let mut rest = VecDeque::new();
            while let Some(task) = s.queue.pop_front() {
                let owner = registrations
                    .iter()
                    .find(|r| r.metadata.handles(&task.node_type));
                match owner {
                    Some(r) if taken.len() < max => {
                        taken.push(PolledTask::new(&r.executor_id, task));
                    }
                    _ => rest.push_back(task),
                }
            }
            s.queue = rest;
            if !taken.is_empty() {
                for p in &taken {
                    s.dispatched.insert(
                        p.task.task_id.clone(),
                        (p.task.clone(), p.executor_id.clone(), false),
                    );
                    if let Some(v) = s.views.get_mut(&p.task.task_id) {
                        v.status = TaskState::Running;
                        v.executor_id = Some(p.executor_id.clone());
                    }
                }
                return Ok(taken);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || s.gate_open || max == 0 {
                return Ok(Vec::new());
            }
            self.waiting.fetch_add(1, Ordering::SeqCst);
            s = self
                .changed
                .wait_timeout(s, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
            self.waiting.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn release(&self, executor_id: &str, task_ids: &[String]) -> Result<(), EngineError> {
        let mut s = self.state();
        if !s.executors.contains_key(executor_id) {
            return Err(EngineError::UnknownExecutor(executor_id.to_owned()));
        }
        for id in task_ids {
            if let Some((task, _, false)) = s.dispatched.remove(id) {
                s.queue.push_back(task);
            }
            s.released.push(id.clone());
        }
        drop(s);
        self.changed.notify_all();
        Ok(())
    }

    fn report(&self, results: Vec<TaskResult>) -> Vec<Result<Acceptance, EngineError>> {
        let mut s = self.state();
        let mut out = Vec::with_capacity(results.len());
        for r in &results {
            let applied = match s.dispatched.get_mut(r.task_id()) {
                Some((_, _, true)) => {
                    out.push(Ok(Acceptance::AlreadyProcessed));
                    continue;
                }
                Some((task, _, processed)) => {
                    *processed = true;
                    let mut view = view_of(task, TaskState::Completed);
                    view.output = Some(r.output().clone());
                    view.completed_at_ms = Some(2);
                    view
                }
                None => {
                    // An older attempt of a task that was dispatched again is stale.
                    let newer = s.dispatched.values().any(|(t, _, _)| {
                        t.run_id == r.run_id()
                            && t.node_id == r.node_id()
                            && t.attempt > r.attempt()
                    });
                    out.push(if newer {
                        Ok(Acceptance::Stale)
                    } else {
                        Err(EngineError::Intake(IntakeError::UnknownTask {
                            run_id: r.run_id().to_owned(),
                            node_id: r.node_id().to_owned(),
                        }))
                    });
                    continue;
                }
            };
            s.views.insert(applied.task_id.clone(), applied.clone());
            s.completions.push(applied);
            out.push(Ok(Acceptance::Accept));
        }
        drop(s);
        self.changed.notify_all();
        out
    }

    fn submit(&self, request: SubmitRequest) -> Result<TaskView, EngineError> {
        let node_type = request
            .node_type
            .or(request.executor_type)
            .ok_or_else(|| EngineError::Invalid("no type".into()))?;
        if node_type == "refused" {
            return Err(EngineError::Invalid("type 'refused' is refused".into()));
        }
        assert!(
            node_type != "panic",
            "the engine broke on a task of type 'panic'"
        );
        let n = {
            let mut s = self.state();
            s.submitted += 1;
            s.submitted
        };
        let run = request.run_id.unwrap_or_else(|| format!("run-{n}"));
        let node = request.node_id.unwrap_or_else(|| "node".into());
        let mut task = Task::new(run, node, node_type, 1);
        task.execution_token = format!("token-{n}");
        task.context = request.input;
        task.timeout_seconds = request.timeout_seconds;
        let view = view_of(&task, TaskState::Pending);
        self.enqueue(task);
        Ok(view)
    }

    fn completions(&self, after: u64, max: usize, wait: Duration) -> (Vec<TaskView>, u64) {
        let deadline = Instant::now() + wait;
        let mut s = self.state();
        loop {
            let start = usize::try_from(after)
                .unwrap_or(usize::MAX)
                .min(s.completions.len());
            if start < s.completions.len() || Instant::now() >= deadline || s.gate_open {
                let items: Vec<TaskView> =
                    s.completions[start..].iter().take(max).cloned().collect();
                let next = after + items.len() as u64;
                return (items, next);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            self.waiting.fetch_add(1, Ordering::SeqCst);
            s = self
                .changed
                .wait_timeout(s, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
            self.waiting.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn task(&self, task_id: &str) -> Result<TaskView, EngineError> {
        self.state()
            .views
            .get(task_id)
            .cloned()
            .ok_or_else(|| EngineError::UnknownTask(task_id.to_owned()))
    }

    fn executors(&self) -> Vec<ExecutorView> {
        self.state().executors.values().map(executor_view).collect()
    }

    fn executor(&self, executor_id: &str) -> Result<ExecutorView, EngineError> {
        let mut s = self.state();
        s.lookups.push(executor_id.to_owned());
        s.executors
            .get(executor_id)
            .map(executor_view)
            .ok_or_else(|| EngineError::UnknownExecutor(executor_id.to_owned()))
    }

    fn statistics(&self) -> EngineStatistics {
        let s = self.state();
        let mut by_type = BTreeMap::new();
        for r in s.executors.values() {
            *by_type.entry(r.metadata.executor_type.clone()).or_insert(0) += 1;
        }
        EngineStatistics {
            executors: s.executors.len(),
            alive_executors: s.executors.len(),
            executors_by_type: by_type,
            tasks_submitted: s.submitted,
            tasks_pending: s.queue.len() as u64,
            tasks_completed: s.completions.len() as u64,
            ..EngineStatistics::default()
        }
    }
}

/// Accepts exactly `authorization: Bearer good`, and says why anything else is refused.
pub struct OnlyGood;

impl TokenVerifier for OnlyGood {
    fn verify(&self, authorization: Option<&str>) -> Result<String, AuthError> {
        match authorization {
            None => Err(AuthError::Missing),
            Some("Bearer good") => Ok("executor".into()),
            Some(h) if !h.starts_with("Bearer ") => {
                Err(AuthError::Malformed("expected 'Bearer <token>'".into()))
            }
            Some(_) => Err(AuthError::BadSignature),
        }
    }
}

pub struct StaticToken(pub &'static str);

impl TokenSource for StaticToken {
    fn bearer(&self) -> Option<String> {
        Some(self.0.to_owned())
    }
}

/// The router on 127.0.0.1:0; shut down when dropped.
pub struct Server {
    pub addr: SocketAddr,
    pub url: String,
    runtime: Option<tokio::runtime::Runtime>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Server {
    pub fn start(engine: Arc<FakeEngine>, settings: HttpServerSettings) -> Self {
        Self::start_router(gamelan_rest::router(engine, settings))
    }

    pub fn start_router(router: axum::Router) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        runtime.spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .expect("serve");
        });
        Self {
            addr,
            url: format!("http://{addr}"),
            runtime: Some(runtime),
            stop: Some(stop),
        }
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

/// A plain HTTP client for raw requests: statuses are answers, not errors.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// `(status, retry-after, body)` of a raw request.
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub content_type: String,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("answer {} is not JSON ({e}): {}", self.status, self.body))
    }

    /// Asserts the uniform error shape and returns `(code, message)`.
    pub fn error(&self) -> (String, String) {
        let v = self.json();
        let code = v["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code: {v}"));
        let message = v["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no message: {v}"));
        assert!(!message.is_empty(), "empty error message: {v}");
        (code.to_owned(), message.to_owned())
    }
}

fn answer(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
    let mut response = result.expect("request reached the server");
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let retry_after = header("retry-after");
    let content_type = header("content-type").unwrap_or_default();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    Answer {
        status,
        retry_after,
        content_type,
        body,
    }
}

pub fn send(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    authorization: Option<&str>,
    body: Option<&[u8]>,
) -> Answer {
    let auth = authorization;
    let result = match method {
        "POST" | "PUT" => {
            let mut req = if method == "POST" {
                agent.post(url)
            } else {
                agent.put(url)
            };
            req = req.header("content-type", "application/json");
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            req.send(body.unwrap_or_default())
        }
        _ => {
            let mut req = if method == "DELETE" {
                agent.delete(url)
            } else {
                agent.get(url)
            };
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            req.call()
        }
    };
    answer(result)
}

/// Polls `condition` every few milliseconds until it holds or `deadline` passes.
pub fn wait_until(deadline: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if condition() {
            return true;
        }
        std::thread::yield_now();
        std::thread::park_timeout(Duration::from_millis(2));
    }
    condition()
}
