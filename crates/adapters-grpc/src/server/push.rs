//! Push delivery, engine side: executors that registered an endpoint get their tasks through
//! `dispatcher.Executor.Execute`, one call per task, multiplexed on one channel per endpoint.
//!
//! An executor that cannot be reached is detached (its tasks go back to the queue) and
//! attached again on its next heartbeat, so a restart on the executor side heals by itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use gamelan_domain::{Backoff, Task};
use gamelan_ports::{EngineService, StreamId, TaskSink};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tonic::Status;
use tonic::transport::Channel;

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
    pub(crate) fn new(engine: Arc<dyn EngineService>, settings: PushClientSettings) -> Self {
        Self {
            engine,
            settings,
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
        log::info!(
            "pushing tasks for executor {executor_id} to {}",
            entry.endpoint
        );
        drop(entries);
        tokio::spawn(Arc::clone(self).drive(executor_id.to_owned(), stream, client, rx));
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
        client: ExecutorClient<Channel>,
        mut rx: UnboundedReceiver<Arc<Task>>,
    ) {
        let executor_id: Arc<str> = executor_id.into();
        while let Some(task) = rx.recv().await {
            tokio::spawn(Arc::clone(&self).push_one(
                Arc::clone(&executor_id),
                stream,
                client.clone(),
                task,
            ));
        }
    }

    async fn push_one(
        self: Arc<Self>,
        executor_id: Arc<str>,
        stream: StreamId,
        mut client: ExecutorClient<Channel>,
        task: Arc<Task>,
    ) {
        let mut backoff = Backoff::new(FIRST_BACKOFF, MAX_BACKOFF);
        loop {
            let mut request = tonic::Request::new(task_to_execution_request(&task));
            request.set_timeout(self.settings.request_timeout);
            let answer =
                tokio::time::timeout(self.settings.request_timeout, client.execute(request))
                    .await
                    .map_err(|_| "timed out".to_owned())
                    .and_then(|r| r.map_err(|s| s.message().to_owned()));
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
