//! An engine and an executor as separate processes, once per transport and gRPC delivery
//! mode: a thousand `calculate-tax` tasks submitted over HTTP all complete with the right
//! tax, and `gamelan submit` run against the same engine exits 0 with its summary.

use std::time::Duration;

use gamelan_e2e::workload::{check_tax, tax_requests};
use gamelan_e2e::{Engine, EngineSpec, Executor, ExecutorSpec, Process, e2e};

const TASKS: usize = 1000;
const SUBMIT_COUNT: usize = 200;

/// Runs the scenario over `transport` (`grpc` with `GAMELAN_EXECUTOR_GRPC_DELIVERY=delivery`,
/// or `rest`), checking in the executor's log that this mode was really the one used.
fn thousand_tax_tasks(
    transport: &str,
    delivery: &str,
    extra: &[(&str, &str)],
) -> anyhow::Result<()> {
    let engine = Engine::start(&EngineSpec::ephemeral())?;
    let mut spec = ExecutorSpec::new("tax", &engine).with("GAMELAN_EXECUTOR_TRANSPORT", transport);
    if transport == "grpc" {
        spec = spec.with("GAMELAN_EXECUTOR_GRPC_DELIVERY", delivery);
    }
    for (k, v) in extra {
        spec = spec.with(k, v);
    }
    let executor = Executor::start(&spec)?;
    if transport == "grpc" {
        let connected = executor.process.wait_for_line(
            Duration::from_secs(30),
            "the connection line",
            |l| l.contains("connected to engine"),
        )?;
        assert!(
            connected.contains(&format!("({delivery} delivery)")),
            "executor connected with another delivery: {connected}"
        );
    }
    executor
        .process
        .wait_for_line(Duration::from_secs(30), "the registration line", |l| {
            l.contains(&format!("connected over {transport} and registered"))
        })?;
    let views = engine.wait_alive(&[executor.id("calculate-tax")])?;
    let tax = views
        .iter()
        .find(|e| e.executor_id == executor.id("calculate-tax"))
        .expect("listed");
    assert_eq!(tax.communication_type, transport.to_uppercase());
    let endpoint = tax.endpoint.clone().unwrap_or_default();
    if delivery == "push" {
        assert!(
            endpoint.starts_with("127.0.0.1:"),
            "a push executor registers its endpoint, got '{endpoint}'"
        );
    } else {
        assert!(
            endpoint.is_empty(),
            "a pull executor registers no endpoint, got '{endpoint}'"
        );
    }

    let submitted = engine.api.submit(&tax_requests(transport, TASKS))?;
    let done = engine
        .api
        .await_completions(&submitted, Duration::from_secs(60))?;
    assert_eq!(done.by_key.len(), TASKS);
    assert!(
        done.repeated.is_empty(),
        "reported twice: {:?}",
        done.repeated
    );
    let wrong: Vec<String> = done
        .by_key
        .values()
        .filter_map(|v| check_tax(v).err())
        .collect();
    assert!(
        wrong.is_empty(),
        "{} wrong, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    assert!(
        done.by_key
            .values()
            .all(|v| v.executor_id.as_deref() == Some(executor.id("calculate-tax").as_str())),
        "every task ran on the one executor"
    );
    let stats = engine.api.statistics()?;
    assert_eq!(stats.tasks_submitted, TASKS as u64);
    assert_eq!(stats.tasks_completed, TASKS as u64);
    assert_eq!(stats.tasks_failed, 0);
    let view = engine
        .executor(&executor.id("calculate-tax"))?
        .expect("still listed");
    assert_eq!(view.completed_tasks, TASKS as u64);

    let count = SUBMIT_COUNT.to_string();
    let url = engine.url();
    let run = Process::run(
        "submit",
        &[
            "submit",
            "--engine",
            &url,
            "--type",
            "calculate-tax",
            "--input",
            r#"{"amount": 250}"#,
            "--count",
            &count,
            "--timeout-secs",
            "60",
        ],
        &[],
        Duration::from_secs(90),
    )?;
    assert!(run.status.success(), "gamelan submit failed: {run:?}");
    assert!(
        run.stdout.contains(&format!("submitted:  {SUBMIT_COUNT}")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!("completed:  {SUBMIT_COUNT}")),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("failed:     0"), "{}", run.stdout);
    assert!(run.stdout.contains("throughput:"), "{}", run.stdout);
    assert!(run.stdout.contains("latency:"), "{}", run.stdout);
    let stats = engine.api.statistics()?;
    assert_eq!(stats.tasks_completed, (TASKS + SUBMIT_COUNT) as u64);
    Ok(())
}

#[test]
fn execute_stream_completes_every_task_with_the_right_tax() {
    e2e(|| thousand_tax_tasks("grpc", "execute-stream", &[]));
}

#[test]
fn stream_tasks_completes_every_task_with_the_right_tax() {
    e2e(|| thousand_tax_tasks("grpc", "stream-tasks", &[]));
}

#[test]
fn push_completes_every_task_with_the_right_tax() {
    e2e(|| {
        thousand_tax_tasks(
            "grpc",
            "push",
            &[
                ("GAMELAN_EXECUTOR_GRPC_HOST", "127.0.0.1"),
                ("GAMELAN_EXECUTOR_GRPC_PORT", "0"),
            ],
        )
    });
}

#[test]
fn rest_completes_every_task_with_the_right_tax() {
    e2e(|| thousand_tax_tasks("rest", "long-poll", &[]));
}
