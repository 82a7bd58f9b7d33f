//! REST transport for the Gamelan executor runtime and reference engine.
//!
//! - [`server::router`]: the engine's HTTP API (executor protocol, user task API, health,
//!   metrics) as an axum router, to be merged with the gRPC routes on one port;
//! - [`client::RestTransport`]: the executor side, an [`gamelan_ports::EngineTransport`] over
//!   blocking HTTP (ureq) with long polling;
//! - [`wire`]: the JSON shapes both share.
//!
//! Serving gRPC and this API on one port (the router has no fallback of its own, so it
//! merges into tonic's, which has one):
//!
//! ```text
//! let app = grpc_routes.into_axum_router().merge(gamelan_rest::router(engine, settings));
//! axum::serve(listener, app).await?;   // axum with the `http2` feature for gRPC
//! ```

pub mod client;
pub mod server;
pub mod wire;

pub use client::{RestClientSettings, RestError, RestTransport};
pub use server::{HttpServerSettings, router, served_routes};
