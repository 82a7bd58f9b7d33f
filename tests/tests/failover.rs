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
        done.assert_each_completed_once(TASKS);
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
/// A task handed out just before a kill that never reached its executor waits for the ack
/// timeout after the restart (a restart is not an attempt): keep it short here.
fn start_on(port: u16, data_dir: &Path) -> anyhow::Result<Engine> {
    let spec = EngineSpec {
        port,
        data_dir: Some(data_dir.to_path_buf()),
        env: Vec::new(),
    }
    .with("GAMELAN_ENGINE_ACK_TIMEOUT", ACK_TIMEOUT);
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

/// How the three-kill run's engines and executors are tuned: executors heartbeat often; a
/// task delivered before a kill and lost on the way comes home after the ack timeout.
const ACK_TIMEOUT: &str = "8s";
const KILL_HEARTBEAT_TIMEOUT: &str = "10s";
/// Main tasks, and tasks submitted while the executors are paused before each kill: more
/// than the three executors take at once (100 `sleep` tasks each), so some of them cannot
/// leave the engine before it dies.
const MAIN_TASKS: usize = 1500;
const PROBES: usize = 360;
const KILLS: usize = 3;
/// Kafka client properties (as `GAMELAN_ENGINE_KAFKA_*` variables) that let a restarted
/// engine's consumer take over its group quickly: the killed engine's member is given up after the session
/// timeout, not librdkafka's default 45 s.
const FAST_KAFKA: [(&str, &str); 4] = [
    ("HEARTBEAT_INTERVAL_MS", "300"),
    ("SESSION_TIMEOUT_MS", "6000"),
    ("TOPIC_METADATA_REFRESH_INTERVAL_MS", "1000"),
    ("FETCH_ERROR_BACKOFF_MS", "10"),
];

/// What the API said about one task, as the test recorded it.
#[derive(Debug, Clone)]
struct Seen {
    status: String,
    attempt: u32,
    task_id: String,
    output: Option<serde_json::Value>,
}

impl Seen {
    fn of(v: &gamelan_e2e::api::TaskView) -> Self {
        Self {
            status: v.status.clone(),
            attempt: v.attempt,
            task_id: v.task_id.clone(),
            output: v.output.clone(),
        }
    }
}

/// Reads the completion feed after `cursor` until it has nothing more right now.
fn drain_feed(
    api: &gamelan_e2e::api::Api,
    mut cursor: u64,
    into: &mut std::collections::HashMap<String, Seen>,
    repeated: &mut Vec<String>,
) -> anyhow::Result<u64> {
    loop {
        let (items, next) = api.completions_page(cursor, Duration::ZERO)?;
        let empty = items.is_empty() && next == cursor;
        cursor = next;
        for v in &items {
            if into.insert(v.submission_id.clone(), Seen::of(v)).is_some() {
                repeated.push(v.submission_id.clone());
            }
        }
        if empty {
            return Ok(cursor);
        }
    }
}

/// Executions per attempt id, from the executors' `task <id> executing (try n)` debug lines.
fn executions(executors: &[&Executor]) -> std::collections::HashMap<String, u32> {
    let mut runs = std::collections::HashMap::new();
    for e in executors {
        for line in e.process.text(None).lines() {
            let Some(pos) = line.find(" executing (try ") else {
                continue;
            };
            if let Some(id) = line[..pos].rsplit(' ').next() {
                *runs.entry(id.to_owned()).or_insert(0) += 1;
            }
        }
    }
    runs
}

fn key_of(attempt_id: &str) -> &str {
    attempt_id.rsplit_once(':').map_or(attempt_id, |(k, _)| k)
}

/// `kill -9` of a durable engine three times in one run while gRPC, REST (and Kafka)
/// executors work through 5 ms `sleep` tasks, restarting it on the same port and data.
/// Before each kill the executors are paused (so nothing changes hands), more tasks are
/// submitted (most cannot leave the engine), and every task's state is recorded through
/// the API; right after the restart, before the executors run again, each must answer as
/// recorded: COMPLETED with the same attempt and output, and an unfinished task with the
/// same attempt (a restart is not an attempt). At the end every task is COMPLETED exactly
/// once in the feed, no attempt ran twice and no task ran more often than its attempt
/// says (counted from the executors' logs), and tasks that had never left the engine
/// before the last kill finish at attempt 1.
fn engine_killed_three_times(kafka: bool) -> anyhow::Result<()> {
    use std::collections::{BTreeMap, HashMap};

    let broker = kafka.then(gamelan_kafka::test_broker::TansuBroker::start);
    let data = tempfile::tempdir()?;
    let engine_spec = |port: u16| {
        let mut spec = EngineSpec {
            port,
            data_dir: Some(data.path().to_path_buf()),
            env: Vec::new(),
        }
        .with("GAMELAN_ENGINE_ACK_TIMEOUT", ACK_TIMEOUT)
        .with("GAMELAN_ENGINE_HEARTBEAT_TIMEOUT", KILL_HEARTBEAT_TIMEOUT);
        if let Some(b) = &broker {
            spec = spec.with("GAMELAN_ENGINE_KAFKA_BOOTSTRAP_SERVERS", b.bootstrap());
            for (k, v) in FAST_KAFKA {
                spec = spec.with(&format!("GAMELAN_ENGINE_KAFKA_{k}"), v);
            }
        }
        spec
    };
    let mut engine = Engine::start(&engine_spec(0))?;
    let port = engine.addr.port();
    let mut transports = vec!["grpc", "rest"];
    if kafka {
        transports.push("kafka");
    }
    let mut executors = Vec::new();
    for t in &transports {
        let mut spec = ExecutorSpec::new(&format!("crash-{t}"), &engine)
            .with("GAMELAN_EXECUTOR_TRANSPORT", t)
            .with("GAMELAN_EXECUTOR_HEARTBEAT_INTERVAL", HEARTBEAT_INTERVAL)
            .with("RUST_LOG", "info,gamelan.executor.task=debug");
        if let Some(b) = &broker {
            // The executors keep librdkafka's 45 s session timeout: paused for a few seconds
            // at each kill they stay in their groups (a shorter one would hand their
            // unconfirmed tasks to the group again, and Kafka delivers at least once).
            spec = spec.with("GAMELAN_EXECUTOR_KAFKA_BOOTSTRAP_SERVERS", b.bootstrap());
        }
        executors.push(Executor::start(&spec)?);
    }
    let ids: Vec<String> = executors.iter().map(|e| e.id("sleep")).collect();
    engine.wait_alive(&ids)?;

    let mut submitted = engine.api.submit(&sleep_requests("crash", MAIN_TASKS, 5))?;
    let mut completed: HashMap<String, Seen> = HashMap::new();
    let mut repeated = Vec::new();
    let mut cursor = 0;
    let mut problems: Vec<String> = Vec::new();
    let mut never_left_last = Vec::new();
    for kill in 0..KILLS {
        // Some progress since the last kill, but work left for this one.
        let step = MAIN_TASKS / (KILLS + 2);
        let target = (completed.len() + step).min(submitted.len().saturating_sub(step));
        wait_for(
            Duration::from_secs(60),
            format!("{target} completions before kill {}", kill + 1),
            || {
                cursor = drain_feed(&engine.api, cursor, &mut completed, &mut repeated)?;
                Ok((completed.len() >= target).then_some(()))
            },
        )?;
        for e in &executors {
            e.process.pause()?;
        }
        let probes = engine
            .api
            .submit(&sleep_requests(&format!("probe{kill}"), PROBES, 5))?;
        submitted.extend(probes.iter().cloned());
        cursor = drain_feed(&engine.api, cursor, &mut completed, &mut repeated)?;
        let mut before: HashMap<String, Seen> = HashMap::new();
        for s in &submitted {
            if !completed.contains_key(&s.task_id) {
                before.insert(s.task_id.clone(), Seen::of(&engine.api.task(&s.task_id)?));
            }
        }
        engine.process.kill()?;
        drop(engine);
        engine = start_on_spec(&engine_spec(port))?;
        // The executors are still paused: nothing has changed hands since the kill. Checked
        // first, well within the ack timeout that starts with the restart.
        never_left_last.clear();
        for (id, seen) in &before {
            let now = engine.api.task(id)?;
            // Pending at attempt 1 before the kill and after it (nothing can leave while the
            // executors are paused): it never left the engine.
            if (
                seen.status.as_str(),
                seen.attempt,
                now.status.as_str(),
                now.attempt,
            ) == ("PENDING", 1, "PENDING", 1)
            {
                never_left_last.push(id.clone());
            }
            // Results sent before the pause may still have landed before the kill.
            if now.attempt != seen.attempt {
                problems.push(format!(
                    "kill {}: {id} was {} at attempt {}, after the restart {} at attempt {}",
                    kill + 1,
                    seen.status,
                    seen.attempt,
                    now.status,
                    now.attempt
                ));
            }
        }
        // What was reported COMPLETED cannot change any more: checked last.
        for (id, seen) in &completed {
            let now = engine.api.task(id)?;
            if now.status != "COMPLETED" || now.attempt != seen.attempt || now.output != seen.output
            {
                problems.push(format!(
                    "kill {}: {id} was reported {seen:?}, after the restart {} attempt {} {:?}",
                    kill + 1,
                    now.status,
                    now.attempt,
                    now.output
                ));
            }
        }
        eprintln!(
            "kill {}: {} completed, {} pending and {} running recorded before it; {} never left",
            kill + 1,
            completed.len(),
            before.values().filter(|s| s.status == "PENDING").count(),
            before.values().filter(|s| s.status == "RUNNING").count(),
            never_left_last.len()
        );
        for e in &executors {
            e.process.resume()?;
        }
        engine.wait_alive(&ids)?;
    }

    let done = engine
        .api
        .await_completions(&submitted, Duration::from_secs(120))?;
    let mut by_attempt: BTreeMap<u32, usize> = BTreeMap::new();
    for v in done.by_key.values() {
        *by_attempt.entry(v.attempt).or_default() += 1;
    }
    let runs = executions(&executors.iter().collect::<Vec<_>>());
    let mut per_task: HashMap<&str, u32> = HashMap::new();
    for (attempt_id, n) in &runs {
        *per_task.entry(key_of(attempt_id)).or_default() += n;
        if *n > 1 {
            problems.push(format!("attempt {attempt_id} was executed {n} times"));
        }
    }
    let total_runs: u32 = runs.values().sum();
    let total_attempts: u64 = done.by_key.values().map(|v| u64::from(v.attempt)).sum();
    eprintln!(
        "{} tasks after {KILLS} kills: attempts {by_attempt:?}; {total_runs} executions for {total_attempts} attempts",
        done.by_key.len()
    );

    assert!(
        done.repeated.is_empty(),
        "reported twice: {:?}",
        done.repeated
    );
    assert!(
        repeated.is_empty(),
        "reported twice before a kill: {repeated:?}"
    );
    for s in &submitted {
        let Some(v) = done.by_key.get(&s.key) else {
            problems.push(format!("{} never finished", s.task_id));
            continue;
        };
        if v.status != "COMPLETED" || v.submission_id != s.task_id {
            problems.push(format!("{} ended {v:?}", s.task_id));
        }
        if let Some(seen) = completed.get(&s.task_id)
            && (seen.attempt != v.attempt || seen.output != v.output || seen.task_id != v.task_id)
        {
            problems.push(format!(
                "{} was reported {seen:?}, finally {v:?}",
                s.task_id
            ));
        }
        let ran = per_task.get(s.key.as_str()).copied().unwrap_or(0);
        if ran == 0 || ran > v.attempt {
            problems.push(format!(
                "{} ran {ran} time(s) and finished at attempt {}",
                s.task_id, v.attempt
            ));
        }
    }
    for id in &never_left_last {
        let v = engine.api.task(id)?;
        if v.attempt != 1 {
            problems.push(format!(
                "{id} never left the engine before the last kill, finished at attempt {}",
                v.attempt
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s), e.g. {:#?}",
        problems.len(),
        &problems[..problems.len().min(10)]
    );
    assert!(executors.iter_mut().all(|e| e.process.is_running()));
    Ok(())
}

/// Starts an engine from `spec`, retrying while the old process's socket is still closing.
fn start_on_spec(spec: &EngineSpec) -> anyhow::Result<Engine> {
    wait_for(
        Duration::from_secs(20),
        format!("an engine on port {}", spec.port),
        || Engine::start(spec).map(Some),
    )
}

#[test]
fn engine_killed_three_times_keeps_results_attempts_and_runs_nothing_twice_grpc_rest() {
    e2e(|| engine_killed_three_times(false));
}

#[test]
fn engine_killed_three_times_keeps_results_attempts_and_runs_nothing_twice_grpc_rest_kafka() {
    e2e(|| engine_killed_three_times(true));
}
