//! Result reporting: batches results, sends them, and keeps every one in an outbox until the
//! engine has answered for it. Nothing leaves the outbox on a failed send; after a reconnect
//! the whole outbox goes again (the engine de-duplicates by task id and attempt).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, unbounded};
use gamelan_domain::{Backoff, BatchPolicy, Batcher, TaskResult};
use gamelan_ports::{EngineTransport, ReportOutcome, TransportError};

/// What the reporter tells the rest of the runtime.
pub trait ReportEvents: Send + Sync {
    /// `n` results were answered by the engine (accepted, repeated, stale or rejected).
    fn confirmed(&self, n: usize);
    /// A send failed with a connection loss.
    fn connection_lost(&self, route: usize, error: &TransportError);
    /// Whether the route is connected and registered; while it is not, results wait in the
    /// outbox for the supervisor's resend instead of racing the re-registration.
    fn connected(&self, route: usize) -> bool;
}

enum Msg {
    Result(Box<TaskResult>),
    /// The connection is back: send the outbox now instead of waiting for the back-off.
    Resend,
    /// Send everything, then answer on the channel with the number still unconfirmed.
    Flush(Duration, Sender<usize>),
    Stop,
}

/// Back-off between failed sends while the connection is down.
const RETRY_INITIAL: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

pub struct Reporter {
    tx: Sender<Msg>,
    unconfirmed: Arc<AtomicUsize>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Reporter {
    pub fn start(
        route: usize,
        transport: Arc<dyn EngineTransport>,
        policy: BatchPolicy,
        events: Arc<dyn ReportEvents>,
    ) -> Self {
        let (tx, rx) = unbounded();
        let unconfirmed = Arc::new(AtomicUsize::new(0));
        let worker = Worker {
            route,
            transport,
            policy,
            events,
            rx,
            batcher: Batcher::new(policy),
            outbox: VecDeque::new(),
            retry_at: None,
            backoff: Backoff::new(RETRY_INITIAL, RETRY_MAX),
            unconfirmed: Arc::clone(&unconfirmed),
        };
        let thread = thread::Builder::new()
            .name(format!("gamelan-reporter-{route}"))
            .spawn(move || worker.run())
            .ok();
        Self {
            tx,
            unconfirmed,
            thread: std::sync::Mutex::new(thread),
        }
    }

    pub fn submit(&self, result: TaskResult) {
        self.unconfirmed.fetch_add(1, Ordering::AcqRel);
        if let Err(e) = self.tx.send(Msg::Result(Box::new(result))) {
            log::error!(target: "gamelan.executor.error", "reporter is gone; result for {} kept only in memory", task_of(&e.0));
        }
    }

    pub fn resend(&self) {
        let _ = self.tx.send(Msg::Resend);
    }

    /// Results produced but not yet answered by the engine.
    pub fn unconfirmed(&self) -> usize {
        self.unconfirmed.load(Ordering::Acquire)
    }

    /// Sends everything waiting, retrying until `deadline` passes; returns how many results
    /// remain unconfirmed (0 = all answered).
    pub fn flush(&self, within: Duration) -> usize {
        let (tx, rx) = crossbeam_channel::bounded(1);
        if self.tx.send(Msg::Flush(within, tx)).is_err() {
            return self.unconfirmed();
        }
        rx.recv_timeout(within + Duration::from_secs(1))
            .unwrap_or_else(|_| self.unconfirmed())
    }

    pub fn stop(&self) {
        let _ = self.tx.send(Msg::Stop);
        let handle = self
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(t) = handle {
            let _ = t.join();
        }
    }
}

fn task_of(msg: &Msg) -> String {
    match msg {
        Msg::Result(r) => r.task_id().to_owned(),
        _ => String::new(),
    }
}

struct Worker {
    route: usize,
    transport: Arc<dyn EngineTransport>,
    policy: BatchPolicy,
    events: Arc<dyn ReportEvents>,
    rx: Receiver<Msg>,
    batcher: Batcher<TaskResult>,
    /// Sent (or attempted) and not answered: resent first, in order.
    outbox: VecDeque<TaskResult>,
    retry_at: Option<Instant>,
    backoff: Backoff,
    unconfirmed: Arc<AtomicUsize>,
}

impl Worker {
    fn run(mut self) {
        loop {
            let wake = [self.batcher.deadline(), self.retry_at]
                .into_iter()
                .flatten()
                .min();
            let msg = match wake {
                Some(t) => match self
                    .rx
                    .recv_timeout(t.saturating_duration_since(Instant::now()))
                {
                    Ok(m) => Some(m),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return,
                },
                None => match self.rx.recv() {
                    Ok(m) => Some(m),
                    Err(_) => return,
                },
            };
            if let Some(m) = msg
                && self.handle(m)
            {
                return;
            }
            // Take everything already waiting so one send carries it (natural batching).
            loop {
                match self.rx.try_recv() {
                    Ok(Msg::Result(r)) => self.accept(*r),
                    Ok(other) => {
                        if self.handle(other) {
                            return;
                        }
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.pump(Instant::now());
        }
    }

    /// Handles one message; true means stop.
    fn handle(&mut self, m: Msg) -> bool {
        match m {
            Msg::Result(r) => self.accept(*r),
            Msg::Resend => self.retry_at = Some(Instant::now()),
            Msg::Flush(within, reply) => {
                let left = self.flush(Instant::now() + within);
                let _ = reply.send(left);
            }
            Msg::Stop => return true,
        }
        false
    }

    fn accept(&mut self, r: TaskResult) {
        if let Some(batch) = self.batcher.push(r, Instant::now()) {
            self.outbox.extend(batch);
        }
    }

    /// Sends what is due: the outbox when its retry time came, then due batches.
    fn pump(&mut self, now: Instant) {
        if let Some(batch) = self.batcher.poll(now) {
            self.outbox.extend(batch);
        }
        if self.outbox.is_empty() {
            // Nothing to (re)send: a retry time left over from a Resend would otherwise be a
            // deadline in the past, and `run` would wake on it again at once, forever.
            self.retry_at = None;
            return;
        }
        if self.retry_at.is_some_and(|t| t > now) {
            return;
        }
        if !self.outbox.is_empty() && !self.events.connected(self.route) {
            // Parked until the supervisor reconnects and sends Resend; re-check now and then.
            self.retry_at = Some(now + RETRY_MAX);
            return;
        }
        while !self.outbox.is_empty() {
            if !self.send_one_batch() {
                return;
            }
        }
    }

    /// Sends up to one batch from the outbox; false when the send failed.
    fn send_one_batch(&mut self) -> bool {
        let n = self.outbox.len().min(self.policy.max_size.max(1));
        // Sent straight from the outbox: no copy of the results on the hot path.
        let sent = self.transport.report(&self.outbox.make_contiguous()[..n]);
        match sent {
            Ok(outcomes) => {
                for (r, o) in self.outbox.iter().zip(&outcomes) {
                    if let ReportOutcome::Rejected(reason) = o {
                        log::error!(target: "gamelan.executor.error", "engine rejected result for {}: {reason}", r.task_id());
                    }
                }
                // An engine that answered fewer outcomes than results leaves the rest queued.
                let answered = outcomes.len().min(n);
                self.outbox.drain(..answered);
                self.unconfirmed.fetch_sub(answered, Ordering::AcqRel);
                self.events.confirmed(answered);
                self.retry_at = None;
                self.backoff.reset();
                answered > 0
            }
            Err(e) => {
                log::warn!(target: "gamelan.executor.error", "reporting {n} results failed: {e}; kept in outbox ({} waiting)", self.outbox.len());
                if e.is_connection_loss() {
                    self.events.connection_lost(self.route, &e);
                }
                self.retry_at = Some(Instant::now() + self.backoff.next_delay());
                false
            }
        }
    }

    fn flush(&mut self, deadline: Instant) -> usize {
        self.outbox.extend(self.batcher.take());
        while let Ok(m) = self.rx.try_recv() {
            match m {
                Msg::Result(r) => self.outbox.push_back(*r),
                Msg::Resend | Msg::Stop => {}
                Msg::Flush(_, reply) => drop(reply),
            }
        }
        while !self.outbox.is_empty() && Instant::now() < deadline {
            if !self.send_one_batch() {
                let wait = self
                    .retry_at
                    .map_or(RETRY_INITIAL, |t| {
                        t.saturating_duration_since(Instant::now())
                    })
                    .min(deadline.saturating_duration_since(Instant::now()));
                // Wait for the back-off, but wake at once on a Resend from the supervisor.
                if let Ok(m) = self.rx.recv_timeout(wait) {
                    match m {
                        Msg::Result(r) => self.outbox.push_back(*r),
                        Msg::Resend => self.retry_at = None,
                        Msg::Stop | Msg::Flush(..) => {}
                    }
                }
            }
        }
        self.outbox.len()
    }
}
