//! Raw baselines, measured in the same run as the real transport so a figure is judged as a
//! ratio on whatever this machine offers at the moment:
//! - grpc: N frames of B bytes echoed over one tonic bidirectional stream;
//! - local: N messages of B bytes handed through a crossbeam channel to as many threads as
//!   the worker pools have, and back;
//! - rest: HTTP/1.1 POSTs carrying batches of B-byte strings to a no-op axum handler that
//!   returns the body, from one client per executor, with the batch size the runtime
//!   reports results in;
//! - kafka: plain produce + consume of the same messages on the same broker (`kafka.rs`).

use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::error::BenchError;

#[derive(Debug, Clone, Serialize)]
pub struct Raw {
    /// What was measured, in words.
    pub name: String,
    pub messages: usize,
    pub elapsed_ms: f64,
    pub per_sec: f64,
}

impl Raw {
    pub(crate) fn new(name: String, messages: usize, elapsed: Duration) -> Self {
        let secs = elapsed.as_secs_f64().max(1e-9);
        Self {
            name,
            messages,
            elapsed_ms: secs * 1e3,
            per_sec: messages as f64 / secs,
        }
    }
}

#[cfg(feature = "grpc")]
pub fn grpc(messages: usize, payload_bytes: usize) -> Result<Raw, BenchError> {
    let run = gamelan_grpc::raw_echo::run_loopback(messages, payload_bytes).map_err(|e| {
        BenchError::Baseline {
            name: "grpc",
            reason: e.to_string(),
        }
    })?;
    Ok(Raw::new(
        "tonic bidirectional echo stream, same payload and message count".into(),
        messages,
        run.elapsed,
    ))
}

#[cfg(not(feature = "grpc"))]
pub fn grpc(_: usize, _: usize) -> Result<Raw, BenchError> {
    Err(BenchError::NotWired(
        "grpc",
        "this binary was built without the grpc feature".into(),
    ))
}

/// `messages` payloads to `threads` threads through one channel and back through another.
pub fn local(messages: usize, payload_bytes: usize, threads: usize) -> Result<Raw, BenchError> {
    let payload = vec![0xA5u8; payload_bytes];
    let (to_workers, work) = crossbeam_channel::unbounded::<Vec<u8>>();
    let (done, from_workers) = crossbeam_channel::unbounded::<Vec<u8>>();
    let workers: Vec<_> = (0..threads.max(1))
        .map(|_| {
            let (work, done) = (work.clone(), done.clone());
            thread::spawn(move || {
                while let Ok(m) = work.recv() {
                    if done.send(m).is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    drop((work, done));
    let started = Instant::now();
    let producer = thread::spawn(move || {
        for _ in 0..messages {
            if to_workers.send(payload.clone()).is_err() {
                return;
            }
        }
    });
    let mut received = 0;
    while received < messages {
        match from_workers.recv() {
            Ok(m) if m.len() == payload_bytes => received += 1,
            _ => break,
        }
    }
    let elapsed = started.elapsed();
    let _ = producer.join();
    for w in workers {
        let _ = w.join();
    }
    if received < messages {
        return Err(BenchError::Baseline {
            name: "local",
            reason: format!("{received} of {messages} messages came back"),
        });
    }
    Ok(Raw::new(
        format!("crossbeam channel hand-off to {threads} threads and back, same payload"),
        messages,
        elapsed,
    ))
}

/// Batches of `batch` JSON strings of `payload_bytes` POSTed to a no-op axum handler.
pub fn rest(
    messages: usize,
    payload_bytes: usize,
    clients: usize,
    batch: usize,
) -> Result<Raw, BenchError> {
    let err = |reason: String| BenchError::Baseline {
        name: "rest",
        reason,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/echo",
        axum::routing::post(|body: axum::body::Bytes| async move { body }),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    let batch = batch.max(1);
    let clients = clients.max(1);
    let element =
        serde_json::to_string(&"x".repeat(payload_bytes)).map_err(|e| err(e.to_string()))?;
    let url = format!("http://{addr}/echo");
    let started = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            // Client c sends its share of the messages.
            let share = messages / clients + usize::from(c < messages % clients);
            let (element, url) = (element.clone(), url.clone());
            thread::spawn(move || -> Result<usize, String> {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .timeout_global(Some(Duration::from_secs(60)))
                    .build()
                    .into();
                let body_of = |n: usize| {
                    let mut b = String::with_capacity(n * (element.len() + 1) + 2);
                    b.push('[');
                    for i in 0..n {
                        if i > 0 {
                            b.push(',');
                        }
                        b.push_str(&element);
                    }
                    b.push(']');
                    b
                };
                let full = body_of(batch);
                let mut sent = 0;
                while sent < share {
                    let n = batch.min(share - sent);
                    let partial;
                    let body = if n == batch {
                        &full
                    } else {
                        partial = body_of(n);
                        &partial
                    };
                    let mut resp = agent
                        .post(&url)
                        .content_type("application/json")
                        .send(body.as_bytes())
                        .map_err(|e| e.to_string())?;
                    let back = resp
                        .body_mut()
                        .with_config()
                        .limit(u64::MAX)
                        .read_to_vec()
                        .map_err(|e| e.to_string())?;
                    if back.len() != body.len() {
                        return Err(format!("echoed {} of {} bytes", back.len(), body.len()));
                    }
                    sent += n;
                }
                Ok(sent)
            })
        })
        .collect();
    let mut total = 0;
    let mut failure = None;
    for h in handles {
        match h.join() {
            Ok(Ok(n)) => total += n,
            Ok(Err(e)) => failure = Some(e),
            Err(_) => failure = Some("a client thread panicked".into()),
        }
    }
    let elapsed = started.elapsed();
    let _ = stop.send(());
    let _ = rt.block_on(server);
    rt.shutdown_timeout(Duration::from_secs(1));
    if let Some(e) = failure {
        return Err(err(e));
    }
    Ok(Raw::new(
        format!("HTTP/1.1 POST of {batch} payloads to a no-op axum handler, {clients} client(s)"),
        total,
        elapsed,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_hand_off_returns_every_message() {
        let raw = local(5_000, 64, 3).unwrap();
        assert_eq!(raw.messages, 5_000);
        assert!(raw.per_sec > 0.0 && raw.per_sec.is_finite());
    }

    #[test]
    fn rest_round_trips_count_every_message() {
        // 1003 over 2 clients in batches of 100: partial batches at the end of each share.
        let raw = rest(1003, 32, 2, 100).unwrap();
        assert_eq!(raw.messages, 1003);
    }
}
