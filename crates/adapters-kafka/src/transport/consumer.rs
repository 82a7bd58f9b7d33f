//! One consumer group member: the partitions it holds, the offsets it may commit, and what
//! it does when a rebalance takes partitions away.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use gamelan_domain::Task;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

use super::arrivals::Arrivals;

use crate::error::KafkaError;
use crate::offsets::{OffsetTracker, Partition};

/// A task taken from the broker but not handed out yet (no credit, or handed back).
pub(crate) struct Pending {
    pub partition: Partition,
    pub offset: i64,
    pub task: Task,
}

#[derive(Default)]
pub(crate) struct Inner {
    pub offsets: OffsetTracker,
    pub pending: VecDeque<Pending>,
    /// Interned topic names, so tracking a message does not allocate one.
    topics: Vec<Arc<str>>,
}

impl Inner {
    pub fn partition(&mut self, topic: &str, partition: i32) -> Partition {
        let topic = if let Some(t) = self.topics.iter().find(|t| &***t == topic) {
            Arc::clone(t)
        } else {
            let t: Arc<str> = Arc::from(topic);
            self.topics.push(Arc::clone(&t));
            t
        };
        Partition { topic, partition }
    }
}

/// Shared by the consumer's callbacks, the intake thread and the reporting threads.
pub(crate) struct ConsumerState {
    pub group: String,
    inner: Mutex<Inner>,
    /// Signalled whenever work finishes (what a revoke waits for).
    finished: Condvar,
    grace: Duration,
    want_paused: AtomicBool,
    /// Set when the transport goes away: a revoke then hands partitions over at once.
    pub closing: AtomicBool,
}

impl ConsumerState {
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A message the transport wrote for this offset was acknowledged.
    pub fn settle(&self, p: &Partition, offset: i64) {
        self.lock().offsets.finish_offset(p, offset);
        self.finished.notify_all();
    }

    /// Results for these tasks were acknowledged.
    pub fn finish_tasks<'a>(&self, task_ids: impl Iterator<Item = &'a str>) {
        let mut inner = self.lock();
        let mut any = false;
        for id in task_ids {
            any |= inner.offsets.finish_task(id);
        }
        drop(inner);
        if any {
            self.finished.notify_all();
        }
    }

    fn on_assign(&self, consumer: &BaseConsumer<ConsumerCtx>, tpl: &TopicPartitionList) {
        {
            let mut inner = self.lock();
            for e in tpl.elements() {
                let p = inner.partition(e.topic(), e.partition());
                inner.offsets.assign(p);
            }
        }
        log::info!(target: "gamelan.executor.runtime", "Kafka group {}: assigned {}", self.group, describe(tpl));
        if self.want_paused.load(Ordering::Acquire)
            && let Err(e) = consumer.pause(tpl)
        {
            log::warn!(target: "gamelan.executor.error", "Kafka group {}: cannot pause new partitions: {e}", self.group);
        }
    }

    /// Stops handing out the partitions' tasks, waits (bounded) for the ones handed out,
    /// commits what finished, and lets go. Runs inside `poll` on the intake thread.
    fn on_revoke(&self, consumer: &BaseConsumer<ConsumerCtx>, tpl: &TopicPartitionList) {
        let lost = consumer.assignment_lost();
        let mut inner = self.lock();
        let parts: Vec<Partition> = tpl
            .elements()
            .iter()
            .map(|e| inner.partition(e.topic(), e.partition()))
            .collect();
        let Inner {
            offsets, pending, ..
        } = &mut *inner;
        pending.retain(|t| {
            let keep = !parts.contains(&t.partition);
            if !keep {
                offsets.abandon(&t.partition, t.offset);
            }
            keep
        });
        if !lost && !self.closing.load(Ordering::Acquire) && !self.grace.is_zero() {
            let deadline = Instant::now() + self.grace;
            while parts.iter().map(|p| inner.offsets.busy(p)).sum::<usize>() > 0 {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() || self.closing.load(Ordering::Acquire) {
                    break;
                }
                inner = self
                    .finished
                    .wait_timeout(inner, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
        let busy: usize = parts.iter().map(|p| inner.offsets.busy(p)).sum();
        let commits: Vec<(Partition, i64)> = parts
            .iter()
            .filter_map(|p| inner.offsets.revoke(p).map(|pos| (p.clone(), pos)))
            .collect();
        drop(inner);
        if lost {
            log::warn!(target: "gamelan.executor.runtime", "Kafka group {}: assignment lost ({}); {busy} task(s) in flight will be re-delivered elsewhere", self.group, describe(tpl));
            return;
        }
        if !commits.is_empty() {
            match commit_list(&commits) {
                Ok(list) => {
                    if let Err(e) = consumer.commit(&list, CommitMode::Sync) {
                        log::warn!(target: "gamelan.executor.error", "Kafka group {}: commit on revoke failed: {e}", self.group);
                    }
                }
                Err(e) => {
                    log::warn!(target: "gamelan.executor.error", "Kafka group {}: {e}", self.group);
                }
            }
        }
        log::info!(target: "gamelan.executor.runtime", "Kafka group {}: revoked {}; {busy} unfinished task(s) left to the next owner", self.group, describe(tpl));
    }
}

fn describe(tpl: &TopicPartitionList) -> String {
    let mut parts: Vec<String> = tpl
        .elements()
        .iter()
        .map(|e| format!("{}[{}]", e.topic(), e.partition()))
        .collect();
    parts.sort();
    if parts.is_empty() {
        "no partitions".into()
    } else {
        parts.join(", ")
    }
}

pub(crate) fn commit_list(commits: &[(Partition, i64)]) -> KafkaResult<TopicPartitionList> {
    let mut tpl = TopicPartitionList::with_capacity(commits.len());
    for (p, pos) in commits {
        tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(*pos))?;
    }
    Ok(tpl)
}

pub(crate) struct ConsumerCtx {
    state: Arc<ConsumerState>,
}

impl ClientContext for ConsumerCtx {}

impl ConsumerContext for ConsumerCtx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => self.state.on_revoke(consumer, tpl),
            Rebalance::Error(e) => {
                log::warn!(target: "gamelan.executor.error", "Kafka group {}: rebalance failed: {e}", self.state.group);
            }
            Rebalance::Assign(_) => {}
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            self.state.on_assign(consumer, tpl);
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(e) = result {
            log::warn!(target: "gamelan.executor.error", "Kafka group {}: commit of {} failed: {e}; will retry", self.state.group, describe(offsets));
            let mut inner = self.state.lock();
            for el in offsets.elements() {
                if let Offset::Offset(pos) = el.offset() {
                    let p = inner.partition(el.topic(), el.partition());
                    inner.offsets.commit_failed(&p, pos);
                }
            }
        }
    }
}

/// A consumer in one group, subscribed to the task topics of its executor type(s).
pub(crate) struct TypeConsumer {
    pub consumer: BaseConsumer<ConsumerCtx>,
    pub state: Arc<ConsumerState>,
    topics: Mutex<Vec<String>>,
    paused: AtomicBool,
    commit_interval: Duration,
    last_commit: Mutex<Instant>,
}

impl TypeConsumer {
    pub fn new(
        config: &ClientConfig,
        group: String,
        grace: Duration,
        commit_interval: Duration,
        arrivals: &Arc<Arrivals>,
    ) -> Result<Self, KafkaError> {
        let state = Arc::new(ConsumerState {
            group,
            inner: Mutex::new(Inner::default()),
            finished: Condvar::new(),
            grace,
            want_paused: AtomicBool::new(false),
            closing: AtomicBool::new(false),
        });
        let mut consumer: BaseConsumer<ConsumerCtx> = config
            .create_with_context(ConsumerCtx {
                state: Arc::clone(&state),
            })
            .map_err(KafkaError::config("consumer"))?;
        let arrivals = Arc::clone(arrivals);
        consumer.set_nonempty_callback(move || arrivals.signal());
        Ok(Self {
            consumer,
            state,
            topics: Mutex::new(Vec::new()),
            paused: AtomicBool::new(false),
            commit_interval,
            last_commit: Mutex::new(Instant::now()),
        })
    }

    /// Adds topics to the subscription (subscribing again only when the set grew).
    pub fn subscribe(&self, topics: &[String]) -> Result<(), KafkaError> {
        let mut current = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
        let before = current.len();
        for t in topics {
            if !current.contains(t) {
                current.push(t.clone());
            }
        }
        if current.len() == before {
            return Ok(());
        }
        let names: Vec<&str> = current.iter().map(String::as_str).collect();
        self.consumer.subscribe(&names).map_err(|e| {
            KafkaError::Consume(format!(
                "cannot subscribe group {} to {names:?}: {e}",
                self.state.group
            ))
        })?;
        log::info!(target: "gamelan.executor.runtime", "Kafka group {} subscribed to {}", self.state.group, names.join(", "));
        Ok(())
    }

    pub fn handles_topic(&self, topic: &str) -> bool {
        self.topics
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|t| t == topic)
    }

    /// Pauses every assigned partition (no credit) or resumes them; a no-op when already so.
    pub fn set_paused(&self, paused: bool) {
        self.state.want_paused.store(paused, Ordering::Release);
        if self.paused.swap(paused, Ordering::AcqRel) == paused {
            return;
        }
        let result = self.consumer.assignment().and_then(|tpl| {
            if paused {
                self.consumer.pause(&tpl)
            } else {
                self.consumer.resume(&tpl)
            }
        });
        if let Err(e) = result {
            // Leave the flag unset so the next call tries again.
            self.paused.store(!paused, Ordering::Release);
            log::warn!(target: "gamelan.executor.error", "Kafka group {}: cannot {} partitions: {e}", self.state.group, if paused { "pause" } else { "resume" });
        }
    }

    /// Commits (asynchronously) the positions that advanced, at most once per
    /// `commit_interval`: a commit per result batch would load the broker for nothing, since
    /// what is not committed yet is only re-delivered after a crash, never lost.
    pub fn commit_due(&self) {
        let now = Instant::now();
        {
            let mut last = self
                .last_commit
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if now.duration_since(*last) < self.commit_interval {
                return;
            }
            *last = now;
        }
        let commits = self.state.lock().offsets.take_commits();
        self.commit(&commits, CommitMode::Async);
    }

    /// Commits every finished position and waits for the broker (close).
    pub fn commit_all(&self) {
        let commits = self.state.lock().offsets.positions();
        self.commit(&commits, CommitMode::Sync);
    }

    fn commit(&self, commits: &[(Partition, i64)], mode: CommitMode) {
        if commits.is_empty() {
            return;
        }
        let result = commit_list(commits).and_then(|tpl| self.consumer.commit(&tpl, mode));
        if let Err(e) = result {
            log::warn!(target: "gamelan.executor.error", "Kafka group {}: commit failed: {e}", self.state.group);
            let mut inner = self.state.lock();
            for (p, pos) in commits {
                inner.offsets.commit_failed(p, *pos);
            }
        }
    }
}
