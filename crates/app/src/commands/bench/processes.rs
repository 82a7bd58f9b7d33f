//! The default set-up: the engine and each executor runtime as their own `gamelan` process,
//! configured through environment variables, with bound addresses read from their log lines
//! ("engine listening on ADDR", "health and metrics on http://ADDR").

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::error::BenchError;
use super::http::wait_for_200;
use super::rss::{Memory, memory};

/// Log lines kept per process for error messages.
const TAIL: usize = 20;
/// The filter every child logs with: the address lines, warnings, nothing per task.
const CHILD_LOG: &str = "warn,gamelan.engine=info,gamelan.executor.runtime=info";

/// A `gamelan` child process; killed when dropped.
pub struct Proc {
    pub name: String,
    child: Child,
    pub addr: SocketAddr,
    /// From spawn until `/q/health/ready` answered 200.
    pub ready_after: Duration,
    tail: Arc<Mutex<VecDeque<String>>>,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn memory(&self) -> Option<Memory> {
        memory(self.pid())
    }

    /// What the process logged last, for error messages.
    pub fn tail(&self) -> String {
        tail_text(&self.tail)
    }

    /// Whether the process has exited (and with what), without waiting.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tail_text(tail: &Mutex<VecDeque<String>>) -> String {
    let lines = tail.lock().unwrap_or_else(PoisonError::into_inner);
    if lines.is_empty() {
        String::new()
    } else {
        let mut s = String::from("; last log lines:");
        for l in lines.iter() {
            s.push_str("\n  ");
            s.push_str(l);
        }
        s
    }
}

/// The address after `marker` in a log line: `127.0.0.1:1234` or `http://0.0.0.0:1234`;
/// an unspecified host becomes loopback, which is where the bench connects.
pub fn address_after(line: &str, marker: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(marker)? + marker.len()..];
    let token = rest.split_whitespace().next()?;
    let token = token
        .trim_start_matches("http://")
        .trim_end_matches(['/', ',', ';']);
    let mut addr: SocketAddr = token.parse().ok()?;
    if addr.ip().is_unspecified() {
        addr.set_ip([127, 0, 0, 1].into());
    }
    Some(addr)
}

/// Spawns `exe args` with `env`, waits for the log line carrying `marker` and then for
/// `/q/health/ready` at that address.
pub fn spawn(
    name: &str,
    exe: &Path,
    args: &[&str],
    env: &[(String, String)],
    marker: &'static str,
    timeout: Duration,
) -> Result<Proc, BenchError> {
    let started = Instant::now();
    let deadline = started + timeout;
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .env("RUST_LOG", CHILD_LOG)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().map_err(|e| BenchError::Spawn {
        what: format!("{name} ({})", exe.display()),
        reason: e.to_string(),
    })?;
    let tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL)));
    let (tx, rx) = crossbeam_channel::bounded(1);
    if let Some(stderr) = child.stderr.take() {
        let tail = Arc::clone(&tail);
        // Drains the pipe for the whole life of the child, so it never blocks on logging.
        thread::Builder::new()
            .name(format!("bench-log-{name}"))
            .spawn(move || {
                let mut sent = false;
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if !sent && let Some(addr) = address_after(&line, marker) {
                        sent = tx.send(addr).is_ok();
                    }
                    let mut t = tail.lock().unwrap_or_else(PoisonError::into_inner);
                    if t.len() == TAIL {
                        t.pop_front();
                    }
                    t.push_back(line);
                }
            })?;
    }
    let mut proc = Proc {
        name: name.to_owned(),
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        ready_after: Duration::ZERO,
        tail,
    };
    let not_ready = |proc: &mut Proc, event: &'static str| {
        let exit = proc
            .exited()
            .map(|s| format!(" (it exited: {s})"))
            .unwrap_or_default();
        BenchError::NotReady {
            what: format!("{}{exit}", proc.name),
            event,
            timeout,
            log: proc.tail(),
        }
    };
    match rx.recv_deadline(deadline) {
        Ok(addr) => proc.addr = addr,
        Err(_) => return Err(not_ready(&mut proc, "log its listening address")),
    }
    let url = format!("http://{}/q/health/ready", proc.addr);
    if !wait_for_200(&url, deadline) {
        return Err(not_ready(&mut proc, "answer /q/health/ready with 200"));
    }
    proc.ready_after = started.elapsed();
    Ok(proc)
}

/// The engine: in memory, on a free loopback port.
pub fn engine(
    exe: &Path,
    extra: &[(String, String)],
    timeout: Duration,
) -> Result<Proc, BenchError> {
    let mut env: Vec<(String, String)> = [
        ("GAMELAN_ENGINE_HOST", "127.0.0.1"),
        ("GAMELAN_ENGINE_PORT", "0"),
        ("GAMELAN_ENGINE_EPHEMERAL", "true"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .into();
    env.extend_from_slice(extra);
    spawn(
        "engine",
        exe,
        &["engine"],
        &env,
        "engine listening on ",
        timeout,
    )
}

/// How each executor process is configured.
#[derive(Debug, Clone)]
pub struct ExecutorEnv {
    pub engine: SocketAddr,
    pub transport: &'static str,
    pub threads: usize,
    pub queue_size: usize,
    pub result_batch: usize,
    pub result_batch_timeout: Duration,
    /// More variables (the Kafka bootstrap servers).
    pub extra: Vec<(String, String)>,
}

pub fn executor(
    exe: &Path,
    index: usize,
    cfg: &ExecutorEnv,
    timeout: Duration,
) -> Result<Proc, BenchError> {
    let env = [
        (
            "GAMELAN_EXECUTOR_ENGINE_URL",
            format!("http://{}", cfg.engine),
        ),
        ("GAMELAN_EXECUTOR_TRANSPORT", cfg.transport.to_owned()),
        ("GAMELAN_EXECUTOR_HTTP_PORT", "0".to_owned()),
        (
            "GAMELAN_EXECUTOR_RUNTIME_EXECUTOR_ID",
            format!("bench-{index}"),
        ),
        (
            "GAMELAN_EXECUTOR_TASK_DISPATCH_THREADS",
            cfg.threads.to_string(),
        ),
        (
            "GAMELAN_EXECUTOR_TASK_QUEUE_SIZE",
            cfg.queue_size.to_string(),
        ),
        (
            "GAMELAN_EXECUTOR_RESULT_BATCH_SIZE",
            cfg.result_batch.to_string(),
        ),
        (
            "GAMELAN_EXECUTOR_RESULT_BATCH_TIMEOUT",
            format!("{}ms", cfg.result_batch_timeout.as_millis()),
        ),
    ]
    .map(|(k, v)| (k.to_owned(), v))
    .into_iter()
    .chain(cfg.extra.iter().cloned())
    .collect::<Vec<_>>();
    spawn(
        &format!("executor {index}"),
        exe,
        &["executor"],
        &env,
        "health and metrics on ",
        timeout,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_read_from_log_lines() {
        let line = "[2026-11-23T10:00:00.000Z INFO  gamelan.engine] engine listening on 127.0.0.1:41234 (gRPC + HTTP); storage: in memory";
        assert_eq!(
            address_after(line, "engine listening on "),
            Some("127.0.0.1:41234".parse().unwrap())
        );
        let line = "[.. INFO gamelan.executor.runtime] health and metrics on http://0.0.0.0:39001";
        assert_eq!(
            address_after(line, "health and metrics on "),
            Some("127.0.0.1:39001".parse().unwrap())
        );
        assert_eq!(
            address_after("engine listening on nowhere", "engine listening on "),
            None
        );
        assert_eq!(
            address_after("something else", "engine listening on "),
            None
        );
    }
}
