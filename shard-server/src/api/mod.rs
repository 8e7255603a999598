//! The network fronts of the data plane. Each is a thin translation onto [`crate::node`].

pub mod kinesis;
