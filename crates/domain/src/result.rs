//! What an executor reports back: a COMPLETED output or a FAILED error, never both.

use serde::{Deserialize, Serialize};

use crate::task::{JsonObject, Task};

/// Terminal status of a reported result. The wire enum has more values (PENDING, RUNNING, ...),
/// but the Java engine accepts only these two in a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ResultStatus {
    Completed,
    Failed,
}

impl ResultStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
        }
    }
}

/// Structured error carried by a FAILED result (wire `ErrorInfo`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorInfo {
    pub code: String,
    pub message: String,
    #[serde(default)]
    pub stack_trace: String,
    #[serde(default)]
    pub context: JsonObject,
}

impl ErrorInfo {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            stack_trace: String::new(),
            context: JsonObject::new(),
        }
    }
}

/// A result that violates the COMPLETED/FAILED invariant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResultError {
    #[error("a COMPLETED result must not carry an error (task {0})")]
    CompletedWithError(String),
    #[error("a FAILED result must carry an error (task {0})")]
    FailedWithoutError(String),
    #[error("attempt must be >= 1 (task {0})")]
    AttemptZero(String),
    #[error("field '{field}' must not be empty in a result")]
    Empty { field: &'static str },
}

/// The outcome of one task attempt. Fields are private so the invariant cannot be broken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "RawResult", into = "RawResult")]
pub struct TaskResult {
    task_id: String,
    run_id: String,
    node_id: String,
    attempt: u32,
    execution_token: String,
    status: ResultStatus,
    output: JsonObject,
    error: Option<ErrorInfo>,
    completed_at_ms: u64,
    tenant_id: String,
}

/// Unchecked wire shape, validated into [`TaskResult`] by [`TaskResult::from_raw`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawResult {
    pub task_id: String,
    pub run_id: String,
    pub node_id: String,
    pub attempt: u32,
    #[serde(default)]
    pub execution_token: String,
    pub status: ResultStatus,
    #[serde(default)]
    pub output: JsonObject,
    #[serde(default)]
    pub error: Option<ErrorInfo>,
    #[serde(default)]
    pub completed_at_ms: u64,
    #[serde(default)]
    pub tenant_id: String,
}

impl TryFrom<RawResult> for TaskResult {
    type Error = ResultError;
    fn try_from(raw: RawResult) -> Result<Self, Self::Error> {
        Self::from_raw(raw)
    }
}

impl From<TaskResult> for RawResult {
    fn from(r: TaskResult) -> Self {
        Self {
            task_id: r.task_id,
            run_id: r.run_id,
            node_id: r.node_id,
            attempt: r.attempt,
            execution_token: r.execution_token,
            status: r.status,
            output: r.output,
            error: r.error,
            completed_at_ms: r.completed_at_ms,
            tenant_id: r.tenant_id,
        }
    }
}

impl TaskResult {
    pub fn completed(task: &Task, output: JsonObject, completed_at_ms: u64) -> Self {
        Self::for_task(task, ResultStatus::Completed, output, None, completed_at_ms)
    }

    pub fn failed(task: &Task, error: ErrorInfo, completed_at_ms: u64) -> Self {
        Self::for_task(
            task,
            ResultStatus::Failed,
            JsonObject::new(),
            Some(error),
            completed_at_ms,
        )
    }

    fn for_task(
        task: &Task,
        status: ResultStatus,
        output: JsonObject,
        error: Option<ErrorInfo>,
        completed_at_ms: u64,
    ) -> Self {
        Self {
            task_id: task.task_id.clone(),
            run_id: task.run_id.clone(),
            node_id: task.node_id.clone(),
            attempt: task.attempt,
            execution_token: task.execution_token.clone(),
            status,
            output,
            error,
            completed_at_ms,
            tenant_id: task.tenant_id.clone(),
        }
    }

    /// Builds a result decoded from the wire, enforcing the status/error invariant.
    pub fn from_raw(raw: RawResult) -> Result<Self, ResultError> {
        if raw.task_id.is_empty() {
            return Err(ResultError::Empty { field: "task_id" });
        }
        if raw.attempt == 0 {
            return Err(ResultError::AttemptZero(raw.task_id));
        }
        match (raw.status, &raw.error) {
            (ResultStatus::Completed, Some(_)) => {
                return Err(ResultError::CompletedWithError(raw.task_id));
            }
            (ResultStatus::Failed, None) => {
                return Err(ResultError::FailedWithoutError(raw.task_id));
            }
            _ => {}
        }
        Ok(Self {
            task_id: raw.task_id,
            run_id: raw.run_id,
            node_id: raw.node_id,
            attempt: raw.attempt,
            execution_token: raw.execution_token,
            status: raw.status,
            output: raw.output,
            error: raw.error,
            completed_at_ms: raw.completed_at_ms,
            tenant_id: raw.tenant_id,
        })
    }

    pub fn task_id(&self) -> &str {
        &self.task_id
    }
    pub fn run_id(&self) -> &str {
        &self.run_id
    }
    pub fn node_id(&self) -> &str {
        &self.node_id
    }
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
    pub fn execution_token(&self) -> &str {
        &self.execution_token
    }
    pub fn status(&self) -> ResultStatus {
        self.status
    }
    pub fn output(&self) -> &JsonObject {
        &self.output
    }
    pub fn error(&self) -> Option<&ErrorInfo> {
        self.error.as_ref()
    }
    pub fn completed_at_ms(&self) -> u64 {
        self.completed_at_ms
    }
    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }
    pub fn is_completed(&self) -> bool {
        self.status == ResultStatus::Completed
    }

    /// The FAILED `RESULT_TOO_LARGE` result that replaces this one when the transport cannot
    /// carry it (`why` says how large it was and what the limit is). Sending the original
    /// would fail on every resend and block the outbox behind it for good; the replacement
    /// keeps the task's identity, so the engine learns what happened.
    #[must_use]
    pub fn too_large(&self, why: impl Into<String>) -> Self {
        Self {
            task_id: self.task_id.clone(),
            run_id: self.run_id.clone(),
            node_id: self.node_id.clone(),
            attempt: self.attempt,
            execution_token: self.execution_token.clone(),
            status: ResultStatus::Failed,
            output: JsonObject::new(),
            error: Some(ErrorInfo::new(crate::codes::RESULT_TOO_LARGE, why)),
            completed_at_ms: self.completed_at_ms,
            tenant_id: self.tenant_id.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> Task {
        Task::new("r", "n", "echo", 2)
    }

    #[test]
    fn constructors_keep_the_invariant() {
        let ok = TaskResult::completed(&task(), JsonObject::new(), 5);
        assert!(ok.is_completed() && ok.error().is_none());
        assert_eq!(ok.task_id(), "r:n:2");
        let bad = TaskResult::failed(&task(), ErrorInfo::new("X", "boom"), 5);
        assert_eq!(bad.status(), ResultStatus::Failed);
        assert_eq!(bad.error().map(|e| e.code.as_str()), Some("X"));
    }

    #[test]
    fn an_oversized_result_is_replaced_by_a_failure_with_the_same_identity() {
        let mut output = JsonObject::new();
        output.insert("blob".into(), "x".repeat(64).into());
        let big = TaskResult::completed(&task(), output, 5);
        let small = big.too_large("result of 80 bytes exceeds the 10 byte limit");
        assert_eq!(small.status(), ResultStatus::Failed);
        assert!(small.output().is_empty());
        let err = small.error().unwrap();
        assert_eq!(err.code, crate::codes::RESULT_TOO_LARGE);
        assert!(err.message.contains("80 bytes"), "{}", err.message);
        assert_eq!(
            (
                small.task_id(),
                small.attempt(),
                small.execution_token(),
                small.completed_at_ms()
            ),
            (
                big.task_id(),
                big.attempt(),
                big.execution_token(),
                big.completed_at_ms()
            )
        );
    }

    #[test]
    fn decoding_rejects_inconsistent_results() {
        let json = r#"{"taskId":"r:n:1","runId":"r","nodeId":"n","attempt":1,"status":"FAILED"}"#;
        let err = serde_json::from_str::<TaskResult>(json).unwrap_err();
        assert!(err.to_string().contains("must carry an error"), "{err}");
        let json = r#"{"taskId":"r:n:1","runId":"r","nodeId":"n","attempt":1,"status":"COMPLETED","error":{"code":"c","message":"m"}}"#;
        assert!(serde_json::from_str::<TaskResult>(json).is_err());
        let json = r#"{"taskId":"r:n:1","runId":"r","nodeId":"n","attempt":1,"status":"COMPLETED","output":{"a":1}}"#;
        let r: TaskResult = serde_json::from_str(json).unwrap();
        assert_eq!(r.output()["a"], 1);
    }

    #[test]
    fn json_round_trip() {
        let r = TaskResult::failed(&task(), ErrorInfo::new("TIMEOUT", "late"), 9);
        let back: TaskResult = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }
}
