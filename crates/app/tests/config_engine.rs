//! `gamelan.engine.*`: defaults, files, environment and validation.

use std::path::PathBuf;
use std::time::Duration;

use gamelan::config::{EngineConfig, Sources};

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn defaults() {
    let (c, warnings) = EngineConfig::load(&[], []).expect("defaults are valid");
    assert!(warnings.is_empty());
    assert_eq!(c, EngineConfig::default());
    assert_eq!(c.port, 8080);
    assert_eq!(c.host, "0.0.0.0");
    assert_eq!(c.grpc_port, None);
    assert_eq!(c.heartbeat_timeout, Duration::from_secs(60));
    assert_eq!(c.ack_timeout, Duration::from_secs(300));
    assert_eq!(c.data_dir, PathBuf::from("./gamelan-data"));
    assert!(!c.ephemeral);
    assert_eq!(c.max_body_size, 4 * 1024 * 1024);
    assert_eq!(c.max_long_polls, 256);
    assert_eq!(c.max_long_poll_wait, Duration::from_secs(30));
    assert!(!c.jwt.enabled);
    assert_eq!(c.retry_policy().max_attempts, 3);
}

#[test]
fn environment_variables() {
    let (c, warnings) = EngineConfig::load(
        &[],
        env(&[
            ("GAMELAN_ENGINE_PORT", "0"),
            ("GAMELAN_ENGINE_JWT_SECRET", "engine-secret"),
            ("GAMELAN_ENGINE_JWT_ISSUER", "my-issuer"),
            ("GAMELAN_ENGINE_GRPC_PORT", "9443"),
            ("GAMELAN_ENGINE_KAFKA_RESULTS_TOPIC", "results-v2"),
            ("GAMELAN_ENGINE_MAX_BODY_SIZE", "1MiB"),
            ("GAMELAN_ENGINE_EPHEMERAL", "true"),
            ("GAMELAN_ENGINE_MAX_LONG_POLL_WAIT", "250"),
            // An executor's variables in the same environment are not the engine's business.
            ("GAMELAN_EXECUTOR_QUEUE_SIZE", "0"),
        ]),
    )
    .expect("valid");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(c.port, 0);
    assert_eq!(
        c.jwt.secret.as_ref().map(gamelan::config::Secret::expose),
        Some("engine-secret")
    );
    assert!(c.jwt.enabled, "a secret turns JWT on");
    assert_eq!(c.jwt.issuer, "my-issuer");
    assert_eq!(c.grpc_port, Some(9443));
    assert_eq!(c.kafka.topics.results, "results-v2");
    assert_eq!(c.max_body_size, 1024 * 1024);
    assert_eq!(c.max_long_poll_wait, Duration::from_millis(250));
    assert!(c.ephemeral);
    assert!(!format!("{c:?}").contains("engine-secret"));
}

#[test]
fn a_shared_file_serves_both_processes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("application.yml");
    std::fs::write(
        &f,
        "gamelan:\n  engine:\n    port: 7000\n    heartbeat:\n      timeout: 90\n    retry:\n      backoff-initial: 250\n      backoff-multiplier: 3\n    data-dir: /var/lib/gamelan\n  executor:\n    engine-url: http://localhost:7000\n",
    )
    .expect("write");
    let (c, warnings) = EngineConfig::load(std::slice::from_ref(&f), []).expect("valid");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(c.port, 7000);
    assert_eq!(c.heartbeat_timeout, Duration::from_secs(90));
    assert_eq!(c.retry.backoff_initial, Duration::from_millis(250));
    assert!((c.retry.backoff_multiplier - 3.0).abs() < f64::EPSILON);
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/gamelan"));

    let (e, warnings) = gamelan::config::ExecutorConfig::load(&[f], []).expect("valid");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(e.engine.url.port(), Some(7000));
}

#[test]
fn invalid_engine_configuration_lists_every_problem() {
    let sources = Sources::new()
        .set("port", "8080")
        .set("grpc.port", "8080")
        .set("jwt.enabled", "true")
        .set("max-long-polls", "0")
        .set("retry.backoff-multiplier", "0")
        .set("ack-timeout", "0");
    let err = EngineConfig::load_sources(&sources).expect_err("invalid");
    for key in [
        "gamelan.engine.grpc.port",
        "gamelan.engine.jwt.enabled",
        "gamelan.engine.max-long-polls",
        "gamelan.engine.retry.backoff-multiplier",
        "gamelan.engine.ack-timeout",
    ] {
        assert!(err.mentions(key), "{key} not in: {err}");
    }
    assert_eq!(err.problems.len(), 5, "{err}");
}
