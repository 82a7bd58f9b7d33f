//! The executor's small HTTP port: health probes and metrics. A synchronous server on one
//! thread is plenty for probes and scrapes, and keeps the executor free of an async runtime.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use tiny_http::{Header, Method, Response, Server};

use super::metrics;

/// What the endpoints report.
pub trait HealthSource: Send + Sync {
    /// The process is alive and its threads run (liveness).
    fn live(&self) -> bool;
    /// Registered with the engine and accepting tasks (readiness).
    fn ready(&self) -> bool;
    /// The `/health` document.
    fn health(&self) -> serde_json::Value;
    /// Prometheus text format 0.0.4 for `/metrics` (served as [`metrics::CONTENT_TYPE`]).
    fn metrics(&self) -> String;
}

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {reason}")]
pub struct HttpError {
    pub addr: String,
    pub reason: String,
}

pub struct HttpServer {
    server: Arc<Server>,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Binds (port 0 = any free port) and serves until [`HttpServer::stop`]. Without
    /// `metrics`, `/metrics` answers 404 naming the key that turned it off.
    pub fn start(
        addr: SocketAddr,
        source: Arc<dyn HealthSource>,
        metrics: bool,
    ) -> Result<Self, HttpError> {
        let server = Server::http(addr).map_err(|e| HttpError {
            addr: addr.to_string(),
            reason: e.to_string(),
        })?;
        let bound = server.server_addr().to_ip().ok_or_else(|| HttpError {
            addr: addr.to_string(),
            reason: "not an IP listener".into(),
        })?;
        let server = Arc::new(server);
        let s = Arc::clone(&server);
        let thread = thread::Builder::new()
            .name("gamelan-http".into())
            .spawn(move || {
                for request in s.incoming_requests() {
                    let response =
                        route(request.method(), request.url(), source.as_ref(), metrics);
                    if let Err(e) = request.respond(response) {
                        log::debug!(target: "gamelan.executor.runtime", "health response failed: {e}");
                    }
                }
            })
            .map_err(|e| HttpError {
                addr: addr.to_string(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            server,
            addr: bound,
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn stop(mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn header(name: &str, value: &str) -> Option<Header> {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

fn json(status: u16, body: &serde_json::Value) -> Response<std::io::Cursor<Vec<u8>>> {
    let mut r = Response::from_string(body.to_string()).with_status_code(status);
    if let Some(h) = header("Content-Type", "application/json") {
        r.add_header(h);
    }
    r
}

fn probe(ok: bool, what: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    let status = if ok { "UP" } else { "DOWN" };
    json(
        if ok { 200 } else { 503 },
        &serde_json::json!({ "status": status, "check": what }),
    )
}

/// The key that turns `/metrics` off, named in the 404 so the reason is not a guess.
pub const METRICS_KEY: &str = "quarkus.micrometer.export.prometheus.enabled";

fn route(
    method: &Method,
    url: &str,
    source: &dyn HealthSource,
    metrics: bool,
) -> Response<std::io::Cursor<Vec<u8>>> {
    let path = url.split('?').next().unwrap_or(url);
    if *method != Method::Get && *method != Method::Head {
        return json(
            405,
            &serde_json::json!({"error": "method_not_allowed", "message": format!("{method} is not supported on {path}; use GET")}),
        );
    }
    match path {
        "/health" | "/q/health" => {
            let body = source.health();
            let up = body.get("status").and_then(|s| s.as_str()) == Some("UP");
            json(if up { 200 } else { 503 }, &body)
        }
        "/health/live" | "/q/health/live" => probe(source.live(), "live"),
        "/health/ready" | "/q/health/ready" => probe(source.ready(), "ready"),
        "/metrics" | "/q/metrics" if !metrics => json(
            404,
            &serde_json::json!({
                "error": "metrics_disabled",
                "message": format!("{path} is turned off by {METRICS_KEY}=false"),
                "key": METRICS_KEY,
            }),
        ),
        "/metrics" | "/q/metrics" => {
            // The header must name the body's format: Prometheus chooses its parser by it.
            let mut r = Response::from_string(source.metrics());
            if let Some(h) = header("Content-Type", metrics::CONTENT_TYPE) {
                r.add_header(h);
            }
            r
        }
        _ => json(
            404,
            &serde_json::json!({"error": "not_found", "message": format!("no endpoint at {path}; try /health, /health/live, /health/ready, /metrics")}),
        ),
    }
}
