//! The engine's state behind its one mutex, and the moves every operation is built from:
//! queueing, (un)assigning, new attempts, finishing.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use gamelan_domain::{
    Balancer, ErrorInfo, JsonObject, LivenessTracker, ResultIntake, RetryPolicy, Task,
};
use gamelan_ports::{EngineError, StreamId, TaskSink, TaskState};

use super::executors::ExecutorEntry;
use super::ids::IdGen;
use super::metrics::{EngineMetrics, GaugeSample};
use super::record::{Phase, TaskRecord, Via, index_key};
use super::store::{StoredDelivery, StoredOutcome, WriteOp, encode_task};

/// Tasks waiting for one node type, with that type's round-robin cursor.
#[derive(Debug, Default)]
pub(super) struct TypeQueue {
    pub tasks: VecDeque<usize>,
    pub balancer: Balancer,
}

/// A task to hand to a stream's sink once the lock is released.
pub(super) struct Delivery {
    pub sink: Arc<dyn TaskSink>,
    pub task: Arc<Task>,
    pub record: usize,
    pub exec: usize,
    pub stream: StreamId,
}

/// Work an operation leaves for after the lock: sink calls and wake-ups. Sinks are called
/// outside the lock so that a slow or re-entrant sink can never stall the engine.
#[derive(Default)]
pub(super) struct Effects {
    pub deliveries: Vec<Delivery>,
    pub wake: Vec<Arc<Condvar>>,
    pub finished: bool,
}

impl Effects {
    /// Wakes, after the lock, every long poll waiting for an executor.
    pub(super) fn wake(&mut self, waiters: &[Arc<Condvar>]) {
        for cv in waiters {
            if !self.wake.iter().any(|c| Arc::ptr_eq(c, cv)) {
                self.wake.push(Arc::clone(cv));
            }
        }
    }
}

pub(super) struct Inner {
    pub records: Vec<TaskRecord>,
    /// `run_id:node_id` -> record slot.
    pub index: HashMap<String, usize>,
    pub queues: HashMap<String, TypeQueue>,
    pub delayed: BinaryHeap<Reverse<(Instant, usize)>>,
    pub executors: Vec<Option<ExecutorEntry>>,
    pub executor_index: HashMap<String, usize>,
    pub liveness: LivenessTracker<usize>,
    pub intake: ResultIntake,
    /// Record slots of the retained finished tasks in completion order; sequence number =
    /// `feed_base` + position + 1.
    pub feed: VecDeque<usize>,
    /// Finished tasks forgotten so far (retention): the sequence number before the feed's
    /// first entry.
    pub feed_base: u64,
    /// Record slots freed by retention, reused by new tasks.
    pub free: Vec<usize>,
    /// What a freed slot holds meanwhile.
    pub placeholder: Arc<Task>,
    pub retention: Duration,
    pub max_retained: usize,
    pub queued: u64,
    pub delayed_count: u64,
    pub in_flight: u64,
    pub long_polls: usize,
    pub next_stream: StreamId,
    pub next_generation: u64,
    pub next_db_key: u64,
    pub store: Option<Sender<WriteOp>>,
    /// Bumped per queued write, so an operation knows whether it must wait for a commit.
    pub writes: u64,
    /// How many of those writes the store has committed (set by its writer thread).
    pub committed: Arc<AtomicU64>,
    pub shutting_down: bool,
    /// Node types with queued tasks and no live executor for them (as of the last sweep).
    pub unserved: std::collections::BTreeSet<String>,
    pub retry: RetryPolicy,
    pub ack_timeout: Duration,
    pub ids: Arc<IdGen>,
    pub metrics: Arc<EngineMetrics>,
}

impl Inner {
    pub(super) fn new(
        heartbeat_timeout: Duration,
        ack_timeout: Duration,
        retry: RetryPolicy,
        ids: Arc<IdGen>,
        metrics: Arc<EngineMetrics>,
    ) -> Self {
        Self {
            records: Vec::new(),
            index: HashMap::new(),
            queues: HashMap::new(),
            delayed: BinaryHeap::new(),
            executors: Vec::new(),
            executor_index: HashMap::new(),
            liveness: LivenessTracker::new(heartbeat_timeout),
            intake: ResultIntake::new(),
            feed: VecDeque::new(),
            feed_base: 0,
            free: Vec::new(),
            placeholder: Arc::new(Task::new("", "", "", 1)),
            retention: Duration::from_secs(3600),
            max_retained: 100_000,
            queued: 0,
            delayed_count: 0,
            in_flight: 0,
            long_polls: 0,
            next_stream: 1,
            next_generation: 1,
            next_db_key: 0,
            store: None,
            writes: 0,
            committed: Arc::new(AtomicU64::new(0)),
            shutting_down: false,
            unserved: std::collections::BTreeSet::new(),
            retry,
            ack_timeout,
            ids,
            metrics,
        }
    }

    // ---- storage -------------------------------------------------------------------

    pub(super) fn write(&mut self, op: WriteOp) {
        if let Some(store) = &self.store {
            // A send fails only once the writer is gone (shutdown); the barrier then
            // reports the loss to whoever waits.
            if store.send(op).is_ok() {
                self.writes += 1;
            }
        }
    }

    /// Stores a record's task; `bytes` when the caller encoded it already (outside the
    /// lock).
    fn write_task(&mut self, slot: usize, bytes: Option<Vec<u8>>) {
        if self.store.is_none() {
            return;
        }
        let rec = &self.records[slot];
        let bytes = bytes.unwrap_or_else(|| {
            encode_task(&rec.task, rec.retries, rec.max_retries, rec.submitted_at_ms)
        });
        let key = rec.db_key;
        self.write(WriteOp::Task { key, bytes });
    }

    /// How many writes are durable; everything when there is no store.
    pub(super) fn committed(&self) -> u64 {
        if self.store.is_some() {
            self.committed.load(Ordering::Acquire)
        } else {
            u64::MAX
        }
    }

    /// Records that the current attempt of a task goes to executor slot `exec`. Callers
    /// wait for the commit before the task leaves, so after a crash a task without a
    /// delivery of its current attempt is known never to have left.
    pub(super) fn write_delivery(&mut self, slot: usize, exec: usize) {
        if self.store.is_none() {
            return;
        }
        let Some(e) = self.exec(exec) else {
            return;
        };
        let rec = &self.records[slot];
        let op = WriteOp::Deliver {
            key: rec.db_key,
            delivery: StoredDelivery {
                executor_id: e.id.to_string(),
                attempt: rec.task.attempt,
                execution_token: rec.task.execution_token.clone(),
            },
        };
        self.write(op);
    }

    /// Queues a barrier after everything written so far; `None` when nothing needs waiting
    /// for (ephemeral engine, or no write since `writes_before`).
    pub(super) fn barrier(
        &mut self,
        writes_before: u64,
    ) -> Option<crossbeam_channel::Receiver<Result<(), String>>> {
        if self.writes == writes_before {
            return None;
        }
        let store = self.store.as_ref()?;
        let (tx, rx) = crossbeam_channel::bounded(1);
        store.send(WriteOp::Barrier(tx)).ok()?;
        Some(rx)
    }

    // ---- lookups -------------------------------------------------------------------

    /// Finds a task by any of its ids: `run:node:attempt` for any attempt (the attempt part
    /// is ignored, so the id returned by `submit` keeps working after retries), or
    /// `run:node`.
    pub(super) fn lookup(&self, task_id: &str) -> Option<usize> {
        if let Some((prefix, attempt)) = task_id.rsplit_once(':')
            && attempt.parse::<u32>().is_ok()
            && let Some(&slot) = self.index.get(prefix)
        {
            return Some(slot);
        }
        self.index.get(task_id).copied()
    }

    /// The slot of a registered executor. A stand-in restored from the store is unknown
    /// here, so the executor registers again.
    pub(super) fn executor_slot(&self, executor_id: &str) -> Result<usize, EngineError> {
        self.executor_index
            .get(executor_id)
            .copied()
            .filter(|&slot| self.exec(slot).is_some_and(|e| !e.restored))
            .ok_or_else(|| EngineError::UnknownExecutor(executor_id.to_owned()))
    }

    /// How many entries of the completion feed readers may see: those whose result is
    /// committed (the feed is in write order, so they are a prefix).
    pub(super) fn visible_feed(&self) -> usize {
        let committed = self.committed();
        if committed == u64::MAX {
            return self.feed.len();
        }
        self.feed
            .partition_point(|&slot| self.records[slot].settled(committed))
    }

    pub(super) fn exec(&self, slot: usize) -> Option<&ExecutorEntry> {
        self.executors.get(slot).and_then(Option::as_ref)
    }

    pub(super) fn exec_mut(&mut self, slot: usize) -> Option<&mut ExecutorEntry> {
        self.executors.get_mut(slot).and_then(Option::as_mut)
    }

    pub(super) fn gauges(&self) -> GaugeSample {
        GaugeSample {
            executors_alive: self.executors.iter().flatten().filter(|e| e.alive).count() as u64,
            pending: self.queued + self.delayed_count,
            in_flight: self.in_flight,
            retained: self.feed.len() as u64,
            types_unserved: self.unserved.len() as u64,
        }
    }

    // ---- task moves ----------------------------------------------------------------

    /// Adds a freshly accepted attempt-1 task and queues it; `encoded` is its stored form
    /// when the caller prepared it.
    pub(super) fn insert(
        &mut self,
        key: String,
        task: Arc<Task>,
        max_retries: u32,
        submitted_at_ms: u64,
        encoded: Option<Vec<u8>>,
    ) -> usize {
        self.intake.dispatched(
            &task.run_id,
            &task.node_id,
            task.attempt,
            &task.execution_token,
        );
        let db_key = self.next_db_key;
        self.next_db_key += 1;
        let slot = self.place(TaskRecord {
            task,
            db_key,
            phase: Phase::Queued,
            retries: 0,
            max_retries,
            executor: None,
            output: None,
            error: None,
            submitted_at_ms,
            completed_at_ms: None,
            final_write: 0,
        });
        self.index.insert(key, slot);
        self.write_task(slot, encoded);
        self.queued += 1;
        self.enqueue(slot, false);
        self.metrics.submitted.inc();
        slot
    }

    /// Stores a new record in a freed slot, else a new one; returns the slot.
    pub(super) fn place(&mut self, record: TaskRecord) -> usize {
        if let Some(slot) = self.free.pop() {
            self.records[slot] = record;
            slot
        } else {
            self.records.push(record);
            self.records.len() - 1
        }
    }

    /// Puts a record (already in phase `Queued`) into its node type's queue.
    pub(super) fn enqueue(&mut self, slot: usize, front: bool) {
        let node_type = &self.records[slot].task.node_type;
        let queue = if let Some(q) = self.queues.get_mut(node_type) {
            q
        } else {
            self.queues.entry(node_type.clone()).or_default()
        };
        if front {
            queue.tasks.push_front(slot);
        } else {
            queue.tasks.push_back(slot);
        }
    }

    /// Takes a record out of its current phase, fixing the counters and the executor's
    /// books; returns the executor slot it was assigned to, if any. Queue and delay-heap
    /// entries are left behind and skipped when met.
    pub(super) fn leave_phase(&mut self, slot: usize) -> Option<usize> {
        match self.records[slot].phase {
            Phase::Queued => {
                self.queued -= 1;
                None
            }
            Phase::Delayed(_) => {
                self.delayed_count -= 1;
                None
            }
            Phase::Assigned(a) => {
                self.in_flight -= 1;
                if let Some(e) = self.exec_mut(a.exec) {
                    e.in_flight.remove(&slot);
                    match a.via {
                        Via::Stream(id) => {
                            if let Some(s) = e.stream_mut(id) {
                                s.in_flight = s.in_flight.saturating_sub(1);
                            }
                        }
                        Via::Mailbox => e.mailbox.retain(|&k| k != slot),
                        Via::Polled => {}
                    }
                }
                Some(a.exec)
            }
            Phase::Completed | Phase::Failed => None,
        }
    }

    /// Gives the task a new attempt and token. The intake learns of it at once, so any
    /// late result of an older attempt is STALE from now on.
    pub(super) fn new_attempt(&mut self, slot: usize) {
        let token = self.ids.token();
        let rec = &mut self.records[slot];
        let attempt = rec.task.attempt.saturating_add(1);
        rec.set_attempt(attempt, token);
        let task = &rec.task;
        self.intake
            .dispatched(&task.run_id, &task.node_id, attempt, &task.execution_token);
        self.write_task(slot, None);
    }

    /// Takes an assigned task back and queues it first in line. A task that may have
    /// reached its executor gets a new attempt, so nothing is applied twice; one still in a
    /// poll mailbox (never handed out) keeps its attempt.
    pub(super) fn requeue(&mut self, slot: usize) {
        let Phase::Assigned(a) = self.records[slot].phase else {
            return;
        };
        self.leave_phase(slot);
        if a.via != Via::Mailbox {
            self.new_attempt(slot);
            self.metrics.redispatched.inc();
        }
        self.records[slot].phase = Phase::Queued;
        self.queued += 1;
        self.enqueue(slot, true);
    }

    /// Requeues everything assigned to an executor (death, unregistration).
    pub(super) fn requeue_executor(&mut self, exec: usize, fx: &mut Effects) {
        let Some(e) = self.exec_mut(exec) else {
            return;
        };
        let slots: Vec<usize> = e.in_flight.iter().copied().collect();
        fx.wake(&e.waiters);
        for slot in slots {
            self.requeue(slot);
        }
    }

    /// Closes one stream: tasks delivered on it without a result are requeued.
    pub(super) fn detach_stream(&mut self, exec: usize, stream: StreamId) -> bool {
        let Some(e) = self.exec_mut(exec) else {
            return false;
        };
        let Some(pos) = e.streams.iter().position(|s| s.id == stream) else {
            return false;
        };
        e.streams.swap_remove(pos);
        let on_stream: Vec<usize> = e.in_flight.iter().copied().collect();
        for slot in on_stream {
            if matches!(self.records[slot].phase, Phase::Assigned(a) if a.via == Via::Stream(stream))
            {
                self.requeue(slot);
            }
        }
        true
    }

    /// Records the final state of a task and appends it to the completion feed.
    pub(super) fn finish(
        &mut self,
        slot: usize,
        state: TaskState,
        output: Option<JsonObject>,
        error: Option<ErrorInfo>,
        now_ms: u64,
        fx: &mut Effects,
    ) {
        let rec = &mut self.records[slot];
        rec.phase = if state == TaskState::Completed {
            self.metrics.completed.inc();
            Phase::Completed
        } else {
            self.metrics.failed.inc();
            Phase::Failed
        };
        rec.output = output;
        rec.error = error;
        rec.completed_at_ms = Some(now_ms);
        // The input is not needed any more; finished tasks stay queryable without it.
        let task = Arc::make_mut(&mut rec.task);
        task.context = JsonObject::new();
        task.configuration = JsonObject::new();
        self.feed.push_back(slot);
        fx.finished = true;
        if self.store.is_some() {
            let rec = &self.records[slot];
            let op = WriteOp::Outcome {
                key: rec.db_key,
                outcome: StoredOutcome {
                    seq: self.feed_base + self.feed.len() as u64,
                    status: state,
                    attempt: rec.task.attempt,
                    execution_token: rec.task.execution_token.clone(),
                    executor_id: rec.executor.as_deref().map(str::to_owned),
                    output: rec.output.clone(),
                    error: rec.error.clone(),
                    completed_at_ms: now_ms,
                },
            };
            self.write(op);
            self.records[slot].final_write = self.writes;
        }
        self.forget_over_limit();
    }

    /// Queues a task for a retry after `delay` (at once when zero).
    pub(super) fn schedule(&mut self, slot: usize, now: Instant, delay: Duration) {
        if delay.is_zero() {
            self.records[slot].phase = Phase::Queued;
            self.queued += 1;
            self.enqueue(slot, false);
        } else {
            let due = now + delay;
            self.records[slot].phase = Phase::Delayed(due);
            self.delayed_count += 1;
            self.delayed.push(Reverse((due, slot)));
        }
    }

    /// Moves due retries into their queues.
    pub(super) fn promote_due(&mut self, now: Instant) {
        while let Some(&Reverse((due, slot))) = self.delayed.peek() {
            if due > now {
                break;
            }
            self.delayed.pop();
            if matches!(self.records[slot].phase, Phase::Delayed(d) if d == due) {
                self.delayed_count -= 1;
                self.records[slot].phase = Phase::Queued;
                self.queued += 1;
                self.enqueue(slot, false);
            }
        }
    }

    /// Index key of a record, for building lookups.
    pub(super) fn key_of(task: &Task) -> String {
        index_key(&task.run_id, &task.node_id)
    }
}
