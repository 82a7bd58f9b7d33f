//! The `gamelan` command itself: the demo (engine and executor in one process over real
//! sockets) and configuration checking.

use std::time::Duration;

use gamelan_e2e::{Process, e2e};

fn demo(transport: &str) -> anyhow::Result<()> {
    let run = Process::run(
        "demo",
        &[
            "demo",
            "--tasks",
            "2000",
            "--transport",
            transport,
            "--timeout-secs",
            "90",
        ],
        &[],
        Duration::from_secs(120),
    )?;
    assert!(run.status.success(), "demo failed: {run:?}");
    assert!(
        run.stdout.contains("all 2000 outputs correct"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("completed:  2000"), "{}", run.stdout);
    assert!(run.stdout.contains("failed:     0"), "{}", run.stdout);
    assert!(!run.stdout.contains("WRONG"), "{}", run.stdout);
    Ok(())
}

#[test]
fn demo_over_grpc_checks_every_output() {
    e2e(|| demo("grpc"));
}

#[test]
fn demo_over_rest_checks_every_output() {
    e2e(|| demo("rest"));
}

#[test]
fn config_check_accepts_a_valid_configuration_and_rejects_a_bad_one_with_status_2() {
    e2e(|| {
        let env = [
            ("GAMELAN_EXECUTOR_TRANSPORT".to_owned(), "rest".to_owned()),
            (
                "GAMELAN_EXECUTOR_HEARTBEAT_INTERVAL".to_owned(),
                "200ms".to_owned(),
            ),
        ];
        let ok = Process::run(
            "config check",
            &["config", "check"],
            &env,
            Duration::from_secs(30),
        )?;
        assert!(ok.status.success(), "{ok:?}");
        let transport = ok
            .stdout
            .lines()
            .find(|l| l.starts_with("gamelan.executor.transport "))
            .unwrap_or_default();
        assert!(
            transport.contains("= rest") && transport.contains("GAMELAN_EXECUTOR_TRANSPORT"),
            "the effective value and where it came from: {}",
            ok.stdout
        );

        let bad = Process::run(
            "config check",
            &["config", "check", "--set", "heartbeat.interval=soon"],
            &[],
            Duration::from_secs(30),
        )?;
        assert_eq!(bad.status.code(), Some(2), "{bad:?}");
        assert!(
            format!("{}{}", bad.stdout, bad.stderr).contains("heartbeat.interval"),
            "the problem must name the key: {bad:?}"
        );

        let engine = Process::run(
            "config check",
            &["config", "check", "--engine"],
            &[("GAMELAN_ENGINE_PORT".to_owned(), "0".to_owned())],
            Duration::from_secs(30),
        )?;
        assert!(engine.status.success(), "{engine:?}");
        assert!(
            engine.stdout.contains("gamelan.engine.port"),
            "{}",
            engine.stdout
        );
        Ok(())
    });
}
