//! Executor side: [`RestTransport`], the [`EngineTransport`] over the engine's REST API.
//!
//! Blocking HTTP/1.1 through one shared ureq agent (pooled keep-alive connections). Tasks
//! arrive by one long poll covering every registered executor id (a runtime hosting several
//! executor types must not wait on one while tasks for another sit queued); results go
//! back in batches per executor id. When the engine no longer knows an executor (it restarted
//! without its table), the transport registers it again and retries once, so a restart costs
//! no round trip through the runtime's reconnect path.

mod http;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use gamelan_ports::domain::{Task, TaskResult};
use gamelan_ports::sync::lock;
use gamelan_ports::{
    EngineTransport, Heartbeat, Inbound, NoToken, PolledTask, Registration, ReportOutcome,
    TokenSource, TransportError,
};

use self::http::{CallError, Payload, Verb, exchange};
use crate::wire::{ExecutorInfo, HeartbeatBody, Outcome, ResultAnswer};

pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_LONG_POLL_WAIT: Duration = Duration::from_secs(1);

/// Most executor ids one poll names (the engine refuses more).
const MAX_EXECUTORS_PER_POLL: usize = 256;

/// Idle keep-alive connections kept to the engine: the runtime's intake, reporter and
/// heartbeat threads each hold one while they talk.
const IDLE_CONNECTIONS: usize = 16;

#[derive(Clone)]
pub struct RestClientSettings {
    /// Base URL of the engine (`http://gamelan-engine:8080`); the API is under `/api/v1`.
    pub engine_url: String,
    pub connect_timeout: Duration,
    /// Bound on every request; a long poll gets its wait on top.
    pub request_timeout: Duration,
    /// Longest single long poll; also capped by the wait passed to `receive`.
    pub long_poll_wait: Duration,
    pub token: Arc<dyn TokenSource>,
}

impl RestClientSettings {
    pub fn new(engine_url: impl Into<String>) -> Self {
        Self {
            engine_url: engine_url.into(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: gamelan_ports::transport::DEFAULT_REQUEST_TIMEOUT,
            long_poll_wait: DEFAULT_LONG_POLL_WAIT,
            token: Arc::new(NoToken),
        }
    }
}

impl std::fmt::Debug for RestClientSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestClientSettings")
            .field("engine_url", &self.engine_url)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("long_poll_wait", &self.long_poll_wait)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestError {
    #[error("invalid engine URL '{url}': {reason}")]
    InvalidUrl { url: String, reason: String },
}

/// One registered executor and its URL prefix (`.../api/v1/executors/<escaped id>`).
#[derive(Debug)]
struct Endpoint {
    registration: Registration,
    url: String,
}

pub struct RestTransport {
    agent: ureq::Agent,
    base: url::Url,
    settings: RestClientSettings,
    registered: RwLock<Vec<Arc<Endpoint>>>,
    /// Which executor id received each task not yet reported or released, so its result
    /// goes back under the same id.
    owners: Mutex<HashMap<String, String>>,
    next: AtomicUsize,
    closed: Mutex<bool>,
    wake: Condvar,
}

impl std::fmt::Debug for RestTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestTransport")
            .field("engine", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl RestTransport {
    pub fn new(settings: RestClientSettings) -> Result<Self, RestError> {
        let invalid = |reason: String| RestError::InvalidUrl {
            url: settings.engine_url.clone(),
            reason,
        };
        let base =
            url::Url::parse(settings.engine_url.trim()).map_err(|e| invalid(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid(format!(
                "scheme '{}' is not http or https",
                base.scheme()
            )));
        }
        if base.cannot_be_a_base() || base.host().is_none() {
            return Err(invalid("no host".to_owned()));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_connect(Some(settings.connect_timeout))
            .timeout_global(Some(settings.request_timeout))
            .http_status_as_error(false)
            .max_idle_connections_per_host(IDLE_CONNECTIONS)
            .max_idle_connections(IDLE_CONNECTIONS)
            .user_agent(concat!("gamelan-executor/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Self {
            agent,
            base,
            settings,
            registered: RwLock::new(Vec::new()),
            owners: Mutex::new(HashMap::new()),
            next: AtomicUsize::new(0),
            closed: Mutex::new(false),
            wake: Condvar::new(),
        })
    }

    /// `<engine>/api/v1/<segments...>`, each segment percent-escaped.
    fn url(&self, segments: &[&str]) -> String {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["api", "v1"]).extend(segments);
        }
        url.into()
    }

    fn executor_url(&self, executor_id: &str) -> String {
        self.url(&["executors", executor_id])
    }

    fn ensure_open(&self) -> Result<(), TransportError> {
        if *lock(&self.closed) {
            Err(TransportError::Closed)
        } else {
            Ok(())
        }
    }

    fn endpoints(&self) -> Vec<Arc<Endpoint>> {
        self.registered
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn endpoint(&self, executor_id: &str) -> Option<Arc<Endpoint>> {
        self.registered
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|e| e.registration.executor_id == executor_id)
            .cloned()
    }

    fn call(
        &self,
        verb: Verb,
        url: &str,
        payload: Payload<'_>,
        timeout: Duration,
    ) -> Result<Vec<u8>, CallError> {
        let bearer = self.settings.token.bearer();
        exchange(&self.agent, verb, url, bearer.as_deref(), payload, timeout)
    }

    fn register_one(&self, registration: &Registration) -> Result<(), TransportError> {
        let info = ExecutorInfo::from_registration(registration, self.settings.request_timeout);
        self.call(
            Verb::Post,
            &self.url(&["executors"]),
            Payload::Json(&info),
            self.settings.request_timeout,
        )
        .map_err(CallError::into_transport)?;
        let endpoint = Arc::new(Endpoint {
            registration: registration.clone(),
            url: self.executor_url(&registration.executor_id),
        });
        let mut registered = self
            .registered
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match registered
            .iter_mut()
            .find(|e| e.registration.executor_id == registration.executor_id)
        {
            Some(slot) => *slot = endpoint,
            None => registered.push(endpoint),
        }
        Ok(())
    }

    /// Runs `op` against one executor's URL; if the engine answers that it does not know the
    /// executor and we hold its registration, registers it again and retries once.
    fn for_executor<T>(
        &self,
        executor_id: &str,
        op: impl Fn(&str) -> Result<T, CallError>,
    ) -> Result<T, CallError> {
        let url = self
            .endpoint(executor_id)
            .map_or_else(|| self.executor_url(executor_id), |e| e.url.clone());
        match op(&url) {
            Err(CallError::Http(f)) if f.is_unknown_executor() => {
                let Some(endpoint) = self.endpoint(executor_id) else {
                    return Err(CallError::Http(f));
                };
                log::info!(
                    target: "gamelan.executor.runtime",
                    "engine forgot executor {executor_id}; registering it again"
                );
                self.register_one(&endpoint.registration)
                    .map_err(CallError::Transport)?;
                op(&url)
            }
            other => other,
        }
    }

    /// Waits without network traffic until `wait` passes or the transport is closed.
    fn idle(&self, wait: Duration) -> Result<(), TransportError> {
        let deadline = Instant::now() + wait;
        let mut closed = lock(&self.closed);
        while !*closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            closed = self
                .wake
                .wait_timeout(closed, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        Err(TransportError::Closed)
    }

    fn poll_one(
        &self,
        endpoint: &Endpoint,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Task>, TransportError> {
        let id = &endpoint.registration.executor_id;
        let wait_ms = wait.as_millis().to_string();
        let max = max.to_string();
        let body = self
            .for_executor(id, |url| {
                let url = format!("{url}/tasks?max={max}&waitMs={wait_ms}");
                self.call(
                    Verb::Get,
                    &url,
                    Payload::None,
                    self.settings.request_timeout + wait,
                )
            })
            .map_err(CallError::into_transport)?;
        serde_json::from_slice(&body)
            .map_err(|e| TransportError::Protocol(format!("undecodable task list: {e}")))
    }

    /// One long poll covering every id in `ids`. If the engine has forgotten one of them
    /// (it restarted without its table), registers them all again and retries once: a
    /// registration of a known executor only refreshes it.
    fn poll_many(
        &self,
        ids: &[&str],
        endpoints: &[Arc<Endpoint>],
        max: usize,
        wait: Duration,
    ) -> Result<Vec<PolledTask>, TransportError> {
        let mut url = url::Url::parse(&self.url(&["executors", "tasks"]))
            .map_err(|e| TransportError::Protocol(format!("poll URL: {e}")))?;
        url.query_pairs_mut()
            .append_pair("executorIds", &ids.join(","))
            .append_pair("max", &max.to_string())
            .append_pair("waitMs", &wait.as_millis().to_string());
        let call = || {
            self.call(
                Verb::Get,
                url.as_str(),
                Payload::None,
                self.settings.request_timeout + wait,
            )
        };
        let body = match call() {
            Err(CallError::Http(f)) if f.is_unknown_executor() => {
                log::info!(
                    target: "gamelan.executor.runtime",
                    "engine forgot an executor ({}); registering all again", f.message
                );
                for endpoint in endpoints {
                    self.register_one(&endpoint.registration)?;
                }
                call()
            }
            other => other,
        }
        .map_err(CallError::into_transport)?;
        let polled: Vec<PolledTask> = serde_json::from_slice(&body)
            .map_err(|e| TransportError::Protocol(format!("undecodable task list: {e}")))?;
        if let Some(stray) = polled
            .iter()
            .find(|p| !ids.contains(&p.executor_id.as_str()))
        {
            return Err(TransportError::Protocol(format!(
                "engine handed task '{}' for executor '{}', which this poll did not name",
                stray.task.task_id, stray.executor_id
            )));
        }
        Ok(polled)
    }

    /// Posts one executor's results; a batch the engine finds too large is split in halves.
    fn post_results(
        &self,
        executor_id: &str,
        results: &[&TaskResult],
    ) -> Result<Vec<ReportOutcome>, TransportError> {
        let posted = self.for_executor(executor_id, |url| {
            self.call(
                Verb::Post,
                &format!("{url}/results"),
                Payload::Json(&results),
                self.settings.request_timeout,
            )
        });
        let body = match posted {
            Ok(body) => body,
            Err(CallError::Http(f)) if f.status == 413 && results.len() > 1 => {
                let (a, b) = results.split_at(results.len() / 2);
                let mut outcomes = self.post_results(executor_id, a)?;
                outcomes.extend(self.post_results(executor_id, b)?);
                return Ok(outcomes);
            }
            Err(e) => return Err(e.into_transport()),
        };
        let answers: Vec<ResultAnswer> = serde_json::from_slice(&body)
            .map_err(|e| TransportError::Protocol(format!("undecodable result answers: {e}")))?;
        if answers.len() != results.len() {
            return Err(TransportError::Protocol(format!(
                "engine answered {} of {} results",
                answers.len(),
                results.len()
            )));
        }
        answers
            .into_iter()
            .zip(results)
            .map(|(answer, result)| {
                if !answer.task_id.is_empty() && answer.task_id != result.task_id() {
                    return Err(TransportError::Protocol(format!(
                        "answer for task '{}' where '{}' was expected",
                        answer.task_id,
                        result.task_id()
                    )));
                }
                Ok(match answer.outcome {
                    Outcome::Accept => {
                        ReportOutcome::Accepted(gamelan_ports::domain::Acceptance::Accept)
                    }
                    Outcome::AlreadyProcessed => {
                        ReportOutcome::Accepted(gamelan_ports::domain::Acceptance::AlreadyProcessed)
                    }
                    Outcome::Stale => {
                        ReportOutcome::Accepted(gamelan_ports::domain::Acceptance::Stale)
                    }
                    Outcome::Rejected => ReportOutcome::Rejected(
                        answer
                            .message
                            .unwrap_or_else(|| "rejected by the engine".to_owned()),
                    ),
                })
            })
            .collect()
    }

    /// Groups item indices by the executor id that owns them (first registered when unknown
    /// or no longer registered), keeping first-seen order.
    fn group_by_owner<'a>(
        &self,
        task_ids: impl Iterator<Item = &'a str>,
        endpoints: &[Arc<Endpoint>],
    ) -> Vec<(String, Vec<usize>)> {
        let fallback = endpoints
            .first()
            .map(|e| e.registration.executor_id.as_str())
            .unwrap_or_default();
        let owners = lock(&self.owners);
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        for (index, task_id) in task_ids.enumerate() {
            let owner = owners
                .get(task_id)
                .map(String::as_str)
                .filter(|o| endpoints.iter().any(|e| e.registration.executor_id == *o))
                .unwrap_or(fallback);
            match groups.iter_mut().find(|(id, _)| id == owner) {
                Some((_, members)) => members.push(index),
                None => groups.push((owner.to_owned(), vec![index])),
            }
        }
        groups
    }

    fn forget<'a>(&self, task_ids: impl Iterator<Item = &'a str>) {
        let mut owners = lock(&self.owners);
        for id in task_ids {
            owners.remove(id);
        }
    }
}

impl EngineTransport for RestTransport {
    fn name(&self) -> &'static str {
        "rest"
    }

    /// HTTP needs no session: nothing to open, the first request shows reachability.
    fn connect(&self) -> Result<(), TransportError> {
        self.ensure_open()
    }

    fn register(&self, registrations: &[Registration]) -> Result<(), TransportError> {
        self.ensure_open()?;
        for registration in registrations {
            self.register_one(registration)?;
        }
        Ok(())
    }

    fn heartbeat(&self, heartbeats: &[Heartbeat]) -> Result<(), TransportError> {
        self.ensure_open()?;
        for heartbeat in heartbeats {
            let body = HeartbeatBody::from_heartbeat(heartbeat);
            self.for_executor(&heartbeat.executor_id, |url| {
                self.call(
                    Verb::Post,
                    &format!("{url}/heartbeat"),
                    Payload::Json(&body),
                    self.settings.request_timeout,
                )
            })
            .map_err(CallError::into_transport)?;
        }
        Ok(())
    }

    fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Inbound>, TransportError> {
        self.ensure_open()?;
        let endpoints = self.endpoints();
        if max == 0 || endpoints.is_empty() {
            self.idle(wait)?;
            return Ok(Vec::new());
        }
        let long = self.settings.long_poll_wait.min(wait);
        let polled = if let [endpoint] = endpoints.as_slice() {
            let id = &endpoint.registration.executor_id;
            let tasks = self.poll_one(endpoint, max, long)?;
            tasks.into_iter().map(|t| PolledTask::new(id, t)).collect()
        } else {
            // One poll for all of them, starting at a rotating one so none goes first
            // every time when there is more work than `max` (and, beyond what one poll may
            // name, so every executor is covered over successive polls).
            let start = self.next.fetch_add(1, Ordering::Relaxed) % endpoints.len();
            let ids: Vec<&str> = endpoints[start..]
                .iter()
                .chain(&endpoints[..start])
                .take(MAX_EXECUTORS_PER_POLL)
                .map(|e| e.registration.executor_id.as_str())
                .collect();
            self.poll_many(&ids, &endpoints, max, long)?
        };
        let mut owners = lock(&self.owners);
        let mut tasks = Vec::with_capacity(polled.len());
        for p in polled {
            if let Err(e) = p.task.validate() {
                log::error!(
                    target: "gamelan.executor.error",
                    "dropping invalid task '{}' from the engine: {e}", p.task.task_id
                );
                continue;
            }
            owners.insert(p.task.task_id.clone(), p.executor_id);
            tasks.push(Inbound::Task(p.task));
        }
        Ok(tasks)
    }

    fn report(&self, results: &[TaskResult]) -> Result<Vec<ReportOutcome>, TransportError> {
        self.ensure_open()?;
        if results.is_empty() {
            return Ok(Vec::new());
        }
        let endpoints = self.endpoints();
        if endpoints.is_empty() {
            return Err(TransportError::Unavailable(
                "no executor is registered with the engine".to_owned(),
            ));
        }
        let groups = self.group_by_owner(results.iter().map(TaskResult::task_id), &endpoints);
        let mut outcomes: Vec<Option<ReportOutcome>> = vec![None; results.len()];
        for (executor_id, members) in &groups {
            let batch: Vec<&TaskResult> = members.iter().map(|&i| &results[i]).collect();
            let answers = self.post_results(executor_id, &batch)?;
            for (&i, answer) in members.iter().zip(answers) {
                outcomes[i] = Some(answer);
            }
        }
        self.forget(results.iter().map(TaskResult::task_id));
        outcomes
            .into_iter()
            .map(|o| o.ok_or_else(|| TransportError::Protocol("a result got no answer".to_owned())))
            .collect()
    }

    fn release(&self, tasks: &[Task]) -> Result<(), TransportError> {
        self.ensure_open()?;
        let endpoints = self.endpoints();
        if tasks.is_empty() || endpoints.is_empty() {
            return Ok(());
        }
        let groups = self.group_by_owner(tasks.iter().map(|t| t.task_id.as_str()), &endpoints);
        for (executor_id, members) in &groups {
            let ids: Vec<&str> = members.iter().map(|&i| tasks[i].task_id.as_str()).collect();
            self.for_executor(executor_id, |url| {
                self.call(
                    Verb::Post,
                    &format!("{url}/release"),
                    Payload::Json(&ids),
                    self.settings.request_timeout,
                )
            })
            .map_err(CallError::into_transport)?;
        }
        self.forget(tasks.iter().map(|t| t.task_id.as_str()));
        Ok(())
    }

    fn unregister(&self, executor_ids: &[String]) -> Result<(), TransportError> {
        self.ensure_open()?;
        for id in executor_ids {
            match self.call(
                Verb::Delete,
                &self.executor_url(id),
                Payload::None,
                self.settings.request_timeout,
            ) {
                Ok(_) => {}
                // Already gone is what we wanted.
                Err(CallError::Http(f)) if f.status == 404 => {}
                Err(e) => return Err(e.into_transport()),
            }
            self.registered
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|e| e.registration.executor_id != *id);
        }
        Ok(())
    }

    fn close(&self) {
        *lock(&self.closed) = true;
        self.wake.notify_all();
    }
}
