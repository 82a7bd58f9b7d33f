//! The operations of the engine: each takes the lock briefly, leaves sink calls and
//! wake-ups for after it, and waits for its durable commit (if any) without the lock.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use gamelan_domain::{Acceptance, ExecutorMetadata, Task, TaskResult};
use gamelan_ports::{
    Clock, EngineError, EngineStatistics, ExecutorView, Heartbeat, Registered, Registration,
    StreamId, SubmitRequest, TaskSink, TaskState, TaskView,
};

use super::executors::{ExecutorEntry, StreamSlot};
use super::ids::IdGen;
use super::metrics::EngineMetrics;
use super::record::{Phase, Via, index_key};
use super::settings::EngineSettings;
use super::state::{Effects, Inner};
use super::store::{WriteOp, encode_task};

/// How long an overloaded long poll is told to back off.
const OVERLOAD_BACKOFF: Duration = Duration::from_secs(1);

pub(super) struct Shared {
    pub state: Mutex<Inner>,
    /// Waiters of the completion feed.
    pub feed_cv: Condvar,
    pub clock: Arc<dyn Clock>,
    pub settings: EngineSettings,
    pub ids: Arc<IdGen>,
    pub metrics: Arc<EngineMetrics>,
}

/// A submission checked and built outside the lock.
struct Prepared {
    key: String,
    task: Arc<Task>,
    max_retries: u32,
    view: TaskView,
    /// The stored form, encoded before taking the lock (durable engines only).
    encoded: Option<Vec<u8>>,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic under the lock cannot leave a half-applied move that later code trusts
        // more than a restart would; keep serving.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs what an operation left for after the lock: wakes long polls, waits for the
    /// commit of the operation's writes (`barrier`), then wakes feed readers and calls
    /// sinks. So a task leaves only after its delivery is durable, and a reader is woken for
    /// a result only once it is. A sink that refuses a task has lost its stream: the task
    /// goes back (same attempt, it never left) and the stream is detached, which may free
    /// more work for other executors. Answers whether the writes were stored.
    pub(super) fn settle(
        &self,
        mut fx: Effects,
        mut barrier: Option<crossbeam_channel::Receiver<Result<(), String>>>,
    ) -> Result<(), EngineError> {
        let mut stored = Ok(());
        loop {
            for cv in fx.wake.drain(..) {
                cv.notify_all();
            }
            if let Err(e) = Self::wait_durable(barrier.take())
                && stored.is_ok()
            {
                stored = Err(e);
            }
            if fx.finished {
                // Taking the lock once orders this wake-up after any reader's check of the
                // committed count (which it makes under the lock), so none misses it.
                // Without a store results are visible as they are made, under the lock.
                if self.settings.data_dir.is_some() {
                    drop(self.lock());
                }
                self.feed_cv.notify_all();
            }
            let mut refused = Vec::new();
            for d in fx.deliveries.drain(..) {
                if !d.sink.deliver(Arc::clone(&d.task)) {
                    refused.push(d);
                }
            }
            if refused.is_empty() {
                return stored;
            }
            let mut next = Effects::default();
            {
                let mut inner = self.lock();
                let before = inner.writes;
                for d in refused {
                    let rec = &inner.records[d.record];
                    let same = rec.task.task_id == d.task.task_id
                        && matches!(rec.phase, Phase::Assigned(a)
                            if a.exec == d.exec && a.via == Via::Stream(d.stream));
                    if same {
                        inner.leave_phase(d.record);
                        inner.records[d.record].phase = Phase::Queued;
                        inner.queued += 1;
                        inner.enqueue(d.record, true);
                        let key = inner.records[d.record].db_key;
                        inner.write(WriteOp::Undeliver { key });
                    }
                    if inner.detach_stream(d.exec, d.stream) {
                        log::info!(target: "gamelan.engine", "stream {} is gone, detached", d.stream);
                    }
                }
                inner.pump_all(self.clock.now(), &mut next);
                barrier = inner.barrier(before);
            }
            fx = next;
        }
    }

    fn wait_durable(
        barrier: Option<crossbeam_channel::Receiver<Result<(), String>>>,
    ) -> Result<(), EngineError> {
        match barrier {
            None => Ok(()),
            Some(rx) => match rx.recv() {
                Ok(result) => result.map_err(EngineError::Storage),
                Err(_) => Err(EngineError::Storage("the store stopped".into())),
            },
        }
    }

    pub(super) fn sweep(&self) {
        let mut fx = Effects::default();
        let barrier = {
            let mut inner = self.lock();
            if inner.shutting_down {
                return;
            }
            let before = inner.writes;
            inner.sweep(self.clock.now(), &mut fx);
            inner.expire(self.clock.epoch_millis());
            inner.barrier(before)
        };
        if let Err(e) = self.settle(fx, barrier) {
            log::error!(target: "gamelan.engine", "sweep could not store its changes: {e}");
        }
    }

    // ---- executors -----------------------------------------------------------------

    pub(super) fn register(
        &self,
        mut registration: Registration,
    ) -> Result<Registered, EngineError> {
        if registration.executor_id.trim().is_empty() {
            return Err(EngineError::Invalid("executorId must not be empty".into()));
        }
        if registration.metadata.executor_type.trim().is_empty() {
            return Err(EngineError::Invalid(
                "executorType must not be empty".into(),
            ));
        }
        if registration.metadata.max_concurrent_tasks == 0 {
            // The wire's int32 0 means "not given".
            registration.metadata.max_concurrent_tasks =
                ExecutorMetadata::DEFAULT_MAX_CONCURRENT_TASKS;
        }
        let own_timeout = registration
            .heartbeat_timeout()
            .map_err(EngineError::Invalid)?
            .map(|t| executor_heartbeat_timeout(&registration.executor_id, t, &self.settings));
        let now = self.clock.now();
        let now_ms = self.clock.epoch_millis();
        let executor_id = registration.executor_id.clone();
        let mut fx = Effects::default();
        let barrier = {
            let mut inner = self.lock();
            if inner.shutting_down {
                return Err(EngineError::ShuttingDown);
            }
            let before = inner.writes;
            let slot = if let Some(&slot) = inner.executor_index.get(&executor_id) {
                let e = inner
                    .exec_mut(slot)
                    .ok_or_else(|| EngineError::UnknownExecutor(executor_id.clone()))?;
                if e.restored {
                    e.restored = false;
                    log::info!(
                        target: "gamelan.engine",
                        "executor {executor_id} is back after the restart; {} task(s) delivered to it before wait for its results",
                        e.in_flight.len()
                    );
                }
                e.registration = registration;
                e.alive = true;
                e.registered_at_ms = now_ms;
                e.last_heartbeat_ms = now_ms;
                slot
            } else {
                let generation = inner.next_generation;
                inner.next_generation += 1;
                let entry = ExecutorEntry::new(registration, generation, now_ms);
                let slot = if let Some(free) = inner.executors.iter().position(Option::is_none) {
                    inner.executors[free] = Some(entry);
                    free
                } else {
                    inner.executors.push(Some(entry));
                    inner.executors.len() - 1
                };
                inner.executor_index.insert(executor_id.clone(), slot);
                slot
            };
            inner.liveness.heartbeat(slot, now);
            inner.liveness.set_timeout(slot, own_timeout);
            inner.pump_all(now, &mut fx);
            inner.barrier(before)
        };
        self.settle(fx, barrier)?;
        match own_timeout {
            Some(t) => log::info!(
                target: "gamelan.engine",
                "executor {executor_id} registered (heartbeat timeout {t:?})"
            ),
            None => log::info!(target: "gamelan.engine", "executor {executor_id} registered"),
        }
        Ok(Registered {
            executor_id,
            status: "REGISTERED".into(),
            registered_at_ms: now_ms,
        })
    }

    pub(super) fn unregister(&self, executor_id: &str) -> Result<(), EngineError> {
        let mut fx = Effects::default();
        let barrier = {
            let mut inner = self.lock();
            let slot = inner.executor_slot(executor_id)?;
            let before = inner.writes;
            inner.requeue_executor(slot, &mut fx);
            inner.executors[slot] = None;
            inner.executor_index.remove(executor_id);
            inner.liveness.remove(&slot);
            inner.pump_all(self.clock.now(), &mut fx);
            inner.barrier(before)
        };
        let stored = self.settle(fx, barrier);
        log::info!(target: "gamelan.engine", "executor {executor_id} unregistered");
        stored
    }

    pub(super) fn heartbeat(&self, heartbeat: &Heartbeat) -> Result<(), EngineError> {
        let now = self.clock.now();
        let now_ms = self.clock.epoch_millis();
        let mut fx = Effects::default();
        let barrier = {
            let mut inner = self.lock();
            let slot = inner.executor_slot(&heartbeat.executor_id)?;
            let before = inner.writes;
            inner.liveness.heartbeat(slot, now);
            if let Some(e) = inner.exec_mut(slot) {
                e.health = heartbeat.status;
                e.last_heartbeat_ms = now_ms;
                if !e.alive {
                    e.alive = true;
                    log::info!(target: "gamelan.engine", "executor {} is back", e.id);
                }
            }
            inner.pump_all(now, &mut fx);
            inner.barrier(before)
        };
        self.settle(fx, barrier)
    }

    pub(super) fn attach(
        &self,
        executor_id: &str,
        max_in_flight: u32,
        sink: Arc<dyn TaskSink>,
    ) -> Result<StreamId, EngineError> {
        let mut fx = Effects::default();
        let (id, barrier) = {
            let mut inner = self.lock();
            if inner.shutting_down {
                return Err(EngineError::ShuttingDown);
            }
            let slot = inner.executor_slot(executor_id)?;
            let before = inner.writes;
            let id = inner.next_stream;
            inner.next_stream += 1;
            if let Some(e) = inner.exec_mut(slot) {
                // 0 (not given on the wire) means "as many as the executor takes".
                let max_in_flight = if max_in_flight == 0 {
                    e.metadata().max_concurrent_tasks
                } else {
                    max_in_flight
                };
                e.streams.push(StreamSlot {
                    id,
                    max_in_flight,
                    in_flight: 0,
                    sink,
                });
            }
            inner.pump_all(self.clock.now(), &mut fx);
            (id, inner.barrier(before))
        };
        self.settle(fx, barrier)?;
        Ok(id)
    }

    pub(super) fn detach(&self, executor_id: &str, stream: StreamId) {
        let mut fx = Effects::default();
        let barrier = {
            let mut inner = self.lock();
            let Ok(slot) = inner.executor_slot(executor_id) else {
                return;
            };
            let before = inner.writes;
            inner.detach_stream(slot, stream);
            inner.pump_all(self.clock.now(), &mut fx);
            inner.barrier(before)
        };
        if let Err(e) = self.settle(fx, barrier) {
            log::error!(target: "gamelan.engine", "detach could not store its changes: {e}");
        }
    }

    pub(super) fn acknowledge(&self, task_id: &str) -> Result<(), EngineError> {
        let now = self.clock.now();
        let mut inner = self.lock();
        let slot = inner
            .lookup(task_id)
            .ok_or_else(|| EngineError::UnknownTask(task_id.to_owned()))?;
        let rec = &mut inner.records[slot];
        if rec.task.task_id != task_id {
            // An older attempt (or the bare run:node id): nothing in flight to confirm.
            return Ok(());
        }
        if let Phase::Assigned(a) = &mut rec.phase {
            a.since = now;
        }
        Ok(())
    }

    pub(super) fn poll(
        &self,
        executor_id: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Task>, EngineError> {
        let polled = self.poll_many(&[executor_id], max, wait)?;
        Ok(polled.into_iter().map(|(_, task)| task).collect())
    }

    /// One long poll covering several executors: each registers a demand of up to `max`
    /// (within its own limit) and points at this poll's condition variable, so a task for
    /// any of them ends the wait. At most `max` tasks are handed out, taken round-robin;
    /// tasks assigned beyond that go back to the queue when no other poll waits for them.
    pub(super) fn poll_many(
        &self,
        executor_ids: &[&str],
        max: usize,
        wait: Duration,
    ) -> Result<Vec<(Arc<str>, Task)>, EngineError> {
        struct Covered {
            slot: usize,
            generation: u64,
            demand: usize,
            handed: usize,
        }
        /// Still the executor the poll registered with (not one registered since under the
        /// same id).
        fn entry<'a>(
            executors: &'a mut [Option<ExecutorEntry>],
            c: &Covered,
        ) -> Option<&'a mut ExecutorEntry> {
            executors
                .get_mut(c.slot)
                .and_then(Option::as_mut)
                .filter(|e| e.generation == c.generation)
        }
        let deadline = Instant::now() + wait;
        let mut inner = self.lock();
        if inner.shutting_down {
            return Err(EngineError::ShuttingDown);
        }
        let mut covered: Vec<Covered> = Vec::with_capacity(executor_ids.len());
        for id in executor_ids {
            let slot = inner.executor_slot(id)?;
            if !covered.iter().any(|c| c.slot == slot) {
                covered.push(Covered {
                    slot,
                    generation: 0,
                    demand: 0,
                    handed: 0,
                });
            }
        }
        if max == 0 || covered.is_empty() {
            return Ok(Vec::new());
        }
        if inner.long_polls >= self.settings.max_long_polls {
            return Err(EngineError::Overloaded {
                retry_after: OVERLOAD_BACKOFF,
            });
        }
        let waiter = Arc::new(Condvar::new());
        for c in &mut covered {
            if let Some(e) = inner.exec_mut(c.slot) {
                c.demand = max.min(e.metadata().max_concurrent_tasks as usize).max(1);
                c.generation = e.generation;
                e.poll_demand += c.demand;
                e.waiters.push(Arc::clone(&waiter));
            }
        }
        inner.long_polls += 1;
        let mut fx = Effects::default();
        let before = inner.writes;
        inner.pump_all(self.clock.now(), &mut fx);
        if !fx.deliveries.is_empty() || !fx.wake.is_empty() {
            let barrier = inner.barrier(before);
            drop(inner);
            if let Err(e) = self.settle(fx, barrier) {
                log::error!(target: "gamelan.engine", "a delivery could not be stored: {e}");
            }
            inner = self.lock();
        }
        let current = |inner: &Inner, c: &Covered| {
            inner
                .exec(c.slot)
                .filter(|e| e.generation == c.generation)
                .map(|e| e.mailbox.is_empty())
        };
        let mut vanished = None;
        loop {
            let mut ready = inner.shutting_down;
            for (k, c) in covered.iter().enumerate() {
                match current(&inner, c) {
                    None => vanished = vanished.or(Some(k)),
                    Some(empty) => ready |= !empty,
                }
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if ready || vanished.is_some() || remaining.is_zero() {
                break;
            }
            inner = waiter
                .wait_timeout(inner, remaining)
                .map_or_else(|p| p.into_inner().0, |(g, _)| g);
        }
        inner.long_polls -= 1;
        let now = self.clock.now();
        let mut handed = Vec::new();
        let mut delivered = Vec::new();
        let mut leftover = Vec::new();
        {
            let Inner {
                executors, records, ..
            } = &mut *inner;
            for c in &covered {
                if let Some(e) = entry(executors, c) {
                    e.waiters.retain(|w| !Arc::ptr_eq(w, &waiter));
                    e.poll_demand = e.poll_demand.saturating_sub(c.demand);
                }
            }
            if vanished.is_none() {
                // Round-robin in the order the caller gave (its rotation decides who goes
                // first), so one busy executor type cannot starve the others.
                let mut progress = true;
                while progress && handed.len() < max {
                    progress = false;
                    for c in &mut covered {
                        if handed.len() == max || c.handed == c.demand {
                            continue;
                        }
                        let Some(e) = entry(executors, c) else {
                            continue;
                        };
                        let Some(k) = e.mailbox.pop_front() else {
                            continue;
                        };
                        let rec = &mut records[k];
                        if let Phase::Assigned(a) = &mut rec.phase {
                            a.via = Via::Polled;
                            a.since = now;
                        }
                        c.handed += 1;
                        progress = true;
                        delivered.push((k, c.slot));
                        handed.push((Arc::clone(&e.id), Arc::clone(&rec.task)));
                    }
                }
            }
            for c in &covered {
                if let Some(e) = entry(executors, c) {
                    // More in the mailbox than the polls still waiting asked for.
                    let excess = e.mailbox.len().saturating_sub(e.poll_demand);
                    leftover.extend(e.mailbox.iter().rev().take(excess).copied());
                }
            }
        }
        // The tasks leave only once their deliveries are stored.
        let before = inner.writes;
        for (slot, exec) in delivered {
            inner.write_delivery(slot, exec);
        }
        let mut fx = Effects::default();
        if !leftover.is_empty() {
            for slot in leftover {
                inner.requeue(slot);
            }
            inner.pump_all(now, &mut fx);
        }
        let barrier = inner.barrier(before);
        drop(inner);
        self.settle(fx, barrier)?;
        if let Some(k) = vanished {
            return Err(EngineError::UnknownExecutor(executor_ids[k].to_owned()));
        }
        Ok(handed
            .into_iter()
            .map(|(id, task)| (id, Task::clone(&task)))
            .collect())
    }

    pub(super) fn release(
        &self,
        executor_id: &str,
        task_ids: &[String],
    ) -> Result<(), EngineError> {
        let mut fx = Effects::default();
        let barrier = {
            let mut inner = self.lock();
            let slot = inner.executor_slot(executor_id)?;
            let before = inner.writes;
            for id in task_ids {
                let Some(k) = inner.lookup(id) else {
                    continue;
                };
                let rec = &inner.records[k];
                if rec.task.task_id == *id
                    && matches!(rec.phase, Phase::Assigned(a) if a.exec == slot)
                {
                    inner.requeue(k);
                }
            }
            inner.pump_all(self.clock.now(), &mut fx);
            inner.barrier(before)
        };
        self.settle(fx, barrier)
    }

    // ---- results and submissions ---------------------------------------------------

    pub(super) fn report(&self, results: Vec<TaskResult>) -> Vec<Result<Acceptance, EngineError>> {
        let now = self.clock.now();
        let now_ms = self.clock.epoch_millis();
        let mut fx = Effects::default();
        let (mut answers, barrier) = {
            let mut inner = self.lock();
            if inner.shutting_down {
                return results
                    .iter()
                    .map(|_| Err(EngineError::ShuttingDown))
                    .collect();
            }
            let before = inner.writes;
            let answers: Vec<_> = results
                .into_iter()
                .map(|r| inner.apply_result(r, now, now_ms, &mut fx))
                .collect();
            inner.pump_all(now, &mut fx);
            (answers, inner.barrier(before))
        };
        if let Err(e) = self.settle(fx, barrier) {
            for answer in &mut answers {
                if answer.is_ok() {
                    *answer = Err(e.clone());
                }
            }
        }
        answers
    }

    fn prepare(&self, request: SubmitRequest, now_ms: u64) -> Result<Prepared, EngineError> {
        let node_type = non_empty(request.node_type)
            .or_else(|| non_empty(request.executor_type))
            .ok_or_else(|| EngineError::Invalid("executorType or nodeType is required".into()))?;
        let run_id = non_empty(request.run_id).unwrap_or_else(|| self.ids.run_id());
        let node_id = non_empty(request.node_id).unwrap_or_else(|| "node".to_owned());
        if node_id.contains(':') {
            return Err(EngineError::Invalid(format!(
                "nodeId '{node_id}' must not contain ':' (task ids are run:node:attempt)"
            )));
        }
        let mut task = Task::new(run_id, node_id, node_type, 1);
        task.node_name.clone_from(&task.node_id);
        task.execution_token = self.ids.token();
        task.context = request.input;
        task.configuration = request.configuration;
        task.timeout_seconds = request.timeout_seconds;
        task.tenant_id = request.tenant_id.unwrap_or_default();
        task.scheduled_at_ms = now_ms;
        let view = TaskView {
            task_id: task.task_id.clone(),
            submission_id: task.task_id.clone(),
            run_id: task.run_id.clone(),
            node_id: task.node_id.clone(),
            node_type: task.node_type.clone(),
            status: TaskState::Pending,
            attempt: 1,
            executor_id: None,
            output: None,
            error: None,
            submitted_at_ms: now_ms,
            completed_at_ms: None,
        };
        let max_retries = request
            .max_attempts
            .unwrap_or(self.settings.retry.max_attempts);
        let encoded = self
            .settings
            .data_dir
            .is_some()
            .then(|| encode_task(&task, 0, max_retries, now_ms));
        Ok(Prepared {
            key: index_key(&task.run_id, &task.node_id),
            task: Arc::new(task),
            max_retries,
            view,
            encoded,
        })
    }

    pub(super) fn submit_batch(
        &self,
        requests: Vec<SubmitRequest>,
    ) -> Vec<Result<TaskView, EngineError>> {
        let now_ms = self.clock.epoch_millis();
        let prepared: Vec<_> = requests
            .into_iter()
            .map(|r| self.prepare(r, now_ms))
            .collect();
        let mut fx = Effects::default();
        let (mut answers, barrier) = {
            let mut inner = self.lock();
            if inner.shutting_down {
                return prepared
                    .iter()
                    .map(|_| Err(EngineError::ShuttingDown))
                    .collect();
            }
            let before = inner.writes;
            let answers: Vec<_> = prepared
                .into_iter()
                .map(|p| {
                    let p = p?;
                    if let Some(&existing) = inner.index.get(&p.key) {
                        // Submission is idempotent by (runId, nodeId): a client retrying
                        // after a lost answer gets the task it already created.
                        return Ok(inner.records[existing].view(inner.committed()));
                    }
                    inner.insert(p.key, p.task, p.max_retries, now_ms, p.encoded);
                    Ok(p.view)
                })
                .collect();
            inner.pump_all(self.clock.now(), &mut fx);
            (answers, inner.barrier(before))
        };
        if let Err(e) = self.settle(fx, barrier) {
            for answer in &mut answers {
                if answer.is_ok() {
                    *answer = Err(e.clone());
                }
            }
        }
        answers
    }

    // ---- queries -------------------------------------------------------------------

    pub(super) fn completions(
        &self,
        after: u64,
        max: usize,
        wait: Duration,
    ) -> (Vec<TaskView>, u64) {
        let deadline = Instant::now() + wait;
        let mut inner = self.lock();
        loop {
            if inner.feed_base + inner.visible_feed() as u64 > after
                || inner.shutting_down
                || max == 0
            {
                break;
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            inner = self
                .feed_cv
                .wait_timeout(inner, remaining)
                .map_or_else(|p| p.into_inner().0, |(g, _)| g);
        }
        // A reader behind the retention window resumes at the oldest result still kept.
        let base = inner.feed_base;
        let len = inner.visible_feed();
        let committed = inner.committed();
        let start = usize::try_from(after.saturating_sub(base)).unwrap_or(usize::MAX);
        if start >= len {
            return (Vec::new(), after.max(base + len as u64));
        }
        let end = start.saturating_add(max).min(len);
        let views = inner
            .feed
            .range(start..end)
            .map(|&k| inner.records[k].view(committed))
            .collect();
        (views, base + end as u64)
    }

    pub(super) fn task(&self, task_id: &str) -> Result<TaskView, EngineError> {
        let inner = self.lock();
        inner
            .lookup(task_id)
            .map(|k| inner.records[k].view(inner.committed()))
            .ok_or_else(|| EngineError::UnknownTask(task_id.to_owned()))
    }

    pub(super) fn executors(&self) -> Vec<ExecutorView> {
        let inner = self.lock();
        let mut views: Vec<_> = inner
            .executors
            .iter()
            .flatten()
            .filter(|e| !e.restored)
            .map(ExecutorEntry::view)
            .collect();
        views.sort_by(|a, b| a.executor_id.cmp(&b.executor_id));
        views
    }

    pub(super) fn executor(&self, executor_id: &str) -> Result<ExecutorView, EngineError> {
        let inner = self.lock();
        let slot = inner.executor_slot(executor_id)?;
        inner
            .exec(slot)
            .map(ExecutorEntry::view)
            .ok_or_else(|| EngineError::UnknownExecutor(executor_id.to_owned()))
    }

    pub(super) fn statistics(&self) -> EngineStatistics {
        let inner = self.lock();
        let mut stats = EngineStatistics::default();
        for e in inner.executors.iter().flatten().filter(|e| !e.restored) {
            stats.executors += 1;
            if e.alive {
                stats.alive_executors += 1;
            }
            *stats
                .executors_by_type
                .entry(e.metadata().executor_type.clone())
                .or_default() += 1;
        }
        let m = &self.metrics;
        stats.tasks_submitted = m.submitted.get();
        stats.tasks_pending = inner.queued + inner.delayed_count;
        stats.tasks_in_flight = inner.in_flight;
        stats.tasks_completed = m.completed.get();
        stats.tasks_failed = m.failed.get();
        stats.results_duplicate = m.duplicate.get();
        stats.results_stale = m.stale.get();
        stats.tasks_redispatched = m.redispatched.get();
        stats
    }

    pub(super) fn metrics_text(&self) -> String {
        let sample = self.lock().gauges();
        self.metrics.render(sample)
    }
}

/// The floor and ceiling of an executor's own heartbeat timeout. Below a second the sweep
/// (at most once a second) could not honour it; beyond an hour a silent executor would keep
/// its tasks far longer than any operator expects. An engine configured outside these
/// bounds widens them to its own default.
const OWN_TIMEOUT_MIN: Duration = Duration::from_secs(1);
const OWN_TIMEOUT_MAX: Duration = Duration::from_secs(3600);

/// The timeout the engine applies to an executor that asked for `asked`.
fn executor_heartbeat_timeout(executor_id: &str, asked: Duration, s: &EngineSettings) -> Duration {
    let min = OWN_TIMEOUT_MIN.min(s.heartbeat_timeout);
    let max = OWN_TIMEOUT_MAX.max(s.heartbeat_timeout);
    let applied = asked.clamp(min, max);
    if applied != asked {
        log::warn!(
            target: "gamelan.engine",
            "executor {executor_id} asked for a heartbeat timeout of {asked:?}; using {applied:?} (allowed: {min:?} to {max:?})"
        );
    }
    applied
}
