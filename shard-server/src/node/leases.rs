//! Consumer applications' leases on the node: the lease table kept in step with each stream's
//! shard map.

use super::Node;
use crate::error::{Error, Result};
use crate::lease::{is_application_name, Checkpoint, Lease, LeaseChange};

impl Node {
    fn check_application(application: &str) -> Result<()> {
        if is_application_name(application) {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!(
                "Application name '{application}' must match [a-zA-Z0-9_.-]+ and have 1 to 256 characters."
            )))
        }
    }

    /// An application's leases on a stream, one per listed shard (missing ones are created:
    /// root shards at `initial`, children at TRIM_HORIZON).
    pub fn leases(&self, application: &str, stream_name: &str, initial: &Checkpoint) -> Result<Vec<Lease>> {
        Self::check_application(application)?;
        let stream = self.readable_stream(stream_name)?;
        let def = stream.def().clone();
        self.leases.sync(application, &def, self.now_ms(), initial)
    }

    /// Changes one lease if its counter is still `expected_counter`.
    pub fn update_lease(
        &self,
        application: &str,
        stream_name: &str,
        shard: &str,
        expected_counter: u64,
        change: LeaseChange,
    ) -> Result<Lease> {
        Self::check_application(application)?;
        let index = self.shard_index(stream_name, shard)?;
        self.leases.update(application, stream_name, index, expected_counter, change)
    }

    /// Deletes every lease of an application.
    pub fn delete_application(&self, application: &str) -> Result<usize> {
        Self::check_application(application)?;
        self.leases.delete_application(application)
    }
}
