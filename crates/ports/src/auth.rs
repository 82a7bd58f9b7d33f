//! Authentication as a port, so every transport carries the same tokens without the
//! adapters knowing how they are minted or checked (the app implements both with JWT).

/// Executor side: yields the bearer token to attach to each request (`authorization: Bearer
/// <token>`), refreshed by the implementation before it expires. `None` = send none.
pub trait TokenSource: Send + Sync {
    fn bearer(&self) -> Option<String>;
}

/// No authentication configured.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoToken;

impl TokenSource for NoToken {
    fn bearer(&self) -> Option<String> {
        None
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token (send 'authorization: Bearer <jwt>')")]
    Missing,
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token expired")]
    Expired,
    /// `nbf` (not before) lies in the future, beyond the tolerated clock skew (RFC 7519 4.1.5).
    #[error("token not valid yet (nbf is in the future)")]
    NotYetValid,
    /// A claim the verifier requires (`exp`, `iss`) is absent.
    #[error("missing required claim {0}")]
    MissingClaim(String),
    /// Signed (or not signed: `none`) with an algorithm other than the accepted ones.
    #[error("algorithm {found} not accepted (accepted: {accepted})")]
    AlgorithmNotAccepted { found: String, accepted: String },
    #[error("token issuer '{found}' is not the expected '{expected}'")]
    WrongIssuer { expected: String, found: String },
}

/// Engine side: checks the raw `authorization` header value of a request.
pub trait TokenVerifier: Send + Sync {
    /// `Ok(subject)` (possibly empty) when the request may proceed.
    fn verify(&self, authorization: Option<&str>) -> Result<String, AuthError>;
}

/// Accepts everything: the engine runs without JWT configured.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl TokenVerifier for AllowAll {
    fn verify(&self, _: Option<&str>) -> Result<String, AuthError> {
        Ok(String::new())
    }
}
