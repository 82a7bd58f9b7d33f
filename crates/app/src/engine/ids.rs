//! Execution tokens, run ids and jitter draws: unique and unpredictable enough for
//! de-duplication, cheap enough for the hot path (no syscall, no lock, no crypto).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A splitmix64 stream over an atomic counter, seeded per engine instance from the
/// process's hash randomness, the time and the pid, so two engines (or one engine before and
/// after a restart) never hand out the same run id or token.
#[derive(Debug)]
pub(super) struct IdGen {
    seed: u64,
    prefix: u64,
    counter: AtomicU64,
    runs: AtomicU64,
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

fn splitmix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl IdGen {
    pub(super) fn new() -> Self {
        let mut hasher = RandomState::new().build_hasher();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        hasher.write_u128(nanos);
        hasher.write_u32(std::process::id());
        let seed = hasher.finish();
        Self {
            seed,
            prefix: splitmix64(seed ^ GOLDEN),
            counter: AtomicU64::new(1),
            runs: AtomicU64::new(1),
        }
    }

    pub(super) fn next_u64(&self) -> u64 {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        splitmix64(self.seed.wrapping_add(n.wrapping_mul(GOLDEN)))
    }

    /// 128 bits as 32 hex digits.
    pub(super) fn token(&self) -> String {
        format!("{:016x}{:016x}", self.next_u64(), self.next_u64())
    }

    /// `run-<instance>-<n>`: unique across engine instances and restarts.
    pub(super) fn run_id(&self) -> String {
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        format!("run-{:016x}-{n}", self.prefix)
    }

    /// Uniform in `[0, 1)`, for retry jitter.
    pub(super) fn unit(&self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn tokens_and_run_ids_do_not_repeat() {
        let a = IdGen::new();
        let b = IdGen::new();
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(a.token()));
            assert!(seen.insert(b.token()));
        }
        assert_eq!(a.token().len(), 32);
        assert_ne!(a.run_id(), b.run_id());
        let u = a.unit();
        assert!((0.0..1.0).contains(&u));
    }
}
