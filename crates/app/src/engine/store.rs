//! Durability: accepted tasks and final results in an embedded redb database, written by one
//! group-commit thread.
//!
//! Every state change that must survive a restart is queued here, in the order the engine
//! made it (the queue is fed under the engine lock). The writer drains whatever has queued
//! up, applies it in one write transaction and commits once, so thousands of submissions
//! share one fsync. A caller that must not answer before its writes are durable queues a
//! [`WriteOp::Barrier`] after them and waits on it: the barrier is answered after the commit
//! of its group, and every earlier write is in that group or an earlier one.
//!
//! Besides tasks and results the store keeps each task's latest delivery (executor, attempt,
//! token), written before the task leaves the engine, so a restarted engine knows which
//! unfinished tasks an executor may be running and which never left. The writer also
//! publishes how many writes are committed, so readers show only what survives a crash.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use gamelan_domain::{ErrorInfo, JsonObject, Task};
use gamelan_ports::{EngineError, TaskState};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

const TASKS: TableDefinition<u64, &[u8]> = TableDefinition::new("tasks");
const OUTCOMES: TableDefinition<u64, &[u8]> = TableDefinition::new("outcomes");
const DELIVERIES: TableDefinition<u64, &[u8]> = TableDefinition::new("deliveries");
/// Counters: `forgotten` is the feed sequence number of the last result forgotten, so the
/// feed's numbering resumes right even when every stored result was forgotten.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const FORGOTTEN: &str = "forgotten";
/// Name of the database file under the data directory.
pub(super) const FILE_NAME: &str = "engine.redb";
/// Upper bound of writes per transaction, so one commit never holds an unbounded batch.
const MAX_GROUP: usize = 16_384;

/// A task as stored: the current attempt plus what the retry rule needs.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct StoredTask {
    pub task: Task,
    pub retries: u32,
    pub max_retries: u32,
    pub submitted_at_ms: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StoredTaskRef<'a> {
    task: &'a Task,
    retries: u32,
    max_retries: u32,
    submitted_at_ms: u64,
}

/// The final result of a task, with its place in the completion feed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct StoredOutcome {
    pub seq: u64,
    pub status: TaskState,
    pub attempt: u32,
    pub execution_token: String,
    #[serde(default)]
    pub executor_id: Option<String>,
    #[serde(default)]
    pub output: Option<JsonObject>,
    #[serde(default)]
    pub error: Option<ErrorInfo>,
    pub completed_at_ms: u64,
}

/// The latest delivery of a task: which executor got which attempt. Written (and committed)
/// before the task is sent, so after a crash a task without one for its current attempt
/// never left the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct StoredDelivery {
    pub executor_id: String,
    pub attempt: u32,
    pub execution_token: String,
}

pub(super) enum WriteOp {
    /// A task, already encoded with [`encode_task`] (by the submitting thread, so the
    /// writer only inserts).
    Task {
        key: u64,
        bytes: Vec<u8>,
    },
    Outcome {
        key: u64,
        outcome: StoredOutcome,
    },
    /// The task went (or is about to go) to an executor.
    Deliver {
        key: u64,
        delivery: StoredDelivery,
    },
    /// A delivery that never reached its executor (the stream refused it).
    Undeliver {
        key: u64,
    },
    /// Forgets a task and its result (retention); `seq` is the result's place in the feed.
    Forget {
        key: u64,
        seq: u64,
    },
    Barrier(Sender<Result<(), String>>),
}

/// The stored form of a task.
pub(super) fn encode_task(
    task: &Task,
    retries: u32,
    max_retries: u32,
    submitted_at_ms: u64,
) -> Vec<u8> {
    let stored = StoredTaskRef {
        task,
        retries,
        max_retries,
        submitted_at_ms,
    };
    // Serialising plain data into a Vec cannot fail.
    serde_json::to_vec(&stored).unwrap_or_default()
}

/// What a previous run left behind.
#[derive(Debug, Default)]
pub(super) struct Loaded {
    pub tasks: Vec<(u64, StoredTask)>,
    pub outcomes: HashMap<u64, StoredOutcome>,
    pub deliveries: HashMap<u64, StoredDelivery>,
    /// Feed sequence number of the last forgotten result.
    pub forgotten: u64,
}

fn storage(e: impl std::fmt::Display) -> EngineError {
    EngineError::Storage(e.to_string())
}

/// Opens (or creates) the database under `dir` and reads everything back.
pub(super) fn open(dir: &Path) -> Result<(Database, Loaded), EngineError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| storage(format!("cannot create {}: {e}", dir.display())))?;
    let path = dir.join(FILE_NAME);
    let db = Database::create(&path)
        .map_err(|e| storage(format!("cannot open {}: {e}", path.display())))?;
    // Create the tables on first use so a read never meets a missing table.
    let txn = db.begin_write().map_err(storage)?;
    txn.open_table(TASKS).map_err(storage)?;
    txn.open_table(OUTCOMES).map_err(storage)?;
    txn.open_table(DELIVERIES).map_err(storage)?;
    txn.open_table(META).map_err(storage)?;
    txn.commit().map_err(storage)?;

    let mut loaded = Loaded::default();
    let txn = db.begin_read().map_err(storage)?;
    let tasks = txn.open_table(TASKS).map_err(storage)?;
    for entry in tasks.iter().map_err(storage)? {
        let (key, value) = entry.map_err(storage)?;
        let stored: StoredTask = serde_json::from_slice(value.value())
            .map_err(|e| storage(format!("task {} is unreadable: {e}", key.value())))?;
        loaded.tasks.push((key.value(), stored));
    }
    let outcomes = txn.open_table(OUTCOMES).map_err(storage)?;
    for entry in outcomes.iter().map_err(storage)? {
        let (key, value) = entry.map_err(storage)?;
        let stored: StoredOutcome = serde_json::from_slice(value.value())
            .map_err(|e| storage(format!("result {} is unreadable: {e}", key.value())))?;
        loaded.outcomes.insert(key.value(), stored);
    }
    let deliveries = txn.open_table(DELIVERIES).map_err(storage)?;
    for entry in deliveries.iter().map_err(storage)? {
        let (key, value) = entry.map_err(storage)?;
        let stored: StoredDelivery = serde_json::from_slice(value.value())
            .map_err(|e| storage(format!("delivery {} is unreadable: {e}", key.value())))?;
        loaded.deliveries.insert(key.value(), stored);
    }
    let meta = txn.open_table(META).map_err(storage)?;
    if let Some(v) = meta.get(FORGOTTEN).map_err(storage)? {
        loaded.forgotten = v.value();
    }
    Ok((db, loaded))
}

/// Starts the group-commit writer; it ends when every sender is dropped and the queue is
/// drained, then closes the database. After each commit it stores in `committed` how many
/// writes (every op but barriers, counted in the order sent) are durable.
pub(super) fn spawn_writer(
    db: Database,
    committed: Arc<AtomicU64>,
) -> Result<(Sender<WriteOp>, JoinHandle<()>), EngineError> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let handle = std::thread::Builder::new()
        .name("gamelan-engine-store".into())
        .spawn(move || writer_loop(&db, &rx, &committed))
        .map_err(storage)?;
    Ok((tx, handle))
}

fn writer_loop(db: &Database, rx: &Receiver<WriteOp>, committed: &AtomicU64) {
    let mut group = Vec::with_capacity(1024);
    let mut buf = Vec::with_capacity(512);
    let mut written = 0u64;
    while let Ok(first) = rx.recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(op) => group.push(op),
                Err(_) => break,
            }
        }
        written += group
            .iter()
            .filter(|op| !matches!(op, WriteOp::Barrier(_)))
            .count() as u64;
        let outcome = commit(db, &group, &mut buf);
        match &outcome {
            Ok(()) => committed.store(written, Ordering::Release),
            Err(e) => log::error!(target: "gamelan.engine", "engine store commit failed: {e}"),
        }
        for op in group.drain(..) {
            if let WriteOp::Barrier(done) = op {
                // The waiter may have gone (its thread ended): nothing to tell then.
                let _ = done.send(outcome.clone());
            }
        }
    }
}

fn commit(db: &Database, group: &[WriteOp], buf: &mut Vec<u8>) -> Result<(), String> {
    if group.iter().all(|op| matches!(op, WriteOp::Barrier(_))) {
        return Ok(());
    }
    let txn = db.begin_write().map_err(|e| e.to_string())?;
    {
        let mut tasks = txn.open_table(TASKS).map_err(|e| e.to_string())?;
        let mut outcomes = txn.open_table(OUTCOMES).map_err(|e| e.to_string())?;
        let mut deliveries = txn.open_table(DELIVERIES).map_err(|e| e.to_string())?;
        let mut forgotten = None;
        for op in group {
            buf.clear();
            match op {
                WriteOp::Task { key, bytes } => {
                    tasks
                        .insert(*key, bytes.as_slice())
                        .map_err(|e| e.to_string())?;
                }
                WriteOp::Outcome { key, outcome } => {
                    serde_json::to_writer(&mut *buf, outcome).map_err(|e| e.to_string())?;
                    outcomes
                        .insert(*key, buf.as_slice())
                        .map_err(|e| e.to_string())?;
                }
                WriteOp::Deliver { key, delivery } => {
                    serde_json::to_writer(&mut *buf, delivery).map_err(|e| e.to_string())?;
                    deliveries
                        .insert(*key, buf.as_slice())
                        .map_err(|e| e.to_string())?;
                }
                WriteOp::Undeliver { key } => {
                    deliveries.remove(*key).map_err(|e| e.to_string())?;
                }
                WriteOp::Forget { key, seq } => {
                    tasks.remove(*key).map_err(|e| e.to_string())?;
                    outcomes.remove(*key).map_err(|e| e.to_string())?;
                    deliveries.remove(*key).map_err(|e| e.to_string())?;
                    forgotten = forgotten.max(Some(*seq));
                }
                WriteOp::Barrier(_) => {}
            }
        }
        if let Some(seq) = forgotten {
            let mut meta = txn.open_table(META).map_err(|e| e.to_string())?;
            meta.insert(FORGOTTEN, seq).map_err(|e| e.to_string())?;
        }
    }
    txn.commit().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_survive_reopen_and_barrier_follows_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (db, loaded) = open(dir.path()).unwrap();
        assert!(loaded.tasks.is_empty() && loaded.outcomes.is_empty());
        let committed = Arc::new(AtomicU64::new(0));
        let (tx, handle) = spawn_writer(db, Arc::clone(&committed)).unwrap();
        let mut task = Task::new("r", "n", "echo", 1);
        task.context.insert("a".into(), 1.into());
        tx.send(WriteOp::Task {
            key: 7,
            bytes: encode_task(&task, 0, 3, 5),
        })
        .unwrap();
        tx.send(WriteOp::Outcome {
            key: 7,
            outcome: StoredOutcome {
                seq: 1,
                status: TaskState::Completed,
                attempt: 1,
                execution_token: "t".into(),
                executor_id: Some("e".into()),
                output: Some(JsonObject::new()),
                error: None,
                completed_at_ms: 9,
            },
        })
        .unwrap();
        let delivery = StoredDelivery {
            executor_id: "e".into(),
            attempt: 1,
            execution_token: "t".into(),
        };
        tx.send(WriteOp::Deliver {
            key: 7,
            delivery: delivery.clone(),
        })
        .unwrap();
        let (done_tx, done_rx) = crossbeam_channel::bounded(1);
        tx.send(WriteOp::Barrier(done_tx)).unwrap();
        assert_eq!(done_rx.recv().unwrap(), Ok(()));
        assert_eq!(
            committed.load(Ordering::Acquire),
            3,
            "three writes committed"
        );
        drop(tx);
        handle.join().unwrap();

        let (_db, loaded) = open(dir.path()).unwrap();
        assert_eq!(loaded.tasks.len(), 1);
        assert_eq!(loaded.tasks[0].0, 7);
        assert_eq!(loaded.tasks[0].1.task, task);
        assert_eq!(loaded.tasks[0].1.max_retries, 3);
        assert_eq!(loaded.outcomes[&7].seq, 1);
        assert_eq!(loaded.outcomes[&7].status, TaskState::Completed);
        assert_eq!(loaded.deliveries[&7], delivery);
    }
}
