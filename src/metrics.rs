//! Prometheus metrics. Each instance owns its registry (no globals), so tests can run several
//! gateways in one process. Labels are bounded: routes are matched paths, events are operator
//! defined (an event id a client made up is never a label), people never appear.
//!
//! Two kinds of per-event figures:
//! - counters of what this instance did (joins, admissions, ...): sum them over instances;
//! - gauges read from the shared store each sweep (waiting, active, door rate, outflow): every
//!   instance reports the same value, so take `max` over instances.

use prometheus::core::Collector;
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Latency buckets (seconds): dense below 10 ms, where status and join should live, then
/// coarse up to the 10 s request timeout.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.004, 0.006, 0.008, 0.010, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Time-in-queue buckets (seconds): from "walked straight in" to a two-hour wait.
const QUEUE_TIME_BUCKETS: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0,
];

/// The label used when a request names an event the store does not know.
pub const UNKNOWN_EVENT: &str = "-";

/// The reasons a join or an enter is refused for most often (API error codes): each known
/// event has a `vestibule_rejections_total` series at 0 for them from the start, so a panel or
/// an alert on a reason tells "none yet" from "no gateway".
pub const REJECTION_REASONS: &[&str] = &[
    "event_closed",
    "event_not_open",
    "queue_full",
    "rate_limited",
    "not_ready",
    "evicted",
    "left",
    "admission_expired",
    "invalid_ticket",
    "unavailable",
];

/// The gateway's metrics.
pub struct Metrics {
    registry: Registry,
    /// The names of every registered family (see [`Metrics::names`]).
    described: std::sync::Mutex<Vec<String>>,
    /// HTTP requests by matched route, method and status.
    pub http_requests: IntCounterVec,
    /// HTTP latency by matched route and method.
    pub http_latency: HistogramVec,
    /// New places taken through this instance, per event.
    pub joins: IntCounterVec,
    /// Requests refused, per event and reason (the error code).
    pub rejections: IntCounterVec,
    /// Status polls answered (including stream refreshes), per event.
    pub status_polls: IntCounterVec,
    /// People let in through this instance, per event.
    pub admitted: IntCounterVec,
    /// Time from join to admission, per event.
    pub time_in_queue: HistogramVec,
    /// People who left through this instance, per event.
    pub left: IntCounterVec,
    /// Admissions redeemed through this instance, per event.
    pub redeemed: IntCounterVec,
    /// Ghosts evicted by this instance's sweeper, per event.
    pub evicted: IntCounterVec,
    /// People waiting, per event (store, as of the last sweep).
    pub queue_waiting: IntGaugeVec,
    /// Live admitted sessions, per event (store, as of the last sweep).
    pub active: IntGaugeVec,
    /// The `max_active` valve, per event.
    pub max_active: IntGaugeVec,
    /// The door's configured rate now (0 unless the event is open), per event.
    pub door_rate: GaugeVec,
    /// People actually let in per second over the last minute, per event.
    pub outflow: GaugeVec,
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
}

fn int_gauge(name: &str, help: &str) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), &["event"]).expect("valid metric")
}

fn gauge(name: &str, help: &str) -> GaugeVec {
    GaugeVec::new(Opts::new(name, help), &["event"]).expect("valid metric")
}

impl Metrics {
    /// Registers every metric, and the store's own, in a fresh registry.
    pub fn new(store_collectors: Vec<Box<dyn Collector>>) -> Self {
        let ev = &["event"];
        let metrics = Self {
            registry: Registry::new(),
            described: Default::default(),
            http_requests: counter(
                "vestibule_http_requests_total",
                "HTTP requests answered, by matched route, method and status code.",
                &["route", "method", "status"],
            ),
            http_latency: HistogramVec::new(
                HistogramOpts::new(
                    "vestibule_http_request_duration_seconds",
                    "Time from request to response head, by matched route and method.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["route", "method"],
            )
            .expect("valid metric"),
            joins: counter(
                "vestibule_joins_total",
                "New places taken in the queue through this instance.",
                ev,
            ),
            rejections: counter(
                "vestibule_rejections_total",
                "Joins and enters refused, by reason (the API error code); event '-' when the event is unknown.",
                &["event", "reason"],
            ),
            status_polls: counter(
                "vestibule_status_polls_total",
                "Status answers given through this instance (polls and stream refreshes).",
                ev,
            ),
            admitted: counter(
                "vestibule_admitted_total",
                "People let in (admissions issued) through this instance.",
                ev,
            ),
            time_in_queue: HistogramVec::new(
                HistogramOpts::new(
                    "vestibule_time_in_queue_seconds",
                    "Time from joining the queue to being let in.",
                )
                .buckets(QUEUE_TIME_BUCKETS.to_vec()),
                ev,
            )
            .expect("valid metric"),
            left: counter(
                "vestibule_left_total",
                "People who left the queue on their own through this instance.",
                ev,
            ),
            redeemed: counter(
                "vestibule_redeemed_total",
                "Admissions redeemed by the sale backend through this instance.",
                ev,
            ),
            evicted: counter(
                "vestibule_evicted_total",
                "Ghosts (people who stopped polling) evicted by this instance's sweeper.",
                ev,
            ),
            queue_waiting: int_gauge(
                "vestibule_queue_waiting",
                "People waiting in the queue (not evicted, admitted or left); from the store, same on every instance.",
            ),
            active: int_gauge(
                "vestibule_active_sessions",
                "Admitted sessions live (neither redeemed nor expired); from the store, same on every instance.",
            ),
            max_active: int_gauge(
                "vestibule_max_active",
                "The max_active valve: most admitted sessions live at once.",
            ),
            door_rate: gauge(
                "vestibule_door_rate",
                "People per second the door releases now (the admission_rate valve; 0 unless the event is open).",
            ),
            outflow: gauge(
                "vestibule_outflow_per_second",
                "People actually let in per second, measured over the last minute; from the store.",
            ),
        };
        let own: Vec<Box<dyn Collector>> = vec![
            Box::new(metrics.http_requests.clone()),
            Box::new(metrics.http_latency.clone()),
            Box::new(metrics.joins.clone()),
            Box::new(metrics.rejections.clone()),
            Box::new(metrics.status_polls.clone()),
            Box::new(metrics.admitted.clone()),
            Box::new(metrics.time_in_queue.clone()),
            Box::new(metrics.left.clone()),
            Box::new(metrics.redeemed.clone()),
            Box::new(metrics.evicted.clone()),
            Box::new(metrics.queue_waiting.clone()),
            Box::new(metrics.active.clone()),
            Box::new(metrics.max_active.clone()),
            Box::new(metrics.door_rate.clone()),
            Box::new(metrics.outflow.clone()),
        ];
        for collector in own.into_iter().chain(store_collectors) {
            metrics.register(collector).expect("unique metric");
        }
        // Refused before any event is known: there from the start.
        for reason in ["rate_limited", "event_not_found"] {
            metrics
                .rejections
                .with_label_values(&[UNKNOWN_EVENT, reason]);
        }
        metrics
    }

    /// Registers more collectors (the worker's, when it runs in process).
    pub fn register(&self, collector: Box<dyn Collector>) -> prometheus::Result<()> {
        let names: Vec<String> = collector.desc().iter().map(|d| d.fq_name.clone()).collect();
        self.registry.register(collector)?;
        self.described
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(names);
        Ok(())
    }

    /// The name of every metric family registered, whether or not it has samples yet (the
    /// text format omits families without any): what dashboards and alerts may refer to.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .registry
            .gather()
            .iter()
            .map(|family| family.name().to_owned())
            .collect();
        names.extend(
            self.described
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .cloned(),
        );
        names.sort();
        names.dedup();
        names
    }

    /// Gives a known event every per-event counter and histogram at 0 (called by the sweeper
    /// for each event it finds), as Prometheus advises: a series that appears only with its
    /// first increment is invisible to `rate()` and `increase()` for that increment, and its
    /// absence cannot be told from an instance that is down.
    pub fn know_event(&self, event: &str) {
        let label = [event];
        for counter in [
            &self.joins,
            &self.status_polls,
            &self.admitted,
            &self.left,
            &self.redeemed,
            &self.evicted,
        ] {
            counter.with_label_values(&label);
        }
        self.time_in_queue.with_label_values(&label);
        for reason in REJECTION_REASONS {
            self.rejections.with_label_values(&[event, reason]);
        }
    }

    /// Counts a refused request.
    pub fn reject(&self, event: &str, reason: &str) {
        self.rejections.with_label_values(&[event, reason]).inc();
    }

    /// Forgets an event's per-event series (it no longer exists).
    pub fn forget_event(&self, event: &str) {
        for gauge in [&self.queue_waiting, &self.active, &self.max_active] {
            let _ = gauge.remove_label_values(&[event]);
        }
        for gauge in [&self.door_rate, &self.outflow] {
            let _ = gauge.remove_label_values(&[event]);
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
