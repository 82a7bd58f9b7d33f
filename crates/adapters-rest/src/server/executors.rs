//! The executor half of the API: registration, heartbeats, long-poll task delivery, result
//! intake and release, under `/api/v1/executors`.

use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use gamelan_ports::domain::Task;
use gamelan_ports::{
    EngineError, EngineService, EngineStatistics, ExecutorView, PolledTask, Registered,
};

use super::decode::{self, PollManyQuery, PollQuery, ResultBatch, Slot};
use super::error::ApiError;
use super::extract::{ApiPath, ApiQuery, RawBody};
use super::{Shared, engine_call, long_poll_permit};
use crate::wire::{Outcome, ResultAnswer};
use axum::extract::State;

pub(crate) async fn register(
    State(state): State<Shared>,
    RawBody(bytes): RawBody,
) -> Result<Json<Registered>, ApiError> {
    let registration = decode::registration(&bytes)?;
    let engine = state.engine.clone();
    let registered = engine_call(&state, move || engine.register(registration)).await??;
    Ok(Json(registered))
}

pub(crate) async fn heartbeat(
    State(state): State<Shared>,
    ApiPath(id): ApiPath<String>,
    RawBody(bytes): RawBody,
) -> Result<StatusCode, ApiError> {
    let heartbeat = decode::heartbeat(&bytes, id)?;
    let engine = state.engine.clone();
    engine_call(&state, move || engine.heartbeat(&heartbeat)).await??;
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
    let ids = decode::executor_ids(&query.executor_ids)?;
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
    let max = decode::poll_max(max);
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

pub(crate) async fn results(
    State(state): State<Shared>,
    ApiPath(id): ApiPath<String>,
    RawBody(bytes): RawBody,
) -> Result<Json<Vec<ResultAnswer>>, ApiError> {
    state.engine.executor(&id)?;
    let ResultBatch { slots, valid } = decode::results(&bytes)?;
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

pub(crate) async fn release(
    State(state): State<Shared>,
    ApiPath(id): ApiPath<String>,
    RawBody(bytes): RawBody,
) -> Result<StatusCode, ApiError> {
    let task_ids = decode::task_ids(&bytes)?;
    let engine = state.engine.clone();
    engine_call(&state, move || engine.release(&id, &task_ids)).await??;
    Ok(StatusCode::NO_CONTENT)
}
