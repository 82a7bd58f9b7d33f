#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Push delivery secured, over real sockets: the engine's push calls carry a JWT the
//! executor's push server checks (a call without one is refused UNAUTHENTICATED), mutual TLS
//! works end to end, a client certificate from a foreign CA is refused, the engine dials
//! `grpc.advertised-host`, and a `grpc.host` that does not resolve stops the executor at start
//! with an error naming the key.

mod certs;

use std::time::{Duration, Instant};

use certs::{Ca, ca, leaf, write};

use gamelan::config::{EngineConfig, EngineGrpcTls, ExecutorConfig, GrpcDelivery, Secret};
use gamelan::engine::EngineSettings;
use gamelan::executors::Echo;
use gamelan::sdk::{CommunicationType, Declared, ExecutorMetadata};
use gamelan::security::JwtSigner;
use gamelan::wiring::{self, engine::EngineOptions};
use gamelan_grpc::proto::dispatcher::ExecutionRequest;
use gamelan_grpc::proto::dispatcher::executor_client::ExecutorClient;
use gamelan_ports::{EngineService, SubmitRequest, TaskState, TokenSource};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

const SECRET: &str = "engine-and-executors-share-this";
const ISSUER: &str = "gamelan-executor";

/// An engine whose JWT secret both checks executors and signs its push calls; with `tls`,
/// its extra gRPC port serves mutual TLS and its push calls present the same certificate.
fn engine(tls: Option<EngineGrpcTls>) -> wiring::EngineProcess {
    let mut cfg = EngineConfig::default();
    cfg.jwt.secret = Some(Secret::new(SECRET));
    cfg.jwt.enabled = true;
    let mut opts = EngineOptions::from_config(&cfg);
    opts.bind = "127.0.0.1:0".parse().unwrap();
    opts.settings = EngineSettings {
        data_dir: None,
        ..EngineSettings::default()
    };
    if tls.is_some() {
        opts.grpc_bind = Some("127.0.0.1:0".parse().unwrap());
    }
    opts.grpc_tls = tls;
    wiring::engine::start_engine_with(opts).unwrap()
}

fn push_cfg(e: &wiring::EngineProcess, id: &str) -> ExecutorConfig {
    let mut cfg = ExecutorConfig::default();
    cfg.engine.url = format!("http://{}", e.addr).parse().unwrap();
    cfg.transport = CommunicationType::Grpc;
    cfg.grpc.delivery = GrpcDelivery::Push;
    cfg.grpc.host = "127.0.0.1".into();
    cfg.grpc.port = 0;
    cfg.http.port = 0;
    cfg.runtime.executor_id = Some(id.into());
    cfg.jwt.secret = Some(Secret::new(SECRET));
    cfg.jwt.issuer = ISSUER.into();
    cfg.jwt.enabled = true;
    cfg.engine.connect_timeout = Duration::from_secs(5);
    cfg.engine.request_timeout = Duration::from_secs(5);
    cfg
}

fn start(cfg: &ExecutorConfig) -> gamelan::runtime::RuntimeHandle {
    let rt = wiring::runtime_builder(cfg)
        .unwrap()
        .discover(false)
        .executor(Declared::new(Echo, ExecutorMetadata::new("echo")))
        .start()
        .unwrap();
    assert!(
        rt.wait_ready(Duration::from_secs(20)),
        "executor never ready"
    );
    rt
}

fn completes_a_task(e: &wiring::EngineProcess) {
    let v = e
        .engine
        .submit(SubmitRequest {
            executor_type: Some("echo".into()),
            ..SubmitRequest::default()
        })
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let t = e.engine.task(&v.task_id).unwrap();
        if t.status == TaskState::Completed {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "pushed task never completed: {t:?}"
        );
        std::thread::park_timeout(Duration::from_millis(10));
    }
}

/// The push endpoint the executor registered.
fn endpoint(e: &wiring::EngineProcess) -> String {
    let views = e.engine.executors();
    let v = views
        .iter()
        .find(|v| !v.endpoint.is_empty())
        .expect("a push executor is registered");
    v.endpoint.clone()
}

fn request() -> ExecutionRequest {
    ExecutionRequest {
        run_id: "raw".into(),
        node_id: "n".into(),
        attempt: 1,
        token: "t".into(),
        variables: [("nodeType".to_owned(), "echo".to_owned())].into(),
        ..ExecutionRequest::default()
    }
}

/// One raw `Execute` call: the status code (or the transport error) it ended with.
fn raw_execute(
    url: &str,
    tls: Option<ClientTlsConfig>,
    bearer: Option<String>,
) -> Result<bool, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut ep = Endpoint::from_shared(url.to_owned())
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(5));
        if let Some(tls) = tls {
            ep = ep.tls_config(tls).unwrap();
        }
        let channel = ep.connect().await.map_err(|e| format!("connect: {e:?}"))?;
        let mut req = tonic::Request::new(request());
        if let Some(t) = bearer {
            req.metadata_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        ExecutorClient::new(channel)
            .execute(req)
            .await
            .map(|a| a.into_inner().accepted)
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
    })
}

fn token(secret: &str) -> String {
    JwtSigner::new(
        secret,
        ISSUER,
        "raw",
        Duration::from_secs(60),
        None,
        None,
        None,
    )
    .bearer()
    .unwrap()
}

#[test]
fn push_with_jwt_completes_tasks_and_refuses_calls_without_a_valid_token() {
    let e = engine(None);
    let mut cfg = push_cfg(&e, "push-jwt");
    // The engine dials the advertised host, not the bound address.
    cfg.grpc.advertised_host = Some("localhost".into());
    let rt = start(&cfg);
    completes_a_task(&e);
    let ep = endpoint(&e);
    assert!(ep.starts_with("localhost:"), "{ep}");
    let url = format!("http://{ep}");

    let none = raw_execute(&url, None, None).unwrap_err();
    assert!(none.starts_with("Unauthenticated"), "{none}");
    assert!(none.contains("missing bearer token"), "{none}");
    let forged = raw_execute(&url, None, Some(token("not-the-secret"))).unwrap_err();
    assert!(forged.starts_with("Unauthenticated"), "{forged}");
    assert!(forged.contains("signature"), "{forged}");
    // The server keeps serving, and the engine's pushes still go through.
    completes_a_task(&e);
    rt.shutdown();
    e.shutdown();
}

#[test]
fn mutual_tls_push_works_and_a_foreign_client_certificate_is_refused() {
    // RUST_LOG=warn shows the foreign engine's log of the refusal.
    let _ = env_logger::builder().is_test(true).try_init();
    let dir = tempfile::tempdir().unwrap();
    let org = ca("org-ca");
    let rogue = ca("rogue-ca");
    let ca_path = write(dir.path(), "org-ca.crt", &org.pem);
    let (ecert, ekey) = leaf_local(&org);
    let e = engine(Some(EngineGrpcTls {
        use_ssl: true,
        certificate_path: Some(write(dir.path(), "engine.crt", &ecert)),
        private_key_path: Some(write(dir.path(), "engine.key", &ekey)),
        ca_certificate_path: Some(ca_path.clone()),
    }));
    let mut cfg = push_cfg(&e, "push-mtls");
    let (xcert, xkey) = leaf_local(&org);
    cfg.grpc.engine_url = Some(
        format!("https://localhost:{}", e.grpc_addr.unwrap().port())
            .parse()
            .unwrap(),
    );
    cfg.grpc.use_ssl = true;
    cfg.grpc.ca_certificate_path = Some(ca_path);
    cfg.grpc.certificate_path = Some(write(dir.path(), "executor.crt", &xcert));
    cfg.grpc.private_key_path = Some(write(dir.path(), "executor.key", &xkey));
    let rt = start(&cfg);
    completes_a_task(&e);
    let ep = endpoint(&e);
    assert!(ep.starts_with("https://127.0.0.1:"), "{ep}");

    let client = |identity: Option<(String, String)>| {
        let mut c = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&org.pem));
        if let Some((cert, key)) = identity {
            c = c.identity(Identity::from_pem(cert, key));
        }
        c
    };
    // A certificate from the executor's CA passes TLS; the call then needs the token.
    let ours = raw_execute(&ep, Some(client(Some(leaf_local(&org)))), None).unwrap_err();
    assert!(ours.starts_with("Unauthenticated"), "{ours}");
    // A certificate from another CA, or none, never reaches the service.
    for (what, identity) in [
        ("foreign CA", Some(leaf_local(&rogue))),
        ("no certificate", None),
    ] {
        let err = raw_execute(&ep, Some(client(identity)), Some(token(SECRET))).expect_err(what);
        eprintln!("{what}: {err}");
        assert!(!err.starts_with("Unauthenticated"), "{what}: {err}");
    }

    // An engine presenting a certificate from a foreign CA (with a valid token) is refused:
    // its push fails, the task goes back to its queue and never completes.
    let (rcert, rkey) = leaf_local(&rogue);
    let foreign = engine_with_push_tls(EngineGrpcTls {
        use_ssl: true,
        certificate_path: Some(write(dir.path(), "rogue.crt", &rcert)),
        private_key_path: Some(write(dir.path(), "rogue.key", &rkey)),
        ca_certificate_path: Some(write(dir.path(), "org-ca-2.crt", &org.pem)),
    });
    register_push_endpoint(&foreign, "foreign-target", &ep);
    let v = foreign
        .engine
        .submit(SubmitRequest {
            executor_type: Some("echo".into()),
            ..SubmitRequest::default()
        })
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while foreign.engine.statistics().tasks_redispatched == 0 {
        assert!(
            Instant::now() < deadline,
            "the foreign engine never tried to push"
        );
        std::thread::park_timeout(Duration::from_millis(10));
    }
    let t = foreign.engine.task(&v.task_id).unwrap();
    assert_eq!(t.status, TaskState::Pending, "{t:?}");
    foreign.shutdown();

    // And the real engine's pushes still go through.
    completes_a_task(&e);
    rt.shutdown();
    e.shutdown();
}

/// An engine with plain gRPC on its main port whose push calls present `tls`'s certificate.
fn engine_with_push_tls(tls: EngineGrpcTls) -> wiring::EngineProcess {
    let mut cfg = EngineConfig::default();
    cfg.jwt.secret = Some(Secret::new(SECRET));
    cfg.jwt.enabled = true;
    let mut opts = EngineOptions::from_config(&cfg);
    opts.bind = "127.0.0.1:0".parse().unwrap();
    opts.settings = EngineSettings {
        data_dir: None,
        ..EngineSettings::default()
    };
    opts.grpc_tls = Some(tls);
    wiring::engine::start_engine_with(opts).unwrap()
}

/// Registers a push executor at `endpoint` the way an executor would, over plain gRPC.
fn register_push_endpoint(e: &wiring::EngineProcess, id: &str, endpoint: &str) {
    use gamelan_grpc::proto::v1::RegisterExecutorRequest;
    use gamelan_grpc::proto::v1::executor_service_client::ExecutorServiceClient;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut client = ExecutorServiceClient::connect(format!("http://{}", e.addr))
            .await
            .unwrap();
        let mut req = tonic::Request::new(RegisterExecutorRequest {
            executor_id: id.into(),
            executor_type: "echo".into(),
            communication_type: 1,
            endpoint: endpoint.into(),
            supported_node_types: vec!["echo".into()],
            max_concurrent_tasks: 4,
            ..RegisterExecutorRequest::default()
        });
        req.metadata_mut().insert(
            "authorization",
            format!("Bearer {}", token(SECRET)).parse().unwrap(),
        );
        client.register_executor(req).await.unwrap();
    });
}

#[test]
fn a_grpc_host_that_does_not_resolve_stops_the_executor_at_start() {
    let e = engine(None);
    let mut cfg = push_cfg(&e, "push-badhost");
    cfg.grpc.host = "no-such-host.invalid".into();
    let err = wiring::runtime_builder(&cfg)
        .err()
        .expect("an unresolvable grpc.host must be refused")
        .to_string();
    assert!(err.contains("gamelan.executor.grpc.host"), "{err}");
    assert!(err.contains("no-such-host.invalid"), "{err}");
    e.shutdown();
}

/// A certificate for localhost and 127.0.0.1 signed by `ca`: (cert PEM, key PEM).
fn leaf_local(ca: &Ca) -> (String, String) {
    leaf(ca, &["localhost", "127.0.0.1"])
}
