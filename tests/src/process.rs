//! A child process whose output is collected line by line, killed when dropped.

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::binary::gamelan_binary;
use crate::wait::pause_until;

/// Variables a developer's shell may carry that would change what the binary does.
const INHERITED_PREFIXES: [&str; 3] = ["GAMELAN_", "QUARKUS_", "RUST_LOG"];

/// How many output lines a failing test prints per process.
const TAIL_LINES: usize = 80;

thread_local! {
    /// Every process the current test thread started, for [`e2e`]'s failure report.
    static SPAWNED: RefCell<Vec<(String, Arc<Output>)>> = const { RefCell::new(Vec::new()) };
}

/// Runs a test body; when it returns an error, prints the end of the output of every process
/// it started (they are gone by then) and fails with the error.
pub fn e2e(body: impl FnOnce() -> anyhow::Result<()>) {
    SPAWNED.with_borrow_mut(Vec::clear);
    if let Err(e) = body() {
        SPAWNED.with_borrow(|spawned| {
            for (name, output) in spawned {
                eprintln!("---- output of {name} ----\n{}", output.tail());
            }
        });
        panic!("{e:#}");
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

#[derive(Default)]
struct Lines {
    lines: Vec<(Stream, String)>,
    /// Readers that reached end of file.
    closed: usize,
}

/// Output shared between the reader threads and the test.
#[derive(Default)]
struct Output {
    lines: Mutex<Lines>,
    changed: Condvar,
}

impl Output {
    fn lock(&self) -> MutexGuard<'_, Lines> {
        self.lines.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn tail(&self) -> String {
        let lines = self.lock();
        let skip = lines.lines.len().saturating_sub(TAIL_LINES);
        let mut s = String::new();
        for (_, l) in &lines.lines[skip..] {
            s.push_str("  | ");
            s.push_str(l);
            s.push('\n');
        }
        s
    }

    fn read(self: Arc<Self>, stream: Stream, pipe: impl Read + Send + 'static) -> JoinHandle<()> {
        std::thread::spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
                        self.lock().lines.push((stream, line));
                        self.changed.notify_all();
                    }
                }
            }
            self.lock().closed += 1;
            self.changed.notify_all();
        })
    }
}

/// A running `gamelan` process. Dropping it kills it (SIGKILL) and, when the test is failing,
/// prints the end of its output so the failure can be understood.
pub struct Process {
    name: String,
    child: Child,
    output: Arc<Output>,
    readers: Vec<JoinHandle<()>>,
    /// The working directory, empty, so no stray `application.properties` is discovered.
    _cwd: tempfile::TempDir,
}

/// A process that ran to its end.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Process {
    /// Starts `gamelan <args>` with only the given `GAMELAN_*` variables.
    pub fn spawn(name: &str, args: &[&str], env: &[(String, String)]) -> anyhow::Result<Self> {
        Self::spawn_program(name, gamelan_binary(), args, env)
    }

    /// Starts another program (a peer the tests check against, e.g. a Prometheus server)
    /// the same way: its own empty working directory, output collected, killed when dropped.
    pub fn spawn_program(
        name: &str,
        program: impl AsRef<std::ffi::OsStr>,
        args: &[&str],
        env: &[(String, String)],
    ) -> anyhow::Result<Self> {
        let cwd = tempfile::tempdir().context("creating a working directory")?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(cwd.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if INHERITED_PREFIXES.iter().any(|p| k.starts_with(p)) {
                cmd.env_remove(k.as_ref());
            }
        }
        cmd.env("RUST_BACKTRACE", "0");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {name}: {cmd:?}"))?;
        let output = Arc::new(Output::default());
        let label = format!("{name} (pid {})", child.id());
        SPAWNED.with_borrow_mut(|s| s.push((label, Arc::clone(&output))));
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(Arc::clone(&output).read(Stream::Stdout, out));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(Arc::clone(&output).read(Stream::Stderr, err));
        }
        Ok(Self {
            name: name.to_owned(),
            child,
            output,
            readers,
            _cwd: cwd,
        })
    }

    /// Runs `gamelan <args>` to its end, failing if it takes longer than `timeout`.
    pub fn run(
        name: &str,
        args: &[&str],
        env: &[(String, String)],
        timeout: Duration,
    ) -> anyhow::Result<Finished> {
        let mut p = Self::spawn(name, args, env)?;
        let status = p.wait_exit(timeout)?;
        for r in p.readers.drain(..) {
            let _ = r.join();
        }
        Ok(Finished {
            status,
            stdout: p.text(Some(Stream::Stdout)),
            stderr: p.text(Some(Stream::Stderr)),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything printed so far on `stream` (both streams when `None`), one line each.
    pub fn text(&self, stream: Option<Stream>) -> String {
        let lines = self.output.lock();
        let mut s = String::new();
        for (from, line) in &lines.lines {
            if stream.is_none_or(|want| want == *from) {
                s.push_str(line);
                s.push('\n');
            }
        }
        s
    }

    /// Waits for the first output line that satisfies `pred`, from the start of the output.
    /// Fails early if the process closes its output first.
    pub fn wait_for_line(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        let mut lines = self.output.lock();
        loop {
            if let Some((_, l)) = lines.lines.iter().find(|(_, l)| pred(l)) {
                return Ok(l.clone());
            }
            if lines.closed == self.readers.len() {
                drop(lines);
                bail!(
                    "{} ended its output without logging {what}:\n{}",
                    self.name,
                    self.tail()
                );
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                drop(lines);
                bail!(
                    "{} did not log {what} within {timeout:?}:\n{}",
                    self.name,
                    self.tail()
                );
            }
            lines = self
                .output
                .changed
                .wait_timeout(lines, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// The address in the first line containing `marker` (e.g. `listening on `): the token
    /// after it, with `http://` removed. A wildcard address becomes 127.0.0.1.
    pub fn logged_addr(&self, marker: &str, timeout: Duration) -> anyhow::Result<SocketAddr> {
        let line = self.wait_for_line(timeout, marker, |l| l.contains(marker))?;
        parse_addr_after(&line, marker)
            .with_context(|| format!("{}: no address after '{marker}' in: {line}", self.name))
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the process to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} did not exit within {timeout:?}:\n{}",
                    self.name,
                    self.tail()
                );
            }
            pause_until(deadline);
        }
    }

    /// SIGKILL: the process gets no chance to clean up.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// SIGTERM: asks for a graceful stop (`kill -TERM`, so no libc binding is needed).
    pub fn terminate(&self) -> anyhow::Result<()> {
        self.signal("TERM")
    }

    /// SIGSTOP: freezes the process (it reads, sends and runs nothing) until [`Self::resume`].
    pub fn pause(&self) -> anyhow::Result<()> {
        self.signal("STOP")
    }

    /// SIGCONT: lets a paused process run on.
    pub fn resume(&self) -> anyhow::Result<()> {
        self.signal("CONT")
    }

    fn signal(&self, name: &str) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .with_context(|| format!("running kill -{name}"))?;
        if !status.success() {
            bail!("kill -{name} {} failed: {status}", self.pid());
        }
        Ok(())
    }

    /// The last lines of output, for failure messages.
    pub fn tail(&self) -> String {
        self.output.tail()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- output of {} (pid {}) ----\n{}",
                self.name,
                self.child.id(),
                self.tail()
            );
        }
    }
}

fn parse_addr_after(line: &str, marker: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(marker)? + marker.len()..];
    let rest = rest.strip_prefix("http://").unwrap_or(rest);
    let token: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']'))
        .collect();
    let mut addr: SocketAddr = token.parse().ok()?;
    if addr.ip().is_unspecified() {
        addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    Some(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_read_from_log_lines() {
        let line = "[2026 INFO gamelan.engine] engine listening on 0.0.0.0:38649 (gRPC + HTTP); x";
        assert_eq!(
            parse_addr_after(line, "listening on "),
            Some("127.0.0.1:38649".parse().unwrap())
        );
        let line = "[x INFO y] health and metrics on http://127.0.0.1:37955";
        assert_eq!(
            parse_addr_after(line, "health and metrics on "),
            Some("127.0.0.1:37955".parse().unwrap())
        );
        assert_eq!(
            parse_addr_after("listening on nowhere", "listening on "),
            None
        );
        assert_eq!(parse_addr_after("no marker", "listening on "), None);
    }
}
