//! Prometheus metrics. Each instance owns its registry (no globals), so tests can run several
//! gateways in one process. Labels are bounded: routes are matched paths, events are operator
//! defined, people never appear.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Latency buckets (seconds): dense below 10 ms, where status and join should live, then
/// coarse up to the 10 s request timeout.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.004, 0.006, 0.008, 0.010, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The gateway's metrics.
pub struct Metrics {
    registry: Registry,
    /// HTTP requests by matched route, method and status.
    pub http_requests: IntCounterVec,
    /// HTTP latency by matched route and method.
    pub http_latency: HistogramVec,
    /// People waiting per event, as of the last sweep.
    pub queue_waiting: IntGaugeVec,
    /// Ghosts evicted per event by this instance's sweeper.
    pub evicted: IntCounterVec,
    /// Live admitted sessions per event, as of the last sweep.
    pub active: IntGaugeVec,
}

impl Metrics {
    /// Registers every metric in a fresh registry.
    pub fn new() -> Self {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "vestibule_http_requests_total",
                "HTTP requests answered, by matched route, method and status code.",
            ),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let http_latency = HistogramVec::new(
            HistogramOpts::new(
                "vestibule_http_request_duration_seconds",
                "Time from request to response head, by matched route and method.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route", "method"],
        )
        .expect("valid metric");
        let queue_waiting = IntGaugeVec::new(
            Opts::new(
                "vestibule_queue_waiting",
                "People waiting in the event's queue (not evicted, admitted or left), as of the last sweep.",
            ),
            &["event"],
        )
        .expect("valid metric");
        let evicted = IntCounterVec::new(
            Opts::new(
                "vestibule_evicted_total",
                "Ghosts (people who stopped polling) evicted by this instance's sweeper.",
            ),
            &["event"],
        )
        .expect("valid metric");
        let active = IntGaugeVec::new(
            Opts::new(
                "vestibule_active_sessions",
                "Admitted sessions live (neither redeemed nor expired), as of the last sweep.",
            ),
            &["event"],
        )
        .expect("valid metric");
        for metric in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_latency.clone()),
            Box::new(queue_waiting.clone()),
            Box::new(evicted.clone()),
            Box::new(active.clone()),
        ] {
            registry.register(metric).expect("unique metric");
        }
        Self {
            registry,
            http_requests,
            http_latency,
            queue_waiting,
            evicted,
            active,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding gathered families into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
