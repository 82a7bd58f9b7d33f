//! Failures end to end: a task the executor does not host, an executor that panics, a failing
//! `gamelan submit`, and hostile HTTP input. Each failure is reported precisely and the
//! processes keep serving.

use std::time::Duration;

use gamelan_e2e::workload::{check_tax, tax_requests};
use gamelan_e2e::{Engine, EngineSpec, Executor, ExecutorSpec, Process, e2e};
use serde_json::{Value, json};

#[test]
fn a_task_the_executor_does_not_host_fails_no_executor() {
    e2e(|| {
        let engine = Engine::start(&EngineSpec::ephemeral())?;
        let mut executor = Executor::start(&ExecutorSpec::new("nx", &engine))?;
        let echo = executor.id("echo");
        engine.wait_alive(std::slice::from_ref(&echo))?;
        // The engine routes by node type, so it hands a process only what its registration
        // claims. Make the registration claim a node type the process does not host (a stale
        // registration after a redeploy): the engine now sends `ghost` tasks to it.
        let (status, body) = engine.api.post(
            "/api/v1/executors",
            &json!({
                "executorId": echo,
                "executorType": "echo",
                "communicationType": "GRPC",
                "supportedNodeTypes": ["echo", "ghost"],
                "maxConcurrentTasks": 1000,
            }),
        )?;
        assert_eq!(status, 200, "{body}");

        let submitted = engine.api.submit(&[
            json!({"nodeType": "ghost", "runId": "ghost", "input": {"a": 1}}),
            json!({"executorType": "echo", "runId": "echo", "input": {"a": 2}}),
        ])?;
        let done = engine
            .api
            .await_completions(&submitted, Duration::from_secs(30))?;
        let ghost = &done.by_key["ghost:node"];
        assert_eq!(ghost.status, "FAILED", "{ghost:?}");
        assert_eq!(ghost.error_code(), Some("NO_EXECUTOR"), "{ghost:?}");
        assert_eq!(ghost.executor_id.as_deref(), Some(echo.as_str()));
        assert_eq!(ghost.attempt, 1, "NO_EXECUTOR is final, never retried");
        let fine = &done.by_key["echo:node"];
        assert_eq!(fine.status, "COMPLETED", "{fine:?}");
        assert_eq!(fine.output, Some(json!({"a": 2})));
        let stats = engine.api.statistics()?;
        assert_eq!((stats.tasks_completed, stats.tasks_failed), (1, 1));
        assert!(executor.process.is_running());
        Ok(())
    });
}

#[test]
fn a_panicking_executor_fails_the_task_and_keeps_serving() {
    e2e(|| {
        let engine = Engine::start(&EngineSpec::ephemeral())?;
        let mut executor = Executor::start(&ExecutorSpec::new("brittle", &engine))?;
        engine.wait_alive(&[executor.id("fault"), executor.id("calculate-tax")])?;

        let fault = |run: &str, mode: &str| json!({"executorType": "fault", "runId": run, "input": {"mode": mode}});
        let first = engine.api.submit(&[
            fault("panic-1", "panic"),
            fault("panic-2", "panic"),
            fault("business", "business"),
        ])?;
        let done = engine
            .api
            .await_completions(&first, Duration::from_secs(30))?;
        for key in ["panic-1:node", "panic-2:node"] {
            let v = &done.by_key[key];
            assert_eq!(v.status, "FAILED", "{v:?}");
            assert_eq!(v.error_code(), Some("EXECUTOR_PANIC"), "{v:?}");
            assert_eq!(v.attempt, 1, "a panic is final, never retried: {v:?}");
        }
        assert_eq!(
            done.by_key["business:node"].error_code(),
            Some("FAULT_BUSINESS")
        );
        assert!(
            executor.process.is_running(),
            "a panic must not end the process"
        );

        // The same executor, and the process's others, keep working after the panics.
        let mut second = tax_requests("after-panic", 50);
        second.push(json!({"executorType": "fault", "runId": "flaky", "input": {"mode": "flaky", "failures": 0}}));
        let submitted = engine.api.submit(&second)?;
        let done = engine
            .api
            .await_completions(&submitted, Duration::from_secs(30))?;
        let flaky = &done.by_key["flaky:node"];
        assert_eq!(flaky.status, "COMPLETED", "{flaky:?}");
        assert_eq!(
            flaky.executor_id.as_deref(),
            Some(executor.id("fault").as_str())
        );
        let wrong: Vec<_> = done
            .by_key
            .values()
            .filter(|v| v.run_id != "flaky")
            .filter_map(|v| check_tax(v).err())
            .collect();
        assert!(wrong.is_empty(), "{wrong:?}");
        let fault_view = engine.executor(&executor.id("fault"))?.expect("listed");
        assert_eq!(
            (fault_view.completed_tasks, fault_view.failed_tasks),
            (1, 3)
        );
        let health = executor.health()?;
        assert_eq!(health["status"], "UP", "{health}");
        Ok(())
    });
}

#[test]
fn gamelan_submit_exits_non_zero_when_tasks_fail() {
    e2e(|| {
        let engine = Engine::start(&EngineSpec::ephemeral())?;
        let executor = Executor::start(&ExecutorSpec::new("sub", &engine))?;
        engine.wait_alive(&[executor.id("fault")])?;
        let url = engine.url();
        let run = Process::run(
            "submit",
            &[
                "submit",
                "--engine",
                &url,
                "--type",
                "fault",
                "--input",
                r#"{"mode": "business"}"#,
                "--count",
                "3",
                "--timeout-secs",
                "60",
            ],
            &[],
            Duration::from_secs(90),
        )?;
        assert!(
            !run.status.success(),
            "three failed tasks must fail the command: {run:?}"
        );
        assert!(run.stdout.contains("submitted:  3"), "{}", run.stdout);
        assert!(run.stdout.contains("failed:     3"), "{}", run.stdout);
        assert!(run.stdout.contains("FAULT_BUSINESS: 3"), "{}", run.stdout);

        let bad_input = Process::run(
            "submit",
            &[
                "submit", "--engine", &url, "--type", "echo", "--input", "[1, 2]",
            ],
            &[],
            Duration::from_secs(30),
        )?;
        assert!(!bad_input.status.success(), "{bad_input:?}");
        assert!(
            bad_input.stderr.contains("JSON object"),
            "{}",
            bad_input.stderr
        );

        // A type nobody serves: said before waiting, and the wait ends at the timeout.
        let unserved = Process::run(
            "submit",
            &[
                "submit",
                "--engine",
                &url,
                "--type",
                "nobody-serves-this",
                "--timeout-secs",
                "1",
            ],
            &[],
            Duration::from_secs(30),
        )?;
        assert!(!unserved.status.success(), "{unserved:?}");
        assert!(
            unserved
                .stderr
                .contains("no live executor handles type 'nobody-serves-this'"),
            "{}",
            unserved.stderr
        );
        assert!(
            !run.stderr.contains("no live executor"),
            "a served type is not warned about: {}",
            run.stderr
        );
        Ok(())
    });
}

fn error_name(body: &Value) -> &str {
    body["error"].as_str().unwrap_or_default()
}

#[test]
fn hostile_http_input_gets_a_4xx_with_a_json_error_and_the_engine_keeps_serving() {
    e2e(|| {
        let mut engine = Engine::start(&EngineSpec::ephemeral())?;
        let executor = Executor::start(&ExecutorSpec::new("http", &engine))?;
        engine.wait_alive(&[executor.id("calculate-tax")])?;
        // Accepted before the abuse; must survive it.
        let before = engine.api.submit(&tax_requests("before", 20))?;

        let cases: Vec<(&str, u16, Vec<u8>)> = vec![
            ("malformed JSON", 400, br#"{"executorType":"#.to_vec()),
            (
                "a wrong type",
                400,
                br#"{"executorType": 5, "input": {}}"#.to_vec(),
            ),
            ("a missing type", 400, br#"{"input": {}}"#.to_vec()),
            ("a body over 4 MiB", 413, {
                let mut b = br#"{"executorType": "echo", "input": {"pad": ""#.to_vec();
                b.resize(b.len() + 4 * 1024 * 1024 + 1, b'x');
                b.extend_from_slice(br#""}}"#);
                b
            }),
        ];
        for (what, expected, body) in cases {
            let (status, answer) = engine.api.post_bytes("/api/v1/tasks", body)?;
            assert_eq!(status, expected, "{what}: {answer}");
            assert!(
                !error_name(&answer).is_empty(),
                "{what}: no JSON error: {answer}"
            );
            assert!(answer["message"].is_string(), "{what}: {answer}");
        }
        let (status, answer) = engine
            .api
            .post("/api/v1/executors/nobody/results", &json!([]))?;
        assert_eq!(status, 404, "{answer}");
        assert_eq!(error_name(&answer), "unknown_executor");
        let (status, answer) = engine.api.get("/api/v1/tasks/nope:node:1")?;
        assert_eq!(status, 404, "{answer}");
        assert_eq!(error_name(&answer), "unknown_task");

        assert!(engine.process.is_running());
        let (status, _) = engine.api.get("/q/health/ready")?;
        assert_eq!(status, 200);
        let mut all = before;
        all.extend(engine.api.submit(&tax_requests("after", 20))?);
        let done = engine
            .api
            .await_completions(&all, Duration::from_secs(30))?;
        let wrong: Vec<_> = done
            .by_key
            .values()
            .filter_map(|v| check_tax(v).err())
            .collect();
        assert!(wrong.is_empty(), "{wrong:?}");
        let stats = engine.api.statistics()?;
        assert_eq!(
            stats.tasks_submitted, 40,
            "refused requests must not create tasks"
        );
        Ok(())
    });
}
