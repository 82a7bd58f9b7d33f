#![allow(clippy::unwrap_used, clippy::expect_used)]
//! JWT between executors and the engine, over real sockets: matching secrets work on gRPC
//! and REST; a wrong secret, a wrong issuer or no token is refused with a message saying
//! which, and the engine keeps serving.

use std::sync::Arc;
use std::time::Duration;

use gamelan::config::{ExecutorConfig, Secret};
use gamelan::engine::EngineSettings;
use gamelan::executors::Echo;
use gamelan::sdk::{CommunicationType, Declared, ExecutorMetadata};
use gamelan::security::{JwtSigner, JwtVerifier};
use gamelan::wiring::{self, engine::EngineOptions};
use gamelan_ports::{EngineService, SubmitRequest, TaskState, TokenSource};

const SECRET: &str = "engine-and-executors-share-this";

fn engine() -> wiring::EngineProcess {
    let mut opts = EngineOptions::from_config(&gamelan::config::EngineConfig::default());
    opts.bind = "127.0.0.1:0".parse().unwrap();
    opts.settings = EngineSettings {
        data_dir: None,
        ..EngineSettings::default()
    };
    opts.verifier = Arc::new(JwtVerifier::new(SECRET, "gamelan-executor"));
    wiring::engine::start_engine_with(opts).unwrap()
}

fn executor_cfg(
    e: &wiring::EngineProcess,
    transport: CommunicationType,
    secret: &str,
    issuer: &str,
) -> ExecutorConfig {
    let mut cfg = ExecutorConfig::default();
    cfg.engine.url = format!("http://{}", e.addr).parse().unwrap();
    cfg.transport = transport;
    cfg.http.port = 0;
    cfg.runtime.executor_id = Some(format!("jwt-{}", transport.as_str().to_lowercase()));
    cfg.jwt.secret = Some(Secret::new(secret));
    cfg.jwt.issuer = issuer.into();
    cfg.jwt.enabled = true;
    cfg.engine.request_timeout = Duration::from_secs(5);
    cfg
}

fn start(cfg: &ExecutorConfig) -> gamelan::runtime::RuntimeHandle {
    let mut settings = wiring::runtime_settings(cfg);
    settings.reconnect_initial = Duration::from_millis(50);
    settings.reconnect_max = Duration::from_millis(200);
    let token = wiring::token_source(cfg, &settings.runtime_id);
    let transport = wiring::transport_for(cfg, cfg.transport, token).unwrap();
    gamelan::runtime::Runtime::builder()
        .discover(false)
        .settings(settings)
        .transport(cfg.transport, transport)
        .executor(Declared::new(
            Echo,
            ExecutorMetadata::new("echo").communication(cfg.transport),
        ))
        .start()
        .unwrap()
}

fn completes_a_task(e: &wiring::EngineProcess) {
    let v = e
        .engine
        .submit(SubmitRequest {
            executor_type: Some("echo".into()),
            ..SubmitRequest::default()
        })
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let t = e.engine.task(&v.task_id).unwrap();
        if t.status == TaskState::Completed {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "task never completed: {t:?}"
        );
        std::thread::park_timeout(Duration::from_millis(10));
    }
}

#[test]
fn matching_secret_works_over_grpc_and_rest() {
    let e = engine();
    for transport in [CommunicationType::Grpc, CommunicationType::Rest] {
        let rt = start(&executor_cfg(&e, transport, SECRET, "gamelan-executor"));
        assert!(
            rt.wait_ready(Duration::from_secs(20)),
            "{transport} never ready"
        );
        completes_a_task(&e);
        rt.shutdown();
    }
    e.shutdown();
}

#[test]
fn wrong_secret_or_issuer_never_registers() {
    let e = engine();
    for (transport, secret, issuer) in [
        (
            CommunicationType::Grpc,
            "not-the-secret",
            "gamelan-executor",
        ),
        (
            CommunicationType::Rest,
            "not-the-secret",
            "gamelan-executor",
        ),
        (CommunicationType::Grpc, SECRET, "somebody-else"),
    ] {
        let rt = start(&executor_cfg(&e, transport, secret, issuer));
        assert!(
            !rt.wait_ready(Duration::from_millis(800)),
            "{transport} registered with a bad token"
        );
        assert!(e.engine.executors().is_empty());
        rt.shutdown();
    }
    // The engine still serves a well-configured executor afterwards.
    let rt = start(&executor_cfg(
        &e,
        CommunicationType::Grpc,
        SECRET,
        "gamelan-executor",
    ));
    assert!(rt.wait_ready(Duration::from_secs(20)));
    rt.shutdown();
    e.shutdown();
}

#[test]
fn http_api_answers_401_naming_the_problem() {
    let e = engine();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("http://{}/api/v1/executors", e.addr);
    let cases: Vec<(Option<String>, &str)> = vec![
        (None, "missing"),
        (Some("Bearer abc.def".into()), "malformed"),
        (
            Some(format!(
                "Bearer {}",
                JwtSigner::new(
                    "wrong",
                    "gamelan-executor",
                    "x",
                    Duration::from_secs(60),
                    None,
                    None,
                    None
                )
                .bearer()
                .unwrap()
            )),
            "signature",
        ),
        (
            Some(format!(
                "Bearer {}",
                JwtSigner::new(
                    SECRET,
                    "other-issuer",
                    "x",
                    Duration::from_secs(60),
                    None,
                    None,
                    None
                )
                .bearer()
                .unwrap()
            )),
            "issuer",
        ),
    ];
    for (header, word) in cases {
        let mut req = agent.get(&url);
        if let Some(h) = &header {
            req = req.header("authorization", h);
        }
        let mut resp = req.call().unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{word}");
        let body = resp.body_mut().read_to_string().unwrap();
        assert!(body.to_lowercase().contains(word), "{word}: {body}");
    }
    let good = JwtSigner::new(
        SECRET,
        "gamelan-executor",
        "ops",
        Duration::from_secs(60),
        None,
        None,
        None,
    )
    .bearer()
    .unwrap();
    let resp = agent
        .get(&url)
        .header("authorization", &format!("Bearer {good}"))
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    e.shutdown();
}
