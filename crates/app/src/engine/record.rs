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
    /// Number of the store write holding the final result (0: none, or already durable when
    /// loaded). Until the store has committed that write the task shows as still running,
    /// so no reader sees a result that a crash could take back.
    pub final_write: u64,
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
            final_write: 0,
        }
    }

    /// Whether the final result (if any) is in the store, given how many writes are
    /// committed.
    pub(super) fn settled(&self, committed: u64) -> bool {
        self.final_write <= committed
    }

    /// The task as clients see it when `committed` store writes are durable: a result not
    /// yet committed is not shown (the task is still RUNNING), so nothing a client saw can
    /// be undone by a crash.
    pub(super) fn view(&self, committed: u64) -> TaskView {
        let t = &self.task;
        let shown = self.settled(committed);
        TaskView {
            task_id: t.task_id.clone(),
            submission_id: submission_id(&t.run_id, &t.node_id),
            run_id: t.run_id.clone(),
            node_id: t.node_id.clone(),
            node_type: t.node_type.clone(),
            status: if shown {
                self.phase.state()
            } else {
                TaskState::Running
            },
            attempt: t.attempt,
            executor_id: self.executor.as_deref().map(str::to_owned),
            output: self.output.clone().filter(|_| shown),
            error: self.error.clone().filter(|_| shown),
            submitted_at_ms: self.submitted_at_ms,
            completed_at_ms: self.completed_at_ms.filter(|_| shown),
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

/// The id `submit` answers with: the first attempt's wire id, `run_id:node_id:1`. It finds
/// the task whichever attempt finishes it.
pub(super) fn submission_id(run_id: &str, node_id: &str) -> String {
    TaskId::new(run_id, node_id, 1).to_string()
}

/// The index key of a task: `run_id:node_id`, i.e. its task id without the attempt.
pub(super) fn index_key(run_id: &str, node_id: &str) -> String {
    let mut key = String::with_capacity(run_id.len() + node_id.len() + 1);
    key.push_str(run_id);
    key.push(':');
    key.push_str(node_id);
    key
}
