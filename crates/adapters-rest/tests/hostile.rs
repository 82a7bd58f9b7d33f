//! Hostile input against the running router: every refusal is a 4xx with a JSON error body
//! naming the problem, and the server keeps serving the next, normal request.

mod common;

use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Answer, FakeEngine, OnlyGood, Server, agent, send, wait_until};
use gamelan_ports::domain::Task;
use gamelan_rest::{HttpServerSettings, served_routes};

const REGISTER: &str = r#"{"executorId":"exec-1","executorType":"echo","communicationType":"REST","endpoint":"","timeout":"PT30S","metadata":{}}"#;

struct Fixture {
    engine: Arc<FakeEngine>,
    server: Server,
    agent: ureq::Agent,
}

impl Fixture {
    fn new(settings: HttpServerSettings) -> Self {
        let engine = FakeEngine::new();
        let server = Server::start(engine.clone(), settings);
        let fixture = Self {
            engine,
            server,
            agent: agent(),
        };
        let ok = fixture.post("/api/v1/executors", REGISTER.as_bytes());
        assert_eq!(ok.status, 200, "{}", ok.body);
        fixture
    }

    fn post(&self, path: &str, body: &[u8]) -> Answer {
        send(
            &self.agent,
            "POST",
            &self.server.api(path),
            None,
            Some(body),
        )
    }

    fn get(&self, path: &str) -> Answer {
        send(&self.agent, "GET", &self.server.api(path), None, None)
    }

    /// The refusal is a 4xx JSON error of `code` whose message mentions `needle`; a normal
    /// request right after still succeeds.
    fn refused(&self, answer: &Answer, status: u16, code: &str, needle: &str) {
        assert_eq!(answer.status, status, "{}", answer.body);
        assert!(
            answer.content_type.starts_with("application/json"),
            "content type {}",
            answer.content_type
        );
        let (got_code, message) = answer.error();
        assert_eq!(got_code, code, "{message}");
        assert!(
            message.contains(needle),
            "'{message}' does not mention '{needle}'"
        );
        let next = self.get("/api/v1/executors/exec-1");
        assert_eq!(next.status, 200, "server stopped serving: {}", next.body);
    }
}

#[test]
fn malformed_json_is_refused() {
    let f = Fixture::new(HttpServerSettings::default());
    let a = f.post("/api/v1/executors", br#"{"executorId": "#);
    f.refused(&a, 400, "malformed_json", "not valid JSON");
    let a = f.post("/api/v1/tasks", b"{executorType: echo}");
    f.refused(&a, 400, "malformed_json", "not valid JSON");
    let a = f.post("/api/v1/executors/exec-1/results", b"[{]");
    f.refused(&a, 400, "malformed_json", "not valid JSON");
    let a = f.post(
        "/api/v1/executors",
        format!("{REGISTER} trailing").as_bytes(),
    );
    f.refused(&a, 400, "malformed_json", "after the JSON value");
    let a = f.post("/api/v1/executors", b"");
    f.refused(&a, 400, "malformed_json", "not valid JSON");
}

#[test]
fn wrong_types_are_refused_naming_the_field() {
    let f = Fixture::new(HttpServerSettings::default());
    let a = f.post(
        "/api/v1/executors",
        br#"{"executorId":"e","executorType":"t","communicationType":"REST","maxConcurrentTasks":"ten"}"#,
    );
    f.refused(&a, 400, "invalid_field", "maxConcurrentTasks");
    let a = f.post(
        "/api/v1/executors",
        br#"{"executorId":"e","executorType":"t","communicationType":"PIGEON"}"#,
    );
    f.refused(&a, 400, "invalid_field", "communicationType");
    let a = f.post(
        "/api/v1/executors",
        br#"{"executorId":"e","executorType":"t","communicationType":"REST","metadata":{"k":1}}"#,
    );
    f.refused(&a, 400, "invalid_field", "metadata.k");
    let a = f.post(
        "/api/v1/tasks",
        br#"{"executorType":"echo","input":"not an object"}"#,
    );
    f.refused(&a, 400, "invalid_field", "input");
    let a = f.post(
        "/api/v1/tasks",
        br#"[{"executorType":"echo"},{"executorType":"echo","timeoutSeconds":-5}]"#,
    );
    f.refused(&a, 400, "invalid_field", "[1].timeoutSeconds");
    let a = f.post(
        "/api/v1/executors/exec-1/heartbeat",
        br#"{"status":"SLEEPY"}"#,
    );
    f.refused(&a, 400, "invalid_field", "status");
    let a = f.post("/api/v1/executors/exec-1/release", br#"{"taskIds":[]}"#);
    f.refused(&a, 400, "invalid_field", "sequence");
    let a = f.post("/api/v1/executors/exec-1/results", br#"{"taskId":"x"}"#);
    f.refused(&a, 400, "invalid_field", "sequence");
    let a = f.get("/api/v1/executors/exec-1/tasks?max=lots");
    f.refused(&a, 400, "invalid_query", "max");
    let a = f.get("/api/v1/executors/tasks?max=1");
    f.refused(&a, 400, "invalid_query", "executorIds");
    let a = f.get("/api/v1/executors/tasks?executorIds=exec-1,,exec-2");
    f.refused(&a, 400, "invalid_query", "comma-separated");
    let many = vec!["exec-1"; 257].join(",");
    let a = f.get(&format!("/api/v1/executors/tasks?executorIds={many}"));
    f.refused(&a, 400, "invalid_query", "257 executors");
    let a = f.get("/api/v1/tasks/completions?waitMs=-1");
    f.refused(&a, 400, "invalid_query", "waitMs");
    // Nothing was submitted by the refused batch.
    assert_eq!(f.engine.queued(), 0);
}

#[test]
fn missing_fields_are_refused_naming_the_field() {
    let f = Fixture::new(HttpServerSettings::default());
    let a = f.post(
        "/api/v1/executors",
        br#"{"executorId":"e","communicationType":"REST"}"#,
    );
    f.refused(&a, 400, "invalid_field", "executorType");
    let a = f.post(
        "/api/v1/executors",
        br#"{"executorId":"","executorType":"t","communicationType":"REST"}"#,
    );
    f.refused(&a, 400, "invalid_field", "executorId");
    let a = f.post("/api/v1/tasks", br#"{"input":{"amount":1}}"#);
    f.refused(&a, 400, "invalid_field", "executorType");
}

#[test]
fn bodies_over_the_limit_are_refused_with_413() {
    let f = Fixture::new(HttpServerSettings {
        max_body_bytes: 64 * 1024,
        ..HttpServerSettings::default()
    });
    let big = format!(
        r#"{{"executorType":"echo","input":{{"blob":"{}"}}}}"#,
        "x".repeat(100 * 1024)
    );
    let a = f.post("/api/v1/tasks", big.as_bytes());
    f.refused(&a, 413, "body_too_large", "65536 bytes");
    let a = f.post("/api/v1/executors/exec-1/results", big.as_bytes());
    f.refused(&a, 413, "body_too_large", "65536 bytes");
    // Just under the limit is fine.
    let fits = format!(
        r#"{{"executorType":"echo","input":{{"blob":"{}"}}}}"#,
        "x".repeat(60 * 1024)
    );
    assert_eq!(f.post("/api/v1/tasks", fits.as_bytes()).status, 201);
}

#[test]
fn the_default_body_limit_is_four_mebibytes() {
    assert_eq!(
        HttpServerSettings::default().max_body_bytes,
        4 * 1024 * 1024
    );
    let f = Fixture::new(HttpServerSettings::default());
    let big = format!(
        r#"{{"executorType":"echo","input":{{"blob":"{}"}}}}"#,
        "x".repeat(4 * 1024 * 1024)
    );
    let a = f.post("/api/v1/tasks", big.as_bytes());
    f.refused(&a, 413, "body_too_large", "4194304 bytes");
}

/// Whether the server calls the engine inline or on the blocking pool, an engine that
/// panics costs that one request a 500, not the server.
#[test]
fn a_panicking_engine_call_is_a_500_and_the_server_keeps_serving() {
    for waits_on_io in [false, true] {
        let engine = FakeEngine::new();
        engine
            .waits_on_io
            .store(waits_on_io, std::sync::atomic::Ordering::SeqCst);
        let server = Server::start(engine.clone(), HttpServerSettings::default());
        let agent = agent();
        let submit = |body: &[u8]| {
            send(
                &agent,
                "POST",
                &server.api("/api/v1/tasks"),
                None,
                Some(body),
            )
        };
        let broken = submit(br#"{"executorType":"panic"}"#);
        assert_eq!(
            broken.status, 500,
            "waits_on_io={waits_on_io}: {}",
            broken.body
        );
        assert_eq!(broken.error().0, "internal");
        let fine = submit(br#"{"executorType":"echo"}"#);
        assert_eq!(fine.status, 201, "waits_on_io={waits_on_io}: {}", fine.body);
        assert_eq!(engine.queued(), 1);
    }
}

#[test]
fn unknown_executors_tasks_and_paths_are_404() {
    let f = Fixture::new(HttpServerSettings::default());
    let a = f.post("/api/v1/executors/nobody/heartbeat", b"");
    f.refused(&a, 404, "unknown_executor", "nobody");
    let a = f.get("/api/v1/executors/nobody/tasks?max=1");
    f.refused(&a, 404, "unknown_executor", "nobody");
    let a = f.get("/api/v1/executors/tasks?executorIds=exec-1,nobody&max=1");
    f.refused(&a, 404, "unknown_executor", "nobody");
    let a = f.get("/api/v1/executors/nobody");
    f.refused(&a, 404, "unknown_executor", "nobody");
    let a = f.post("/api/v1/executors/nobody/results", b"[]");
    f.refused(&a, 404, "unknown_executor", "nobody");
    let a = f.post("/api/v1/executors/nobody/release", b"[]");
    f.refused(&a, 404, "unknown_executor", "nobody");
    let a = send(
        &f.agent,
        "DELETE",
        &f.server.api("/api/v1/executors/nobody"),
        None,
        None,
    );
    f.refused(&a, 404, "unknown_executor", "nobody");
    let a = f.get("/api/v1/tasks/no:such:1");
    f.refused(&a, 404, "unknown_task", "no:such:1");
    let a = f.get("/api/v1/executors/exec-1/bogus");
    f.refused(&a, 404, "not_found", "/api/v1/executors/exec-1/bogus");
    let a = send(
        &f.agent,
        "PUT",
        &f.server.api("/api/v1/executors"),
        None,
        Some(b"{}"),
    );
    f.refused(&a, 405, "method_not_allowed", "PUT");
    // The statistics path is not taken for an executor id.
    let stats = f.get("/api/v1/executors/statistics");
    assert_eq!(stats.status, 200, "{}", stats.body);
    assert_eq!(stats.json()["executors"], 1);
}

#[test]
fn bad_results_are_rejected_one_by_one_and_good_ones_are_kept() {
    let f = Fixture::new(HttpServerSettings::default());
    f.engine.enqueue(Task::new("run", "n", "echo", 1));
    let polled = f.get("/api/v1/executors/exec-1/tasks?max=5");
    assert_eq!(polled.status, 200);
    let token = polled.json()[0]["executionToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = format!(
        r#"[
          {{"taskId":"ghost:n:1","runId":"ghost","nodeId":"n","attempt":1,"status":"COMPLETED"}},
          {{"taskId":"x:n:1","runId":"x","nodeId":"n","attempt":"one","status":"COMPLETED"}},
          {{"taskId":"y:n:1","runId":"y","nodeId":"n","attempt":1,"status":"FAILED"}},
          {{"taskId":"run:n:1","runId":"run","nodeId":"n","attempt":1,"executionToken":"{token}","status":"COMPLETED","output":{{"ok":true}}}}
        ]"#
    );
    let a = f.post("/api/v1/executors/exec-1/results", body.as_bytes());
    assert_eq!(a.status, 200, "{}", a.body);
    let answers = a.json();
    let outcome = |i: usize| answers[i]["outcome"].as_str().unwrap().to_owned();
    let message = |i: usize| {
        answers[i]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(outcome(0), "REJECTED");
    assert!(
        message(0).contains("no task was dispatched"),
        "{}",
        message(0)
    );
    assert_eq!(outcome(1), "REJECTED");
    assert!(message(1).contains("attempt"), "{}", message(1));
    assert_eq!(answers[1]["taskId"], "x:n:1");
    assert_eq!(outcome(2), "REJECTED");
    assert!(message(2).contains("must carry an error"), "{}", message(2));
    assert_eq!(outcome(3), "ACCEPT");
    assert!(f.engine.completed("run:n:1"));
}

#[test]
fn a_flood_of_long_polls_is_refused_quickly_without_exhausting_threads() {
    const POLLS: usize = 300;
    const SLOTS: usize = 32;
    let f = Fixture::new(HttpServerSettings {
        max_long_polls: SLOTS,
        max_wait: Duration::from_secs(60),
        ..HttpServerSettings::default()
    });
    let url = f
        .server
        .api("/api/v1/executors/exec-1/tasks?max=1&waitMs=60000");
    let (tx, rx) = mpsc::channel();
    let started = Instant::now();
    let clients: Vec<_> = (0..POLLS)
        .map(|_| {
            let (tx, url, agent) = (tx.clone(), url.clone(), f.agent.clone());
            std::thread::spawn(move || {
                let a = send(&agent, "GET", &url, None, None);
                let _ = tx.send((a, started.elapsed()));
            })
        })
        .collect();
    drop(tx);

    let mut refused = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while refused.len() < POLLS - SLOTS {
        let left = deadline.saturating_duration_since(Instant::now());
        let (answer, at) = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("only {} refusals arrived", refused.len()));
        refused.push((answer, at));
    }
    for (answer, at) in &refused {
        assert!(
            matches!(answer.status, 429 | 503),
            "{} {}",
            answer.status,
            answer.body
        );
        assert!(
            answer
                .retry_after
                .as_deref()
                .is_some_and(|s| s.parse::<u64>().is_ok_and(|v| v >= 1))
        );
        assert_eq!(answer.error().0, "too_many_long_polls");
        assert!(*at < Duration::from_secs(20), "refusal took {at:?}");
    }
    // The held polls are really waiting in the engine, and other clients are still served.
    assert!(wait_until(Duration::from_secs(10), || {
        f.engine.waiting.load(std::sync::atomic::Ordering::SeqCst) == SLOTS
    }));
    assert_eq!(f.get("/api/v1/executors/exec-1").status, 200);
    assert_eq!(
        f.post("/api/v1/tasks", br#"{"executorType":"other"}"#)
            .status,
        201
    );

    f.engine.open_gate();
    let mut held = 0;
    for (answer, _) in &rx {
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.json(), serde_json::json!([]));
        held += 1;
    }
    assert_eq!(held, SLOTS);
    for c in clients {
        c.join().unwrap();
    }
}

#[test]
fn every_protected_endpoint_refuses_a_bad_token() {
    let engine = FakeEngine::new();
    let server = Server::start(
        engine.clone(),
        HttpServerSettings {
            verifier: Arc::new(OnlyGood),
            protect_task_api: true,
            ..HttpServerSettings::default()
        },
    );
    let agent = agent();
    let register = send(
        &agent,
        "POST",
        &server.api("/api/v1/executors"),
        Some("Bearer good"),
        Some(REGISTER.as_bytes()),
    );
    assert_eq!(register.status, 200, "{}", register.body);
    let api_routes: Vec<_> = served_routes()
        .into_iter()
        .filter(|(_, path)| path.starts_with("/api/"))
        .collect();
    assert!(api_routes.len() >= 12);
    for (method, template) in &api_routes {
        let path = template
            .replace("{id}", "exec-1")
            .replace("{taskId}", "r:n:1");
        let url = server.api(&path);
        for (token, needle) in [
            (None, "missing"),
            (Some("Bearer forged"), "signature"),
            (Some("Basic abc"), "malformed"),
        ] {
            let a = send(&agent, method.as_str(), &url, token, Some(b"[]"));
            assert_eq!(a.status, 401, "{method} {path}: {}", a.body);
            let (code, message) = a.error();
            assert_eq!(code, "unauthenticated");
            assert!(message.contains(needle), "{method} {path}: {message}");
        }
    }
    assert_eq!(
        engine.executor_ids(),
        ["exec-1"],
        "nothing changed without a token"
    );
    let ok = send(
        &agent,
        "GET",
        &server.api("/api/v1/executors/exec-1"),
        Some("Bearer good"),
        None,
    );
    assert_eq!(ok.status, 200);
    let ok = send(
        &agent,
        "POST",
        &server.api("/api/v1/tasks"),
        Some("Bearer good"),
        Some(br#"{"executorType":"echo"}"#),
    );
    assert_eq!(ok.status, 201);
    // Probes carry no token.
    assert_eq!(
        send(&agent, "GET", &server.api("/q/health/live"), None, None).status,
        200
    );
    assert_eq!(
        send(&agent, "GET", &server.api("/metrics"), None, None).status,
        200
    );
}

#[test]
fn the_task_api_is_open_unless_protected() {
    let engine = FakeEngine::new();
    let server = Server::start(
        engine,
        HttpServerSettings {
            verifier: Arc::new(OnlyGood),
            ..HttpServerSettings::default()
        },
    );
    let agent = agent();
    let a = send(
        &agent,
        "POST",
        &server.api("/api/v1/tasks"),
        None,
        Some(br#"{"executorType":"echo"}"#),
    );
    assert_eq!(a.status, 201, "{}", a.body);
    let a = send(&agent, "GET", &server.api("/api/v1/executors"), None, None);
    assert_eq!(a.status, 401);
    assert_eq!(a.error().0, "unauthenticated");
}
