//! The Shardline Kubernetes operator: `Stream` and `Consumer` custom resources
//! (`shardline.io/v1alpha1`), and the pure planning the reconcilers act on — where shards go
//! ([`placement`]), how a stream moves from one shard count to another ([`reshard`]), and
//! what its status says ([`status`]).

pub mod children;
pub mod crd;
pub mod placement;
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
