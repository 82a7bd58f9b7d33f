//! Processes dying mid-run: an executor killed with SIGKILL, and the engine itself killed and
//! started again on the same port and data directory. Nothing accepted is lost, nothing is
//! applied twice.

use std::path::Path;
use std::time::Duration;

use gamelan_e2e::workload::sleep_requests;
use gamelan_e2e::{Engine, EngineSpec, Executor, ExecutorSpec, e2e, wait_for, wait_until};

/// Executors heartbeat this often, so the engine's short timeout below never fires for a live
/// one.
const HEARTBEAT_INTERVAL: &str = "200ms";

#[test]
fn tasks_of_a_killed_executor_complete_on_the_other_exactly_once() {
    e2e(|| {
        const TASKS: usize = 200;
        let engine =
            Engine::start(&EngineSpec::ephemeral().with("GAMELAN_ENGINE_HEARTBEAT_TIMEOUT", "2s"))?;
        let spec = |id: &str| {
            ExecutorSpec::new(id, &engine)
                .with("GAMELAN_EXECUTOR_HEARTBEAT_INTERVAL", HEARTBEAT_INTERVAL)
        };
        let mut victim = Executor::start(&spec("victim"))?;
        let survivor = Executor::start(&spec("survivor"))?;
        let victim_id = victim.id("sleep");
        let survivor_id = survivor.id("sleep");
        engine.wait_alive(&[victim_id.clone(), survivor_id.clone()])?;

        // Ten workers per executor against up to 100 tasks each: about two seconds of work.
        let submitted = engine.api.submit(&sleep_requests("kill", TASKS, 200))?;
        let before = wait_for(
            Duration::from_secs(30),
            "the victim to finish some tasks while holding others",
            || {
                let v = engine.executor(&victim_id)?;
                Ok(v.filter(|v| v.completed_tasks >= 10 && v.in_flight > 0))
            },
        )?;
        victim.process.kill()?;

        let done = engine
            .api
            .await_completions(&submitted, Duration::from_secs(60))?;
        assert_eq!(done.by_key.len(), TASKS);
        assert!(
            done.repeated.is_empty(),
            "reported twice: {:?}",
            done.repeated
        );
        let not_completed: Vec<_> = done
            .by_key
            .values()
            .filter(|v| v.status != "COMPLETED")
            .collect();
        assert!(not_completed.is_empty(), "{not_completed:?}");
        let moved: Vec<_> = done.by_key.values().filter(|v| v.attempt > 1).collect();
        assert!(
            !moved.is_empty(),
            "the victim held {} tasks when killed; they must come back as new attempts",
            before.in_flight
        );
        assert!(
            moved
                .iter()
                .all(|v| v.executor_id.as_deref() == Some(survivor_id.as_str())),
            "a re-dispatched task ran somewhere other than the survivor: {moved:?}"
        );

        let stats = engine.api.statistics()?;
        assert_eq!(stats.tasks_submitted, TASKS as u64);
        assert_eq!(stats.tasks_completed, TASKS as u64, "{stats:?}");
        assert_eq!(stats.tasks_failed, 0, "{stats:?}");
        assert!(stats.tasks_redispatched >= moved.len() as u64, "{stats:?}");
        let survivor_view = engine.executor(&survivor_id)?.expect("survivor listed");
        let victim_view = engine.executor(&victim_id)?;
        let victim_done = victim_view
            .as_ref()
            .map_or(before.completed_tasks, |v| v.completed_tasks);
        assert_eq!(
            survivor_view.completed_tasks + victim_done,
            TASKS as u64,
            "per-executor counts must add up to one result per task"
        );
        assert!(
            victim_view.is_none_or(|v| !v.alive),
            "the killed executor must be declared dead"
        );
        Ok(())
    });
}

/// Starts an engine on `port`, retrying while the old process's socket is still closing.
fn start_on(port: u16, data_dir: &Path) -> anyhow::Result<Engine> {
    let spec = EngineSpec {
        port,
        data_dir: Some(data_dir.to_path_buf()),
        env: Vec::new(),
    };
    wait_for(
        Duration::from_secs(20),
        format!("an engine on port {port}"),
        || Engine::start(&spec).map(Some),
    )
}

/// How the first engine goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// SIGKILL: only what the store committed survives.
    Kill,
    /// SIGTERM: the engine shuts down in order and exits 0.
    Terminate,
}

fn engine_restart_loses_nothing(transport: &str, stop: Stop) -> anyhow::Result<()> {
    const TASKS: usize = 200;
    let data = tempfile::tempdir()?;
    let mut engine = start_on(0, data.path())?;
    let port = engine.addr.port();
    let mut executor = Executor::start(
        &ExecutorSpec::new("steady", &engine)
            .with("GAMELAN_EXECUTOR_TRANSPORT", transport)
            .with("GAMELAN_EXECUTOR_HEARTBEAT_INTERVAL", HEARTBEAT_INTERVAL),
    )?;
    let sleep_id = executor.id("sleep");
    engine.wait_alive(std::slice::from_ref(&sleep_id))?;

    // Ten workers, 200 tasks of 100 ms: about two seconds of work; the engine dies early on.
    let submitted = engine.api.submit(&sleep_requests("restart", TASKS, 100))?;
    wait_until(Duration::from_secs(30), "some tasks to complete", || {
        engine
            .api
            .statistics()
            .is_ok_and(|s| s.tasks_completed >= 20 && s.tasks_in_flight > 0)
    })?;
    match stop {
        Stop::Kill => engine.process.kill()?,
        Stop::Terminate => {
            engine.process.terminate()?;
            let status = engine.process.wait_exit(Duration::from_secs(30))?;
            assert!(
                status.success(),
                "a terminated engine exits 0, got {status}"
            );
        }
    }
    drop(engine);

    let engine = start_on(port, data.path())?;
    assert_eq!(engine.addr.port(), port);
    // Nobody re-registers the executor but itself.
    engine.wait_alive(std::slice::from_ref(&sleep_id))?;
    let done = engine
        .api
        .await_final(&submitted, Duration::from_secs(60))?;
    let not_completed: Vec<_> = done.values().filter(|v| v.status != "COMPLETED").collect();
    assert!(not_completed.is_empty(), "{not_completed:?}");
    assert!(
        executor.process.is_running(),
        "the executor must ride out the restart"
    );
    let registrations = executor
        .process
        .text(None)
        .matches(&format!("connected over {transport} and registered"))
        .count();
    assert!(
        registrations >= 2,
        "the executor registered {registrations} time(s)"
    );
    let stats = engine.api.statistics()?;
    assert_eq!(stats.tasks_failed, 0, "{stats:?}");
    Ok(())
}

#[test]
fn engine_killed_and_restarted_on_the_same_port_and_data_loses_nothing_grpc() {
    e2e(|| engine_restart_loses_nothing("grpc", Stop::Kill));
}

#[test]
fn engine_terminated_and_restarted_on_the_same_port_and_data_loses_nothing_grpc() {
    e2e(|| engine_restart_loses_nothing("grpc", Stop::Terminate));
}

#[test]
fn engine_killed_and_restarted_on_the_same_port_and_data_loses_nothing_rest() {
    e2e(|| engine_restart_loses_nothing("rest", Stop::Kill));
}
