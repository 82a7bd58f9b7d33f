#![allow(clippy::unwrap_used, clippy::expect_used)]
//! JWT between executors and the engine, over real sockets: matching secrets work on gRPC
//! and REST; a wrong secret, a wrong issuer or no token is refused with a message saying
//! which, and the engine keeps serving. Hostile tokens (`alg: none`, another algorithm, no
//! `exp`, `nbf` in the future, expired) are refused on both gRPC and HTTP; times within
//! the 30 s leeway are accepted.

use std::sync::Arc;
use std::time::Duration;

use gamelan::config::{ExecutorConfig, Secret};
use gamelan::engine::EngineSettings;
use gamelan::executors::Echo;
use gamelan::sdk::{CommunicationType, Declared, ExecutorMetadata};
use gamelan::security::StaticToken;
use gamelan::security::{JwtSigner, JwtVerifier};
use gamelan::wiring::{self, engine::EngineOptions};
use gamelan_ports::{
    EngineService, Registration, SubmitRequest, TaskState, TokenSource, TransportError,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

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

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A token with `claims` exactly as given, signed with `alg` and the engine's secret.
fn signed(alg: Algorithm, claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// An unsecured JWT (RFC 7519 section 6): header `alg: none`, empty signature.
fn unsigned(claims: &serde_json::Value) -> String {
    use base64::Engine as _;
    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    };
    format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(claims)
    )
}

/// Each hostile token with the words its refusal must contain.
fn refused_tokens() -> Vec<(&'static str, String, &'static str)> {
    let iss = "gamelan-executor";
    let valid = json!({"iss": iss, "sub": "x", "exp": now() + 300});
    vec![
        ("alg none", unsigned(&valid), "algorithm none not accepted"),
        (
            "HS384 with the right secret",
            signed(Algorithm::HS384, &valid),
            "algorithm hs384 not accepted",
        ),
        (
            "HS512 with the right secret",
            signed(Algorithm::HS512, &valid),
            "algorithm hs512 not accepted",
        ),
        (
            "no exp",
            signed(Algorithm::HS256, &json!({"iss": iss, "sub": "x"})),
            "missing required claim exp",
        ),
        (
            "nbf 10 minutes ahead",
            signed(
                Algorithm::HS256,
                &json!({"iss": iss, "exp": now() + 3600, "nbf": now() + 600}),
            ),
            "not valid yet (nbf",
        ),
        (
            "expired beyond the leeway",
            signed(Algorithm::HS256, &json!({"iss": iss, "exp": now() - 120})),
            "expired",
        ),
        (
            "another issuer",
            signed(
                Algorithm::HS256,
                &json!({"iss": "someone-else", "exp": now() + 300}),
            ),
            "issuer 'someone-else'",
        ),
    ]
}

/// Tokens within the 30 s leeway of their `exp` or `nbf`: clock skew, not an attack.
fn tolerated_tokens() -> Vec<(&'static str, String)> {
    let iss = "gamelan-executor";
    vec![
        (
            "expired 10 s ago",
            signed(Algorithm::HS256, &json!({"iss": iss, "exp": now() - 10})),
        ),
        (
            "nbf 10 s ahead",
            signed(
                Algorithm::HS256,
                &json!({"iss": iss, "exp": now() + 300, "nbf": now() + 10}),
            ),
        ),
        (
            "nbf in the past",
            signed(
                Algorithm::HS256,
                &json!({"iss": iss, "exp": now() + 300, "nbf": now() - 60}),
            ),
        ),
    ]
}

fn grpc_register(e: &wiring::EngineProcess, token: &str) -> Result<(), TransportError> {
    let cfg = executor_cfg(e, CommunicationType::Grpc, SECRET, "gamelan-executor");
    let transport = wiring::transport_for(
        &cfg,
        CommunicationType::Grpc,
        Arc::new(StaticToken(token.to_owned())),
    )
    .unwrap();
    let result = transport.connect().and_then(|()| {
        transport.register(&[Registration {
            executor_id: "jwt-hostile".into(),
            metadata: ExecutorMetadata::new("echo").communication(CommunicationType::Grpc),
            endpoint: String::new(),
            attributes: std::collections::BTreeMap::new(),
        }])
    });
    transport.close();
    result
}

#[test]
fn hostile_tokens_are_refused_over_grpc_naming_the_problem() {
    let e = engine();
    for (case, token, words) in refused_tokens() {
        match grpc_register(&e, &token) {
            Err(TransportError::Unauthenticated(m)) => {
                assert!(m.to_lowercase().contains(words), "{case}: {m}");
            }
            other => panic!("{case}: expected UNAUTHENTICATED, got {other:?}"),
        }
        assert!(e.engine.executors().is_empty(), "{case} registered");
    }
    for (case, token) in tolerated_tokens() {
        assert_eq!(grpc_register(&e, &token), Ok(()), "{case}");
    }
    e.shutdown();
}

#[test]
fn hostile_tokens_are_refused_over_http_naming_the_problem() {
    let e = engine();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("http://{}/api/v1/executors", e.addr);
    for (case, token, words) in refused_tokens() {
        let mut resp = agent
            .get(&url)
            .header("authorization", &format!("Bearer {token}"))
            .call()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{case}");
        let body = resp.body_mut().read_to_string().unwrap();
        assert!(body.to_lowercase().contains(words), "{case}: {body}");
    }
    for (case, token) in tolerated_tokens() {
        let resp = agent
            .get(&url)
            .header("authorization", &format!("Bearer {token}"))
            .call()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{case}");
    }
    e.shutdown();
}
