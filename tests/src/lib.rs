//! Support for end-to-end tests that run the `gamelan` binary as separate processes: find or
//! build the binary, spawn engines and executors with a clean environment, read the addresses
//! they log, talk to the engine's HTTP API, and wait on conditions with deadlines.
//!
//! Nothing here waits a fixed time: every wait polls a condition until a deadline and fails
//! with what it was waiting for, so a slow machine slows the suite down instead of breaking it.
//! The one exception is [`procstat::measure`], whose fixed window of wall time is the
//! measurement itself. Peers the tests check against (a Prometheus server) are started the
//! same way as the `gamelan` processes.

pub mod api;
pub mod binary;
pub mod cluster;
pub mod process;
pub mod procstat;
pub mod prometheus;
pub mod proxy;
pub mod wait;
pub mod workload;

pub use api::{Api, EngineStats, ExecutorView, Submitted, TaskView};
pub use binary::gamelan_binary;
pub use cluster::{Engine, EngineSpec, Executor, ExecutorSpec};
pub use process::{Finished, Process, Stream, e2e};
pub use wait::{wait_for, wait_until};
