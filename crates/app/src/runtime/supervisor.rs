//! Keeps the runtime connected: first connection and registration, heartbeats every
//! interval, and on a lost connection a reconnect loop with exponential back-off that
//! re-registers and resends the outbox. With `reconnect_max_retries` set, a run of failed
//! attempts that long ends the loop: the runtime stays FAILED (not ready, still live).

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, unbounded};
use gamelan_domain::{Backoff, RuntimeEvent, RuntimeState};
use gamelan_ports::{HealthStatus, Heartbeat, TransportError};

use super::core::{Core, lock};

pub(crate) enum SupervisorMsg {
    Lost,
    Stop,
}

pub(crate) fn start(core: &Arc<Core>) -> io::Result<JoinHandle<()>> {
    let (tx, rx) = unbounded();
    *lock(&core.supervisor_tx) = Some(tx);
    let core = Arc::clone(core);
    thread::Builder::new()
        .name("gamelan-supervisor".into())
        .spawn(move || {
            let mut s = Supervisor {
                core: &core,
                ever_connected: false,
                gave_up: false,
                backoff: Backoff::new(core.settings.reconnect_initial, core.settings.reconnect_max),
                next_attempt: Instant::now(),
                next_heartbeat: Instant::now() + core.settings.heartbeat_interval,
            };
            s.reconnect();
            loop {
                let wake = if core.all_connected() || s.gave_up {
                    s.next_heartbeat
                } else {
                    s.next_attempt.min(s.next_heartbeat)
                };
                match rx.recv_timeout(wake.saturating_duration_since(Instant::now())) {
                    Ok(SupervisorMsg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                    Ok(SupervisorMsg::Lost) | Err(RecvTimeoutError::Timeout) => {}
                }
                if core.stopping.load(Ordering::Acquire) {
                    return;
                }
                let now = Instant::now();
                if !core.all_connected() && !s.gave_up && now >= s.next_attempt {
                    s.reconnect();
                }
                if now >= s.next_heartbeat {
                    s.heartbeat();
                    s.next_heartbeat = Instant::now() + core.settings.heartbeat_interval;
                }
            }
        })
}

struct Supervisor<'a> {
    core: &'a Arc<Core>,
    ever_connected: bool,
    /// Set once `reconnect_max_retries` was used up: no more attempts.
    gave_up: bool,
    backoff: Backoff,
    next_attempt: Instant,
    next_heartbeat: Instant,
}

impl Supervisor<'_> {
    /// Connects and registers every disconnected route; schedules the next try on failure.
    fn reconnect(&mut self) {
        let core = self.core;
        let limit = core.settings.reconnect_max_retries;
        // This attempt is the last one if it fails: every allowed retry is used.
        let last = limit.is_some_and(|max| self.backoff.failures() >= max);
        let mut all_ok = true;
        for r in &core.routes {
            if r.connected.load(Ordering::Acquire) {
                continue;
            }
            let attempt = r
                .transport
                .connect()
                .and_then(|()| r.transport.register(&r.registrations));
            match attempt {
                Ok(()) => {
                    r.connected.store(true, Ordering::Release);
                    let ids: Vec<&str> = r
                        .registrations
                        .iter()
                        .map(|x| x.executor_id.as_str())
                        .collect();
                    log::info!(target: "gamelan.executor.runtime", "connected over {} and registered {} executors: {}", r.transport.name(), ids.len(), ids.join(", "));
                    r.reporter.resend();
                }
                Err(e) => {
                    all_ok = false;
                    log_failure(
                        r.transport.name(),
                        &e,
                        (!last).then_some(self.backoff.peek()),
                    );
                }
            }
        }
        if all_ok {
            self.backoff.reset();
            if core.state() == RuntimeState::Failed {
                core.apply(RuntimeEvent::Reconnected);
            } else if !self.ever_connected {
                core.apply(RuntimeEvent::Connected);
            }
            self.ever_connected = true;
            // Heartbeat right away so the engine sees fresh load figures.
            self.next_heartbeat = Instant::now();
        } else {
            if !self.ever_connected {
                core.apply(RuntimeEvent::ConnectionLost);
            }
            let delay = self.backoff.next_delay();
            if let Some(max) = limit
                && self.backoff.failures() > max
            {
                self.give_up(max);
                return;
            }
            self.next_attempt = Instant::now() + delay;
        }
    }

    /// The retry budget is spent: stay FAILED, say so once at ERROR and in `/health`.
    fn give_up(&mut self, max: u32) {
        let core = self.core;
        self.gave_up = true;
        core.apply(RuntimeEvent::ConnectionLost);
        let why = format!(
            "gave up reconnecting to the engine after {max} retries \
             (gamelan.executor.engine.reconnect.max-retries={max}); \
             the runtime stays FAILED and not ready until it is restarted"
        );
        log::error!(target: "gamelan.executor.error", "{why}");
        core.gave_up(why);
    }

    fn heartbeat(&mut self) {
        let core = self.core;
        if !core.settings.heartbeat_enabled {
            return;
        }
        let running = core.pool.running_by_executor();
        let completed = core.completed.load(Ordering::Relaxed);
        let failed = core.failed.load(Ordering::Relaxed);
        for (i, r) in core.routes.iter().enumerate() {
            if !r.connected.load(Ordering::Acquire) {
                continue;
            }
            let beats: Vec<Heartbeat> = r
                .executors
                .iter()
                .zip(&r.registrations)
                .map(|(&e, reg)| {
                    let current =
                        u32::try_from(running.get(e).copied().unwrap_or(0)).unwrap_or(u32::MAX);
                    let cap = core.hosted[e].meta.max_concurrent_tasks;
                    Heartbeat {
                        executor_id: reg.executor_id.clone(),
                        current_task_count: current,
                        status: HealthStatus::from_load(current, cap),
                        completed_tasks: completed,
                        failed_tasks: failed,
                        cpu_usage: 0.0,
                        memory_usage: 0.0,
                    }
                })
                .collect();
            match r.transport.heartbeat(&beats) {
                Ok(()) => {
                    core.last_heartbeat_ms
                        .store(core.clock.epoch_millis(), Ordering::Release);
                    log::debug!(target: "gamelan.executor.runtime", "heartbeat sent for {} executors", beats.len());
                }
                Err(e) if e.is_connection_loss() => {
                    log::error!(target: "gamelan.executor.error", "heartbeat failed: {e}");
                    core.connection_lost(i, &e);
                    self.next_attempt = Instant::now();
                }
                Err(TransportError::Rejected(msg)) => {
                    // The engine forgot us (e.g. it restarted ephemeral): register again.
                    log::warn!(target: "gamelan.executor.runtime", "engine rejected heartbeat ({msg}); re-registering");
                    if let Err(e) = r.transport.register(&r.registrations) {
                        log::error!(target: "gamelan.executor.error", "re-registration failed: {e}");
                    }
                }
                Err(e) => log::error!(target: "gamelan.executor.error", "heartbeat failed: {e}"),
            }
        }
    }
}

fn log_failure(transport: &str, e: &TransportError, retry_in: Option<Duration>) {
    match retry_in {
        Some(wait) => log::warn!(
            target: "gamelan.executor.runtime",
            "cannot reach engine over {transport}: {e}; retrying in {wait:?}"
        ),
        None => log::warn!(
            target: "gamelan.executor.runtime",
            "cannot reach engine over {transport}: {e}; no retries left"
        ),
    }
}
