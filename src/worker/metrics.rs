//! The worker's Prometheus metrics, in their own registry: served on the gateway's `/metrics`
//! when the worker runs in process (`vestibule run`), and on the worker's own `/metrics`
//! listener for `vestibule worker`. Every series is labelled by event (operator defined); an
//! event's counters are at 0 from the first time a worker looks at its stream.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Seconds from a reservation's 202 to its result: most should settle within tens of ms;
/// the tail covers retries with backoff and reclaims after a worker died.
const SETTLE_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The reasons a reservation is rejected for (the `reason` label of `rejected`).
pub const REJECTION_REASONS: &[&str] = &["sold_out", "invalid_sku", "failed"];

/// Seconds one batch takes, from read to results written.
const BATCH_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// The worker's metrics.
pub struct WorkerMetrics {
    registry: Registry,
    /// Every registered family's name (the text format omits families without samples).
    names: Vec<String>,
    /// Reservations whose result this worker wrote (confirmed or rejected).
    pub processed: IntCounterVec,
    /// Reservations confirmed.
    pub confirmed: IntCounterVec,
    /// Reservations rejected, by reason.
    pub rejected: IntCounterVec,
    /// Failed attempts left pending for a retry.
    pub retried: IntCounterVec,
    /// Entries moved to the dead-letter stream.
    pub dead_lettered: IntCounterVec,
    /// Entries not yet delivered to any worker.
    pub lag: IntGaugeVec,
    /// Entries delivered and not yet acknowledged.
    pub pending: IntGaugeVec,
    /// From 202 to the result written back.
    pub settle_seconds: HistogramVec,
    /// Batch duration.
    pub batch_seconds: HistogramVec,
}

impl WorkerMetrics {
    /// Registers every metric in a fresh registry.
    pub fn new() -> Self {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        let gauge = |name: &str, help: &str| {
            IntGaugeVec::new(Opts::new(name, help), &["event"]).expect("valid metric")
        };
        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            HistogramVec::new(
                HistogramOpts::new(name, help).buckets(buckets.to_vec()),
                &["event"],
            )
            .expect("valid metric")
        };
        let mut metrics = Self {
            registry: Registry::new(),
            names: Vec::new(),
            processed: counter(
                "vestibule_worker_processed_total",
                "Reservations whose result (confirmed or rejected) this worker wrote back.",
                &["event"],
            ),
            confirmed: counter(
                "vestibule_worker_confirmed_total",
                "Reservations confirmed: their stock was taken in the database.",
                &["event"],
            ),
            rejected: counter(
                "vestibule_worker_rejected_total",
                "Reservations rejected, by reason (sold_out, invalid_sku, failed).",
                &["event", "reason"],
            ),
            retried: counter(
                "vestibule_worker_retried_total",
                "Attempts that failed and were left pending for a retry with backoff.",
                &["event"],
            ),
            dead_lettered: counter(
                "vestibule_worker_dead_lettered_total",
                "Work entries given up after too many deliveries and moved to the dead-letter stream.",
                &["event"],
            ),
            lag: gauge(
                "vestibule_worker_stream_lag",
                "Reservations in the event's work stream not yet delivered to any worker.",
            ),
            pending: gauge(
                "vestibule_worker_stream_pending",
                "Reservations delivered to a worker and not yet acknowledged.",
            ),
            settle_seconds: histogram(
                "vestibule_worker_settle_seconds",
                "Time from a reservation's 202 to its result written back (store clock to worker clock).",
                SETTLE_BUCKETS,
            ),
            batch_seconds: histogram(
                "vestibule_worker_batch_seconds",
                "Time one batch takes, from reading the stream to writing results back.",
                BATCH_BUCKETS,
            ),
        };
        for metric in [
            Box::new(metrics.processed.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(metrics.confirmed.clone()),
            Box::new(metrics.rejected.clone()),
            Box::new(metrics.retried.clone()),
            Box::new(metrics.dead_lettered.clone()),
            Box::new(metrics.lag.clone()),
            Box::new(metrics.pending.clone()),
            Box::new(metrics.settle_seconds.clone()),
            Box::new(metrics.batch_seconds.clone()),
        ] {
            let names = metric.desc().into_iter().map(|d| d.fq_name.clone());
            metrics.names.extend(names);
            metrics.registry.register(metric).expect("unique metric");
        }
        metrics
    }

    /// Gives an event every counter and histogram at 0, so `rate()` and `increase()` see the
    /// first increment and a panel shows 0 rather than "No data" before the first reservation.
    pub fn know_event(&self, event: &str) {
        let label = [event];
        for counter in [
            &self.processed,
            &self.confirmed,
            &self.retried,
            &self.dead_lettered,
        ] {
            counter.with_label_values(&label);
        }
        for reason in REJECTION_REASONS {
            self.rejected.with_label_values(&[event, reason]);
        }
        self.settle_seconds.with_label_values(&label);
        self.batch_seconds.with_label_values(&label);
    }

    /// The name of every metric family, with or without samples: what dashboards may read.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding gathered families into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for WorkerMetrics {
    fn default() -> Self {
        Self::new()
    }
}
