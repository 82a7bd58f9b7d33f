//! The executor half of the API: registration, heartbeats, long-poll task delivery, result
//! intake and release, under `/api/v1/executors`.

use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use gamelan_ports::domain::Task;
use gamelan_ports::domain::TaskResult;
use gamelan_ports::{
    EngineError, EngineService, EngineStatistics, ExecutorView, PolledTask, Registered,
};
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{
    ApiPath, ApiQuery, JsonBody, OptionalJsonBody, RawBody, decode_json, decode_value,
};
use super::object::Object;
use super::{Shared, engine_call, long_poll_permit};
use crate::wire::{ExecutorInfo, HeartbeatBody, Outcome, ResultAnswer};
use axum::extract::State;

/// Tasks per poll when the client does not say.
const DEFAULT_POLL_MAX: usize = 10;
/// Upper bound on tasks per poll, whatever the client asks.
const POLL_MAX_LIMIT: usize = 10_000;
/// Upper bound on executors one poll may cover.
const POLL_MAX_EXECUTORS: usize = 256;

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
    let registered = engine_call(&state, move || engine.register(registration)).await??;
    Ok(Json(registered))
}

pub(crate) async fn heartbeat(
    State(state): State<Shared>,
    ApiPath(id): ApiPath<String>,
    OptionalJsonBody(body): OptionalJsonBody<HeartbeatBody>,
) -> Result<StatusCode, ApiError> {
    let engine = state.engine.clone();
    engine_call(&state, move || engine.heartbeat(&body.into_heartbeat(id))).await??;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn unregister(
    State(state): State<Shared>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let engine = state.engine.clone();
    engine_call(&state, move || engine.unregister(&id)).await??;
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
    max: Option<u64>,
    wait_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PollManyQuery {
    /// Comma-separated executor ids.
    executor_ids: String,
    max: Option<u64>,
    wait_ms: Option<u64>,
}

/// Long poll for one executor.
pub(crate) async fn poll(
    State(state): State<Shared>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<PollQuery>,
) -> Result<Json<Vec<Task>>, ApiError> {
    let engine = state.engine.clone();
    let tasks = long_poll(&state, query.max, query.wait_ms, move |max, wait| {
        let tasks = engine.poll(&id, max, wait)?;
        Ok(tasks
            .into_iter()
            .map(|task| PolledTask::new(id.as_str(), task))
            .collect())
    })
    .await?;
    Ok(Json(tasks.into_iter().map(|p| p.task).collect()))
}

/// Long poll for several executors of one process at once (`?executorIds=a,b,c`): ends as
/// soon as any of them has tasks, each answered with the executor it was assigned to.
pub(crate) async fn poll_many(
    State(state): State<Shared>,
    ApiQuery(query): ApiQuery<PollManyQuery>,
) -> Result<Json<Vec<PolledTask>>, ApiError> {
    let ids: Vec<String> = query
        .executor_ids
        .split(',')
        .map(str::trim)
        .map(str::to_owned)
        .collect();
    if ids.iter().any(String::is_empty) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!(
                "executorIds must be a comma-separated list of executor ids, got '{}'",
                query.executor_ids
            ),
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
    let engine = state.engine.clone();
    let polled = long_poll(&state, query.max, query.wait_ms, move |max, wait| {
        engine.poll_many(&ids, max, wait)
    })
    .await?;
    Ok(Json(polled))
}

/// Runs a poll on the blocking pool, under a long-poll permit when it may wait. The tasks
/// come back through a channel; if the client is gone by the time the engine answers (the
/// request future was dropped), they are released back to the engine at once instead of
/// waiting for a redelivery timeout.
async fn long_poll(
    state: &Shared,
    max: Option<u64>,
    wait_ms: Option<u64>,
    op: impl FnOnce(usize, Duration) -> Result<Vec<PolledTask>, EngineError> + Send + 'static,
) -> Result<Vec<PolledTask>, ApiError> {
    let max = max
        .map_or(DEFAULT_POLL_MAX, clamp_count)
        .min(POLL_MAX_LIMIT);
    let mut wait = Duration::from_millis(wait_ms.unwrap_or(0)).min(state.settings.max_wait);
    if max == 0 {
        wait = Duration::ZERO;
    }
    let permit = if wait.is_zero() {
        None
    } else {
        Some(long_poll_permit(state)?)
    };
    let engine = state.engine.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::task::spawn_blocking(move || {
        let _held = permit;
        if let Err(Ok(polled)) = tx.send(op(max, wait)) {
            release_unclaimed(engine.as_ref(), polled);
        }
    });
    let polled = rx.await.map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the engine failed while polling",
        )
    })?;
    Ok(polled?)
}

/// A count from a query (any `u64` the contract allows) as a `usize`, saturating; callers
/// cap it far lower.
pub(crate) fn clamp_count(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Hands back the tasks of a poll whose client left, grouped by executor.
fn release_unclaimed(engine: &dyn EngineService, polled: Vec<PolledTask>) {
    let mut by_executor: Vec<(String, Vec<String>)> = Vec::new();
    for p in polled {
        match by_executor.iter_mut().find(|(id, _)| *id == p.executor_id) {
            Some((_, ids)) => ids.push(p.task.task_id),
            None => by_executor.push((p.executor_id, vec![p.task.task_id])),
        }
    }
    for (id, ids) in by_executor {
        log::info!(
            target: "gamelan.executor.runtime",
            "executor {id} left its long poll; releasing {} tasks", ids.len()
        );
        if let Err(e) = engine.release(&id, &ids) {
            log::warn!(target: "gamelan.executor.error", "release after a dropped poll failed: {e}");
        }
    }
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
    let verdicts = engine_call(&state, move || engine.report(valid)).await?;
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
    match decode_json::<Vec<Object<TaskResult>>>(bytes) {
        Ok(results) => {
            let slots = results.iter().map(|_| Slot::Valid).collect();
            return Ok((slots, results.into_iter().map(|Object(r)| r).collect()));
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
    engine_call(&state, move || engine.release(&id, &task_ids)).await??;
    Ok(StatusCode::NO_CONTENT)
}
