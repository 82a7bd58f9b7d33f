//! The periodic sweep: liveness, ack timeouts and due retries, and the thread that runs it.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, Sender};

use super::record::Phase;
use super::service::Shared;
use super::state::{Effects, Inner};

impl Inner {
    pub(super) fn sweep(&mut self, now: Instant, fx: &mut Effects) {
        for exec in self.liveness.expired(now) {
            let Some(e) = self.exec_mut(exec) else {
                continue;
            };
            if !e.alive {
                continue;
            }
            e.alive = false;
            if e.restored {
                log::warn!(
                    target: "gamelan.engine",
                    "executor {} did not come back after the restart; {} task(s) delivered to it go back to the queue as a new attempt",
                    e.id,
                    e.in_flight.len()
                );
                let id = std::sync::Arc::clone(&e.id);
                self.requeue_executor(exec, fx);
                self.executors[exec] = None;
                self.executor_index.remove(&*id);
                self.liveness.remove(&exec);
                continue;
            }
            log::warn!(
                target: "gamelan.engine",
                "executor {} missed its heartbeats, declared dead; {} task(s) go back to the queue",
                e.id,
                e.in_flight.len()
            );
            self.requeue_executor(exec, fx);
        }

        let mut overdue = Vec::new();
        for e in self.executors.iter().flatten() {
            for &slot in &e.in_flight {
                let rec = &self.records[slot];
                if let Phase::Assigned(a) = rec.phase {
                    let own = Duration::from_secs(rec.task.timeout_seconds.unwrap_or(0));
                    let limit = self.ack_timeout.max(own);
                    if now.saturating_duration_since(a.since) > limit {
                        overdue.push(slot);
                    }
                }
            }
        }
        for slot in overdue {
            log::warn!(
                target: "gamelan.engine",
                "task {} got no result within its ack timeout, requeued",
                self.records[slot].task.task_id
            );
            self.requeue(slot);
        }

        self.promote_due(now);
        self.pump_all(now, fx);
        self.note_unserved();
    }
}

/// Runs [`Shared::sweep`] every `interval` until the returned sender is dropped.
pub(super) fn spawn(
    shared: Arc<Shared>,
    interval: Duration,
) -> std::io::Result<(Sender<()>, JoinHandle<()>)> {
    let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
    let handle = std::thread::Builder::new()
        .name("gamelan-engine-sweeper".into())
        .spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                shared.sweep();
            }
        })?;
    Ok((stop, handle))
}
