//! `--compare celery`: runs `bench/celery/run.sh` with the same task count, payload and
//! concurrency and reads the JSON line it prints last.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::error::BenchError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Peer {
    Celery,
}

/// The peer's figures as its script printed them, plus our ratio over it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerRun {
    pub peer: String,
    pub tasks: usize,
    pub completed: usize,
    pub concurrency: usize,
    /// The peer's worker throughput (what ours is compared against).
    pub tasks_per_sec: f64,
    #[serde(default)]
    pub end_to_end_per_sec: Option<f64>,
    /// Ours over the peer's `tasks_per_sec`; filled in by the bench.
    #[serde(default)]
    pub ratio: Option<f64>,
}

/// Where the script is: `$GAMELAN_CELERY_SCRIPT`, `bench/celery/run.sh` under the working
/// directory or any ancestor of the binary (a checkout's `target/release/gamelan`), or the
/// source tree this binary was built from.
pub fn script() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("GAMELAN_CELERY_SCRIPT") {
        return Some(PathBuf::from(p));
    }
    let rel = Path::new("bench/celery/run.sh");
    let mut candidates = vec![rel.to_path_buf()];
    if let Ok(exe) = std::env::current_exe() {
        candidates.extend(exe.ancestors().skip(1).map(|a| a.join(rel)));
    }
    candidates.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(rel),
    );
    candidates.into_iter().find(|p| p.is_file())
}

/// The last line of `stdout` that parses as the peer's JSON.
pub fn parse(stdout: &str) -> Option<PeerRun> {
    stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<PeerRun>(l.trim()).ok())
}

pub fn run(
    peer: Peer,
    tasks: usize,
    payload_bytes: usize,
    concurrency: usize,
) -> Result<PeerRun, BenchError> {
    let Peer::Celery = peer;
    let script = script().ok_or_else(|| {
        BenchError::Peer(
            "bench/celery/run.sh not found (run from the checkout or set GAMELAN_CELERY_SCRIPT)"
                .into(),
        )
    })?;
    let out = Command::new("bash")
        .arg(&script)
        .args(["--tasks", &tasks.to_string()])
        .args(["--payload-bytes", &payload_bytes.to_string()])
        .args(["--concurrency", &concurrency.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| BenchError::Peer(format!("cannot run {}: {e}", script.display())))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    match parse(&stdout) {
        Some(run) if out.status.success() => Ok(run),
        _ => Err(BenchError::Peer(format!(
            "{} failed ({}): {}",
            script.display(),
            out.status,
            stdout.trim()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_json_line_is_the_result() {
        let out = "celery: 100/100 noop tasks ...\n{\"peer\": \"celery\", \"tasks\": 100, \"completed\": 100, \"payload_bytes\": 8, \"concurrency\": 2, \"elapsed_ms\": 50.0, \"tasks_per_sec\": 2000.5, \"end_to_end_per_sec\": 900.0}\n";
        let run = parse(out).unwrap();
        assert_eq!((run.tasks, run.concurrency), (100, 2));
        assert!((run.tasks_per_sec - 2000.5).abs() < 1e-9);
        assert_eq!(run.ratio, None);
        assert!(parse("no json here\n").is_none());
    }

    #[test]
    fn the_script_is_found_from_the_source_tree() {
        let p = script().expect("bench/celery/run.sh in this checkout");
        assert!(p.ends_with("bench/celery/run.sh"));
    }
}
