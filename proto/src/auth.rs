//! The credential of the internal services (`Cluster`, `Admin`): a shared token sent as
//! `authorization: Bearer <token>` on every call. The operator and the shard-servers read it
//! from the same file (a Kubernetes Secret mounted into their pods).

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// The metadata key carrying the token.
pub const AUTHORIZATION: &str = "authorization";
/// What precedes the token in the metadata value.
pub const BEARER: &str = "Bearer ";

/// Adds the internal token to every call of a client.
#[derive(Clone)]
pub struct BearerToken {
    value: MetadataValue<Ascii>,
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(..)")
    }
}

impl BearerToken {
    /// The interceptor for `token`; `None` if it cannot be sent as metadata (not visible ASCII).
    pub fn new(token: &str) -> Option<Self> {
        let mut value: MetadataValue<Ascii> = format!("{BEARER}{token}").parse().ok()?;
        value.set_sensitive(true);
        Some(Self { value })
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request.metadata_mut().insert(AUTHORIZATION, self.value.clone());
        Ok(request)
    }
}
