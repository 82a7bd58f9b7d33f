//! `LivenessTracker`: alive iff `now - last heartbeat <= timeout`.

use std::time::{Duration, Instant};

use gamelan_domain::LivenessTracker;
use proptest::prelude::*;

proptest! {
    #[test]
    fn alive_iff_the_last_heartbeat_is_recent_enough(
        timeout_us in prop_oneof![Just(0u64), 0u64..10_000_000],
        // (executor, time in us), in any order: heartbeats may be processed out of order.
        beats in prop::collection::vec((0u8..4, 0u64..30_000_000), 0..40),
        random_queries in prop::collection::vec(0u64..45_000_000, 1..20),
    ) {
        let t0 = Instant::now();
        let at = |us: u64| t0 + Duration::from_micros(us);
        let timeout = Duration::from_micros(timeout_us);
        let mut tracker = LivenessTracker::new(timeout);
        for &(key, us) in &beats {
            tracker.heartbeat(key, at(us));
        }
        // Query at random times and on both sides of every boundary, to the nanosecond.
        let mut queries: Vec<Instant> = random_queries.iter().map(|&us| at(us)).collect();
        for &(_, us) in &beats {
            let edge = at(us) + timeout;
            queries.extend([edge, edge + Duration::from_nanos(1), at(us)]);
        }
        for key in 0u8..5 {
            let last_us = beats.iter().filter(|(k, _)| *k == key).map(|&(_, us)| us).max();
            prop_assert_eq!(tracker.last_heartbeat(&key), last_us.map(at));
            for &now in &queries {
                // A heartbeat stamped after `now` counts as fresh (elapsed time is zero).
                let expected = last_us.is_some_and(|last| now <= at(last) + timeout);
                prop_assert_eq!(
                    tracker.is_alive(&key, now), expected,
                    "key {} last {:?}us now {:?} timeout {:?}", key, last_us, now - t0, timeout
                );
            }
        }
        for &now in &queries {
            let mut expired = tracker.expired(now);
            expired.sort_unstable();
            let dead: Vec<u8> = (0u8..4)
                .filter(|k| tracker.last_heartbeat(k).is_some() && !tracker.is_alive(k, now))
                .collect();
            prop_assert_eq!(expired, dead);
        }
    }
}
