//! Stream settings that change no record: tags, enhanced monitoring, capacity mode, the
//! largest record size, and the account's limits.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::Node;
use crate::error::{Error, Result};
use crate::stream::{StreamMode, StreamStatus};
use crate::{monitoring, tags};

/// Most on-demand streams an account may have, as Kinesis reports it.
pub const ON_DEMAND_STREAM_LIMIT: u32 = 50;
/// Smallest and largest MaxRecordSizeInKiB.
pub const MAX_RECORD_SIZE_KIB_RANGE: (u32, u32) = (1024, 10240);

/// What DescribeLimits reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountLimits {
    /// The account's shard limit.
    pub shard_limit: u32,
    /// Open shards across all streams.
    pub open_shard_count: u64,
    /// Streams in ON_DEMAND mode.
    pub on_demand_stream_count: u32,
    /// Most ON_DEMAND streams allowed.
    pub on_demand_stream_count_limit: u32,
}

/// Enhanced monitoring before and after a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitoringChange {
    /// Metrics enabled before.
    pub current: BTreeSet<String>,
    /// Metrics enabled after.
    pub desired: BTreeSet<String>,
}

impl Node {
    /// A stream's tags, in key order.
    pub fn tags(&self, name: &str) -> Result<BTreeMap<String, String>> {
        Ok(self.catalog.get(name)?.def().tags.clone())
    }

    /// Adds or overwrites tags.
    pub fn add_tags(&self, name: &str, new: BTreeMap<String, String>) -> Result<()> {
        let stream = self.catalog.get(name)?;
        let account = self.config.account_id.clone();
        self.catalog.update(&stream, |def| tags::add(&mut def.tags, new, &def.name.clone(), &account))
    }

    /// Removes tags by key.
    pub fn remove_tags(&self, name: &str, keys: &[String]) -> Result<()> {
        let stream = self.catalog.get(name)?;
        let account = self.config.account_id.clone();
        self.catalog.update(&stream, |def| tags::remove(&mut def.tags, keys, &def.name.clone(), &account))
    }

    /// Turns shard-level metrics on (`enable`) or off.
    pub fn set_enhanced_monitoring(&self, name: &str, metrics: &[String], enable: bool) -> Result<MonitoringChange> {
        let stream = self.active_stream(name)?;
        let named = monitoring::expand(metrics);
        let mut change = None;
        self.catalog.update(&stream, |def| {
            let current = def.shard_level_metrics.clone();
            if enable {
                def.shard_level_metrics.extend(named);
            } else {
                def.shard_level_metrics.retain(|m| !named.contains(m));
            }
            change = Some(MonitoringChange { current, desired: def.shard_level_metrics.clone() });
            Ok(())
        })?;
        change.ok_or_else(|| Error::InvalidArgument("enhanced monitoring did not change".into()))
    }

    /// Switches the capacity mode; the stream is UPDATING for the transition time.
    pub fn set_stream_mode(self: &Arc<Self>, name: &str, mode: StreamMode) -> Result<()> {
        let stream = self.active_stream(name)?;
        self.standalone_only(name, "change its mode (spec.streamMode)")?;
        if stream.def().mode == mode {
            return Ok(());
        }
        self.catalog.update(&stream, |def| {
            def.mode = mode;
            def.status = StreamStatus::Updating;
            Ok(())
        })?;
        self.schedule_update_done(stream);
        Ok(())
    }

    /// Changes the largest record the stream accepts.
    pub fn set_max_record_size(self: &Arc<Self>, name: &str, kib: u32) -> Result<()> {
        let (min, max) = MAX_RECORD_SIZE_KIB_RANGE;
        if !(min..=max).contains(&kib) {
            return Err(Error::InvalidArgument(format!(
                "MaxRecordSizeInKiB must be between {min} and {max}; {kib} was requested."
            )));
        }
        let stream = self.active_stream(name)?;
        self.catalog.update(&stream, |def| {
            def.max_record_size_kib = kib;
            Ok(())
        })
    }

    /// Turns the stream's throughput limits on or off; `None` follows the server default.
    pub fn set_throughput_limits(&self, name: &str, limits: Option<bool>) -> Result<()> {
        let stream = self.catalog.get(name)?;
        self.catalog.update(&stream, |def| {
            def.throughput_limits = limits;
            Ok(())
        })
    }

    /// The account's limits and usage.
    pub fn limits(&self) -> AccountLimits {
        let on_demand = self.catalog.list().iter().filter(|s| s.def().mode == StreamMode::OnDemand).count();
        AccountLimits {
            shard_limit: self.config.shard_limit,
            open_shard_count: self.catalog.open_shard_count(),
            on_demand_stream_count: u32::try_from(on_demand).unwrap_or(u32::MAX),
            on_demand_stream_count_limit: ON_DEMAND_STREAM_LIMIT,
        }
    }
}
