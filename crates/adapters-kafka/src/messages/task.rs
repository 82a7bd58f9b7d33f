//! `TaskMessage`: one task on `workflow-tasks.<type>`.

use gamelan_domain::{JsonObject, Task, TaskId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::MessageError;
use super::time;

/// The task as written on the topic. Reading is lenient where the Java engine's record is
/// smaller: a missing `taskId` is derived from run, node and attempt, a missing `nodeType`
/// falls back to `targetExecutor`, and `token` is read as `executionToken`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskMessage {
    #[serde(default)]
    pub task_id: String,
    pub run_id: String,
    #[serde(default)]
    pub tenant_id: String,
    pub node_id: String,
    #[serde(default)]
    pub node_name: String,
    #[serde(default)]
    pub node_type: String,
    pub attempt: u32,
    #[serde(default, alias = "token")]
    pub execution_token: String,
    #[serde(default)]
    pub context: JsonObject,
    #[serde(default)]
    pub configuration: JsonObject,
    /// The executor type the engine chose (the topic's type).
    #[serde(default)]
    pub target_executor: String,
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    /// Epoch milliseconds; RFC 3339 text on the wire.
    #[serde(default, with = "time")]
    pub scheduled_at: Option<u64>,
}

/// The borrowed twin of [`TaskMessage`] for encoding without copying the task.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TaskOut<'a> {
    task_id: &'a str,
    run_id: &'a str,
    tenant_id: &'a str,
    node_id: &'a str,
    node_name: &'a str,
    node_type: &'a str,
    attempt: u32,
    execution_token: &'a str,
    context: &'a JsonObject,
    configuration: &'a JsonObject,
    target_executor: &'a str,
    timeout_seconds: Option<u64>,
    #[serde(serialize_with = "time::serialize")]
    scheduled_at: Option<u64>,
}

impl TaskMessage {
    pub fn from_task(task: &Task, target_executor: &str) -> Self {
        Self {
            task_id: task.task_id.clone(),
            run_id: task.run_id.clone(),
            tenant_id: task.tenant_id.clone(),
            node_id: task.node_id.clone(),
            node_name: task.node_name.clone(),
            node_type: task.node_type.clone(),
            attempt: task.attempt,
            execution_token: task.execution_token.clone(),
            context: task.context.clone(),
            configuration: task.configuration.clone(),
            target_executor: target_executor.to_owned(),
            timeout_seconds: task.timeout_seconds,
            scheduled_at: (task.scheduled_at_ms > 0).then_some(task.scheduled_at_ms),
        }
    }

    /// The domain task, validated with [`Task::validate`].
    pub fn into_task(self) -> Result<Task, PoisonTask> {
        let task = self.into_unchecked();
        match task.validate() {
            Ok(()) => Ok(task),
            Err(e) => Err(PoisonTask {
                identity: identity_of(&task),
                error: e.into(),
            }),
        }
    }

    fn into_unchecked(self) -> Task {
        let task_id = if self.task_id.is_empty() {
            TaskId::new(self.run_id.clone(), self.node_id.clone(), self.attempt).to_string()
        } else {
            self.task_id
        };
        let node_type = if self.node_type.is_empty() {
            self.target_executor
        } else {
            self.node_type
        };
        Task {
            task_id,
            run_id: self.run_id,
            node_id: self.node_id,
            node_name: self.node_name,
            node_type,
            attempt: self.attempt,
            execution_token: self.execution_token,
            context: self.context,
            configuration: self.configuration,
            timeout_seconds: self.timeout_seconds,
            scheduled_at_ms: self.scheduled_at.unwrap_or(0),
            tenant_id: self.tenant_id,
        }
    }
}

/// A task message that cannot be executed.
#[derive(Debug, Clone, PartialEq)]
pub struct PoisonTask {
    pub error: MessageError,
    /// Enough of the task to address a FAILED result to it (id, run, node, attempt, token,
    /// tenant); `None` when the message does not say which task it is.
    pub identity: Option<Box<Task>>,
}

/// Appends the JSON of `task` addressed to `target_executor` to `buf`.
pub fn encode_task(task: &Task, target_executor: &str, buf: &mut Vec<u8>) {
    let out = TaskOut {
        task_id: &task.task_id,
        run_id: &task.run_id,
        tenant_id: &task.tenant_id,
        node_id: &task.node_id,
        node_name: &task.node_name,
        node_type: &task.node_type,
        attempt: task.attempt,
        execution_token: &task.execution_token,
        context: &task.context,
        configuration: &task.configuration,
        target_executor,
        timeout_seconds: task.timeout_seconds,
        scheduled_at: (task.scheduled_at_ms > 0).then_some(task.scheduled_at_ms),
    };
    // Writing into a Vec cannot fail and the maps have string keys.
    if let Err(e) = serde_json::to_writer(buf, &out) {
        log::error!(target: "gamelan.executor.error", "cannot encode task {}: {e}", task.task_id);
    }
}

/// Decodes and validates one task message.
pub fn decode_task(payload: Option<&[u8]>) -> Result<Task, PoisonTask> {
    let Some(payload) = payload.filter(|p| !p.is_empty()) else {
        return Err(PoisonTask {
            error: MessageError::NoValue,
            identity: None,
        });
    };
    match serde_json::from_slice::<TaskMessage>(payload) {
        Ok(m) => m.into_task(),
        Err(e) => {
            let error = MessageError::from_json(&e);
            // Only valid JSON of the wrong shape can still say which task it was.
            let identity = match error {
                MessageError::Shape(_) => serde_json::from_slice::<Value>(payload)
                    .ok()
                    .and_then(|v| salvage_identity(&v)),
                _ => None,
            };
            Err(PoisonTask { error, identity })
        }
    }
}

/// The identity of a task that failed validation, if a result could be addressed to it.
fn identity_of(task: &Task) -> Option<Box<Task>> {
    if task.task_id.is_empty() || task.attempt == 0 {
        return None;
    }
    Some(Box::new(task.clone()))
}

/// Reads whatever identifies the task from a message that does not decode.
fn salvage_identity(v: &Value) -> Option<Box<Task>> {
    let obj = v.as_object()?;
    let text = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or_default();
    let attempt = obj
        .get("attempt")
        .and_then(Value::as_u64)
        .and_then(|a| u32::try_from(a).ok())
        .filter(|a| *a > 0);
    let task_id = text("taskId");
    let (run_id, node_id, attempt) = if let Ok(id) = task_id.parse::<TaskId>() {
        (id.run_id, id.node_id, id.attempt)
    } else {
        let (run, node) = (text("runId"), text("nodeId"));
        if run.is_empty() || node.is_empty() {
            return None;
        }
        (run.to_owned(), node.to_owned(), attempt?)
    };
    let mut node_type = text("nodeType");
    if node_type.is_empty() {
        node_type = text("targetExecutor");
    }
    let mut task = Task::new(run_id, node_id, node_type, attempt);
    if !task_id.is_empty() {
        task_id.clone_into(&mut task.task_id);
    }
    let token = match text("executionToken") {
        "" => text("token"),
        t => t,
    };
    token.clone_into(&mut task.execution_token);
    text("tenantId").clone_into(&mut task.tenant_id);
    Some(Box::new(task))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Task {
        let mut t = Task::new("run-1", "node-a", "echo", 2);
        t.node_name = "Echo it".into();
        t.execution_token = "tok".into();
        t.tenant_id = "acme".into();
        t.context.insert("x".into(), json!(1));
        t.configuration.insert("mode".into(), json!("fast"));
        t.timeout_seconds = Some(30);
        t.scheduled_at_ms = 1_700_000_000_000;
        t
    }

    #[test]
    fn encoded_task_has_the_documented_camel_case_fields() {
        let mut buf = Vec::new();
        encode_task(&sample(), "echo", &mut buf);
        let v: Value = serde_json::from_slice(&buf).unwrap();
        let expected = json!({
            "taskId": "run-1:node-a:2",
            "runId": "run-1",
            "tenantId": "acme",
            "nodeId": "node-a",
            "nodeName": "Echo it",
            "nodeType": "echo",
            "attempt": 2,
            "executionToken": "tok",
            "context": {"x": 1},
            "configuration": {"mode": "fast"},
            "targetExecutor": "echo",
            "timeoutSeconds": 30,
            "scheduledAt": "2023-11-14T22:13:20.000Z"
        });
        assert_eq!(v, expected);
        // The owned message writes exactly the same JSON.
        let owned = serde_json::to_value(TaskMessage::from_task(&sample(), "echo")).unwrap();
        assert_eq!(owned, expected);
    }

    #[test]
    fn round_trip_gives_the_same_task() {
        let mut buf = Vec::new();
        encode_task(&sample(), "echo", &mut buf);
        assert_eq!(decode_task(Some(&buf)), Ok(sample()));
    }

    #[test]
    fn the_java_record_shape_is_accepted() {
        let json = br#"{"runId":"r","nodeId":"n","attempt":1,"token":"t","context":{},"targetExecutor":"echo"}"#;
        let t = decode_task(Some(json)).unwrap();
        assert_eq!(t.task_id, "r:n:1");
        assert_eq!(t.node_type, "echo");
        assert_eq!(t.execution_token, "t");
        assert_eq!(t.scheduled_at_ms, 0);
    }

    #[test]
    fn garbage_is_not_json_and_has_no_identity() {
        let p = decode_task(Some(b"\x00\xffnot json")).unwrap_err();
        assert!(matches!(p.error, MessageError::NotJson(_)), "{:?}", p.error);
        assert_eq!(p.identity, None);
        let p = decode_task(None).unwrap_err();
        assert_eq!(p.error, MessageError::NoValue);
    }

    #[test]
    fn missing_fields_keep_the_identity_when_there_is_one() {
        // No runId/nodeId fields, but the task id says it all.
        let p = decode_task(Some(
            br#"{"taskId":"r:n:3","executionToken":"t","tenantId":"a"}"#,
        ))
        .unwrap_err();
        assert!(
            matches!(p.error, MessageError::Shape(ref m) if m.contains("runId")),
            "{:?}",
            p.error
        );
        let id = p.identity.unwrap();
        assert_eq!((id.task_id.as_str(), id.attempt), ("r:n:3", 3));
        assert_eq!(
            (id.execution_token.as_str(), id.tenant_id.as_str()),
            ("t", "a")
        );
        // Wrong type of a field, identity from run/node/attempt.
        let p = decode_task(Some(
            br#"{"runId":"r","nodeId":"n","attempt":1,"context":"oops"}"#,
        ))
        .unwrap_err();
        assert!(matches!(p.error, MessageError::Shape(_)));
        assert_eq!(p.identity.unwrap().task_id, "r:n:1");
        // Nothing to address a result to.
        let p = decode_task(Some(br#"{"hello":"world"}"#)).unwrap_err();
        assert_eq!(p.identity, None);
        let p = decode_task(Some(b"[1,2]")).unwrap_err();
        assert_eq!(p.identity, None);
    }

    #[test]
    fn validation_failures_are_poison_with_identity() {
        let json = br#"{"taskId":"r:n:1","runId":"r","nodeId":"n","attempt":1}"#;
        let p = decode_task(Some(json)).unwrap_err();
        assert!(matches!(p.error, MessageError::Task(_)), "{:?}", p.error);
        assert!(p.error.to_string().contains("node_type"));
        assert_eq!(p.identity.unwrap().task_id, "r:n:1");
        let json = br#"{"taskId":"r:n:9","runId":"r","nodeId":"n","attempt":1,"nodeType":"echo"}"#;
        let p = decode_task(Some(json)).unwrap_err();
        assert!(
            p.error.to_string().contains("does not match"),
            "{}",
            p.error
        );
        let json = br#"{"runId":"r","nodeId":"n","attempt":0,"nodeType":"echo"}"#;
        let p = decode_task(Some(json)).unwrap_err();
        assert_eq!(p.identity, None);
    }
}
