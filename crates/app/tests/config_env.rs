//! Environment variables: mapping to keys, precedence over files, `${VAR}` interpolation, and
//! the Docker Compose and Kubernetes environments of the Java runtime's documentation.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gamelan::config::{ExecutorConfig, Origin, Sources, WarningKind};
use gamelan_domain::CommunicationType;
use log::LevelFilter;
use serde_norway::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write test file");
    p
}

fn load_env(pairs: &[(&str, &str)]) -> ExecutorConfig {
    let (c, warnings) = ExecutorConfig::load(&[], env(pairs)).expect("valid");
    assert!(warnings.is_empty(), "{warnings:?}");
    c
}

#[test]
fn variables_map_to_dotted_and_dashed_keys() {
    let c = load_env(&[
        ("GAMELAN_EXECUTOR_ENGINE_URL", "http://engine.example:9000"),
        ("GAMELAN_EXECUTOR_THREAD_POOL_SIZE", "64"),
        (
            "GAMELAN_EXECUTOR_KAFKA_BOOTSTRAP_SERVERS",
            "k1:9092,k2:9092",
        ),
        ("GAMELAN_EXECUTOR_HEARTBEAT_INTERVAL_SECONDS", "5"),
        ("GAMELAN_EXECUTOR_TASK_QUEUE_SIZE", "77"),
        ("GAMELAN_EXECUTOR_GRPC_DELIVERY", "push"),
        ("GAMELAN_EXECUTOR_RESULT_BATCH_TIMEOUT", "250"),
        ("GAMELAN_EXECUTOR_NAME", "tax-service"),
    ]);
    assert_eq!(c.engine.url.as_str(), "http://engine.example:9000/");
    assert_eq!(c.task.dispatch_threads, 64);
    assert_eq!(c.kafka.bootstrap_servers, "k1:9092,k2:9092");
    assert_eq!(c.heartbeat.interval, Duration::from_secs(5));
    assert_eq!(c.task.queue_size, 77);
    assert_eq!(c.grpc.delivery, gamelan::config::GrpcDelivery::Push);
    assert_eq!(c.result.batch_timeout, Duration::from_millis(250));
    assert_eq!(c.executor_name.as_deref(), Some("tax-service"));
}

#[test]
fn quarkus_variables_kafka_properties_and_log_categories() {
    // The Java runtime's troubleshooting advice: `export QUARKUS_LOG_LEVEL=DEBUG`.
    let c = load_env(&[
        ("QUARKUS_LOG_LEVEL", "DEBUG"),
        ("QUARKUS_HTTP_PORT", "0"),
        (
            "QUARKUS_LOG_CATEGORY__GAMELAN_EXECUTOR_TASK__LEVEL",
            "TRACE",
        ),
        ("GAMELAN_EXECUTOR_KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
        ("GAMELAN_EXECUTOR_KAFKA_SASL_PASSWORD", "pw"),
        ("QUARKUS_PROFILE", "prod"),
    ]);
    assert_eq!(c.log.root, LevelFilter::Debug);
    assert_eq!(c.http.port, 0);
    assert_eq!(
        c.log.categories.get("gamelan.executor.task"),
        Some(&LevelFilter::Trace)
    );
    assert_eq!(
        c.kafka.properties.get("security.protocol"),
        Some("SASL_SSL")
    );
    assert_eq!(c.kafka.properties.get("sasl.password"), Some("pw"));
}

#[test]
fn environment_overrides_files_and_files_override_defaults() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(
        dir.path(),
        "application.properties",
        "gamelan.executor.engine.url=http://from-file:8080\ngamelan.executor.task.queue-size=10\n",
    );
    let sources = Sources::new().files(std::slice::from_ref(&f)).env(env(&[(
        "GAMELAN_EXECUTOR_ENGINE_URL",
        "http://from-env:8080",
    )]));
    let loaded = ExecutorConfig::load_sources(&sources).expect("valid");
    let c = &loaded.config;
    assert_eq!(c.engine.url.host_str(), Some("from-env"));
    assert_eq!(c.task.queue_size, 10);
    assert_eq!(c.task.dispatch_threads, 10, "default");
    let origin = |key: &str| {
        loaded
            .effective
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.origin.clone())
            .expect("key listed")
    };
    assert_eq!(
        origin("gamelan.executor.engine.url"),
        Origin::Env {
            var: "GAMELAN_EXECUTOR_ENGINE_URL".into()
        }
    );
    assert_eq!(
        origin("gamelan.executor.task.queue-size"),
        Origin::File {
            path: f,
            line: Some(2)
        }
    );
    assert_eq!(
        origin("gamelan.executor.task.dispatch-threads"),
        Origin::Default
    );
}

#[test]
fn set_overrides_beat_the_environment() {
    let sources = Sources::new()
        .env(env(&[("GAMELAN_EXECUTOR_QUEUE_SIZE", "5")]))
        .set("queue-size", "6")
        .set_arg("gamelan.executor.transport=kafka")
        .expect("KEY=VALUE");
    let loaded = ExecutorConfig::load_sources(&sources).expect("valid");
    assert_eq!(loaded.config.task.queue_size, 6);
    assert_eq!(loaded.config.transport, CommunicationType::Kafka);
    assert!(Sources::new().set_arg("no-equals-sign").is_err());
    let err = ExecutorConfig::load_sources(&Sources::new().set("heartbeat.intervall", "5"))
        .expect_err("unknown override key");
    assert!(
        err.to_string()
            .contains("gamelan.executor.heartbeat.interval"),
        "{err}"
    );
}

#[test]
fn later_files_override_earlier_ones_whatever_the_spelling() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = write(
        dir.path(),
        "a.properties",
        "gamelan.executor.task.dispatch-threads=3\n",
    );
    let b = write(
        dir.path(),
        "b.yaml",
        "gamelan:\n  executor:\n    thread-pool-size: 4\n",
    );
    let (c, _) = ExecutorConfig::load(&[a.clone(), b.clone()], []).expect("valid");
    assert_eq!(c.task.dispatch_threads, 4);
    let (c, _) = ExecutorConfig::load(&[b, a], []).expect("valid");
    assert_eq!(c.task.dispatch_threads, 3);
}

#[test]
fn interpolation_with_and_without_defaults() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(
        dir.path(),
        "application.properties",
        "gamelan.executor.engine-url=http://${ENGINE_HOST}:${ENGINE_PORT:8081}\n\
         gamelan.executor.executor-name=${NAME:svc-${REGION:eu}}\n\
         gamelan.executor.grpc.port=${GRPC_PORT:9191}\n",
    );
    let (c, _) = ExecutorConfig::load(
        std::slice::from_ref(&f),
        env(&[("ENGINE_HOST", "engine-a")]),
    )
    .expect("valid");
    assert_eq!(c.engine.url.as_str(), "http://engine-a:8081/");
    assert_eq!(c.executor_name.as_deref(), Some("svc-eu"));
    assert_eq!(c.grpc.port, 9191);

    let (c, _) = ExecutorConfig::load(
        std::slice::from_ref(&f),
        env(&[
            ("ENGINE_HOST", "b"),
            ("ENGINE_PORT", "1"),
            ("REGION", "us"),
            ("GRPC_PORT", "7"),
        ]),
    )
    .expect("valid");
    assert_eq!(c.engine.url.as_str(), "http://b:1/");
    assert_eq!(c.executor_name.as_deref(), Some("svc-us"));
    assert_eq!(c.grpc.port, 7);

    let err = ExecutorConfig::load(&[f], []).expect_err("ENGINE_HOST unset");
    assert!(err.mentions("gamelan.executor.engine-url"), "{err}");
    assert!(err.to_string().contains("ENGINE_HOST"), "{err}");
}

#[test]
fn unknown_gamelan_variables_are_warned_about_with_the_nearest_name() {
    let (_, warnings) = ExecutorConfig::load(
        &[],
        env(&[
            ("GAMELAN_EXECUTOR_QUEUE_SIZ", "5"),
            ("GAMELAN_ENGINE_PORT", "1"),
            ("PATH", "/bin"),
        ]),
    )
    .expect("valid");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].kind, WarningKind::UnknownKey);
    assert_eq!(warnings[0].key, "GAMELAN_EXECUTOR_QUEUE_SIZ");
    assert_eq!(
        warnings[0].suggestion.as_deref(),
        Some("GAMELAN_EXECUTOR_QUEUE_SIZE")
    );
}

/// `environment:` of one service in the documentation's compose file.
fn compose_env(service: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(fixture("remote-docker-compose.yml")).expect("fixture");
    let doc: Value = serde_norway::from_str(&text).expect("compose parses");
    let vars = doc["services"][service]["environment"]
        .as_mapping()
        .expect("environment map");
    vars.iter()
        .map(|(k, v)| {
            (
                k.as_str().expect("name").to_owned(),
                v.as_str().expect("value").to_owned(),
            )
        })
        .collect()
}

#[test]
fn docker_compose_environment_of_the_documentation() {
    let (c, warnings) = ExecutorConfig::load(&[], compose_env("tax-executor")).expect("valid");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(c.engine.url.as_str(), "http://gamelan-engine:8080/");
    assert_eq!(c.transport, CommunicationType::Grpc);
    assert_eq!(c.executor_name.as_deref(), Some("tax-service"));

    let (c, warnings) = ExecutorConfig::load(&[], compose_env("payment-executor")).expect("valid");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(c.transport, CommunicationType::Kafka);
    assert_eq!(c.kafka.bootstrap_servers, "kafka:29092");

    // The engine's own service sets GAMELAN_MODE, which is no executor key and no warning.
    let (_, warnings) = ExecutorConfig::load(&[], compose_env("gamelan-engine")).expect("valid");
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn kubernetes_environment_of_the_documentation() {
    let text = std::fs::read_to_string(fixture("remote-kubernetes.yml")).expect("fixture");
    let doc: Value = serde_norway::from_str(&text).expect("manifest parses");
    let container = &doc["spec"]["template"]["spec"]["containers"][0];
    let vars: Vec<(String, String)> = container["env"]
        .as_sequence()
        .expect("env list")
        .iter()
        .map(|e| {
            (
                e["name"].as_str().expect("name").to_owned(),
                e["value"].as_str().expect("value").to_owned(),
            )
        })
        .collect();
    assert_eq!(vars.len(), 4);
    let (c, warnings) = ExecutorConfig::load(&[], vars).expect("valid");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(c.engine.url.as_str(), "http://gamelan-engine:8080/");
    assert_eq!(c.transport, CommunicationType::Grpc);
    assert_eq!(c.executor_name.as_deref(), Some("tax-service"));
    assert_eq!(c.task.dispatch_threads, 50);
    // The probes in the manifest hit port 8080, the default health port.
    assert_eq!(c.http.port, 8080);
    assert_eq!(
        container["livenessProbe"]["httpGet"]["port"].as_u64(),
        Some(8080)
    );
}

#[test]
fn an_unresolvable_placeholder_overridden_by_the_environment_is_no_error() {
    let file = fixture("remote-application.properties");
    let (c, warnings) = ExecutorConfig::load(
        std::slice::from_ref(&file),
        env(&[("GAMELAN_EXECUTOR_JWT_SECRET", "direct")]),
    )
    .expect("the env value replaces ${JWT_SECRET}");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        c.jwt.secret.as_ref().map(gamelan::config::Secret::expose),
        Some("direct")
    );
    // A later file overriding it is just as good.
    let dir = tempfile::tempdir().expect("tempdir");
    let later = write(
        dir.path(),
        "later.properties",
        "gamelan.executor.jwt.secret=s\n",
    );
    assert!(ExecutorConfig::load(&[file.clone(), later], []).is_ok());
    assert!(ExecutorConfig::load(&[file], []).is_err());
}

#[test]
fn yaml_log_categories_and_kafka_properties() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(
        dir.path(),
        "application.yml",
        "quarkus:\n  log:\n    level: WARN\n    category:\n      \"gamelan.executor.task\":\n        level: DEBUG\n\
         gamelan:\n  executor:\n    log:\n      level: ERROR\n    kafka:\n      security.protocol: SASL_SSL\n      sasl:\n        mechanism: PLAIN\n",
    );
    let (c, warnings) = ExecutorConfig::load(&[f], []).expect("valid");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(c.log.root, LevelFilter::Warn);
    assert_eq!(c.log.level, Some(LevelFilter::Error));
    assert_eq!(
        c.log.categories.get("gamelan.executor.task"),
        Some(&LevelFilter::Debug)
    );
    assert_eq!(
        c.log_filter(),
        "warn,gamelan.executor=error,gamelan.executor.task=debug"
    );
    assert_eq!(
        c.kafka.properties.get("security.protocol"),
        Some("SASL_SSL")
    );
    assert_eq!(c.kafka.properties.get("sasl.mechanism"), Some("PLAIN"));
}

#[test]
fn the_abandoned_thread_cap_is_configurable_and_reaches_the_pool() {
    assert_eq!(load_env(&[]).task.max_abandoned_threads, 10, "default");
    let c = load_env(&[("GAMELAN_EXECUTOR_TASK_MAX_ABANDONED_THREADS", "0")]);
    assert_eq!(c.task.max_abandoned_threads, 0);
    let settings = gamelan::wiring::runtime_settings(&c);
    assert_eq!(settings.pool.max_abandoned_threads, 0);
    let err = ExecutorConfig::load(
        &[],
        env(&[("GAMELAN_EXECUTOR_TASK_MAX_ABANDONED_THREADS", "lots")]),
    )
    .expect_err("a non-number is refused")
    .to_string();
    assert!(err.contains("max-abandoned-threads"), "{err}");
}
