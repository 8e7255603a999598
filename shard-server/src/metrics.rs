//! Prometheus metrics named after the Kinesis CloudWatch metrics, per stream, and per shard for
//! the shard-level metrics a stream has enabled with EnableEnhancedMonitoring; plus storage
//! metrics (bytes on disk, fsync batch size and latency). CloudWatch's dots become
//! underscores and names are snake case: `PutRecords.Latency` is
//! `shardline_kinesis_put_records_latency_seconds`.

use std::collections::BTreeSet;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// A stream's labels.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabels {
    /// Stream name.
    pub stream: String,
}

/// A shard's labels.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShardLabels {
    /// Stream name.
    pub stream: String,
    /// Shard id.
    pub shard: String,
}

/// What one read returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Read {
    /// Records.
    pub records: u64,
    /// Bytes of partition keys and data.
    pub bytes: u64,
    /// How far behind the tip the read was.
    pub iterator_age_ms: u64,
}

/// Which write operation a put came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOp {
    /// PutRecord.
    PutRecord,
    /// PutRecords.
    PutRecords,
}

type StreamCounter = Family<StreamLabels, Counter>;
type StreamHistogram = Family<StreamLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 100 µs to about 13 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

/// Success and failure counts and latency of one operation, per stream.
#[derive(Debug)]
struct OperationMetrics {
    success: StreamCounter,
    failure: StreamCounter,
    latency: StreamHistogram,
}

impl OperationMetrics {
    fn new() -> Self {
        Self {
            success: Family::default(),
            failure: Family::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
        }
    }

    fn register(&self, registry: &mut Registry, name: &str, cloudwatch: &str) {
        registry.register(
            format!("{name}_success"),
            format!("{cloudwatch}.Success: calls that succeeded"),
            self.success.clone(),
        );
        registry.register(
            format!("{name}_failure"),
            format!("{cloudwatch}.Success: calls that failed"),
            self.failure.clone(),
        );
        registry.register(format!("{name}_latency_seconds"), format!("{cloudwatch}.Latency"), self.latency.clone());
    }

    fn observe(&self, labels: &StreamLabels, latency: Duration, ok: bool) {
        if ok {
            self.success.get_or_create(labels).inc();
        } else {
            self.failure.get_or_create(labels).inc();
        }
        self.latency.get_or_create(labels).observe(latency.as_secs_f64());
    }

    fn forget(&self, labels: &StreamLabels) {
        self.success.remove(labels);
        self.failure.remove(labels);
        self.latency.remove(labels);
    }
}

/// Every metric of one shard-server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    incoming_bytes: StreamCounter,
    incoming_records: StreamCounter,
    put_record: OperationMetrics,
    put_record_bytes: StreamCounter,
    put_records: OperationMetrics,
    put_records_bytes: StreamCounter,
    put_records_total_records: StreamCounter,
    put_records_successful_records: StreamCounter,
    put_records_throttled_records: StreamCounter,
    get_records: OperationMetrics,
    get_records_bytes: StreamCounter,
    get_records_records: StreamCounter,
    get_records_iterator_age: Family<StreamLabels, Gauge>,
    write_throttled: StreamCounter,
    read_throttled: StreamCounter,
    subscribe_success: StreamCounter,
    subscribe_failure: StreamCounter,
    subscribe_event_bytes: StreamCounter,
    subscribe_event_records: StreamCounter,
    subscribe_millis_behind: Family<StreamLabels, Gauge>,
    shard_incoming_bytes: Family<ShardLabels, Counter>,
    shard_incoming_records: Family<ShardLabels, Counter>,
    shard_outgoing_bytes: Family<ShardLabels, Counter>,
    shard_outgoing_records: Family<ShardLabels, Counter>,
    shard_write_throttled: Family<ShardLabels, Counter>,
    shard_read_throttled: Family<ShardLabels, Counter>,
    shard_iterator_age: Family<ShardLabels, Gauge>,
    fsync_latency: Histogram,
    fsync_batch_records: Histogram,
    disk_bytes: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric under the `shardline` prefix.
    pub fn new() -> Self {
        let mut metrics = Self {
            registry: Registry::with_prefix("shardline"),
            incoming_bytes: Family::default(),
            incoming_records: Family::default(),
            put_record: OperationMetrics::new(),
            put_record_bytes: Family::default(),
            put_records: OperationMetrics::new(),
            put_records_bytes: Family::default(),
            put_records_total_records: Family::default(),
            put_records_successful_records: Family::default(),
            put_records_throttled_records: Family::default(),
            get_records: OperationMetrics::new(),
            get_records_bytes: Family::default(),
            get_records_records: Family::default(),
            get_records_iterator_age: Family::default(),
            write_throttled: Family::default(),
            read_throttled: Family::default(),
            subscribe_success: Family::default(),
            subscribe_failure: Family::default(),
            subscribe_event_bytes: Family::default(),
            subscribe_event_records: Family::default(),
            subscribe_millis_behind: Family::default(),
            shard_incoming_bytes: Family::default(),
            shard_incoming_records: Family::default(),
            shard_outgoing_bytes: Family::default(),
            shard_outgoing_records: Family::default(),
            shard_write_throttled: Family::default(),
            shard_read_throttled: Family::default(),
            shard_iterator_age: Family::default(),
            fsync_latency: latency_histogram(),
            fsync_batch_records: Histogram::new(exponential_buckets(1.0, 2.0, 16)),
            disk_bytes: Gauge::default(),
        };
        metrics.register();
        metrics
    }

    fn register(&mut self) {
        let r = self.registry.sub_registry_with_prefix("kinesis");
        r.register("incoming_bytes", "IncomingBytes: bytes put to the stream", self.incoming_bytes.clone());
        r.register("incoming_records", "IncomingRecords: records put to the stream", self.incoming_records.clone());
        self.put_record.register(r, "put_record", "PutRecord");
        r.register("put_record_bytes", "PutRecord.Bytes", self.put_record_bytes.clone());
        self.put_records.register(r, "put_records", "PutRecords");
        r.register("put_records_bytes", "PutRecords.Bytes", self.put_records_bytes.clone());
        r.register("put_records_total_records", "PutRecords.TotalRecords", self.put_records_total_records.clone());
        r.register(
            "put_records_successful_records",
            "PutRecords.SuccessfulRecords",
            self.put_records_successful_records.clone(),
        );
        r.register(
            "put_records_throttled_records",
            "PutRecords.ThrottledRecords",
            self.put_records_throttled_records.clone(),
        );
        self.get_records.register(r, "get_records", "GetRecords");
        r.register("get_records_bytes", "GetRecords.Bytes", self.get_records_bytes.clone());
        r.register("get_records_records", "GetRecords.Records", self.get_records_records.clone());
        r.register(
            "get_records_iterator_age_milliseconds",
            "GetRecords.IteratorAgeMilliseconds of the latest call",
            self.get_records_iterator_age.clone(),
        );
        r.register(
            "write_provisioned_throughput_exceeded",
            "WriteProvisionedThroughputExceeded: records refused for throughput",
            self.write_throttled.clone(),
        );
        r.register(
            "read_provisioned_throughput_exceeded",
            "ReadProvisionedThroughputExceeded: GetRecords calls refused for throughput",
            self.read_throttled.clone(),
        );
        r.register(
            "subscribe_to_shard_success",
            "SubscribeToShard.Success: subscriptions opened",
            self.subscribe_success.clone(),
        );
        r.register(
            "subscribe_to_shard_failure",
            "SubscribeToShard.Success: subscriptions refused",
            self.subscribe_failure.clone(),
        );
        r.register("subscribe_to_shard_event_bytes", "SubscribeToShardEvent.Bytes", self.subscribe_event_bytes.clone());
        r.register(
            "subscribe_to_shard_event_records",
            "SubscribeToShardEvent.Records",
            self.subscribe_event_records.clone(),
        );
        r.register(
            "subscribe_to_shard_event_millis_behind_latest",
            "SubscribeToShardEvent.MillisBehindLatest of the latest event",
            self.subscribe_millis_behind.clone(),
        );
        r.register(
            "shard_incoming_bytes",
            "IncomingBytes per shard (enhanced monitoring)",
            self.shard_incoming_bytes.clone(),
        );
        r.register(
            "shard_incoming_records",
            "IncomingRecords per shard (enhanced monitoring)",
            self.shard_incoming_records.clone(),
        );
        r.register(
            "shard_outgoing_bytes",
            "OutgoingBytes per shard (enhanced monitoring)",
            self.shard_outgoing_bytes.clone(),
        );
        r.register(
            "shard_outgoing_records",
            "OutgoingRecords per shard (enhanced monitoring)",
            self.shard_outgoing_records.clone(),
        );
        r.register(
            "shard_write_provisioned_throughput_exceeded",
            "WriteProvisionedThroughputExceeded per shard (enhanced monitoring)",
            self.shard_write_throttled.clone(),
        );
        r.register(
            "shard_read_provisioned_throughput_exceeded",
            "ReadProvisionedThroughputExceeded per shard (enhanced monitoring)",
            self.shard_read_throttled.clone(),
        );
        r.register(
            "shard_iterator_age_milliseconds",
            "IteratorAgeMilliseconds per shard (enhanced monitoring)",
            self.shard_iterator_age.clone(),
        );
        let st = self.registry.sub_registry_with_prefix("storage");
        st.register("fsync_latency_seconds", "Time of one group-commit write with fsync", self.fsync_latency.clone());
        st.register("fsync_batch_records", "Records made durable by one fsync", self.fsync_batch_records.clone());
        st.register("disk_bytes", "Bytes of the data directory on disk", self.disk_bytes.clone());
    }

    fn stream(stream: &str) -> StreamLabels {
        StreamLabels { stream: stream.to_owned() }
    }

    /// A PutRecord or PutRecords call: `records` offered, `stored` stored, `throttled` refused
    /// for throughput, `bytes` of partition keys and data stored.
    #[allow(clippy::too_many_arguments)]
    pub fn put(
        &self,
        op: PutOp,
        stream: &str,
        records: u64,
        stored: u64,
        throttled: u64,
        bytes: u64,
        latency: Duration,
        ok: bool,
    ) {
        let labels = Self::stream(stream);
        if ok {
            self.incoming_bytes.get_or_create(&labels).inc_by(bytes);
            self.incoming_records.get_or_create(&labels).inc_by(stored);
        }
        self.write_throttled.get_or_create(&labels).inc_by(throttled);
        match op {
            PutOp::PutRecord => {
                self.put_record.observe(&labels, latency, ok && throttled == 0);
                self.put_record_bytes.get_or_create(&labels).inc_by(bytes);
            }
            PutOp::PutRecords => {
                self.put_records.observe(&labels, latency, ok);
                self.put_records_bytes.get_or_create(&labels).inc_by(bytes);
                self.put_records_total_records.get_or_create(&labels).inc_by(records);
                self.put_records_successful_records.get_or_create(&labels).inc_by(stored);
                self.put_records_throttled_records.get_or_create(&labels).inc_by(throttled);
            }
        }
    }

    /// Records stored in one shard; only the shard-level metrics in `enabled` are published.
    pub fn shard_incoming(&self, stream: &str, shard: &str, records: u64, bytes: u64, enabled: &BTreeSet<String>) {
        let labels = ShardLabels { stream: stream.to_owned(), shard: shard.to_owned() };
        if enabled.contains("IncomingBytes") {
            self.shard_incoming_bytes.get_or_create(&labels).inc_by(bytes);
        }
        if enabled.contains("IncomingRecords") {
            self.shard_incoming_records.get_or_create(&labels).inc_by(records);
        }
    }

    /// A record refused in one shard for throughput, if that shard-level metric is enabled.
    pub fn shard_write_throttled(&self, stream: &str, shard: &str, enabled: &BTreeSet<String>) {
        if enabled.contains("WriteProvisionedThroughputExceeded") {
            let labels = ShardLabels { stream: stream.to_owned(), shard: shard.to_owned() };
            self.shard_write_throttled.get_or_create(&labels).inc();
        }
    }

    /// A GetRecords call.
    pub fn get(&self, stream: &str, records: u64, bytes: u64, iterator_age_ms: u64, latency: Duration, ok: bool) {
        let labels = Self::stream(stream);
        self.get_records.observe(&labels, latency, ok);
        if ok {
            self.get_records_bytes.get_or_create(&labels).inc_by(bytes);
            self.get_records_records.get_or_create(&labels).inc_by(records);
            self.get_records_iterator_age
                .get_or_create(&labels)
                .set(i64::try_from(iterator_age_ms).unwrap_or(i64::MAX));
        }
    }

    /// A GetRecords call refused for throughput.
    pub fn read_throttled(&self, stream: &str, shard: Option<&str>) {
        self.read_throttled.get_or_create(&Self::stream(stream)).inc();
        if let Some(shard) = shard {
            let labels = ShardLabels { stream: stream.to_owned(), shard: shard.to_owned() };
            self.shard_read_throttled.get_or_create(&labels).inc();
        }
    }

    /// Records read from one shard (GetRecords or SubscribeToShard); only the shard-level
    /// metrics in `enabled` are published.
    pub fn shard_outgoing(&self, stream: &str, shard: &str, read: Read, enabled: &BTreeSet<String>) {
        let labels = ShardLabels { stream: stream.to_owned(), shard: shard.to_owned() };
        if enabled.contains("OutgoingBytes") {
            self.shard_outgoing_bytes.get_or_create(&labels).inc_by(read.bytes);
        }
        if enabled.contains("OutgoingRecords") {
            self.shard_outgoing_records.get_or_create(&labels).inc_by(read.records);
        }
        if enabled.contains("IteratorAgeMilliseconds") {
            let age = i64::try_from(read.iterator_age_ms).unwrap_or(i64::MAX);
            self.shard_iterator_age.get_or_create(&labels).set(age);
        }
    }

    /// A SubscribeToShard call opened (`ok`) or refused.
    pub fn subscribe(&self, stream: &str, ok: bool) {
        let labels = Self::stream(stream);
        if ok {
            self.subscribe_success.get_or_create(&labels).inc();
        } else {
            self.subscribe_failure.get_or_create(&labels).inc();
        }
    }

    /// One SubscribeToShardEvent pushed.
    pub fn subscribe_event(&self, stream: &str, records: u64, bytes: u64, millis_behind_latest: u64) {
        let labels = Self::stream(stream);
        self.subscribe_event_bytes.get_or_create(&labels).inc_by(bytes);
        self.subscribe_event_records.get_or_create(&labels).inc_by(records);
        self.subscribe_millis_behind
            .get_or_create(&labels)
            .set(i64::try_from(millis_behind_latest).unwrap_or(i64::MAX));
    }

    /// Drops every series of a deleted stream (the stream-level ones, and the shard-level ones
    /// of `shards`), so names that come and go never pile up in `/metrics`.
    pub fn forget_stream(&self, stream: &str, shards: impl IntoIterator<Item = String>) {
        let labels = Self::stream(stream);
        for family in [
            &self.incoming_bytes,
            &self.incoming_records,
            &self.put_record_bytes,
            &self.put_records_bytes,
            &self.put_records_total_records,
            &self.put_records_successful_records,
            &self.put_records_throttled_records,
            &self.get_records_bytes,
            &self.get_records_records,
            &self.write_throttled,
            &self.read_throttled,
            &self.subscribe_success,
            &self.subscribe_failure,
            &self.subscribe_event_bytes,
            &self.subscribe_event_records,
        ] {
            family.remove(&labels);
        }
        for operation in [&self.put_record, &self.put_records, &self.get_records] {
            operation.forget(&labels);
        }
        self.get_records_iterator_age.remove(&labels);
        self.subscribe_millis_behind.remove(&labels);
        for shard in shards {
            let labels = ShardLabels { stream: stream.to_owned(), shard };
            for family in [
                &self.shard_incoming_bytes,
                &self.shard_incoming_records,
                &self.shard_outgoing_bytes,
                &self.shard_outgoing_records,
                &self.shard_write_throttled,
                &self.shard_read_throttled,
            ] {
                family.remove(&labels);
            }
            self.shard_iterator_age.remove(&labels);
        }
    }

    /// One group commit: how many records it made durable and how long the write took.
    pub fn fsync(&self, records: u64, latency: Duration) {
        self.fsync_latency.observe(latency.as_secs_f64());
        self.fsync_batch_records.observe(records as f64);
    }

    /// Sets the data directory's size.
    pub fn set_disk_bytes(&self, bytes: u64) {
        self.disk_bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(err) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(cause = %err, "metrics encoding failed");
        }
        out
    }
}

/// Bytes of every file under `dir`.
pub fn dir_size(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_size(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_with_kinesis_names_and_stream_labels() {
        let metrics = Metrics::new();
        metrics.put(PutOp::PutRecords, "orders", 3, 2, 1, 30, Duration::from_millis(2), true);
        metrics.fsync(2, Duration::from_micros(500));
        let text = metrics.encode();
        assert!(text.contains(r#"shardline_kinesis_incoming_records_total{stream="orders"} 2"#), "{text}");
        assert!(text.contains(r#"shardline_kinesis_put_records_throttled_records_total{stream="orders"} 1"#));
        assert!(text.contains(r#"shardline_kinesis_write_provisioned_throughput_exceeded_total{stream="orders"} 1"#));
        assert!(text.contains("shardline_storage_fsync_batch_records_count 1"));
    }
}
