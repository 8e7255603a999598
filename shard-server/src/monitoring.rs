//! Enhanced monitoring: which shard-level metrics a stream publishes, by CloudWatch name.

use std::collections::BTreeSet;

/// Every shard-level metric Kinesis knows; `ALL` stands for these.
pub const SHARD_LEVEL_METRICS: [&str; 7] = [
    "IncomingBytes",
    "IncomingRecords",
    "OutgoingBytes",
    "OutgoingRecords",
    "WriteProvisionedThroughputExceeded",
    "ReadProvisionedThroughputExceeded",
    "IteratorAgeMilliseconds",
];

/// The metric names a request's list stands for, with `ALL` expanded.
pub fn expand(names: &[String]) -> BTreeSet<String> {
    if names.iter().any(|n| n == "ALL") {
        SHARD_LEVEL_METRICS.iter().map(|&n| n.to_owned()).collect()
    } else {
        names.iter().filter(|n| SHARD_LEVEL_METRICS.contains(&n.as_str())).cloned().collect()
    }
}
