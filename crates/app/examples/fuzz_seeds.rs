//! Writes the seed corpora of the fuzz targets (`fuzz/seeds/<target>/`) from the values the
//! tests use, encoded by the project's own encoders, so the fuzzer starts from well-formed
//! messages of every kind and mutates from there:
//!
//! ```text
//! cargo run -p gamelan --example fuzz_seeds --features grpc,kafka,rest -- fuzz/seeds
//! ```
//!
//! The seeds are committed; rerun this when a wire format changes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gamelan::security::{JwtSigner, StaticToken};
use gamelan_domain::{CommunicationType, ErrorInfo, ExecutorMetadata, Task, TaskResult};
use gamelan_grpc::convert::{
    heartbeat_to_proto, registration_to_proto, result_to_proto, task_to_execution_request,
    task_to_proto,
};
use gamelan_grpc::proto::v1::{EngineMessage, ExecutorMessage, engine_message, executor_message};
use gamelan_kafka::messages::{ExecutorRecord, encode_result, encode_task};
use gamelan_ports::{HealthStatus, Heartbeat, Registration, SubmitRequest, TokenSource};
use gamelan_rest::wire::{ExecutorInfo, HeartbeatBody};
use prost::Message;
use serde_json::json;

fn tasks() -> Vec<Task> {
    let plain = Task::new("run-1", "validate", "echo", 1);
    let mut full = Task::new("order-7", "tax", "calculate-tax", 3);
    full.node_name = "Calculate tax".into();
    full.execution_token = "tok-123".into();
    full.tenant_id = "acme".into();
    full.timeout_seconds = Some(30);
    full.scheduled_at_ms = 1_700_000_000_123;
    full.context =
        json!({"amount": 120.5, "items": [1, 2, {"sku": "x"}], "ok": true, "none": null})
            .as_object()
            .cloned()
            .unwrap_or_default();
    full.configuration = json!({"rate": 0.2})
        .as_object()
        .cloned()
        .unwrap_or_default();
    vec![plain, full]
}

fn results() -> Vec<TaskResult> {
    let [plain, full] = <[Task; 2]>::try_from(tasks()).unwrap_or_else(|_| unreachable!());
    vec![
        TaskResult::completed(
            &plain,
            json!({"echo": "hi"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            1_700_000_000_500,
        ),
        TaskResult::failed(
            &full,
            ErrorInfo::new("TAX_UNAVAILABLE", "rate service down"),
            1_700_000_001_000,
        ),
    ]
}

fn registration() -> Registration {
    Registration {
        executor_id: "rt1-tax".into(),
        metadata: ExecutorMetadata::new("tax")
            .communication(CommunicationType::Grpc)
            .max_concurrent_tasks(8)
            .node_types(["tax", "vat"])
            .version("2.0.0"),
        endpoint: String::new(),
        attributes: [("gamelan.executor.version".to_owned(), "2.0.0".to_owned())]
            .into_iter()
            .collect(),
    }
}

fn heartbeat() -> Heartbeat {
    Heartbeat {
        executor_id: "rt1-tax".into(),
        current_task_count: 3,
        status: HealthStatus::Busy,
        completed_tasks: 120,
        failed_tasks: 2,
        cpu_usage: 0.4,
        memory_usage: 0.25,
    }
}

struct Seeds {
    dir: PathBuf,
    count: usize,
}

impl Seeds {
    fn new(root: &Path, target: &str) -> std::io::Result<Self> {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir, count: 0 })
    }

    fn add(&mut self, bytes: impl AsRef<[u8]>) -> std::io::Result<()> {
        self.count += 1;
        std::fs::write(self.dir.join(format!("seed-{:03}", self.count)), bytes)
    }
}

fn with_mode(mode: u8, rest: &[u8]) -> Vec<u8> {
    let mut v = vec![mode];
    v.extend_from_slice(rest);
    v
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/seeds".into()),
    );

    let mut s = Seeds::new(&root, "grpc_task_decode")?;
    for task in tasks() {
        s.add(task_to_proto(&task).encode_to_vec())?;
        let message = EngineMessage {
            message: Some(engine_message::Message::Task(task_to_proto(&task))),
        };
        s.add(message.encode_to_vec())?;
        s.add(task_to_execution_request(&task).encode_to_vec())?;
    }

    let mut s = Seeds::new(&root, "grpc_result_decode")?;
    for result in results() {
        s.add(result_to_proto(&result).encode_to_vec())?;
        let message = ExecutorMessage {
            message: Some(executor_message::Message::Result(result_to_proto(&result))),
        };
        s.add(message.encode_to_vec())?;
    }
    s.add(heartbeat_to_proto(&heartbeat()).encode_to_vec())?;
    s.add(
        ExecutorMessage {
            message: Some(executor_message::Message::Heartbeat(heartbeat_to_proto(
                &heartbeat(),
            ))),
        }
        .encode_to_vec(),
    )?;
    s.add(registration_to_proto(&registration()).encode_to_vec())?;

    let mut s = Seeds::new(&root, "kafka_messages")?;
    for task in tasks() {
        let mut buf = Vec::new();
        encode_task(&task, "echo", &mut buf);
        s.add(buf)?;
    }
    for result in results() {
        let mut buf = Vec::new();
        encode_result(&result, &mut buf);
        s.add(buf)?;
    }
    s.add(ExecutorRecord::registration(&registration(), 1_700_000_000_000).encode())?;
    s.add(ExecutorRecord::heartbeat(&heartbeat(), None, 1_700_000_000_000).encode())?;
    s.add(r#"{"runId":"r","nodeId":"n","attempt":1,"token":"t","context":{},"targetExecutor":"echo"}"#)?;
    s.add(r#"{"taskId":"r:n:1","runId":"r","nodeId":"n","attempt":1,"status":"FAILED"}"#)?;
    s.add(r#"{"at":"2023-11-14T22:13:20.123Z","completedAt":1700000000.5}"#)?;

    let mut s = Seeds::new(&root, "http_json_bodies")?;
    s.add(serde_json::to_vec(&ExecutorInfo::from_registration(
        &registration(),
        Duration::from_secs(30),
    ))?)?;
    s.add(serde_json::to_vec(&HeartbeatBody::from_heartbeat(
        &heartbeat(),
    ))?)?;
    s.add(serde_json::to_vec(&results())?)?;
    s.add(r#"[{"taskId":"r:n:1","attempt":1,"status":"RUNNING"},[]]"#)?;
    s.add(r#"["run-1:validate:1","order-7:tax:3"]"#)?;
    let submit = SubmitRequest {
        executor_type: Some("echo".into()),
        run_id: Some("order-7".into()),
        node_id: Some("tax".into()),
        max_attempts: Some(3),
        ..SubmitRequest::default()
    };
    s.add(serde_json::to_vec(&submit)?)?;
    s.add(serde_json::to_vec(&vec![submit.clone(), submit])?)?;
    s.add("max=5&waitMs=100")?;
    s.add("executorIds=rt1-tax,rt1-vat&max=3&waitMs=0")?;
    s.add("after=10&max=18446744073709551615&waitMs=250")?;

    let mut s = Seeds::new(&root, "config_loader")?;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&fixtures)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.sort();
    let env = b"JWT_SECRET=s3cret\nENGINE_HOST=engine\nPORT=9090\n\0";
    for (i, path) in files.iter().enumerate() {
        let yaml = path.extension().is_some_and(|e| e != "properties");
        let engine = i % 2 == 1;
        let mode = u8::from(yaml) | (u8::from(engine) << 1);
        let mut input = with_mode(mode, env);
        input.extend(std::fs::read(path)?);
        s.add(input)?;
    }
    s.add(with_mode(
        0,
        b"HOST=h\n\0gamelan.executor.engine-url=http://${HOST}:${PORT:8080}/${A:${B:x}}\n",
    ))?;

    let mut s = Seeds::new(&root, "jwt_verify")?;
    let good = JwtSigner::new(
        "fuzzing-secret",
        "gamelan-executor",
        "rt1",
        Duration::from_secs(300),
        Some("svc".into()),
        Some("1.0.0".into()),
        None,
    );
    for token in [good.bearer(), StaticToken("not.a.jwt".into()).bearer()]
        .into_iter()
        .flatten()
    {
        s.add(with_mode(0, format!("Bearer {token}").as_bytes()))?;
    }
    s.add(with_mode(
        0,
        b"Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJpc3MiOiJnYW1lbGFuLWV4ZWN1dG9yIiwiZXhwIjo0MTAyNDQ0ODAwfQ.",
    ))?;
    for (header, claims) in [
        (
            r#"{"alg":"HS256","typ":"JWT"}"#,
            r#"{"iss":"gamelan-executor","sub":"rt1","exp":4102444800,"nbf":1700000000}"#,
        ),
        (r#"{"alg":"HS256"}"#, r#"{"iss":"gamelan-executor"}"#),
        (
            r#"{"alg":"HS256"}"#,
            r#"{"iss":["a","gamelan-executor"],"exp":4102444800.5,"aud":"x"}"#,
        ),
        (r#"{"alg":"HS384"}"#, r#"{"iss":"x","exp":1}"#),
    ] {
        let mut input = with_mode(1, header.as_bytes());
        input.push(0);
        input.extend_from_slice(claims.as_bytes());
        s.add(input)?;
    }
    Ok(())
}
