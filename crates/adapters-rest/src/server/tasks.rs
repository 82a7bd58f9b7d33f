//! The user task API under `/api/v1/tasks`: submission (one or a batch), lookup and the
//! completion feed.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gamelan_ports::{SubmitRequest, TaskView};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::executors::clamp_count;
use super::extract::{ApiPath, ApiQuery, RawBody, decode_json};
use super::object::Object;
use super::{Shared, blocking, engine_call, long_poll_permit};
use crate::wire::{CompletionsPage, ErrorBody};

/// Completions per page when the client does not say, and the most it may ask for.
const DEFAULT_COMPLETIONS_MAX: usize = 1_000;
const COMPLETIONS_MAX_LIMIT: usize = 10_000;

/// One answer of a batch submission: the accepted task, or why this one was refused.
#[derive(Serialize)]
#[serde(untagged)]
enum SubmitAnswer {
    Accepted(Box<TaskView>),
    Refused(ErrorBody),
}

/// `POST /tasks`: a single request answers 201 with its task; an array answers 200 with one
/// element per request, in order.
pub(crate) async fn submit(
    State(state): State<Shared>,
    RawBody(bytes): RawBody,
) -> Result<Response, ApiError> {
    let is_batch = bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'[');
    let engine = state.engine.clone();
    if is_batch {
        let requests: Vec<SubmitRequest> = decode_json::<Vec<Object<SubmitRequest>>>(&bytes)?
            .into_iter()
            .map(|Object(r)| r)
            .collect();
        for (index, request) in requests.iter().enumerate() {
            validate(request)
                .map_err(|m| ApiError::bad_request("invalid_field", format!("[{index}]: {m}")))?;
        }
        let answers = engine_call(&state, move || engine.submit_batch(requests)).await?;
        let answers: Vec<SubmitAnswer> = answers
            .into_iter()
            .map(|a| match a {
                Ok(view) => SubmitAnswer::Accepted(Box::new(view)),
                Err(e) => {
                    let e = ApiError::from(e);
                    SubmitAnswer::Refused(ErrorBody {
                        error: e.code.to_owned(),
                        message: e.message,
                    })
                }
            })
            .collect();
        Ok(Json(answers).into_response())
    } else {
        let request: SubmitRequest = decode_json(&bytes)?;
        validate(&request).map_err(|m| ApiError::bad_request("invalid_field", m))?;
        let view = engine_call(&state, move || engine.submit(request)).await??;
        Ok((StatusCode::CREATED, Json(view)).into_response())
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

pub(crate) async fn show(
    State(state): State<Shared>,
    ApiPath(task_id): ApiPath<String>,
) -> Result<Json<TaskView>, ApiError> {
    Ok(Json(state.engine.task(&task_id)?))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CompletionsQuery {
    after: Option<u64>,
    max: Option<u64>,
    wait_ms: Option<u64>,
}

pub(crate) async fn completions(
    State(state): State<Shared>,
    ApiQuery(query): ApiQuery<CompletionsQuery>,
) -> Result<Json<CompletionsPage>, ApiError> {
    let after = query.after.unwrap_or(0);
    let max = query
        .max
        .map_or(DEFAULT_COMPLETIONS_MAX, clamp_count)
        .min(COMPLETIONS_MAX_LIMIT);
    let wait = Duration::from_millis(query.wait_ms.unwrap_or(0)).min(state.settings.max_wait);
    let permit = if wait.is_zero() {
        None
    } else {
        Some(long_poll_permit(&state)?)
    };
    let engine = state.engine.clone();
    let (items, next) = blocking(move || {
        let _held = permit;
        engine.completions(after, max, wait)
    })
    .await?;
    Ok(Json(CompletionsPage { items, next }))
}
