//! The app serves gRPC and this API on one port by merging routers; tonic's router brings
//! its own fallback, so ours must merge into one that has a fallback without conflict.

mod common;

use axum::http::StatusCode;
use axum::routing::post;
use common::{FakeEngine, Server, agent, send};
use gamelan_rest::{HttpServerSettings, router};

#[test]
fn merges_into_a_router_with_its_own_fallback() {
    let grpc_like = axum::Router::new()
        .route(
            "/tech.kayys.gamelan.grpc.v1.ExecutorService/{*rest}",
            post(|| async { "grpc" }),
        )
        .fallback(|| async { (StatusCode::IM_A_TEAPOT, "theirs") });
    let merged = grpc_like.merge(router(FakeEngine::new(), HttpServerSettings::default()));
    let server = Server::start_router(merged);
    let agent = agent();

    let ours = send(&agent, "GET", &server.api("/api/v1/executors"), None, None);
    assert_eq!((ours.status, ours.body.as_str()), (200, "[]"));
    let unknown_api = send(&agent, "GET", &server.api("/api/v2/anything"), None, None);
    assert_eq!(unknown_api.status, 404);
    assert_eq!(unknown_api.error().0, "not_found");
    let theirs = send(&agent, "GET", &server.api("/elsewhere"), None, None);
    assert_eq!((theirs.status, theirs.body.as_str()), (418, "theirs"));
    let grpc = send(
        &agent,
        "POST",
        &server.api("/tech.kayys.gamelan.grpc.v1.ExecutorService/Heartbeat"),
        None,
        Some(b""),
    );
    assert_eq!(grpc.body, "grpc");
}
