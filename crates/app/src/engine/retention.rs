//! Retention: finished tasks are kept for a window (age and count), then forgotten in
//! memory and in the store, so a long-running engine does not grow without bound.
//!
//! Forgetting goes oldest first, along the completion feed, so what is kept is always a
//! contiguous tail of the feed and of the stored sequence numbers. A result resent for a
//! forgotten task is answered "unknown task"; a submission reusing a forgotten task's
//! run and node is a new task.

use super::record::{TaskRecord, index_key};
use super::state::Inner;
use super::store::WriteOp;

impl Inner {
    /// Forgets the oldest finished tasks beyond `max_retained`.
    pub(super) fn forget_over_limit(&mut self) {
        while self.feed.len() > self.max_retained.max(1) {
            self.forget_oldest();
        }
    }

    /// Forgets finished tasks whose result is older than `retention` at `now_ms`, then any
    /// beyond the count limit.
    pub(super) fn expire(&mut self, now_ms: u64) {
        let keep_ms = u64::try_from(self.retention.as_millis()).unwrap_or(u64::MAX);
        while let Some(&slot) = self.feed.front() {
            let done = self.records[slot].completed_at_ms.unwrap_or(0);
            if done.saturating_add(keep_ms) > now_ms {
                break;
            }
            self.forget_oldest();
        }
        self.forget_over_limit();
    }

    fn forget_oldest(&mut self) {
        let Some(slot) = self.feed.pop_front() else {
            return;
        };
        self.feed_base += 1;
        let vacant = TaskRecord::vacant(std::sync::Arc::clone(&self.placeholder));
        let rec = std::mem::replace(&mut self.records[slot], vacant);
        let task = &rec.task;
        let key = index_key(&task.run_id, &task.node_id);
        if self.index.get(&key) == Some(&slot) {
            self.index.remove(&key);
        }
        self.intake.forget(&task.run_id, &task.node_id);
        if self.store.is_some() {
            let seq = self.feed_base;
            self.write(WriteOp::Forget {
                key: rec.db_key,
                seq,
            });
        }
        self.free.push(slot);
        self.metrics.forgotten.inc();
    }
}
