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
    /// heartbeat, poll, requeue). Each stream delivery is written to the store; the caller
    /// waits for that commit before handing the task to its sink.
    pub(super) fn pump_all(&mut self, now: Instant, fx: &mut Effects) {
        if self.queued == 0 {
            return;
        }
        let first = fx.deliveries.len();
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
        if self.store.is_some() {
            for i in first..fx.deliveries.len() {
                let (record, exec) = (fx.deliveries[i].record, fx.deliveries[i].exec);
                self.write_delivery(record, exec);
            }
        }
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
        let rec = &records[slot];
        if !matches!(rec.phase, Phase::Queued) || rec.task.node_type != node_type {
            // Left behind by a task that finished or moved while queued (its slot may
            // since hold another task, possibly of another type).
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
            fx.wake(&e.waiters);
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use gamelan_domain::{ExecutorMetadata, RetryPolicy, Task};
    use gamelan_ports::{Registration, TaskSink};

    use super::*;
    use crate::engine::executors::{ExecutorEntry, StreamSlot};
    use crate::engine::ids::IdGen;
    use crate::engine::metrics::EngineMetrics;

    struct Nop;
    impl TaskSink for Nop {
        fn deliver(&self, _: Arc<Task>) -> bool {
            true
        }
        fn cancel(&self, _: &str, _: &str) -> bool {
            true
        }
    }

    fn inner() -> Inner {
        Inner::new(
            Duration::from_secs(10),
            Duration::from_secs(30),
            RetryPolicy::default(),
            Arc::new(IdGen::new()),
            Arc::new(EngineMetrics::new()),
        )
    }

    fn executor(inner: &mut Inner, id: &str, node_type: &str, max: u32, stream: u32) -> usize {
        let registration = Registration {
            executor_id: id.into(),
            metadata: ExecutorMetadata::new(node_type).max_concurrent_tasks(max),
            endpoint: String::new(),
            attributes: BTreeMap::new(),
        };
        let mut e = ExecutorEntry::new(registration, 1, 0);
        e.streams.push(StreamSlot {
            id: inner.executors.len() as u64 + 1,
            max_in_flight: stream,
            in_flight: 0,
            sink: Arc::new(Nop),
        });
        inner.executors.push(Some(e));
        inner.executors.len() - 1
    }

    fn submit(inner: &mut Inner, n: usize, node_type: &str) {
        for i in 0..n {
            let mut task = Task::new(format!("r{node_type}{i}"), "n", node_type, 1);
            task.execution_token = format!("t{i}");
            let key = Inner::key_of(&task);
            inner.insert(key, Arc::new(task), 0, 0, None);
        }
    }

    #[test]
    fn pump_fills_each_executor_to_its_room_and_keeps_the_counters() {
        let mut inner = inner();
        let a = executor(&mut inner, "a", "x", 2, 10);
        let b = executor(&mut inner, "b", "x", 10, 3);
        let c = executor(&mut inner, "c", "y", 10, 10);
        submit(&mut inner, 8, "x");
        let mut fx = Effects::default();
        inner.pump_all(Instant::now(), &mut fx);
        assert_eq!(fx.deliveries.len(), 5);
        let to = |slot: usize| fx.deliveries.iter().filter(|d| d.exec == slot).count();
        assert_eq!((to(a), to(b), to(c)), (2, 3, 0));
        assert_eq!((inner.queued, inner.in_flight), (3, 5));
        for d in &fx.deliveries {
            assert!(matches!(
                inner.records[d.record].phase,
                Phase::Assigned(x) if x.exec == d.exec && x.via == Via::Stream(d.stream)
            ));
        }

        // A requeued delivery is first in line and comes back as a new attempt.
        let first = fx.deliveries[0].record;
        inner.requeue(first);
        assert_eq!((inner.queued, inner.in_flight), (4, 4));
        assert_eq!(inner.records[first].task.attempt, 2);
        let mut fx = Effects::default();
        inner.pump_all(Instant::now(), &mut fx);
        assert_eq!(fx.deliveries.len(), 1);
        assert_eq!(fx.deliveries[0].record, first);
    }
}
