//! The largest sample of a recent time window, as Micrometer's `TimeWindowMax` keeps it for a
//! timer's `_max` series: a ring of buckets that all see every sample, one of which is cleared
//! and moved past at each rotation, so a sample is reported for up to the whole window and
//! then forgotten. Rotation happens lazily when a sample is recorded or the value is read, so
//! an idle process needs no timer thread for it.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Micrometer's defaults (`distributionStatisticExpiry` 2 min, `distributionStatisticBufferLength` 3).
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(120);
pub const DEFAULT_BUFFER_LENGTH: usize = 3;

struct Ring {
    buckets: Vec<f64>,
    current: usize,
    last_rotation: Instant,
}

pub struct WindowMax {
    ring: Mutex<Ring>,
    between_rotations: Duration,
}

impl WindowMax {
    /// A window of `expiry` split into `buffer_length` rotations (at least one).
    pub fn new(expiry: Duration, buffer_length: usize, now: Instant) -> Self {
        let n = buffer_length.max(1);
        Self {
            ring: Mutex::new(Ring {
                buckets: vec![0.0; n],
                current: 0,
                last_rotation: now,
            }),
            between_rotations: expiry / u32::try_from(n).unwrap_or(u32::MAX),
        }
    }

    pub fn record(&self, sample: f64, now: Instant) {
        let mut ring = self.lock();
        self.rotate(&mut ring, now);
        for b in &mut ring.buckets {
            if sample > *b {
                *b = sample;
            }
        }
    }

    /// The largest sample still inside the window (0 when there is none).
    pub fn get(&self, now: Instant) -> f64 {
        let mut ring = self.lock();
        self.rotate(&mut ring, now);
        ring.buckets[ring.current]
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn rotate(&self, ring: &mut Ring, now: Instant) {
        let step = self.between_rotations;
        if step.is_zero() {
            return;
        }
        let mut since = now.saturating_duration_since(ring.last_rotation);
        if since < step {
            return;
        }
        let n = ring.buckets.len();
        let rotations = since.as_nanos() / step.as_nanos();
        if rotations >= n as u128 {
            // The whole window passed: everything recorded is too old.
            ring.buckets.iter_mut().for_each(|b| *b = 0.0);
            ring.current = 0;
            let rem = since.as_nanos() % step.as_nanos();
            ring.last_rotation = now
                .checked_sub(Duration::from_nanos(u64::try_from(rem).unwrap_or(0)))
                .unwrap_or(now);
            return;
        }
        while since >= step {
            let c = ring.current;
            ring.buckets[c] = 0.0;
            ring.current = (c + 1) % n;
            since -= step;
            ring.last_rotation += step;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_sample_is_reported_for_the_window_then_forgotten() {
        let t0 = Instant::now();
        let m = WindowMax::new(120 * S, 3, t0);
        assert!(m.get(t0).abs() < f64::EPSILON);
        m.record(0.5, t0);
        m.record(0.2, t0 + S);
        assert!((m.get(t0 + S) - 0.5).abs() < f64::EPSILON);
        // Still there after two of the three rotations (40 s each) ...
        assert!((m.get(t0 + 79 * S) - 0.5).abs() < f64::EPSILON);
        assert!((m.get(t0 + 119 * S) - 0.5).abs() < f64::EPSILON);
        // ... and gone once the window has passed.
        assert!(m.get(t0 + 120 * S).abs() < f64::EPSILON);
    }

    #[test]
    fn a_later_smaller_sample_outlives_an_earlier_larger_one() {
        let t0 = Instant::now();
        let m = WindowMax::new(120 * S, 3, t0);
        m.record(3.0, t0);
        m.record(1.0, t0 + 50 * S);
        assert!((m.get(t0 + 60 * S) - 3.0).abs() < f64::EPSILON);
        assert!((m.get(t0 + 125 * S) - 1.0).abs() < f64::EPSILON);
        assert!(m.get(t0 + 170 * S).abs() < f64::EPSILON);
    }

    #[test]
    fn a_long_silence_clears_everything() {
        let t0 = Instant::now();
        let m = WindowMax::new(120 * S, 3, t0);
        m.record(2.0, t0);
        assert!(m.get(t0 + 3600 * S).abs() < f64::EPSILON);
        m.record(0.7, t0 + 3601 * S);
        assert!((m.get(t0 + 3602 * S) - 0.7).abs() < f64::EPSILON);
    }
}
