//! Waiting for the broker's delivery reports of a batch of produced messages.

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How often a waiting caller checks whether to give up early.
pub(crate) const GIVE_UP_CHECK: Duration = Duration::from_millis(100);

/// One slot per message of a batch, filled by the producer's delivery callback.
#[derive(Debug)]
pub(crate) struct BatchWaiter {
    state: Mutex<Slots>,
    cv: Condvar,
}

#[derive(Debug)]
struct Slots {
    outcomes: Vec<Option<Result<(), String>>>,
    remaining: usize,
}

impl BatchWaiter {
    pub fn new(n: usize) -> Self {
        Self {
            state: Mutex::new(Slots {
                outcomes: vec![None; n],
                remaining: n,
            }),
            cv: Condvar::new(),
        }
    }

    pub fn complete(&self, index: usize, outcome: Result<(), String>) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = s.outcomes.get_mut(index)
            && slot.is_none()
        {
            *slot = Some(outcome);
            s.remaining -= 1;
            if s.remaining == 0 {
                self.cv.notify_all();
            }
        }
    }

    /// Waits until every message has its report, `deadline` passes or `give_up()` says so
    /// (looked at every [`GIVE_UP_CHECK`]); `None` = not known.
    pub fn wait(
        &self,
        deadline: Instant,
        give_up: impl Fn() -> bool,
    ) -> Vec<Option<Result<(), String>>> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while s.remaining > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || give_up() {
                break;
            }
            s = self
                .cv
                .wait_timeout(s, left.min(GIVE_UP_CHECK))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        s.outcomes.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn wait_returns_when_all_reports_are_in() {
        let w = Arc::new(BatchWaiter::new(2));
        let w2 = Arc::clone(&w);
        let t = std::thread::spawn(move || {
            w2.complete(1, Err("nope".into()));
            w2.complete(0, Ok(()));
        });
        let out = w.wait(Instant::now() + Duration::from_secs(10), || false);
        t.join().unwrap();
        assert_eq!(out, vec![Some(Ok(())), Some(Err("nope".into()))]);
    }

    #[test]
    fn wait_gives_up_at_the_deadline() {
        let w = BatchWaiter::new(2);
        w.complete(0, Ok(()));
        w.complete(0, Err("late duplicate is ignored".into()));
        let out = w.wait(Instant::now() + Duration::from_millis(20), || false);
        assert_eq!(out, vec![Some(Ok(())), None]);
        let started = Instant::now();
        let out = w.wait(Instant::now() + Duration::from_secs(60), || true);
        assert_eq!(out, vec![Some(Ok(())), None]);
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "gave up at once"
        );
    }
}
