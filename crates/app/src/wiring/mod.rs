//! From configuration to running processes: which adapter serves which transport, with
//! which settings. The only place that knows every adapter; the runtime and the engine stay
//! transport-agnostic.

pub mod engine;
pub mod executor;

pub use engine::{EngineProcess, WiringEngineError, start_engine};
pub use executor::{WiringError, runtime_builder, runtime_settings, token_source, transport_for};
