//! The operator's Prometheus metrics: reconciles, failures and their duration, per controller.

use std::sync::Arc;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of every operator metric.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabel {
    /// `stream` or `consumer`.
    pub controller: String,
}

/// Labels of a consumer's lag.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConsumerLabel {
    /// Namespace of the Consumer resource.
    pub namespace: String,
    /// Its name.
    pub consumer: String,
}

/// The metrics and their registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    reconciles: Family<ControllerLabel, Counter>,
    failures: Family<ControllerLabel, Counter>,
    duration: Family<ControllerLabel, Histogram>,
    lag_records: Family<ConsumerLabel, Gauge>,
    lag_millis: Family<ConsumerLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers the operator's metrics.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("shardline_operator");
        let reconciles = Family::<ControllerLabel, Counter>::default();
        let failures = Family::<ControllerLabel, Counter>::default();
        let duration = Family::<ControllerLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 14))
        });
        registry.register("reconciles", "Reconcile passes run", reconciles.clone());
        registry.register("reconcile_failures", "Reconcile passes that failed", failures.clone());
        registry.register("reconcile_duration_seconds", "Time one reconcile pass took", duration.clone());
        let lag_records = Family::<ConsumerLabel, Gauge>::default();
        let lag_millis = Family::<ConsumerLabel, Gauge>::default();
        registry.register(
            "consumer_lag_records",
            "Records a Consumer's application has not checkpointed",
            lag_records.clone(),
        );
        registry.register(
            "consumer_lag_milliseconds",
            "Age of a Consumer's oldest unprocessed record relative to its shard's tip",
            lag_millis.clone(),
        );
        Self { registry: Arc::new(registry), reconciles, failures, duration, lag_records, lag_millis }
    }

    /// Starts timing one pass of `controller`.
    pub fn start(&self, controller: &str) -> Pass {
        let label = ControllerLabel { controller: controller.to_owned() };
        self.reconciles.get_or_create(&label).inc();
        Pass { metrics: self.clone(), label, started: Instant::now() }
    }

    /// Counts a failed pass of `controller`.
    pub fn failed(&self, controller: &str) {
        self.failures.get_or_create(&ControllerLabel { controller: controller.to_owned() }).inc();
    }

    /// Records a consumer's lag.
    pub fn consumer_lag(&self, namespace: &str, consumer: &str, records: u64, millis: u64) {
        let label = ConsumerLabel { namespace: namespace.to_owned(), consumer: consumer.to_owned() };
        self.lag_records.get_or_create(&label).set(i64::try_from(records).unwrap_or(i64::MAX));
        self.lag_millis.get_or_create(&label).set(i64::try_from(millis).unwrap_or(i64::MAX));
    }

    /// Forgets a deleted consumer's lag.
    pub fn forget_consumer(&self, namespace: &str, consumer: &str) {
        let label = ConsumerLabel { namespace: namespace.to_owned(), consumer: consumer.to_owned() };
        self.lag_records.remove(&label);
        self.lag_millis.remove(&label);
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// One timed reconcile pass; records its duration when dropped.
#[derive(Debug)]
pub struct Pass {
    metrics: Metrics,
    label: ControllerLabel,
    started: Instant,
}

impl Drop for Pass {
    fn drop(&mut self) {
        self.metrics.duration.get_or_create(&self.label).observe(self.started.elapsed().as_secs_f64());
    }
}
