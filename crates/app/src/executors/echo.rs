use gamelan_domain::{ExecutionError, JsonObject, Task};
use gamelan_ports::{ExecutionContext, WorkflowExecutor};

/// Returns its context unchanged: the no-op task of the benchmarks.
#[derive(Debug, Default, Clone, Copy)]
pub struct Echo;

impl WorkflowExecutor for Echo {
    fn execute(&self, task: &Task, _ctx: &ExecutionContext) -> Result<JsonObject, ExecutionError> {
        Ok(task.context.clone())
    }
}
