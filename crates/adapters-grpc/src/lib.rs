//! gRPC transport for the Gamelan executor runtime and reference engine.
//!
//! - [`GrpcTransport`]: the executor side, a synchronous `EngineTransport` with three
//!   deliveries ([`Delivery`]): `ExecuteStream` (bidirectional, the fast path),
//!   `StreamTasks` (what the Java engine serves) and push (`dispatcher.Executor.Execute`).
//! - [`routes`] / [`serve`]: the engine side, `ExecutorService` over an `EngineService`.
//! - [`convert`]: domain <-> wire conversions, validating everything decoded.
//! - [`raw_echo`]: a bare bidirectional echo, the baseline for benchmarks.

mod auth;
pub mod client;
pub mod convert;
pub mod error;
pub mod proto;
pub mod raw_echo;
pub mod server;
pub mod settings;

pub use client::{GrpcTransport, RESULT_TOO_LARGE};
pub use error::GrpcError;
pub use server::{SHUTDOWN_GRACE, routes, serve};
pub use settings::{
    ClientTls, Delivery, GrpcClientSettings, GrpcServerSettings, PushClientSettings, ServerTls,
    UnknownDelivery,
};
