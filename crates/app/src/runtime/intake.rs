//! One intake thread per transport: asks for as many tasks as the pool has room for, admits
//! them, and turns a full pool into "take no more" rather than dropping anything.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use gamelan_domain::{Backoff, ErrorInfo, ExecutionError, RuntimeEvent, Task, TaskResult, codes};
use gamelan_ports::{Inbound, MetricsSink, TransportError};

use super::core::Core;
use super::pool::Job;

/// How long intake waits before asking again while the pool is full.
const ZERO_CREDIT_WAIT: Duration = Duration::from_millis(1);

pub(crate) fn start(core: &Arc<Core>, route: usize) -> io::Result<JoinHandle<()>> {
    let core = Arc::clone(core);
    thread::Builder::new()
        .name(format!("gamelan-intake-{route}"))
        .spawn(move || run(&core, route))
}

fn run(core: &Arc<Core>, route: usize) {
    let Some(r) = core.route(route) else { return };
    let wait = core.settings.receive_wait;
    // Tasks received but refused by a pool that filled up meanwhile (another transport won
    // the race): held here and offered again before asking the engine for more.
    let mut held: VecDeque<Job> = VecDeque::new();
    let mut error_backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(5));
    while !core.stopping.load(Ordering::Acquire) {
        if !r.connected.load(Ordering::Acquire) {
            // The supervisor reconnects; check again shortly (bounded so shutdown is seen).
            thread::park_timeout(wait);
            continue;
        }
        while let Some(job) = held.pop_front() {
            match core.pool.submit(job) {
                Ok(()) => {}
                Err(refused) => {
                    held.push_front(refused.into_job());
                    break;
                }
            }
        }
        let credit = if held.is_empty() {
            core.pool.credit()
        } else {
            0
        };
        // With no credit, look again soon: the pool may free room within microseconds, and
        // a full receive wait here would idle it (the transport still sees its zero credit).
        let wait_now = if credit == 0 {
            wait.min(ZERO_CREDIT_WAIT)
        } else {
            wait
        };
        match r.transport.receive(credit, wait_now) {
            Ok(messages) => {
                error_backoff.reset();
                let now = Instant::now();
                for m in messages {
                    match m {
                        Inbound::Task(task) => admit(core, route, task, now, &mut held),
                        Inbound::Cancel { task_id, reason } => {
                            if !core.pool.cancel(&task_id, &reason) {
                                log::debug!(target: "gamelan.executor.task", "cancel for unknown or finished task {task_id}");
                            }
                        }
                    }
                }
            }
            Err(TransportError::Closed) => break,
            Err(e) if e.is_connection_loss() => core.connection_lost(route, &e),
            Err(e) => {
                log::warn!(target: "gamelan.executor.error", "receiving tasks failed: {e}");
                thread::park_timeout(error_backoff.next_delay());
            }
        }
    }
    if !held.is_empty() {
        let tasks: Vec<Task> = held
            .into_iter()
            .map(|j| Arc::unwrap_or_clone(j.task))
            .collect();
        if let Err(e) = r.transport.release(&tasks) {
            log::warn!(target: "gamelan.executor.error", "could not hand back {} held tasks: {e}", tasks.len());
        }
    }
}

fn admit(core: &Core, route: usize, task: Task, now: Instant, held: &mut VecDeque<Job>) {
    if let Err(e) = task.validate() {
        log::warn!(target: "gamelan.executor.error", "invalid task {}: {e}", task.task_id);
        // A result needs a usable identity; without one the engine cannot match it anyway.
        if !task.run_id.is_empty() && !task.node_id.is_empty() && task.attempt > 0 {
            let info = ErrorInfo::new(codes::INVALID_TASK, e.to_string());
            let result = TaskResult::failed(&task, info, core.clock.epoch_millis());
            core.report(route, result);
        }
        return;
    }
    let Some((meta, &exec)) = core.registry.find_by_node_type(&task.node_type) else {
        core.metrics.task_received(&task.node_type);
        let err = ExecutionError::NoExecutor(task.node_type.clone());
        log::warn!(target: "gamelan.executor.error", "task {}: {err}", task.task_id);
        let result = TaskResult::failed(&task, err.to_error_info(), core.clock.epoch_millis());
        core.metrics.task_finished(
            &task.node_type,
            gamelan_ports::TaskOutcome::Failed,
            now.elapsed(),
        );
        core.report(route, result);
        return;
    };
    core.metrics.task_received(&meta.executor_type);
    log::debug!(target: "gamelan.executor.task", "task {} -> {}", task.task_id, meta.executor_type);
    core.apply(RuntimeEvent::TaskAssigned);
    let job = Job::new(task, exec, route, now);
    if let Err(refused) = core.pool.submit(job) {
        held.push_back(refused.into_job());
    }
}
