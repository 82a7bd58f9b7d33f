//! One HTTP exchange and its classification into the port's error kinds. Kept apart from the
//! transport logic so the mapping (what is retryable, what is final) is in one place.

use std::time::Duration;

use gamelan_ports::TransportError;
use ureq::Agent;
use ureq::http::Response;

use crate::wire::ErrorBody;

/// The most response body we read: a long-poll answer of many large tasks fits, a runaway
/// peer does not exhaust memory.
const MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;

/// A non-2xx answer, with the server's JSON error when it sent one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpFailure {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl HttpFailure {
    fn parse(status: u16, body: &[u8]) -> Self {
        if let Ok(e) = serde_json::from_slice::<ErrorBody>(body) {
            return Self {
                status,
                code: e.error,
                message: e.message,
            };
        }
        let text = String::from_utf8_lossy(body);
        let text: String = text.chars().take(300).collect();
        Self {
            status,
            code: String::new(),
            message: if text.trim().is_empty() {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status}: {}", text.trim())
            },
        }
    }

    pub fn is_unknown_executor(&self) -> bool {
        self.status == 404 && self.code == "unknown_executor"
    }

    pub fn into_transport(self) -> TransportError {
        let message = if self.code.is_empty() {
            self.message
        } else {
            format!("{} ({})", self.message, self.code)
        };
        match self.status {
            401 => TransportError::Unauthenticated(message),
            // Overload and timeouts are the engine's temporary trouble: back off, retry.
            408 | 429 | 500..=599 => TransportError::Unavailable(message),
            400..=499 => TransportError::Rejected(message),
            _ => TransportError::Protocol(format!("unexpected answer: {message}")),
        }
    }
}

#[derive(Debug)]
pub(crate) enum CallError {
    Transport(TransportError),
    Http(HttpFailure),
}

impl CallError {
    pub fn into_transport(self) -> TransportError {
        match self {
            Self::Transport(e) => e,
            Self::Http(f) => f.into_transport(),
        }
    }
}

/// What the request carries.
pub(crate) enum Payload<'a> {
    None,
    Json(&'a dyn erased::Json),
}

/// Serialising through a trait object keeps [`exchange`] non-generic.
pub(crate) mod erased {
    pub trait Json {
        fn to_vec(&self) -> Result<Vec<u8>, serde_json::Error>;
    }

    impl<T: serde::Serialize + ?Sized> Json for T {
        fn to_vec(&self) -> Result<Vec<u8>, serde_json::Error> {
            serde_json::to_vec(self)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    Get,
    Post,
    Delete,
}

/// Sends one request and returns the body of a 2xx answer.
pub(crate) fn exchange(
    agent: &Agent,
    verb: Verb,
    url: &str,
    bearer: Option<&str>,
    payload: Payload<'_>,
    timeout: Duration,
) -> Result<Vec<u8>, CallError> {
    let auth = bearer.map(|t| format!("Bearer {t}"));
    let result = match (verb, payload) {
        (Verb::Post, payload) => {
            let bytes = match payload {
                Payload::None => Vec::new(),
                Payload::Json(j) => j
                    .to_vec()
                    .map_err(|e| CallError::Transport(TransportError::Protocol(e.to_string())))?,
            };
            let mut req = agent
                .post(url)
                .config()
                .timeout_global(Some(timeout))
                .build()
                .header("content-type", "application/json");
            if let Some(a) = &auth {
                req = req.header("authorization", a);
            }
            req.send(&bytes[..])
        }
        (Verb::Get | Verb::Delete, _) => {
            let req = if verb == Verb::Get {
                agent.get(url)
            } else {
                agent.delete(url)
            };
            let mut req = req.config().timeout_global(Some(timeout)).build();
            if let Some(a) = &auth {
                req = req.header("authorization", a);
            }
            req.call()
        }
    };
    let response = result.map_err(|e| CallError::Transport(network(e)))?;
    read(response)
}

fn read(response: Response<ureq::Body>) -> Result<Vec<u8>, CallError> {
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let bytes = body
        .with_config()
        .limit(MAX_RESPONSE_BYTES)
        .read_to_vec()
        .map_err(|e| CallError::Transport(network(e)))?;
    if (200..300).contains(&status) {
        Ok(bytes)
    } else {
        Err(CallError::Http(HttpFailure::parse(status, &bytes)))
    }
}

/// Network trouble is `Unavailable` (the runtime reconnects with backoff); a peer that does
/// not speak HTTP or JSON properly is `Protocol`.
fn network(e: ureq::Error) -> TransportError {
    match e {
        ureq::Error::Protocol(_) | ureq::Error::BodyExceedsLimit(_) | ureq::Error::Json(_) => {
            TransportError::Protocol(e.to_string())
        }
        ureq::Error::BadUri(_) | ureq::Error::Http(_) => TransportError::Rejected(e.to_string()),
        other => TransportError::Unavailable(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_port_errors() {
        let f =
            |status: u16, body: &str| HttpFailure::parse(status, body.as_bytes()).into_transport();
        assert!(
            matches!(f(401, r#"{"error":"unauthenticated","message":"token expired"}"#),
            TransportError::Unauthenticated(m) if m.contains("token expired"))
        );
        assert!(
            matches!(f(400, r#"{"error":"invalid_field","message":"field 'x'"}"#),
            TransportError::Rejected(m) if m.contains("field 'x'"))
        );
        assert!(matches!(f(503, "down"), TransportError::Unavailable(m) if m.contains("down")));
        assert!(matches!(f(429, ""), TransportError::Unavailable(_)));
        assert!(matches!(f(302, ""), TransportError::Protocol(_)));
        assert!(
            HttpFailure::parse(404, br#"{"error":"unknown_executor","message":"m"}"#)
                .is_unknown_executor()
        );
    }
}
