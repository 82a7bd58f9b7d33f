//! `--in-process` and `--transport local`: the engine (or the in-memory engine stand-in) and
//! every executor runtime live in the bench process, so a profiler sees the whole path in
//! one place. The load generator talks to the engine through calls, not HTTP.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gamelan_domain::{CommunicationType, ExecutorMetadata, JsonObject, Task};
use gamelan_ports::{EngineService, SubmitRequest, TaskState};

use super::error::BenchError;
use super::load::{Done, Driver, index_of, run_id};
use crate::config::ExecutorConfig;
use crate::engine::{Engine, EngineSettings};
use crate::executors::Echo;
use crate::runtime::local::LocalEngine;
use crate::runtime::{Runtime, RuntimeHandle, RuntimeSettings};
use crate::sdk::Declared;
use crate::wiring::engine::{EngineOptions, start_engine_with};
use crate::wiring::{EngineProcess, runtime_builder};

/// The executor type every benchmark task asks for.
pub const ECHO: &str = "echo";

/// The echo executor as the `gamelan` binary declares it.
pub fn echo(communication: CommunicationType) -> Declared<Echo> {
    let mut meta = ExecutorMetadata::new(ECHO).communication(communication);
    meta.max_concurrent_tasks = 1000;
    Declared::new(Echo, meta)
}

/// The task input: one string field of `bytes` bytes.
pub fn input(payload: &str) -> JsonObject {
    let mut input = JsonObject::new();
    input.insert("data".into(), payload.into());
    input
}

/// Settings shared by every runtime the bench starts.
#[derive(Debug, Clone, Copy)]
pub struct RuntimeShape {
    pub threads: usize,
    pub queue_size: usize,
    pub result_batch: usize,
    pub result_batch_timeout: Duration,
}

/// Engine and runtimes in this process over a real transport on 127.0.0.1.
pub struct InProcess {
    pub engine: EngineProcess,
    pub runtimes: Vec<RuntimeHandle>,
    /// Longest runtime start until registered and ready.
    pub ready: Duration,
}

pub fn start_transport(
    transport: CommunicationType,
    executors: usize,
    shape: RuntimeShape,
    kafka: Option<&str>,
) -> Result<InProcess, BenchError> {
    let mut kafka_settings = crate::config::KafkaSettings::default();
    if let Some(b) = kafka {
        b.clone_into(&mut kafka_settings.bootstrap_servers);
    }
    let mut opts = EngineOptions::from_config(&crate::config::EngineConfig::default());
    opts.bind = ([127, 0, 0, 1], 0).into();
    opts.settings = EngineSettings {
        data_dir: None,
        ..EngineSettings::default()
    };
    opts.verifier = Arc::new(gamelan_ports::AllowAll);
    opts.kafka = kafka.map(|_| kafka_settings.clone());
    let engine = start_engine_with(opts).map_err(BenchError::runtime)?;
    let mut runtimes = Vec::with_capacity(executors);
    let mut ready = Duration::ZERO;
    for i in 0..executors {
        let mut cfg = ExecutorConfig::default();
        cfg.engine.url = format!("http://{}", engine.addr)
            .parse()
            .map_err(BenchError::runtime)?;
        cfg.transport = transport;
        cfg.http.port = 0;
        cfg.metrics.enabled = false;
        cfg.runtime.executor_id = Some(format!("bench-{i}"));
        cfg.task.dispatch_threads = shape.threads;
        cfg.task.queue_size = shape.queue_size;
        cfg.result.batch_size = shape.result_batch;
        cfg.result.batch_timeout = shape.result_batch_timeout;
        if kafka.is_some() {
            cfg.kafka = kafka_settings.clone();
            cfg.kafka_configured = true;
        }
        let t0 = Instant::now();
        let runtime = runtime_builder(&cfg)
            .map_err(BenchError::runtime)?
            .discover(false)
            .executor(echo(transport))
            .start()
            .map_err(BenchError::runtime)?;
        wait_ready(
            &runtime,
            format!("executor runtime {i}"),
            "register with the engine",
            Duration::from_secs(30),
        )?;
        ready = ready.max(t0.elapsed());
        runtimes.push(runtime);
    }
    Ok(InProcess {
        engine,
        runtimes,
        ready,
    })
}

impl InProcess {
    pub fn shutdown(self) {
        for r in self.runtimes {
            r.shutdown();
        }
        self.engine.shutdown();
    }
}

/// Submits straight into an in-process [`Engine`].
pub struct EngineDriver {
    pub engine: Arc<Engine>,
    pub input: JsonObject,
}

impl Driver for EngineDriver {
    fn submit(&self, first: usize, count: usize) -> Result<(), BenchError> {
        let requests = (first..first + count)
            .map(|i| SubmitRequest {
                executor_type: Some(ECHO.into()),
                input: self.input.clone(),
                run_id: Some(run_id(i)),
                ..SubmitRequest::default()
            })
            .collect();
        for answer in self.engine.submit_batch(requests) {
            answer?;
        }
        Ok(())
    }

    fn completions(
        &self,
        cursor: u64,
        wait: Duration,
        out: &mut Vec<Done>,
    ) -> Result<u64, BenchError> {
        let (items, next) = self.engine.completions(cursor, 10_000, wait);
        out.extend(items.iter().filter_map(|v| {
            Some(Done {
                index: index_of(&v.run_id)?,
                completed: v.status == TaskState::Completed,
            })
        }));
        Ok(next)
    }
}

/// Runtimes over the in-memory transport, fed by one [`LocalEngine`].
pub struct Local {
    pub engine: LocalEngine,
    pub runtimes: Vec<RuntimeHandle>,
    pub ready: Duration,
}

pub fn start_local(executors: usize, shape: RuntimeShape) -> Result<Local, BenchError> {
    let engine = LocalEngine::new();
    let mut runtimes = Vec::with_capacity(executors);
    let mut ready = Duration::ZERO;
    for i in 0..executors {
        let settings = RuntimeSettings {
            runtime_id: format!("bench-{i}"),
            pool: crate::runtime::PoolSettings {
                threads: shape.threads,
                queue_size: shape.queue_size,
                ..crate::runtime::PoolSettings::default()
            },
            batch: gamelan_domain::BatchPolicy {
                max_size: shape.result_batch,
                max_age: shape.result_batch_timeout,
            },
            heartbeat_enabled: false,
            ..RuntimeSettings::default()
        };
        let t0 = Instant::now();
        let runtime = Runtime::builder()
            .settings(settings)
            .discover(false)
            .executor(echo(CommunicationType::Local))
            .transport(CommunicationType::Local, engine.transport())
            .start()
            .map_err(BenchError::runtime)?;
        wait_ready(
            &runtime,
            format!("local runtime {i}"),
            "become ready",
            Duration::from_secs(10),
        )?;
        ready = ready.max(t0.elapsed());
        runtimes.push(runtime);
    }
    Ok(Local {
        engine,
        runtimes,
        ready,
    })
}

impl Local {
    pub fn shutdown(self) {
        for r in self.runtimes {
            r.shutdown();
        }
    }
}

/// Pushes tasks into a [`LocalEngine`] and reads its accepted results.
pub struct LocalDriver {
    pub engine: LocalEngine,
    pub input: JsonObject,
}

impl Driver for LocalDriver {
    fn submit(&self, first: usize, count: usize) -> Result<(), BenchError> {
        for i in first..first + count {
            let mut task = Task::new(run_id(i), "n", ECHO, 1);
            task.context.clone_from(&self.input);
            self.engine.push_task(task);
        }
        Ok(())
    }

    fn completions(
        &self,
        cursor: u64,
        wait: Duration,
        out: &mut Vec<Done>,
    ) -> Result<u64, BenchError> {
        let from = usize::try_from(cursor).unwrap_or(usize::MAX);
        let found = RefCell::new(Vec::new());
        let end = std::cell::Cell::new(from);
        // The results vector only grows: read what is new under the engine's lock.
        self.engine.wait_until(wait, |view| {
            let results = view.results();
            if results.len() <= from {
                return false;
            }
            end.set(results.len());
            found
                .borrow_mut()
                .extend(results[from..].iter().filter_map(|r| {
                    Some(Done {
                        index: index_of(r.run_id())?,
                        completed: r.is_completed(),
                    })
                }));
            true
        });
        out.extend(found.into_inner());
        Ok(end.get() as u64)
    }
}

/// Waits for a runtime started in this process to become ready, or says which one did not.
fn wait_ready(
    runtime: &crate::runtime::RuntimeHandle,
    what: String,
    event: &'static str,
    timeout: Duration,
) -> Result<(), BenchError> {
    if runtime.wait_ready(timeout) {
        Ok(())
    } else {
        Err(BenchError::NotReady {
            what,
            event,
            timeout,
            log: String::new(),
        })
    }
}
