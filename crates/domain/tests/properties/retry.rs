//! `RetryPolicy`: the backoff schedule's bounds and the retry budget.

use std::time::Duration;

use gamelan_domain::RetryPolicy;
use proptest::prelude::*;

/// Multipliers from 1 to 10, with the edges and values just above 1 (where rounding in
/// the power computation is most likely to break monotonicity) drawn on purpose.
fn multiplier() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(1.0),
        Just(10.0),
        1.0f64..=10.0,
        (1u32..1000).prop_map(|k| 1.0 + f64::from(k) * f64::EPSILON),
        (1u32..20).prop_map(|k| 1.0 + f64::from(k) / 8.0),
    ]
}

fn nanos(range: std::ops::RangeInclusive<u64>) -> impl Strategy<Value = Duration> {
    range.prop_map(Duration::from_nanos)
}

/// Caps from zero to a day at nanosecond resolution, plus the extremes a configuration
/// could name (a year, `Duration::MAX`).
fn max_delay() -> impl Strategy<Value = Duration> {
    prop_oneof![
        4 => nanos(0..=86_400_000_000_000),
        1 => Just(Duration::from_secs(365 * 86_400)),
        1 => Just(Duration::from_nanos(u64::MAX)),
        1 => Just(Duration::MAX),
    ]
}

fn policy() -> impl Strategy<Value = RetryPolicy> {
    (
        0u32..20,
        nanos(0..=10_000_000_000),
        multiplier(),
        max_delay(),
        prop_oneof![Just(0.0), Just(1.0), 0.0f64..=1.0],
    )
        .prop_map(
            |(max_attempts, initial_delay, multiplier, max_delay, jitter)| RetryPolicy {
                max_attempts,
                initial_delay,
                multiplier,
                max_delay,
                jitter,
            },
        )
}

fn unit() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0), Just(1.0 - f64::EPSILON / 2.0), 0.0f64..1.0]
}

fn as_nanos_f64(d: Duration) -> f64 {
    d.as_nanos() as f64
}

proptest! {
    #[test]
    fn base_delays_never_decrease_and_respect_the_cap(
        policy in policy(),
        far in prop::collection::vec(any::<u32>(), 1..8),
    ) {
        let mut previous = Duration::ZERO;
        for n in 1..=80u32 {
            let d = policy.base_delay(n);
            prop_assert!(d >= previous, "retry {} waits {:?}, retry {} waited {:?}", n, d, n - 1, previous);
            prop_assert!(d <= policy.max_delay);
            previous = d;
        }
        let mut far = far;
        far.sort_unstable();
        for pair in far.windows(2) {
            prop_assert!(policy.base_delay(pair[0]) <= policy.base_delay(pair[1]));
        }
        prop_assert!(policy.base_delay(u32::MAX) <= policy.max_delay);
    }

    #[test]
    fn first_retry_waits_the_initial_delay_then_grows_by_the_multiplier(policy in policy()) {
        let cap = policy.max_delay;
        prop_assert_eq!(policy.base_delay(1), policy.initial_delay.min(cap));
        // Below the cap each step is `multiplier` times the previous one, up to the
        // previous delay's rounding to whole nanoseconds (scaled by the multiplier).
        for n in 1..30u32 {
            let (a, b) = (policy.base_delay(n), policy.base_delay(n + 1));
            if b < cap {
                let expected = as_nanos_f64(a) * policy.multiplier;
                prop_assert!(
                    (as_nanos_f64(b) - expected).abs() <= expected * 1e-9 + policy.multiplier + 1.0,
                    "retry {}: {:?} then {:?} with multiplier {}", n, a, b, policy.multiplier
                );
            }
        }
    }

    #[test]
    fn jittered_delays_stay_within_their_bound(
        policy in policy(),
        n in prop_oneof![1u32..40, any::<u32>()],
        unit in unit(),
    ) {
        let base = policy.base_delay(n);
        let delay = policy.delay(n, unit);
        prop_assert!(delay <= base, "{:?} above the base {:?}", delay, base);
        prop_assert!(delay <= policy.max_delay);
        // Relative slack for the float arithmetic, one nanosecond for the final rounding.
        let lower = as_nanos_f64(base) * (1.0 - policy.jitter) * (1.0 - 1e-12) - 1.0;
        prop_assert!(
            as_nanos_f64(delay) >= lower,
            "{:?} below base {:?} * (1 - {})", delay, base, policy.jitter
        );
        if policy.jitter == 0.0 || unit == 0.0 {
            prop_assert_eq!(delay, base);
        }
    }

    #[test]
    fn retries_stop_after_max_attempts(policy in policy(), units in prop::collection::vec(unit(), 64)) {
        let mut retries_done = 0u32;
        while let Some(delay) = policy.next_delay(retries_done, units[retries_done as usize % units.len()]) {
            prop_assert!(delay <= policy.max_delay);
            prop_assert!(delay <= policy.base_delay(retries_done + 1));
            retries_done += 1;
            prop_assert!(retries_done <= policy.max_attempts, "retry {} allowed", retries_done);
        }
        prop_assert_eq!(retries_done, policy.max_attempts);
        // Once exhausted, it stays exhausted.
        prop_assert!(policy.next_delay(retries_done + 1, 0.0).is_none());
        prop_assert!(policy.next_delay(u32::MAX, 0.0).is_none());
    }
}
