//! One submitted task as the engine tracks it across its attempts.

use std::sync::Arc;
use std::time::Instant;

use gamelan_domain::{ErrorInfo, JsonObject, Task, TaskId};
use gamelan_ports::{StreamId, TaskState, TaskView};

/// How an in-flight task reached (or will reach) its executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Via {
    /// Delivered to an attached stream's sink.
    Stream(StreamId),
    /// Assigned to the executor's long-poll mailbox, not yet handed out: it never left the
    /// engine, so taking it back needs no new attempt.
    Mailbox,
    /// Handed out by a long poll.
    Polled,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Assignment {
    /// Slot in the executor table.
    pub exec: usize,
    pub via: Via,
    /// Delivery (or last acknowledgement) time; the ack timeout counts from here.
    pub since: Instant,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Phase {
    Queued,
    /// Waiting for an engine-side retry delay to pass.
    Delayed(Instant),
    Assigned(Assignment),
    Completed,
    Failed,
}

impl Phase {
    pub(super) fn state(self) -> TaskState {
        match self {
            Self::Queued | Self::Delayed(_) => TaskState::Pending,
            Self::Assigned(_) => TaskState::Running,
            Self::Completed => TaskState::Completed,
            Self::Failed => TaskState::Failed,
        }
    }
}

#[derive(Debug)]
pub(super) struct TaskRecord {
    /// The current attempt. Shared so the hot path hands it to a sink without copying under
    /// the engine lock; copied on write when the attempt changes.
    pub task: Arc<Task>,
    /// Key in the store (stable across restarts).
    pub db_key: u64,
    pub phase: Phase,
    /// Engine-side retries done after technical failures (redispatches do not count).
    pub retries: u32,
    pub max_retries: u32,
    /// The executor the current (or last) attempt went to.
    pub executor: Option<Arc<str>>,
    pub output: Option<JsonObject>,
    pub error: Option<ErrorInfo>,
    pub submitted_at_ms: u64,
    pub completed_at_ms: Option<u64>,
}

impl TaskRecord {
    /// What a slot holds once its task is forgotten, until a new task reuses it. Finished,
    /// so queue entries left behind for the slot are skipped.
    pub(super) fn vacant(placeholder: Arc<Task>) -> Self {
        Self {
            task: placeholder,
            db_key: u64::MAX,
            phase: Phase::Completed,
            retries: 0,
            max_retries: 0,
            executor: None,
            output: None,
            error: None,
            submitted_at_ms: 0,
            completed_at_ms: None,
        }
    }

    pub(super) fn view(&self) -> TaskView {
        TaskView {
            task_id: self.task.task_id.clone(),
            run_id: self.task.run_id.clone(),
            node_id: self.task.node_id.clone(),
            node_type: self.task.node_type.clone(),
            status: self.phase.state(),
            attempt: self.task.attempt,
            executor_id: self.executor.as_deref().map(str::to_owned),
            output: self.output.clone(),
            error: self.error.clone(),
            submitted_at_ms: self.submitted_at_ms,
            completed_at_ms: self.completed_at_ms,
        }
    }

    /// Moves the task to `attempt` with `token`, keeping run, node and payload.
    pub(super) fn set_attempt(&mut self, attempt: u32, token: String) {
        let task = Arc::make_mut(&mut self.task);
        task.attempt = attempt;
        task.execution_token = token;
        task.task_id =
            TaskId::new(task.run_id.as_str(), task.node_id.as_str(), attempt).to_string();
    }
}

/// The index key of a task: `run_id:node_id`, i.e. its task id without the attempt.
pub(super) fn index_key(run_id: &str, node_id: &str) -> String {
    let mut key = String::with_capacity(run_id.len() + node_id.len() + 1);
    key.push_str(run_id);
    key.push(':');
    key.push_str(node_id);
    key
}
