//! `TaskResultMessage`: one result on `workflow-results`.

use gamelan_domain::result::RawResult;
use gamelan_domain::{ErrorInfo, JsonObject, ResultStatus, TaskResult};
use serde::{Deserialize, Serialize};

use super::MessageError;
use super::time;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskResultMessage {
    pub task_id: String,
    pub run_id: String,
    #[serde(default)]
    pub tenant_id: String,
    pub node_id: String,
    pub attempt: u32,
    /// `COMPLETED` or `FAILED`.
    pub status: ResultStatus,
    #[serde(default)]
    pub output: JsonObject,
    #[serde(default)]
    pub error: Option<ErrorMessage>,
    #[serde(default)]
    pub execution_token: String,
    #[serde(default, with = "time")]
    pub completed_at: Option<u64>,
}

/// `{code, message}`, plus the stack trace and context when there are any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorMessage {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stack_trace: String,
    #[serde(default, skip_serializing_if = "JsonObject::is_empty")]
    pub context: JsonObject,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorOut<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    stack_trace: &'a str,
    #[serde(skip_serializing_if = "JsonObject::is_empty")]
    context: &'a JsonObject,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResultOut<'a> {
    task_id: &'a str,
    run_id: &'a str,
    tenant_id: &'a str,
    node_id: &'a str,
    attempt: u32,
    status: ResultStatus,
    output: &'a JsonObject,
    error: Option<ErrorOut<'a>>,
    execution_token: &'a str,
    #[serde(serialize_with = "time::serialize")]
    completed_at: Option<u64>,
}

impl From<ErrorInfo> for ErrorMessage {
    fn from(e: ErrorInfo) -> Self {
        Self {
            code: e.code,
            message: e.message,
            stack_trace: e.stack_trace,
            context: e.context,
        }
    }
}

impl From<ErrorMessage> for ErrorInfo {
    fn from(e: ErrorMessage) -> Self {
        Self {
            code: e.code,
            message: e.message,
            stack_trace: e.stack_trace,
            context: e.context,
        }
    }
}

impl TaskResultMessage {
    pub fn from_result(r: &TaskResult) -> Self {
        Self {
            task_id: r.task_id().to_owned(),
            run_id: r.run_id().to_owned(),
            tenant_id: r.tenant_id().to_owned(),
            node_id: r.node_id().to_owned(),
            attempt: r.attempt(),
            status: r.status(),
            output: r.output().clone(),
            error: r.error().cloned().map(Into::into),
            execution_token: r.execution_token().to_owned(),
            completed_at: (r.completed_at_ms() > 0).then_some(r.completed_at_ms()),
        }
    }

    /// The domain result, checked with [`TaskResult::from_raw`].
    pub fn into_result(self) -> Result<TaskResult, MessageError> {
        if self.run_id.is_empty() {
            return Err(MessageError::EmptyField("runId"));
        }
        if self.node_id.is_empty() {
            return Err(MessageError::EmptyField("nodeId"));
        }
        let raw = RawResult {
            task_id: self.task_id,
            run_id: self.run_id,
            node_id: self.node_id,
            attempt: self.attempt,
            execution_token: self.execution_token,
            status: self.status,
            output: self.output,
            error: self.error.map(Into::into),
            completed_at_ms: self.completed_at.unwrap_or(0),
            tenant_id: self.tenant_id,
        };
        Ok(TaskResult::from_raw(raw)?)
    }
}

/// Appends the JSON of `r` to `buf`.
pub fn encode_result(r: &TaskResult, buf: &mut Vec<u8>) {
    let out = ResultOut {
        task_id: r.task_id(),
        run_id: r.run_id(),
        tenant_id: r.tenant_id(),
        node_id: r.node_id(),
        attempt: r.attempt(),
        status: r.status(),
        output: r.output(),
        error: r.error().map(|e| ErrorOut {
            code: &e.code,
            message: &e.message,
            stack_trace: &e.stack_trace,
            context: &e.context,
        }),
        execution_token: r.execution_token(),
        completed_at: (r.completed_at_ms() > 0).then_some(r.completed_at_ms()),
    };
    if let Err(e) = serde_json::to_writer(buf, &out) {
        log::error!(target: "gamelan.executor.error", "cannot encode result {}: {e}", r.task_id());
    }
}

/// Decodes and validates one result message.
pub fn decode_result(payload: Option<&[u8]>) -> Result<TaskResult, MessageError> {
    let payload = payload
        .filter(|p| !p.is_empty())
        .ok_or(MessageError::NoValue)?;
    serde_json::from_slice::<TaskResultMessage>(payload)
        .map_err(|e| MessageError::from_json(&e))?
        .into_result()
}

#[cfg(test)]
mod tests {
    use super::*;
    use gamelan_domain::Task;
    use serde_json::{Value, json};

    fn task() -> Task {
        let mut t = Task::new("run-1", "node-a", "echo", 1);
        t.execution_token = "tok".into();
        t.tenant_id = "acme".into();
        t
    }

    #[test]
    fn completed_result_json_shape() {
        let mut out = JsonObject::new();
        out.insert("echo".into(), json!("hi"));
        let r = TaskResult::completed(&task(), out, 1_700_000_000_000);
        let mut buf = Vec::new();
        encode_result(&r, &mut buf);
        let v: Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(
            v,
            json!({
                "taskId": "run-1:node-a:1",
                "runId": "run-1",
                "tenantId": "acme",
                "nodeId": "node-a",
                "attempt": 1,
                "status": "COMPLETED",
                "output": {"echo": "hi"},
                "error": null,
                "executionToken": "tok",
                "completedAt": "2023-11-14T22:13:20.000Z"
            })
        );
        assert_eq!(
            serde_json::to_value(TaskResultMessage::from_result(&r)).unwrap(),
            v
        );
        assert_eq!(decode_result(Some(&buf)), Ok(r));
    }

    #[test]
    fn failed_result_carries_code_and_message() {
        let r = TaskResult::failed(&task(), ErrorInfo::new("INVALID_TASK", "bad"), 5);
        let mut buf = Vec::new();
        encode_result(&r, &mut buf);
        let v: Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["status"], "FAILED");
        assert_eq!(
            v["error"],
            json!({"code": "INVALID_TASK", "message": "bad"})
        );
        assert_eq!(decode_result(Some(&buf)), Ok(r));
    }

    #[test]
    fn inconsistent_results_are_errors_not_panics() {
        let failed_without_error =
            br#"{"taskId":"r:n:1","runId":"r","nodeId":"n","attempt":1,"status":"FAILED"}"#;
        assert!(matches!(
            decode_result(Some(failed_without_error)),
            Err(MessageError::Result(_))
        ));
        let bad_status =
            br#"{"taskId":"r:n:1","runId":"r","nodeId":"n","attempt":1,"status":"RUNNING"}"#;
        assert!(matches!(
            decode_result(Some(bad_status)),
            Err(MessageError::Shape(_))
        ));
        let no_run =
            br#"{"taskId":"r:n:1","runId":"","nodeId":"n","attempt":1,"status":"COMPLETED"}"#;
        assert_eq!(
            decode_result(Some(no_run)),
            Err(MessageError::EmptyField("runId"))
        );
        assert!(matches!(
            decode_result(Some(b"{")),
            Err(MessageError::NotJson(_))
        ));
        assert_eq!(decode_result(None), Err(MessageError::NoValue));
    }
}
