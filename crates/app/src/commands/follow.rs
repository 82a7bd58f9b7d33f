//! Following a set of submitted tasks to their end through the engine's completion feed,
//! with a progress bar and a summary (shared by `demo` and `submit`).

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use gamelan_ports::{TaskState, TaskView};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where finished tasks come from (in-process engine or HTTP).
pub trait CompletionFeed {
    /// Entries after `cursor`, waiting up to `wait`; returns them and the next cursor.
    fn next_page(&mut self, cursor: u64, wait: Duration) -> Result<(Vec<TaskView>, u64), String>;
}

#[derive(Debug)]
pub struct Summary {
    pub submitted: usize,
    pub completed: usize,
    pub failed: usize,
    /// Submitted but not finished before the deadline.
    pub missing: usize,
    pub elapsed: Duration,
    /// Engine-side submit-to-finish latency, milliseconds.
    pub latency_ms: Histogram<u64>,
    /// Failed tasks by error code.
    pub failures: HashMap<String, usize>,
    pub finished: Vec<TaskView>,
}

impl Summary {
    pub fn throughput(&self) -> f64 {
        (self.completed + self.failed) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn print(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        writeln!(out, "submitted:  {}", self.submitted)?;
        writeln!(out, "completed:  {}", self.completed)?;
        writeln!(out, "failed:     {}", self.failed)?;
        for (code, n) in &self.failures {
            writeln!(out, "  {code}: {n}")?;
        }
        if self.missing > 0 {
            writeln!(out, "unfinished: {}", self.missing)?;
        }
        writeln!(
            out,
            "elapsed:    {:.2?}  throughput: {:.0} tasks/s",
            self.elapsed,
            self.throughput()
        )?;
        if !self.latency_ms.is_empty() {
            writeln!(
                out,
                "latency:    p50 {} ms  p99 {} ms  max {} ms (submit to result, engine clock)",
                self.latency_ms.value_at_quantile(0.5),
                self.latency_ms.value_at_quantile(0.99),
                self.latency_ms.max()
            )?;
        }
        Ok(())
    }
}

fn progress(n: usize) -> ProgressBar {
    let bar = ProgressBar::new(n as u64);
    if std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} tasks ({per_sec})",
        ) {
            bar.set_style(style);
        }
    } else {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar
}

/// The submission id of a task view: what `submit` answered, whichever attempt the view is
/// of. An engine older than the field is answered by the rule it follows
/// (`run_id:node_id:1`).
pub fn submission_id(v: &TaskView) -> String {
    if v.submission_id.is_empty() {
        format!("{}:{}:1", v.run_id, v.node_id)
    } else {
        v.submission_id.clone()
    }
}

/// Waits until every task in `keys` (submission ids, as `submit` answered them) finished
/// or `deadline` passes. The feed names each task by its finishing attempt's id and its
/// submission id; the latter is what is matched, so a retried task is found too.
pub fn follow(
    feed: &mut dyn CompletionFeed,
    cursor: u64,
    keys: &[String],
    started: Instant,
    timeout: Duration,
) -> Result<Summary, String> {
    let mut pending: HashSet<&str> = keys.iter().map(String::as_str).collect();
    let bar = progress(keys.len());
    let mut latency =
        Histogram::<u64>::new_with_bounds(1, 3_600_000, 3).map_err(|e| e.to_string())?;
    let mut summary_failures = HashMap::new();
    let (mut completed, mut failed) = (0, 0);
    let mut finished = Vec::with_capacity(keys.len());
    let mut cursor = cursor;
    let deadline = started + timeout;
    while !pending.is_empty() && Instant::now() < deadline {
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(500));
        let (items, next) = feed.next_page(cursor, wait)?;
        let skipped = next
            .saturating_sub(cursor)
            .saturating_sub(items.len() as u64);
        if skipped > 0 {
            log::warn!(
                target: "gamelan.executor.runtime",
                "the engine forgot {skipped} result(s) before they were read (gamelan.engine.results.retention / max-retained); tasks among them count as missing"
            );
        }
        cursor = next;
        for v in items {
            if !pending.remove(submission_id(&v).as_str()) {
                continue;
            }
            if v.status == TaskState::Completed {
                completed += 1;
            } else {
                failed += 1;
                let code = v
                    .error
                    .as_ref()
                    .map_or_else(|| "UNKNOWN".to_owned(), |e| e.code.clone());
                *summary_failures.entry(code).or_insert(0) += 1;
            }
            if let Some(done) = v.completed_at_ms {
                let _ = latency.record(done.saturating_sub(v.submitted_at_ms).max(1));
            }
            bar.inc(1);
            finished.push(v);
        }
    }
    bar.finish_and_clear();
    Ok(Summary {
        submitted: keys.len(),
        completed,
        failed,
        missing: pending.len(),
        elapsed: started.elapsed(),
        latency_ms: latency,
        failures: summary_failures,
        finished,
    })
}
