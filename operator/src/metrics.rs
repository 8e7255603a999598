//! The operator's Prometheus metrics: reconciles, failures and their duration, per controller.

use std::sync::Arc;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of every operator metric.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabel {
    /// `stream` or `consumer`.
    pub controller: String,
}

/// The metrics and their registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    reconciles: Family<ControllerLabel, Counter>,
    failures: Family<ControllerLabel, Counter>,
    duration: Family<ControllerLabel, Histogram>,
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
        Self { registry: Arc::new(registry), reconciles, failures, duration }
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
