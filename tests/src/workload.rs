//! Task requests for the built-in executors and checks of their answers.

use serde_json::{Value, json};

use crate::api::TaskView;

/// Amounts that differ per task and carry cents, so a wrong formula (or answers swapped
/// between tasks) cannot pass by accident.
pub fn amount(i: usize) -> f64 {
    ((i * 7919) % 100_000) as f64 / 100.0 + 1.0
}

/// `calculate-tax` requests; the run id names the amount's index.
pub fn tax_requests(prefix: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({
                "executorType": "calculate-tax",
                "runId": format!("{prefix}-{i}"),
                "input": {"amount": amount(i)},
            })
        })
        .collect()
}

/// Checks a finished `calculate-tax` task from [`tax_requests`]: COMPLETED, and
/// `tax == amount * 0.1` for the amount its run id stands for.
pub fn check_tax(view: &TaskView) -> Result<(), String> {
    if view.status != "COMPLETED" {
        return Err(format!("{}: {} {:?}", view.key(), view.status, view.error));
    }
    let i: usize = view
        .run_id
        .rsplit('-')
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{}: not a tax_requests run id", view.run_id))?;
    let expected = amount(i) * 0.1;
    let out = view.output.as_ref();
    let tax = out.and_then(|o| o.get("tax")).and_then(Value::as_f64);
    let echoed = out.and_then(|o| o.get("amount")).and_then(Value::as_f64);
    match (tax, echoed) {
        (Some(t), Some(a)) if (t - expected).abs() < 1e-9 && (a - amount(i)).abs() < 1e-9 => Ok(()),
        _ => Err(format!(
            "{}: expected tax {expected} for amount {}, got {:?}",
            view.key(),
            amount(i),
            view.output
        )),
    }
}

/// `sleep` requests of `ms` milliseconds each.
pub fn sleep_requests(prefix: &str, n: usize, ms: u64) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({
                "executorType": "sleep",
                "runId": format!("{prefix}-{i}"),
                "input": {"ms": ms},
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(run_id: &str, status: &str, output: Value) -> TaskView {
        serde_json::from_value(json!({
            "taskId": format!("{run_id}:node:1"), "submissionId": format!("{run_id}:node:1"),
            "runId": run_id, "nodeId": "node",
            "nodeType": "calculate-tax", "status": status, "attempt": 1, "output": output,
        }))
        .unwrap()
    }

    #[test]
    fn the_tax_check_accepts_only_the_right_answer() {
        let a = amount(7);
        assert!(
            check_tax(&view(
                "t-7",
                "COMPLETED",
                json!({"amount": a, "tax": a * 0.1})
            ))
            .is_ok()
        );
        assert!(
            check_tax(&view(
                "t-7",
                "COMPLETED",
                json!({"amount": a, "tax": a * 0.2})
            ))
            .is_err()
        );
        assert!(
            check_tax(&view(
                "t-8",
                "COMPLETED",
                json!({"amount": a, "tax": a * 0.1})
            ))
            .is_err()
        );
        assert!(check_tax(&view("t-7", "FAILED", json!(null))).is_err());
        assert!(check_tax(&view("t-7", "COMPLETED", json!({"tax": a * 0.1}))).is_err());
    }
}
