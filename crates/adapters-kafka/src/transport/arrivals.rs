//! One wake-up for several consumers. A runtime hosting several executor types has a
//! consumer (a consumer group) per type, and rdkafka can only wait on one consumer's queue
//! at a time; polling them in turn with a time slice each kept a task for the last one
//! waiting for every other slice to run out (tens of milliseconds per task). Each
//! consumer's queue instead signals here when it turns non-empty, and the intake waits
//! for that signal after finding every queue empty.

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub(crate) struct Arrivals {
    /// Bumped on every signal; a waiter compares it with what it saw before looking.
    generation: Mutex<u64>,
    changed: Condvar,
}

impl Arrivals {
    /// Called from librdkafka's thread when a consumer queue turns non-empty: must be quick.
    pub fn signal(&self) {
        let mut g = self
            .generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *g = g.wrapping_add(1);
        drop(g);
        self.changed.notify_all();
    }

    pub fn generation(&self) -> u64 {
        *self
            .generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until a signal newer than `seen` or until `timeout` passes.
    pub fn wait_after(&self, seen: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut g = self
            .generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while *g == seen {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            g = self
                .changed
                .wait_timeout(g, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_signal_after_the_look_ends_the_wait_and_one_before_it_is_not_missed() {
        let a = Arc::new(Arrivals::default());
        let seen = a.generation();
        a.signal();
        let started = Instant::now();
        a.wait_after(seen, Duration::from_secs(30));
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "missed a signal"
        );

        let seen = a.generation();
        let waiter = {
            let a = Arc::clone(&a);
            std::thread::spawn(move || a.wait_after(seen, Duration::from_secs(30)))
        };
        a.signal();
        waiter.join().unwrap_or_else(|_| panic!("waiter panicked"));
        assert_eq!(a.generation(), seen + 1);

        let started = Instant::now();
        a.wait_after(a.generation(), Duration::from_millis(20));
        assert!(started.elapsed() >= Duration::from_millis(20));
    }
}
