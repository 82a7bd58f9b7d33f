//! Idle costs nothing: an engine with a gRPC and a REST executor, left alone for 5 s before
//! any task and 5 s after a batch of tasks, each use under 5 % of one core in each window.
//! Waiting threads block on channels, conditions and sockets (with timeouts); the bound is
//! generous on purpose (a busy shared machine adds noise) and only a spinning thread breaks it.
//! The figures are printed (`--nocapture`) for BENCHMARKS.md.

use std::time::Duration;

use gamelan_e2e::procstat::{Usage, measure};
use gamelan_e2e::workload::{check_tax, tax_requests};
use gamelan_e2e::{Engine, EngineSpec, Executor, ExecutorSpec, e2e};

const WINDOW: Duration = Duration::from_secs(5);
const MAX_SHARE_OF_A_CORE: f64 = 0.05;
const TASKS: usize = 500;

fn check(window: &str, usage: &[Usage]) -> anyhow::Result<()> {
    for u in usage {
        eprintln!("idle {window}: {u}");
    }
    let busy: Vec<String> = usage
        .iter()
        .filter(|u| u.share_of_a_core() >= MAX_SHARE_OF_A_CORE)
        .map(ToString::to_string)
        .collect();
    if !busy.is_empty() {
        anyhow::bail!(
            "idle {window}: at or above {} % of a core: {busy:#?}",
            MAX_SHARE_OF_A_CORE * 100.0
        );
    }
    Ok(())
}

#[test]
fn engine_and_executors_use_no_cpu_while_idle() {
    e2e(|| {
        let engine = Engine::start(&EngineSpec::ephemeral())?;
        let grpc = Executor::start(&ExecutorSpec::new("idle-grpc", &engine))?;
        let rest = Executor::start(
            &ExecutorSpec::new("idle-rest", &engine).with("GAMELAN_EXECUTOR_TRANSPORT", "rest"),
        )?;
        engine.wait_alive(&[grpc.id("calculate-tax"), rest.id("calculate-tax")])?;
        for e in [&grpc, &rest] {
            e.process
                .wait_for_line(Duration::from_secs(30), "the registration line", |l| {
                    l.contains("registered")
                })?;
        }
        let processes = [
            ("engine", engine.process.pid()),
            ("grpc executor", grpc.process.pid()),
            ("rest executor", rest.process.pid()),
        ];

        check("before any task", &measure(&processes, WINDOW)?)?;

        let submitted = engine.api.submit(&tax_requests("idle", TASKS))?;
        let done = engine
            .api
            .await_completions(&submitted, Duration::from_secs(120))?;
        let wrong: Vec<String> = done
            .by_key
            .values()
            .filter_map(|v| check_tax(v).err())
            .collect();
        assert!(wrong.is_empty(), "{wrong:?}");

        check("after a batch", &measure(&processes, WINDOW)?)?;
        Ok(())
    });
}
