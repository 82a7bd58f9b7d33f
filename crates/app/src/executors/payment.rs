use gamelan_domain::{ExecutionError, JsonObject, Task};
use gamelan_ports::{ExecutionContext, WorkflowExecutor};

use super::input::{number, stable_id, string};

/// Captures a payment. Amounts above the limit are declined (a business failure); the
/// transaction id is derived from the order and execution token, so a retried or
/// re-delivered task yields the same id (idempotent towards a real payment provider).
#[derive(Debug, Default, Clone, Copy)]
pub struct PaymentProcessor;

impl PaymentProcessor {
    pub const LIMIT: f64 = 10_000.0;
}

impl WorkflowExecutor for PaymentProcessor {
    fn execute(&self, task: &Task, _ctx: &ExecutionContext) -> Result<JsonObject, ExecutionError> {
        let order_id = string(
            &task.context,
            "orderId",
            "MISSING_ORDER_ID",
            "INVALID_ORDER_ID",
        )?;
        let amount = number(&task.context, "amount", "MISSING_AMOUNT", "INVALID_AMOUNT")?;
        let currency = task
            .context
            .get("currency")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("USD");
        if amount <= 0.0 {
            return Err(ExecutionError::business(
                "INVALID_AMOUNT",
                "'amount' must be > 0",
            ));
        }
        if amount > Self::LIMIT {
            return Err(ExecutionError::business(
                "PAYMENT_DECLINED",
                format!(
                    "amount {amount} {currency} exceeds the limit of {}",
                    Self::LIMIT
                ),
            ));
        }
        let mut out = JsonObject::new();
        out.insert("orderId".into(), order_id.into());
        out.insert(
            "transactionId".into(),
            stable_id("txn", &[order_id, &task.run_id, &task.node_id]).into(),
        );
        out.insert("amount".into(), amount.into());
        out.insert("currency".into(), currency.into());
        out.insert("status".into(), "CAPTURED".into());
        Ok(out)
    }
}
