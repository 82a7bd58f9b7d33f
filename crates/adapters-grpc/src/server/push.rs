//! Push delivery, engine side: executors that registered an endpoint get their tasks through
//! `dispatcher.Executor.Execute`, one call per task, multiplexed on one channel per endpoint.
//!
//! An executor that cannot be reached is detached (its tasks go back to the queue) and
//! attached again on its next heartbeat, so a restart on the executor side heals by itself.
//!
//! Every call carries the engine's bearer token (when one is configured); an executor that
//! refuses it, or refuses the engine's TLS certificate, is treated as unreachable and the
//! refusal is logged as an error naming the cause.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use gamelan_domain::{Backoff, Task};
use gamelan_ports::{EngineService, StreamId, TaskSink, TokenSource};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::auth::attach_bearer;
use crate::convert::task_to_execution_request;
use crate::error::engine_error_to_status;
use crate::proto::dispatcher::executor_client::ExecutorClient;
use crate::settings::PushClientSettings;

const FULL: i32 = 429;
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

struct Entry {
    endpoint: String,
    max_in_flight: u32,
    attached: Option<StreamId>,
}

pub(crate) struct PushDispatch {
    engine: Arc<dyn EngineService>,
    settings: PushClientSettings,
    token: Arc<dyn TokenSource>,
    entries: Mutex<HashMap<String, Entry>>,
}

struct PushSink(UnboundedSender<Arc<Task>>);

impl TaskSink for PushSink {
    fn deliver(&self, task: Arc<Task>) -> bool {
        self.0.send(task).is_ok()
    }

    /// The push protocol has no cancellation; the executor's own timeout ends the task.
    fn cancel(&self, task_id: &str, _reason: &str) -> bool {
        log::debug!("push delivery cannot carry the cancellation of {task_id}");
        !self.0.is_closed()
    }
}

impl PushDispatch {
    pub(crate) fn new(
        engine: Arc<dyn EngineService>,
        settings: PushClientSettings,
        token: Arc<dyn TokenSource>,
    ) -> Self {
        Self {
            engine,
            settings,
            token,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// (Re-)registration with an endpoint: replaces any previous attachment.
    pub(crate) fn register(
        self: &Arc<Self>,
        executor_id: &str,
        endpoint: &str,
        max_in_flight: u32,
    ) -> Result<(), Status> {
        self.settings
            .endpoint(endpoint)
            .map_err(|e| Status::invalid_argument(format!("endpoint '{endpoint}': {e}")))?;
        self.forget(executor_id);
        self.lock().insert(
            executor_id.to_owned(),
            Entry {
                endpoint: endpoint.to_owned(),
                max_in_flight,
                attached: None,
            },
        );
        self.reattach(executor_id)
    }

    /// Unregistration, or a re-registration without an endpoint.
    pub(crate) fn forget(&self, executor_id: &str) {
        let old = self.lock().remove(executor_id);
        if let Some(stream) = old.and_then(|e| e.attached) {
            self.engine.detach(executor_id, stream);
        }
    }

    /// Attaches a known push executor that is not attached (after it was unreachable).
    pub(crate) fn reattach(self: &Arc<Self>, executor_id: &str) -> Result<(), Status> {
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(executor_id) else {
            return Ok(());
        };
        if entry.attached.is_some() {
            return Ok(());
        }
        let channel = self
            .settings
            .endpoint(&entry.endpoint)
            .map_err(|e| Status::invalid_argument(e.to_string()))?
            .connect_lazy();
        let max = self.settings.max_message_size;
        let client = ExecutorClient::new(channel)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max);
        let (tx, rx) = unbounded_channel();
        let stream = self
            .engine
            .attach(executor_id, entry.max_in_flight, Arc::new(PushSink(tx)))
            .map_err(|e| engine_error_to_status(&e))?;
        entry.attached = Some(stream);
        let entry_endpoint = entry.endpoint.clone();
        log::info!(
            "pushing tasks for executor {executor_id} to {}",
            entry.endpoint
        );
        drop(entries);
        let tls = PushClientSettings::is_tls(&entry_endpoint);
        tokio::spawn(Arc::clone(self).drive(executor_id.to_owned(), stream, tls, client, rx));
        Ok(())
    }

    fn is_current(&self, executor_id: &str, stream: StreamId) -> bool {
        self.lock()
            .get(executor_id)
            .is_some_and(|e| e.attached == Some(stream))
    }

    /// The executor cannot be reached: detach once (the engine requeues its tasks).
    fn unreachable(&self, executor_id: &str, stream: StreamId, why: &str) {
        let mut entries = self.lock();
        if let Some(e) = entries.get_mut(executor_id)
            && e.attached == Some(stream)
        {
            e.attached = None;
            drop(entries);
            log::warn!(
                "executor {executor_id} unreachable for push ({why}); detached until its next heartbeat"
            );
            self.engine.detach(executor_id, stream);
        }
    }

    async fn drive(
        self: Arc<Self>,
        executor_id: String,
        stream: StreamId,
        tls: bool,
        client: ExecutorClient<Channel>,
        mut rx: UnboundedReceiver<Arc<Task>>,
    ) {
        let executor_id: Arc<str> = executor_id.into();
        while let Some(task) = rx.recv().await {
            tokio::spawn(Arc::clone(&self).push_one(
                Arc::clone(&executor_id),
                stream,
                tls,
                client.clone(),
                task,
            ));
        }
    }

    async fn push_one(
        self: Arc<Self>,
        executor_id: Arc<str>,
        stream: StreamId,
        tls: bool,
        mut client: ExecutorClient<Channel>,
        task: Arc<Task>,
    ) {
        let mut backoff = Backoff::new(FIRST_BACKOFF, MAX_BACKOFF);
        loop {
            let mut request = tonic::Request::new(task_to_execution_request(&task));
            request.set_timeout(self.settings.request_timeout);
            if let Err(s) = attach_bearer(self.token.as_ref(), request.metadata_mut()) {
                log::error!("cannot push to executor {executor_id}: {}", s.message());
                return self.unreachable(&executor_id, stream, s.message());
            }
            let answer =
                tokio::time::timeout(self.settings.request_timeout, client.execute(request))
                    .await
                    .map_err(|_| "timed out".to_owned())
                    .and_then(|r| r.map_err(|s| refusal(&executor_id, tls, &s)));
            let ack = match answer {
                Ok(a) => a.into_inner(),
                Err(why) => return self.unreachable(&executor_id, stream, &why),
            };
            if ack.accepted {
                if let Err(e) = self.engine.acknowledge(&task.task_id) {
                    log::debug!("acknowledging pushed task {}: {e}", task.task_id);
                }
                return;
            }
            if ack.code != FULL {
                // Left in flight: the engine's ack timeout re-dispatches it, perhaps elsewhere.
                log::error!(
                    "executor {executor_id} refused task {} ({}): {}",
                    task.task_id,
                    ack.code,
                    ack.message
                );
                return;
            }
            if !self.is_current(&executor_id, stream) {
                return;
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }
}

/// The reason of a failed call, with the innermost transport error. Refused credentials do
/// not heal by retrying, so they are logged as errors saying what to check. Over TLS 1.3 a
/// refused client certificate reaches the engine only as a closed connection.
fn refusal(executor_id: &str, tls: bool, status: &Status) -> String {
    let why = match innermost(status) {
        Some(cause) if cause != status.message() => format!("{}: {cause}", status.message()),
        _ => status.message().to_owned(),
    };
    match status.code() {
        Code::Unauthenticated | Code::PermissionDenied => log::error!(
            "executor {executor_id} refused the engine's push token: {why} (the engine's \
             jwt.secret and jwt.issuer must match the executor's)"
        ),
        Code::Cancelled | Code::Unavailable | Code::Unknown if tls => log::error!(
            "TLS push to executor {executor_id} failed: {why} (a closed connection usually \
             means the executor refused the engine's certificate: its grpc.ca-certificate-path \
             must have signed gamelan.engine.grpc.certificate-path, and the engine's \
             gamelan.engine.grpc.ca-certificate-path must have signed the executor's)"
        ),
        _ => {}
    }
    why
}

/// The innermost error of a transport failure (the one naming the cause).
fn innermost(status: &Status) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    let mut last = None;
    while let Some(e) = source {
        last = Some(e.to_string());
        source = e.source();
    }
    last
}
