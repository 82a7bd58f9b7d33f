//! `Balancer`: capacity, liveness, least-loaded choice and an even spread.

use gamelan_domain::{Balancer, Candidate};
use proptest::prelude::*;

fn candidate() -> impl Strategy<Value = Candidate> {
    (prop::bool::weighted(0.8), 0u32..8, 0u32..6).prop_map(|(alive, in_flight, capacity)| {
        Candidate {
            alive,
            in_flight,
            capacity,
        }
    })
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Assign,
    /// Completes one task on the candidate at this index (modulo the set's size).
    Complete(usize),
    /// Flips the liveness of the candidate at this index.
    Toggle(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => Just(Op::Assign),
        3 => any::<usize>().prop_map(Op::Complete),
        1 => any::<usize>().prop_map(Op::Toggle),
    ]
}

fn has_room(c: &Candidate) -> bool {
    c.alive && c.in_flight < c.capacity
}

/// `a` is at most as loaded as `b`, comparing `in_flight / capacity` exactly.
fn no_more_loaded(a: &Candidate, b: &Candidate) -> bool {
    u64::from(a.in_flight) * u64::from(b.capacity) <= u64::from(b.in_flight) * u64::from(a.capacity)
}

/// A balancer whose round-robin cursor was moved by earlier, unrelated choices.
fn used_balancer(warm_up: &[Vec<Candidate>]) -> Balancer {
    let mut balancer = Balancer::new();
    for set in warm_up {
        let _ = balancer.choose(set);
    }
    balancer
}

fn warm_up() -> impl Strategy<Value = Vec<Vec<Candidate>>> {
    prop::collection::vec(prop::collection::vec(candidate(), 0..6), 0..6)
}

proptest! {
    #[test]
    fn never_beyond_capacity_nor_to_the_dead(
        mut candidates in prop::collection::vec(candidate(), 0..10),
        ops in prop::collection::vec(op(), 0..200),
        warm_up in warm_up(),
    ) {
        let mut balancer = used_balancer(&warm_up);
        for op in ops {
            match op {
                Op::Assign => {
                    let choice = balancer.choose(&candidates);
                    let anyone_free = candidates.iter().any(has_room);
                    prop_assert_eq!(choice.is_some(), anyone_free, "{:?} from {:?}", choice, candidates);
                    if let Some(i) = choice {
                        let chosen = candidates[i];
                        prop_assert!(chosen.alive, "chose dead executor {}", i);
                        prop_assert!(chosen.in_flight < chosen.capacity, "executor {} is full", i);
                        for other in candidates.iter().filter(|c| has_room(c)) {
                            prop_assert!(no_more_loaded(&chosen, other), "{:?} chosen over {:?}", chosen, other);
                        }
                        candidates[i].in_flight += 1;
                    }
                }
                Op::Complete(i) if !candidates.is_empty() => {
                    let n = candidates.len();
                    let c = &mut candidates[i % n];
                    c.in_flight = c.in_flight.saturating_sub(1);
                }
                Op::Toggle(i) if !candidates.is_empty() => {
                    let n = candidates.len();
                    let c = &mut candidates[i % n];
                    c.alive = !c.alive;
                }
                Op::Complete(_) | Op::Toggle(_) => {}
            }
        }
    }

    #[test]
    fn equal_executors_share_load_evenly(
        (n, capacity, start, k) in (1usize..16, 1u32..20)
            .prop_flat_map(|(n, cap)| (Just(n), Just(cap), 0..cap))
            .prop_flat_map(|(n, cap, start)| (Just(n), Just(cap), Just(start), 0..=cap - start)),
        warm_up in warm_up(),
    ) {
        let mut balancer = used_balancer(&warm_up);
        let mut candidates = vec![Candidate { alive: true, in_flight: start, capacity }; n];
        for _ in 0..(k as usize * n) {
            let i = balancer.choose(&candidates);
            prop_assert!(i.is_some(), "no room with loads {:?}", candidates);
            if let Some(i) = i {
                candidates[i].in_flight += 1;
            }
        }
        for c in &candidates {
            prop_assert_eq!(c.in_flight, start + k, "loads {:?}", candidates);
        }
        if start + k == capacity {
            prop_assert_eq!(balancer.choose(&candidates), None);
        }
    }

    /// Ties rotate: with equal loads left unchanged, n choices visit all n executors.
    #[test]
    fn ties_are_served_round_robin(
        n in 1usize..16,
        in_flight in 0u32..5,
        warm_up in warm_up(),
    ) {
        let mut balancer = used_balancer(&warm_up);
        let candidates = vec![Candidate { alive: true, in_flight, capacity: 5 }; n];
        let mut picks: Vec<usize> = (0..n).filter_map(|_| balancer.choose(&candidates)).collect();
        picks.sort_unstable();
        picks.dedup();
        prop_assert_eq!(picks, (0..n).collect::<Vec<_>>());
    }
}
