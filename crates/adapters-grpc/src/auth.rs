//! Bearer tokens on every call (executor side) and their verification (engine side).

use std::sync::Arc;

use gamelan_ports::{TokenSource, TokenVerifier};
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::{Request, Status};

const AUTHORIZATION: &str = "authorization";

/// Asks the token source on every call, so a refreshed token is picked up without reconnecting.
#[derive(Clone)]
pub(crate) struct BearerInterceptor(pub Arc<dyn TokenSource>);

impl Interceptor for BearerInterceptor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(token) = self.0.bearer() {
            let value = MetadataValue::try_from(format!("Bearer {token}")).map_err(|_| {
                Status::unauthenticated("bearer token contains characters not allowed in metadata")
            })?;
            request.metadata_mut().insert(AUTHORIZATION, value);
        }
        Ok(request)
    }
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
