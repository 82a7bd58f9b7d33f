//! The runtime's shared state and its start/stop sequence.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use gamelan_domain::{
    CommunicationType, ExecutorRegistry, RuntimeEvent, RuntimeState, RuntimeStateMachine,
    TaskResult,
};
use gamelan_ports::{
    Clock, EngineTransport, MetricsSink, Registration, TaskOutcome, TransportError,
    WorkflowExecutor,
};
use serde::Serialize;

use super::pool::{Finished, HandedBack, Hosted, WorkerPool};
use super::reporter::{ReportEvents, Reporter};
use super::supervisor::{self, SupervisorMsg};
use super::{RuntimeError, RuntimeSettings, intake};
use crate::observability::{HealthSource, HttpServer, RuntimeMetrics};

pub(crate) use gamelan_ports::sync::lock;

/// One transport and the executors reached through it.
pub(crate) struct Route {
    pub(crate) communication: CommunicationType,
    pub(crate) transport: Arc<dyn EngineTransport>,
    pub(crate) registrations: Vec<Registration>,
    /// Hosted executor indices using this route.
    pub(crate) executors: Vec<usize>,
    pub(crate) connected: AtomicBool,
    pub(crate) reporter: Reporter,
}

pub(crate) struct Core {
    pub(crate) settings: RuntimeSettings,
    pub(crate) hosted: Arc<[Hosted]>,
    pub(crate) registry: ExecutorRegistry<usize>,
    pub(crate) routes: Vec<Route>,
    pub(crate) pool: WorkerPool,
    pub(crate) machine: Mutex<RuntimeStateMachine>,
    ready_cv: Condvar,
    pub(crate) stopping: AtomicBool,
    pub(crate) metrics: RuntimeMetrics,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) completed: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) last_heartbeat_ms: AtomicU64,
    /// Set when reconnecting used up `reconnect_max_retries`: the runtime stays FAILED.
    pub(crate) gave_up: Mutex<Option<String>>,
    pub(crate) supervisor_tx: Mutex<Option<Sender<SupervisorMsg>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    http: Mutex<Option<HttpServer>>,
    http_addr: Mutex<Option<SocketAddr>>,
}

/// The `/health` document.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    pub status: &'static str,
    pub state: RuntimeState,
    pub ready: bool,
    pub runtime_id: String,
    pub executors: Vec<ExecutorHealth>,
    pub transports: Vec<TransportHealth>,
    pub active_tasks: usize,
    /// Live worker threads, counting those stuck past a TIMEOUT (bounded by
    /// `thread-pool-size` plus `task.max-abandoned-threads` per executor type).
    pub worker_threads: usize,
    pub queue_size: usize,
    pub retrying_tasks: usize,
    pub unreported_results: usize,
    pub completed_tasks: u64,
    pub failed_tasks: u64,
    /// Epoch milliseconds of the last heartbeat the engine accepted.
    pub last_heartbeat: Option<u64>,
    /// Why the runtime stopped reconnecting (`engine.reconnect.max-retries` used up); it
    /// stays FAILED and DOWN until restarted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutorHealth {
    pub executor_id: String,
    pub executor_type: String,
    pub communication_type: CommunicationType,
    pub max_concurrent_tasks: u32,
    pub active_tasks: usize,
    pub queued_tasks: usize,
    /// Tasks of this type whose result is deferred to a completion handle (no thread held).
    pub deferred_tasks: usize,
    /// Threads stuck in this type's executor past a TIMEOUT, still running.
    pub abandoned_threads: usize,
    /// False once `abandoned_threads` reached `task.max-abandoned-threads`: the next hang
    /// of this type costs the pool a worker. The process stays UP and ready (the other
    /// types still work); `reason` says why.
    pub healthy: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TransportHealth {
    pub transport: &'static str,
    pub communication_type: CommunicationType,
    pub connected: bool,
}

/// What a graceful shutdown did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Tasks handed back to the engine unstarted (or abandoned at the drain deadline).
    pub released: usize,
    /// Results the engine never confirmed (0 = nothing lost in flight).
    pub unreported: usize,
    /// Tasks that could not be handed back because the engine was unreachable.
    pub release_failed: usize,
}

struct Events(Weak<Core>);

impl ReportEvents for Events {
    fn confirmed(&self, n: usize) {
        if let Some(core) = self.0.upgrade() {
            core.apply(RuntimeEvent::ResultReported(n));
        }
    }

    fn connection_lost(&self, route: usize, error: &TransportError) {
        if let Some(core) = self.0.upgrade() {
            core.connection_lost(route, error);
        }
    }

    fn connected(&self, route: usize) -> bool {
        self.0
            .upgrade()
            .and_then(|c| c.route(route).map(|r| r.connected.load(Ordering::Acquire)))
            .unwrap_or(false)
    }
}

fn resolve_routes(
    hosted: &[Hosted],
    transports: &[(CommunicationType, Arc<dyn EngineTransport>)],
    default: Option<CommunicationType>,
) -> Result<Vec<usize>, RuntimeError> {
    let configured = || {
        transports
            .iter()
            .map(|(c, _)| c.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    hosted
        .iter()
        .map(|h| {
            let wanted = h.meta.communication_type;
            if let Some(i) = transports.iter().position(|(c, _)| *c == wanted) {
                return Ok(i);
            }
            let fallback = default.and_then(|d| transports.iter().position(|(c, _)| *c == d));
            match fallback {
                Some(i) => {
                    log::warn!(
                        target: "gamelan.executor.runtime",
                        "executor '{}' declares {} but that transport is not configured; using {}",
                        h.meta.executor_type, wanted, transports[i].0
                    );
                    Ok(i)
                }
                None => Err(RuntimeError::NoTransport {
                    executor_type: h.meta.executor_type.clone(),
                    wanted,
                    configured: if transports.is_empty() {
                        "none".into()
                    } else {
                        configured()
                    },
                }),
            }
        })
        .collect()
}

impl Core {
    pub(crate) fn start(
        settings: RuntimeSettings,
        executors: Vec<Arc<dyn WorkflowExecutor>>,
        transports: Vec<(CommunicationType, Arc<dyn EngineTransport>)>,
        default_transport: Option<CommunicationType>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, RuntimeError> {
        let started = Instant::now();
        let mut machine = RuntimeStateMachine::new();
        let _ = machine.apply(RuntimeEvent::ConfigLoaded);
        if executors.is_empty() {
            return Err(RuntimeError::NoExecutors);
        }
        let mut registry = ExecutorRegistry::new();
        let mut hosted = Vec::with_capacity(executors.len());
        for executor in executors {
            let meta = executor.metadata();
            registry.register(meta.clone(), hosted.len())?;
            hosted.push(Hosted { meta, executor });
        }
        let hosted: Arc<[Hosted]> = hosted.into();
        let _ = machine.apply(RuntimeEvent::ExecutorsDiscovered);
        let route_of = resolve_routes(&hosted, &transports, default_transport)?;
        for h in hosted.iter() {
            log::info!(
                target: "gamelan.executor.runtime",
                "discovered executor '{}' ({}, max {} concurrent, node types {:?})",
                h.meta.executor_type, h.meta.communication_type, h.meta.max_concurrent_tasks, h.meta.supported_node_types
            );
        }
        let metrics = RuntimeMetrics::new(hosted.iter().map(|h| h.meta.executor_type.as_str()));
        metrics.registry_size(hosted.len());

        // Keep only transports some executor uses; route index = position among those.
        let mut used = route_of.clone();
        used.sort_unstable();
        used.dedup();
        let exec_route: Vec<usize> = route_of
            .iter()
            .map(|t| used.iter().position(|u| u == t).unwrap_or(0))
            .collect();
        let mut slots: Vec<_> = transports.into_iter().map(Some).collect();
        let chosen: Vec<_> = used.iter().filter_map(|&t| slots[t].take()).collect();

        let core = Arc::new_cyclic(|weak: &Weak<Core>| {
            let routes = chosen
                .into_iter()
                .enumerate()
                .map(|(i, (communication, transport))| {
                    let executors: Vec<usize> =
                        (0..hosted.len()).filter(|&e| exec_route[e] == i).collect();
                    let registrations = executors
                        .iter()
                        .map(|&e| registration(&settings, &hosted[e], communication))
                        .collect();
                    let reporter = Reporter::start(
                        i,
                        Arc::clone(&transport),
                        settings.batch,
                        Arc::new(Events(weak.clone())),
                    );
                    Route {
                        communication,
                        transport,
                        registrations,
                        executors,
                        connected: AtomicBool::new(false),
                        reporter,
                    }
                })
                .collect::<Vec<_>>();
            let finish_weak = weak.clone();
            let pool = WorkerPool::start(
                settings.pool.clone(),
                Arc::clone(&hosted),
                Arc::clone(&clock),
                Box::new(move |f: Finished| {
                    if let Some(core) = finish_weak.upgrade() {
                        core.finished(f);
                    }
                }),
            );
            Core {
                settings,
                hosted: Arc::clone(&hosted),
                registry,
                routes,
                pool,
                machine: Mutex::new(machine),
                ready_cv: Condvar::new(),
                stopping: AtomicBool::new(false),
                metrics,
                clock,
                completed: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                last_heartbeat_ms: AtomicU64::new(0),
                gave_up: Mutex::new(None),
                supervisor_tx: Mutex::new(None),
                threads: Mutex::new(Vec::new()),
                http: Mutex::new(None),
                http_addr: Mutex::new(None),
            }
        });
        if let Some(addr) = core.settings.http_addr {
            let server = HttpServer::start(
                addr,
                Arc::new(HealthView(Arc::downgrade(&core))),
                core.settings.metrics_endpoint,
            )?;
            log::info!(target: "gamelan.executor.runtime", "health and metrics on http://{}", server.addr());
            *lock(&core.http_addr) = Some(server.addr());
            *lock(&core.http) = Some(server);
        }
        let sup = supervisor::start(&core).map_err(|e| RuntimeError::Spawn(e.to_string()))?;
        lock(&core.threads).push(sup);
        for r in 0..core.routes.len() {
            let t = intake::start(&core, r).map_err(|e| RuntimeError::Spawn(e.to_string()))?;
            lock(&core.threads).push(t);
        }
        log::info!(
            target: "gamelan.executor.runtime",
            "runtime '{}' started with {} executors in {:?}",
            core.settings.runtime_id, core.hosted.len(), started.elapsed()
        );
        Ok(core)
    }

    pub(crate) fn apply(&self, event: RuntimeEvent) {
        let mut m = lock(&self.machine);
        let before = m.state();
        match m.apply(event) {
            Ok(after) => {
                if before != after {
                    log::debug!(target: "gamelan.executor.runtime", "state {before} -> {after} on {event:?}");
                    self.ready_cv.notify_all();
                }
            }
            Err(e) => log::debug!(target: "gamelan.executor.runtime", "{e}"),
        }
    }

    pub(crate) fn state(&self) -> RuntimeState {
        lock(&self.machine).state()
    }

    pub(crate) fn all_connected(&self) -> bool {
        self.routes
            .iter()
            .all(|r| r.connected.load(Ordering::Acquire))
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.state().accepts_tasks() && self.all_connected()
    }

    pub(crate) fn wait_ready(&self, timeout: Duration) -> bool {
        self.wait_for(timeout, |m| {
            m.state().accepts_tasks() && self.all_connected()
        })
    }

    /// Why reconnecting stopped, once `reconnect_max_retries` was used up.
    pub(crate) fn failure(&self) -> Option<String> {
        lock(&self.gave_up).clone()
    }

    /// Waits up to `timeout` for the supervisor to give up reconnecting.
    pub(crate) fn wait_gave_up(&self, timeout: Duration) -> bool {
        self.wait_for(timeout, |_| self.failure().is_some())
    }

    /// Records that reconnecting stopped for good and wakes the waiters.
    pub(crate) fn gave_up(&self, why: String) {
        *lock(&self.gave_up) = Some(why);
        let _m = lock(&self.machine);
        self.ready_cv.notify_all();
    }

    fn wait_for(&self, timeout: Duration, done: impl Fn(&RuntimeStateMachine) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut m = lock(&self.machine);
        loop {
            if done(&m) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            m = self
                .ready_cv
                .wait_timeout(m, left.min(Duration::from_millis(50)))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    pub(crate) fn connection_lost(&self, route: usize, error: &TransportError) {
        let Some(r) = self.route(route) else { return };
        if r.connected.swap(false, Ordering::AcqRel) {
            log::warn!(
                target: "gamelan.executor.runtime",
                "connection to engine lost on {} ({error}); will reconnect",
                r.transport.name()
            );
            self.apply(RuntimeEvent::ConnectionLost);
            if let Some(tx) = &*lock(&self.supervisor_tx) {
                let _ = tx.send(SupervisorMsg::Lost);
            }
        }
    }

    pub(crate) fn route(&self, index: usize) -> Option<&Route> {
        self.routes.get(index)
    }

    fn finished(&self, f: Finished) {
        let meta = &self.hosted[f.exec].meta;
        let outcome = if f.result.is_completed() {
            self.completed.fetch_add(1, Ordering::Relaxed);
            TaskOutcome::Completed
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
            TaskOutcome::Failed
        };
        self.metrics
            .task_finished(&meta.executor_type, outcome, f.duration);
        self.apply(RuntimeEvent::ResultReady);
        self.report(f.route, f.result);
    }

    /// Sends a result produced outside the pool (NO_EXECUTOR, invalid task).
    pub(crate) fn report(&self, route: usize, result: TaskResult) {
        match self.route(route) {
            Some(r) => r.reporter.submit(result),
            None => {
                log::error!(target: "gamelan.executor.error", "no route {route} for result {}", result.task_id());
            }
        }
    }

    pub(crate) fn executor_ids(&self) -> Vec<String> {
        self.routes
            .iter()
            .flat_map(|r| r.registrations.iter().map(|x| x.executor_id.clone()))
            .collect()
    }

    pub(crate) fn http_addr(&self) -> Option<SocketAddr> {
        *lock(&self.http_addr)
    }

    pub(crate) fn metrics_text(&self) -> String {
        for (h, q) in self.hosted.iter().zip(self.pool.queued_by_executor()) {
            self.metrics.queue_size(&h.meta.executor_type, q);
        }
        self.metrics.encode()
    }

    pub(crate) fn health(&self) -> Health {
        let state = self.state();
        let queued = self.pool.queued_by_executor();
        let running = self.pool.running_by_executor();
        let ready = self.is_ready();
        let abandoned = self.pool.abandoned_by_executor();
        let deferred = self.pool.deferred_by_executor();
        let cap = self.pool.max_abandoned_threads();
        let executors = self
            .routes
            .iter()
            .flat_map(|r| r.executors.iter().zip(&r.registrations))
            .map(|(&e, reg)| ExecutorHealth {
                executor_id: reg.executor_id.clone(),
                executor_type: self.hosted[e].meta.executor_type.clone(),
                communication_type: self.hosted[e].meta.communication_type,
                max_concurrent_tasks: self.hosted[e].meta.max_concurrent_tasks,
                active_tasks: running.get(e).copied().unwrap_or(0),
                queued_tasks: queued.get(e).copied().unwrap_or(0),
                deferred_tasks: deferred.get(e).copied().unwrap_or(0),
                abandoned_threads: abandoned.get(e).copied().unwrap_or(0),
                healthy: !unhealthy(abandoned.get(e).copied().unwrap_or(0), cap),
                reason: unhealthy(abandoned.get(e).copied().unwrap_or(0), cap).then(|| {
                    format!(
                        "{} threads stuck in this executor past their timeout \
                         (task.max-abandoned-threads = {cap}); further hangs are not replaced",
                        abandoned.get(e).copied().unwrap_or(0)
                    )
                }),
            })
            .collect();
        let last = self.last_heartbeat_ms.load(Ordering::Acquire);
        let failure = lock(&self.gave_up).clone();
        Health {
            status: if state == RuntimeState::Shutdown
                || state == RuntimeState::Initializing
                || failure.is_some()
            {
                "DOWN"
            } else {
                "UP"
            },
            state,
            ready,
            runtime_id: self.settings.runtime_id.clone(),
            executors,
            transports: self
                .routes
                .iter()
                .map(|r| TransportHealth {
                    transport: r.transport.name(),
                    communication_type: r.communication,
                    connected: r.connected.load(Ordering::Acquire),
                })
                .collect(),
            active_tasks: self.pool.running(),
            worker_threads: self.pool.worker_threads(),
            queue_size: self.pool.waiting(),
            retrying_tasks: self.pool.retrying(),
            unreported_results: self.routes.iter().map(|r| r.reporter.unconfirmed()).sum(),
            completed_tasks: self.completed.load(Ordering::Relaxed),
            failed_tasks: self.failed.load(Ordering::Relaxed),
            last_heartbeat: (last > 0).then_some(last),
            failure,
        }
    }

    /// Hands tasks back to the engine they came from.
    fn release(&self, tasks: Vec<HandedBack>, report: &mut ShutdownReport) {
        let mut per_route: BTreeMap<usize, Vec<gamelan_domain::Task>> = BTreeMap::new();
        for hb in tasks {
            per_route
                .entry(hb.route)
                .or_default()
                .push(Arc::unwrap_or_clone(hb.task));
        }
        for (route, tasks) in per_route {
            let Some(r) = self.route(route) else { continue };
            report.released += tasks.len();
            log::info!(target: "gamelan.executor.runtime", "handing {} tasks back to the engine", tasks.len());
            if let Err(e) = r.transport.release(&tasks) {
                log::warn!(target: "gamelan.executor.error", "could not hand back {} tasks: {e}; the engine will redispatch them after its timeout", tasks.len());
                report.release_failed += tasks.len();
            }
        }
    }

    pub(crate) fn shutdown(self: Arc<Self>) -> ShutdownReport {
        let t0 = Instant::now();
        let target = "gamelan.executor.runtime";
        log::info!(target: target, "shutdown: stopping intake");
        self.apply(RuntimeEvent::ShutdownRequested);
        self.stopping.store(true, Ordering::Release);
        if let Some(tx) = lock(&self.supervisor_tx).take() {
            let _ = tx.send(SupervisorMsg::Stop);
        }
        for t in std::mem::take(&mut *lock(&self.threads)) {
            let _ = t.join();
        }
        let mut report = ShutdownReport::default();
        let unstarted = self.pool.close();
        self.release(unstarted, &mut report);
        let drain = self.settings.drain_timeout;
        log::info!(target: target, "shutdown: draining running tasks (up to {drain:?})");
        let abandoned = self.pool.drain(drain);
        self.release(abandoned, &mut report);
        let flush_budget = drain
            .saturating_sub(t0.elapsed())
            .max(Duration::from_secs(2));
        for r in &self.routes {
            report.unreported += r.reporter.flush(flush_budget);
            r.reporter.stop();
        }
        for r in &self.routes {
            let ids: Vec<String> = r
                .registrations
                .iter()
                .map(|x| x.executor_id.clone())
                .collect();
            match r.transport.unregister(&ids) {
                Ok(()) => log::info!(target: target, "unregistered {}", ids.join(", ")),
                Err(e) => log::warn!(target: "gamelan.executor.error", "unregister failed: {e}"),
            }
            r.transport.close();
        }
        if let Some(server) = lock(&self.http).take() {
            server.stop();
        }
        self.apply(RuntimeEvent::Drained);
        log::info!(
            target: target,
            "shutdown complete in {:?}: {} tasks handed back, {} results unconfirmed",
            t0.elapsed(), report.released, report.unreported
        );
        report
    }
}

fn registration(
    settings: &RuntimeSettings,
    hosted: &Hosted,
    communication: CommunicationType,
) -> Registration {
    let mut meta = hosted.meta.clone();
    meta.communication_type = communication;
    let mut attributes = BTreeMap::new();
    attributes.insert(
        "gamelan.executor.version".to_owned(),
        if meta.version.is_empty() {
            settings.executor_version.clone()
        } else {
            meta.version.clone()
        },
    );
    if let Some(timeout) = settings.heartbeat_timeout {
        attributes.insert(
            gamelan_ports::HEARTBEAT_TIMEOUT_KEY.to_owned(),
            timeout.as_millis().to_string(),
        );
    }
    for (c, k, v) in &settings.registration_attributes {
        if *c == communication {
            attributes.insert(k.clone(), v.clone());
        }
    }
    let endpoint = settings
        .registration_endpoint
        .iter()
        .find(|(c, _)| *c == communication)
        .map(|(_, e)| e.clone())
        .unwrap_or_default();
    Registration {
        executor_id: format!("{}-{}", settings.runtime_id, meta.executor_type),
        metadata: meta,
        endpoint,
        attributes,
    }
}

/// A type is unhealthy once its stuck threads used up the replacement budget.
fn unhealthy(abandoned: usize, cap: usize) -> bool {
    abandoned > 0 && abandoned >= cap
}

/// The health endpoint's view of the core; weak so the HTTP thread never keeps it alive.
struct HealthView(Weak<Core>);

impl HealthSource for HealthView {
    fn live(&self) -> bool {
        self.0
            .upgrade()
            .is_some_and(|c| c.state() != RuntimeState::Shutdown)
    }

    fn ready(&self) -> bool {
        self.0.upgrade().is_some_and(|c| c.is_ready())
    }

    fn health(&self) -> serde_json::Value {
        self.0
            .upgrade()
            .and_then(|c| serde_json::to_value(c.health()).ok())
            .unwrap_or_else(|| serde_json::json!({"status": "DOWN"}))
    }

    fn metrics(&self) -> String {
        self.0
            .upgrade()
            .map(|c| c.metrics_text())
            .unwrap_or_default()
    }
}
