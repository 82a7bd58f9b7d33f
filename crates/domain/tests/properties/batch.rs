//! `Batcher`/`BatchPolicy`: nothing lost or duplicated, size and age flushes on time.

use std::time::{Duration, Instant};

use gamelan_domain::{BatchPolicy, Batcher};
use proptest::prelude::*;

#[derive(Debug, Clone, Copy)]
enum Op {
    /// Advance the clock by this many microseconds, then act.
    Push(u64),
    Poll(u64),
    Take(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let step = prop_oneof![3 => 0u64..2_000, 1 => 0u64..30_000];
    prop_oneof![
        6 => step.clone().prop_map(Op::Push),
        3 => step.clone().prop_map(Op::Poll),
        1 => step.prop_map(Op::Take),
    ]
}

fn policy() -> impl Strategy<Value = BatchPolicy> {
    (0usize..12, 0u64..20_000).prop_map(|(max_size, age)| BatchPolicy {
        max_size,
        max_age: Duration::from_micros(age),
    })
}

/// The reference: a queue, the time its oldest item arrived, and the two flush rules.
struct Model {
    policy: BatchPolicy,
    items: Vec<u32>,
    oldest_us: Option<u64>,
}

impl Model {
    fn due(&self, now_us: u64) -> bool {
        let age_us = self.policy.max_age.as_micros() as u64;
        !self.items.is_empty()
            && (self.items.len() >= self.policy.max_size.max(1)
                || self.oldest_us.is_some_and(|t| now_us - t >= age_us))
    }

    fn drain(&mut self) -> Vec<u32> {
        self.oldest_us = None;
        std::mem::take(&mut self.items)
    }

    fn push(&mut self, item: u32, now_us: u64) -> Option<Vec<u32>> {
        if self.items.is_empty() {
            self.oldest_us = Some(now_us);
        }
        self.items.push(item);
        self.poll(now_us)
    }

    fn poll(&mut self, now_us: u64) -> Option<Vec<u32>> {
        self.due(now_us).then(|| self.drain())
    }
}

proptest! {
    #[test]
    fn batcher_matches_the_flush_rules_and_loses_nothing(
        policy in policy(),
        ops in prop::collection::vec(op(), 0..300),
    ) {
        let t0 = Instant::now();
        let at = |us: u64| t0 + Duration::from_micros(us);
        let limit = policy.max_size.max(1);
        let mut batcher = Batcher::new(policy);
        let mut model = Model { policy, items: Vec::new(), oldest_us: None };
        let mut now_us = 0u64;
        let mut next_item = 0u32;
        let mut delivered: Vec<u32> = Vec::new();
        for op in ops {
            let (got, expected) = match op {
                Op::Push(dt) => {
                    now_us += dt;
                    let item = next_item;
                    next_item += 1;
                    (batcher.push(item, at(now_us)), model.push(item, now_us))
                }
                Op::Poll(dt) => {
                    now_us += dt;
                    (batcher.poll(at(now_us)), model.poll(now_us))
                }
                Op::Take(dt) => {
                    now_us += dt;
                    (Some(batcher.take()), Some(model.drain()))
                }
            };
            prop_assert_eq!(&got, &expected, "{:?} at {}us", op, now_us);
            if let Some(batch) = got {
                prop_assert!(batch.len() <= limit, "batch of {} over {}", batch.len(), limit);
                if !matches!(op, Op::Take(_)) {
                    prop_assert!(!batch.is_empty(), "policy flushed an empty batch");
                }
                delivered.extend(batch);
            }
            prop_assert_eq!(batcher.len(), model.items.len());
            prop_assert_eq!(batcher.is_empty(), model.items.is_empty());
            prop_assert_eq!(batcher.deadline(), model.oldest_us.map(|t| at(t) + policy.max_age));
            // Between operations nothing is held that the policy says should have gone.
            prop_assert!(batcher.len() < limit);
        }
        delivered.extend(batcher.take());
        prop_assert_eq!(delivered, (0..next_item).collect::<Vec<_>>(), "items lost, duplicated or reordered");
    }

    /// Poll hands the batch over at exactly `oldest + max_age`, not a microsecond earlier.
    #[test]
    fn poll_flushes_exactly_at_max_age(
        max_age_us in 1u64..50_000,
        pushes in prop::collection::vec(0u64..5_000, 1..10),
    ) {
        let t0 = Instant::now();
        let policy = BatchPolicy { max_size: usize::MAX, max_age: Duration::from_micros(max_age_us) };
        let mut batcher = Batcher::new(policy);
        let mut now = t0;
        let mut pushed = 0usize;
        // The first push opens the batch at t0; later ones land before it falls due.
        for dt in pushes {
            if now.duration_since(t0) >= policy.max_age {
                break;
            }
            prop_assert!(batcher.push(pushed, now).is_none());
            pushed += 1;
            now += Duration::from_micros(dt);
        }
        let due = t0 + policy.max_age;
        prop_assert_eq!(batcher.deadline(), Some(due));
        let just_before = due.checked_sub(Duration::from_nanos(1)).unwrap_or(t0);
        prop_assert!(batcher.poll(just_before).is_none());
        let batch = batcher.poll(due);
        prop_assert_eq!(batch, Some((0..pushed).collect::<Vec<_>>()));
        prop_assert!(batcher.poll(due + policy.max_age).is_none());
    }

    /// `should_flush` on its own: by size at once, by age at the boundary, never when empty.
    #[test]
    fn policy_decides_by_size_or_age(
        max_size in 0usize..20,
        max_age_us in 0u64..10_000,
        len in 0usize..25,
        age_us in 0u64..20_000,
    ) {
        let t0 = Instant::now();
        let policy = BatchPolicy { max_size, max_age: Duration::from_micros(max_age_us) };
        let now = t0 + Duration::from_micros(age_us);
        let expected = len > 0 && (len >= max_size.max(1) || age_us >= max_age_us);
        prop_assert_eq!(policy.should_flush(len, Some(t0), now), expected);
        prop_assert_eq!(policy.should_flush(len, None, now), len > 0 && len >= max_size.max(1));
    }
}
