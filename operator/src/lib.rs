//! The Shardline Kubernetes operator: `Stream` and `Consumer` custom resources
//! (`shardline.io/v1alpha1`), the pure planning the reconcilers act on — where shards go
//! ([`placement`]), how a stream moves from one shard count to another ([`reshard`]), which
//! step comes next ([`decide`]), what its status says ([`status`]), how far a consumer lags
//! ([`lag`]) — and the reconcilers themselves ([`reconcile`]), talking to the shard-servers
//! through [`fleet`].

pub mod autoscale;
pub mod backoff;
pub mod children;
pub mod crd;
pub mod decide;
#[cfg(test)]
mod fixtures;
pub mod fleet;
pub mod lag;
pub mod leader;
pub mod metrics;
pub mod placement;
pub mod reconcile;
pub mod reshard;
pub mod status;

/// Errors of the operator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A CRD could not be rendered.
    #[error("cannot render CRD: {0}")]
    Render(#[from] serde_yaml::Error),
}

/// Result alias for the operator.
pub type Result<T, E = Error> = std::result::Result<T, E>;
