use std::time::Duration;

use gamelan_domain::{ExecutionError, JsonObject, Task};
use gamelan_ports::{ExecutionContext, WorkflowExecutor};

use super::input::number;

/// Waits `ms` milliseconds (context), stopping early when cancelled: a stand-in for slow
/// I/O in tests and benchmarks.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sleep;

impl WorkflowExecutor for Sleep {
    fn execute(&self, task: &Task, ctx: &ExecutionContext) -> Result<JsonObject, ExecutionError> {
        let ms = number(&task.context, "ms", "MISSING_MS", "INVALID_MS")?;
        if ms < 0.0 {
            return Err(ExecutionError::business("INVALID_MS", "'ms' must be >= 0"));
        }
        let wait = Duration::from_secs_f64(ms / 1000.0);
        if ctx.cancellation().wait(wait) {
            return Err(ExecutionError::Cancelled("stopped while sleeping".into()));
        }
        let mut out = JsonObject::new();
        out.insert("sleptMs".into(), ms.into());
        Ok(out)
    }
}
