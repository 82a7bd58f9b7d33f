//! Waiting for the broker's delivery reports of a batch of produced messages.

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Instant;

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

    /// Waits until every message has its report or `deadline` passes; `None` = not known.
    pub fn wait(&self, deadline: Instant) -> Vec<Option<Result<(), String>>> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while s.remaining > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            s = self
                .cv
                .wait_timeout(s, left)
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
    use std::time::Duration;

    #[test]
    fn wait_returns_when_all_reports_are_in() {
        let w = Arc::new(BatchWaiter::new(2));
        let w2 = Arc::clone(&w);
        let t = std::thread::spawn(move || {
            w2.complete(1, Err("nope".into()));
            w2.complete(0, Ok(()));
        });
        let out = w.wait(Instant::now() + Duration::from_secs(10));
        t.join().unwrap();
        assert_eq!(out, vec![Some(Ok(())), Some(Err("nope".into()))]);
    }

    #[test]
    fn wait_gives_up_at_the_deadline() {
        let w = BatchWaiter::new(2);
        w.complete(0, Ok(()));
        w.complete(0, Err("late duplicate is ignored".into()));
        let out = w.wait(Instant::now() + Duration::from_millis(20));
        assert_eq!(out, vec![Some(Ok(())), None]);
    }
}
