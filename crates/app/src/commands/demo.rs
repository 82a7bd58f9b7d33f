//! `gamelan demo`: an engine and an executor runtime in one process, talking real gRPC over
//! 127.0.0.1, running `calculate-tax` tasks and checking every answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gamelan_domain::CommunicationType;
use gamelan_ports::{EngineService, SubmitRequest, TaskState, TaskView};
use serde_json::json;

use super::follow::{CompletionFeed, Summary, follow};
use crate::config::ExecutorConfig;
use crate::engine::{Engine, EngineSettings};
use crate::wiring::engine::{EngineOptions, start_engine_with};

pub struct DemoOptions {
    pub tasks: usize,
    pub transport: CommunicationType,
    pub timeout: Duration,
}

/// What the demo saw; `ok()` when every task completed with the right tax.
pub struct DemoReport {
    pub summary: Summary,
    pub wrong: Vec<String>,
    pub ready_after: Duration,
}

impl DemoReport {
    pub fn ok(&self) -> bool {
        self.wrong.is_empty()
            && self.summary.failed == 0
            && self.summary.missing == 0
            && self.summary.completed == self.summary.submitted
    }
}

struct InProcess(Arc<Engine>);

impl CompletionFeed for InProcess {
    fn next_page(&mut self, cursor: u64, wait: Duration) -> Result<(Vec<TaskView>, u64), String> {
        Ok(self.0.completions(cursor, 10_000, wait))
    }
}

fn amount(i: usize) -> f64 {
    // Cents-precise amounts that vary, so a wrong formula cannot pass by accident.
    ((i * 7919) % 100_000) as f64 / 100.0 + 1.0
}

pub fn run(opts: &DemoOptions) -> anyhow::Result<DemoReport> {
    let mut engine_opts = EngineOptions::from_config(&crate::config::EngineConfig::default());
    engine_opts.bind = "127.0.0.1:0".parse()?;
    engine_opts.settings = EngineSettings {
        data_dir: None,
        ..EngineSettings::default()
    };
    engine_opts.verifier = Arc::new(gamelan_ports::AllowAll);
    let engine = start_engine_with(engine_opts)?;
    println!(
        "engine listening on {} (gRPC + HTTP, in memory)",
        engine.addr
    );

    let mut cfg = ExecutorConfig::default();
    cfg.engine.url = format!("http://{}", engine.addr).parse()?;
    cfg.transport = opts.transport;
    cfg.http.port = 0;
    cfg.runtime.executor_id = Some("demo".into());
    cfg.task.dispatch_threads = 4;
    cfg.task.queue_size = 2000;
    let t0 = Instant::now();
    let runtime = crate::wiring::runtime_builder(&cfg)?
        .default_transport(opts.transport)
        .start()?;
    if !runtime.wait_ready(Duration::from_secs(30)) {
        anyhow::bail!("the executor runtime did not register with the engine within 30 s");
    }
    let ready_after = t0.elapsed();
    let health = runtime.health();
    println!(
        "executor runtime ready in {ready_after:.1?}: {} executors over {} ({})",
        health.executors.len(),
        opts.transport,
        health
            .executors
            .iter()
            .map(|e| e.executor_type.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("submitting {} calculate-tax tasks", opts.tasks);

    let started = Instant::now();
    let (_, cursor) = engine.engine.completions(0, 0, Duration::ZERO);
    let mut keys = Vec::with_capacity(opts.tasks);
    let mut amounts = std::collections::HashMap::with_capacity(opts.tasks);
    for chunk_start in (0..opts.tasks).step_by(1000) {
        let end = (chunk_start + 1000).min(opts.tasks);
        let requests: Vec<SubmitRequest> = (chunk_start..end)
            .map(|i| SubmitRequest {
                executor_type: Some("calculate-tax".into()),
                input: json!({ "amount": amount(i) })
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                run_id: Some(format!("demo-{i}")),
                ..SubmitRequest::default()
            })
            .collect();
        for (i, answer) in (chunk_start..end).zip(engine.engine.submit_batch(requests)) {
            let view = answer?;
            amounts.insert(view.run_id.clone(), amount(i));
            keys.push(super::follow::submission_id(&view));
        }
    }
    let mut feed = InProcess(Arc::clone(&engine.engine));
    let summary =
        follow(&mut feed, cursor, &keys, started, opts.timeout).map_err(|e| anyhow::anyhow!(e))?;
    let mut wrong = Vec::new();
    for v in &summary.finished {
        if v.status != TaskState::Completed {
            continue;
        }
        let expected = amounts.get(&v.run_id).copied().unwrap_or(f64::NAN) * 0.1;
        let got = v
            .output
            .as_ref()
            .and_then(|o| o.get("tax"))
            .and_then(serde_json::Value::as_f64);
        if got.is_none_or(|g| (g - expected).abs() > 1e-9) {
            wrong.push(format!(
                "{}: expected tax {expected}, got {got:?}",
                v.run_id
            ));
        }
    }
    runtime.shutdown();
    engine.shutdown();
    Ok(DemoReport {
        summary,
        wrong,
        ready_after,
    })
}
