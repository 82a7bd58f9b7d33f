//! The pool's watchdog and delay queue: one thread that fires task timeouts and re-admits
//! retries when their back-off has passed, so no worker thread ever sleeps on a retry.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Longest the watchdog sleeps without a known deadline; bounds how late a deadline that
/// raced with the sleep can fire.
pub(crate) const IDLE_TICK: Duration = Duration::from_millis(250);

struct Entry<T> {
    due: Instant,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        self.due == other.due && self.seq == other.seq
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Entry<T> {
    // Reversed: BinaryHeap is a max-heap and we want the earliest first.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        other.due.cmp(&self.due).then(other.seq.cmp(&self.seq))
    }
}

struct State<T> {
    heap: BinaryHeap<Entry<T>>,
    seq: u64,
    stopped: bool,
}

/// A delay queue plus a wake-up hint for deadlines kept elsewhere (the worker slots).
pub(crate) struct DelayQueue<T> {
    state: Mutex<State<T>>,
    wake: Condvar,
    base: Instant,
    /// Nanoseconds after `base` at which the watchdog plans to wake; a worker starting a
    /// task with an earlier deadline wakes it (rare: deadlines are usually far away).
    planned: AtomicU64,
}

impl<T> DelayQueue<T> {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State {
                heap: BinaryHeap::new(),
                seq: 0,
                stopped: false,
            }),
            wake: Condvar::new(),
            base: Instant::now(),
            planned: AtomicU64::new(u64::MAX),
        }
    }

    fn nanos(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    pub(crate) fn schedule(&self, due: Instant, item: T) {
        if let Ok(mut s) = self.state.lock() {
            s.seq += 1;
            let seq = s.seq;
            s.heap.push(Entry { due, seq, item });
        }
        self.hint(due);
    }

    /// Tells the watchdog about a deadline it does not hold; wakes it only if needed.
    pub(crate) fn hint(&self, due: Instant) {
        if self.nanos(due) < self.planned.load(Ordering::Acquire) {
            drop(self.state.lock());
            self.wake.notify_one();
        }
    }

    /// Waits until `next_external` (or an internal entry) is due, then returns due items.
    /// Returns `None` once stopped.
    pub(crate) fn wait_due(&self, next_external: Option<Instant>) -> Option<Vec<T>> {
        let mut s = self.state.lock().ok()?;
        if s.stopped {
            return None;
        }
        let now = Instant::now();
        let internal = s.heap.peek().map(|e| e.due);
        let next = [internal, next_external, Some(now + IDLE_TICK)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + IDLE_TICK);
        if next > now {
            self.planned.store(self.nanos(next), Ordering::Release);
            // Woken early by a hint or a schedule: the caller recomputes its deadlines.
            s = self.wake.wait_timeout(s, next - now).ok()?.0;
            if s.stopped {
                return None;
            }
        }
        self.planned.store(0, Ordering::Release);
        let now = Instant::now();
        let mut due = Vec::new();
        while s.heap.peek().is_some_and(|e| e.due <= now) {
            if let Some(e) = s.heap.pop() {
                due.push(e.item);
            }
        }
        Some(due)
    }

    /// Removes and returns every waiting item (shutdown).
    pub(crate) fn drain(&self) -> Vec<T> {
        self.state
            .lock()
            .map(|mut s| s.heap.drain().map(|e| e.item).collect())
            .unwrap_or_default()
    }

    /// Removes the first waiting item matching `pred`.
    pub(crate) fn remove_where(&self, pred: impl Fn(&T) -> bool) -> Option<T> {
        let mut s = self.state.lock().ok()?;
        let items: Vec<Entry<T>> = std::mem::take(&mut s.heap).into_vec();
        let mut found = None;
        for e in items {
            if found.is_none() && pred(&e.item) {
                found = Some(e.item);
            } else {
                s.heap.push(e);
            }
        }
        found
    }

    pub(crate) fn len(&self) -> usize {
        self.state.lock().map_or(0, |s| s.heap.len())
    }

    pub(crate) fn stop(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.stopped = true;
        }
        self.wake.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_items_in_due_order() {
        let q = DelayQueue::new();
        let now = Instant::now();
        q.schedule(now + Duration::from_millis(20), 2);
        q.schedule(now, 1);
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < 2 && Instant::now() < deadline {
            got.extend(q.wait_due(None).unwrap());
        }
        assert_eq!(got, vec![1, 2]);
        assert!(Instant::now() >= now + Duration::from_millis(20));
        q.stop();
        assert!(q.wait_due(None).is_none());
    }
}
