use gamelan_domain::{ExecutionError, JsonObject, Task};
use gamelan_ports::{ExecutionContext, WorkflowExecutor};

use super::input::string;

/// Fails on purpose, as the context asks (`mode`): `panic`, `business`, `technical`, or
/// `flaky` (a technical failure on the first `failures` runs, then success). For testing
/// the runtime's guarantees end to end.
#[derive(Debug, Default, Clone, Copy)]
pub struct Fault;

impl WorkflowExecutor for Fault {
    fn execute(&self, task: &Task, ctx: &ExecutionContext) -> Result<JsonObject, ExecutionError> {
        let mode = string(&task.context, "mode", "MISSING_MODE", "INVALID_MODE")?;
        match mode {
            "panic" => panic!("fault executor asked to panic (task {})", task.task_id),
            "business" => Err(ExecutionError::business("FAULT_BUSINESS", "asked to fail")),
            "technical" => Err(ExecutionError::technical(
                "FAULT_TECHNICAL",
                "asked to fail",
            )),
            "flaky" => {
                let failures = task
                    .context
                    .get("failures")
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(1);
                if u64::from(ctx.retry()) < failures {
                    Err(ExecutionError::technical(
                        "FAULT_FLAKY",
                        format!("failing run {}", ctx.retry() + 1),
                    ))
                } else {
                    let mut out = JsonObject::new();
                    out.insert("runs".into(), (ctx.retry() + 1).into());
                    Ok(out)
                }
            }
            other => Err(ExecutionError::business(
                "INVALID_MODE",
                format!("unknown mode '{other}' (expected panic, business, technical or flaky)"),
            )),
        }
    }
}
