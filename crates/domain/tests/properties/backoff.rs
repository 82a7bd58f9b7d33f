//! `Backoff`: the shared retry-loop delay, against a plain model (start, double, cap).

use std::time::Duration;

use gamelan_domain::Backoff;
use proptest::prelude::*;

fn delay() -> impl Strategy<Value = Duration> {
    prop_oneof![
        4 => (0u64..=60_000_000_000).prop_map(Duration::from_nanos),
        1 => Just(Duration::ZERO),
        1 => Just(Duration::from_secs(365 * 86_400)),
        1 => Just(Duration::MAX),
    ]
}

/// A failure (`true`) or a success (`false`).
fn events() -> impl Strategy<Value = Vec<bool>> {
    proptest::collection::vec(prop_oneof![4 => Just(true), 1 => Just(false)], 0..80)
}

proptest! {
    /// Between two successes the delays never shrink, never pass the cap (or the start when
    /// the cap lies below it), start at `initial` and reach the cap eventually.
    #[test]
    fn monotone_capped_and_restarted_by_a_success(initial in delay(), max in delay(), evs in events()) {
        let mut b = Backoff::new(initial, max);
        let cap = max.max(initial);
        let mut last: Option<Duration> = None;
        for failed in evs {
            if failed {
                let d = b.next_delay();
                prop_assert!(d <= cap, "{d:?} above the cap {cap:?}");
                match last {
                    None => prop_assert_eq!(d, initial),
                    Some(prev) => prop_assert!(d >= prev, "{d:?} shorter than {prev:?}"),
                }
                last = Some(d);
            } else {
                b.reset();
                last = None;
            }
        }
    }

    /// Enough failures in a row always reach the cap.
    #[test]
    fn reaches_the_cap(initial in delay(), max in delay()) {
        let mut b = Backoff::new(initial, max);
        let mut d = Duration::ZERO;
        for _ in 0..200 {
            d = b.next_delay();
        }
        prop_assert_eq!(d, max.max(initial));
    }

    /// A jittered delay lies in `[plain * (1 - jitter), plain]`: jitter only shortens.
    #[test]
    fn jitter_stays_within_its_bounds(
        initial in delay(), max in delay(), failures in 0usize..40,
        jitter in prop_oneof![Just(0.0), Just(1.0), 0.0f64..=1.0, Just(f64::NAN), Just(2.0)],
        unit in 0.0f64..1.0,
    ) {
        let mut plain = Backoff::new(initial, max);
        let mut jittered = plain;
        for _ in 0..failures {
            plain.next_delay();
            jittered.next_delay();
        }
        let base = plain.next_delay();
        let got = jittered.next_jittered(jitter, unit);
        prop_assert!(got <= base, "{got:?} longer than {base:?}");
        let j = if jitter.is_nan() { 0.0 } else { jitter.clamp(0.0, 1.0) };
        let floor = base.as_secs_f64() * (1.0 - j * unit);
        // f64 rounding of durations above 2^53 ns: allow one part in 2^40.
        prop_assert!(got.as_secs_f64() >= floor * (1.0 - 1e-12) - 1e-9, "{got:?} below {floor}");
        prop_assert_eq!(jittered.failures(), plain.failures());
    }
}
