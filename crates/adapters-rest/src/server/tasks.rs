//! The user task API under `/api/v1/tasks`: submission (one or a batch), lookup and the
//! completion feed.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gamelan_ports::TaskView;
use serde::Serialize;

use super::decode::{self, CompletionsQuery, Submission};
use super::error::ApiError;
use super::extract::{ApiPath, ApiQuery, RawBody};
use super::{Shared, blocking, engine_call, long_poll_permit};
use crate::wire::{CompletionsPage, ErrorBody};

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
    let engine = state.engine.clone();
    match decode::submission(&bytes)? {
        Submission::Batch(requests) => {
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
        }
        Submission::One(request) => {
            let view = engine_call(&state, move || engine.submit(request)).await??;
            Ok((StatusCode::CREATED, Json(view)).into_response())
        }
    }
}

pub(crate) async fn show(
    State(state): State<Shared>,
    ApiPath(task_id): ApiPath<String>,
) -> Result<Json<TaskView>, ApiError> {
    Ok(Json(state.engine.task(&task_id)?))
}

pub(crate) async fn completions(
    State(state): State<Shared>,
    ApiQuery(query): ApiQuery<CompletionsQuery>,
) -> Result<Json<CompletionsPage>, ApiError> {
    let after = query.after.unwrap_or(0);
    let max = decode::completions_max(query.max);
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
