//! Rejected configurations list every problem with key, value and expectation; unknown keys
//! are warned about with the nearest known key; secrets never show.

use std::path::{Path, PathBuf};

use gamelan::config::{ConfigError, ExecutorConfig, Problem, Sources, WarningKind};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write test file");
    p
}

fn problem<'a>(err: &'a ConfigError, key: &str) -> &'a Problem {
    err.problems
        .iter()
        .find(|p| p.key() == Some(key))
        .unwrap_or_else(|| panic!("no problem about {key} in: {err}"))
}

fn expected(p: &Problem) -> &str {
    match p {
        Problem::Value { expected, .. } => expected,
        Problem::File { message, .. } => message,
    }
}

fn value(p: &Problem) -> &str {
    match p {
        Problem::Value { value, .. } => value,
        Problem::File { .. } => "",
    }
}

const BROKEN: &str = "\
gamelan.executor.queue-size=0
gamelan.executor.heartbeat.interval=30
gamelan.executor.heartbeat.timeout=10
gamelan.executor.engine-url=not a url
gamelan.executor.transport=carrier-pigeon
gamelan.executor.grpc.delivery=smoke-signals
gamelan.executor.error.backoff-multiplier=0.5
gamelan.executor.grpc.port=70000
gamelan.executor.jwt.enabled=true
gamelan.executor.result.batch-size=-1
gamelan.executor.grpc.flow-control-window=10
gamelan.executor.kafka.bootstrap-servers=kafka
";

#[test]
fn a_broken_configuration_reports_every_problem_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(dir.path(), "broken.properties", BROKEN);
    let err = ExecutorConfig::load(&[f], []).expect_err("broken");
    // Twelve lines, eleven wrong: the interval is fine, the timeout below it is not.
    assert_eq!(err.problems.len(), 11, "{err}");

    let p = problem(&err, "gamelan.executor.queue-size");
    assert_eq!(value(p), "0");
    assert!(expected(p).contains("greater than 0"), "{p}");

    let p = problem(&err, "gamelan.executor.heartbeat.timeout");
    assert_eq!(value(p), "10s");
    assert!(expected(p).contains("heartbeat.interval (30s)"), "{p}");

    let p = problem(&err, "gamelan.executor.engine-url");
    assert_eq!(value(p), "not a url");
    assert!(expected(p).contains("URL"), "{p}");

    let p = problem(&err, "gamelan.executor.transport");
    assert!(expected(p).contains("grpc, kafka, rest, local"), "{p}");

    let p = problem(&err, "gamelan.executor.grpc.delivery");
    assert!(expected(p).contains("execute-stream"), "{p}");

    let p = problem(&err, "gamelan.executor.error.backoff-multiplier");
    assert!(expected(p).contains(">= 1"), "{p}");

    let p = problem(&err, "gamelan.executor.grpc.port");
    assert!(expected(p).contains("65535"), "{p}");

    let p = problem(&err, "gamelan.executor.jwt.enabled");
    assert!(expected(p).contains("jwt.secret"), "{p}");

    problem(&err, "gamelan.executor.result.batch-size");
    problem(&err, "gamelan.executor.grpc.flow-control-window");
    problem(&err, "gamelan.executor.kafka.bootstrap-servers");

    // Each line of the message names the key, the value, the origin and the expectation.
    let text = err.to_string();
    assert!(
        text.starts_with("invalid configuration (11 problems):"),
        "{text}"
    );
    assert!(
        text.contains("gamelan.executor.queue-size = \"0\" (file "),
        "{text}"
    );
    assert!(text.contains("broken.properties:1)"), "{text}");
    // Reported in file order, cross-key rules last.
    let first = err.problems.first().and_then(Problem::key);
    assert_eq!(first, Some("gamelan.executor.queue-size"));
}

#[test]
fn unreadable_and_malformed_files_are_problems_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad_yaml = write(dir.path(), "bad.yml", "gamelan: [unclosed\n");
    let missing = dir.path().join("missing.properties");
    let broken = write(
        dir.path(),
        "x.properties",
        "gamelan.executor.queue-size=zero\n",
    );
    let err =
        ExecutorConfig::load(&[bad_yaml.clone(), missing.clone(), broken], []).expect_err("broken");
    assert_eq!(err.problems.len(), 3, "{err}");
    assert!(
        matches!(&err.problems[0], Problem::File { path, .. } if *path == bad_yaml),
        "{err}"
    );
    assert!(
        matches!(&err.problems[1], Problem::File { path, .. } if *path == missing),
        "{err}"
    );
    problem(&err, "gamelan.executor.queue-size");
}

#[test]
fn unknown_keys_warn_with_the_nearest_known_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(
        dir.path(),
        "application.yaml",
        "gamelan:\n  executor:\n    heartbeat:\n      intervall: 30\n    thread-pool-sise: 4\n  engine:\n    port: 1\n\
         quarkus:\n  datasource:\n    url: x\nother:\n  key: 1\n",
    );
    let (c, warnings) = ExecutorConfig::load(&[f], []).expect("warnings only");
    assert_eq!(
        c.task.dispatch_threads, 10,
        "the misspelt key changed nothing"
    );
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings.iter().all(|w| w.kind == WarningKind::UnknownKey));
    assert_eq!(warnings[0].key, "gamelan.executor.heartbeat.intervall");
    assert_eq!(
        warnings[0].suggestion.as_deref(),
        Some("gamelan.executor.heartbeat.interval")
    );
    assert_eq!(
        warnings[1].suggestion.as_deref(),
        Some("gamelan.executor.thread-pool-size")
    );
    assert!(
        warnings[0]
            .to_string()
            .contains("did you mean gamelan.executor.heartbeat.interval?")
    );
}

#[test]
fn conflicting_spellings_in_one_file_are_warned_about() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(
        dir.path(),
        "a.properties",
        "gamelan.executor.engine.url=http://a:1\ngamelan.executor.engine-url=http://b:2\n",
    );
    let (c, warnings) = ExecutorConfig::load(&[f], []).expect("valid");
    assert_eq!(c.engine.url.host_str(), Some("b"));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].kind, WarningKind::ConflictingSpellings);
}

#[test]
fn kafka_pass_through_typos_are_warned_about() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(
        dir.path(),
        "a.properties",
        "gamelan.executor.kafka.group.id=g\ngamelan.executor.kafka.security.protocol=SSL\n",
    );
    let (c, warnings) = ExecutorConfig::load(&[f], []).expect("valid");
    assert_eq!(c.kafka.properties.get("security.protocol"), Some("SSL"));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].kind, WarningKind::SuspiciousPassThrough);
    assert_eq!(
        warnings[0].suggestion.as_deref(),
        Some("gamelan.executor.kafka.group-id")
    );
}

#[test]
fn secrets_are_masked_in_debug_output_and_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(
        dir.path(),
        "a.properties",
        "gamelan.executor.jwt.secret=jwt-hunter2\n\
         gamelan.executor.security.jwt.token=token-hunter2\n\
         gamelan.executor.kafka.sasl.password=sasl-hunter2\n\
         gamelan.executor.engine-url=http://user:url-hunter2@engine:8080\n",
    );
    let loaded = ExecutorConfig::load_sources(&Sources::new().files(&[f])).expect("valid");
    assert_eq!(
        loaded
            .config
            .jwt
            .secret
            .as_ref()
            .map(gamelan::config::Secret::expose),
        Some("jwt-hunter2")
    );
    assert_eq!(
        loaded.config.kafka.properties.get("sasl.password"),
        Some("sasl-hunter2")
    );
    let debug = format!("{:?}", loaded.config.jwt);
    assert!(!debug.contains("hunter2"), "{debug}");
    let debug = format!("{:?}", loaded.config.kafka);
    assert!(!debug.contains("hunter2"), "{debug}");
    for e in &loaded.effective {
        let v = e.value.as_deref().unwrap_or("");
        assert!(!v.contains("hunter2"), "{} = {v}", e.key);
    }
    let shown = |key: &str| {
        loaded
            .effective
            .iter()
            .find(|e| e.key == key)
            .and_then(|e| e.value.clone())
    };
    assert_eq!(
        shown("gamelan.executor.jwt.secret").as_deref(),
        Some("****")
    );
    assert_eq!(
        shown("gamelan.executor.security.jwt.token").as_deref(),
        Some("****")
    );
    assert_eq!(
        shown("gamelan.executor.kafka.sasl.password").as_deref(),
        Some("****")
    );
    assert_eq!(
        shown("gamelan.executor.engine.url").as_deref(),
        Some("http://user:****@engine:8080/")
    );

    // A secret that fails interpolation is not echoed in the error either.
    let bad = write(
        dir.path(),
        "b.properties",
        "gamelan.executor.jwt.secret=pre-hunter2-${NOT_SET}\n",
    );
    let err = ExecutorConfig::load(&[bad], []).expect_err("unset variable");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(err.mentions("gamelan.executor.jwt.secret"));
}

#[test]
fn static_token_satisfies_jwt_and_tls_paths_come_in_pairs() {
    let (c, _) = ExecutorConfig::load(
        &[],
        [(
            "GAMELAN_EXECUTOR_SECURITY_JWT_TOKEN".to_owned(),
            "t".to_owned(),
        )],
    )
    .expect("valid");
    assert!(c.jwt.enabled);

    let err =
        ExecutorConfig::load_sources(&Sources::new().set("grpc.certificate-path", "/etc/c.crt"))
            .expect_err("key missing");
    assert!(
        err.mentions("gamelan.executor.grpc.private-key-path"),
        "{err}"
    );
}

#[test]
fn defaults_are_valid_and_documented_values() {
    let (c, warnings) = ExecutorConfig::load(&[], []).expect("defaults are valid");
    assert!(warnings.is_empty());
    assert_eq!(c, ExecutorConfig::default());
    assert_eq!(c.grpc.port, 9090);
    assert_eq!(c.grpc.host, "0.0.0.0");
    assert_eq!(c.grpc.max_message_size, 4 * 1024 * 1024);
    assert_eq!(c.jwt.issuer, "gamelan-executor");
    assert_eq!(c.jwt.expiry, std::time::Duration::from_secs(300));
    assert!(!c.jwt.enabled);
    assert_eq!(c.http.port, 8080);
    assert_eq!(c.kafka.topics.tasks_prefix, "workflow-tasks");
    assert_eq!(c.kafka.topics.dlq, "workflow-dlq");
    assert_eq!(c.result.batch_timeout, std::time::Duration::ZERO);
    assert_eq!(c.retry_policy().max_attempts, 3);
    assert_eq!(c.grpc_engine_url().as_str(), "http://localhost:8080/");
}

#[test]
fn keys_that_were_ignored_now_reach_the_runtime() {
    use std::time::Duration;
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(
        dir.path(),
        "a.properties",
        "gamelan.executor.runtime.enabled=false\n\
         gamelan.executor.heartbeat.timeout=45\n\
         gamelan.executor.engine.reconnect.initial=250ms\n\
         gamelan.executor.engine.reconnect.max-delay=2s\n\
         gamelan.executor.engine.reconnect.max-retries=10\n\
         quarkus.micrometer.export.prometheus.enabled=false\n",
    );
    let (c, warnings) = ExecutorConfig::load(&[f], []).expect("valid");
    assert!(warnings.is_empty(), "{warnings:?}");
    let s = gamelan::wiring::runtime_settings(&c);
    assert!(!s.enabled);
    assert_eq!(s.heartbeat_timeout, Some(Duration::from_secs(45)));
    assert_eq!(s.reconnect_initial, Duration::from_millis(250));
    assert_eq!(s.reconnect_max, Duration::from_secs(2));
    assert_eq!(s.reconnect_max_retries, Some(10));
    assert!(!s.metrics_endpoint);

    // A disabled runtime built from the configuration starts nothing.
    let started = gamelan::wiring::runtime_builder(&c)
        .expect("builder")
        .discover(false)
        .start();
    assert!(matches!(
        started,
        Err(gamelan::runtime::RuntimeError::Disabled)
    ));

    // Defaults: the documented back-off, unlimited retries, the metrics route on.
    let (c, _) = ExecutorConfig::load(&[], []).expect("defaults");
    let s = gamelan::wiring::runtime_settings(&c);
    assert!(s.enabled);
    assert_eq!(s.reconnect_initial, Duration::from_secs(1));
    assert_eq!(s.reconnect_max, Duration::from_secs(30));
    assert_eq!(s.reconnect_max_retries, None);
    assert!(s.metrics_endpoint);
    assert_eq!(
        s.heartbeat_timeout, None,
        "an untouched default is not sent: the engine's own timeout applies"
    );

    // A longer interval raises the derived timeout, which is then sent.
    let f = write(
        dir.path(),
        "b.properties",
        "gamelan.executor.heartbeat.interval=60\n",
    );
    let (c, _) = ExecutorConfig::load(&[f], []).expect("valid");
    let s = gamelan::wiring::runtime_settings(&c);
    assert_eq!(s.heartbeat_timeout, Some(Duration::from_secs(120)));
}

#[test]
fn reconnect_keys_are_checked_and_export_interval_is_warned_about() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(
        dir.path(),
        "a.properties",
        "gamelan.executor.engine.reconnect.initial=5s\n\
         gamelan.executor.engine.reconnect.max-delay=1s\n\
         gamelan.executor.engine.reconnect.max-retries=lots\n",
    );
    let err = ExecutorConfig::load(&[f], []).expect_err("invalid");
    let p = problem(&err, "gamelan.executor.engine.reconnect.max-delay");
    assert!(
        expected(p).contains("engine.reconnect.initial"),
        "{}",
        expected(p)
    );
    let p = problem(&err, "gamelan.executor.engine.reconnect.max-retries");
    assert!(expected(p).contains("unlimited"), "{}", expected(p));

    let f = write(
        dir.path(),
        "b.properties",
        "gamelan.executor.engine.reconnect.max-retries=unlimited\n\
         gamelan.executor.metrics.export-interval=15\n",
    );
    let (c, warnings) = ExecutorConfig::load(&[f], []).expect("valid");
    assert_eq!(c.engine.reconnect_max_retries, None);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].kind, WarningKind::NoEffect);
    assert_eq!(warnings[0].key, "gamelan.executor.metrics.export-interval");
    assert!(warnings[0].message.contains("no effect"), "{}", warnings[0]);
}
