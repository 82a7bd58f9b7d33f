use gamelan_domain::{ExecutionError, JsonObject, Task};
use gamelan_ports::{ExecutionContext, WorkflowExecutor};
use serde_json::Value;

use super::input::{field, string};

/// Checks an order before payment: an id, at least one item, positive quantities and
/// non-negative prices. Every problem is listed, not just the first.
#[derive(Debug, Default, Clone, Copy)]
pub struct OrderValidator;

impl WorkflowExecutor for OrderValidator {
    fn execute(&self, task: &Task, _ctx: &ExecutionContext) -> Result<JsonObject, ExecutionError> {
        let order_id = string(
            &task.context,
            "orderId",
            "MISSING_ORDER_ID",
            "INVALID_ORDER_ID",
        )?;
        let items = field(&task.context, "items", "MISSING_ITEMS")?
            .as_array()
            .ok_or_else(|| ExecutionError::business("INVALID_ITEMS", "'items' must be an array"))?;
        let mut problems = Vec::new();
        if items.is_empty() {
            problems.push("order has no items".to_owned());
        }
        let mut total = 0.0;
        for (i, item) in items.iter().enumerate() {
            let qty = item.get("quantity").and_then(Value::as_f64);
            let price = item.get("price").and_then(Value::as_f64);
            match (qty, price) {
                (Some(q), Some(p)) if q > 0.0 && p >= 0.0 => total += q * p,
                (Some(q), _) if q <= 0.0 => {
                    problems.push(format!("items[{i}].quantity must be > 0"));
                }
                (_, Some(p)) if p < 0.0 => problems.push(format!("items[{i}].price must be >= 0")),
                _ => problems.push(format!("items[{i}] needs numeric quantity and price")),
            }
        }
        if !problems.is_empty() {
            return Err(ExecutionError::business(
                "INVALID_ORDER",
                problems.join("; "),
            ));
        }
        let mut out = JsonObject::new();
        out.insert("orderId".into(), order_id.into());
        out.insert("valid".into(), true.into());
        out.insert("itemCount".into(), items.len().into());
        out.insert("total".into(), total.into());
        Ok(out)
    }
}
