//! The token check in front of the protected routes; runs before any body is read, so an
//! unauthenticated client cannot make the server buffer or parse anything.

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gamelan_ports::AuthError;

use super::Shared;
use super::error::ApiError;

pub(crate) async fn require_token(
    State(state): State<Shared>,
    req: Request,
    next: Next,
) -> Response {
    let verdict = match req.headers().get(header::AUTHORIZATION) {
        None => state.settings.verifier.verify(None),
        Some(value) => match value.to_str() {
            Ok(text) => state.settings.verifier.verify(Some(text)),
            Err(_) => Err(AuthError::Malformed(
                "authorization header is not visible ASCII".to_owned(),
            )),
        },
    };
    match verdict {
        Ok(_) => next.run(req).await,
        Err(e) => ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", e.to_string())
            .into_response(),
    }
}
