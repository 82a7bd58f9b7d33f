//! Network partitions over real sockets: a TCP proxy ([`gamelan_e2e::proxy`]) sits between
//! an executor and the engine and, while tasks run, either resets every connection for 10 s
//! or swallows every byte for 10 s without closing anything. For gRPC and REST alike: every
//! task finishes exactly once, the executor's log and `/health` show the loss and the
//! recovery, and the results produced during the cut wait in the outbox and are delivered
//! after it.
//!
//! Timeouts chosen for the executor, and why (defaults suit a real network, not a 10 s test):
//! - `engine.request-timeout` 2 s: a blackholed call (a REST long poll, a gRPC registration
//!   or result verdict) fails after 2 s instead of 5 min; the sleep tasks take 50 ms, far
//!   below it as their default task timeout.
//! - `engine.connect-timeout` 2 s: a connection the blackhole accepts and never answers is
//!   given up quickly.
//! - `grpc.keep-alive-time-seconds` / `-timeout-seconds` 1 s: an idle-looking gRPC
//!   connection whose pings go unanswered is declared dead within about 2 s; without the
//!   pings a blackholed `ExecuteStream` (whose heartbeats need no answer) would look
//!   healthy forever.
//! - `heartbeat.interval` 500 ms: a REST executor that has nothing to poll still notices a
//!   cut quickly.
//!
//! The reconnect back-off (1 s doubling) bounds recovery: the cut ends 10 s after the loss,
//! so the next attempt comes at most one back-off step (8 s, plus a 2 s timeout) later.
//!
//! The engine's `ack-timeout` is 20 s: a blackhole swallows tasks the engine had already
//! handed out (a REST long-poll answer, messages on a gRPC `ExecuteStream`) and the executor
//! never sees them. HTTP has no session that could tell the engine they were lost, and the
//! engine's side of a blackholed gRPC connection stays open (it sends no HTTP/2 pings of its
//! own, so it never learns the stream is dead): only the ack timeout brings those tasks back
//! (the engine's documented remedy); with the 5 min default the test would wait 5 min. It
//! stays above the cut plus the reconnect, so results held in the outbox through the cut are
//! still the current attempt's when they arrive.

use std::time::{Duration, Instant};

use anyhow::bail;
use gamelan_e2e::proxy::{Mode, Proxy};
use gamelan_e2e::workload::sleep_requests;
use gamelan_e2e::{Engine, EngineSpec, Executor, ExecutorSpec, e2e, wait_for, wait_until};
use serde_json::Value;

const TASKS: usize = 300;
/// 300 tasks of 50 ms on 10 workers: 1.5 s of work, so the cut falls in the middle of it.
const TASK_MS: u64 = 50;
/// The partition itself: how long the proxy holds the cut (the scenario, not a wait).
const CUT: Duration = Duration::from_secs(10);
/// Longest the executor may take to reconnect and empty its outbox after the cut.
const RECOVERY: Duration = Duration::from_secs(60);

fn transport_health(h: &Value) -> Option<bool> {
    h["transports"]
        .as_array()?
        .first()
        .and_then(|t| t["connected"].as_bool())
}

fn unreported(h: &Value) -> u64 {
    h["unreportedResults"].as_u64().unwrap_or_default()
}

fn partition(transport: &str, cut: Mode) -> anyhow::Result<()> {
    let engine = Engine::start(&EngineSpec::ephemeral().with("GAMELAN_ENGINE_ACK_TIMEOUT", "20s"))?;
    let proxy = Proxy::start(engine.addr)?;
    let mut spec = ExecutorSpec::new(&format!("cut-{transport}"), &engine)
        .with("GAMELAN_EXECUTOR_TRANSPORT", transport)
        .with("GAMELAN_EXECUTOR_ENGINE_REQUEST_TIMEOUT", "2s")
        .with("GAMELAN_EXECUTOR_ENGINE_CONNECT_TIMEOUT", "2s")
        .with("GAMELAN_EXECUTOR_HEARTBEAT_INTERVAL", "500ms")
        .with("GAMELAN_EXECUTOR_GRPC_KEEP_ALIVE_TIME_SECONDS", "1")
        .with("GAMELAN_EXECUTOR_GRPC_KEEP_ALIVE_TIMEOUT_SECONDS", "1");
    spec.engine_url = proxy.url();
    let executor = Executor::start(&spec)?;
    let sleep_id = executor.id("sleep");
    engine.wait_alive(std::slice::from_ref(&sleep_id))?;
    wait_until(
        Duration::from_secs(30),
        "the executor to be connected",
        || {
            executor
                .health()
                .is_ok_and(|h| transport_health(&h) == Some(true))
        },
    )?;

    let submitted =
        engine
            .api
            .submit(&sleep_requests(&format!("cut-{transport}"), TASKS, TASK_MS))?;
    wait_until(
        Duration::from_secs(30),
        "some tasks to complete while others run",
        || {
            engine
                .api
                .statistics()
                .is_ok_and(|s| s.tasks_completed >= 30 && s.tasks_in_flight > 0)
        },
    )?;

    // The cut.
    let cut_started = Instant::now();
    proxy.set(cut);
    let cut_ends = cut_started + CUT;
    let within_cut = || cut_ends.saturating_duration_since(Instant::now());
    // Seen from the executor's own port (not behind the proxy), while the cut holds.
    wait_until(
        within_cut(),
        "/health to show the transport disconnected during the cut",
        || {
            executor
                .health()
                .is_ok_and(|h| transport_health(&h) == Some(false))
        },
    )?;
    let (ready, _) = executor.health_get("/health/ready")?;
    assert_eq!(ready, 503, "not ready while disconnected");
    let during = wait_for(
        within_cut(),
        "results produced during the cut to wait in the outbox",
        || Ok(executor.health().ok().filter(|h| unreported(h) > 0)),
    )?;
    let lost_at = cut_started.elapsed();
    // Hold the cut for its full length.
    std::thread::sleep(within_cut());
    // Still cut off at the end: nothing got through.
    let end = executor.health()?;
    assert_eq!(
        transport_health(&end),
        Some(false),
        "connected through a cut network: {end}"
    );
    proxy.set(Mode::Pass);
    let restored = Instant::now();

    let after = wait_for(
        RECOVERY,
        "the executor to reconnect and empty its outbox",
        || {
            Ok(executor
                .health()
                .ok()
                .filter(|h| transport_health(h) == Some(true) && unreported(h) == 0))
        },
    )?;
    let recovered_in = restored.elapsed();
    let done = engine.api.await_completions(&submitted, RECOVERY)?;
    done.assert_each_completed_once(TASKS);
    let stats = engine.api.statistics()?;
    assert_eq!(stats.tasks_completed, TASKS as u64, "{stats:?}");
    assert_eq!(stats.tasks_failed, 0, "{stats:?}");

    let log = executor.process.text(None);
    assert!(
        log.contains(&format!("connection to engine lost on {transport}")),
        "the log must name the loss"
    );
    let registrations = log
        .matches(&format!("connected over {transport} and registered"))
        .count();
    assert!(
        registrations >= 2,
        "the log must show the reconnection; registered {registrations} time(s)"
    );
    let (ready, _) = executor.health_get("/health/ready")?;
    assert_eq!(ready, 200, "ready again after the cut");
    eprintln!(
        "{transport} {cut:?}: loss seen {lost_at:?} into the cut with {} result(s) waiting; \
         recovered {recovered_in:?} after the cut; engine: {} stale, {} duplicate, {} \
         redispatched; proxy connections (accepted, reset): {:?}; health after: {after}",
        unreported(&during),
        stats.results_stale,
        stats.results_duplicate,
        stats.tasks_redispatched,
        proxy.counts()
    );
    if !executor_running(executor) {
        bail!("the executor exited");
    }
    Ok(())
}

fn executor_running(mut executor: Executor) -> bool {
    executor.process.is_running()
}

#[test]
fn grpc_survives_10s_of_reset_connections() {
    e2e(|| partition("grpc", Mode::Reset));
}

/// Fails today: the engine never learns that the blackholed connection is dead (it sends no
/// HTTP/2 pings on its port and nothing else times the stream out), so the old
/// `ExecuteStream` stays attached next to the executor's new one. Tasks the ack timeout
/// takes back are handed to the dead stream again and are swallowed again, attempt after
/// attempt. Run it with `--ignored` once the engine detects dead streams.
#[test]
#[ignore = "the engine keeps delivering to a wedged gRPC stream"]
fn grpc_survives_10s_of_blackholed_traffic() {
    e2e(|| partition("grpc", Mode::Blackhole));
}

#[test]
fn rest_survives_10s_of_reset_connections() {
    e2e(|| partition("rest", Mode::Reset));
}

#[test]
fn rest_survives_10s_of_blackholed_traffic() {
    e2e(|| partition("rest", Mode::Blackhole));
}
