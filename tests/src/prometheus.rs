//! A real Prometheus server (Debian's `prometheus`, or `PROMETHEUS_BIN`) that scrapes engines
//! and executors, so their `/metrics` endpoints are checked by the program that reads them in
//! production rather than by our own reading of the format.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::Api;
use crate::process::Process;
use crate::wait::wait_for;

/// How long the server may take to start (it replays an empty write-ahead log).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// One scrape job: a target and the path to scrape on it.
#[derive(Debug, Clone)]
pub struct ScrapeJob {
    pub name: String,
    pub target: SocketAddr,
    pub metrics_path: String,
}

impl ScrapeJob {
    pub fn new(name: &str, target: SocketAddr, metrics_path: &str) -> Self {
        Self {
            name: name.to_owned(),
            target,
            metrics_path: metrics_path.to_owned(),
        }
    }
}

/// A target as `/api/v1/targets` describes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    pub scrape_pool: String,
    pub scrape_url: String,
    /// `up`, `down` or `unknown` (not scraped yet).
    pub health: String,
    pub last_error: String,
}

/// One sample of an instant query.
#[derive(Debug, Clone)]
pub struct Sample {
    pub labels: serde_json::Map<String, Value>,
    pub value: f64,
}

/// A running Prometheus server with its own configuration and storage, killed when dropped.
pub struct Prometheus {
    pub process: Process,
    pub addr: SocketAddr,
    api: Api,
    _dir: tempfile::TempDir,
}

fn binary() -> PathBuf {
    std::env::var_os("PROMETHEUS_BIN").map_or_else(|| PathBuf::from("prometheus"), PathBuf::from)
}

/// The configuration, written as JSON (which is YAML) so no YAML is assembled by hand.
fn config(jobs: &[ScrapeJob]) -> Value {
    json!({
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": jobs.iter().map(|j| json!({
            "job_name": j.name,
            "metrics_path": j.metrics_path,
            "static_configs": [{"targets": [j.target.to_string()]}],
        })).collect::<Vec<_>>(),
    })
}

/// A port nobody listens on right now (the server binds it a moment later; a lost race shows
/// as a start failure, which [`Prometheus::start`] retries).
fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

impl Prometheus {
    /// Starts a server scraping `jobs` every second and waits until it serves its API.
    pub fn start(jobs: &[ScrapeJob]) -> anyhow::Result<Self> {
        let mut last = None;
        for _ in 0..3 {
            match Self::try_start(jobs) {
                Ok(p) => return Ok(p),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("prometheus did not start")))
    }

    fn try_start(jobs: &[ScrapeJob]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("creating a directory for prometheus")?;
        let config_file = dir.path().join("prometheus.yml");
        std::fs::write(&config_file, serde_json::to_vec_pretty(&config(jobs))?)
            .context("writing prometheus.yml")?;
        let storage = dir.path().join("data");
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
        let args = [
            format!("--config.file={}", config_file.display()),
            format!("--storage.tsdb.path={}", storage.display()),
            format!("--web.listen-address={addr}"),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let process = Process::spawn_program("prometheus", binary(), &args, &[])
            .context("starting prometheus (Debian package `prometheus`)")?;
        process.wait_for_line(START_TIMEOUT, "that it is ready", |l| {
            l.contains("Server is ready to receive web requests")
        })?;
        Ok(Self {
            process,
            addr,
            api: Api::new(addr),
            _dir: dir,
        })
    }

    fn data(&self, path: &str, query: &[(&str, &str)]) -> anyhow::Result<Value> {
        let (status, body) = self.api.get_query(path, query)?;
        if status != 200 || body["status"] != "success" {
            bail!("prometheus {path} {query:?}: HTTP {status}: {body}");
        }
        Ok(body["data"].clone())
    }

    /// The active targets and their scrape health.
    pub fn targets(&self) -> anyhow::Result<Vec<Target>> {
        let data = self.data("/api/v1/targets", &[("state", "active")])?;
        serde_json::from_value(data["activeTargets"].clone())
            .with_context(|| format!("decoding the targets: {data}"))
    }

    /// Waits until every target was scraped and the last scrape of each succeeded (health
    /// `up`, no error). Fails at the deadline with every target's state and last error.
    pub fn wait_all_up(&self, timeout: Duration) -> anyhow::Result<Vec<Target>> {
        let mut last: Vec<Target> = Vec::new();
        let result = wait_for(timeout, "every target to be up", || {
            last = self.targets()?;
            if last.is_empty() {
                return Ok(None);
            }
            Ok(last
                .iter()
                .all(|t| t.health == "up" && t.last_error.is_empty())
                .then(|| last.clone()))
        });
        result.with_context(|| format!("targets: {last:#?}"))
    }

    /// An instant query: every series with its value.
    pub fn query(&self, promql: &str) -> anyhow::Result<Vec<Sample>> {
        let data = self.data("/api/v1/query", &[("query", promql)])?;
        let Some(result) = data["result"].as_array() else {
            bail!("query {promql}: no result vector in {data}");
        };
        result
            .iter()
            .map(|r| {
                let value = r["value"][1]
                    .as_str()
                    .and_then(|v| v.parse::<f64>().ok())
                    .with_context(|| format!("query {promql}: no value in {r}"))?;
                Ok(Sample {
                    labels: r["metric"].as_object().cloned().unwrap_or_default(),
                    value,
                })
            })
            .collect()
    }

    /// Waits until `promql` yields at least one series, then returns them.
    pub fn wait_query(&self, promql: &str, timeout: Duration) -> anyhow::Result<Vec<Sample>> {
        wait_for(timeout, format!("prometheus to have {promql}"), || {
            let s = self.query(promql)?;
            Ok((!s.is_empty()).then_some(s))
        })
    }
}
