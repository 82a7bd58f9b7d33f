//! Engine side: what the adapters' servers call into. One [`EngineService`] serves every
//! transport at once, so gRPC, REST and Kafka executors share queues, balancing and intake.

use std::time::Duration;

use gamelan_domain::{Acceptance, ErrorInfo, IntakeError, JsonObject, Task, TaskResult};
use serde::{Deserialize, Serialize};

use crate::transport::{Heartbeat, Registration};

/// Where the engine pushes tasks for one connected stream. Implemented by the adapter (e.g.
/// over a tokio unbounded channel, whose send is synchronous). Returns `false` when the
/// stream is gone; the engine then requeues the task.
///
/// `deliver` and `cancel` must not block: hand the message to a channel or queue and
/// return. The engine calls them on the thread of whichever operation made room or work (a
/// submission, a result report, a heartbeat), so a slow sink would slow every caller. The
/// engine holds no lock while calling them, so a sink may call back into the engine.
///
/// Tasks arrive shared: the engine keeps its own record of each, and a sink converts it
/// (to protobuf, to a Kafka record) by reference, so a dispatch makes no deep copy.
pub trait TaskSink: Send + Sync {
    fn deliver(&self, task: std::sync::Arc<Task>) -> bool;
    fn cancel(&self, task_id: &str, reason: &str) -> bool;
}

pub type StreamId = u64;

/// A task handed out by [`EngineService::poll_many`], with the executor it was assigned
/// to (its result goes back under that id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolledTask {
    pub executor_id: String,
    pub task: Task,
}

impl PolledTask {
    pub fn new(executor_id: impl Into<String>, task: Task) -> Self {
        Self {
            executor_id: executor_id.into(),
            task,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    pub executor_id: String,
    pub status: String,
    pub registered_at_ms: u64,
}

/// A task submitted by a user through the engine's API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SubmitRequest {
    #[serde(default)]
    pub executor_type: Option<String>,
    #[serde(default)]
    pub node_type: Option<String>,
    #[serde(default)]
    pub input: JsonObject,
    #[serde(default)]
    pub configuration: JsonObject,
    #[serde(default)]
    pub run_id: Option<String>,
    #[serde(default)]
    pub node_id: Option<String>,
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Engine-side attempts for technical failures (default: the engine's policy).
    #[serde(default)]
    pub max_attempts: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskState {
    Pending,
    Running,
    Completed,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskView {
    /// The wire id of the task's current (or finishing) attempt, `run_id:node_id:attempt`.
    pub task_id: String,
    /// The id `submit` answered with (`run_id:node_id:1`): the same whichever attempt
    /// finishes the task, so a client can follow its task through the completion feed.
    #[serde(default)]
    pub submission_id: String,
    pub run_id: String,
    pub node_id: String,
    pub node_type: String,
    pub status: TaskState,
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<JsonObject>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    pub submitted_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutorView {
    pub executor_id: String,
    pub executor_type: String,
    pub communication_type: String,
    pub endpoint: String,
    pub supported_node_types: Vec<String>,
    pub max_concurrent_tasks: u32,
    pub version: String,
    pub alive: bool,
    pub in_flight: u32,
    pub status: String,
    pub registered_at_ms: u64,
    pub last_heartbeat_ms: u64,
    pub completed_tasks: u64,
    pub failed_tasks: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct EngineStatistics {
    pub executors: usize,
    pub alive_executors: usize,
    pub executors_by_type: std::collections::BTreeMap<String, usize>,
    pub tasks_submitted: u64,
    pub tasks_pending: u64,
    pub tasks_in_flight: u64,
    pub tasks_completed: u64,
    pub tasks_failed: u64,
    pub results_duplicate: u64,
    pub results_stale: u64,
    pub tasks_redispatched: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("unknown executor '{0}'")]
    UnknownExecutor(String),
    #[error("unknown task '{0}'")]
    UnknownTask(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error(transparent)]
    Intake(#[from] IntakeError),
    #[error("engine overloaded, retry after {retry_after:?}")]
    Overloaded { retry_after: Duration },
    #[error("engine storage failed: {0}")]
    Storage(String),
    #[error("engine is shutting down")]
    ShuttingDown,
}

/// The executor-facing half of an engine plus the small user API the reference engine
/// exposes. Every method is synchronous and thread-safe; only [`EngineService::poll`] blocks
/// (up to `wait`), so async servers call it from a blocking thread.
pub trait EngineService: Send + Sync {
    fn register(&self, registration: Registration) -> Result<Registered, EngineError>;
    fn unregister(&self, executor_id: &str) -> Result<(), EngineError>;
    fn heartbeat(&self, heartbeat: &Heartbeat) -> Result<(), EngineError>;

    /// Opens a push stream: the engine delivers up to `max_in_flight` unfinished tasks to
    /// `sink` at a time. The stream lasts until [`EngineService::detach`].
    fn attach(
        &self,
        executor_id: &str,
        max_in_flight: u32,
        sink: std::sync::Arc<dyn TaskSink>,
    ) -> Result<StreamId, EngineError>;

    /// Closes a stream; tasks delivered on it without a result go back to their queue.
    fn detach(&self, executor_id: &str, stream: StreamId);

    /// The executor confirms it took the task (StreamTasks mode / push ack).
    fn acknowledge(&self, task_id: &str) -> Result<(), EngineError>;

    /// Long poll: returns at once when tasks are queued for the executor, else after `wait`
    /// with an empty list.
    fn poll(&self, executor_id: &str, max: usize, wait: Duration)
    -> Result<Vec<Task>, EngineError>;

    /// One long poll for several executors of one process (a runtime hosting several
    /// executor types): returns as soon as any of them has tasks, at most `max` in all,
    /// each paired with the executor it was assigned to. Without it such a process must
    /// wait on one executor at a time while tasks for the others sit queued.
    ///
    /// The default looks at each without waiting and then waits on the first only; an
    /// engine that can wait on all of them at once overrides it.
    fn poll_many(
        &self,
        executor_ids: &[String],
        max: usize,
        wait: Duration,
    ) -> Result<Vec<PolledTask>, EngineError> {
        let mut polled = Vec::new();
        for id in executor_ids {
            let left = max.saturating_sub(polled.len());
            if left == 0 {
                break;
            }
            let tasks = self.poll(id, left, Duration::ZERO)?;
            polled.extend(tasks.into_iter().map(|task| PolledTask::new(id, task)));
        }
        if polled.is_empty()
            && let Some(first) = executor_ids.first()
        {
            let tasks = self.poll(first, max, wait)?;
            polled.extend(tasks.into_iter().map(|task| PolledTask::new(first, task)));
        }
        Ok(polled)
    }

    /// Tasks the executor hands back unstarted (shutdown): requeued at once.
    fn release(&self, executor_id: &str, task_ids: &[String]) -> Result<(), EngineError>;

    /// Result intake; one answer per result, in order.
    fn report(&self, results: Vec<TaskResult>) -> Vec<Result<Acceptance, EngineError>>;

    /// Accepts a task; on `Ok` it is durable (unless the engine runs ephemeral).
    fn submit(&self, request: SubmitRequest) -> Result<TaskView, EngineError>;

    /// Accepts many tasks in one go (one durable commit for all); one answer per request.
    fn submit_batch(&self, requests: Vec<SubmitRequest>) -> Vec<Result<TaskView, EngineError>> {
        requests.into_iter().map(|r| self.submit(r)).collect()
    }

    /// The feed of finished tasks (COMPLETED or FAILED for good), in completion order.
    /// Returns the entries with sequence number > `after` (at most `max`) and the cursor to
    /// pass next time; waits up to `wait` when nothing is new. Lets clients follow thousands
    /// of tasks without polling each one.
    fn completions(&self, after: u64, max: usize, wait: Duration) -> (Vec<TaskView>, u64);

    /// Whether operations other than waits (long polls, the completion feed) may block on
    /// I/O, such as a durable commit. Async servers run those operations on a blocking pool
    /// and call the others inline, saving a thread hand-off (tens of microseconds) per call.
    fn waits_on_io(&self) -> bool {
        true
    }

    fn task(&self, task_id: &str) -> Result<TaskView, EngineError>;
    fn executors(&self) -> Vec<ExecutorView>;
    fn executor(&self, executor_id: &str) -> Result<ExecutorView, EngineError>;
    fn statistics(&self) -> EngineStatistics;
}
