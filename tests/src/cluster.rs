//! Engines and executors as processes, started the way an operator would: `gamelan engine`
//! and `gamelan executor` configured by `GAMELAN_*` variables.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;

use crate::api::{Api, ExecutorView};
use crate::process::Process;
use crate::wait::wait_for;

/// Longest a process may take to start and log its address (a debug build on a busy
/// two-core machine).
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

fn env(pairs: &[(&str, String)], extra: &[(String, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .chain(extra.iter().cloned())
        .collect()
}

/// How to start an engine.
#[derive(Debug, Clone, Default)]
pub struct EngineSpec {
    /// 0 = any free port.
    pub port: u16,
    /// Durable storage here; `None` = ephemeral (in memory).
    pub data_dir: Option<PathBuf>,
    /// More `GAMELAN_ENGINE_*` settings.
    pub env: Vec<(String, String)>,
}

impl EngineSpec {
    pub fn ephemeral() -> Self {
        Self::default()
    }

    #[must_use]
    pub fn with(mut self, key: &str, value: impl ToString) -> Self {
        self.env.push((key.to_owned(), value.to_string()));
        self
    }
}

/// A running `gamelan engine`.
pub struct Engine {
    pub process: Process,
    /// Where it listens (gRPC and HTTP), on 127.0.0.1.
    pub addr: SocketAddr,
    pub api: Api,
}

impl Engine {
    pub fn start(spec: &EngineSpec) -> anyhow::Result<Self> {
        let mut vars = vec![
            ("GAMELAN_ENGINE_HOST", "127.0.0.1".to_owned()),
            ("GAMELAN_ENGINE_PORT", spec.port.to_string()),
        ];
        match &spec.data_dir {
            Some(d) => vars.push(("GAMELAN_ENGINE_DATA_DIR", d.display().to_string())),
            None => vars.push(("GAMELAN_ENGINE_EPHEMERAL", "true".to_owned())),
        }
        let process = Process::spawn("engine", &["engine"], &env(&vars, &spec.env))?;
        let addr = process.logged_addr("engine listening on ", START_TIMEOUT)?;
        Ok(Self {
            process,
            addr,
            api: Api::new(addr),
        })
    }

    /// The URL executors and `gamelan submit` are given.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until the engine lists every id in `ids` as alive.
    pub fn wait_alive(&self, ids: &[String]) -> anyhow::Result<Vec<ExecutorView>> {
        wait_for(
            START_TIMEOUT,
            format!("executors {ids:?} to be alive"),
            || {
                let all = self.api.executors()?;
                let alive = ids
                    .iter()
                    .all(|id| all.iter().any(|e| &e.executor_id == id && e.alive));
                Ok(alive.then_some(all))
            },
        )
    }

    /// The engine's view of one executor.
    pub fn executor(&self, id: &str) -> anyhow::Result<Option<ExecutorView>> {
        Ok(self
            .api
            .executors()?
            .into_iter()
            .find(|e| e.executor_id == id))
    }
}

/// How to start an executor runtime.
#[derive(Debug, Clone)]
pub struct ExecutorSpec {
    pub runtime_id: String,
    pub engine_url: String,
    /// More `GAMELAN_EXECUTOR_*` settings (transport, delivery, threads, ...).
    pub env: Vec<(String, String)>,
}

impl ExecutorSpec {
    pub fn new(runtime_id: &str, engine: &Engine) -> Self {
        Self {
            runtime_id: runtime_id.to_owned(),
            engine_url: engine.url(),
            env: Vec::new(),
        }
    }

    #[must_use]
    pub fn with(mut self, key: &str, value: impl ToString) -> Self {
        self.env.push((key.to_owned(), value.to_string()));
        self
    }
}

/// A running `gamelan executor` hosting the built-in executors.
pub struct Executor {
    pub process: Process,
    pub runtime_id: String,
    /// Its health and metrics port.
    pub health_addr: SocketAddr,
    health: Api,
}

impl Executor {
    /// Starts the runtime and waits until its health port is up (not until it registered:
    /// see [`Engine::wait_alive`] and [`Executor::id`]).
    pub fn start(spec: &ExecutorSpec) -> anyhow::Result<Self> {
        let vars = [
            ("GAMELAN_EXECUTOR_ENGINE_URL", spec.engine_url.clone()),
            (
                "GAMELAN_EXECUTOR_RUNTIME_EXECUTOR_ID",
                spec.runtime_id.clone(),
            ),
            ("GAMELAN_EXECUTOR_HTTP_PORT", "0".to_owned()),
        ];
        let process = Process::spawn(
            &format!("executor {}", spec.runtime_id),
            &["executor"],
            &env(&vars, &spec.env),
        )?;
        let health_addr = process.logged_addr("health and metrics on ", START_TIMEOUT)?;
        Ok(Self {
            process,
            runtime_id: spec.runtime_id.clone(),
            health_addr,
            health: Api::new(health_addr),
        })
    }

    /// The engine-side id of this runtime's executor for `executor_type`.
    pub fn id(&self, executor_type: &str) -> String {
        format!("{}-{executor_type}", self.runtime_id)
    }

    /// The runtime's `/health` document.
    pub fn health(&self) -> anyhow::Result<Value> {
        let (status, body) = self.health.get("/health")?;
        if status != 200 {
            anyhow::bail!("{} /health: HTTP {status}: {body}", self.runtime_id);
        }
        Ok(body)
    }

    /// GET `path` on the health port (e.g. `/health/ready`): the status and the body.
    pub fn health_get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        self.health.get(path)
    }

    /// From `/health`: how many tasks of `executor_type` run now, and the declared maximum.
    pub fn active_tasks(&self, executor_type: &str) -> anyhow::Result<(u64, u64)> {
        let h = self.health()?;
        let e = h["executors"]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["executorType"] == executor_type))
            .with_context(|| format!("no {executor_type} in /health: {h}"))?;
        Ok((
            e["activeTasks"].as_u64().unwrap_or_default(),
            e["maxConcurrentTasks"].as_u64().unwrap_or_default(),
        ))
    }
}
