//! The engine's outbound streams and the task sinks that feed them.
//!
//! A sink is what the engine holds per attached executor; its `deliver` is a synchronous
//! send on a tokio unbounded channel, so the engine can call it from any thread. The response
//! stream ends when the session says so (an explicit end marker), not when the last sender
//! drops: the engine may keep a sink a little longer than the stream lives.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use gamelan_domain::Task;
use gamelan_ports::{EngineService, StreamId, TaskSink};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio_stream::Stream;
use tonic::Status;

use crate::convert::task_to_proto;
use crate::proto::v1 as pb;

pub(crate) enum Outbound<T> {
    Item(T),
    /// `None` ends the stream with OK, `Some` with that status.
    End(Option<Status>),
}

/// Detaches every executor attached through one stream when that stream goes away, however
/// it goes (client gone, error, handler cancelled), so its unfinished tasks are requeued.
pub(crate) struct DetachGuard {
    engine: Arc<dyn EngineService>,
    attached: Vec<(String, StreamId)>,
}

impl DetachGuard {
    pub(crate) fn new(engine: Arc<dyn EngineService>) -> Self {
        Self {
            engine,
            attached: Vec::new(),
        }
    }

    pub(crate) fn has(&self, executor_id: &str) -> bool {
        self.attached.iter().any(|(id, _)| id == executor_id)
    }

    pub(crate) fn add(&mut self, executor_id: String, stream: StreamId) {
        self.attached.push((executor_id, stream));
    }
}

impl Drop for DetachGuard {
    fn drop(&mut self) {
        for (id, stream) in self.attached.drain(..) {
            self.engine.detach(&id, stream);
        }
    }
}

pub(crate) struct OutStream<T> {
    rx: UnboundedReceiver<Outbound<T>>,
    done: bool,
    _guard: Option<DetachGuard>,
}

impl<T> OutStream<T> {
    pub(crate) fn new(rx: UnboundedReceiver<Outbound<T>>, guard: Option<DetachGuard>) -> Self {
        Self {
            rx,
            done: false,
            _guard: guard,
        }
    }
}

impl<T> Stream for OutStream<T> {
    type Item = Result<T, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Outbound::Item(t))) => Poll::Ready(Some(Ok(t))),
            Poll::Ready(Some(Outbound::End(status))) => {
                self.done = true;
                Poll::Ready(status.map(Err))
            }
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// ExecuteStream: tasks and cancellations.
pub(crate) struct BidiSink(pub UnboundedSender<Outbound<pb::EngineMessage>>);

impl TaskSink for BidiSink {
    fn deliver(&self, task: Arc<Task>) -> bool {
        let m = pb::engine_message::Message::Task(task_to_proto(&task));
        self.0
            .send(Outbound::Item(pb::EngineMessage { message: Some(m) }))
            .is_ok()
    }

    fn cancel(&self, task_id: &str, reason: &str) -> bool {
        let m = pb::engine_message::Message::Cancellation(pb::TaskCancellation {
            task_id: task_id.to_owned(),
            reason: reason.to_owned(),
        });
        self.0
            .send(Outbound::Item(pb::EngineMessage { message: Some(m) }))
            .is_ok()
    }
}

/// StreamTasks: tasks only; the stream has no way to carry a cancellation.
pub(crate) struct PullSink(pub UnboundedSender<Outbound<pb::ExecutionTask>>);

impl TaskSink for PullSink {
    fn deliver(&self, task: Arc<Task>) -> bool {
        self.0.send(Outbound::Item(task_to_proto(&task))).is_ok()
    }

    fn cancel(&self, task_id: &str, _reason: &str) -> bool {
        log::debug!("StreamTasks cannot carry the cancellation of {task_id}");
        !self.0.is_closed()
    }
}
