//! JSON shapes of the REST protocol, shared by the client and the server so both ends agree
//! on every field name by construction. Tasks, results and task views travel as their domain
//! / port types (already camelCase serde); only the REST-specific envelopes live here.

use std::collections::BTreeMap;

use gamelan_ports::domain::{Acceptance, CommunicationType, ExecutorMetadata};
use gamelan_ports::{HealthStatus, Heartbeat, Registration, TaskView};
use serde::{Deserialize, Serialize};

/// Registration metadata key carrying the executor version when the top-level `version`
/// field is absent (what the Java SDK sends).
pub const VERSION_KEY: &str = "gamelan.executor.version";

/// The Java engine's `ExecutorInfo`, plus optional fields the Java engine ignores and ours
/// uses for balancing (`supportedNodeTypes`, `maxConcurrentTasks`, `version`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutorInfo {
    pub executor_id: String,
    pub executor_type: String,
    pub communication_type: String,
    #[serde(default)]
    pub endpoint: Option<String>,
    /// A Java `Duration`: seconds as a number, or an ISO-8601 string such as `PT30S`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<serde_json::Value>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supported_node_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_tasks: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A registration the engine cannot accept; names the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FieldError {
    pub field: &'static str,
    pub problem: String,
}

impl FieldError {
    fn new(field: &'static str, problem: impl Into<String>) -> Self {
        Self {
            field,
            problem: problem.into(),
        }
    }
}

impl ExecutorInfo {
    /// What the executor side sends for one registration (always communication type REST).
    pub fn from_registration(registration: &Registration, timeout: std::time::Duration) -> Self {
        let meta = &registration.metadata;
        Self {
            executor_id: registration.executor_id.clone(),
            executor_type: meta.executor_type.clone(),
            communication_type: CommunicationType::Rest.as_str().to_owned(),
            endpoint: Some(registration.endpoint.clone()),
            timeout: Some(serde_json::Value::String(format!(
                "PT{}.{:03}S",
                timeout.as_secs(),
                timeout.subsec_millis()
            ))),
            metadata: Some(registration.attributes.clone()),
            supported_node_types: Some(meta.supported_node_types.clone()),
            max_concurrent_tasks: Some(meta.max_concurrent_tasks),
            version: Some(meta.version.clone()),
        }
    }

    /// Validates the way the Java engine does (ids and type required, communication type
    /// specified, timeout not negative) and builds the port's registration.
    pub fn into_registration(self) -> Result<Registration, FieldError> {
        check_executor_id(&self.executor_id)?;
        let executor_id = self.executor_id;
        let executor_type = required_text(self.executor_type, "executorType")?;
        let communication_type = parse_communication_type(&self.communication_type)?;
        check_timeout(self.timeout.as_ref())?;
        // Any key is kept, a blank one too: the contract's object has no rule on key names
        // and the engine only passes the attributes on.
        let attributes = self.metadata.unwrap_or_default();
        let max_concurrent_tasks = self
            .max_concurrent_tasks
            .unwrap_or(ExecutorMetadata::DEFAULT_MAX_CONCURRENT_TASKS);
        if max_concurrent_tasks == 0 {
            return Err(FieldError::new("maxConcurrentTasks", "must be at least 1"));
        }
        let version = self
            .version
            .filter(|v| !v.trim().is_empty())
            .or_else(|| attributes.get(VERSION_KEY).cloned())
            .unwrap_or_else(|| ExecutorMetadata::DEFAULT_VERSION.to_owned());
        let supported = self.supported_node_types.unwrap_or_default();
        if supported.iter().any(|t| t.trim().is_empty()) {
            return Err(FieldError::new(
                "supportedNodeTypes",
                "entries must not be blank",
            ));
        }
        let metadata = ExecutorMetadata::new(executor_type)
            .communication(communication_type)
            .max_concurrent_tasks(max_concurrent_tasks)
            .node_types(supported)
            .version(version);
        Ok(Registration {
            executor_id,
            metadata,
            endpoint: self
                .endpoint
                .map(|e| e.trim().to_owned())
                .unwrap_or_default(),
            attributes,
        })
    }
}

/// Executor ids travel in URL paths (`/executors/{id}/...`): they are limited to the
/// characters a path carries unescaped (RFC 3986 "unreserved"), so an id never reads one
/// way in a body and another once a client has percent-encoded (or not) a path; and they
/// do not start with `.`, so no id is a dot segment.
fn check_executor_id(id: &str) -> Result<(), FieldError> {
    if id.is_empty() {
        return Err(FieldError::new(
            "executorId",
            "is required and must not be blank",
        ));
    }
    if id.starts_with('.') {
        return Err(FieldError::new("executorId", "must not start with '.'"));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')))
    {
        return Err(FieldError::new(
            "executorId",
            format!("may hold only letters, digits and '-._~', found {c:?}"),
        ));
    }
    Ok(())
}

fn required_text(value: String, field: &'static str) -> Result<String, FieldError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(FieldError::new(field, "is required and must not be blank"));
    }
    Ok(if trimmed.len() == value.len() {
        value
    } else {
        trimmed.to_owned()
    })
}

fn parse_communication_type(raw: &str) -> Result<CommunicationType, FieldError> {
    // The Java enum may arrive with its protobuf prefix.
    let name = raw.trim();
    let name = name.strip_prefix("COMMUNICATION_TYPE_").unwrap_or(name);
    if name.is_empty() || name.eq_ignore_ascii_case("UNSPECIFIED") {
        return Err(FieldError::new("communicationType", "must be specified"));
    }
    name.parse()
        .map_err(|e: gamelan_ports::domain::UnknownCommunicationType| {
            FieldError::new("communicationType", e.to_string())
        })
}

fn check_timeout(timeout: Option<&serde_json::Value>) -> Result<(), FieldError> {
    // The port has no use for the timeout; it is only checked so that a Java client gets the
    // same refusal from us as from its own engine.
    match timeout {
        None | Some(serde_json::Value::Null) => Ok(()),
        Some(serde_json::Value::Number(n)) if n.as_f64().is_some_and(|s| s >= 0.0) => Ok(()),
        Some(serde_json::Value::Number(_)) => {
            Err(FieldError::new("timeout", "must not be negative"))
        }
        Some(serde_json::Value::String(s)) if s.starts_with('P') || s.starts_with("+P") => Ok(()),
        Some(serde_json::Value::String(s)) if s.starts_with('-') => {
            Err(FieldError::new("timeout", "must not be negative"))
        }
        Some(_) => Err(FieldError::new(
            "timeout",
            "expected seconds as a number or an ISO-8601 duration such as PT30S",
        )),
    }
}

/// Body of `POST /executors/{id}/heartbeat`; every field is optional (an empty body is a
/// plain liveness signal).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct HeartbeatBody {
    pub current_task_count: u32,
    pub status: HealthStatus,
    pub completed_tasks: u64,
    pub failed_tasks: u64,
    pub cpu_usage: f64,
    pub memory_usage: f64,
}

impl HeartbeatBody {
    pub fn from_heartbeat(h: &Heartbeat) -> Self {
        Self {
            current_task_count: h.current_task_count,
            status: h.status,
            completed_tasks: h.completed_tasks,
            failed_tasks: h.failed_tasks,
            cpu_usage: h.cpu_usage,
            memory_usage: h.memory_usage,
        }
    }

    pub fn into_heartbeat(self, executor_id: String) -> Heartbeat {
        Heartbeat {
            executor_id,
            current_task_count: self.current_task_count,
            status: self.status,
            completed_tasks: self.completed_tasks,
            failed_tasks: self.failed_tasks,
            cpu_usage: self.cpu_usage,
            memory_usage: self.memory_usage,
        }
    }
}

/// The engine's verdict on one result, as it travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    Accept,
    AlreadyProcessed,
    Stale,
    Rejected,
}

impl From<Acceptance> for Outcome {
    fn from(a: Acceptance) -> Self {
        match a {
            Acceptance::Accept => Self::Accept,
            Acceptance::AlreadyProcessed => Self::AlreadyProcessed,
            Acceptance::Stale => Self::Stale,
        }
    }
}

/// One element of the answer to `POST /executors/{id}/results`, in the order of the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultAnswer {
    pub task_id: String,
    pub attempt: u32,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Answer of `GET /tasks/completions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompletionsPage {
    pub items: Vec<TaskView>,
    /// The cursor to pass as `after` next time.
    pub next: u64,
}

/// Every error answer of the HTTP API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A stable machine-readable code (`malformed_json`, `unknown_executor`, ...).
    pub error: String,
    /// What was wrong, naming the field or parameter.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(json: &str) -> Result<Registration, FieldError> {
        serde_json::from_str::<ExecutorInfo>(json)
            .unwrap()
            .into_registration()
    }

    #[test]
    fn java_shape_is_accepted() {
        let r = info(
            r#"{"executorId":"e1","executorType":"tax","communicationType":"REST",
               "endpoint":null,"timeout":30.000000000,"metadata":{"gamelan.executor.version":"2.0"}}"#,
        )
        .unwrap();
        assert_eq!(r.executor_id, "e1");
        assert_eq!(r.metadata.executor_type, "tax");
        assert_eq!(r.metadata.communication_type, CommunicationType::Rest);
        assert_eq!(r.metadata.version, "2.0");
        assert_eq!(r.endpoint, "");
    }

    #[test]
    fn invalid_fields_are_named() {
        let e = info(r#"{"executorId":" ","executorType":"t","communicationType":"REST"}"#)
            .unwrap_err();
        assert_eq!(e.field, "executorId");
        for id in ["host 1", ".hidden", "a/b", "ex%41", "caf\u{e9}"] {
            let e = info(&format!(
                r#"{{"executorId":"{id}","executorType":"t","communicationType":"REST"}}"#
            ))
            .unwrap_err();
            assert_eq!(e.field, "executorId", "{id}");
        }
        let e = info(r#"{"executorId":"e","executorType":"t","communicationType":"UNSPECIFIED"}"#)
            .unwrap_err();
        assert_eq!(e.field, "communicationType");
        let e = info(
            r#"{"executorId":"e","executorType":"t","communicationType":"GRPC","timeout":-1}"#,
        )
        .unwrap_err();
        assert_eq!(e.field, "timeout");
        let e = info(
            r#"{"executorId":"e","executorType":"t","communicationType":"REST","maxConcurrentTasks":0}"#,
        )
        .unwrap_err();
        assert_eq!(e.field, "maxConcurrentTasks");
    }

    #[test]
    fn url_safe_ids_and_any_metadata_key_are_accepted() {
        let r = info(
            r#"{"executorId":"Host-1.echo_~2","executorType":" t ","communicationType":"rest",
               "metadata":{" ":"blank key"}}"#,
        )
        .unwrap();
        assert_eq!(r.executor_id, "Host-1.echo_~2");
        assert_eq!(r.attributes.get(" ").map(String::as_str), Some("blank key"));
    }

    #[test]
    fn registration_round_trips_through_the_wire_shape() {
        let reg = Registration {
            executor_id: "rt-tax".into(),
            metadata: ExecutorMetadata::new("tax")
                .communication(CommunicationType::Rest)
                .max_concurrent_tasks(4)
                .node_types(["tax", "vat"])
                .version("3.1"),
            endpoint: String::new(),
            attributes: BTreeMap::from([("k".to_owned(), "v".to_owned())]),
        };
        let wire = ExecutorInfo::from_registration(&reg, std::time::Duration::from_millis(1500));
        assert_eq!(wire.timeout, Some(serde_json::json!("PT1.500S")));
        let json = serde_json::to_string(&wire).unwrap();
        let back = serde_json::from_str::<ExecutorInfo>(&json)
            .unwrap()
            .into_registration()
            .unwrap();
        assert_eq!(back, reg);
    }
}
