//! Engine-side result intake: each (task, attempt) is applied exactly once.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// The engine's answer to one reported result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Acceptance {
    /// First result for the current attempt: applied.
    Accept,
    /// The same attempt was already applied; the repeat is ignored (at-least-once delivery).
    AlreadyProcessed,
    /// A newer attempt exists; this result is ignored.
    Stale,
}

impl Acceptance {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accept => "ACCEPT",
            Self::AlreadyProcessed => "ALREADY_PROCESSED",
            Self::Stale => "STALE",
        }
    }

    /// Whether the executor may forget the result: every answer is final.
    pub fn is_final(self) -> bool {
        true
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    #[error("no task was dispatched for run '{run_id}' node '{node_id}'")]
    UnknownTask { run_id: String, node_id: String },
    #[error("attempt {reported} is newer than the dispatched attempt {current}")]
    FutureAttempt { reported: u32, current: u32 },
    #[error("execution token does not match the dispatched attempt {attempt}")]
    TokenMismatch { attempt: u32 },
}

#[derive(Debug, Clone)]
struct Slot {
    attempt: u32,
    token: String,
    processed: bool,
}

/// Tracks, per (run, node), the attempt currently dispatched and whether its result arrived.
///
/// Keyed run first, then node, so that every lookup borrows the caller's `&str` and only
/// the first dispatch of a task allocates its keys: reports arrive once per task on the
/// engine's hot path.
#[derive(Debug, Clone, Default)]
pub struct ResultIntake {
    runs: HashMap<String, HashMap<String, Slot>>,
    len: usize,
}

impl ResultIntake {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `attempt` (with `token`) was dispatched; it supersedes older attempts.
    ///
    /// Dispatching the current attempt again (a redelivery) replaces its token but keeps a
    /// result already applied as applied: the engine de-duplicates by (task, attempt), so a
    /// second result for the same attempt must never be accepted. A late dispatch of an
    /// older attempt changes nothing.
    pub fn dispatched(&mut self, run_id: &str, node_id: &str, attempt: u32, token: &str) {
        let Some(slot) = self.slot_mut(run_id, node_id) else {
            let slot = Slot {
                attempt,
                token: token.to_owned(),
                processed: false,
            };
            if let Some(nodes) = self.runs.get_mut(run_id) {
                nodes.insert(node_id.to_owned(), slot);
            } else {
                self.runs.insert(
                    run_id.to_owned(),
                    HashMap::from([(node_id.to_owned(), slot)]),
                );
            }
            self.len += 1;
            return;
        };
        if attempt > slot.attempt {
            slot.attempt = attempt;
            slot.processed = false;
        }
        if attempt == slot.attempt && slot.token != token {
            token.clone_into(&mut slot.token);
        }
    }

    /// Decides what to do with a reported result. An empty `token` is accepted when the
    /// dispatched token is empty too (engines that do not issue tokens).
    pub fn report(
        &mut self,
        run_id: &str,
        node_id: &str,
        attempt: u32,
        token: &str,
    ) -> Result<Acceptance, IntakeError> {
        let slot = self
            .slot_mut(run_id, node_id)
            .ok_or_else(|| IntakeError::UnknownTask {
                run_id: run_id.to_owned(),
                node_id: node_id.to_owned(),
            })?;
        if attempt < slot.attempt {
            return Ok(Acceptance::Stale);
        }
        if attempt > slot.attempt {
            return Err(IntakeError::FutureAttempt {
                reported: attempt,
                current: slot.attempt,
            });
        }
        if slot.token != token {
            return Err(IntakeError::TokenMismatch { attempt });
        }
        if slot.processed {
            return Ok(Acceptance::AlreadyProcessed);
        }
        slot.processed = true;
        Ok(Acceptance::Accept)
    }

    /// Drops what is known of a (run, node), when the engine stops keeping the task. A
    /// result arriving afterwards is [`IntakeError::UnknownTask`]. Returns whether it was
    /// known.
    pub fn forget(&mut self, run_id: &str, node_id: &str) -> bool {
        let Some(nodes) = self.runs.get_mut(run_id) else {
            return false;
        };
        if nodes.remove(node_id).is_none() {
            return false;
        }
        if nodes.is_empty() {
            self.runs.remove(run_id);
        }
        self.len -= 1;
        true
    }

    /// Current attempt of a (run, node), if any was dispatched.
    pub fn current_attempt(&self, run_id: &str, node_id: &str) -> Option<u32> {
        self.runs.get(run_id)?.get(node_id).map(|s| s.attempt)
    }

    /// Number of tasks (run, node) dispatched and not forgotten.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn slot_mut(&mut self, run_id: &str, node_id: &str) -> Option<&mut Slot> {
        self.runs.get_mut(run_id)?.get_mut(node_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgotten_tasks_are_unknown_and_leave_no_entry() {
        let mut i = ResultIntake::new();
        i.dispatched("r", "a", 1, "t");
        i.dispatched("r", "b", 1, "t");
        assert_eq!(i.report("r", "a", 1, "t"), Ok(Acceptance::Accept));
        assert!(i.forget("r", "a"));
        assert!(!i.forget("r", "a"), "forgetting twice finds nothing");
        assert_eq!(i.len(), 1);
        assert!(matches!(
            i.report("r", "a", 1, "t"),
            Err(IntakeError::UnknownTask { .. })
        ));
        assert!(i.forget("r", "b"));
        assert!(i.is_empty());
        assert!(i.runs.is_empty(), "an emptied run is dropped too");
    }

    #[test]
    fn accept_once_then_repeat_then_stale() {
        let mut i = ResultIntake::new();
        i.dispatched("r", "n", 1, "t1");
        assert_eq!(i.report("r", "n", 1, "t1"), Ok(Acceptance::Accept));
        assert_eq!(
            i.report("r", "n", 1, "t1"),
            Ok(Acceptance::AlreadyProcessed)
        );
        i.dispatched("r", "n", 2, "t2");
        assert_eq!(i.report("r", "n", 1, "t1"), Ok(Acceptance::Stale));
        assert_eq!(
            i.report("r", "n", 2, "bad"),
            Err(IntakeError::TokenMismatch { attempt: 2 })
        );
        assert_eq!(
            i.report("r", "n", 3, "t2"),
            Err(IntakeError::FutureAttempt {
                reported: 3,
                current: 2
            })
        );
        assert!(matches!(
            i.report("x", "n", 1, ""),
            Err(IntakeError::UnknownTask { .. })
        ));
        assert_eq!(i.report("r", "n", 2, "t2"), Ok(Acceptance::Accept));
    }

    #[test]
    fn redelivered_dispatch_does_not_reopen_an_applied_attempt() {
        let mut i = ResultIntake::new();
        i.dispatched("r", "n", 2, "t2");
        assert_eq!(i.report("r", "n", 2, "t2"), Ok(Acceptance::Accept));
        i.dispatched("r", "n", 2, "t2-again");
        assert_eq!(
            i.report("r", "n", 2, "t2-again"),
            Ok(Acceptance::AlreadyProcessed)
        );
        assert_eq!(
            i.report("r", "n", 2, "t2"),
            Err(IntakeError::TokenMismatch { attempt: 2 })
        );
        i.dispatched("r", "n", 1, "t1");
        assert_eq!(i.current_attempt("r", "n"), Some(2));
    }
}
