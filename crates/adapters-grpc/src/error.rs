//! The adapter's error type and the mapping between gRPC statuses and port errors.

use gamelan_ports::{EngineError, TransportError};
use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    #[error("invalid engine url '{url}': {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("invalid TLS settings: {0}")]
    Tls(String),
    #[error("gRPC transport failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("call failed: {0}")]
    Status(#[from] Status),
    #[error("{0}")]
    Other(String),
}

/// How the executor side reads a failed call: what reconnecting can fix is `Unavailable`,
/// what it cannot is `Rejected`.
pub fn status_to_transport(status: &Status) -> TransportError {
    let mut what = if status.message().is_empty() {
        format!("{:?}", status.code())
    } else {
        format!("{:?}: {}", status.code(), status.message())
    };
    append_sources(&mut what, status);
    match status.code() {
        Code::Unauthenticated | Code::PermissionDenied => TransportError::Unauthenticated(what),
        Code::InvalidArgument
        | Code::NotFound
        | Code::AlreadyExists
        | Code::FailedPrecondition
        | Code::OutOfRange
        | Code::Unimplemented => TransportError::Rejected(what),
        Code::Ok
        | Code::Cancelled
        | Code::Unknown
        | Code::DeadlineExceeded
        | Code::ResourceExhausted
        | Code::Aborted
        | Code::Internal
        | Code::Unavailable
        | Code::DataLoss => TransportError::Unavailable(what),
    }
}

/// "transport error" alone hides the cause (an untrusted certificate, a refused
/// connection): the chain of sources names it.
fn append_sources(what: &mut String, err: &dyn std::error::Error) {
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !what.contains(&text) {
            what.push_str(": ");
            what.push_str(&text);
        }
        source = cause.source();
    }
}

/// An error and all its sources, for messages people read.
pub fn with_sources(err: &dyn std::error::Error) -> String {
    let mut what = err.to_string();
    append_sources(&mut what, err);
    what
}

/// How the engine side answers a refused call.
pub fn engine_error_to_status(err: &EngineError) -> Status {
    let msg = err.to_string();
    match err {
        EngineError::UnknownExecutor(_) | EngineError::UnknownTask(_) => Status::not_found(msg),
        EngineError::Invalid(_) | EngineError::Intake(_) => Status::invalid_argument(msg),
        EngineError::Overloaded { .. } => Status::resource_exhausted(msg),
        EngineError::ShuttingDown => Status::unavailable(msg),
        EngineError::Storage(_) => Status::internal(msg),
    }
}

/// Errors after which resending the same result can never succeed, so the executor may drop
/// it; the others (overload, storage, shutdown) mean "try again later".
pub fn is_final_rejection(err: &EngineError) -> bool {
    matches!(
        err,
        EngineError::UnknownExecutor(_)
            | EngineError::UnknownTask(_)
            | EngineError::Invalid(_)
            | EngineError::Intake(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn engine_errors_map_to_the_documented_codes() {
        let cases = [
            (EngineError::UnknownExecutor("e".into()), Code::NotFound),
            (EngineError::Invalid("x".into()), Code::InvalidArgument),
            (
                EngineError::Intake(gamelan_domain::IntakeError::TokenMismatch { attempt: 1 }),
                Code::InvalidArgument,
            ),
            (
                EngineError::Overloaded {
                    retry_after: Duration::from_secs(1),
                },
                Code::ResourceExhausted,
            ),
            (EngineError::ShuttingDown, Code::Unavailable),
        ];
        for (err, code) in cases {
            assert_eq!(engine_error_to_status(&err).code(), code, "{err}");
        }
    }

    #[test]
    fn statuses_map_to_transport_errors() {
        assert!(matches!(
            status_to_transport(&Status::unavailable("down")),
            TransportError::Unavailable(_)
        ));
        assert!(matches!(
            status_to_transport(&Status::unauthenticated("who")),
            TransportError::Unauthenticated(m) if m.contains("who")
        ));
        assert!(matches!(
            status_to_transport(&Status::invalid_argument("bad")),
            TransportError::Rejected(_)
        ));
    }
}
