//! Engine side: the HTTP API served next to gRPC on the engine's one port.
//!
//! Every handler is a thin translation between JSON and [`EngineService`]; engine calls that
//! may block (long polls, durable commits) run on tokio's blocking pool, and long polls are
//! bounded by a semaphore so a flood of them is refused (429 + `Retry-After`) instead of
//! exhausting threads. The router has no fallback of its own, so the app can merge it with
//! tonic's routes (which bring one).

mod auth;
pub mod decode;
mod error;
mod executors;
mod extract;
mod object;
mod ops;
mod tasks;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::routing::{MethodRouter, any, delete, get, post};
use gamelan_ports::{AllowAll, EngineService, TokenVerifier};
use tokio::sync::Semaphore;

use self::error::ApiError;

/// Prometheus exposition text for `/metrics` and `/q/metrics`.
pub type MetricsFn = Arc<dyn Fn() -> String + Send + Sync>;
/// `(ready, body)` for the health endpoints.
pub type HealthFn = Arc<dyn Fn() -> (bool, serde_json::Value) + Send + Sync>;

pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
pub const DEFAULT_MAX_LONG_POLLS: usize = 256;
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(30);

/// How the HTTP API guards itself; see [`router`].
#[derive(Clone)]
pub struct HttpServerSettings {
    /// Larger request bodies are refused with 413.
    pub max_body_bytes: usize,
    /// Long polls (`waitMs > 0`) held at once; more are refused with 429 + `Retry-After`.
    pub max_long_polls: usize,
    /// Cap for `waitMs`.
    pub max_wait: Duration,
    /// Checks the `authorization` header of every `/api/v1/executors*` request.
    pub verifier: Arc<dyn TokenVerifier>,
    /// Also check `/api/v1/tasks*` (the user API).
    pub protect_task_api: bool,
    pub metrics: MetricsFn,
    pub health: HealthFn,
}

impl Default for HttpServerSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_long_polls: DEFAULT_MAX_LONG_POLLS,
            max_wait: DEFAULT_MAX_WAIT,
            verifier: Arc::new(AllowAll),
            protect_task_api: false,
            metrics: Arc::new(String::new),
            health: Arc::new(|| (true, serde_json::json!({"status": "UP"}))),
        }
    }
}

impl std::fmt::Debug for HttpServerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServerSettings")
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_long_polls", &self.max_long_polls)
            .field("max_wait", &self.max_wait)
            .field("protect_task_api", &self.protect_task_api)
            .finish_non_exhaustive()
    }
}

pub(crate) struct AppState {
    pub engine: Arc<dyn EngineService>,
    pub settings: HttpServerSettings,
    pub long_polls: Arc<Semaphore>,
    /// The engine never blocks on I/O outside waits: call it on the async worker.
    pub inline: bool,
}

pub(crate) type Shared = Arc<AppState>;

/// Which check a route needs before its handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guard {
    /// The executor API: always checked by the verifier.
    Executor,
    /// The user API: checked when `protect_task_api`.
    Task,
    /// Health and metrics: never checked (probes carry no tokens).
    Open,
}

struct RouteDef {
    method: Method,
    path: &'static str,
    guard: Guard,
    handler: MethodRouter<Shared>,
}

fn route(
    method: Method,
    path: &'static str,
    guard: Guard,
    handler: MethodRouter<Shared>,
) -> RouteDef {
    RouteDef {
        method,
        path,
        guard,
        handler,
    }
}

/// The single source of the API's routes: the router is built from it and
/// [`served_routes`] reports it, so the OpenAPI test sees exactly what is served.
fn table() -> Vec<RouteDef> {
    use Guard::{Executor, Open, Task};
    vec![
        route(
            Method::POST,
            "/api/v1/executors",
            Executor,
            post(executors::register),
        ),
        route(
            Method::GET,
            "/api/v1/executors",
            Executor,
            get(executors::list),
        ),
        route(
            Method::GET,
            "/api/v1/executors/statistics",
            Executor,
            get(executors::statistics),
        ),
        route(
            Method::GET,
            "/api/v1/executors/tasks",
            Executor,
            get(executors::poll_many),
        ),
        route(
            Method::GET,
            "/api/v1/executors/{id}",
            Executor,
            get(executors::show),
        ),
        route(
            Method::DELETE,
            "/api/v1/executors/{id}",
            Executor,
            delete(executors::unregister),
        ),
        route(
            Method::POST,
            "/api/v1/executors/{id}/heartbeat",
            Executor,
            post(executors::heartbeat),
        ),
        route(
            Method::GET,
            "/api/v1/executors/{id}/tasks",
            Executor,
            get(executors::poll),
        ),
        route(
            Method::POST,
            "/api/v1/executors/{id}/results",
            Executor,
            post(executors::results),
        ),
        route(
            Method::POST,
            "/api/v1/executors/{id}/release",
            Executor,
            post(executors::release),
        ),
        route(Method::POST, "/api/v1/tasks", Task, post(tasks::submit)),
        route(
            Method::GET,
            "/api/v1/tasks/completions",
            Task,
            get(tasks::completions),
        ),
        route(
            Method::GET,
            "/api/v1/tasks/{taskId}",
            Task,
            get(tasks::show),
        ),
        route(Method::GET, "/health", Open, get(ops::health)),
        route(Method::GET, "/health/live", Open, get(ops::live)),
        route(Method::GET, "/health/ready", Open, get(ops::ready)),
        route(Method::GET, "/q/health", Open, get(ops::health)),
        route(Method::GET, "/q/health/live", Open, get(ops::live)),
        route(Method::GET, "/q/health/ready", Open, get(ops::ready)),
        route(Method::GET, "/metrics", Open, get(ops::metrics)),
        route(Method::GET, "/q/metrics", Open, get(ops::metrics)),
    ]
}

/// `(method, path template)` of every route [`router`] serves, paths in OpenAPI/axum
/// template syntax (`/api/v1/executors/{id}`).
pub fn served_routes() -> Vec<(Method, &'static str)> {
    table().into_iter().map(|r| (r.method, r.path)).collect()
}

/// The engine's HTTP API: the REST executor protocol under `/api/v1/executors`, the user
/// task API under `/api/v1/tasks`, health and metrics. Merge it with the gRPC routes to
/// serve both on one port.
pub fn router(engine: Arc<dyn EngineService>, settings: HttpServerSettings) -> Router {
    let limit = settings.max_body_bytes;
    let protect_tasks = settings.protect_task_api;
    let state: Shared = Arc::new(AppState {
        inline: !engine.waits_on_io(),
        engine,
        long_polls: Arc::new(Semaphore::new(settings.max_long_polls)),
        settings,
    });
    let mut executor_api = Router::new();
    let mut task_api = Router::new();
    let mut open = Router::new();
    for r in table() {
        let target = match r.guard {
            Guard::Executor => &mut executor_api,
            Guard::Task => &mut task_api,
            Guard::Open => &mut open,
        };
        *target = std::mem::take(target).route(r.path, r.handler);
    }
    let guard = axum::middleware::from_fn_with_state(state.clone(), auth::require_token);
    executor_api = executor_api.route_layer(guard.clone());
    if protect_tasks {
        task_api = task_api.route_layer(guard);
    }
    Router::new()
        .merge(executor_api)
        .merge(task_api)
        .merge(open)
        .route("/api/{*rest}", any(unknown_path))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

async fn unknown_path(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no such endpoint: {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// Runs a possibly blocking engine call off the async workers. A panic inside the engine
/// becomes a 500 for this request only.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| engine_failed(&e))
}

/// A short engine operation (no wait of its own): inline when the engine never blocks on
/// I/O, else on the blocking pool. A panic inside is a 500 for this request either way.
pub(crate) async fn engine_call<T, F>(state: &AppState, f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if state.inline {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
            .map_err(|_| engine_failed(&"panicked"))
    } else {
        blocking(f).await
    }
}

fn engine_failed(e: &dyn std::fmt::Display) -> ApiError {
    log::error!(target: "gamelan.executor.error", "engine call failed: {e}");
    ApiError::new(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the engine failed while handling the request",
    )
}

/// Takes a long-poll slot, or refuses at once when all are held.
pub(crate) fn long_poll_permit(
    state: &Shared,
) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    state.long_polls.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "too_many_long_polls",
            format!(
                "{} long polls are already waiting; retry later",
                state.settings.max_long_polls
            ),
        )
        .retry_after(Duration::from_secs(1))
    })
}
