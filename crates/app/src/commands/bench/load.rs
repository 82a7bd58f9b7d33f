//! The load generator: submits numbered noop tasks through a [`Driver`] (closed loop with a
//! bounded window, or open loop at a fixed arrival rate) while a second thread follows the
//! completions and records each task's latency in an HDR histogram.
//!
//! Latency is measured by the client: from the moment a task was handed to the engine (open
//! loop: from its scheduled arrival, so a stalled submitter cannot hide queueing) until the
//! client saw its result. Run ids are `b<index>`, so a completion maps back to its send time
//! through an array, without a map or an allocation per task.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::error::BenchError;

/// One finished task as a driver reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Done {
    pub index: usize,
    pub completed: bool,
}

/// How the load generator reaches an engine.
pub trait Driver: Send + Sync {
    /// Submits tasks `first..first + count` as one batch (one call, one request).
    fn submit(&self, first: usize, count: usize) -> Result<(), BenchError>;
    /// Appends tasks finished after `cursor` to `out`, waiting up to `wait` for the first;
    /// returns the next cursor.
    fn completions(
        &self,
        cursor: u64,
        wait: Duration,
        out: &mut Vec<Done>,
    ) -> Result<u64, BenchError>;
}

/// The run id of task `index`; [`index_of`] reads it back.
pub fn run_id(index: usize) -> String {
    format!("b{index}")
}

/// The task index in a run id made by [`run_id`].
pub fn index_of(run_id: &str) -> Option<usize> {
    run_id.strip_prefix('b')?.parse().ok()
}

#[derive(Debug, Clone)]
pub struct Load {
    /// Index of the first task: a warm-up and the measured run use disjoint run ids (the
    /// engine de-duplicates submissions by run id).
    pub first: usize,
    pub tasks: usize,
    /// Tasks per submission in closed loop (open loop sends what is due, up to this).
    pub batch: usize,
    /// Closed loop: most tasks submitted and not yet seen finished.
    pub window: usize,
    /// Open-loop arrival rate in tasks per second; `None` = closed loop.
    pub rate: Option<f64>,
    pub timeout: Duration,
}

#[derive(Debug)]
pub struct Measured {
    pub completed: usize,
    pub failed: usize,
    pub unfinished: usize,
    /// First submission to last result.
    pub elapsed: Duration,
    /// Microseconds.
    pub latency: Histogram<u64>,
}

/// Send instants in nanoseconds after the start, plus one (0 = not sent yet).
struct Clock {
    start: Instant,
    sent: Vec<AtomicU64>,
}

impl Clock {
    fn mark(&self, slot: usize, at: Instant) {
        let ns = at.saturating_duration_since(self.start).as_nanos() as u64;
        self.sent[slot].store(ns + 1, Ordering::Release);
    }

    fn sent(&self, slot: usize) -> Option<u64> {
        match self.sent.get(slot)?.load(Ordering::Acquire) {
            0 => None,
            ns => Some(ns - 1),
        }
    }
}

/// What the follower shares with the submitter.
struct Progress {
    finished: AtomicUsize,
    failed_to_follow: AtomicBool,
    lock: Mutex<()>,
    changed: Condvar,
}

impl Progress {
    fn finished(&self) -> usize {
        self.finished.load(Ordering::Acquire)
    }

    /// Waits until `pred` holds, the follower failed, or `deadline` passes.
    fn wait(&self, deadline: Instant, pred: impl Fn(usize) -> bool) -> bool {
        let mut guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if pred(self.finished()) {
                return true;
            }
            if self.failed_to_follow.load(Ordering::Acquire) {
                return false;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            guard = self
                .changed
                .wait_timeout(guard, left.min(Duration::from_millis(20)))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn notify(&self) {
        drop(self.lock.lock().unwrap_or_else(PoisonError::into_inner));
        self.changed.notify_all();
    }
}

struct Followed {
    completed: usize,
    failed: usize,
    last: Instant,
    latency: Histogram<u64>,
}

fn follow(
    driver: &dyn Driver,
    clock: &Clock,
    progress: &Progress,
    (first, tasks): (usize, usize),
    deadline: Instant,
) -> Result<Followed, BenchError> {
    let mut latency = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)
        .map_err(|e| BenchError::Usage(format!("latency histogram: {e}")))?;
    let mut seen = vec![false; tasks];
    let (mut completed, mut failed) = (0, 0);
    let mut cursor = 0;
    let mut page = Vec::with_capacity(10_000);
    let mut last = clock.start;
    while completed + failed < tasks && Instant::now() < deadline {
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(200));
        page.clear();
        cursor = driver.completions(cursor, wait, &mut page)?;
        if page.is_empty() {
            continue;
        }
        let now = Instant::now();
        let now_ns = now.saturating_duration_since(clock.start).as_nanos() as u64;
        for d in &page {
            let Some(slot) = d.index.checked_sub(first).filter(|&s| s < tasks) else {
                continue;
            };
            if std::mem::replace(&mut seen[slot], true) {
                continue;
            }
            if d.completed {
                completed += 1;
            } else {
                failed += 1;
            }
            if let Some(sent) = clock.sent(slot) {
                let us = now_ns.saturating_sub(sent) / 1_000;
                let _ = latency.record(us.max(1));
            }
        }
        last = now;
        progress
            .finished
            .store(completed + failed, Ordering::Release);
        progress.notify();
    }
    Ok(Followed {
        completed,
        failed,
        last,
        latency,
    })
}

/// Runs the load through `driver` and waits for every result (or the timeout).
pub fn run(driver: &Arc<dyn Driver>, load: &Load) -> Result<Measured, BenchError> {
    let (first, tasks) = (load.first, load.tasks);
    let batch = load.batch.max(1);
    let start = Instant::now();
    let deadline = start + load.timeout;
    let clock = Arc::new(Clock {
        start,
        sent: (0..tasks).map(|_| AtomicU64::new(0)).collect(),
    });
    let progress = Arc::new(Progress {
        finished: AtomicUsize::new(0),
        failed_to_follow: AtomicBool::new(false),
        lock: Mutex::new(()),
        changed: Condvar::new(),
    });
    let follower = {
        let (driver, clock, progress) = (
            Arc::clone(driver),
            Arc::clone(&clock),
            Arc::clone(&progress),
        );
        thread::Builder::new()
            .name("bench-follow".into())
            .spawn(move || {
                let r = follow(driver.as_ref(), &clock, &progress, (first, tasks), deadline);
                if r.is_err() {
                    progress.failed_to_follow.store(true, Ordering::Release);
                    progress.notify();
                }
                r
            })?
    };
    let submitted = match load.rate {
        None => closed_loop(driver.as_ref(), &clock, &progress, load, batch, deadline),
        Some(rate) => open_loop(driver.as_ref(), &clock, load, rate, batch, deadline),
    };
    let followed = follower
        .join()
        .map_err(|_| BenchError::Usage("the completion follower panicked".into()))?;
    submitted?;
    let followed = followed?;
    let finished = followed.completed + followed.failed;
    Ok(Measured {
        completed: followed.completed,
        failed: followed.failed,
        unfinished: tasks - finished,
        elapsed: followed.last.saturating_duration_since(start),
        latency: followed.latency,
    })
}

fn closed_loop(
    driver: &dyn Driver,
    clock: &Clock,
    progress: &Progress,
    load: &Load,
    batch: usize,
    deadline: Instant,
) -> Result<(), BenchError> {
    let window = load.window.max(batch);
    let mut next = 0;
    while next < load.tasks {
        let sent = next;
        if !progress.wait(deadline, |finished| {
            sent - finished.min(sent) + batch <= window
        }) {
            // Out of time (or the follower stopped): report what finished.
            return Ok(());
        }
        let count = batch.min(load.tasks - next);
        let now = Instant::now();
        for slot in next..next + count {
            clock.mark(slot, now);
        }
        driver.submit(load.first + next, count)?;
        next += count;
    }
    Ok(())
}

fn open_loop(
    driver: &dyn Driver,
    clock: &Clock,
    load: &Load,
    rate: f64,
    batch: usize,
    deadline: Instant,
) -> Result<(), BenchError> {
    if !(rate.is_finite() && rate > 0.0) {
        return Err(BenchError::Usage(format!(
            "--rate must be a positive number, got {rate}"
        )));
    }
    let interval = Duration::from_secs_f64(1.0 / rate);
    let tasks = load.tasks;
    let scheduled = |i: usize| clock.start + interval.mul_f64(i as f64);
    let mut next = 0;
    while next < tasks && Instant::now() < deadline {
        let now = Instant::now();
        let due = scheduled(next);
        if due > now {
            // Pacing the arrivals, not synchronising with anything.
            thread::sleep(due - now);
            continue;
        }
        let mut count = 0;
        while next + count < tasks && count < batch && scheduled(next + count) <= now {
            clock.mark(next + count, scheduled(next + count));
            count += 1;
        }
        driver.submit(load.first + next, count)?;
        next += count;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// Finishes every submitted task at once; odd indices fail.
    #[derive(Default)]
    struct Immediate {
        done: Mutex<VecDeque<Done>>,
        cv: Condvar,
        submits: AtomicUsize,
    }

    impl Driver for Immediate {
        fn submit(&self, first: usize, count: usize) -> Result<(), BenchError> {
            self.submits.fetch_add(1, Ordering::AcqRel);
            let mut q = self.done.lock().unwrap();
            q.extend((first..first + count).map(|index| Done {
                index,
                completed: index % 2 == 0,
            }));
            self.cv.notify_all();
            Ok(())
        }

        fn completions(
            &self,
            cursor: u64,
            wait: Duration,
            out: &mut Vec<Done>,
        ) -> Result<u64, BenchError> {
            let mut q = self.done.lock().unwrap();
            if q.is_empty() {
                q = self.cv.wait_timeout(q, wait).unwrap().0;
            }
            let n = q.len();
            out.extend(q.drain(..));
            Ok(cursor + n as u64)
        }
    }

    fn load(tasks: usize, rate: Option<f64>) -> Load {
        Load {
            first: 0,
            tasks,
            batch: 64,
            window: 256,
            rate,
            timeout: Duration::from_secs(30),
        }
    }

    #[test]
    fn closed_loop_counts_every_task_once() {
        let inner = Arc::new(Immediate::default());
        let driver: Arc<dyn Driver> = inner.clone();
        let m = run(&driver, &load(1000, None)).unwrap();
        assert_eq!((m.completed, m.failed, m.unfinished), (500, 500, 0));
        assert_eq!(m.latency.len(), 1000);
        // 1000 tasks in batches of 64.
        assert_eq!(inner.submits.load(Ordering::Acquire), 16);
    }

    #[test]
    fn open_loop_sends_everything_at_the_rate() {
        let driver: Arc<dyn Driver> = Arc::new(Immediate::default());
        let m = run(&driver, &load(200, Some(20_000.0))).unwrap();
        assert_eq!(m.completed + m.failed, 200);
        assert_eq!(m.unfinished, 0);
        // 200 tasks at 20k/s cannot take less than 10 ms of schedule.
        assert!(m.elapsed >= Duration::from_millis(9), "{:?}", m.elapsed);
    }

    #[test]
    fn a_second_run_counts_only_its_own_tasks() {
        let driver: Arc<dyn Driver> = Arc::new(Immediate::default());
        let warm = run(&driver, &load(100, None)).unwrap();
        assert_eq!(warm.completed + warm.failed, 100);
        let measured = run(
            &driver,
            &Load {
                first: 100,
                ..load(300, None)
            },
        )
        .unwrap();
        assert_eq!((measured.completed, measured.failed), (150, 150));
        assert_eq!(measured.latency.len(), 300);
    }

    #[test]
    fn run_ids_round_trip() {
        assert_eq!(index_of(&run_id(12_345)), Some(12_345));
        assert_eq!(index_of("x1"), None);
        assert_eq!(index_of("b"), None);
    }
}
