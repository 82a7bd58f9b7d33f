//! The harness of the runtime tests over the in-memory transport: settings with short
//! timings, starting a runtime against a `LocalEngine`, and waiting for its results. Shared
//! by `runtime_local.rs` and `runtime_deferred.rs`; every wait has a deadline.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use gamelan::runtime::local::LocalEngine;
use gamelan::runtime::{PoolSettings, Runtime, RuntimeHandle, RuntimeSettings};
use gamelan::sdk::{CommunicationType, ExecutorMetadata, WorkflowExecutor};
use gamelan_domain::RetryPolicy;

/// The longest any test waits for a condition.
pub const WAIT: Duration = Duration::from_secs(30);

/// Short timings so retries, heartbeats and reconnects happen within a test.
pub fn settings_with(threads: usize, queue: usize, max_parallel: usize) -> RuntimeSettings {
    RuntimeSettings {
        runtime_id: "test".into(),
        pool: PoolSettings {
            threads,
            queue_size: queue,
            max_parallel,
            retry: RetryPolicy {
                max_attempts: 3,
                initial_delay: Duration::from_millis(10),
                multiplier: 2.0,
                max_delay: Duration::from_millis(100),
                jitter: 0.0,
            },
            default_timeout: Duration::from_secs(60),
            max_abandoned_threads: 10,
        },
        heartbeat_interval: Duration::from_millis(50),
        reconnect_initial: Duration::from_millis(20),
        reconnect_max: Duration::from_millis(100),
        receive_wait: Duration::from_millis(20),
        drain_timeout: Duration::from_secs(5),
        ..RuntimeSettings::default()
    }
}

pub fn start(
    engine: &LocalEngine,
    s: RuntimeSettings,
    executors: Vec<Arc<dyn WorkflowExecutor>>,
) -> RuntimeHandle {
    let mut b = Runtime::builder()
        .discover(false)
        .settings(s)
        .transport(CommunicationType::Local, engine.transport());
    for e in executors {
        b = b.executor_arc(e);
    }
    let h = b.start().expect("runtime starts");
    assert!(h.wait_ready(WAIT), "runtime never became ready");
    h
}

pub fn local<T: WorkflowExecutor>(inner: T, ty: &str, max: u32) -> Arc<dyn WorkflowExecutor> {
    Arc::new(gamelan::sdk::Declared::new(
        inner,
        ExecutorMetadata::new(ty)
            .communication(CommunicationType::Local)
            .max_concurrent_tasks(max),
    ))
}

pub fn wait_results(engine: &LocalEngine, n: usize) {
    assert!(
        engine.wait_until(WAIT, |v| v.results().len() >= n),
        "expected {n} results, got {}",
        engine.results().len()
    );
}

pub fn result_for(engine: &LocalEngine, run: &str) -> gamelan::sdk::TaskResult {
    engine
        .results()
        .into_iter()
        .find(|r| r.run_id() == run)
        .unwrap_or_else(|| panic!("no result for {run}"))
}
