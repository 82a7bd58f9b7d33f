#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The engine under random sequences of submissions, results, releases and time passing,
//! with a small retention bound so record slots are forgotten and reused all the time.
//! Each type has a streaming executor and a polled one; the polled pair is served by one
//! long poll covering both (as a REST runtime does), asking for fewer tasks than are
//! assigned at times, so tasks are also taken back from poll mailboxes.
//! After every step the engine must agree with a plain model of what was submitted and
//! finished: no task reaches an executor of another type, none is in two hands at once,
//! every kept task answers with its true state and attempt (one more per task taken back
//! from an executor that may have run it, none for anything else), and the completion feed
//! numbers every finish exactly once and names each task's submission id.
//! A second property runs a durable engine that is also stopped and opened again on its
//! data directory at random points, with every executor registering again afterwards: a
//! restart must change nothing the model can see, attempts included.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gamelan::engine::testing::{ManualClock, RecordingSink};
use gamelan::engine::{Engine, EngineSettings};
use gamelan_domain::{Acceptance, ExecutorMetadata, JsonObject, RetryPolicy, Task, TaskResult};
use gamelan_ports::{EngineError, EngineService, Registration, SubmitRequest, TaskState};
use proptest::prelude::*;

const TYPES: [&str; 2] = ["x", "y"];
/// Executors 0 and 1 stream (types x, y), 2 and 3 are polled (types x, y).
const EXECUTORS: usize = 4;

fn executor_id(e: usize) -> String {
    let how = if e < TYPES.len() { "stream" } else { "poll" };
    format!("exec-{how}-{}", TYPES[e % TYPES.len()])
}
const MAX_RETAINED: usize = 4;
const RETENTION: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
enum Op {
    Submit(usize),
    /// Report the result of the `n`-th task an executor holds (modulo how many it holds).
    Complete(usize, usize),
    /// The executor hands a held task back.
    Release(usize, usize),
    /// One poll over both polled executors for at most `max` tasks, the first one first
    /// when the flag is set.
    Poll(usize, bool),
    Wait(u64),
    /// Stop the engine and open it again on its data directory (durable worlds only).
    Restart,
}

fn durable_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => op(),
        1 => Just(Op::Restart),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..2usize).prop_map(Op::Submit),
        5 => (0..EXECUTORS, 0..8usize).prop_map(|(e, n)| Op::Complete(e, n)),
        1 => (0..EXECUTORS, 0..8usize).prop_map(|(e, n)| Op::Release(e, n)),
        2 => (0..4usize, any::<bool>()).prop_map(|(max, first)| Op::Poll(max, first)),
        1 => (1..40u64).prop_map(Op::Wait),
    ]
}

/// What the model knows of one submitted task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    Open,
    /// Finished at this feed sequence number, at this clock offset (seconds).
    Done {
        seq: u64,
        at: u64,
    },
}

/// The model's view of one task: its type, its state and its current attempt.
#[derive(Debug, Clone, Copy)]
struct Model {
    ty: usize,
    state: Known,
    attempt: u32,
}

struct World {
    engine: Arc<Engine>,
    clock: Arc<ManualClock>,
    sinks: Vec<Arc<RecordingSink>>,
    /// Tasks each executor holds (delivered, no result yet).
    held: Vec<Vec<Task>>,
    known: HashMap<String, Model>,
    finished: u64,
    now: u64,
    data_dir: Option<PathBuf>,
}

fn settings(data_dir: Option<PathBuf>) -> EngineSettings {
    EngineSettings {
        heartbeat_timeout: Duration::from_secs(3600),
        ack_timeout: Duration::from_secs(3600),
        sweep_interval: Duration::from_secs(3600),
        retry: RetryPolicy::default(),
        data_dir,
        max_long_polls: 16,
        retention: RETENTION,
        max_retained: MAX_RETAINED,
    }
}

/// Registers every executor and attaches a sink for each streaming one.
fn connect(engine: &Engine) -> Vec<Arc<RecordingSink>> {
    let mut sinks = Vec::new();
    for e in 0..EXECUTORS {
        let id = executor_id(e);
        engine
            .register(Registration {
                executor_id: id.clone(),
                metadata: ExecutorMetadata::new(TYPES[e % TYPES.len()]).max_concurrent_tasks(3),
                endpoint: String::new(),
                attributes: BTreeMap::new(),
            })
            .unwrap();
        if e < TYPES.len() {
            let sink = RecordingSink::new();
            engine.attach(&id, 3, sink.clone()).unwrap();
            sinks.push(sink);
        }
    }
    sinks
}

impl World {
    fn new(data_dir: Option<PathBuf>) -> Self {
        let clock = Arc::new(ManualClock::new());
        let engine = Engine::open(settings(data_dir.clone()), clock.clone()).unwrap();
        let sinks = connect(&engine);
        Self {
            engine,
            clock,
            sinks,
            held: vec![Vec::new(); EXECUTORS],
            known: HashMap::new(),
            finished: 0,
            now: 0,
            data_dir,
        }
    }

    fn collect_deliveries(&mut self) {
        let delivered: Vec<(usize, Task)> = self
            .sinks
            .iter()
            .enumerate()
            .flat_map(|(e, sink)| sink.take().into_iter().map(move |t| (e, t)))
            .collect();
        for (e, task) in delivered {
            self.hand(e, task);
        }
    }

    /// A task reached executor `e`: of its type, open, and in no other hands.
    fn hand(&mut self, e: usize, task: Task) {
        let ty = e % TYPES.len();
        assert_eq!(
            task.node_type,
            TYPES[ty],
            "{} reached {}",
            task.task_id,
            executor_id(e)
        );
        let key = format!("{}:{}", task.run_id, task.node_id);
        let m = self.known[&key];
        assert_eq!(
            (m.ty, m.state),
            (ty, Known::Open),
            "{} delivered again",
            task.task_id
        );
        assert_eq!(
            task.attempt, m.attempt,
            "{} went out as the wrong attempt",
            task.task_id
        );
        let twice = self
            .held
            .iter()
            .flatten()
            .any(|h| h.run_id == task.run_id && h.node_id == task.node_id);
        assert!(!twice, "{} is in two hands", task.task_id);
        self.held[e].push(task);
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Submit(ty) => {
                let view = self
                    .engine
                    .submit(SubmitRequest {
                        executor_type: Some(TYPES[ty].into()),
                        input: JsonObject::new(),
                        ..SubmitRequest::default()
                    })
                    .unwrap();
                let key = format!("{}:{}", view.run_id, view.node_id);
                let m = Model {
                    ty,
                    state: Known::Open,
                    attempt: 1,
                };
                assert!(self.known.insert(key, m).is_none());
            }
            Op::Complete(e, n) if !self.held[e].is_empty() => {
                let i = n % self.held[e].len();
                let task = self.held[e].remove(i);
                let answers =
                    self.engine
                        .report(vec![TaskResult::completed(&task, JsonObject::new(), 1)]);
                assert_eq!(answers, vec![Ok(Acceptance::Accept)], "{}", task.task_id);
                self.finished += 1;
                let key = format!("{}:{}", task.run_id, task.node_id);
                let done = Known::Done {
                    seq: self.finished,
                    at: self.now,
                };
                self.known.get_mut(&key).unwrap().state = done;
            }
            Op::Release(e, n) if !self.held[e].is_empty() => {
                let i = n % self.held[e].len();
                let task = self.held[e].remove(i);
                self.engine
                    .release(&executor_id(e), std::slice::from_ref(&task.task_id))
                    .unwrap();
                // It may have started there: the next delivery is a new attempt.
                let key = format!("{}:{}", task.run_id, task.node_id);
                self.known.get_mut(&key).unwrap().attempt += 1;
            }
            Op::Poll(max, first) => {
                let mut ids = vec![executor_id(2), executor_id(3)];
                if !first {
                    ids.reverse();
                }
                let polled = self.engine.poll_many(&ids, max, Duration::ZERO).unwrap();
                assert!(polled.len() <= max, "{} handed for {max}", polled.len());
                for p in polled {
                    let e = if p.executor_id == executor_id(2) {
                        2
                    } else {
                        3
                    };
                    assert_eq!(p.executor_id, executor_id(e));
                    self.hand(e, p.task);
                }
            }
            Op::Complete(..) | Op::Release(..) => {}
            Op::Restart => {
                let Some(dir) = self.data_dir.clone() else {
                    return;
                };
                self.engine.shutdown();
                self.engine = Engine::open(settings(Some(dir)), self.clock.clone()).unwrap();
                // Executors keep what they hold and register again.
                self.sinks = connect(&self.engine);
            }
            Op::Wait(secs) => {
                self.clock.advance(Duration::from_secs(secs));
                self.now += secs;
                for e in 0..EXECUTORS {
                    let hb = gamelan_ports::Heartbeat {
                        executor_id: executor_id(e),
                        ..gamelan_ports::Heartbeat::default()
                    };
                    self.engine.heartbeat(&hb).unwrap();
                }
                self.engine.sweep();
            }
        }
        self.collect_deliveries();
    }

    /// Whether the model expects the engine to still keep a task finished at `seq`, `at`.
    fn kept(&self, seq: u64, at: u64, swept_at: u64) -> bool {
        let by_count = seq + MAX_RETAINED as u64 > self.finished;
        by_count && at + RETENTION.as_secs() > swept_at
    }

    fn check(&self, swept_at: u64) {
        let (feed, cursor) = self.engine.completions(0, 1000, Duration::ZERO);
        assert_eq!(cursor, self.finished, "every finish numbered once");
        assert!(feed.len() <= MAX_RETAINED);
        for view in &feed {
            assert_eq!(
                view.submission_id,
                format!("{}:{}:1", view.run_id, view.node_id)
            );
        }
        for (key, m) in &self.known {
            let got = self.engine.task(key);
            if let Ok(view) = &got {
                assert_eq!(view.attempt, m.attempt, "{key}: attempts");
            }
            match m.state {
                Known::Open => {
                    let view = got.unwrap_or_else(|e| panic!("open task {key} lost: {e}"));
                    assert!(matches!(
                        view.status,
                        TaskState::Pending | TaskState::Running
                    ));
                    assert_eq!(view.node_type, TYPES[m.ty]);
                }
                Known::Done { seq, at } if self.kept(seq, at, swept_at) => {
                    let view = got.unwrap_or_else(|e| panic!("kept task {key} lost: {e}"));
                    assert_eq!(view.status, TaskState::Completed, "{key}");
                }
                Known::Done { .. } => {
                    assert!(
                        matches!(got, Err(EngineError::UnknownTask(_))),
                        "{key} outlived retention: {got:?}"
                    );
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn engine_agrees_with_the_model_while_slots_are_reused(ops in prop::collection::vec(op(), 1..120)) {
        run(World::new(None), &ops);
    }
}

proptest! {
    // Every step of a durable engine waits for a commit: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn a_restarted_durable_engine_agrees_with_the_model(ops in prop::collection::vec(durable_op(), 1..80)) {
        let dir = tempfile::tempdir().unwrap();
        run(World::new(Some(dir.path().to_path_buf())), &ops);
    }
}

fn run(mut world: World, ops: &[Op]) {
    // The age limit applies at sweeps (and when a store is opened); between them only the
    // count limit does.
    let mut swept_at = 0;
    for op in ops {
        world.apply(op);
        if matches!(op, Op::Wait(_) | Op::Restart) {
            swept_at = world.now;
        }
        world.check(swept_at);
    }
    world.engine.shutdown();
}
