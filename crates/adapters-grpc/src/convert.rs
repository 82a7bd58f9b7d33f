//! Domain <-> wire conversions.
//!
//! Decoding never trusts the peer: every decoded task goes through [`Task::validate`] and
//! every result through [`TaskResult::from_raw`], so a malformed message becomes a
//! [`ConvertError`] the server answers with `INVALID_ARGUMENT`, never a panic.

use std::collections::HashMap;

use gamelan_domain::result::RawResult;
use gamelan_domain::{
    Acceptance, CommunicationType, ErrorInfo, ExecutorMetadata, JsonObject, ResultError,
    ResultStatus, Task, TaskError, TaskResult,
};
use gamelan_ports::{HealthStatus, Heartbeat, Registration, ReportOutcome};
use prost_types::{ListValue, Struct, Timestamp, Value, value::Kind};
use serde_json::Value as Json;

use crate::proto::{dispatcher, v1 as pb};

/// Registration metadata key naming the delivery mode (`stream` = pull, `push`).
pub const DELIVERY_KEY: &str = "gamelan.grpc.delivery";
/// Registration metadata key carrying the executor's version.
pub const VERSION_KEY: &str = "gamelan.executor.version";
/// Registration metadata key carrying the executor's description.
pub const DESCRIPTION_KEY: &str = "gamelan.executor.description";

/// Push variables: the node type (Java engines may send it too).
pub const VAR_NODE_TYPE: &str = "nodeType";
/// Push variables: the whole JSON context, so typed values survive the string map.
pub const VAR_CONTEXT: &str = "gamelan.context";
/// Push variables: the whole JSON configuration.
pub const VAR_CONFIGURATION: &str = "gamelan.configuration";
const VAR_NODE_NAME: &str = "nodeName";
const VAR_TENANT: &str = "tenantId";
const VAR_TIMEOUT: &str = "timeoutSeconds";
const VAR_SCHEDULED_AT: &str = "scheduledAt";
const RESERVED_VARS: [&str; 7] = [
    VAR_NODE_TYPE,
    VAR_CONTEXT,
    VAR_CONFIGURATION,
    VAR_NODE_NAME,
    VAR_TENANT,
    VAR_TIMEOUT,
    VAR_SCHEDULED_AT,
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    #[error("invalid task: {0}")]
    Task(#[from] TaskError),
    #[error("invalid result: {0}")]
    Result(#[from] ResultError),
    #[error("field '{field}' is out of range: {value}")]
    OutOfRange { field: &'static str, value: i64 },
    #[error("result status {0} is not COMPLETED or FAILED")]
    Status(String),
    #[error("field '{0}' must not be empty")]
    Empty(&'static str),
    #[error("{0}")]
    Invalid(String),
}

// ---------------------------------------------------------------------------------------------
// JSON <-> google.protobuf.Struct

/// Largest integer an f64 holds exactly; integral numbers up to it come back as JSON integers.
const MAX_EXACT_INT: f64 = 9_007_199_254_740_992.0;

pub fn json_to_struct(object: &JsonObject) -> Struct {
    Struct {
        fields: object
            .iter()
            .map(|(k, v)| (k.clone(), json_to_value(v)))
            .collect(),
    }
}

/// `None` for an empty object: saves bytes, and proto3 readers see an empty Struct anyway.
fn json_to_opt_struct(object: &JsonObject) -> Option<Struct> {
    (!object.is_empty()).then(|| json_to_struct(object))
}

fn json_into_opt_struct(object: JsonObject) -> Option<Struct> {
    (!object.is_empty()).then(|| json_into_struct(object))
}

pub fn json_into_struct(object: JsonObject) -> Struct {
    Struct {
        fields: object
            .into_iter()
            .map(|(k, v)| (k, json_into_value(v)))
            .collect(),
    }
}

pub fn json_into_value(value: Json) -> Value {
    let kind = match value {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(b),
        Json::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        Json::String(s) => Kind::StringValue(s),
        Json::Array(items) => Kind::ListValue(ListValue {
            values: items.into_iter().map(json_into_value).collect(),
        }),
        Json::Object(o) => Kind::StructValue(json_into_struct(o)),
    };
    Value { kind: Some(kind) }
}

pub fn json_to_value(value: &Json) -> Value {
    let kind = match value {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(*b),
        Json::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        Json::String(s) => Kind::StringValue(s.clone()),
        Json::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(json_to_value).collect(),
        }),
        Json::Object(o) => Kind::StructValue(json_to_struct(o)),
    };
    Value { kind: Some(kind) }
}

pub fn struct_to_json(s: Struct) -> JsonObject {
    s.fields
        .into_iter()
        .map(|(k, v)| (k, value_to_json(v)))
        .collect()
}

fn opt_struct_to_json(s: Option<Struct>) -> JsonObject {
    s.map(struct_to_json).unwrap_or_default()
}

/// Struct numbers are doubles: integral ones become JSON integers again (so `100` survives a
/// round trip as `100`), non-finite ones, which JSON cannot hold, become `null`.
pub fn value_to_json(value: Value) -> Json {
    match value.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::BoolValue(b)) => Json::Bool(b),
        Some(Kind::NumberValue(n)) => number_to_json(n),
        Some(Kind::StringValue(s)) => Json::String(s),
        Some(Kind::ListValue(l)) => Json::Array(l.values.into_iter().map(value_to_json).collect()),
        Some(Kind::StructValue(s)) => Json::Object(struct_to_json(s)),
    }
}

fn number_to_json(n: f64) -> Json {
    if n.is_finite() && n.fract() == 0.0 && n.abs() <= MAX_EXACT_INT {
        Json::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(Json::Null, Json::Number)
    }
}

// ---------------------------------------------------------------------------------------------
// Scalars

/// `0` (unset) maps to no timestamp.
pub fn millis_to_timestamp(ms: u64) -> Option<Timestamp> {
    (ms != 0).then(|| Timestamp {
        seconds: (ms / 1000) as i64,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    })
}

/// Times before the epoch or garbage nanos clamp to 0 rather than fail: a timestamp is
/// informational and never worth refusing a task for.
pub fn timestamp_to_millis(ts: Option<&Timestamp>) -> u64 {
    match ts {
        Some(t) if t.seconds >= 0 => (t.seconds as u64)
            .saturating_mul(1000)
            .saturating_add(u64::from(t.nanos.clamp(0, 999_999_999).unsigned_abs()) / 1_000_000),
        _ => 0,
    }
}

fn saturating_i32(n: u64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn attempt_from_wire(field: &'static str, attempt: i32) -> Result<u32, ConvertError> {
    u32::try_from(attempt).map_err(|_| ConvertError::OutOfRange {
        field,
        value: i64::from(attempt),
    })
}

fn attempt_to_wire(attempt: u32) -> i32 {
    saturating_i32(u64::from(attempt))
}

// ---------------------------------------------------------------------------------------------
// Tasks

pub fn task_to_proto(task: &Task) -> pb::ExecutionTask {
    pb::ExecutionTask {
        task_id: task.task_id.clone(),
        run_id: task.run_id.clone(),
        node_id: task.node_id.clone(),
        node_name: task.node_name.clone(),
        node_type: task.node_type.clone(),
        attempt: attempt_to_wire(task.attempt),
        execution_token: task.execution_token.clone(),
        context: json_to_opt_struct(&task.context),
        configuration: json_to_opt_struct(&task.configuration),
        timeout_seconds: task
            .timeout_seconds
            .map_or(0, |s| i64::try_from(s).unwrap_or(i64::MAX)),
        scheduled_at: millis_to_timestamp(task.scheduled_at_ms),
        tenant_id: task.tenant_id.clone(),
    }
}

/// Moves the task's strings instead of copying them, for a caller that owns the task.
pub fn task_into_proto(task: Task) -> pb::ExecutionTask {
    pb::ExecutionTask {
        attempt: attempt_to_wire(task.attempt),
        context: json_into_opt_struct(task.context),
        configuration: json_into_opt_struct(task.configuration),
        timeout_seconds: task
            .timeout_seconds
            .map_or(0, |s| i64::try_from(s).unwrap_or(i64::MAX)),
        scheduled_at: millis_to_timestamp(task.scheduled_at_ms),
        task_id: task.task_id,
        run_id: task.run_id,
        node_id: task.node_id,
        node_name: task.node_name,
        node_type: task.node_type,
        execution_token: task.execution_token,
        tenant_id: task.tenant_id,
    }
}

pub fn task_from_proto(task: pb::ExecutionTask) -> Result<Task, ConvertError> {
    let decoded = Task {
        attempt: attempt_from_wire("attempt", task.attempt)?,
        timeout_seconds: u64::try_from(task.timeout_seconds).ok().filter(|s| *s > 0),
        scheduled_at_ms: timestamp_to_millis(task.scheduled_at.as_ref()),
        context: opt_struct_to_json(task.context),
        configuration: opt_struct_to_json(task.configuration),
        task_id: task.task_id,
        run_id: task.run_id,
        node_id: task.node_id,
        node_name: task.node_name,
        node_type: task.node_type,
        execution_token: task.execution_token,
        tenant_id: task.tenant_id,
    };
    decoded.validate()?;
    Ok(decoded)
}

// ---------------------------------------------------------------------------------------------
// Results

fn error_to_proto(e: &ErrorInfo) -> pb::ErrorInfo {
    pb::ErrorInfo {
        code: e.code.clone(),
        message: e.message.clone(),
        stack_trace: e.stack_trace.clone(),
        context: json_to_opt_struct(&e.context),
    }
}

fn error_from_proto(e: pb::ErrorInfo) -> ErrorInfo {
    ErrorInfo {
        code: e.code,
        message: e.message,
        stack_trace: e.stack_trace,
        context: opt_struct_to_json(e.context),
    }
}

pub fn result_to_proto(r: &TaskResult) -> pb::TaskResult {
    let status = match r.status() {
        ResultStatus::Completed => pb::TaskStatus::Completed,
        ResultStatus::Failed => pb::TaskStatus::Failed,
    };
    pb::TaskResult {
        task_id: r.task_id().to_owned(),
        run_id: r.run_id().to_owned(),
        node_id: r.node_id().to_owned(),
        attempt: attempt_to_wire(r.attempt()),
        execution_token: r.execution_token().to_owned(),
        status: status as i32,
        output: json_to_opt_struct(r.output()),
        error: r.error().map(error_to_proto),
        completed_at: millis_to_timestamp(r.completed_at_ms()),
        tenant_id: r.tenant_id().to_owned(),
    }
}

pub fn result_from_proto(r: pb::TaskResult) -> Result<TaskResult, ConvertError> {
    let status = match pb::TaskStatus::try_from(r.status) {
        Ok(pb::TaskStatus::Completed) => ResultStatus::Completed,
        Ok(pb::TaskStatus::Failed) => ResultStatus::Failed,
        Ok(other) => return Err(ConvertError::Status(other.as_str_name().to_owned())),
        Err(_) => return Err(ConvertError::Status(format!("#{}", r.status))),
    };
    let raw = RawResult {
        attempt: attempt_from_wire("attempt", r.attempt)?,
        completed_at_ms: timestamp_to_millis(r.completed_at.as_ref()),
        output: opt_struct_to_json(r.output),
        error: r.error.map(error_from_proto),
        task_id: r.task_id,
        run_id: r.run_id,
        node_id: r.node_id,
        execution_token: r.execution_token,
        status,
        tenant_id: r.tenant_id,
    };
    Ok(TaskResult::from_raw(raw)?)
}

// ---------------------------------------------------------------------------------------------
// Result acknowledgements (the ExecuteStream extension)

/// Outcome strings of a [`pb::ResultAck`].
pub const OUTCOME_REJECTED: &str = "REJECTED";

pub fn accepted_ack(task_id: String, attempt: u32, acceptance: Acceptance) -> pb::ResultAck {
    pb::ResultAck {
        task_id,
        attempt: attempt_to_wire(attempt),
        outcome: acceptance.as_str().to_owned(),
        message: String::new(),
    }
}

pub fn rejected_ack(task_id: String, attempt: i32, message: String) -> pb::ResultAck {
    pb::ResultAck {
        task_id,
        attempt,
        outcome: OUTCOME_REJECTED.to_owned(),
        message,
    }
}

/// An outcome this side does not know is final-but-refused: resending would not change it.
pub fn ack_to_outcome(ack: &pb::ResultAck) -> ReportOutcome {
    match ack.outcome.as_str() {
        "ACCEPT" => ReportOutcome::Accepted(Acceptance::Accept),
        "ALREADY_PROCESSED" => ReportOutcome::Accepted(Acceptance::AlreadyProcessed),
        "STALE" => ReportOutcome::Accepted(Acceptance::Stale),
        OUTCOME_REJECTED => ReportOutcome::Rejected(ack.message.clone()),
        other => ReportOutcome::Rejected(format!(
            "unknown outcome '{other}' from engine: {}",
            ack.message
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Registration and heartbeats

fn communication_to_proto(c: CommunicationType) -> pb::CommunicationType {
    match c {
        CommunicationType::Grpc => pb::CommunicationType::Grpc,
        CommunicationType::Kafka => pb::CommunicationType::Kafka,
        CommunicationType::Rest => pb::CommunicationType::Rest,
        CommunicationType::Local => pb::CommunicationType::Local,
    }
}

fn communication_from_proto(c: i32) -> CommunicationType {
    match pb::CommunicationType::try_from(c) {
        Ok(pb::CommunicationType::Kafka) => CommunicationType::Kafka,
        Ok(pb::CommunicationType::Rest) => CommunicationType::Rest,
        Ok(pb::CommunicationType::Local) => CommunicationType::Local,
        _ => CommunicationType::Grpc,
    }
}

/// Attributes travel as metadata, completed with the delivery mode (`stream` unless the
/// registration says otherwise) and the executor's version.
pub fn registration_to_proto(r: &Registration) -> pb::RegisterExecutorRequest {
    let m = &r.metadata;
    let mut metadata: HashMap<String, String> = r
        .attributes
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    metadata
        .entry(DELIVERY_KEY.to_owned())
        .or_insert_with(|| "stream".to_owned());
    metadata
        .entry(VERSION_KEY.to_owned())
        .or_insert_with(|| m.version.clone());
    if !m.description.is_empty() {
        metadata
            .entry(DESCRIPTION_KEY.to_owned())
            .or_insert_with(|| m.description.clone());
    }
    pb::RegisterExecutorRequest {
        executor_id: r.executor_id.clone(),
        executor_type: m.executor_type.clone(),
        communication_type: communication_to_proto(m.communication_type) as i32,
        endpoint: r.endpoint.clone(),
        metadata,
        supported_node_types: m.supported_node_types.clone(),
        max_concurrent_tasks: saturating_i32(u64::from(m.max_concurrent_tasks)),
    }
}

/// A missing max concurrency (0, as from a minimal Java client) gets the default rather than
/// an error: the engine must still be able to balance onto the executor.
pub fn registration_from_proto(
    req: pb::RegisterExecutorRequest,
) -> Result<Registration, ConvertError> {
    if req.executor_id.is_empty() {
        return Err(ConvertError::Empty("executor_id"));
    }
    if req.executor_type.is_empty() {
        return Err(ConvertError::Empty("executor_type"));
    }
    let max = u32::try_from(req.max_concurrent_tasks)
        .ok()
        .filter(|n| *n > 0)
        .unwrap_or(ExecutorMetadata::DEFAULT_MAX_CONCURRENT_TASKS);
    let mut metadata = ExecutorMetadata::new(req.executor_type)
        .communication(communication_from_proto(req.communication_type))
        .max_concurrent_tasks(max)
        .node_types(req.supported_node_types);
    if let Some(v) = req.metadata.get(VERSION_KEY).filter(|v| !v.is_empty()) {
        metadata.version.clone_from(v);
    }
    if let Some(d) = req.metadata.get(DESCRIPTION_KEY) {
        metadata.description.clone_from(d);
    }
    Ok(Registration {
        executor_id: req.executor_id,
        metadata,
        endpoint: req.endpoint,
        attributes: req.metadata.into_iter().collect(),
    })
}

pub fn heartbeat_to_proto(h: &Heartbeat) -> pb::HeartbeatRequest {
    let current = saturating_i32(u64::from(h.current_task_count));
    pb::HeartbeatRequest {
        executor_id: h.executor_id.clone(),
        current_task_count: current,
        health: Some(pb::ExecutorHealth {
            status: h.status.as_str().to_owned(),
            current_tasks: current,
            completed_tasks: saturating_i32(h.completed_tasks),
            failed_tasks: saturating_i32(h.failed_tasks),
            cpu_usage: h.cpu_usage,
            memory_usage: h.memory_usage,
        }),
    }
}

/// Lenient on the health block (Java executors may omit it), strict on the id.
pub fn heartbeat_from_proto(h: pb::HeartbeatRequest) -> Result<Heartbeat, ConvertError> {
    if h.executor_id.is_empty() {
        return Err(ConvertError::Empty("executor_id"));
    }
    let current = u32::try_from(h.current_task_count).unwrap_or(0);
    let health = h.health.unwrap_or_default();
    Ok(Heartbeat {
        executor_id: h.executor_id,
        current_task_count: current,
        status: HealthStatus::parse(&health.status).unwrap_or_default(),
        completed_tasks: u64::try_from(health.completed_tasks).unwrap_or(0),
        failed_tasks: u64::try_from(health.failed_tasks).unwrap_or(0),
        cpu_usage: health.cpu_usage,
        memory_usage: health.memory_usage,
    })
}

// ---------------------------------------------------------------------------------------------
// Push delivery

/// The push request carries only strings; the node type, context and configuration ride in
/// reserved variables so a Rust executor rebuilds the exact task.
pub fn task_to_execution_request(task: &Task) -> dispatcher::ExecutionRequest {
    let mut variables = HashMap::with_capacity(6);
    variables.insert(VAR_NODE_TYPE.to_owned(), task.node_type.clone());
    variables.insert(
        VAR_CONTEXT.to_owned(),
        Json::Object(task.context.clone()).to_string(),
    );
    if !task.configuration.is_empty() {
        variables.insert(
            VAR_CONFIGURATION.to_owned(),
            Json::Object(task.configuration.clone()).to_string(),
        );
    }
    if !task.node_name.is_empty() {
        variables.insert(VAR_NODE_NAME.to_owned(), task.node_name.clone());
    }
    if !task.tenant_id.is_empty() {
        variables.insert(VAR_TENANT.to_owned(), task.tenant_id.clone());
    }
    if let Some(t) = task.timeout_seconds {
        variables.insert(VAR_TIMEOUT.to_owned(), t.to_string());
    }
    if task.scheduled_at_ms != 0 {
        variables.insert(
            VAR_SCHEDULED_AT.to_owned(),
            task.scheduled_at_ms.to_string(),
        );
    }
    dispatcher::ExecutionRequest {
        run_id: task.run_id.clone(),
        node_id: task.node_id.clone(),
        attempt: attempt_to_wire(task.attempt),
        token: task.execution_token.clone(),
        variables,
        idempotency_key: task.task_id.clone(),
        signature: String::new(),
    }
}

fn json_object_var(
    vars: &HashMap<String, String>,
    key: &'static str,
) -> Result<Option<JsonObject>, ConvertError> {
    match vars.get(key) {
        None => Ok(None),
        Some(text) => match serde_json::from_str::<Json>(text) {
            Ok(Json::Object(o)) => Ok(Some(o)),
            _ => Err(ConvertError::Invalid(format!(
                "variable '{key}' is not a JSON object"
            ))),
        },
    }
}

/// `default_node_type` is used when the request names none (a Java engine pushing to an
/// executor that serves a single type).
pub fn execution_request_to_task(
    req: dispatcher::ExecutionRequest,
    default_node_type: Option<&str>,
) -> Result<Task, ConvertError> {
    let vars = req.variables;
    let node_type = match vars.get(VAR_NODE_TYPE).filter(|t| !t.is_empty()) {
        Some(t) => t.clone(),
        None => default_node_type
            .map(str::to_owned)
            .ok_or(ConvertError::Empty("variables.nodeType"))?,
    };
    let attempt = attempt_from_wire("attempt", req.attempt)?;
    if req.run_id.is_empty() {
        return Err(ConvertError::Empty("run_id"));
    }
    if req.node_id.is_empty() {
        return Err(ConvertError::Empty("node_id"));
    }
    let mut task = Task::new(req.run_id, req.node_id, node_type, attempt);
    task.execution_token = req.token;
    task.context = match json_object_var(&vars, VAR_CONTEXT)? {
        Some(o) => o,
        None => vars
            .iter()
            .filter(|(k, _)| !RESERVED_VARS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), Json::String(v.clone())))
            .collect(),
    };
    task.configuration = json_object_var(&vars, VAR_CONFIGURATION)?.unwrap_or_default();
    if let Some(n) = vars.get(VAR_NODE_NAME) {
        task.node_name.clone_from(n);
    }
    if let Some(t) = vars.get(VAR_TENANT) {
        task.tenant_id.clone_from(t);
    }
    task.timeout_seconds = vars
        .get(VAR_TIMEOUT)
        .and_then(|t| t.parse().ok())
        .filter(|t| *t > 0);
    task.scheduled_at_ms = vars
        .get(VAR_SCHEDULED_AT)
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    task.validate()?;
    Ok(task)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Json) -> JsonObject {
        match v {
            Json::Object(o) => o,
            _ => unreachable!(),
        }
    }

    fn sample_task() -> Task {
        let mut t = Task::new("run:1", "node-a", "calculate-tax", 3);
        t.node_name = "Tax".into();
        t.execution_token = "tok".into();
        t.context = obj(
            json!({"amount": 100, "rate": 0.1, "tags": ["a", null, true],
            "nested": {"x": "y"}}),
        );
        t.configuration = obj(json!({"mode": "fast"}));
        t.timeout_seconds = Some(30);
        t.scheduled_at_ms = 1_700_000_000_123;
        t.tenant_id = "acme".into();
        t
    }

    #[test]
    fn task_round_trips() {
        let t = sample_task();
        let back = task_from_proto(task_to_proto(&t)).unwrap();
        assert_eq!(back, t);
        assert_eq!(task_into_proto(t.clone()), task_to_proto(&t));
        assert_eq!(back.context["amount"], json!(100));
        assert_eq!(back.context["rate"], json!(0.1));
    }

    #[test]
    fn result_round_trips_both_statuses() {
        let t = sample_task();
        let ok = TaskResult::completed(&t, obj(json!({"tax": 10.5})), 1_700_000_000_999);
        assert_eq!(result_from_proto(result_to_proto(&ok)).unwrap(), ok);
        let mut err = ErrorInfo::new("BOOM", "it broke");
        err.context.insert("kind".into(), json!("technical"));
        let failed = TaskResult::failed(&t, err, 5);
        assert_eq!(result_from_proto(result_to_proto(&failed)).unwrap(), failed);
    }

    #[test]
    fn malformed_results_are_errors_not_panics() {
        let base = pb::TaskResult {
            task_id: "r:n:1".into(),
            run_id: "r".into(),
            node_id: "n".into(),
            attempt: 1,
            status: pb::TaskStatus::Failed as i32,
            ..Default::default()
        };
        assert!(matches!(
            result_from_proto(base.clone()),
            Err(ConvertError::Result(ResultError::FailedWithoutError(_)))
        ));
        let zero = pb::TaskResult {
            attempt: 0,
            ..base.clone()
        };
        assert!(result_from_proto(zero).is_err());
        let negative = pb::TaskResult {
            attempt: -4,
            ..base.clone()
        };
        assert!(matches!(
            result_from_proto(negative),
            Err(ConvertError::OutOfRange { .. })
        ));
        let running = pb::TaskResult {
            status: pb::TaskStatus::Running as i32,
            ..base.clone()
        };
        assert_eq!(
            result_from_proto(running),
            Err(ConvertError::Status("TASK_STATUS_RUNNING".into()))
        );
        let garbage = pb::TaskResult { status: 99, ..base };
        assert!(matches!(
            result_from_proto(garbage),
            Err(ConvertError::Status(_))
        ));
    }

    #[test]
    fn malformed_tasks_are_errors() {
        let mut p = task_to_proto(&sample_task());
        p.task_id = "wrong:id:9".into();
        assert!(matches!(
            task_from_proto(p),
            Err(ConvertError::Task(TaskError::IdMismatch { .. }))
        ));
        assert!(task_from_proto(pb::ExecutionTask::default()).is_err());
    }

    #[test]
    fn numbers_that_json_cannot_hold_become_null() {
        let v = Value {
            kind: Some(Kind::NumberValue(f64::NAN)),
        };
        assert_eq!(value_to_json(v), Json::Null);
        assert_eq!(number_to_json(2.5), json!(2.5));
        assert_eq!(number_to_json(-3.0), json!(-3));
        assert_eq!(number_to_json(1e300), json!(1e300));
    }

    #[test]
    fn timestamps_clamp_instead_of_failing() {
        assert_eq!(millis_to_timestamp(0), None);
        let ts = millis_to_timestamp(1_234).unwrap();
        assert_eq!((ts.seconds, ts.nanos), (1, 234_000_000));
        assert_eq!(timestamp_to_millis(Some(&ts)), 1_234);
        let neg = Timestamp {
            seconds: -5,
            nanos: 0,
        };
        assert_eq!(timestamp_to_millis(Some(&neg)), 0);
        let bad_nanos = Timestamp {
            seconds: 1,
            nanos: -7,
        };
        assert_eq!(timestamp_to_millis(Some(&bad_nanos)), 1_000);
    }

    #[test]
    fn registration_round_trips_with_defaults() {
        let meta = ExecutorMetadata::new("calculate-tax")
            .max_concurrent_tasks(8)
            .node_types(["tax", "vat"])
            .version("2.1.0")
            .description("computes tax");
        let reg = Registration {
            executor_id: "rt-1-calculate-tax".into(),
            metadata: meta.clone(),
            endpoint: String::new(),
            attributes: std::collections::BTreeMap::new(),
        };
        let wire = registration_to_proto(&reg);
        assert_eq!(wire.metadata[DELIVERY_KEY], "stream");
        assert_eq!(wire.metadata[VERSION_KEY], "2.1.0");
        assert_eq!(wire.max_concurrent_tasks, 8);
        assert_eq!(wire.communication_type, pb::CommunicationType::Grpc as i32);
        let back = registration_from_proto(wire).unwrap();
        assert_eq!(back.metadata, meta);
        assert_eq!(back.executor_id, reg.executor_id);
        assert_eq!(back.attributes[DELIVERY_KEY], "stream");

        let minimal = pb::RegisterExecutorRequest {
            executor_id: "x".into(),
            executor_type: "t".into(),
            ..Default::default()
        };
        let r = registration_from_proto(minimal).unwrap();
        assert_eq!(
            r.metadata.max_concurrent_tasks,
            ExecutorMetadata::DEFAULT_MAX_CONCURRENT_TASKS
        );
        assert!(registration_from_proto(pb::RegisterExecutorRequest::default()).is_err());
    }

    #[test]
    fn heartbeat_round_trips_and_tolerates_missing_health() {
        let hb = Heartbeat {
            executor_id: "e".into(),
            current_task_count: 7,
            status: HealthStatus::Busy,
            completed_tasks: 100,
            failed_tasks: 2,
            cpu_usage: 0.5,
            memory_usage: 0.25,
        };
        assert_eq!(heartbeat_from_proto(heartbeat_to_proto(&hb)).unwrap(), hb);
        let bare = pb::HeartbeatRequest {
            executor_id: "e".into(),
            current_task_count: -1,
            health: None,
        };
        let h = heartbeat_from_proto(bare).unwrap();
        assert_eq!((h.current_task_count, h.status), (0, HealthStatus::Ready));
        assert!(heartbeat_from_proto(pb::HeartbeatRequest::default()).is_err());
    }

    #[test]
    fn push_request_round_trips_and_accepts_java_style_variables() {
        let t = sample_task();
        let back = execution_request_to_task(task_to_execution_request(&t), None).unwrap();
        assert_eq!(back, t);

        let java = dispatcher::ExecutionRequest {
            run_id: "r".into(),
            node_id: "n".into(),
            attempt: 1,
            token: "tk".into(),
            variables: [("amount".to_owned(), "100".to_owned())].into(),
            ..Default::default()
        };
        let t = execution_request_to_task(java.clone(), Some("calculate-tax")).unwrap();
        assert_eq!(t.node_type, "calculate-tax");
        assert_eq!(t.task_id, "r:n:1");
        assert_eq!(t.context["amount"], json!("100"));
        assert!(matches!(
            execution_request_to_task(java, None),
            Err(ConvertError::Empty(_))
        ));
    }

    #[test]
    fn ack_outcomes_map_to_report_outcomes() {
        let ack = accepted_ack("t".into(), 1, Acceptance::AlreadyProcessed);
        assert_eq!(
            ack_to_outcome(&ack),
            ReportOutcome::Accepted(Acceptance::AlreadyProcessed)
        );
        let rej = rejected_ack("t".into(), 1, "nope".into());
        assert_eq!(ack_to_outcome(&rej), ReportOutcome::Rejected("nope".into()));
        let odd = pb::ResultAck {
            outcome: "MAYBE".into(),
            ..Default::default()
        };
        assert!(matches!(ack_to_outcome(&odd), ReportOutcome::Rejected(_)));
    }
}
