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
use crate::wire::{ExecutorInfo, HeartbeatBody};

/// Upper bound on executors one poll may cover.
pub const POLL_MAX_EXECUTORS: usize = 256;

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
/// that is not a valid result becomes an [`Slot::Invalid`] naming its problem.
pub fn results(body: &[u8]) -> Result<ResultBatch, ApiError> {
    match decode_json::<Vec<TaskResult>>(body) {
        Ok(valid) => {
            let slots = valid.iter().map(|_| Slot::Valid).collect();
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

/// `POST /api/v1/tasks`: one request or an array of them, each with the fields it needs.
pub fn submission(body: &[u8]) -> Result<Submission, ApiError> {
    let is_batch = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'[');
    if is_batch {
        let requests: Vec<SubmitRequest> = decode_json(body)?;
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
    pub max: Option<usize>,
    pub wait_ms: Option<u64>,
}

/// `GET /api/v1/executors/tasks?executorIds=a,b,c`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PollManyQuery {
    /// Comma-separated executor ids; see [`executor_ids`].
    pub executor_ids: String,
    pub max: Option<usize>,
    pub wait_ms: Option<u64>,
}

/// `GET /api/v1/tasks/completions`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompletionsQuery {
    pub after: Option<u64>,
    pub max: Option<usize>,
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
