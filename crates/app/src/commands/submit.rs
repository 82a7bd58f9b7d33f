//! `gamelan submit`: sends tasks to a running engine over its HTTP API and follows them to
//! the end.

use std::io::BufRead;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use gamelan_ports::{ExecutorView, SubmitRequest, TaskView};
use serde::Deserialize;

use super::follow::{CompletionFeed, Summary, follow};

pub struct SubmitOptions {
    pub engine: String,
    pub executor_type: Option<String>,
    pub input: Option<String>,
    pub count: usize,
    pub file: Option<PathBuf>,
    pub timeout: Duration,
    pub token: Option<String>,
}

struct Http {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
}

#[derive(Deserialize)]
struct Page {
    items: Vec<TaskView>,
    next: u64,
}

impl Http {
    fn get(&self, url: &str) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        let r = self.agent.get(url);
        match &self.token {
            Some(t) => r.header("authorization", &format!("Bearer {t}")),
            None => r,
        }
    }
}

impl CompletionFeed for Http {
    fn next_page(&mut self, cursor: u64, wait: Duration) -> Result<(Vec<TaskView>, u64), String> {
        let url = format!(
            "{}/api/v1/tasks/completions?after={cursor}&max=5000&waitMs={}",
            self.base,
            wait.as_millis()
        );
        let mut resp = self
            .get(&url)
            .call()
            .map_err(|e| format!("reading completions from {}: {e}", self.base))?;
        let page: Page = resp
            .body_mut()
            .read_json()
            .map_err(|e| format!("decoding completions: {e}"))?;
        Ok((page.items, page.next))
    }
}

fn requests(opts: &SubmitOptions) -> anyhow::Result<Vec<SubmitRequest>> {
    if let Some(path) = &opts.file {
        let f = std::fs::File::open(path)
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
        let mut out = Vec::new();
        for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let mut r: SubmitRequest = serde_json::from_str(&line).map_err(|e| {
                anyhow::anyhow!("{}:{}: not a task request: {e}", path.display(), n + 1)
            })?;
            if r.executor_type.is_none() && r.node_type.is_none() {
                r.executor_type.clone_from(&opts.executor_type);
            }
            out.push(r);
        }
        return Ok(out);
    }
    let Some(ty) = &opts.executor_type else {
        anyhow::bail!("give --type (and --input) or --file");
    };
    let input = match &opts.input {
        Some(s) => match serde_json::from_str::<serde_json::Value>(s) {
            Ok(serde_json::Value::Object(m)) => m,
            Ok(other) => anyhow::bail!("--input must be a JSON object, got {other}"),
            Err(e) => anyhow::bail!("--input is not valid JSON: {e}"),
        },
        None => serde_json::Map::new(),
    };
    Ok((0..opts.count.max(1))
        .map(|_| SubmitRequest {
            executor_type: Some(ty.clone()),
            input: input.clone(),
            ..SubmitRequest::default()
        })
        .collect())
}

/// The requested types no live executor handles. The engine keeps such tasks queued until
/// one registers, which from here looks like a progress bar that never moves; saying so up
/// front tells the user what to start. Best effort: an engine that does not answer the
/// executor list is left to the submission itself to report.
fn unserved_types(http: &Http, requests: &[SubmitRequest]) -> Vec<String> {
    let url = format!("{}/api/v1/executors", http.base);
    let Ok(mut resp) = http.get(&url).call() else {
        return Vec::new();
    };
    let Ok(executors) = resp.body_mut().read_json::<Vec<ExecutorView>>() else {
        return Vec::new();
    };
    let mut types: Vec<&str> = requests
        .iter()
        .filter_map(|r| r.node_type.as_deref().or(r.executor_type.as_deref()))
        .collect();
    types.sort_unstable();
    types.dedup();
    types
        .into_iter()
        .filter(|t| {
            !executors.iter().any(|e| {
                e.alive && (e.executor_type == *t || e.supported_node_types.iter().any(|s| s == t))
            })
        })
        .map(str::to_owned)
        .collect()
}

pub fn run(opts: &SubmitOptions) -> anyhow::Result<Summary> {
    let all = requests(opts)?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut http = Http {
        agent,
        base: opts.engine.trim_end_matches('/').to_owned(),
        token: opts.token.clone(),
    };
    let (_, cursor) = http
        .next_page(u64::MAX, Duration::ZERO)
        .unwrap_or((Vec::new(), 0));
    let cursor = if cursor == u64::MAX { 0 } else { cursor };
    for t in unserved_types(&http, &all) {
        eprintln!(
            "warning: no live executor handles type '{t}'; its tasks wait in the engine until one registers (list them: GET {}/api/v1/executors)",
            http.base
        );
    }
    let started = Instant::now();
    let mut keys = Vec::with_capacity(all.len());
    for chunk in all.chunks(1000) {
        let mut req = http.agent.post(&format!("{}/api/v1/tasks", http.base));
        if let Some(t) = &http.token {
            req = req.header("authorization", &format!("Bearer {t}"));
        }
        let mut resp = req
            .send_json(chunk)
            .map_err(|e| anyhow::anyhow!("submitting to {}: {e}", http.base))?;
        let answers: Vec<serde_json::Value> = resp.body_mut().read_json()?;
        for a in answers {
            // A refused request answers with an error object instead of a task.
            match serde_json::from_value::<gamelan_ports::TaskView>(a.clone()) {
                Ok(view) => keys.push(super::follow::submission_id(&view)),
                Err(_) => eprintln!("refused: {a}"),
            }
        }
    }
    follow(&mut http, cursor, &keys, started, opts.timeout).map_err(|e| anyhow::anyhow!(e))
}
