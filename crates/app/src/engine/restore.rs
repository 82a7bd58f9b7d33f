//! Rebuilding the state from the store after a restart.
//!
//! A restart is not an attempt. An unfinished task whose current attempt was never
//! delivered is queued again with that attempt. One whose current attempt was delivered
//! (the store has the delivery, committed before the task left) stays assigned to that
//! executor: a stand-in entry holds it until the executor registers again and reports, or
//! its heartbeat timeout or the task's ack timeout passes; only then is the task taken back
//! as a new attempt. So a task's attempt always counts the deliveries that could have run it.

use std::sync::Arc;
use std::time::Instant;

use gamelan_domain::TaskId;
use gamelan_ports::TaskState;

use super::executors::ExecutorEntry;
use super::record::{Assignment, Phase, TaskRecord, Via};
use super::state::Inner;
use super::store::Loaded;

/// What a restore found, for the start-up log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Restored {
    pub finished: usize,
    /// Never delivered at their current attempt: queued again with it.
    pub requeued: usize,
    /// Delivered before the restart: waiting for their executor's result.
    pub awaiting: usize,
}

impl Inner {
    /// Finished tasks come back finished (their result de-duplicates a resend: it is
    /// ALREADY_PROCESSED). Unfinished ones keep their attempt: queued when it was never
    /// delivered, else assigned to the executor it went to (see the module docs), whose
    /// result for that attempt is then accepted.
    pub(super) fn restore(&mut self, mut loaded: Loaded, now: Instant, now_ms: u64) -> Restored {
        let mut restored = Restored::default();
        loaded.tasks.sort_unstable_by_key(|(key, _)| *key);
        let mut feed: Vec<(u64, usize)> = Vec::new();
        for (db_key, stored) in loaded.tasks {
            self.next_db_key = self.next_db_key.max(db_key + 1);
            let key = Self::key_of(&stored.task);
            if self.index.contains_key(&key) {
                log::warn!(target: "gamelan.engine", "duplicate stored task {key} ignored");
                continue;
            }
            let mut task = stored.task;
            let outcome = loaded.outcomes.remove(&db_key);
            if let Some(o) = &outcome {
                task.attempt = o.attempt;
                task.execution_token.clone_from(&o.execution_token);
                task.task_id =
                    TaskId::new(task.run_id.as_str(), task.node_id.as_str(), o.attempt).to_string();
                task.context.clear();
                task.configuration.clear();
            }
            let slot = self.place(TaskRecord {
                task: Arc::new(task),
                db_key,
                phase: Phase::Queued,
                retries: stored.retries,
                max_retries: stored.max_retries,
                executor: None,
                output: None,
                error: None,
                submitted_at_ms: stored.submitted_at_ms,
                completed_at_ms: None,
                final_write: 0,
            });
            self.index.insert(key, slot);
            self.metrics.submitted.inc();
            let rec = &mut self.records[slot];
            if let Some(o) = outcome {
                let t = &rec.task;
                self.intake
                    .dispatched(&t.run_id, &t.node_id, t.attempt, &t.execution_token);
                // Marks the attempt processed, so a resent result is ALREADY_PROCESSED.
                let _ = self
                    .intake
                    .report(&t.run_id, &t.node_id, t.attempt, &t.execution_token);
                rec.phase = if o.status == TaskState::Completed {
                    self.metrics.completed.inc();
                    Phase::Completed
                } else {
                    self.metrics.failed.inc();
                    Phase::Failed
                };
                rec.executor = o.executor_id.map(Arc::from);
                rec.output = o.output;
                rec.error = o.error;
                rec.completed_at_ms = Some(o.completed_at_ms);
                feed.push((o.seq, slot));
                restored.finished += 1;
            } else {
                let t = &rec.task;
                self.intake
                    .dispatched(&t.run_id, &t.node_id, t.attempt, &t.execution_token);
                let delivered = loaded
                    .deliveries
                    .remove(&db_key)
                    .filter(|d| d.attempt == t.attempt && d.execution_token == t.execution_token);
                if let Some(d) = delivered {
                    let node_type = t.node_type.clone();
                    let exec = self.restored_executor(&d.executor_id, &node_type, now, now_ms);
                    let id = self.exec_mut(exec).map(|e| {
                        e.in_flight.insert(slot);
                        Arc::clone(&e.id)
                    });
                    let rec = &mut self.records[slot];
                    rec.executor = id;
                    rec.phase = Phase::Assigned(Assignment {
                        exec,
                        via: Via::Polled,
                        since: now,
                    });
                    self.in_flight += 1;
                    restored.awaiting += 1;
                } else {
                    self.queued += 1;
                    self.enqueue(slot, false);
                    restored.requeued += 1;
                }
            }
        }
        feed.sort_unstable();
        // Retention forgets oldest first, so the stored results are a contiguous tail of
        // the feed: numbering resumes where it stood (after the last forgotten one when none
        // is kept).
        self.feed_base = feed
            .first()
            .map_or(loaded.forgotten, |&(seq, _)| seq.saturating_sub(1));
        self.feed = feed.into_iter().map(|(_, slot)| slot).collect();
        restored
    }

    /// The slot of the stand-in for `executor_id`, created on first use and watched by the
    /// liveness tracker from now on.
    fn restored_executor(
        &mut self,
        executor_id: &str,
        node_type: &str,
        now: Instant,
        now_ms: u64,
    ) -> usize {
        if let Some(&slot) = self.executor_index.get(executor_id) {
            return slot;
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        let entry = ExecutorEntry::restored(executor_id, node_type, generation, now_ms);
        self.executors.push(Some(entry));
        let slot = self.executors.len() - 1;
        self.executor_index.insert(executor_id.to_owned(), slot);
        self.liveness.heartbeat(slot, now);
        slot
    }
}
