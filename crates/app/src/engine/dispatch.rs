//! Dispatch: from the per-type queues to executors with room, chosen by the domain
//! balancer.

use std::sync::Arc;
use std::time::Instant;

use gamelan_domain::Candidate;

use super::executors::ExecutorEntry;
use super::record::{Assignment, Phase, TaskRecord, Via};
use super::state::{Delivery, Effects, Inner, TypeQueue};

impl Inner {
    /// Dispatches every queued task that an alive executor has room for. Called after each
    /// change that can create room or work (submission, result, new executor or stream,
    /// heartbeat, poll, requeue).
    pub(super) fn pump_all(&mut self, now: Instant, fx: &mut Effects) {
        if self.queued == 0 {
            return;
        }
        let Self {
            queues,
            executors,
            records,
            ..
        } = self;
        let mut assigned = 0u64;
        let mut slots = Vec::new();
        let mut candidates = Vec::new();
        for (node_type, queue) in queues.iter_mut() {
            if queue.tasks.is_empty() {
                continue;
            }
            assigned += pump_queue(
                node_type,
                queue,
                executors,
                records,
                now,
                fx,
                &mut slots,
                &mut candidates,
            );
        }
        self.queued -= assigned;
        self.in_flight += assigned;
    }
}

#[allow(clippy::too_many_arguments)]
fn pump_queue(
    node_type: &str,
    queue: &mut TypeQueue,
    executors: &mut [Option<ExecutorEntry>],
    records: &mut [TaskRecord],
    now: Instant,
    fx: &mut Effects,
    slots: &mut Vec<usize>,
    candidates: &mut Vec<Candidate>,
) -> u64 {
    slots.clear();
    candidates.clear();
    for (i, e) in executors.iter().enumerate() {
        if let Some(e) = e
            && e.alive
            && e.handles(node_type)
        {
            let c = e.candidate();
            if c.in_flight < c.capacity {
                slots.push(i);
                candidates.push(c);
            }
        }
    }
    if slots.is_empty() {
        return 0;
    }
    let mut assigned = 0;
    while let Some(&slot) = queue.tasks.front() {
        if !matches!(records[slot].phase, Phase::Queued) {
            // Left behind by a task that finished or moved while queued.
            queue.tasks.pop_front();
            continue;
        }
        let Some(pick) = queue.balancer.choose(candidates) else {
            break;
        };
        queue.tasks.pop_front();
        let exec = slots[pick];
        let Some(e) = executors[exec].as_mut() else {
            break;
        };
        let rec = &mut records[slot];
        let via = if let Some(stream) = e.free_stream() {
            stream.in_flight += 1;
            fx.deliveries.push(Delivery {
                sink: Arc::clone(&stream.sink),
                task: Arc::clone(&rec.task),
                record: slot,
                exec,
                stream: stream.id,
            });
            Via::Stream(stream.id)
        } else {
            e.mailbox.push_back(slot);
            fx.wake(&e.wakeup);
            Via::Mailbox
        };
        e.in_flight.insert(slot);
        rec.phase = Phase::Assigned(Assignment {
            exec,
            via,
            since: now,
        });
        if rec.executor.as_ref() != Some(&e.id) {
            rec.executor = Some(Arc::clone(&e.id));
        }
        candidates[pick].in_flight += 1;
        assigned += 1;
    }
    assigned
}
