//! A `fetch-external-data` executor that calls an HTTP service without holding a worker
//! thread while it waits: `execute` defers its result ([`ExecutionContext::defer`]), hands
//! the request and the completion handle to the example's own small I/O pool, and returns at
//! once. The pool thread goes back to other tasks; the task keeps its concurrency permit,
//! its deadline and its cancellation until an I/O thread completes the handle.
//!
//! `cargo run -p gamelan --example fetch_external_data` (engine at
//! GAMELAN_EXECUTOR_ENGINE_URL). Task context: `{"url": "http://..."}`; output:
//! `{"status": <HTTP status>, "body": <JSON body, or text>}`.
//!
//! The I/O pool is a fixed set of threads doing blocking HTTP calls (`ureq`), fed by a
//! channel: their number is the example's choice and independent of the worker pool, so a
//! slow service fills the I/O queue, not the workers. An executor already living in an
//! async runtime would complete the handle from a future instead; the runtime needs none.
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, unbounded};
use gamelan::sdk::{
    Deferred, ExecutionContext, ExecutionError, JsonObject, Task, WorkflowExecutor,
};

/// The executor's own time limit on one HTTP call (the task's deadline applies too).
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// Threads doing the HTTP calls.
pub const IO_THREADS: usize = 4;

/// One HTTP call and the handle that receives its outcome.
struct Fetch {
    url: String,
    done: Deferred,
}

pub struct FetchExternalData {
    requests: Sender<Fetch>,
}

impl Default for FetchExternalData {
    fn default() -> Self {
        Self::with_io_threads(IO_THREADS)
    }
}

impl FetchExternalData {
    /// Starts `threads` I/O threads; they end when the executor is dropped.
    pub fn with_io_threads(threads: usize) -> Self {
        let (requests, rx) = unbounded::<Fetch>();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let rx = Arc::new(rx);
        for i in 0..threads.max(1) {
            let rx: Arc<Receiver<Fetch>> = Arc::clone(&rx);
            let agent = agent.clone();
            let spawned = thread::Builder::new()
                .name(format!("fetch-io-{i}"))
                .spawn(move || {
                    for job in rx.iter() {
                        fetch(&agent, job);
                    }
                });
            if let Err(e) = spawned {
                log::error!("cannot start an I/O thread: {e}");
            }
        }
        Self { requests }
    }
}

impl WorkflowExecutor for FetchExternalData {
    fn execute(&self, task: &Task, ctx: &ExecutionContext) -> Result<JsonObject, ExecutionError> {
        let url = task
            .context
            .get("url")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| ExecutionError::business("MISSING_URL", "'url' must be a string"))?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ExecutionError::business(
                "BAD_URL",
                format!("'url' must be an http(s) URL, got '{url}'"),
            ));
        }
        let done = ctx.defer();
        self.requests
            .send(Fetch {
                url: url.to_owned(),
                done,
            })
            // The request (and its handle) comes back in the error and is dropped: the
            // task fails DEFERRED_DROPPED, a technical failure the retry policy retries.
            .map_err(|_| ExecutionError::technical("IO_POOL_DOWN", "the I/O threads stopped"))?;
        // Ignored once deferred: the I/O thread completes the task.
        Ok(JsonObject::new())
    }
}

/// Runs on an I/O thread: one HTTP GET, its outcome to the task's handle.
fn fetch(agent: &ureq::Agent, job: Fetch) {
    let Fetch { url, done } = job;
    if done.is_cancelled() {
        // Cancelled or timed out while queued: the runtime has already reported it.
        let _ = done.complete(Err(ExecutionError::Cancelled("before the call".into())));
        return;
    }
    let limit = TIMEOUT.min(done.remaining());
    let outcome = agent
        .get(&url)
        .config()
        .timeout_global(Some(limit))
        .build()
        .call()
        .map_err(|e| ExecutionError::technical("FETCH_FAILED", format!("GET {url}: {e}")))
        .and_then(|mut response| {
            let status = response.status().as_u16();
            let text = response.body_mut().read_to_string().map_err(|e| {
                ExecutionError::technical("FETCH_FAILED", format!("GET {url}: body: {e}"))
            })?;
            match status {
                200..=299 => {
                    let body =
                        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
                    let mut out = JsonObject::new();
                    out.insert("status".into(), status.into());
                    out.insert("body".into(), body);
                    Ok(out)
                }
                // The service is down or overloaded: worth a retry.
                500..=599 | 429 => Err(ExecutionError::technical(
                    "UPSTREAM_UNAVAILABLE",
                    format!("GET {url}: HTTP {status}"),
                )),
                _ => Err(ExecutionError::business(
                    "UPSTREAM_REJECTED",
                    format!("GET {url}: HTTP {status}"),
                )),
            }
        });
    let _ = done.complete(outcome);
}

gamelan::executor!(FetchExternalData, type = "fetch-external-data", communication = Grpc, max_concurrent_tasks = 200);

#[allow(dead_code)] // The test includes this file for the executor alone.
fn main() -> anyhow::Result<()> {
    let cfg = gamelan::commands::serve::load_executor(&[], &[])?; // files + GAMELAN_EXECUTOR_*
    gamelan::observability::logging::init(&cfg.log_filter());
    gamelan::wiring::runtime_builder(&cfg)?.run()?; // discovers FetchExternalData
    Ok(())
}
