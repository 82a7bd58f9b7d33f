#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Keeps deploy/ honest: every environment variable the manifests set is one the binary
//! reads, every probe path and port is one it serves, every command is a real subcommand.
//! Docker is not available where the tests run, so this is what guards the manifests.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gamelan::config::{EngineConfig, ExecutorConfig, Sources};
use serde::Deserialize;
use serde_norway::Value;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            yaml_files(&p, out);
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")) {
            out.push(p);
        }
    }
}

#[derive(Default, Debug)]
struct Found {
    env: BTreeSet<(String, String)>,
    probes: BTreeSet<(String, u64)>,
    ports: BTreeSet<u64>,
    commands: BTreeSet<String>,
}

fn walk(v: &Value, found: &mut Found) {
    match v {
        Value::Mapping(m) => {
            for (k, val) in m {
                match k.as_str() {
                    // Kubernetes env list.
                    Some("env") => {
                        if let Some(list) = val.as_sequence() {
                            for e in list {
                                let name = e.get("name").and_then(Value::as_str).unwrap();
                                let value = e
                                    .get("value")
                                    .and_then(Value::as_str)
                                    .unwrap_or("secret-from-ref");
                                found.env.insert((name.to_owned(), value.to_owned()));
                            }
                        }
                    }
                    // Compose environment map.
                    Some("environment") => {
                        if let Some(map) = val.as_mapping() {
                            for (n, value) in map {
                                let value = match value {
                                    Value::String(s) => s.clone(),
                                    other => {
                                        serde_norway::to_string(other).unwrap().trim().to_owned()
                                    }
                                };
                                found.env.insert((n.as_str().unwrap().to_owned(), value));
                            }
                        }
                    }
                    Some("httpGet") => {
                        let path = val.get("path").and_then(Value::as_str).unwrap().to_owned();
                        let port = val.get("port").and_then(Value::as_u64).unwrap();
                        found.probes.insert((path, port));
                    }
                    Some("containerPort") => {
                        found.ports.insert(val.as_u64().unwrap());
                    }
                    Some("args" | "command") => {
                        if let Some(first) = val.as_sequence().and_then(|s| s.first()) {
                            found.commands.insert(first.as_str().unwrap().to_owned());
                        }
                    }
                    Some("test") => {
                        // Compose health check: ["CMD", "gamelan", "probe", URL]
                        let parts: Vec<&str> = val
                            .as_sequence()
                            .unwrap()
                            .iter()
                            .filter_map(Value::as_str)
                            .collect();
                        assert_eq!(&parts[..3], ["CMD", "gamelan", "probe"], "{parts:?}");
                        let url = url::Url::parse(parts[3]).unwrap();
                        found
                            .probes
                            .insert((url.path().to_owned(), u64::from(url.port().unwrap())));
                        found.commands.insert("probe".into());
                    }
                    _ => {}
                }
                walk(val, found);
            }
        }
        Value::Sequence(s) => s.iter().for_each(|x| walk(x, found)),
        _ => {}
    }
}

fn manifests() -> Found {
    let mut files = Vec::new();
    yaml_files(&deploy_dir(), &mut files);
    assert!(
        files.len() >= 4,
        "expected compose + k8s manifests, found {files:?}"
    );
    let mut found = Found::default();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for doc in serde_norway::Deserializer::from_str(&text) {
            let v = Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            walk(&v, &mut found);
        }
    }
    found
}

/// Compose interpolation `${VAR:-default}` is the shell's business; keep the default.
fn literal(value: &str) -> String {
    match value.strip_prefix("${").and_then(|v| v.strip_suffix('}')) {
        Some(inner) => inner.split(":-").nth(1).unwrap_or("x").to_owned(),
        None => value.to_owned(),
    }
}

#[test]
fn every_environment_variable_is_read_by_the_binary() {
    let found = manifests();
    assert!(!found.env.is_empty());
    for (name, value) in &found.env {
        let env = vec![(name.clone(), literal(value))];
        let warnings = if name.starts_with("GAMELAN_ENGINE_") {
            EngineConfig::load_sources(&Sources::new().env(env))
                .unwrap_or_else(|e| panic!("{name}={value}: {e}"))
                .warnings
        } else if name.starts_with("GAMELAN_EXECUTOR_") {
            ExecutorConfig::load_sources(&Sources::new().env(env))
                .unwrap_or_else(|e| panic!("{name}={value}: {e}"))
                .warnings
        } else if name.starts_with("KAFKA_") || name == "RUST_LOG" {
            continue; // the broker's own settings
        } else {
            panic!("{name} is neither an engine nor an executor variable");
        };
        assert!(
            warnings.is_empty(),
            "{name}: {}",
            warnings
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str], env: &[(&str, String)], needle: &str) -> (Proc, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gamelan"));
    cmd.args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let needle = needle.to_owned();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(pos) = line.find(&needle) {
                let rest = &line[pos + needle.len()..];
                let addr: String = rest
                    .trim_start_matches("http://")
                    .chars()
                    .take_while(|c| !c.is_whitespace())
                    .collect();
                let _ = tx.send(addr);
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("process logged its address");
    (Proc(child), addr)
}

fn get(url: &str) -> u16 {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    agent.get(url).call().map_or(0, |r| r.status().as_u16())
}

#[test]
fn probes_ports_and_commands_are_served() {
    let found = manifests();
    // Ports: 8080 is both the engine's port and the executor's HTTP port by default; 9090
    // the push-delivery gRPC port.
    let exec_defaults = ExecutorConfig::default();
    let engine_defaults = EngineConfig::default();
    for port in found
        .ports
        .iter()
        .chain(found.probes.iter().map(|(_, p)| p))
    {
        assert!(
            [
                u64::from(exec_defaults.http.port),
                u64::from(exec_defaults.grpc.port),
                u64::from(engine_defaults.port)
            ]
            .contains(port),
            "port {port} is not one the binary listens on by default"
        );
    }
    for c in &found.commands {
        let status = Command::new(env!("CARGO_BIN_EXE_gamelan"))
            .args([c.as_str(), "--help"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "`gamelan {c}` is not a subcommand");
    }

    let (_engine, engine_addr) = spawn(
        &["engine", "--ephemeral", "--port", "0"],
        &[("GAMELAN_ENGINE_HOST", "127.0.0.1".into())],
        "engine listening on ",
    );
    let (_exec, exec_addr) = spawn(
        &["executor"],
        &[
            (
                "GAMELAN_EXECUTOR_ENGINE_URL",
                format!("http://{engine_addr}"),
            ),
            ("GAMELAN_EXECUTOR_HTTP_PORT", "0".into()),
            (
                "GAMELAN_EXECUTOR_RUNTIME_EXECUTOR_ID",
                "deploy-check".into(),
            ),
        ],
        "health and metrics on ",
    );
    let exec_addr = exec_addr.replace("0.0.0.0", "127.0.0.1");
    for (path, _) in &found.probes {
        for addr in [&engine_addr, &exec_addr] {
            let url = format!("http://{addr}{path}");
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut status = get(&url);
            while status != 200 && Instant::now() < deadline {
                std::thread::park_timeout(Duration::from_millis(50));
                status = get(&url);
            }
            assert_eq!(status, 200, "{url}");
        }
    }
}
