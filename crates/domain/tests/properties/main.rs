//! Property tests for the pure domain.
//!
//! Each module checks one component against a reference model written from the
//! specification (issue 2, DESIGN.md section 4), not from the implementation, so that a
//! change in behaviour shows up as a disagreement between the two.

mod balancer;
mod batch;
mod intake;
mod liveness;
mod retry;
mod state;
mod task_id;
