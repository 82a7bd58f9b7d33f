//! Extractors whose refusals are [`ApiError`]s: axum's own answer plain text with statuses
//! of their choosing, while every client of this API gets a JSON body naming the problem.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use super::Shared;
use super::decode;
use super::error::ApiError;
use super::object::Object;

/// The raw body, size-checked; the handler decodes it with [`decode`].
pub(crate) struct RawBody(pub Bytes);

pub(crate) struct ApiPath<T>(pub T);

pub(crate) struct ApiQuery<T>(pub T);

impl FromRequest<Shared> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Shared) -> Result<Self, Self::Rejection> {
        match Bytes::from_request(req, state).await {
            Ok(bytes) => Ok(Self(bytes)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!(
                        "request body exceeds the limit of {} bytes",
                        state.settings.max_body_bytes
                    ),
                ))
            }
            Err(rejection) => Err(ApiError::bad_request(
                "unreadable_body",
                rejection.body_text(),
            )),
        }
    }
}

impl<T: DeserializeOwned + Send> FromRequestParts<Shared> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Shared,
    ) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| Self(v))
            .map_err(|r| ApiError::bad_request("invalid_path", r.body_text()))
    }
}

impl<T: DeserializeOwned> FromRequestParts<Shared> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &Shared,
    ) -> Result<Self, Self::Rejection> {
        decode::query(&parts.uri).map(Self)
    }
}

/// Decodes one JSON document; syntax errors are `malformed_json`, shape errors
/// `invalid_field` with the path of the field (`[2].status`, `maxConcurrentTasks`). A
/// struct is read only from a JSON object (see [`Object`]).
///
/// The plain decoder goes first: tracking the path was 7 % of the engine's CPU time
/// on task batches, and only a failure needs it, so a failed body is decoded again with it.
pub(crate) fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if let Ok(Object(value)) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let Object(value) = serde_path_to_error::deserialize(&mut de).map_err(path_error)?;
    de.end().map_err(|e| {
        ApiError::bad_request(
            "malformed_json",
            format!("unexpected data after the JSON value: {e}"),
        )
    })?;
    Ok(value)
}

/// Decodes one already-parsed value (an element of a batch), naming the field on failure;
/// a struct only from an object.
pub(crate) fn decode_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, String> {
    serde_path_to_error::deserialize(value)
        .map(|Object(v)| v)
        .map_err(|e| describe(&e.path().to_string(), e.inner(), "element"))
}

fn path_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    match inner.classify() {
        Category::Data => {
            ApiError::bad_request("invalid_field", describe(&path, &inner, "request body"))
        }
        Category::Io | Category::Syntax | Category::Eof => ApiError::bad_request(
            "malformed_json",
            format!("request body is not valid JSON: {inner}"),
        ),
    }
}

/// Names the field at `path`, or `whole` when the value itself has the wrong shape.
fn describe(path: &str, inner: &serde_json::Error, whole: &str) -> String {
    if path == "." || path.is_empty() {
        format!("{whole}: {inner}")
    } else {
        format!("field '{path}': {inner}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Shape {
        #[allow(dead_code)]
        max_concurrent_tasks: u32,
    }

    #[test]
    fn errors_name_the_field_or_the_syntax_problem() {
        let e = decode_json::<Shape>(br#"{"maxConcurrentTasks":"ten"}"#).unwrap_err();
        assert_eq!(e.code, "invalid_field");
        assert!(e.message.contains("maxConcurrentTasks"), "{}", e.message);
        let e = decode_json::<Shape>(b"{}").unwrap_err();
        assert_eq!(e.code, "invalid_field");
        assert!(e.message.contains("maxConcurrentTasks"), "{}", e.message);
        let e = decode_json::<Shape>(b"{\"maxConc").unwrap_err();
        assert_eq!(e.code, "malformed_json");
        let e = decode_json::<Shape>(br#"{"maxConcurrentTasks":1} x"#).unwrap_err();
        assert_eq!(e.code, "malformed_json");
    }
}
