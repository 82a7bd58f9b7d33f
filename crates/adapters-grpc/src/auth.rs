//! Bearer tokens on every call and their verification: executors authenticate to the engine,
//! and with push delivery the engine authenticates to the executor's push server.

use std::sync::Arc;

use gamelan_ports::{TokenSource, TokenVerifier};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::service::Interceptor;
use tonic::{Request, Status};

const AUTHORIZATION: &str = "authorization";

/// Asks the token source on every call, so a refreshed token is picked up without reconnecting.
#[derive(Clone)]
pub(crate) struct BearerInterceptor(pub Arc<dyn TokenSource>);

impl Interceptor for BearerInterceptor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        attach_bearer(self.0.as_ref(), request.metadata_mut())?;
        Ok(request)
    }
}

/// Sets `authorization: Bearer <token>` when the source yields a token.
pub(crate) fn attach_bearer(
    source: &dyn TokenSource,
    metadata: &mut MetadataMap,
) -> Result<(), Status> {
    if let Some(token) = source.bearer() {
        let value = MetadataValue::try_from(format!("Bearer {token}")).map_err(|_| {
            Status::unauthenticated("bearer token contains characters not allowed in metadata")
        })?;
        metadata.insert(AUTHORIZATION, value);
    }
    Ok(())
}

/// Refuses a call before it reaches the service, with the verifier's reason as the message.
#[derive(Clone)]
pub(crate) struct VerifyInterceptor(pub Arc<dyn TokenVerifier>);

impl Interceptor for VerifyInterceptor {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let header = request
            .metadata()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match self.0.verify(header) {
            Ok(_) => Ok(request),
            Err(e) => Err(Status::unauthenticated(e.to_string())),
        }
    }
}
