//! What `gamelan bench` prints: a few aligned lines for people, or one JSON object.

use std::io::{self, Write};

use serde::Serialize;

use super::baseline::Raw;
use super::load::Measured;
use super::peer::PeerRun;
use super::{BenchOptions, BenchTransport};

/// Dispatch-to-result latency as the client saw it, microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
    pub mean: f64,
}

/// Peak resident memory; `engine`/`executor` are separate processes' high-water marks,
/// `process` is the bench process itself when everything ran inside it.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct RssBytes {
    pub engine: Option<u64>,
    pub executor: Option<u64>,
    /// An executor's resident set once ready, before any task.
    pub executor_idle: Option<u64>,
    /// Of that, anonymous memory (heap, stacks): what the executor itself allocated,
    /// without the shared pages of the mapped binary.
    pub executor_idle_anon: Option<u64>,
    pub process: Option<u64>,
}

/// CPU time used during the measured run (user + system, all threads), milliseconds:
/// where the cycles went when everything shares one small machine.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CpuMs {
    pub engine: Option<f64>,
    /// All executor processes together.
    pub executor: Option<f64>,
    /// The bench process: the load generator, plus engine and runtimes when in process.
    pub bench: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub transport: &'static str,
    /// `processes` or `in-process`.
    pub mode: &'static str,
    /// `closed-loop` or `open-loop`.
    pub arrival: &'static str,
    pub rate: Option<f64>,
    pub tasks: usize,
    pub completed: usize,
    pub failed: usize,
    pub unfinished: usize,
    pub payload_bytes: usize,
    pub executors: usize,
    pub threads_per_executor: usize,
    pub elapsed_ms: f64,
    pub tasks_per_sec: f64,
    pub baseline: Option<Raw>,
    pub baseline_per_sec: Option<f64>,
    /// Ours over the raw baseline.
    pub ratio: Option<f64>,
    pub latency_us: Latency,
    pub rss_bytes: RssBytes,
    pub cpu_ms: CpuMs,
    /// Executor start until ready (the slowest executor).
    pub ready_ms: Option<f64>,
    pub engine_ready_ms: Option<f64>,
    pub peer: Option<PeerRun>,
}

impl BenchReport {
    pub fn new(opts: &BenchOptions) -> Self {
        Self {
            transport: opts.transport.name(),
            mode: if opts.in_process || opts.transport == BenchTransport::Local {
                "in-process"
            } else {
                "processes"
            },
            arrival: if opts.rate.is_some() {
                "open-loop"
            } else {
                "closed-loop"
            },
            rate: opts.rate,
            tasks: opts.tasks,
            completed: 0,
            failed: 0,
            unfinished: opts.tasks,
            payload_bytes: opts.payload_bytes,
            executors: opts.executors,
            threads_per_executor: opts.threads,
            elapsed_ms: 0.0,
            tasks_per_sec: 0.0,
            baseline: None,
            baseline_per_sec: None,
            ratio: None,
            latency_us: Latency::default(),
            rss_bytes: RssBytes::default(),
            cpu_ms: CpuMs::default(),
            ready_ms: None,
            engine_ready_ms: None,
            peer: None,
        }
    }

    pub fn set_measured(&mut self, m: &Measured) {
        self.completed = m.completed;
        self.failed = m.failed;
        self.unfinished = m.unfinished;
        let secs = m.elapsed.as_secs_f64();
        self.elapsed_ms = secs * 1e3;
        self.tasks_per_sec = if secs > 0.0 {
            (m.completed + m.failed) as f64 / secs
        } else {
            0.0
        };
        let h = &m.latency;
        if !h.is_empty() {
            self.latency_us = Latency {
                p50: h.value_at_quantile(0.50),
                p90: h.value_at_quantile(0.90),
                p99: h.value_at_quantile(0.99),
                max: h.max(),
                mean: h.mean(),
            };
        }
    }

    /// In open loop the throughput is the arrival rate, so no ratio is formed; the baseline
    /// is still recorded as a reading of the machine's state during the run.
    pub fn set_baseline(&mut self, raw: Raw) {
        self.baseline_per_sec = Some(raw.per_sec);
        self.ratio =
            (raw.per_sec > 0.0 && self.rate.is_none()).then(|| self.tasks_per_sec / raw.per_sec);
        self.baseline = Some(raw);
    }

    pub fn set_peer(&mut self, mut run: PeerRun) {
        run.ratio = (run.tasks_per_sec > 0.0).then(|| self.tasks_per_sec / run.tasks_per_sec);
        self.peer = Some(run);
    }

    /// Every task finished (completed or failed) before the deadline.
    pub fn all_finished(&self) -> bool {
        self.unfinished == 0
    }

    pub fn print_json(&self, out: &mut impl Write) -> io::Result<()> {
        serde_json::to_writer(&mut *out, self)?;
        writeln!(out)
    }

    pub fn print(&self, out: &mut impl Write) -> io::Result<()> {
        let arrival = match self.rate {
            Some(r) => format!("open loop at {r:.0} tasks/s"),
            None => "closed loop".to_owned(),
        };
        writeln!(
            out,
            "gamelan bench: {}, {} noop tasks, {} B payload, {} executor(s) x {} threads, {}, {arrival}",
            self.transport,
            self.tasks,
            self.payload_bytes,
            self.executors,
            self.threads_per_executor,
            if self.mode == "processes" {
                "separate processes"
            } else {
                "in process"
            }
        )?;
        writeln!(
            out,
            "  throughput    {:>10.0} tasks/s  ({} completed, {} failed, {} unfinished in {:.2} s)",
            self.tasks_per_sec,
            self.completed,
            self.failed,
            self.unfinished,
            self.elapsed_ms / 1e3
        )?;
        if let Some(raw) = &self.baseline {
            writeln!(
                out,
                "  raw baseline  {:>10.0} msgs/s   ({})",
                raw.per_sec, raw.name
            )?;
        }
        match (self.ratio, &self.baseline) {
            (Some(r), _) => writeln!(out, "  ours/raw      {r:>10.3}x")?,
            (None, Some(_)) => writeln!(
                out,
                "  ours/raw             n/a  (open loop: throughput is the arrival rate)"
            )?,
            (None, None) => {}
        }
        let l = &self.latency_us;
        writeln!(
            out,
            "  latency       p50 {} us  p90 {} us  p99 {} us  max {} us  (dispatch to result, seen by the client)",
            l.p50, l.p90, l.p99, l.max
        )?;
        let mib = |b: Option<u64>| {
            b.map_or_else(
                || "-".to_owned(),
                |b| format!("{:.1} MiB", b as f64 / 1_048_576.0),
            )
        };
        let r = &self.rss_bytes;
        if self.mode == "processes" {
            writeln!(
                out,
                "  peak RSS      engine {}  executor {} (idle {}, of it anonymous {})",
                mib(r.engine),
                mib(r.executor),
                mib(r.executor_idle),
                mib(r.executor_idle_anon)
            )?;
        } else {
            writeln!(
                out,
                "  peak RSS      whole bench process {} (after start {})",
                mib(r.process),
                mib(r.executor_idle)
            )?;
        }
        let c = &self.cpu_ms;
        let cpu = |name: &str, v: Option<f64>| {
            v.map(|v| format!("  {name} {v:.0} ms")).unwrap_or_default()
        };
        writeln!(
            out,
            "  CPU time    {}{}{}  (of {:.0} ms wall x {} cores)",
            cpu("engine", c.engine),
            cpu("executors", c.executor),
            cpu("bench", c.bench),
            self.elapsed_ms,
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        )?;
        if let Some(ready) = self.ready_ms {
            let engine = self
                .engine_ready_ms
                .map(|e| format!(" (engine {e:.1} ms)"))
                .unwrap_or_default();
            writeln!(out, "  start->READY  executor {ready:.1} ms{engine}")?;
        }
        if let Some(p) = &self.peer {
            writeln!(
                out,
                "  {:<13} {:>10.0} tasks/s  (concurrency {}, worker draining a full queue)",
                p.peer, p.tasks_per_sec, p.concurrency
            )?;
            if let Some(ratio) = p.ratio {
                writeln!(out, "  ours/{:<8} {ratio:>10.2}x", p.peer)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(per_sec: f64) -> Raw {
        Raw {
            name: "raw".into(),
            messages: 10,
            elapsed_ms: 1.0,
            per_sec,
        }
    }

    fn report(rate: Option<f64>) -> BenchReport {
        let mut r = BenchReport::new(&BenchOptions {
            rate,
            ..BenchOptions::default()
        });
        r.tasks_per_sec = 250.0;
        r
    }

    #[test]
    fn closed_loop_ratio_is_ours_over_raw() {
        let mut r = report(None);
        r.set_baseline(raw(1000.0));
        assert_eq!(r.ratio, Some(0.25));
        assert_eq!(r.baseline_per_sec, Some(1000.0));
    }

    #[test]
    fn open_loop_has_no_ratio_but_keeps_the_baseline() {
        let mut r = report(Some(100.0));
        r.set_baseline(raw(1000.0));
        assert_eq!(r.ratio, None);
        assert_eq!(r.baseline_per_sec, Some(1000.0));
        let mut text = Vec::new();
        r.print(&mut text).unwrap();
        assert!(String::from_utf8(text).unwrap().contains("n/a"));
    }

    #[test]
    fn json_has_the_documented_keys() {
        let mut r = report(None);
        r.set_baseline(raw(1000.0));
        let mut out = Vec::new();
        r.print_json(&mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        for key in [
            "tasks_per_sec",
            "baseline_per_sec",
            "ratio",
            "latency_us",
            "rss_bytes",
            "ready_ms",
        ] {
            assert!(v.get(key).is_some(), "{key} missing in {v}");
        }
        for key in ["p50", "p90", "p99", "max"] {
            assert!(v["latency_us"].get(key).is_some(), "latency_us.{key}");
        }
        for key in ["engine", "executor"] {
            assert!(v["rss_bytes"].get(key).is_some(), "rss_bytes.{key}");
        }
    }
}
