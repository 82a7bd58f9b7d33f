#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The `fetch-external-data` example's executor against a real local HTTP server, on a pool
//! of ONE worker thread: while the server holds its answer, the worker runs other tasks.

#[allow(dead_code, clippy::pedantic)]
#[path = "../../../examples/fetch_external_data.rs"]
mod fetch;

use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use gamelan::executors::Echo;
use gamelan::runtime::local::LocalEngine;
use gamelan::runtime::{Runtime, RuntimeHandle, RuntimeSettings};
use gamelan::sdk::{CommunicationType, ExecutorMetadata, Task, WorkflowExecutor};
use gamelan_domain::{ResultStatus, RetryPolicy};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

/// Requests the server has received, and whether `/slow` may answer.
#[derive(Default)]
struct Server {
    seen: Mutex<(Vec<String>, bool)>,
    cv: Condvar,
}

impl Server {
    fn wait_seen(&self, path: &str) -> bool {
        let guard = self.seen.lock().unwrap();
        let (guard, waited) = self
            .cv
            .wait_timeout_while(guard, WAIT, |s| !s.0.iter().any(|p| p == path))
            .unwrap();
        drop(guard);
        !waited.timed_out()
    }

    fn open(&self) {
        self.seen.lock().unwrap().1 = true;
        self.cv.notify_all();
    }
}

/// Starts a tiny_http server: `/slow` answers JSON once opened, `/missing` is a 404.
fn serve(state: Arc<Server>) -> String {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let addr = server.server_addr().to_ip().unwrap();
    thread::spawn(move || {
        for request in server.incoming_requests() {
            let state = Arc::clone(&state);
            thread::spawn(move || {
                let path = request.url().to_owned();
                state.seen.lock().unwrap().0.push(path.clone());
                state.cv.notify_all();
                let response = if path == "/slow" {
                    let guard = state.seen.lock().unwrap();
                    drop(state.cv.wait_while(guard, |s| !s.1).unwrap());
                    tiny_http::Response::from_string(r#"{"rate": 1.08}"#).with_header(
                        "Content-Type: application/json"
                            .parse::<tiny_http::Header>()
                            .unwrap(),
                    )
                } else {
                    tiny_http::Response::from_string("no such thing").with_status_code(404)
                };
                let _ = request.respond(response);
            });
        }
    });
    format!("http://{addr}")
}

fn local<T: WorkflowExecutor>(inner: T, ty: &str) -> Arc<dyn WorkflowExecutor> {
    Arc::new(gamelan::sdk::Declared::new(
        inner,
        ExecutorMetadata::new(ty)
            .communication(CommunicationType::Local)
            .max_concurrent_tasks(10),
    ))
}

fn start(engine: &LocalEngine) -> RuntimeHandle {
    let mut s = RuntimeSettings {
        runtime_id: "test".into(),
        receive_wait: Duration::from_millis(20),
        heartbeat_interval: Duration::from_millis(50),
        ..RuntimeSettings::default()
    };
    s.pool.threads = 1;
    s.pool.retry = RetryPolicy {
        max_attempts: 0,
        ..RetryPolicy::default()
    };
    let h = Runtime::builder()
        .discover(false)
        .settings(s)
        .transport(CommunicationType::Local, engine.transport())
        .executor_arc(local(
            fetch::FetchExternalData::with_io_threads(2),
            "fetch-external-data",
        ))
        .executor_arc(local(Echo, "echo"))
        .start()
        .unwrap();
    assert!(h.wait_ready(WAIT));
    h
}

fn task(run: &str, node_type: &str, ctx: serde_json::Value) -> Task {
    let mut t = Task::new(run, "n", node_type, 1);
    t.execution_token = format!("tok-{run}");
    if let serde_json::Value::Object(m) = ctx {
        t.context = m;
    }
    t
}

fn result_for(engine: &LocalEngine, run: &str) -> gamelan::sdk::TaskResult {
    assert!(
        engine.wait_until(WAIT, |v| v.results().iter().any(|r| r.run_id() == run)),
        "no result for {run}"
    );
    engine
        .results()
        .into_iter()
        .find(|r| r.run_id() == run)
        .unwrap()
}

#[test]
fn fetches_over_http_while_the_only_worker_serves_other_tasks() {
    let server = Arc::new(Server::default());
    let base = serve(Arc::clone(&server));
    let engine = LocalEngine::new();
    let h = start(&engine);
    engine.push_task(task(
        "slow",
        "fetch-external-data",
        json!({"url": format!("{base}/slow")}),
    ));
    assert!(
        server.wait_seen("/slow"),
        "the call never reached the server"
    );
    // The server holds its answer; the single worker is free all the same.
    engine.push_task(task("echo", "echo", json!({"x": 1})));
    assert!(result_for(&engine, "echo").is_completed());
    let health = h.health();
    let fetch = health
        .executors
        .iter()
        .find(|e| e.executor_type == "fetch-external-data")
        .unwrap();
    assert_eq!(fetch.deferred_tasks, 1);
    server.open();
    let r = result_for(&engine, "slow");
    assert!(r.is_completed(), "{:?}", r.error());
    assert_eq!(r.output()["status"], json!(200));
    assert_eq!(r.output()["body"], json!({"rate": 1.08}));

    engine.push_task(task(
        "missing",
        "fetch-external-data",
        json!({"url": format!("{base}/missing")}),
    ));
    let r = result_for(&engine, "missing");
    assert_eq!(r.status(), ResultStatus::Failed);
    assert_eq!(r.error().unwrap().code, "UPSTREAM_REJECTED");

    engine.push_task(task("nourl", "fetch-external-data", json!({})));
    assert_eq!(
        result_for(&engine, "nourl").error().unwrap().code,
        "MISSING_URL"
    );
    h.shutdown();
    assert_eq!(engine.results().len(), 4);
}
