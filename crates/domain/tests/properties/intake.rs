//! `ResultIntake`: each (task, attempt) accepted at most once under at-least-once delivery.

use std::collections::{HashMap, HashSet};

use gamelan_domain::{Acceptance, IntakeError, ResultIntake};
use proptest::prelude::*;

const RUNS: [&str; 2] = ["run-1", "run:with:colons"];
const NODES: [&str; 2] = ["a", "b"];

#[derive(Debug, Clone, Copy)]
enum Op {
    /// The engine (re)dispatches `attempt` of task `task` with token variant `token`.
    Dispatch {
        task: usize,
        attempt: u32,
        token: u8,
    },
    /// An executor reports `attempt` of `task` with token variant `token`.
    Report {
        task: usize,
        attempt: u32,
        token: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let fields = (0usize..4, 1u32..6, 0u8..3);
    prop_oneof![
        1 => fields.clone().prop_map(|(task, attempt, token)| Op::Dispatch { task, attempt, token }),
        3 => fields.prop_map(|(task, attempt, token)| Op::Report { task, attempt, token }),
    ]
}

fn key(task: usize) -> (&'static str, &'static str) {
    (RUNS[task % 2], NODES[task / 2 % 2])
}

fn token(task: usize, attempt: u32, variant: u8) -> String {
    format!("token-{task}-{attempt}-{variant}")
}

/// What the engine knows about one task: the newest dispatched attempt, its token and
/// whether its result was applied.
#[derive(Debug, Clone)]
struct Slot {
    attempt: u32,
    token: String,
    applied: bool,
}

proptest! {
    #[test]
    fn intake_matches_the_reference(ops in prop::collection::vec(op(), 0..300)) {
        let mut intake = ResultIntake::new();
        let mut model: HashMap<usize, Slot> = HashMap::new();
        let mut accepted: HashSet<(usize, u32)> = HashSet::new();
        for op in ops {
            match op {
                Op::Dispatch { task, attempt, token: variant } => {
                    let (run, node) = key(task);
                    let token = token(task, attempt, variant);
                    intake.dispatched(run, node, attempt, &token);
                    match model.get_mut(&task) {
                        // Older dispatches arriving late change nothing.
                        Some(slot) if attempt < slot.attempt => {}
                        // Redelivery of the current attempt: the new token rules, but a result
                        // already applied stays applied.
                        Some(slot) if attempt == slot.attempt => slot.token = token,
                        _ => {
                            model.insert(task, Slot { attempt, token, applied: false });
                        }
                    }
                }
                Op::Report { task, attempt, token: variant } => {
                    let (run, node) = key(task);
                    let token = token(task, attempt, variant);
                    let got = intake.report(run, node, attempt, &token);
                    let expected = match model.get_mut(&task) {
                        None => Err(IntakeError::UnknownTask { run_id: run.into(), node_id: node.into() }),
                        Some(slot) if attempt < slot.attempt => Ok(Acceptance::Stale),
                        Some(slot) if attempt > slot.attempt => Err(IntakeError::FutureAttempt {
                            reported: attempt,
                            current: slot.attempt,
                        }),
                        Some(slot) if slot.token != token => Err(IntakeError::TokenMismatch { attempt }),
                        Some(slot) if slot.applied => Ok(Acceptance::AlreadyProcessed),
                        Some(slot) => {
                            slot.applied = true;
                            Ok(Acceptance::Accept)
                        }
                    };
                    prop_assert_eq!(&got, &expected, "{:?}", op);
                    if got == Ok(Acceptance::Accept) {
                        prop_assert!(accepted.insert((task, attempt)), "{:?} accepted twice", (task, attempt));
                    }
                }
            }
            for task in 0..4 {
                let (run, node) = key(task);
                prop_assert_eq!(intake.current_attempt(run, node), model.get(&task).map(|s| s.attempt));
            }
            prop_assert_eq!(intake.len(), model.len());
        }
    }

    /// Without consulting a model: redelivered dispatches and reports, in any order, never
    /// let the same (task, attempt) through twice, and a result repeated right after its
    /// acceptance is a repeat.
    #[test]
    fn each_attempt_is_accepted_at_most_once(ops in prop::collection::vec(op(), 0..300)) {
        let mut intake = ResultIntake::new();
        let mut accepted: HashSet<(usize, u32)> = HashSet::new();
        let mut newest: HashMap<usize, u32> = HashMap::new();
        for op in ops {
            match op {
                Op::Dispatch { task, attempt, token: variant } => {
                    let (run, node) = key(task);
                    intake.dispatched(run, node, attempt, &token(task, attempt, variant));
                    let n = newest.entry(task).or_insert(attempt);
                    *n = (*n).max(attempt);
                }
                Op::Report { task, attempt, token: variant } => {
                    let (run, node) = key(task);
                    let token = token(task, attempt, variant);
                    let got = intake.report(run, node, attempt, &token);
                    if newest.get(&task).is_some_and(|&n| attempt < n) {
                        prop_assert_eq!(&got, &Ok(Acceptance::Stale));
                    }
                    if got == Ok(Acceptance::Accept) {
                        prop_assert!(accepted.insert((task, attempt)), "{:?} accepted twice", (task, attempt));
                        prop_assert_eq!(intake.report(run, node, attempt, &token), Ok(Acceptance::AlreadyProcessed));
                        prop_assert_eq!(
                            intake.report(run, node, attempt, "forged"),
                            Err(IntakeError::TokenMismatch { attempt })
                        );
                    }
                }
            }
        }
    }
}
