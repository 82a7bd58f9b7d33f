#![allow(clippy::unwrap_used, clippy::expect_used)]
//! gRPC over TLS and mutual TLS, with certificates made at test time: TLS works, mTLS
//! admits a client certified by the configured CA and refuses one without a certificate or
//! with one from another CA, with an error saying so.

mod certs;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use certs::{Ca, ca, leaf, write};

use gamelan::config::{EngineConfig, EngineGrpcTls, ExecutorConfig};
use gamelan::engine::EngineSettings;
use gamelan::executors::Echo;
use gamelan::sdk::{CommunicationType, Declared, ExecutorMetadata};
use gamelan::wiring::{self, engine::EngineOptions};
use gamelan_ports::{AllowAll, EngineService, NoToken, SubmitRequest, TaskState};

fn engine(dir: &Path, server_ca: &Ca, client_ca: Option<&Ca>) -> wiring::EngineProcess {
    let (cert, key) = leaf(server_ca, &["localhost", "127.0.0.1"]);
    let mut opts = EngineOptions::from_config(&EngineConfig::default());
    opts.bind = "127.0.0.1:0".parse().unwrap();
    opts.grpc_bind = Some("127.0.0.1:0".parse().unwrap());
    opts.settings = EngineSettings {
        data_dir: None,
        ..EngineSettings::default()
    };
    opts.verifier = Arc::new(AllowAll);
    opts.grpc_tls = Some(EngineGrpcTls {
        use_ssl: true,
        certificate_path: Some(write(dir, "server.crt", &cert)),
        private_key_path: Some(write(dir, "server.key", &key)),
        ca_certificate_path: client_ca.map(|c| write(dir, "clients-ca.crt", &c.pem)),
    });
    wiring::engine::start_engine_with(opts).unwrap()
}

fn executor_cfg(
    e: &wiring::EngineProcess,
    dir: &Path,
    trust: &Ca,
    identity: Option<(String, String)>,
) -> ExecutorConfig {
    let mut cfg = ExecutorConfig::default();
    let port = e.grpc_addr.unwrap().port();
    cfg.grpc.engine_url = Some(format!("https://localhost:{port}").parse().unwrap());
    cfg.grpc.use_ssl = true;
    cfg.grpc.ca_certificate_path = Some(write(dir, "engine-ca.crt", &trust.pem));
    if let Some((c, k)) = identity {
        cfg.grpc.certificate_path = Some(write(dir, "client.crt", &c));
        cfg.grpc.private_key_path = Some(write(dir, "client.key", &k));
    }
    cfg.http.port = 0;
    cfg.runtime.executor_id = Some("tls".into());
    cfg.engine.connect_timeout = Duration::from_secs(5);
    cfg.engine.request_timeout = Duration::from_secs(5);
    cfg
}

fn runs_a_task(cfg: &ExecutorConfig, e: &wiring::EngineProcess) {
    let rt = wiring::runtime_builder(cfg)
        .unwrap()
        .discover(false)
        .executor(Declared::new(Echo, ExecutorMetadata::new("echo")))
        .start()
        .unwrap();
    assert!(
        rt.wait_ready(Duration::from_secs(20)),
        "TLS executor never ready"
    );
    let v = e
        .engine
        .submit(SubmitRequest {
            executor_type: Some("echo".into()),
            ..SubmitRequest::default()
        })
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while e.engine.task(&v.task_id).unwrap().status != TaskState::Completed {
        assert!(
            std::time::Instant::now() < deadline,
            "task never completed over TLS"
        );
        std::thread::park_timeout(Duration::from_millis(10));
    }
    rt.shutdown();
}

/// The error an executor gets when the handshake is refused.
fn refused(cfg: &ExecutorConfig) -> String {
    let t = wiring::transport_for(cfg, CommunicationType::Grpc, Arc::new(NoToken)).unwrap();
    let reg = gamelan_ports::Registration {
        executor_id: "tls-echo".into(),
        metadata: ExecutorMetadata::new("echo"),
        endpoint: String::new(),
        attributes: std::collections::BTreeMap::new(),
    };
    let err = t
        .connect()
        .and_then(|()| t.register(&[reg]))
        .expect_err("the engine must refuse this client");
    t.close();
    assert!(err.is_connection_loss(), "{err}");
    err.to_string()
}

#[test]
fn tls_without_client_certificates_works() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = ca("server-ca");
    let e = engine(dir.path(), &server_ca, None);
    runs_a_task(&executor_cfg(&e, dir.path(), &server_ca, None), &e);
    e.shutdown();
}

#[test]
fn mutual_tls_admits_only_clients_of_the_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = ca("server-ca");
    let client_ca = ca("client-ca");
    let rogue_ca = ca("rogue-ca");
    let e = engine(dir.path(), &server_ca, Some(&client_ca));

    runs_a_task(
        &executor_cfg(
            &e,
            dir.path(),
            &server_ca,
            Some(leaf(&client_ca, &["executor"])),
        ),
        &e,
    );
    let none = refused(&executor_cfg(&e, dir.path(), &server_ca, None));
    let rogue = refused(&executor_cfg(
        &e,
        dir.path(),
        &server_ca,
        Some(leaf(&rogue_ca, &["executor"])),
    ));
    eprintln!("no client certificate: {none}\nforeign client certificate: {rogue}");
    for msg in [&none, &rogue] {
        assert!(msg.contains("unavailable"), "{msg}");
    }
    // The closed connection is explained, naming the likely cause of each case.
    assert!(none.contains("none is configured"), "{none}");
    assert!(
        rogue.contains("not signed by the CA the engine trusts"),
        "{rogue}"
    );
    // A client that does not trust the engine's CA refuses the engine.
    let distrust = refused(&executor_cfg(
        &e,
        dir.path(),
        &rogue_ca,
        Some(leaf(&client_ca, &["executor"])),
    ));
    eprintln!("untrusted engine certificate: {distrust}");
    assert!(distrust.contains("invalid peer certificate"), "{distrust}");
    // And the engine keeps serving good clients afterwards.
    runs_a_task(
        &executor_cfg(
            &e,
            dir.path(),
            &server_ca,
            Some(leaf(&client_ca, &["executor"])),
        ),
        &e,
    );
    e.shutdown();
}
