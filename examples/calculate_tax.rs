//! The documentation's first executor, written as a user writes one: `cargo run -p gamelan --example
//! calculate_tax` (engine at GAMELAN_EXECUTOR_ENGINE_URL, default http://localhost:8080).
use gamelan::sdk::{ExecutionContext, ExecutionError, JsonObject, Task, WorkflowExecutor};

#[derive(Default)]
struct CalculateTax;

impl WorkflowExecutor for CalculateTax {
    fn execute(&self, task: &Task, _ctx: &ExecutionContext) -> Result<JsonObject, ExecutionError> {
        let amount = task
            .context
            .get("amount")
            .and_then(serde_json::Value::as_f64)
            .ok_or_else(|| {
                ExecutionError::business("MISSING_AMOUNT", "'amount' must be a number")
            })?;
        let mut out = JsonObject::new();
        out.insert("tax".into(), (amount * 0.1).into());
        Ok(out)
    }
}

gamelan::executor!(CalculateTax, type = "calculate-tax", communication = Grpc, max_concurrent_tasks = 50);

fn main() -> anyhow::Result<()> {
    let cfg = gamelan::commands::serve::load_executor(&[], &[])?; // files + GAMELAN_EXECUTOR_*
    gamelan::observability::logging::init(&cfg.log_filter());
    gamelan::wiring::runtime_builder(&cfg)?.run()?; // discovers CalculateTax, runs until SIGTERM
    Ok(())
}
