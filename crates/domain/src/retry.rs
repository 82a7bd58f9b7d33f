//! Exponential backoff for technical failures.

use std::time::Duration;

/// Retry schedule: retry `n` (1-based) waits `initial * multiplier^(n-1)`, capped at
/// `max_delay`, then shortened by up to `jitter` (a fraction in `0..=1`) so that many
/// executors failing together do not retry in lockstep. Jitter only ever shortens a delay,
/// so the cap holds with or without it.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first execution (`error.max-retries`); 0 disables retrying.
    pub max_attempts: u32,
    pub initial_delay: Duration,
    pub multiplier: f64,
    pub max_delay: Duration,
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_delay: Duration::from_secs(1),
            multiplier: 2.0,
            max_delay: Duration::from_secs(300),
            jitter: 0.0,
        }
    }
}

impl RetryPolicy {
    /// The un-jittered delay before retry `n` (1-based). Never decreases with `n`, never
    /// exceeds `max_delay`.
    pub fn base_delay(&self, n: u32) -> Duration {
        let n = n.max(1);
        let multiplier = if self.multiplier.is_finite() {
            self.multiplier.max(1.0)
        } else {
            1.0
        };
        let exp = i32::try_from(n - 1).unwrap_or(i32::MAX);
        let secs = self.initial_delay.as_secs_f64() * multiplier.powi(exp);
        let max = self.max_delay.as_secs_f64();
        if !secs.is_finite() || secs >= max {
            self.max_delay
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    /// The delay before retry `n`, with `unit` in `[0, 1)` drawn by the caller (the domain
    /// reads no randomness). The result lies in `[base * (1 - jitter), base]`.
    pub fn delay(&self, n: u32, unit: f64) -> Duration {
        let base = self.base_delay(n);
        let fraction = unit_interval(self.jitter) * unit_interval(unit);
        // Subtracting a cut, rather than scaling by `1 - fraction`, keeps the result at or
        // below `base` exactly: a round trip through f64 is lossy above 2^53 ns (104 days)
        // and `Duration::mul_f64` panics near `Duration::MAX`, both reachable from config.
        let cut = Duration::try_from_secs_f64(base.as_secs_f64() * fraction).unwrap_or(base);
        base.saturating_sub(cut)
    }

    /// Whether a task that has already been retried `retries_done` times may run again.
    pub fn should_retry(&self, retries_done: u32) -> bool {
        retries_done < self.max_attempts
    }

    /// The delay before the next retry, or `None` when retries are exhausted.
    pub fn next_delay(&self, retries_done: u32, unit: f64) -> Option<Duration> {
        self.should_retry(retries_done)
            .then(|| self.delay(retries_done + 1, unit))
    }
}

/// `x` clamped into `[0, 1]`, with NaN read as 0 (no jitter rather than a surprise).
fn unit_interval(x: f64) -> f64 {
    if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_defaults_double_from_one_second() {
        let p = RetryPolicy::default();
        assert_eq!(p.base_delay(1), Duration::from_secs(1));
        assert_eq!(p.base_delay(2), Duration::from_secs(2));
        assert_eq!(p.base_delay(3), Duration::from_secs(4));
        assert_eq!(p.base_delay(30), Duration::from_secs(300));
        assert_eq!(p.next_delay(0, 0.0), Some(Duration::from_secs(1)));
        assert_eq!(p.next_delay(2, 0.0), Some(Duration::from_secs(4)));
        assert_eq!(p.next_delay(3, 0.0), None);
    }

    #[test]
    fn jitter_stays_in_its_bound() {
        let p = RetryPolicy {
            jitter: 0.5,
            ..RetryPolicy::default()
        };
        assert_eq!(p.delay(2, 0.0), Duration::from_secs(2));
        assert_eq!(p.delay(2, 1.0), Duration::from_secs(1));
    }

    #[test]
    fn huge_caps_neither_panic_nor_overshoot() {
        let p = RetryPolicy {
            multiplier: 10.0,
            max_delay: Duration::MAX,
            jitter: 0.5,
            ..RetryPolicy::default()
        };
        assert_eq!(p.delay(40, 0.0), Duration::MAX);
        assert!(p.delay(40, 1.0) <= Duration::MAX / 2 + Duration::from_secs(1));
        let nan = RetryPolicy {
            jitter: f64::NAN,
            ..p
        };
        assert_eq!(nan.delay(3, 0.7), nan.base_delay(3));
    }
}
