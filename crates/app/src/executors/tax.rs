use gamelan_domain::{ExecutionError, JsonObject, Task};
use gamelan_ports::{ExecutionContext, WorkflowExecutor};

use super::input::number;

/// The documentation's first executor: `tax = amount * 0.1`.
#[derive(Debug, Default, Clone, Copy)]
pub struct CalculateTax;

impl CalculateTax {
    pub const RATE: f64 = 0.1;
}

impl WorkflowExecutor for CalculateTax {
    fn execute(&self, task: &Task, _ctx: &ExecutionContext) -> Result<JsonObject, ExecutionError> {
        let amount = number(&task.context, "amount", "MISSING_AMOUNT", "INVALID_AMOUNT")?;
        let mut out = JsonObject::new();
        out.insert("amount".into(), amount.into());
        out.insert("tax".into(), (amount * Self::RATE).into());
        Ok(out)
    }
}
