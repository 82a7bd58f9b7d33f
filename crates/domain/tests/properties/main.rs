//! Property tests for the pure domain.
//!
//! Each module checks one component against a reference model written from the
//! specification (the rules in docs/PROTOCOL.md and docs/ARCHITECTURE.md), not from the
//! implementation, so that a change in behaviour shows up as a disagreement between the two.

mod backoff;
mod balancer;
mod batch;
mod intake;
mod liveness;
mod retry;
mod state;
mod task_id;
