//! `openapi.yaml` (repo root) against the running router: the spec lists exactly the routes
//! served, every operation answers with a documented status, and every JSON answer
//! validates against the spec's schema for that status.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Answer, FakeEngine, Server, agent, send};
use gamelan_ports::domain::{CommunicationType, ExecutorMetadata, Task, TaskResult};
use gamelan_ports::{EngineService, Registration, SubmitRequest};
use gamelan_rest::{HttpServerSettings, served_routes};
use serde_json::{Value, json};

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

fn spec() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.yaml");
    let text = std::fs::read_to_string(path).expect("openapi.yaml at the repo root");
    serde_norway::from_str(&text).expect("openapi.yaml is valid YAML")
}

/// OpenAPI 3.0 schema -> JSON Schema 2020-12: `nullable` becomes a `null` alternative and
/// `example` is dropped; everything else used by the spec means the same in both.
fn to_json_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                if k != "nullable" && k != "example" {
                    out.insert(k.clone(), to_json_schema(v));
                }
            }
            if map.get("nullable") == Some(&Value::Bool(true)) {
                match out.remove("type") {
                    Some(Value::String(t)) => {
                        out.insert("type".into(), json!([t, "null"]));
                    }
                    Some(other) => {
                        out.insert("type".into(), other);
                    }
                    None => return json!({"anyOf": [Value::Object(out), {"type": "null"}]}),
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(to_json_schema).collect()),
        other => other.clone(),
    }
}

struct Spec {
    doc: Value,
    schemas: Value,
}

impl Spec {
    fn load() -> Self {
        let doc = spec();
        let schemas = to_json_schema(&doc["components"]["schemas"]);
        Self { doc, schemas }
    }

    /// Follows a `$ref` into `#/components/...`.
    fn resolve<'a>(&'a self, v: &'a Value) -> &'a Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let pointer = r.strip_prefix('#').expect("local reference");
                self.doc
                    .pointer(pointer)
                    .unwrap_or_else(|| panic!("dangling {r}"))
            }
            None => v,
        }
    }

    fn operations(&self) -> Vec<(String, String, &Value)> {
        let mut ops = Vec::new();
        for (path, item) in self.doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                if METHODS.contains(&method.as_str()) {
                    ops.push((method.to_uppercase(), path.clone(), op));
                }
            }
        }
        ops
    }

    /// Whether `value` is valid against `schema` (an OpenAPI schema of this spec).
    fn accepts(&self, schema: &Value, value: &Value) -> bool {
        let schema = json!({
            "components": {"schemas": self.schemas},
            "allOf": [to_json_schema(self.resolve(schema))],
        });
        jsonschema::validator_for(&schema)
            .unwrap_or_else(|e| panic!("schema does not compile: {e}"))
            .is_valid(value)
    }

    /// Checks an answer against the operation's documented response for its status.
    fn check(&self, what: &str, op: &Value, answer: &Answer) {
        let status = answer.status.to_string();
        let Some(response) = op["responses"].get(&status) else {
            panic!("{what}: status {status} is not documented: {}", answer.body)
        };
        let response = self.resolve(response);
        let Some(content) = response.get("content").and_then(Value::as_object) else {
            assert!(
                answer.body.is_empty(),
                "{what}: undocumented body {}",
                answer.body
            );
            return;
        };
        if let Some(media) = content.get("application/json") {
            assert!(
                answer.content_type.starts_with("application/json"),
                "{what}: content type {}",
                answer.content_type
            );
            let schema = json!({
                "components": {"schemas": self.schemas},
                "allOf": [to_json_schema(&media["schema"])],
            });
            let validator = jsonschema::validator_for(&schema)
                .unwrap_or_else(|e| panic!("{what}: schema does not compile: {e}"));
            let body = answer.json();
            let errors: Vec<String> = validator
                .iter_errors(&body)
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .collect();
            assert!(errors.is_empty(), "{what}: {errors:?}\nbody: {body}");
        } else {
            assert!(
                content.contains_key("text/plain"),
                "{what}: unknown media type"
            );
            assert!(
                answer.content_type.starts_with("text/plain"),
                "{what}: {}",
                answer.content_type
            );
            assert!(!answer.body.is_empty(), "{what}: empty text body");
        }
    }
}

fn registration(id: &str) -> Registration {
    Registration {
        executor_id: id.into(),
        metadata: ExecutorMetadata::new("echo").communication(CommunicationType::Rest),
        endpoint: String::new(),
        attributes: std::collections::BTreeMap::default(),
    }
}

/// An engine with two executors, a finished task (for lookups and the completion feed) and
/// a queued one (so the long poll answers a real task).
fn populated_engine() -> (std::sync::Arc<FakeEngine>, String) {
    let engine = FakeEngine::new();
    engine.register(registration("exec-1")).expect("register");
    engine.register(registration("exec-2")).expect("register");
    let view = engine
        .submit(SubmitRequest {
            executor_type: Some("echo".into()),
            ..SubmitRequest::default()
        })
        .expect("submit");
    let polled = engine.poll("exec-1", 1, Duration::ZERO).expect("poll");
    let mut out = serde_json::Map::new();
    out.insert("tax".into(), json!(10.5));
    let accepted = engine.report(vec![TaskResult::completed(&polled[0], out, 3)]);
    assert!(accepted[0].is_ok());
    let mut queued = Task::new("queued", "n", "echo", 1);
    queued.execution_token = "tok".into();
    engine.enqueue(queued);
    (engine, view.task_id)
}

fn settings() -> HttpServerSettings {
    HttpServerSettings {
        metrics: std::sync::Arc::new(|| {
            "# TYPE executor_tasks_total counter\nexecutor_tasks_total 1\n".into()
        }),
        ..HttpServerSettings::default()
    }
}

fn url_for(server: &Server, method: &str, path: &str, task_id: &str) -> String {
    // The unregistration gets its own executor so the other operations keep theirs.
    let id = if method == "DELETE" {
        "exec-2"
    } else {
        "exec-1"
    };
    let mut url = server.api(&path.replace("{id}", id).replace("{taskId}", task_id));
    if path == "/api/v1/executors/tasks" {
        // Its one required parameter.
        url.push_str("?executorIds=exec-1,exec-2");
    }
    url
}

fn example_body(op: &Value) -> Option<Vec<u8>> {
    let example = op.pointer("/requestBody/content/application~1json/example")?;
    Some(serde_json::to_vec(example).expect("example serialises"))
}

#[test]
fn the_spec_lists_exactly_the_served_routes() {
    let spec = Spec::load();
    let documented: BTreeSet<(String, String)> = spec
        .operations()
        .into_iter()
        .map(|(m, p, _)| (m, p))
        .collect();
    let served: BTreeSet<(String, String)> = served_routes()
        .into_iter()
        .map(|(m, p)| (m.to_string(), p.to_owned()))
        .collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served but not in openapi.yaml: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "in openapi.yaml but not served: {unserved:?}"
    );
}

#[test]
fn every_operation_answers_as_documented() {
    let spec = Spec::load();
    let (engine, task_id) = populated_engine();
    let server = Server::start(engine, settings());
    let agent = agent();
    let mut checked = 0;
    for (method, path, op) in spec.operations() {
        let url = url_for(&server, &method, &path, &task_id);
        let body = example_body(op);
        let answer = send(&agent, &method, &url, None, body.as_deref());
        let what = format!("{method} {path}");
        assert!(
            (200..300).contains(&answer.status),
            "{what}: {} {}",
            answer.status,
            answer.body
        );
        spec.check(&what, op, &answer);
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} operations in the spec");
}

#[test]
fn answers_with_content_validate_against_their_schemas() {
    let spec = Spec::load();
    let (engine, task_id) = populated_engine();
    let engine_handle = engine.clone();
    let server = Server::start(engine, settings());
    let agent = agent();
    let op = |path: &str, method: &str| spec.doc["paths"][path][method].clone();

    // The long poll hands out a real task; the completion feed and lookup show results.
    let polled = send(
        &agent,
        "GET",
        &server.api("/api/v1/executors/exec-1/tasks?max=5"),
        None,
        None,
    );
    assert_eq!(
        polled.json().as_array().map(Vec::len),
        Some(1),
        "{}",
        polled.body
    );
    spec.check("poll", &op("/api/v1/executors/{id}/tasks", "get"), &polled);
    engine_handle.enqueue(Task::new("for-many", "n", "echo", 1));
    let polled = send(
        &agent,
        "GET",
        &server.api("/api/v1/executors/tasks?executorIds=exec-2,exec-1&max=5"),
        None,
        None,
    );
    assert_eq!(polled.json()[0]["executorId"], "exec-2", "{}", polled.body);
    assert_eq!(
        polled.json()[0]["task"]["runId"],
        "for-many",
        "{}",
        polled.body
    );
    spec.check("poll many", &op("/api/v1/executors/tasks", "get"), &polled);
    let feed = send(
        &agent,
        "GET",
        &server.api("/api/v1/tasks/completions?after=0"),
        None,
        None,
    );
    assert_eq!(
        feed.json()["items"].as_array().map(Vec::len),
        Some(1),
        "{}",
        feed.body
    );
    spec.check(
        "completions",
        &op("/api/v1/tasks/completions", "get"),
        &feed,
    );
    let shown = send(
        &agent,
        "GET",
        &server.api(&format!("/api/v1/tasks/{task_id}")),
        None,
        None,
    );
    assert_eq!(shown.json()["output"]["tax"], 10.5);
    spec.check("task", &op("/api/v1/tasks/{taskId}", "get"), &shown);

    // The batch form of submission, with one refusal among the answers.
    let batch = send(
        &agent,
        "POST",
        &server.api("/api/v1/tasks"),
        None,
        Some(br#"[{"executorType":"echo","input":{"a":1}},{"executorType":"refused"}]"#),
    );
    assert_eq!(batch.status, 200, "{}", batch.body);
    assert_eq!(batch.json()[1]["error"], "invalid_request");
    spec.check("batch submit", &op("/api/v1/tasks", "post"), &batch);

    // Error answers: unknown ids, malformed bodies, bad queries.
    for (method, path, operation) in spec.operations() {
        let what = format!("{method} {path}");
        if operation["responses"].get("404").is_some() && path.contains('{') {
            let url = server.api(
                &path
                    .replace("{id}", "nobody")
                    .replace("{taskId}", "no:such:1"),
            );
            let body = example_body(operation);
            let answer = send(&agent, &method, &url, None, body.as_deref());
            assert_eq!(answer.status, 404, "{what}: {}", answer.body);
            spec.check(&what, operation, &answer);
        }
        if operation["responses"].get("400").is_some() && operation.get("requestBody").is_some() {
            let url = url_for(&server, &method, &path, &task_id);
            let answer = send(&agent, &method, &url, None, Some(b"{\"broken"));
            assert_eq!(answer.status, 400, "{what}: {}", answer.body);
            spec.check(&what, operation, &answer);
        }
    }
    let bad_query = send(
        &agent,
        "GET",
        &server.api("/api/v1/executors/exec-1/tasks?waitMs=soon"),
        None,
        None,
    );
    spec.check(
        "bad query",
        &op("/api/v1/executors/{id}/tasks", "get"),
        &bad_query,
    );
}

#[test]
fn health_reflects_readiness() {
    let spec = Spec::load();
    let server = Server::start(
        FakeEngine::new(),
        HttpServerSettings {
            health: std::sync::Arc::new(|| (false, json!({"store": "unreachable"}))),
            ..settings()
        },
    );
    let agent = agent();
    for path in ["/health", "/health/ready", "/q/health", "/q/health/ready"] {
        let a = send(&agent, "GET", &server.api(path), None, None);
        assert_eq!(a.status, 503, "{path}");
        assert_eq!(a.json()["status"], "DOWN");
        spec.check(path, &spec.doc["paths"][path]["get"], &a);
    }
    let details = send(&agent, "GET", &server.api("/health"), None, None);
    assert_eq!(details.json()["store"], "unreachable");
    for path in ["/health/live", "/q/health/live"] {
        assert_eq!(
            send(&agent, "GET", &server.api(path), None, None).status,
            200
        );
    }
}

/// One request at an edge of the contract, with `None` when it is valid and otherwise what
/// the refusal names.
struct Edge {
    method: &'static str,
    template: &'static str,
    path: &'static str,
    query: &'static [(&'static str, &'static str)],
    body: Option<&'static str>,
    refusal: Option<&'static str>,
}

const fn body(
    template: &'static str,
    path: &'static str,
    body: &'static str,
    refusal: Option<&'static str>,
) -> Edge {
    Edge {
        method: "POST",
        template,
        path,
        query: &[],
        body: Some(body),
        refusal,
    }
}

const fn query(
    template: &'static str,
    path: &'static str,
    query: &'static [(&'static str, &'static str)],
    refusal: Option<&'static str>,
) -> Edge {
    Edge {
        method: "GET",
        template,
        path,
        query,
        body: None,
        refusal,
    }
}

const REGISTER: &str = "/api/v1/executors";
const HEARTBEAT: &str = "/api/v1/executors/{id}/heartbeat";
const SUBMIT: &str = "/api/v1/tasks";
const POLL: &str = "/api/v1/executors/{id}/tasks";
const POLL_MANY: &str = "/api/v1/executors/tasks";
const COMPLETIONS: &str = "/api/v1/tasks/completions";

const EDGES: &[Edge] = &[
    // Registration: every optional field null, the largest count, a blank metadata key, a
    // prefixed lower-case communication type.
    body(
        REGISTER,
        REGISTER,
        r#"{"executorId":"host-1.echo_~","executorType":"echo","communicationType":" COMMUNICATION_TYPE_rest ","endpoint":null,"timeout":null,"metadata":{" ":"blank key"},"supportedNodeTypes":null,"maxConcurrentTasks":4294967295,"version":null}"#,
        None,
    ),
    body(
        REGISTER,
        REGISTER,
        r#"{"executorId":"host 1","executorType":"echo","communicationType":"REST"}"#,
        Some("executorId"),
    ),
    body(
        REGISTER,
        REGISTER,
        r#"{"executorId":"h","executorType":"echo","communicationType":"REST","maxConcurrentTasks":4294967296}"#,
        Some("maxConcurrentTasks"),
    ),
    body(
        REGISTER,
        REGISTER,
        r#"{"executorId":"h","executorType":"echo","communicationType":"REST","timeout":"30s"}"#,
        Some("timeout"),
    ),
    body(
        REGISTER,
        REGISTER,
        r#"{"executorId":"h","executorType":"echo","communicationType":"REST","supportedNodeTypes":["\u2003"]}"#,
        Some("supportedNodeTypes"),
    ),
    body(
        REGISTER,
        REGISTER,
        r#"["h","echo","REST"]"#,
        Some("request body"),
    ),
    // Heartbeats: the largest counters; beyond them, and an array for the object.
    body(
        HEARTBEAT,
        "/api/v1/executors/exec-1/heartbeat",
        r#"{"currentTaskCount":4294967295,"completedTasks":18446744073709551615,"failedTasks":18446744073709551615}"#,
        None,
    ),
    body(
        HEARTBEAT,
        "/api/v1/executors/exec-1/heartbeat",
        r#"{"failedTasks":18446744073709551616}"#,
        Some("failedTasks"),
    ),
    body(
        HEARTBEAT,
        "/api/v1/executors/exec-1/heartbeat",
        r#"{"currentTaskCount":4294967296}"#,
        Some("currentTaskCount"),
    ),
    body(
        HEARTBEAT,
        "/api/v1/executors/exec-1/heartbeat",
        "[]",
        Some("request body"),
    ),
    // Submission: nodeType alone, the largest timeout and attempts, an empty batch; a
    // blank type, ':' in a batch element's nodeId, an array for an element, an overflow.
    body(SUBMIT, SUBMIT, r#"{"nodeType":"echo"}"#, None),
    body(
        SUBMIT,
        SUBMIT,
        r#"{"executorType":null,"nodeType":"echo","nodeId":"n","timeoutSeconds":18446744073709551615,"maxAttempts":4294967295}"#,
        None,
    ),
    body(SUBMIT, SUBMIT, "[]", None),
    body(
        SUBMIT,
        SUBMIT,
        r#"{"executorType":" ","nodeType":null}"#,
        Some("executorType"),
    ),
    body(
        SUBMIT,
        SUBMIT,
        r#"[{"executorType":"echo"},{"executorType":"echo","nodeId":"a:b"}]"#,
        Some("[1]: field 'nodeId'"),
    ),
    body(SUBMIT, SUBMIT, r#"[["echo"]]"#, Some("[0]")),
    body(
        SUBMIT,
        SUBMIT,
        r#"{"executorType":"echo","timeoutSeconds":18446744073709551616}"#,
        Some("timeoutSeconds"),
    ),
    // Queries: the largest values are accepted (counts are capped, waits bounded).
    query(
        POLL,
        "/api/v1/executors/exec-1/tasks",
        &[
            ("max", "18446744073709551615"),
            ("waitMs", "18446744073709551615"),
        ],
        None,
    ),
    query(
        POLL,
        "/api/v1/executors/exec-1/tasks",
        &[("waitMs", "18446744073709551616")],
        Some("waitMs"),
    ),
    query(
        POLL_MANY,
        POLL_MANY,
        &[
            ("executorIds", " exec-1 ,exec-2"),
            ("max", "18446744073709551615"),
        ],
        None,
    ),
    query(
        POLL_MANY,
        POLL_MANY,
        &[("executorIds", "exec-1, ")],
        Some("comma-separated"),
    ),
    query(
        COMPLETIONS,
        COMPLETIONS,
        &[
            ("after", "18446744073709551615"),
            ("max", "18446744073709551615"),
        ],
        None,
    ),
    query(
        COMPLETIONS,
        COMPLETIONS,
        &[("after", "18446744073709551616")],
        Some("after"),
    ),
];

/// The spec and the server agree on requests at the edges of the contract: what the spec's
/// schemas allow is accepted, what they forbid is refused with 400 naming the field.
#[test]
fn the_spec_and_the_server_agree_on_edge_requests() {
    let spec = Spec::load();
    let (engine, _) = populated_engine();
    let server = Server::start(
        engine,
        HttpServerSettings {
            max_wait: Duration::from_millis(20),
            ..settings()
        },
    );
    let agent = agent();
    for edge in EDGES {
        let op = &spec.doc["paths"][edge.template][edge.method.to_lowercase()];
        let what = format!(
            "{} {} {:?} {}",
            edge.method,
            edge.path,
            edge.query,
            edge.body.unwrap_or_default()
        );
        let mut valid = true;
        if let Some(text) = edge.body {
            let value: Value = serde_json::from_str(text).expect("test bodies are JSON");
            let schema = &op["requestBody"]["content"]["application/json"]["schema"];
            valid &= spec.accepts(schema, &value);
        }
        for (name, raw) in edge.query {
            let parameter = op["parameters"]
                .as_array()
                .and_then(|ps| ps.iter().find(|p| p["name"] == *name))
                .unwrap_or_else(|| panic!("{what}: no parameter {name}"));
            let value = if parameter["schema"]["type"] == "integer" {
                serde_json::from_str(raw).expect("an integer")
            } else {
                Value::String((*raw).to_owned())
            };
            valid &= spec.accepts(&parameter["schema"], &value);
        }
        assert_eq!(
            valid,
            edge.refusal.is_none(),
            "{what}: the spec's verdict is not the expected one"
        );
        let query: Vec<String> = edge
            .query
            .iter()
            .map(|(k, v)| format!("{k}={}", v.replace(' ', "%20")))
            .collect();
        let mut url = server.api(edge.path);
        if !query.is_empty() {
            url = format!("{url}?{}", query.join("&"));
        }
        let body = edge.body.map(str::as_bytes);
        let answer = send(&agent, edge.method, &url, None, body);
        match edge.refusal {
            None => {
                assert!(
                    (200..300).contains(&answer.status),
                    "{what}: a valid request was refused: {} {}",
                    answer.status,
                    answer.body
                );
                spec.check(&what, op, &answer);
            }
            Some(needle) => {
                assert_eq!(answer.status, 400, "{what}: {}", answer.body);
                let (_, message) = answer.error();
                assert!(
                    message.contains(needle),
                    "{what}: '{message}' does not name '{needle}'"
                );
                spec.check(&what, op, &answer);
            }
        }
    }
}

/// The executor operations need a token only when the engine has JWT configured: the spec
/// offers both alternatives and documents the 401 answered without a valid token.
#[test]
fn executor_operations_declare_optional_bearer_auth() {
    let spec = Spec::load();
    let mut protected = 0;
    for (method, path, op) in spec.operations() {
        if path.starts_with("/api/v1/executors") {
            assert_eq!(
                op["security"],
                json!([{}, {"bearer": []}]),
                "{method} {path}"
            );
            assert!(op["responses"].get("401").is_some(), "{method} {path}");
            protected += 1;
        } else {
            assert!(op.get("security").is_none(), "{method} {path}");
        }
    }
    assert_eq!(protected, 10);
    assert!(spec.doc.get("security").is_none(), "no global requirement");
}
