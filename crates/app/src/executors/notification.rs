use gamelan_domain::{ExecutionError, JsonObject, Task};
use gamelan_ports::{ExecutionContext, WorkflowExecutor};

use super::input::{stable_id, string};

/// Sends a notification over `email`, `sms` or `push` after checking the recipient has the
/// shape that channel needs.
#[derive(Debug, Default, Clone, Copy)]
pub struct NotificationSender;

impl WorkflowExecutor for NotificationSender {
    fn execute(&self, task: &Task, _ctx: &ExecutionContext) -> Result<JsonObject, ExecutionError> {
        let recipient = string(
            &task.context,
            "recipient",
            "MISSING_RECIPIENT",
            "INVALID_RECIPIENT",
        )?;
        let message = string(
            &task.context,
            "message",
            "MISSING_MESSAGE",
            "INVALID_MESSAGE",
        )?;
        let channel = task
            .context
            .get("channel")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("email");
        let ok = match channel {
            "email" => {
                recipient.contains('@') && !recipient.starts_with('@') && !recipient.ends_with('@')
            }
            "sms" => {
                recipient
                    .trim_start_matches('+')
                    .chars()
                    .all(|c| c.is_ascii_digit())
                    && recipient.len() >= 7
            }
            "push" => true,
            other => {
                return Err(ExecutionError::business(
                    "INVALID_CHANNEL",
                    format!("unknown channel '{other}' (expected email, sms or push)"),
                ));
            }
        };
        if !ok {
            return Err(ExecutionError::business(
                "INVALID_RECIPIENT",
                format!("'{recipient}' is not a valid {channel} recipient"),
            ));
        }
        let mut out = JsonObject::new();
        out.insert("delivered".into(), true.into());
        out.insert("channel".into(), channel.into());
        out.insert(
            "messageId".into(),
            stable_id("msg", &[recipient, message, &task.run_id, &task.node_id]).into(),
        );
        Ok(out)
    }
}
