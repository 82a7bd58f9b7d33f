//! The pure heart of the Gamelan executor runtime.
//!
//! Everything here is synchronous and deterministic: no I/O, no threads and no clock reads.
//! Time always arrives as an argument (`Instant`, `Duration` or epoch milliseconds), which is
//! what lets the policies below be property-tested and shared by the executor runtime and the
//! reference engine alike.

pub mod backoff;
pub mod balancer;
pub mod batch;
pub mod error;
pub mod executor;
pub mod intake;
pub mod liveness;
pub mod result;
pub mod retry;
pub mod state;
pub mod task;

pub use backoff::Backoff;
pub use balancer::{Balancer, Candidate};
pub use batch::{BatchPolicy, Batcher};
pub use error::{ExecutionError, codes};
pub use executor::{
    CommunicationType, ExecutorMetadata, ExecutorRegistry, RegistryError, UnknownCommunicationType,
};
pub use intake::{Acceptance, IntakeError, ResultIntake};
pub use liveness::LivenessTracker;
pub use result::{ErrorInfo, ResultError, ResultStatus, TaskResult};
pub use retry::RetryPolicy;
pub use state::{IllegalTransition, RuntimeEvent, RuntimeState, RuntimeStateMachine};
pub use task::{JsonObject, Task, TaskError, TaskId};
