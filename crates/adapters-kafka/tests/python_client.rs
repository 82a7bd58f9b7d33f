//! An independent client: Python `confluent-kafka` produces TaskMessages and reads the
//! TaskResultMessages of a `KafkaTransport` executor.

mod common;

use std::process::Command;

use common::*;

const PYTHON_INSTALL: &str = "pip install confluent-kafka (or run .ci/install.sh)";

#[test]
fn a_python_confluent_kafka_client_round_trips_tasks_through_an_executor() {
    let probe = Command::new("python3")
        .args(["-c", "import confluent_kafka"])
        .output()
        .unwrap_or_else(|e| {
            panic!("this test needs python3 with confluent-kafka ({PYTHON_INSTALL}): {e}")
        });
    assert!(
        probe.status.success(),
        "this test needs the Python package confluent-kafka: {PYTHON_INSTALL}\n{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let broker = start_broker();
    let s = settings(&broker.bootstrap());
    let topics = s.topics.clone();
    // Registering creates the topics the Python client writes to and reads from.
    let _worker = EchoWorker::start(transport(s, "rt-py-echo", ECHO), true);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/confluent_roundtrip.py"
    );
    let out = Command::new("python3")
        .args([
            script,
            &broker.bootstrap(),
            &topics.tasks_for(ECHO),
            &topics.results,
            "25",
        ])
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python client failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).expect("summary JSON");
    assert_eq!(summary["results"], 25, "{summary}");
    assert_eq!(summary["problems"], serde_json::json!([]), "{summary}");
}
