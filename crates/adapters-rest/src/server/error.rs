//! Every refusal of the HTTP API as one type, so all of them answer the same JSON shape
//! (`{"error", "message"}`) with a status chosen in one place.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gamelan_ports::EngineError;

use crate::wire::ErrorBody;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header on answers that invite a retry.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    #[must_use]
    pub fn retry_after(mut self, after: Duration) -> Self {
        // Round up so a client never retries before the server said it may.
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        self.retry_after = Some(secs.max(1));
        self
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// Whether the engine's refusal is temporary: such answers never reject a result for
    /// good, the whole batch is refused so the executor resends it.
    pub fn is_transient(e: &EngineError) -> bool {
        matches!(
            e,
            EngineError::Overloaded { .. } | EngineError::Storage(_) | EngineError::ShuttingDown
        )
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let message = e.to_string();
        match e {
            EngineError::UnknownExecutor(_) => {
                Self::new(StatusCode::NOT_FOUND, "unknown_executor", message)
            }
            EngineError::UnknownTask(_) => {
                Self::new(StatusCode::NOT_FOUND, "unknown_task", message)
            }
            EngineError::Invalid(_) => Self::bad_request("invalid_request", message),
            EngineError::Intake(_) => Self::new(StatusCode::CONFLICT, "rejected", message),
            EngineError::Overloaded { retry_after } => {
                Self::new(StatusCode::TOO_MANY_REQUESTS, "overloaded", message)
                    .retry_after(retry_after)
            }
            EngineError::Storage(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                message,
            )
            .retry_after(Duration::from_secs(1)),
            EngineError::ShuttingDown => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", message)
                    .retry_after(Duration::from_secs(1))
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code.to_owned(),
            message: self.message,
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_map_to_stable_statuses() {
        let cases = [
            (
                EngineError::UnknownExecutor("x".into()),
                404,
                "unknown_executor",
            ),
            (EngineError::UnknownTask("t".into()), 404, "unknown_task"),
            (EngineError::Invalid("bad".into()), 400, "invalid_request"),
            (
                EngineError::Overloaded {
                    retry_after: Duration::from_millis(1500),
                },
                429,
                "overloaded",
            ),
            (
                EngineError::Storage("disk".into()),
                503,
                "storage_unavailable",
            ),
            (EngineError::ShuttingDown, 503, "shutting_down"),
        ];
        for (e, status, code) in cases {
            let api = ApiError::from(e);
            assert_eq!((api.status.as_u16(), api.code), (status, code));
        }
        let api = ApiError::from(EngineError::Overloaded {
            retry_after: Duration::from_millis(1500),
        });
        assert_eq!(api.retry_after, Some(2));
    }
}
