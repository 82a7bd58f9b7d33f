//! The growing wait between tries of something that keeps failing: reconnecting to an
//! engine, resending a batch of results, a broker that is not ready yet.
//!
//! Every retry loop in the runtime, the engine and the adapters waits the same way (start
//! small, double, stop growing at a cap, start over after a success), so it is written once
//! here and property-tested, instead of as a `(delay * 2).min(max)` in each loop.

use std::time::Duration;

/// Doubling delays from `initial` up to `max`, reset by a success.
///
/// ```
/// # use std::time::Duration;
/// # use gamelan_domain::Backoff;
/// let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(3));
/// assert_eq!(b.next_delay(), Duration::from_secs(1));
/// assert_eq!(b.next_delay(), Duration::from_secs(2));
/// assert_eq!(b.next_delay(), Duration::from_secs(3));
/// assert_eq!(b.failures(), 3);
/// b.reset();
/// assert_eq!(b.next_delay(), Duration::from_secs(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
    failures: u32,
}

impl Backoff {
    /// A cap below `initial` is raised to `initial`, so the first wait is always `initial`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        let max = max.max(initial);
        Self {
            initial,
            max,
            next: initial,
            failures: 0,
        }
    }

    /// Records one more failure and returns how long to wait before the next try; the wait
    /// after it doubles, up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let now = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        // A zero initial delay would never grow; step to the smallest non-zero unit so a
        // misconfigured loop still backs off instead of retrying flat out.
        if self.next.is_zero() && !self.max.is_zero() {
            self.next = Duration::from_millis(1).min(self.max);
        }
        self.failures = self.failures.saturating_add(1);
        now
    }

    /// Like [`Backoff::next_delay`], shortened by up to `jitter` (a fraction in `0..=1`) with
    /// `unit` in `[0, 1)` drawn by the caller (the domain reads no randomness), so many
    /// clients failing together do not retry in lockstep. Never longer than the plain delay.
    pub fn next_jittered(&mut self, jitter: f64, unit: f64) -> Duration {
        let base = self.next_delay();
        let fraction = unit_interval(jitter) * unit_interval(unit);
        let cut = Duration::try_from_secs_f64(base.as_secs_f64() * fraction).unwrap_or(base);
        base.saturating_sub(cut)
    }

    /// The wait [`Backoff::next_delay`] would return now, without counting a failure.
    pub fn peek(&self) -> Duration {
        self.next
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// A success: the next failure waits `initial` again.
    pub fn reset(&mut self) {
        self.next = self.initial;
        self.failures = 0;
    }

    pub fn initial(&self) -> Duration {
        self.initial
    }

    pub fn max(&self) -> Duration {
        self.max
    }
}

/// `x` clamped into `[0, 1]`, with NaN read as 0.
fn unit_interval(x: f64) -> f64 {
    if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_and_restarts_after_reset() {
        let mut b = Backoff::new(Duration::from_millis(50), Duration::from_millis(300));
        let got: Vec<u64> = (0..6).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(got, [50, 100, 200, 300, 300, 300]);
        assert_eq!(b.failures(), 6);
        b.reset();
        assert_eq!(b.failures(), 0);
        assert_eq!(b.peek(), Duration::from_millis(50));
    }

    #[test]
    fn a_cap_below_the_start_is_raised_to_it() {
        let mut b = Backoff::new(Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(b.next_delay(), Duration::from_secs(2));
        assert_eq!(b.next_delay(), Duration::from_secs(2));
    }

    #[test]
    fn a_zero_start_still_grows() {
        let mut b = Backoff::new(Duration::ZERO, Duration::from_millis(4));
        let got: Vec<u64> = (0..5).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(got, [0, 1, 2, 4, 4]);
    }

    #[test]
    fn huge_delays_saturate_instead_of_overflowing() {
        let mut b = Backoff::new(Duration::MAX / 2 + Duration::from_secs(1), Duration::MAX);
        b.next_delay();
        assert_eq!(b.next_delay(), Duration::MAX);
    }
}
