//! A client for the engine's HTTP API, with its own view of the JSON (written from
//! `openapi.yaml`, not shared with the product), so a change of the wire format shows up here.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Submissions per request; the engine takes arrays.
const SUBMIT_CHUNK: usize = 1000;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskView {
    /// The wire id of the current (in the feed: the finishing) attempt.
    pub task_id: String,
    /// What the submission answered (`runId:nodeId:1`), whichever attempt finishes.
    pub submission_id: String,
    pub run_id: String,
    pub node_id: String,
    pub node_type: String,
    pub status: String,
    pub attempt: u32,
    #[serde(default)]
    pub executor_id: Option<String>,
    #[serde(default)]
    pub output: Option<Value>,
    #[serde(default)]
    pub error: Option<Value>,
}

impl TaskView {
    /// `runId:nodeId`: what identifies a task across attempts.
    pub fn key(&self) -> String {
        format!("{}:{}", self.run_id, self.node_id)
    }

    pub fn error_code(&self) -> Option<&str> {
        self.error.as_ref()?.get("code")?.as_str()
    }

    pub fn is_final(&self) -> bool {
        matches!(self.status.as_str(), "COMPLETED" | "FAILED")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutorView {
    pub executor_id: String,
    pub executor_type: String,
    pub communication_type: String,
    #[serde(default)]
    pub endpoint: Option<String>,
    pub max_concurrent_tasks: u64,
    pub alive: bool,
    pub in_flight: u64,
    pub completed_tasks: u64,
    pub failed_tasks: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EngineStats {
    pub executors: u64,
    pub alive_executors: u64,
    pub tasks_submitted: u64,
    pub tasks_pending: u64,
    pub tasks_in_flight: u64,
    pub tasks_completed: u64,
    pub tasks_failed: u64,
    pub results_duplicate: u64,
    pub results_stale: u64,
    pub tasks_redispatched: u64,
}

/// What a submission answered: the task id to look it up by and its `runId:nodeId` key.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub task_id: String,
    pub key: String,
}

/// Final results gathered from the completion feed.
#[derive(Debug, Default)]
pub struct Completions {
    pub by_key: HashMap<String, TaskView>,
    /// Keys the feed reported final more than once (a result applied twice).
    pub repeated: Vec<String>,
}

impl Completions {
    /// Panics unless exactly `expected` tasks finished, each reported once and COMPLETED.
    pub fn assert_each_completed_once(&self, expected: usize) {
        assert_eq!(self.by_key.len(), expected, "tasks finished");
        assert!(
            self.repeated.is_empty(),
            "reported final more than once: {:?}",
            self.repeated
        );
        let not_completed: Vec<_> = self
            .by_key
            .values()
            .filter(|v| v.status != "COMPLETED")
            .collect();
        assert!(not_completed.is_empty(), "not completed: {not_completed:?}");
    }
}

pub struct Api {
    agent: ureq::Agent,
    base: String,
}

impl Api {
    /// A client for `http://addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Self::with_base(format!("http://{addr}"))
    }

    pub fn with_base(base: String) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .http_status_as_error(false)
            .build()
            .into();
        Self { agent, base }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// GET `path`: the status and the body as JSON (or as a JSON string when it is not JSON).
    pub fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        let mut resp = self
            .agent
            .get(&format!("{}{path}", self.base))
            .call()
            .with_context(|| format!("GET {}{path}", self.base))?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string()?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// GET `path` with query parameters (encoded by the HTTP client): the status and the
    /// body as JSON.
    pub fn get_query(&self, path: &str, query: &[(&str, &str)]) -> anyhow::Result<(u16, Value)> {
        let mut resp = self
            .agent
            .get(&format!("{}{path}", self.base))
            .query_pairs(query.iter().copied())
            .call()
            .with_context(|| format!("GET {}{path} {query:?}", self.base))?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string()?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// POST a JSON body to `path`: the status and the answer.
    pub fn post(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        self.post_bytes(path, serde_json::to_vec(body)?)
    }

    /// POST raw bytes as `application/json` (for bodies that are not valid JSON).
    pub fn post_bytes(&self, path: &str, body: Vec<u8>) -> anyhow::Result<(u16, Value)> {
        let mut resp = self
            .agent
            .post(&format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .send(body)
            .with_context(|| format!("POST {}{path}", self.base))?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string()?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    fn get_ok<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let (status, body) = self.get(path)?;
        if status != 200 {
            bail!("GET {path}: HTTP {status}: {body}");
        }
        serde_json::from_value(body).with_context(|| format!("decoding GET {path}"))
    }

    /// Submits task requests (`{executorType|nodeType, input, ...}`), in chunks; every one
    /// must be accepted.
    pub fn submit(&self, requests: &[Value]) -> anyhow::Result<Vec<Submitted>> {
        let mut out = Vec::with_capacity(requests.len());
        for chunk in requests.chunks(SUBMIT_CHUNK) {
            let (status, body) = self.post("/api/v1/tasks", &Value::from(chunk.to_vec()))?;
            if status != 200 && status != 201 && status != 202 {
                bail!("POST /api/v1/tasks: HTTP {status}: {body}");
            }
            let views: Vec<TaskView> =
                serde_json::from_value(body.clone()).with_context(|| format!("answer: {body}"))?;
            if views.len() != chunk.len() {
                bail!("{} requests, {} answers: {body}", chunk.len(), views.len());
            }
            out.extend(views.into_iter().map(|v| Submitted {
                key: v.key(),
                task_id: v.task_id,
            }));
        }
        Ok(out)
    }

    pub fn task(&self, task_id: &str) -> anyhow::Result<TaskView> {
        self.get_ok(&format!("/api/v1/tasks/{task_id}"))
    }

    pub fn executors(&self) -> anyhow::Result<Vec<ExecutorView>> {
        self.get_ok("/api/v1/executors")
    }

    pub fn statistics(&self) -> anyhow::Result<EngineStats> {
        self.get_ok("/api/v1/executors/statistics")
    }

    /// One page of the completion feed after `cursor`: the tasks and the next cursor.
    pub fn completions_page(
        &self,
        cursor: u64,
        wait: Duration,
    ) -> anyhow::Result<(Vec<TaskView>, u64)> {
        #[derive(Deserialize)]
        struct Page {
            items: Vec<TaskView>,
            next: u64,
        }
        let page: Page = self.get_ok(&format!(
            "/api/v1/tasks/completions?after={cursor}&max=5000&waitMs={}",
            wait.as_millis()
        ))?;
        Ok((page.items, page.next))
    }

    /// Follows the completion feed from its start until every key in `keys` is final, noting
    /// any of them reported final twice (other tasks in the feed are skipped). Fails with
    /// what is missing at the deadline.
    pub fn await_completions(
        &self,
        keys: &[Submitted],
        timeout: Duration,
    ) -> anyhow::Result<Completions> {
        let deadline = Instant::now() + timeout;
        let wanted: std::collections::HashSet<&str> = keys.iter().map(|s| s.key.as_str()).collect();
        let mut done = Completions::default();
        let mut cursor = 0;
        // Only wanted keys are kept, so the count says when all are in.
        while done.by_key.len() < wanted.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let missing: Vec<_> = wanted
                    .iter()
                    .filter(|k| !done.by_key.contains_key(**k))
                    .take(5)
                    .collect();
                bail!(
                    "{} of {} tasks not final after {timeout:?}, e.g. {missing:?}; statistics: {:?}",
                    wanted.len() - done.by_key.len(),
                    wanted.len(),
                    self.statistics().ok()
                );
            }
            let (items, next) =
                self.completions_page(cursor, left.min(Duration::from_millis(500)))?;
            cursor = next;
            for v in items {
                let key = v.key();
                if !wanted.contains(key.as_str()) {
                    continue;
                }
                if done.by_key.insert(key.clone(), v).is_some() {
                    done.repeated.push(key);
                }
            }
        }
        Ok(done)
    }

    /// Polls every task by id until all are final (works across an engine restart, where the
    /// completion feed starts again).
    pub fn await_final(
        &self,
        keys: &[Submitted],
        timeout: Duration,
    ) -> anyhow::Result<HashMap<String, TaskView>> {
        let mut done = HashMap::new();
        crate::wait::wait_for(timeout, format!("{} tasks to finish", keys.len()), || {
            for s in keys {
                if done.contains_key(&s.key) {
                    continue;
                }
                let v = self.task(&s.task_id)?;
                if v.is_final() {
                    done.insert(s.key.clone(), v);
                }
            }
            Ok((done.len() == keys.len()).then_some(()))
        })
        .with_context(|| format!("{} of {} final", done.len(), keys.len()))?;
        Ok(done)
    }
}
