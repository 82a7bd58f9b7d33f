//! Every `.properties` and YAML block of the Java Gamelan executor runtime's documentation, verbatim in
//! `fixtures/config/`, loads into the expected typed values. Each assertion also checks the
//! value came from the file (not from a default that happens to be equal).

use std::path::PathBuf;
use std::time::Duration;

use gamelan::config::{
    Effective, ExecutorConfig, GrpcDelivery, Loaded, Origin, Secret, Sources, WarningKind,
};
use gamelan_domain::CommunicationType;
use log::LevelFilter;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
}

fn load_with(names: &[&str], env: &[(&str, &str)]) -> Loaded<ExecutorConfig> {
    let files: Vec<PathBuf> = names.iter().map(|n| fixture(n)).collect();
    let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
    let loaded = ExecutorConfig::load_sources(&Sources::new().files(&files).env(env))
        .unwrap_or_else(|e| panic!("{names:?} rejected: {e}"));
    // The documented samples set `metrics.export-interval`, which a pull-based registry
    // cannot honour: that one warning is expected, and nothing else.
    let others: Vec<_> = loaded
        .warnings
        .iter()
        .filter(|w| {
            !(w.kind == WarningKind::NoEffect && w.key.ends_with("metrics.export-interval"))
        })
        .collect();
    assert!(others.is_empty(), "{names:?}: {others:?}");
    loaded
}

fn load(name: &str) -> Loaded<ExecutorConfig> {
    load_with(&[name], &[])
}

fn entry<'a>(loaded: &'a Loaded<ExecutorConfig>, key: &str) -> &'a Effective {
    loaded
        .effective
        .iter()
        .find(|e| e.key == key)
        .unwrap_or_else(|| panic!("{key} missing from the effective configuration"))
}

/// Asserts `key` (canonical, without the `gamelan.executor.` prefix unless it is a quarkus
/// key) was read from `file`, spelled as `spelled` when that differs.
fn from_file(loaded: &Loaded<ExecutorConfig>, key: &str, file: &str, spelled: Option<&str>) {
    let full = if key.starts_with("quarkus.") {
        key.to_owned()
    } else {
        format!("gamelan.executor.{key}")
    };
    let e = entry(loaded, &full);
    match &e.origin {
        Origin::File { path, .. } => assert_eq!(path, &fixture(file), "{full}"),
        other => panic!("{full} came from {other}, not {file}"),
    }
    let spelled = spelled.map(|s| format!("gamelan.executor.{s}"));
    assert_eq!(e.spelled_as, spelled, "{full}");
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn runtime_application_properties() {
    let f = "runtime-application.properties";
    let l = load(f);
    let c = &l.config;
    assert!(
        l.warnings
            .iter()
            .any(|w| w.kind == WarningKind::NoEffect && w.message.contains("scrape")),
        "export-interval is warned about: {:?}",
        l.warnings
    );
    assert!(c.runtime.enabled);
    assert_eq!(c.runtime.executor_id.as_deref(), Some("executor-1"));
    assert_eq!(c.runtime.max_parallel_tasks, 50);
    assert_eq!(c.engine.url.as_str(), "http://localhost:8080/");
    assert_eq!(c.engine.connect_timeout, secs(30));
    assert_eq!(c.engine.request_timeout, secs(300));
    assert!(c.heartbeat.enabled);
    assert_eq!(c.heartbeat.interval, secs(30));
    assert_eq!(c.heartbeat.timeout, secs(60));
    assert_eq!(c.task.queue_size, 1000);
    assert_eq!(c.task.dispatch_threads, 10);
    assert_eq!(c.error.max_retries, 3);
    assert_eq!(c.error.backoff_initial, secs(1));
    assert!((c.error.backoff_multiplier - 2.0).abs() < f64::EPSILON);
    assert!(c.metrics.enabled);
    assert_eq!(c.metrics.export_interval, secs(60));
    for key in [
        "runtime.enabled",
        "runtime.executor-id",
        "runtime.max-parallel-tasks",
        "engine.url",
        "engine.connect-timeout",
        "engine.request-timeout",
        "heartbeat.enabled",
        "heartbeat.interval",
        "heartbeat.timeout",
        "task.queue-size",
        "task.dispatch-threads",
        "error.max-retries",
        "error.backoff-initial",
        "error.backoff-multiplier",
        "metrics.enabled",
        "metrics.export-interval",
    ] {
        from_file(&l, key, f, None);
    }
}

#[test]
fn runtime_application_yaml() {
    let f = "runtime-application.yml";
    let l = load(f);
    let c = &l.config;
    assert!(c.runtime.enabled);
    assert_eq!(c.runtime.executor_id.as_deref(), Some("tax-processor-1"));
    assert_eq!(c.runtime.max_parallel_tasks, 50);
    assert_eq!(c.engine.url.as_str(), "http://gamelan-engine:8080/");
    assert_eq!(c.engine.connect_timeout, secs(30));
    assert_eq!(c.engine.request_timeout, secs(300));
    assert_eq!(c.heartbeat.interval, secs(30));
    assert_eq!(c.heartbeat.timeout, secs(60));
    assert_eq!(c.task.queue_size, 1000);
    assert_eq!(c.task.dispatch_threads, 10);
    assert_eq!(c.error.max_retries, 3);
    assert_eq!(c.error.backoff_initial, secs(1));
    assert!((c.error.backoff_multiplier - 2.0).abs() < f64::EPSILON);
    assert!(c.metrics.enabled);
    assert_eq!(c.metrics.export_interval, secs(60));
    for key in [
        "runtime.executor-id",
        "engine.url",
        "engine.request-timeout",
        "heartbeat.timeout",
        "task.dispatch-threads",
        "error.backoff-multiplier",
        "metrics.export-interval",
    ] {
        from_file(&l, key, f, None);
    }
}

#[test]
fn runtime_performance_tuning_blocks() {
    let l = load("runtime-parallel-tasks.properties");
    assert_eq!(l.config.task.dispatch_threads, 50);
    assert_eq!(l.config.runtime.max_parallel_tasks, 50);
    from_file(
        &l,
        "task.dispatch-threads",
        "runtime-parallel-tasks.properties",
        None,
    );
    from_file(
        &l,
        "runtime.max-parallel-tasks",
        "runtime-parallel-tasks.properties",
        None,
    );

    let l = load("runtime-queue-sizing.properties");
    assert_eq!(l.config.task.queue_size, 5000);

    let f = "runtime-batching.properties";
    let l = load(f);
    assert_eq!(l.config.result.batch_size, 100);
    assert_eq!(l.config.result.batch_timeout, secs(5));
    assert_eq!(l.config.batch_policy().max_age, secs(5));
    from_file(&l, "result.batch-size", f, None);
    from_file(&l, "result.batch-timeout", f, None);
}

#[test]
fn runtime_metrics_block() {
    let f = "runtime-metrics.properties";
    let l = load(f);
    assert!(l.config.metrics.enabled);
    assert!(l.config.metrics.prometheus_enabled);
    from_file(&l, "metrics.enabled", f, None);
    from_file(&l, "quarkus.micrometer.export.prometheus.enabled", f, None);
}

#[test]
fn runtime_logging_block() {
    let l = load("runtime-logging.properties");
    let cats = &l.config.log.categories;
    assert_eq!(
        cats.get("gamelan.executor.runtime"),
        Some(&LevelFilter::Debug)
    );
    assert_eq!(cats.get("gamelan.executor.task"), Some(&LevelFilter::Info));
    assert_eq!(cats.get("gamelan.executor.error"), Some(&LevelFilter::Warn));
    assert_eq!(cats.len(), 3);
    assert_eq!(
        l.config.log_filter(),
        "info,gamelan.executor.error=warn,gamelan.executor.runtime=debug,gamelan.executor.task=info"
    );
    let e = entry(
        &l,
        "quarkus.log.category.\"gamelan.executor.runtime\".level",
    );
    assert_eq!(e.value.as_deref(), Some("DEBUG"));
    assert!(
        matches!(e.origin, Origin::File { line: Some(2), .. }),
        "{:?}",
        e.origin
    );
}

#[test]
fn runtime_best_practice_and_troubleshooting_blocks() {
    let l = load("runtime-best-practice-concurrency.properties");
    assert_eq!(l.config.runtime.max_parallel_tasks, 50);
    from_file(
        &l,
        "runtime.max-parallel-tasks",
        "runtime-best-practice-concurrency.properties",
        None,
    );

    let l = load("runtime-best-practice-timeouts.properties");
    assert_eq!(l.config.engine.request_timeout, secs(300));
    from_file(
        &l,
        "engine.request-timeout",
        "runtime-best-practice-timeouts.properties",
        None,
    );

    let l = load("runtime-troubleshooting-heartbeat.properties");
    assert_eq!(l.config.heartbeat.timeout, secs(120));
    assert_eq!(l.config.engine.connect_timeout, secs(60));
}

#[test]
fn remote_application_properties_uses_the_other_spellings() {
    let f = "remote-application.properties";
    let l = load_with(&[f], &[("JWT_SECRET", "s3cr3t-from-env")]);
    let c = &l.config;
    assert_eq!(c.engine.url.as_str(), "http://gamelan-engine:8080/");
    assert_eq!(c.executor_name.as_deref(), Some("tax-service"));
    assert_eq!(c.executor_version, "1.0.0");
    assert_eq!(c.transport, CommunicationType::Grpc);
    assert_eq!(c.grpc.port, 9090);
    assert_eq!(c.grpc.host, "0.0.0.0");
    assert_eq!(
        c.jwt
            .secret
            .as_ref()
            .map(|s| s.expose().to_owned())
            .as_deref(),
        Some("s3cr3t-from-env")
    );
    assert_eq!(c.jwt.issuer, "gamelan-executor");
    assert!(c.jwt.enabled, "a secret turns JWT on");
    assert_eq!(c.heartbeat.interval, secs(30));
    assert_eq!(c.heartbeat.timeout, secs(60));
    assert_eq!(c.task.dispatch_threads, 50);
    assert_eq!(c.task.queue_size, 1000);
    from_file(&l, "engine.url", f, Some("engine-url"));
    from_file(
        &l,
        "heartbeat.interval",
        f,
        Some("heartbeat.interval-seconds"),
    );
    from_file(
        &l,
        "heartbeat.timeout",
        f,
        Some("heartbeat.timeout-seconds"),
    );
    from_file(&l, "task.dispatch-threads", f, Some("thread-pool-size"));
    from_file(&l, "task.queue-size", f, Some("queue-size"));
    from_file(&l, "executor-name", f, None);
    from_file(&l, "jwt.secret", f, None);
    assert_eq!(
        entry(&l, "gamelan.executor.jwt.secret").value.as_deref(),
        Some("****")
    );
}

#[test]
fn both_spellings_land_in_the_same_field() {
    let runtime = load("runtime-application.properties").config;
    let remote = load_with(&["remote-application.properties"], &[("JWT_SECRET", "x")]).config;
    // Same settings, different spellings, different files: same typed fields.
    assert_eq!(runtime.heartbeat, remote.heartbeat);
    assert_eq!(runtime.task.queue_size, remote.task.queue_size);
    assert_eq!(
        load("remote-tuning-high-throughput.properties")
            .config
            .task
            .dispatch_threads,
        200
    );
}

#[test]
fn remote_application_yaml() {
    let f = "remote-application.yml";
    let l = load_with(&[f], &[("JWT_SECRET", "from-env")]);
    let c = &l.config;
    assert_eq!(c.engine.url.as_str(), "http://gamelan-engine:8080/");
    assert_eq!(c.executor_name.as_deref(), Some("tax-service"));
    assert_eq!(c.executor_version, "1.0.0");
    assert_eq!(c.transport, CommunicationType::Grpc);
    assert_eq!(c.grpc.port, 9090);
    assert_eq!(c.grpc.host, "0.0.0.0");
    assert_eq!(c.kafka.bootstrap_servers, "kafka:29092");
    assert_eq!(c.kafka.group_id.as_deref(), Some("executor-group"));
    assert_eq!(c.jwt.secret.as_ref().map(Secret::expose), Some("from-env"));
    assert_eq!(c.jwt.issuer, "gamelan-executor");
    assert_eq!(c.heartbeat.interval, secs(30));
    assert_eq!(c.heartbeat.timeout, secs(60));
    assert_eq!(c.task.dispatch_threads, 50);
    assert_eq!(c.task.queue_size, 1000);
    from_file(&l, "engine.url", f, Some("engine-url"));
    from_file(&l, "task.dispatch-threads", f, Some("thread-pool-size"));
    from_file(&l, "kafka.group-id", f, None);
    from_file(&l, "transport", f, None);
}

#[test]
fn documented_secret_placeholder_without_the_variable_is_an_error_naming_key_and_variable() {
    for f in ["remote-application.properties", "remote-application.yml"] {
        let err = ExecutorConfig::load(&[fixture(f)], std::iter::empty()).unwrap_err();
        assert!(err.mentions("gamelan.executor.jwt.secret"), "{f}: {err}");
        assert!(err.to_string().contains("JWT_SECRET"), "{f}: {err}");
        assert_eq!(err.problems.len(), 1, "{f}: {err}");
    }
}

#[test]
fn remote_transport_blocks() {
    let f = "remote-grpc-transport.properties";
    let l = load(f);
    assert_eq!(l.config.transport, CommunicationType::Grpc);
    assert_eq!(l.config.grpc.port, 9090);
    from_file(&l, "grpc.port", f, None);

    let f = "remote-kafka-transport.properties";
    let l = load(f);
    assert_eq!(l.config.transport, CommunicationType::Kafka);
    assert_eq!(l.config.kafka.bootstrap_servers, "kafka:29092");
    assert_eq!(
        l.config.kafka.group_id.as_deref(),
        Some("tax-executor-group")
    );
    from_file(&l, "transport", f, None);
    from_file(&l, "kafka.bootstrap-servers", f, None);
}

#[test]
fn remote_grpc_tuning_and_tls_block() {
    let f = "remote-grpc-tuning-tls.properties";
    let l = load(f);
    let g = &l.config.grpc;
    assert_eq!(g.keep_alive_time, secs(30));
    assert_eq!(g.keep_alive_timeout, secs(10));
    assert_eq!(g.max_concurrent_streams, 1000);
    assert_eq!(g.flow_control_window, 1_048_576);
    assert!(g.use_ssl);
    assert_eq!(
        g.certificate_path,
        Some(PathBuf::from("/etc/secrets/executor.crt"))
    );
    assert_eq!(
        g.private_key_path,
        Some(PathBuf::from("/etc/secrets/executor.key"))
    );
    assert_eq!(
        g.ca_certificate_path,
        Some(PathBuf::from("/etc/secrets/ca.crt"))
    );
    assert_eq!(g.delivery, GrpcDelivery::ExecuteStream);
    for key in [
        "grpc.keep-alive-time-seconds",
        "grpc.keep-alive-timeout-seconds",
        "grpc.max-concurrent-streams",
        "grpc.flow-control-window",
        "grpc.use-ssl",
        "grpc.certificate-path",
        "grpc.private-key-path",
        "grpc.ca-certificate-path",
    ] {
        from_file(&l, key, f, None);
    }
}

#[test]
fn remote_best_practice_blocks() {
    let f = "remote-thread-pool-size.properties";
    let l = load(f);
    assert_eq!(l.config.task.dispatch_threads, 100);
    from_file(&l, "task.dispatch-threads", f, Some("thread-pool-size"));

    let l = load("remote-version.properties");
    assert_eq!(l.config.executor_version, "2.0.0");
}

#[test]
fn remote_troubleshooting_blocks() {
    let f = "remote-troubleshooting-registration.properties";
    let l = load(f);
    assert_eq!(l.config.engine.url.as_str(), "http://gamelan-engine:8080/");
    assert_eq!(l.config.executor_name.as_deref(), Some("my-service"));
    assert_eq!(
        l.config.jwt.secret.as_ref().map(Secret::expose),
        Some("your-secret-key")
    );
    assert!(!format!("{:?}", l.config).contains("your-secret-key"));

    let l = load("remote-troubleshooting-heartbeat.properties");
    assert_eq!(l.config.heartbeat.interval, secs(60));
    assert_eq!(l.config.heartbeat.timeout, secs(120));

    let l = load("remote-troubleshooting-latency.properties");
    assert_eq!(l.config.task.dispatch_threads, 200);
    assert_eq!(l.config.task.queue_size, 5000);
}

#[test]
fn remote_performance_tuning_blocks() {
    let f = "remote-tuning-high-throughput.properties";
    let l = load(f);
    let c = &l.config;
    assert_eq!(c.task.dispatch_threads, 200);
    assert_eq!(c.task.queue_size, 10_000);
    assert_eq!(c.grpc.max_concurrent_streams, 1000);
    assert_eq!(c.heartbeat.interval, secs(60));
    // Only the interval is raised: the default timeout follows (twice the interval) so the
    // documentation's own example stays valid.
    assert_eq!(c.heartbeat.timeout, secs(120));
    assert_eq!(
        entry(&l, "gamelan.executor.heartbeat.timeout").origin,
        Origin::Default
    );

    // `thread-pool-size=50  # Don't over-subscribe`: the trailing comment is not the value.
    let f = "remote-tuning-low-latency.properties";
    let l = load(f);
    assert_eq!(l.config.grpc.keep_alive_time, secs(10));
    assert_eq!(l.config.task.dispatch_threads, 50);
    from_file(&l, "task.dispatch-threads", f, Some("thread-pool-size"));

    let l = load("remote-tuning-resource-constraints.properties");
    assert_eq!(l.config.task.dispatch_threads, 10);
    assert_eq!(l.config.task.queue_size, 100);
    assert_eq!(l.config.heartbeat.interval, secs(60));
    from_file(
        &l,
        "task.dispatch-threads",
        "remote-tuning-resource-constraints.properties",
        Some("thread-pool-size"),
    );
}

#[test]
fn all_documented_blocks_together_later_files_winning() {
    let all = [
        "runtime-application.properties",
        "runtime-application.yml",
        "runtime-parallel-tasks.properties",
        "runtime-queue-sizing.properties",
        "runtime-batching.properties",
        "runtime-metrics.properties",
        "runtime-logging.properties",
        "runtime-best-practice-concurrency.properties",
        "runtime-best-practice-timeouts.properties",
        "runtime-troubleshooting-heartbeat.properties",
        "remote-application.properties",
        "remote-application.yml",
        "remote-grpc-transport.properties",
        "remote-kafka-transport.properties",
        "remote-grpc-tuning-tls.properties",
        "remote-thread-pool-size.properties",
        "remote-version.properties",
        "remote-troubleshooting-registration.properties",
        "remote-troubleshooting-heartbeat.properties",
        "remote-troubleshooting-latency.properties",
        "remote-tuning-high-throughput.properties",
        "remote-tuning-low-latency.properties",
        "remote-tuning-resource-constraints.properties",
    ];
    let l = load_with(&all, &[("JWT_SECRET", "x")]);
    let c = &l.config;
    // The last block that sets each value wins, whatever the spelling.
    assert_eq!(c.task.dispatch_threads, 10);
    assert_eq!(c.task.queue_size, 100);
    assert_eq!(c.heartbeat.interval, secs(60));
    assert_eq!(c.heartbeat.timeout, secs(120));
    assert_eq!(c.executor_name.as_deref(), Some("my-service"));
    assert_eq!(
        c.jwt.secret.as_ref().map(Secret::expose),
        Some("your-secret-key")
    );
    assert_eq!(c.transport, CommunicationType::Kafka);
    assert_eq!(c.executor_version, "2.0.0");
    assert_eq!(c.grpc.keep_alive_time, secs(10));
    from_file(
        &l,
        "task.dispatch-threads",
        "remote-tuning-resource-constraints.properties",
        Some("thread-pool-size"),
    );
}
