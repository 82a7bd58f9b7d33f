//! Health probes and the Prometheus scrape endpoint; never behind a token, since probes and
//! scrapers carry none.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use super::Shared;

fn status(ready: bool) -> StatusCode {
    if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// Full health: 200 when ready, 503 otherwise, with the app's details.
pub(crate) async fn health(State(state): State<Shared>) -> impl IntoResponse {
    let (ready, mut body) = (state.settings.health)();
    // Probes read `status`; make sure it is there whatever details the app supplies.
    if let Some(fields) = body.as_object_mut() {
        fields
            .entry("status")
            .or_insert_with(|| serde_json::Value::from(word(ready)));
    } else {
        body = serde_json::json!({"status": word(ready), "details": body});
    }
    (status(ready), Json(body))
}

fn word(ready: bool) -> &'static str {
    if ready { "UP" } else { "DOWN" }
}

/// Liveness: the process answers, so it is alive.
pub(crate) async fn live() -> impl IntoResponse {
    Json(serde_json::json!({"status": "UP"}))
}

/// Readiness: the app's verdict, with a Quarkus-style `status` field.
pub(crate) async fn ready(State(state): State<Shared>) -> impl IntoResponse {
    let (ready, _) = (state.settings.health)();
    (
        status(ready),
        Json(serde_json::json!({"status": word(ready)})),
    )
}

pub(crate) async fn metrics(State(state): State<Shared>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        (state.settings.metrics)(),
    )
}
