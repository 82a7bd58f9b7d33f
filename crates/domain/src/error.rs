//! How an execution can fail, and which failures are worth retrying.

use std::time::Duration;

use crate::result::ErrorInfo;

/// Error codes shared by every transport, so engines can branch on them.
pub mod codes {
    /// The task ran past its deadline.
    pub const TIMEOUT: &str = "TIMEOUT";
    /// The executor panicked; the message is the panic payload.
    pub const EXECUTOR_PANIC: &str = "EXECUTOR_PANIC";
    /// No executor in this process handles the task's node type.
    pub const NO_EXECUTOR: &str = "NO_EXECUTOR";
    /// The task was cancelled by the engine or by shutdown.
    pub const CANCELLED: &str = "CANCELLED";
    /// A technical failure whose retries were exhausted.
    pub const RETRIES_EXHAUSTED: &str = "RETRIES_EXHAUSTED";
    /// The task message itself was unusable.
    pub const INVALID_TASK: &str = "INVALID_TASK";
    /// The result was larger than the transport can carry; it was replaced by this failure.
    pub const RESULT_TOO_LARGE: &str = "RESULT_TOO_LARGE";
    /// A deferred result's completion handle was dropped without completing (a technical
    /// failure, retried by policy): the task fails instead of hanging.
    pub const DEFERRED_DROPPED: &str = "DEFERRED_DROPPED";
}

/// The failure of one execution, as a [`WorkflowExecutor`](../../gamelan_ports) returns it or
/// the runtime observes it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExecutionError {
    /// An expected outcome of the business logic (bad input, declined payment): reported to the
    /// engine at once and never retried, because retrying cannot change the answer.
    #[error("business failure {code}: {message}")]
    Business { code: String, message: String },
    /// An infrastructure problem (network, dependency down): retried by the retry policy.
    #[error("technical failure {code}: {message}")]
    Technical { code: String, message: String },
    #[error("task timed out after {0:?}")]
    Timeout(Duration),
    #[error("executor panicked: {0}")]
    Panic(String),
    #[error("no executor for node type '{0}'")]
    NoExecutor(String),
    #[error("task cancelled: {0}")]
    Cancelled(String),
}

impl ExecutionError {
    pub fn business(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Business {
            code: code.into(),
            message: message.into(),
        }
    }

    pub fn technical(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Technical {
            code: code.into(),
            message: message.into(),
        }
    }

    /// Only technical failures are retried: the others are final by nature.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Technical { .. })
    }

    pub fn code(&self) -> &str {
        match self {
            Self::Business { code, .. } | Self::Technical { code, .. } => code,
            Self::Timeout(_) => codes::TIMEOUT,
            Self::Panic(_) => codes::EXECUTOR_PANIC,
            Self::NoExecutor(_) => codes::NO_EXECUTOR,
            Self::Cancelled(_) => codes::CANCELLED,
        }
    }

    /// The wire form; the message names what went wrong, for humans reading the engine.
    pub fn to_error_info(&self) -> ErrorInfo {
        let message = match self {
            Self::Business { message, .. } | Self::Technical { message, .. } => message.clone(),
            other => other.to_string(),
        };
        let mut info = ErrorInfo::new(self.code(), message);
        let kind = match self {
            Self::Business { .. } => "business",
            Self::Technical { .. } => "technical",
            Self::Timeout(_) => "timeout",
            Self::Panic(_) => "panic",
            Self::NoExecutor(_) => "no-executor",
            Self::Cancelled(_) => "cancelled",
        };
        info.context.insert("kind".into(), kind.into());
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_technical_is_retryable() {
        assert!(ExecutionError::technical("NET", "down").is_retryable());
        assert!(!ExecutionError::business("BAD", "input").is_retryable());
        assert!(!ExecutionError::Timeout(Duration::from_secs(1)).is_retryable());
        assert!(!ExecutionError::Panic("x".into()).is_retryable());
        assert!(!ExecutionError::NoExecutor("x".into()).is_retryable());
    }

    #[test]
    fn error_info_carries_code_and_kind() {
        let info = ExecutionError::Panic("boom".into()).to_error_info();
        assert_eq!(info.code, codes::EXECUTOR_PANIC);
        assert!(info.message.contains("boom"));
        assert_eq!(info.context["kind"], "panic");
        let info = ExecutionError::business("MISSING_AMOUNT", "amount is required").to_error_info();
        assert_eq!(info.code, "MISSING_AMOUNT");
        assert_eq!(info.message, "amount is required");
    }
}
