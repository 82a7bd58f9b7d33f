//! Result batching: flush when the batch is full or its oldest entry is old enough.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPolicy {
    /// `result.batch-size`: flush as soon as this many results wait. 1 disables batching.
    pub max_size: usize,
    /// `result.batch-timeout`: flush when the oldest waiting result is this old.
    pub max_age: Duration,
}

impl Default for BatchPolicy {
    fn default() -> Self {
        Self {
            max_size: 100,
            max_age: Duration::from_millis(5),
        }
    }
}

impl BatchPolicy {
    pub fn should_flush(&self, len: usize, oldest: Option<Instant>, now: Instant) -> bool {
        len > 0
            && (len >= self.max_size.max(1)
                || oldest.is_some_and(|t| now.saturating_duration_since(t) >= self.max_age))
    }
}

/// Room reserved for a batch up front. Bounded so that a huge `result.batch-size` (used to
/// mean "flush by age only") neither aborts on `Vec::with_capacity` nor pins memory.
fn prealloc(policy: BatchPolicy) -> usize {
    policy.max_size.clamp(1, 1024)
}

/// A buffer that applies a [`BatchPolicy`]; the caller owns the clock and the timer.
#[derive(Debug, Clone)]
pub struct Batcher<T> {
    policy: BatchPolicy,
    items: Vec<T>,
    oldest: Option<Instant>,
}

impl<T> Batcher<T> {
    pub fn new(policy: BatchPolicy) -> Self {
        Self {
            policy,
            items: Vec::with_capacity(prealloc(policy)),
            oldest: None,
        }
    }

    /// Adds an item; returns a full batch when the policy says so.
    pub fn push(&mut self, item: T, now: Instant) -> Option<Vec<T>> {
        if self.items.is_empty() {
            self.oldest = Some(now);
        }
        self.items.push(item);
        self.poll(now)
    }

    /// Returns the batch if it is due at `now`.
    pub fn poll(&mut self, now: Instant) -> Option<Vec<T>> {
        self.policy
            .should_flush(self.items.len(), self.oldest, now)
            .then(|| self.take())
    }

    /// Empties the buffer regardless of the policy (shutdown, reconnect).
    pub fn take(&mut self) -> Vec<T> {
        self.oldest = None;
        std::mem::replace(&mut self.items, Vec::with_capacity(prealloc(self.policy)))
    }

    /// When the current batch falls due, if anything is waiting.
    pub fn deadline(&self) -> Option<Instant> {
        self.oldest.map(|t| t + self.policy.max_age)
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flushes_on_size_or_age() {
        let t0 = Instant::now();
        let mut b = Batcher::new(BatchPolicy {
            max_size: 3,
            max_age: Duration::from_millis(10),
        });
        assert!(b.push(1, t0).is_none());
        assert!(b.push(2, t0).is_none());
        assert_eq!(b.push(3, t0), Some(vec![1, 2, 3]));
        assert!(b.deadline().is_none());
        assert!(b.push(4, t0).is_none());
        assert_eq!(b.deadline(), Some(t0 + Duration::from_millis(10)));
        assert!(b.poll(t0 + Duration::from_millis(9)).is_none());
        assert_eq!(b.poll(t0 + Duration::from_millis(10)), Some(vec![4]));
        assert!(b.poll(t0 + Duration::from_secs(1)).is_none());
    }

    #[test]
    fn unbounded_size_flushes_by_age_only() {
        let t0 = Instant::now();
        let mut b = Batcher::new(BatchPolicy {
            max_size: usize::MAX,
            max_age: Duration::from_millis(1),
        });
        for i in 0..2000 {
            assert!(b.push(i, t0).is_none());
        }
        assert_eq!(
            b.poll(t0 + Duration::from_millis(1)).map(|v| v.len()),
            Some(2000)
        );
    }
}
