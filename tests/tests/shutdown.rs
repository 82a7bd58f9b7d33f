//! Graceful shutdown of an executor process on SIGTERM: running tasks finish and their
//! results arrive, tasks it holds but has not started go back to the engine, it unregisters
//! and exits 0. Another executor then finishes what was handed back, each task once.

use std::time::Duration;

use gamelan_e2e::workload::sleep_requests;
use gamelan_e2e::{Engine, EngineSpec, Executor, ExecutorSpec, e2e, wait_for, wait_until};

#[test]
fn sigterm_finishes_running_tasks_hands_back_the_rest_and_unregisters() {
    e2e(|| {
        const TASKS: usize = 10;
        let engine = Engine::start(&EngineSpec::ephemeral())?;
        // Two workers: two tasks run, the other eight wait inside the process.
        let mut leaving = Executor::start(
            &ExecutorSpec::new("leaving", &engine)
                .with("GAMELAN_EXECUTOR_TASK_DISPATCH_THREADS", 2)
                .with("GAMELAN_EXECUTOR_RUNTIME_MAX_PARALLEL_TASKS", 2),
        )?;
        let sleep_id = leaving.id("sleep");
        engine.wait_alive(std::slice::from_ref(&sleep_id))?;

        let submitted = engine.api.submit(&sleep_requests("stop", TASKS, 1500))?;
        let running = wait_for(
            Duration::from_secs(30),
            "two sleep tasks running and all ten held",
            || {
                let (active, _) = leaving.active_tasks("sleep")?;
                let held = engine.executor(&sleep_id)?.map_or(0, |v| v.in_flight);
                Ok((active == 2 && held == TASKS as u64).then_some(active))
            },
        )?;
        leaving.process.terminate()?;
        let status = leaving.process.wait_exit(Duration::from_secs(30))?;
        assert!(status.success(), "graceful stop must exit 0, got {status}");

        let log = leaving.process.text(None);
        let handed_back = TASKS as u64 - running;
        assert!(
            log.contains(&format!(
                "{handed_back} tasks handed back, 0 results unconfirmed"
            )),
            "the shutdown report must name {handed_back} handed back:\n{}",
            leaving.process.tail()
        );
        let listed: Vec<String> = engine
            .api
            .executors()?
            .into_iter()
            .map(|e| e.executor_id)
            .filter(|id| id.starts_with("leaving-"))
            .collect();
        assert!(listed.is_empty(), "still registered: {listed:?}");

        let views: Vec<_> = submitted
            .iter()
            .map(|s| engine.api.task(&s.task_id))
            .collect::<anyhow::Result<_>>()?;
        let completed: Vec<_> = views.iter().filter(|v| v.status == "COMPLETED").collect();
        assert_eq!(
            completed.len() as u64,
            running,
            "the running tasks finish and report before the process exits: {views:?}"
        );
        assert!(
            completed
                .iter()
                .all(|v| v.executor_id.as_deref() == Some(sleep_id.as_str())),
            "{completed:?}"
        );
        let waiting: Vec<_> = views.iter().filter(|v| !v.is_final()).collect();
        assert_eq!(waiting.len() as u64, handed_back, "{views:?}");
        let stats = engine.api.statistics()?;
        assert_eq!(
            stats.tasks_in_flight, 0,
            "nothing may stay assigned: {stats:?}"
        );
        assert_eq!(stats.tasks_pending, handed_back, "{stats:?}");
        assert_eq!(stats.tasks_failed, 0, "{stats:?}");

        // What was handed back is not lost: a new executor finishes it.
        let successor = Executor::start(&ExecutorSpec::new("successor", &engine))?;
        engine.wait_alive(&[successor.id("sleep")])?;
        let done = engine
            .api
            .await_completions(&submitted, Duration::from_secs(60))?;
        assert!(done.repeated.is_empty(), "{:?}", done.repeated);
        assert!(done.by_key.values().all(|v| v.status == "COMPLETED"));
        let moved = done
            .by_key
            .values()
            .filter(|v| v.executor_id.as_deref() == Some(successor.id("sleep").as_str()))
            .count() as u64;
        assert_eq!(moved, handed_back);
        wait_until(Duration::from_secs(5), "final statistics", || {
            engine
                .api
                .statistics()
                .is_ok_and(|s| s.tasks_completed == TASKS as u64 && s.tasks_pending == 0)
        })?;
        Ok(())
    });
}
