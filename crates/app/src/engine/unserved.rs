//! Queued work nobody can take. The engine keeps tasks of a type no live executor
//! handles until one registers or comes back (as job queues do for workers that start later); without a
//! word about it, such tasks just look stuck. The sweep notes each such type once per
//! episode in the log and keeps a gauge of how many there are.

use std::collections::BTreeSet;

use super::record::Phase;
use super::state::Inner;

impl Inner {
    /// Recomputes the set of node types with queued tasks and no live executor that
    /// handles them; warns about each type that joined the set since the last sweep.
    pub(super) fn note_unserved(&mut self) {
        let mut now: BTreeSet<String> = BTreeSet::new();
        for (node_type, queue) in &self.queues {
            if queue.tasks.is_empty()
                || self
                    .executors
                    .iter()
                    .flatten()
                    .any(|e| e.alive && !e.restored && e.handles(node_type))
            {
                continue;
            }
            // The queue may hold entries of tasks that already moved on; only real ones
            // count. Under the engine's lock, so the full count is taken only to warn.
            let is_waiting = |slot: &usize| {
                let rec = &self.records[*slot];
                matches!(rec.phase, Phase::Queued) && rec.task.node_type == *node_type
            };
            if !queue.tasks.iter().any(is_waiting) {
                continue;
            }
            if !self.unserved.contains(node_type) {
                let waiting = queue.tasks.iter().filter(|s| is_waiting(s)).count();
                log::warn!(
                    target: "gamelan.engine",
                    "{waiting} task(s) of type '{node_type}' are queued and no live executor handles that type; they wait until one registers or comes back"
                );
            }
            now.insert(node_type.clone());
        }
        for gone in self.unserved.difference(&now) {
            log::info!(target: "gamelan.engine", "type '{gone}' is served again or has nothing queued");
        }
        self.unserved = now;
    }
}
