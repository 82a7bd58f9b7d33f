//! Test doubles for code that drives an engine: a clock moved by hand and a sink that
//! records what the engine delivers. Public so adapter and end-to-end tests can use them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use gamelan_domain::Task;
use gamelan_ports::{Clock, TaskSink};

/// A clock that stands still until [`ManualClock::advance`] moves it.
#[derive(Debug)]
pub struct ManualClock {
    base: Instant,
    base_epoch_ms: u64,
    offset_nanos: AtomicU64,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    pub fn new() -> Self {
        Self {
            base: Instant::now(),
            base_epoch_ms: 1_700_000_000_000,
            offset_nanos: AtomicU64::new(0),
        }
    }

    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.offset_nanos.fetch_add(nanos, Ordering::SeqCst);
    }

    fn offset(&self) -> Duration {
        Duration::from_nanos(self.offset_nanos.load(Ordering::SeqCst))
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.base + self.offset()
    }

    fn epoch_millis(&self) -> u64 {
        self.base_epoch_ms + u64::try_from(self.offset().as_millis()).unwrap_or(u64::MAX)
    }
}

/// A [`TaskSink`] that keeps every delivered task; once closed it refuses, as a sink whose
/// stream is gone does.
#[derive(Debug, Default)]
pub struct RecordingSink {
    delivered: Mutex<Vec<Task>>,
    cancelled: Mutex<Vec<(String, String)>>,
    closed: AtomicBool,
}

impl RecordingSink {
    pub fn new() -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self::default())
    }

    /// Everything delivered so far, oldest first.
    pub fn delivered(&self) -> Vec<Task> {
        self.delivered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Removes and returns what was delivered since the last call.
    pub fn take(&self) -> Vec<Task> {
        std::mem::take(
            &mut *self
                .delivered
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    pub fn len(&self) -> usize {
        self.delivered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn cancelled(&self) -> Vec<(String, String)> {
        self.cancelled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// From now on `deliver` answers `false`.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }
}

impl TaskSink for RecordingSink {
    fn deliver(&self, task: Arc<Task>) -> bool {
        if self.closed.load(Ordering::SeqCst) {
            return false;
        }
        self.delivered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::unwrap_or_clone(task));
        true
    }

    fn cancel(&self, task_id: &str, reason: &str) -> bool {
        if self.closed.load(Ordering::SeqCst) {
            return false;
        }
        self.cancelled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((task_id.to_owned(), reason.to_owned()));
        true
    }
}
