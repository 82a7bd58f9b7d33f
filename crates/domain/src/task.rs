//! What the engine asks an executor to do.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// JSON object used for task context, configuration and outputs, as in the Java engine.
pub type JsonObject = serde_json::Map<String, serde_json::Value>;

/// Why a task (or a task id) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    #[error("task id '{0}' is not of the form run_id:node_id:attempt")]
    MalformedId(String),
    #[error("attempt must be >= 1, got {0}")]
    AttemptZero(u32),
    #[error("field '{0}' must not be empty")]
    Empty(&'static str),
    #[error(
        "task id '{task_id}' does not match run '{run_id}', node '{node_id}', attempt {attempt}"
    )]
    IdMismatch {
        task_id: String,
        run_id: String,
        node_id: String,
        attempt: u32,
    },
}

/// The structured form of a task id, `run_id:node_id:attempt`.
///
/// The run id may itself contain `:`; the node id and attempt are taken from the right, which
/// is how the Java engine composes them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId {
    pub run_id: String,
    pub node_id: String,
    pub attempt: u32,
}

impl TaskId {
    pub fn new(run_id: impl Into<String>, node_id: impl Into<String>, attempt: u32) -> Self {
        Self {
            run_id: run_id.into(),
            node_id: node_id.into(),
            attempt,
        }
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.run_id, self.node_id, self.attempt)
    }
}

impl FromStr for TaskId {
    type Err = TaskError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let malformed = || TaskError::MalformedId(s.to_owned());
        let (rest, attempt) = s.rsplit_once(':').ok_or_else(malformed)?;
        let (run_id, node_id) = rest.rsplit_once(':').ok_or_else(malformed)?;
        // Only the canonical decimal form: `u32::from_str` also takes "+1" and "01", which
        // would give one task several ids and defeat de-duplication by task id.
        let canonical = attempt.bytes().all(|b| b.is_ascii_digit())
            && (attempt.len() == 1 || !attempt.starts_with('0'));
        if !canonical {
            return Err(malformed());
        }
        let attempt: u32 = attempt.parse().map_err(|_| malformed())?;
        if run_id.is_empty() || node_id.is_empty() {
            return Err(malformed());
        }
        if attempt == 0 {
            return Err(TaskError::AttemptZero(0));
        }
        Ok(Self::new(run_id, node_id, attempt))
    }
}

/// One unit of work for an executor (the wire `ExecutionTask`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    pub task_id: String,
    pub run_id: String,
    pub node_id: String,
    #[serde(default)]
    pub node_name: String,
    /// Selects the executor: matched against supported node types, then executor types.
    pub node_type: String,
    pub attempt: u32,
    #[serde(default)]
    pub execution_token: String,
    #[serde(default)]
    pub context: JsonObject,
    #[serde(default)]
    pub configuration: JsonObject,
    /// Per-task deadline; `None` falls back to the runtime's request timeout.
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    /// Epoch milliseconds at which the engine scheduled the task.
    #[serde(default)]
    pub scheduled_at_ms: u64,
    #[serde(default)]
    pub tenant_id: String,
}

impl Task {
    /// A task with a consistent id and empty payload; fill the public fields as needed.
    pub fn new(
        run_id: impl Into<String>,
        node_id: impl Into<String>,
        node_type: impl Into<String>,
        attempt: u32,
    ) -> Self {
        let id = TaskId::new(run_id, node_id, attempt);
        Self {
            task_id: id.to_string(),
            run_id: id.run_id,
            node_id: id.node_id,
            node_name: String::new(),
            node_type: node_type.into(),
            attempt,
            execution_token: String::new(),
            context: JsonObject::new(),
            configuration: JsonObject::new(),
            timeout_seconds: None,
            scheduled_at_ms: 0,
            tenant_id: String::new(),
        }
    }

    /// Checks the invariants the engine relies on; adapters call this on every decoded task.
    pub fn validate(&self) -> Result<(), TaskError> {
        if self.run_id.is_empty() {
            return Err(TaskError::Empty("run_id"));
        }
        if self.node_id.is_empty() {
            return Err(TaskError::Empty("node_id"));
        }
        if self.node_type.is_empty() {
            return Err(TaskError::Empty("node_type"));
        }
        if self.attempt == 0 {
            return Err(TaskError::AttemptZero(0));
        }
        let id: TaskId = self.task_id.parse()?;
        if id.run_id != self.run_id || id.node_id != self.node_id || id.attempt != self.attempt {
            return Err(TaskError::IdMismatch {
                task_id: self.task_id.clone(),
                run_id: self.run_id.clone(),
                node_id: self.node_id.clone(),
                attempt: self.attempt,
            });
        }
        Ok(())
    }

    pub fn id(&self) -> TaskId {
        TaskId::new(self.run_id.clone(), self.node_id.clone(), self.attempt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_id_round_trips_and_allows_colons_in_run_id() {
        let id: TaskId = "run:with:colons:node-1:3".parse().unwrap();
        assert_eq!(id.run_id, "run:with:colons");
        assert_eq!(id.node_id, "node-1");
        assert_eq!(id.attempt, 3);
        assert_eq!(id.to_string(), "run:with:colons:node-1:3");
    }

    #[test]
    fn task_id_rejects_zero_attempt_and_garbage() {
        assert_eq!("r:n:0".parse::<TaskId>(), Err(TaskError::AttemptZero(0)));
        assert!(matches!(
            "r:n".parse::<TaskId>(),
            Err(TaskError::MalformedId(_))
        ));
        assert!(matches!(
            "r:n:x".parse::<TaskId>(),
            Err(TaskError::MalformedId(_))
        ));
        assert!(matches!(
            ":n:1".parse::<TaskId>(),
            Err(TaskError::MalformedId(_))
        ));
        for text in ["r:n:+1", "r:n:01", "r:n:", "r:n:-1"] {
            assert!(
                matches!(text.parse::<TaskId>(), Err(TaskError::MalformedId(_))),
                "{text}"
            );
        }
    }

    #[test]
    fn validate_catches_inconsistent_id() {
        let mut t = Task::new("r1", "n1", "echo", 1);
        assert_eq!(t.validate(), Ok(()));
        t.attempt = 2;
        assert!(matches!(t.validate(), Err(TaskError::IdMismatch { .. })));
        let mut t = Task::new("r1", "n1", "", 1);
        assert_eq!(t.validate(), Err(TaskError::Empty("node_type")));
        t.node_type = "x".into();
        t.attempt = 0;
        assert_eq!(t.validate(), Err(TaskError::AttemptZero(0)));
    }

    #[test]
    fn task_json_uses_camel_case() {
        let t = Task::new("r1", "n1", "echo", 1);
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(v["taskId"], "r1:n1:1");
        assert_eq!(v["nodeType"], "echo");
    }
}
