//! Rebuilding the state from the store after a restart.

use std::sync::Arc;

use gamelan_domain::TaskId;
use gamelan_ports::TaskState;

use super::record::{Phase, TaskRecord};
use super::state::Inner;
use super::store::Loaded;

/// What a restore found, for the start-up log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Restored {
    pub finished: usize,
    pub requeued: usize,
}

impl Inner {
    /// Finished tasks come back finished (their result de-duplicates a resend: it is
    /// ALREADY_PROCESSED); unfinished ones are queued as a new attempt, so a result an
    /// executor still holds from before the restart is STALE and cannot be applied twice.
    pub(super) fn restore(&mut self, mut loaded: Loaded) -> Restored {
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
                self.new_attempt(slot);
                self.queued += 1;
                self.enqueue(slot, false);
                restored.requeued += 1;
            }
        }
        feed.sort_unstable();
        // Retention forgets oldest first, so the stored results are a contiguous tail of
        // the feed: numbering resumes where it stood.
        self.feed_base = feed.first().map_or(0, |&(seq, _)| seq.saturating_sub(1));
        self.feed = feed.into_iter().map(|(_, slot)| slot).collect();
        restored
    }
}
