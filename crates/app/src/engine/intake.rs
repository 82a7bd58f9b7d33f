//! Result intake: idempotency through the domain's `ResultIntake`, then completion, final
//! failure or an engine-side retry.

use std::time::Instant;

use gamelan_domain::result::RawResult;
use gamelan_domain::{Acceptance, ErrorInfo, ResultStatus, TaskResult, codes};
use gamelan_ports::{EngineError, TaskState};

use super::record::index_key;
use super::state::{Effects, Inner};

/// Whether a FAILED result earns an engine-side retry: only errors marked technical by
/// `ExecutionError::to_error_info` (`context.kind == "technical"`). Business failures,
/// TIMEOUT, EXECUTOR_PANIC, CANCELLED and the rest are final. NO_EXECUTOR is final too even
/// if marked otherwise: the reporting executor does not host the type, and a retry would
/// most likely land on it again.
pub(super) fn is_retryable(error: &ErrorInfo) -> bool {
    error.code != codes::NO_EXECUTOR
        && error
            .context
            .get("kind")
            .and_then(serde_json::Value::as_str)
            == Some("technical")
}

impl Inner {
    /// Applies one reported result. Errors concern this result only.
    pub(super) fn apply_result(
        &mut self,
        result: TaskResult,
        now: Instant,
        now_ms: u64,
        fx: &mut Effects,
    ) -> Result<Acceptance, EngineError> {
        let key = index_key(result.run_id(), result.node_id());
        let Some(&slot) = self.index.get(&key) else {
            return Err(EngineError::UnknownTask(result.task_id().to_owned()));
        };
        let acceptance = self.intake.report(
            result.run_id(),
            result.node_id(),
            result.attempt(),
            result.execution_token(),
        )?;
        match acceptance {
            Acceptance::Stale => {
                self.metrics.stale.inc();
                return Ok(acceptance);
            }
            Acceptance::AlreadyProcessed => {
                self.metrics.duplicate.inc();
                return Ok(acceptance);
            }
            Acceptance::Accept => {}
        }
        let exec = self.leave_phase(slot);
        let raw = RawResult::from(result);
        let failed = raw.status == ResultStatus::Failed;
        if let Some(e) = exec.and_then(|x| self.exec_mut(x)) {
            if failed {
                e.failed += 1;
            } else {
                e.completed += 1;
            }
        }
        if !failed {
            self.finish(
                slot,
                TaskState::Completed,
                Some(raw.output),
                None,
                now_ms,
                fx,
            );
            return Ok(acceptance);
        }
        let error = raw
            .error
            .unwrap_or_else(|| ErrorInfo::new("UNKNOWN", "failed without an error"));
        let rec = &self.records[slot];
        if is_retryable(&error) && rec.retries < rec.max_retries {
            let retries = rec.retries + 1;
            let delay = self.retry.delay(retries, self.ids.unit());
            let rec = &mut self.records[slot];
            rec.retries = retries;
            rec.error = Some(error);
            self.new_attempt(slot);
            self.schedule(slot, now, delay);
            log::debug!(
                target: "gamelan.engine",
                "task {} failed technically, retry {retries} in {delay:?}",
                self.records[slot].task.task_id
            );
        } else {
            self.finish(slot, TaskState::Failed, None, Some(error), now_ms, fx);
        }
        Ok(acceptance)
    }
}

#[cfg(test)]
mod tests {
    use gamelan_domain::ExecutionError;

    use super::*;

    #[test]
    fn only_technical_errors_are_retried() {
        assert!(is_retryable(
            &ExecutionError::technical("NET", "down").to_error_info()
        ));
        assert!(!is_retryable(
            &ExecutionError::business("BAD", "input").to_error_info()
        ));
        assert!(!is_retryable(
            &ExecutionError::Timeout(std::time::Duration::from_secs(1)).to_error_info()
        ));
        assert!(!is_retryable(
            &ExecutionError::Panic("boom".into()).to_error_info()
        ));
        assert!(!is_retryable(
            &ExecutionError::NoExecutor("x".into()).to_error_info()
        ));
        let mut odd = ExecutionError::technical(codes::NO_EXECUTOR, "x").to_error_info();
        assert!(!is_retryable(&odd));
        odd.code = "NET".into();
        odd.context.clear();
        assert!(!is_retryable(&odd), "no kind means not technical");
    }
}
