//! The load generator's client for an engine in another process: batches through
//! `POST /api/v1/tasks`, results through the long-polled `GET /api/v1/tasks/completions`.
//! Requests are serialised straight from borrowed data and answers are decoded without
//! keeping what the benchmark does not read (outputs carry the payload back).

use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};

use super::error::BenchError;
use super::load::{Done, Driver, index_of};

/// Completions asked for per page.
const PAGE: usize = 10_000;

pub struct HttpDriver {
    agent: ureq::Agent,
    submit_url: String,
    completions_url: String,
    executor_type: &'static str,
    payload: String,
}

impl HttpDriver {
    pub fn new(base: &str, executor_type: &'static str, payload: String) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .http_status_as_error(false)
            .build()
            .into();
        let base = base.trim_end_matches('/');
        Self {
            agent,
            submit_url: format!("{base}/api/v1/tasks"),
            completions_url: format!("{base}/api/v1/tasks/completions"),
            executor_type,
            payload,
        }
    }
}

/// `b<index>` without building a string first.
struct RunId(usize);

impl Serialize for RunId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("b{}", self.0))
    }
}

#[derive(Serialize)]
struct Input<'a> {
    data: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Request<'a> {
    executor_type: &'a str,
    run_id: RunId,
    input: Input<'a>,
}

/// One answer of a batch submission: an accepted task has a run id, a refusal a message.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer<'a> {
    #[serde(default, borrow)]
    run_id: Option<&'a str>,
    #[serde(default, borrow)]
    message: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Item<'a> {
    #[serde(rename = "runId", borrow)]
    run_id: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    status: &'a str,
}

#[derive(Deserialize)]
struct Page<'a> {
    #[serde(borrow)]
    items: Vec<Item<'a>>,
    next: u64,
}

fn read_body(url: &str, mut resp: ureq::http::Response<ureq::Body>) -> Result<Vec<u8>, BenchError> {
    let status = resp.status();
    let body = resp
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_vec()
        .map_err(|e| BenchError::http(url, e))?;
    if !status.is_success() {
        return Err(BenchError::http(
            url,
            format!("{status}: {}", String::from_utf8_lossy(&body)),
        ));
    }
    Ok(body)
}

impl Driver for HttpDriver {
    fn submit(&self, first: usize, count: usize) -> Result<(), BenchError> {
        let requests: Vec<Request<'_>> = (first..first + count)
            .map(|i| Request {
                executor_type: self.executor_type,
                run_id: RunId(i),
                input: Input {
                    data: &self.payload,
                },
            })
            .collect();
        let body = serde_json::to_vec(&requests)
            .map_err(|e| BenchError::Usage(format!("encoding tasks: {e}")))?;
        let resp = self
            .agent
            .post(&self.submit_url)
            .content_type("application/json")
            .send(&body[..])
            .map_err(|e| BenchError::http(&self.submit_url, e))?;
        let body = read_body(&self.submit_url, resp)?;
        let answers: Vec<Answer<'_>> = serde_json::from_slice(&body)
            .map_err(|e| BenchError::http(&self.submit_url, format!("answer: {e}")))?;
        if answers.len() != count {
            return Err(BenchError::Refused(format!(
                "{} answers for {count} tasks",
                answers.len()
            )));
        }
        if let Some(refused) = answers.iter().find(|a| a.run_id.is_none()) {
            return Err(BenchError::Refused(
                refused
                    .message
                    .as_deref()
                    .unwrap_or("no reason given")
                    .to_owned(),
            ));
        }
        Ok(())
    }

    fn completions(
        &self,
        cursor: u64,
        wait: Duration,
        out: &mut Vec<Done>,
    ) -> Result<u64, BenchError> {
        let url = format!(
            "{}?after={cursor}&max={PAGE}&waitMs={}",
            self.completions_url,
            wait.as_millis()
        );
        let resp = self
            .agent
            .get(&url)
            .call()
            .map_err(|e| BenchError::http(&self.completions_url, e))?;
        let body = read_body(&self.completions_url, resp)?;
        let page: Page<'_> = serde_json::from_slice(&body)
            .map_err(|e| BenchError::http(&self.completions_url, format!("page: {e}")))?;
        out.extend(page.items.iter().filter_map(|item| {
            Some(Done {
                index: index_of(&item.run_id)?,
                completed: item.status == "COMPLETED",
            })
        }));
        Ok(page.next)
    }
}

/// Waits until `GET url` answers 200, polling every millisecond; returns false at the
/// deadline. Used for start-to-READY: the probe interval bounds the measurement error.
pub fn wait_for_200(url: &str, deadline: std::time::Instant) -> bool {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_millis(500)))
        .http_status_as_error(false)
        .build()
        .into();
    while std::time::Instant::now() < deadline {
        if let Ok(resp) = agent.get(url).call()
            && resp.status() == 200
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}
