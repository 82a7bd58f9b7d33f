//! The executor half of the API: registration, heartbeats, long-poll task delivery, result
//! intake and release, under `/api/v1/executors`.

use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use gamelan_ports::domain::Task;
use gamelan_ports::domain::TaskResult;
use gamelan_ports::{EngineStatistics, ExecutorView, Registered};
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{
    ApiPath, ApiQuery, JsonBody, OptionalJsonBody, RawBody, decode_json, decode_value,
};
use super::{Shared, blocking, long_poll_permit};
use crate::wire::{ExecutorInfo, HeartbeatBody, Outcome, ResultAnswer};
use axum::extract::State;

/// Tasks per poll when the client does not say.
const DEFAULT_POLL_MAX: usize = 10;
/// Upper bound on tasks per poll, whatever the client asks.
const POLL_MAX_LIMIT: usize = 10_000;

pub(crate) async fn register(
    State(state): State<Shared>,
    JsonBody(info): JsonBody<ExecutorInfo>,
) -> Result<Json<Registered>, ApiError> {
    let registration = info.into_registration().map_err(|e| {
        ApiError::bad_request(
            "invalid_field",
            format!("field '{}': {}", e.field, e.problem),
        )
    })?;
    let engine = state.engine.clone();
    let registered = blocking(move || engine.register(registration)).await??;
    Ok(Json(registered))
}

pub(crate) async fn heartbeat(
    State(state): State<Shared>,
    ApiPath(id): ApiPath<String>,
    OptionalJsonBody(body): OptionalJsonBody<HeartbeatBody>,
) -> Result<StatusCode, ApiError> {
    let engine = state.engine.clone();
    blocking(move || engine.heartbeat(&body.into_heartbeat(id))).await??;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn unregister(
    State(state): State<Shared>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let engine = state.engine.clone();
    blocking(move || engine.unregister(&id)).await??;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn list(State(state): State<Shared>) -> Json<Vec<ExecutorView>> {
    Json(state.engine.executors())
}

pub(crate) async fn show(
    State(state): State<Shared>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ExecutorView>, ApiError> {
    Ok(Json(state.engine.executor(&id)?))
}

pub(crate) async fn statistics(State(state): State<Shared>) -> Json<EngineStatistics> {
    Json(state.engine.statistics())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PollQuery {
    max: Option<usize>,
    wait_ms: Option<u64>,
}

/// Long poll. The tasks are handed over through a channel; if the client is gone by the
/// time the engine answers (the request future was dropped), they are released back to the
/// engine at once instead of waiting for a redelivery timeout.
pub(crate) async fn poll(
    State(state): State<Shared>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<PollQuery>,
) -> Result<Json<Vec<Task>>, ApiError> {
    let max = query.max.unwrap_or(DEFAULT_POLL_MAX).min(POLL_MAX_LIMIT);
    let mut wait = Duration::from_millis(query.wait_ms.unwrap_or(0)).min(state.settings.max_wait);
    if max == 0 {
        wait = Duration::ZERO;
    }
    let permit = if wait.is_zero() {
        None
    } else {
        Some(long_poll_permit(&state)?)
    };
    let engine = state.engine.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::task::spawn_blocking(move || {
        let _held = permit;
        let polled = engine.poll(&id, max, wait);
        if let Err(Ok(tasks)) = tx.send(polled)
            && !tasks.is_empty()
        {
            let ids: Vec<String> = tasks.into_iter().map(|t| t.task_id).collect();
            log::info!(
                target: "gamelan.executor.runtime",
                "executor {id} left its long poll; releasing {} tasks", ids.len()
            );
            if let Err(e) = engine.release(&id, &ids) {
                log::warn!(target: "gamelan.executor.error", "release after a dropped poll failed: {e}");
            }
        }
    });
    let polled = rx.await.map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the engine failed while polling",
        )
    })?;
    Ok(Json(polled?))
}

/// One element of a result batch: decoded, or refused with the reason (a malformed element
/// must not take the valid ones down with it).
enum Slot {
    Valid,
    Invalid {
        task_id: String,
        attempt: u32,
        message: String,
    },
}

pub(crate) async fn results(
    State(state): State<Shared>,
    ApiPath(id): ApiPath<String>,
    RawBody(bytes): RawBody,
) -> Result<Json<Vec<ResultAnswer>>, ApiError> {
    state.engine.executor(&id)?;
    let (slots, valid) = decode_results(&bytes)?;
    let engine = state.engine.clone();
    let ids: Vec<(String, u32)> = valid
        .iter()
        .map(|r| (r.task_id().to_owned(), r.attempt()))
        .collect();
    let verdicts = blocking(move || engine.report(valid)).await?;
    if verdicts.len() != ids.len() {
        log::error!(
            target: "gamelan.executor.error",
            "engine answered {} of {} results", verdicts.len(), ids.len()
        );
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the engine did not answer every result",
        ));
    }
    if let Some(e) = verdicts
        .iter()
        .find_map(|v| v.as_ref().err().filter(|e| ApiError::is_transient(e)))
    {
        // Results accepted in this batch come back as ALREADY_PROCESSED on the resend.
        return Err(ApiError::from(e.clone()));
    }
    let mut verdicts = verdicts.into_iter().zip(ids);
    let mut answers = Vec::with_capacity(slots.len());
    for slot in slots {
        let answer = match slot {
            Slot::Invalid {
                task_id,
                attempt,
                message,
            } => ResultAnswer {
                task_id,
                attempt,
                outcome: Outcome::Rejected,
                message: Some(message),
            },
            Slot::Valid => {
                let Some((verdict, (task_id, attempt))) = verdicts.next() else {
                    break;
                };
                match verdict {
                    Ok(acceptance) => ResultAnswer {
                        task_id,
                        attempt,
                        outcome: acceptance.into(),
                        message: None,
                    },
                    Err(e) => ResultAnswer {
                        task_id,
                        attempt,
                        outcome: Outcome::Rejected,
                        message: Some(e.to_string()),
                    },
                }
            }
        };
        answers.push(answer);
    }
    Ok(Json(answers))
}

/// Decodes a result batch: the whole body must be a JSON array; each element that is not a
/// valid result becomes a REJECTED answer naming its problem.
fn decode_results(bytes: &[u8]) -> Result<(Vec<Slot>, Vec<TaskResult>), ApiError> {
    match decode_json::<Vec<TaskResult>>(bytes) {
        Ok(results) => {
            let slots = results.iter().map(|_| Slot::Valid).collect();
            return Ok((slots, results));
        }
        Err(e) if e.code != "invalid_field" => return Err(e),
        Err(_) => {}
    }
    let values: Vec<serde_json::Value> = decode_json(bytes)?;
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
    Ok((slots, valid))
}

pub(crate) async fn release(
    State(state): State<Shared>,
    ApiPath(id): ApiPath<String>,
    JsonBody(task_ids): JsonBody<Vec<String>>,
) -> Result<StatusCode, ApiError> {
    let engine = state.engine.clone();
    blocking(move || engine.release(&id, &task_ids)).await??;
    Ok(StatusCode::NO_CONTENT)
}
