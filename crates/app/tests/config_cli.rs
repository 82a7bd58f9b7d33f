//! `gamelan config check` as a user runs it: the built binary, real files, exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
}

/// Runs the binary with a clean environment (plus `env`) in `dir`.
fn gamelan(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gamelan"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .expect("run gamelan")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_good_file_prints_the_effective_configuration_and_exits_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = fixture("remote-application.properties");
    let out = gamelan(
        dir.path(),
        &["config", "check", file.to_str().expect("utf-8 path")],
        &[
            ("JWT_SECRET", "cli-hunter2"),
            ("GAMELAN_EXECUTOR_QUEUE_SIZE", "4242"),
        ],
    );
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let line = |key: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("{key} ")))
            .unwrap_or_else(|| panic!("{key} not printed:\n{stdout}"))
            .to_owned()
    };
    let url = line("gamelan.executor.engine.url");
    assert!(url.contains("= http://gamelan-engine:8080/"), "{url}");
    assert!(url.contains("remote-application.properties:2"), "{url}");
    assert!(url.contains("as gamelan.executor.engine-url"), "{url}");
    let queue = line("gamelan.executor.task.queue-size");
    assert!(queue.contains("= 4242"), "{queue}");
    assert!(
        queue.contains("# env GAMELAN_EXECUTOR_QUEUE_SIZE"),
        "{queue}"
    );
    assert!(line("gamelan.executor.result.batch-size").contains("# default"));
    assert!(line("gamelan.executor.jwt.secret").contains("= ****"));
    assert!(!stdout.contains("cli-hunter2"), "{stdout}");
    assert!(!stderr.contains("cli-hunter2"), "{stderr}");
}

#[test]
fn a_broken_file_lists_every_error_and_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("broken.yml");
    std::fs::write(
        &file,
        "gamelan:\n  executor:\n    heartbeat:\n      interval-seconds: 60\n      timeout-seconds: 30\n    queue-size: 0\n    transpor: grpc\n",
    )
    .expect("write");
    let out = gamelan(dir.path(), &["config", "check", "broken.yml"], &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    assert!(
        stderr.contains("invalid configuration (2 problems)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("gamelan.executor.heartbeat.timeout-seconds"),
        "{stderr}"
    );
    assert!(
        stderr.contains("gamelan.executor.queue-size = \"0\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("warning: gamelan.executor.transpor")
            && stderr.contains("did you mean gamelan.executor.transport?"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
}

#[test]
fn without_files_the_conventional_ones_are_used() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("application.properties"),
        "gamelan.engine.port=7070\n",
    )
    .expect("write");
    let out = gamelan(dir.path(), &["config", "check", "--engine"], &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        stdout.contains("files: application.properties")
            || stdout.contains("./application.properties"),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("gamelan.engine.port ") && l.contains("= 7070")),
        "{stdout}"
    );
}

#[test]
fn every_documented_block_passes_the_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let names = std::fs::read_dir(fixture(""))
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            // The compose and Kubernetes manifests are environments, not config files.
            !name.contains("docker-compose") && !name.contains("kubernetes")
        })
        .collect::<Vec<_>>();
    assert_eq!(names.len(), 23);
    for file in names {
        let out = gamelan(
            dir.path(),
            &["config", "check", file.to_str().expect("utf-8 path")],
            &[("JWT_SECRET", "x")],
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            file.display(),
            text(&out.stderr)
        );
        // The only thing a documented block may be told: `metrics.export-interval` has no
        // effect with a pull-based registry.
        let stderr = text(&out.stderr);
        let other: Vec<&str> = stderr
            .lines()
            .filter(|l| !(l.contains("metrics.export-interval") && l.contains("has no effect")))
            .collect();
        assert!(other.is_empty(), "{}: {stderr}", file.display());
    }
}

#[test]
fn set_overrides_and_bad_set_syntax() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = gamelan(
        dir.path(),
        &["config", "check", "--set", "heartbeat.interval=90s"],
        &[],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(stdout.contains("= 1m 30s  # --set"), "{stdout}");

    let out = gamelan(dir.path(), &["config", "check", "--set", "nonsense"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("KEY=VALUE"));
}

#[test]
fn config_keys_prints_the_reference_tables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let executor = gamelan(dir.path(), &["config", "keys"], &[]);
    let engine = gamelan(dir.path(), &["config", "keys", "--engine"], &[]);
    assert!(executor.status.success() && engine.status.success());
    let (executor, engine) = (text(&executor.stdout), text(&engine.stdout));
    assert!(executor.starts_with("| key (all spellings) | default | meaning |\n"));
    assert!(
        executor.contains("| `task.queue-size`, `queue-size` | `1000` |"),
        "{executor}"
    );
    assert!(engine.contains("| `ack-timeout` | `5m` |"), "{engine}");
    assert!(!engine.contains("queue-size"), "{engine}");
}
