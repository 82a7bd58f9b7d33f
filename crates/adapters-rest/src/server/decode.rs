//! How each endpoint reads its request: body bytes and query strings to typed values, or the
//! [`ApiError`] the client gets when they do not decode. The handlers call these after the
//! token check and the size limit; they are public so that the decoding can be exercised
//! without a server (the fuzz targets drive them with arbitrary input).

use axum::http::Uri;
use gamelan_ports::domain::TaskResult;
use gamelan_ports::{Heartbeat, Registration, SubmitRequest};
use serde::Deserialize;
use serde::de::DeserializeOwned;

pub use super::error::ApiError;
use super::extract::{decode_json, decode_value};
use super::object::Object;
use crate::wire::{ExecutorInfo, HeartbeatBody};

/// Tasks per poll when the client does not say.
pub const DEFAULT_POLL_MAX: usize = 10;
/// Upper bound on tasks per poll, whatever the client asks.
pub const POLL_MAX_LIMIT: usize = 10_000;
/// Upper bound on executors one poll may cover.
pub const POLL_MAX_EXECUTORS: usize = 256;
/// Completions per page when the client does not say, and the most it may ask for.
pub const DEFAULT_COMPLETIONS_MAX: usize = 1_000;
pub const COMPLETIONS_MAX_LIMIT: usize = 10_000;

/// `POST /api/v1/executors`: an [`ExecutorInfo`] body, checked into a registration.
pub fn registration(body: &[u8]) -> Result<Registration, ApiError> {
    let info: ExecutorInfo = decode_json(body)?;
    info.into_registration().map_err(|e| {
        ApiError::bad_request(
            "invalid_field",
            format!("field '{}': {}", e.field, e.problem),
        )
    })
}

/// `POST /api/v1/executors/{id}/heartbeat`: an empty (or blank) body is a bare heartbeat.
pub fn heartbeat(body: &[u8], executor_id: String) -> Result<Heartbeat, ApiError> {
    let decoded: HeartbeatBody = if body.iter().all(u8::is_ascii_whitespace) {
        HeartbeatBody::default()
    } else {
        decode_json(body)?
    };
    Ok(decoded.into_heartbeat(executor_id))
}

/// `POST /api/v1/executors/{id}/release`: a JSON array of task ids.
pub fn task_ids(body: &[u8]) -> Result<Vec<String>, ApiError> {
    decode_json(body)
}

/// One element of a result batch: decoded, or refused with the reason (a malformed element
/// must not take the valid ones down with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    Valid,
    Invalid {
        task_id: String,
        attempt: u32,
        message: String,
    },
}

/// A decoded result batch: one slot per element, in order, and the valid results in order.
#[derive(Debug, Clone)]
pub struct ResultBatch {
    pub slots: Vec<Slot>,
    pub valid: Vec<TaskResult>,
}

/// `POST /api/v1/executors/{id}/results`: the whole body must be a JSON array; each element
/// that is not a valid result (a result is only ever a JSON object) becomes an
/// [`Slot::Invalid`] naming its problem.
pub fn results(body: &[u8]) -> Result<ResultBatch, ApiError> {
    match decode_json::<Vec<Object<TaskResult>>>(body) {
        Ok(results) => {
            let slots = results.iter().map(|_| Slot::Valid).collect();
            let valid = results.into_iter().map(|Object(r)| r).collect();
            return Ok(ResultBatch { slots, valid });
        }
        Err(e) if e.code != "invalid_field" => return Err(e),
        Err(_) => {}
    }
    let values: Vec<serde_json::Value> = decode_json(body)?;
    let mut slots = Vec::with_capacity(values.len());
    let mut valid = Vec::with_capacity(values.len());
    for (index, value) in values.into_iter().enumerate() {
        let task_id = value
            .get("taskId")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let attempt = value
            .get("attempt")
            .and_then(serde_json::Value::as_u64)
            .and_then(|a| u32::try_from(a).ok())
            .unwrap_or(0);
        match decode_value::<TaskResult>(value) {
            Ok(result) => {
                slots.push(Slot::Valid);
                valid.push(result);
            }
            Err(message) => slots.push(Slot::Invalid {
                task_id,
                attempt,
                message: format!("result [{index}]: {message}"),
            }),
        }
    }
    Ok(ResultBatch { slots, valid })
}

/// What `POST /api/v1/tasks` was given: one request, or a batch (a JSON array).
#[derive(Debug, Clone)]
pub enum Submission {
    One(SubmitRequest),
    Batch(Vec<SubmitRequest>),
}

/// `POST /api/v1/tasks`: one request or an array of them (each a JSON object), each with the
/// fields it needs. One refused element refuses the whole batch.
pub fn submission(body: &[u8]) -> Result<Submission, ApiError> {
    let is_batch = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'[');
    if is_batch {
        let requests: Vec<SubmitRequest> = decode_json::<Vec<Object<SubmitRequest>>>(body)?
            .into_iter()
            .map(|Object(r)| r)
            .collect();
        for (index, request) in requests.iter().enumerate() {
            validate(request)
                .map_err(|m| ApiError::bad_request("invalid_field", format!("[{index}]: {m}")))?;
        }
        Ok(Submission::Batch(requests))
    } else {
        let request: SubmitRequest = decode_json(body)?;
        validate(&request).map_err(|m| ApiError::bad_request("invalid_field", m))?;
        Ok(Submission::One(request))
    }
}

fn validate(request: &SubmitRequest) -> Result<(), String> {
    let given = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
    if !given(&request.executor_type) && !given(&request.node_type) {
        return Err("one of 'executorType' or 'nodeType' is required".to_owned());
    }
    if request.node_id.as_deref().is_some_and(|n| n.contains(':')) {
        // Refused here rather than by the engine so that a batch holding one is refused as a
        // whole, like every other field the contract forbids.
        return Err(
            "field 'nodeId': must not contain ':' (task ids are runId:nodeId:attempt)".to_owned(),
        );
    }
    if request.max_attempts == Some(0) {
        return Err("field 'maxAttempts': must be at least 1".to_owned());
    }
    Ok(())
}

/// The query string of `uri` decoded as `T` (one of the query types below), as axum's `Query`
/// reads it, with a refusal naming the problem.
pub fn query<T: DeserializeOwned>(uri: &Uri) -> Result<T, ApiError> {
    axum::extract::Query::<T>::try_from_uri(uri)
        .map(|q| q.0)
        .map_err(|r| ApiError::bad_request("invalid_query", r.body_text()))
}

/// `GET /api/v1/executors/{id}/tasks`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PollQuery {
    /// Any `u64` the contract allows; see [`poll_max`].
    pub max: Option<u64>,
    pub wait_ms: Option<u64>,
}

/// `GET /api/v1/executors/tasks?executorIds=a,b,c`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PollManyQuery {
    /// Comma-separated executor ids; see [`executor_ids`].
    pub executor_ids: String,
    pub max: Option<u64>,
    pub wait_ms: Option<u64>,
}

/// `GET /api/v1/tasks/completions`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompletionsQuery {
    pub after: Option<u64>,
    /// Any `u64` the contract allows; see [`completions_max`].
    pub max: Option<u64>,
    pub wait_ms: Option<u64>,
}

/// `executorIds` split into ids: none may be empty, at most [`POLL_MAX_EXECUTORS`].
pub fn executor_ids(list: &str) -> Result<Vec<String>, ApiError> {
    let ids: Vec<String> = list.split(',').map(str::trim).map(str::to_owned).collect();
    if ids.iter().any(String::is_empty) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("executorIds must be a comma-separated list of executor ids, got '{list}'"),
        ));
    }
    if ids.len() > POLL_MAX_EXECUTORS {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!(
                "executorIds names {} executors; at most {POLL_MAX_EXECUTORS} per poll",
                ids.len()
            ),
        ));
    }
    Ok(ids)
}

/// Tasks per poll for a `max` query value: [`DEFAULT_POLL_MAX`] when absent, never more than
/// [`POLL_MAX_LIMIT`].
pub fn poll_max(max: Option<u64>) -> usize {
    max.map_or(DEFAULT_POLL_MAX, clamp_count)
        .min(POLL_MAX_LIMIT)
}

/// Completions per page for a `max` query value: [`DEFAULT_COMPLETIONS_MAX`] when absent,
/// never more than [`COMPLETIONS_MAX_LIMIT`].
pub fn completions_max(max: Option<u64>) -> usize {
    max.map_or(DEFAULT_COMPLETIONS_MAX, clamp_count)
        .min(COMPLETIONS_MAX_LIMIT)
}

/// A count from a query (any `u64` the contract allows) as a `usize`, saturating; callers
/// cap it far lower.
pub fn clamp_count(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submissions_are_objects_with_a_target_and_a_plain_node_id() {
        let one = submission(br#"{"executorType":"echo","nodeId":"tax"}"#).unwrap();
        assert!(matches!(one, Submission::One(r) if r.node_id.as_deref() == Some("tax")));
        let e = submission(br#"[{"executorType":"echo"},{"executorType":"echo","nodeId":"a:b"}]"#)
            .unwrap_err();
        assert_eq!(e.code, "invalid_field");
        assert!(
            e.message.starts_with("[1]: field 'nodeId'"),
            "{}",
            e.message
        );
        let e = submission(br#"[["echo"]]"#).unwrap_err();
        assert_eq!(e.code, "invalid_field");
        let e = submission(b"{}").unwrap_err();
        assert!(e.message.contains("executorType"), "{}", e.message);
    }

    #[test]
    fn a_malformed_result_is_rejected_alone() {
        let batch = results(br#"[{"taskId":"r:n:1","attempt":1,"status":"RUNNING"},[]]"#).unwrap();
        assert!(batch.valid.is_empty());
        assert_eq!(batch.slots.len(), 2);
        assert!(matches!(
            &batch.slots[0],
            Slot::Invalid { task_id, attempt: 1, .. } if task_id == "r:n:1"
        ));
        assert_eq!(results(b"{}").unwrap_err().code, "invalid_field");
    }

    #[test]
    fn counts_are_clamped_and_executor_ids_checked() {
        assert_eq!(poll_max(None), DEFAULT_POLL_MAX);
        assert_eq!(poll_max(Some(u64::MAX)), POLL_MAX_LIMIT);
        assert_eq!(completions_max(Some(7)), 7);
        assert_eq!(completions_max(Some(u64::MAX)), COMPLETIONS_MAX_LIMIT);
        let uri: Uri = "/api/v1/tasks/completions?max=18446744073709551615"
            .parse()
            .unwrap();
        let q: CompletionsQuery = query(&uri).unwrap();
        assert_eq!(q.max, Some(u64::MAX));
        let uri: Uri = "/x?max=-1".parse().unwrap();
        assert_eq!(query::<PollQuery>(&uri).unwrap_err().code, "invalid_query");
        assert_eq!(executor_ids(" a ,b").unwrap(), ["a", "b"]);
        assert_eq!(executor_ids("a,,b").unwrap_err().code, "invalid_query");
        let many = vec!["x"; POLL_MAX_EXECUTORS + 1].join(",");
        assert!(executor_ids(&many).is_err());
    }
}
