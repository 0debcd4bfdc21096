//! The figures: latency histograms and error counts by endpoint, and a per-second timeline.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::api::{Endpoint, Exchange};

/// Latencies are recorded in microseconds, from 1 µs to 60 s, with 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant, valid histogram bounds")
}

/// The figures of one endpoint.
pub struct EndpointStats {
    latency: Histogram<u64>,
    errors: BTreeMap<(u16, String), u64>,
}

impl Default for EndpointStats {
    fn default() -> Self {
        Self {
            latency: histogram(),
            errors: BTreeMap::new(),
        }
    }
}

/// One second of the run.
pub struct Second {
    requests: BTreeMap<Endpoint, u64>,
    latency: BTreeMap<Endpoint, Histogram<u64>>,
    /// People the crowd knows to be alive at the end of this second.
    pub alive: Option<u64>,
    /// The server's `waiting` figure, when the admin API was available.
    pub server_waiting: Option<u64>,
}

/// Everything measured.
pub struct Stats {
    start: Instant,
    endpoints: BTreeMap<Endpoint, EndpointStats>,
    timeline: Vec<Second>,
    late_polls: u64,
    max_lateness: Duration,
}

impl Stats {
    /// Figures of a run that started at `start`.
    pub fn new(start: Instant) -> Self {
        Self {
            start,
            endpoints: BTreeMap::new(),
            timeline: Vec::new(),
            late_polls: 0,
            max_lateness: Duration::ZERO,
        }
    }

    fn second(&mut self, at: Instant) -> &mut Second {
        let index = at.saturating_duration_since(self.start).as_secs() as usize;
        while self.timeline.len() <= index {
            self.timeline.push(Second {
                requests: BTreeMap::new(),
                latency: BTreeMap::new(),
                alive: None,
                server_waiting: None,
            });
        }
        &mut self.timeline[index]
    }

    /// Records one request.
    pub fn record(&mut self, endpoint: Endpoint, exchange: &Exchange) {
        let micros = (exchange.latency().as_micros() as u64).clamp(1, 60_000_000);
        let stats = self.endpoints.entry(endpoint).or_default();
        stats.latency.saturating_record(micros);
        if let Some(code) = &exchange.code {
            *stats
                .errors
                .entry((exchange.status, code.clone()))
                .or_default() += 1;
        }
        let second = self.second(exchange.received);
        *second.requests.entry(endpoint).or_default() += 1;
        second
            .latency
            .entry(endpoint)
            .or_insert_with(histogram)
            .saturating_record(micros);
    }

    /// A poll started later than the server asked: the crowd itself is saturated.
    pub fn late_poll(&mut self, by: Duration) {
        self.late_polls += 1;
        self.max_lateness = self.max_lateness.max(by);
    }

    /// Notes how many are alive at `at`.
    pub fn sample_alive(&mut self, at: Instant, alive: u64) {
        self.second(at).alive = Some(alive);
    }

    /// Notes the server's queue length at `at`.
    pub fn sample_server(&mut self, at: Instant, waiting: u64) {
        self.second(at).server_waiting = Some(waiting);
    }

    /// The figures by endpoint over `elapsed`.
    pub fn endpoints(&self, elapsed: Duration) -> Vec<EndpointReport> {
        let secs = elapsed.as_secs_f64().max(1e-9);
        self.endpoints
            .iter()
            .map(|(endpoint, s)| {
                let ms = |q: f64| s.latency.value_at_quantile(q) as f64 / 1000.0;
                EndpointReport {
                    endpoint: endpoint.name(),
                    requests: s.latency.len(),
                    per_sec: s.latency.len() as f64 / secs,
                    p50_ms: ms(0.50),
                    p95_ms: ms(0.95),
                    p99_ms: ms(0.99),
                    max_ms: s.latency.max() as f64 / 1000.0,
                    errors: s
                        .errors
                        .iter()
                        .map(|((status, code), count)| ErrorCount {
                            status: *status,
                            code: code.clone(),
                            count: *count,
                        })
                        .collect(),
                }
            })
            .collect()
    }

    /// Polls that started late, and the worst delay.
    pub fn lateness(&self) -> (u64, Duration) {
        (self.late_polls, self.max_lateness)
    }

    /// The per-second timeline.
    pub fn timeline(&self) -> Vec<Point> {
        self.timeline
            .iter()
            .enumerate()
            .map(|(t, s)| {
                let pct = |e: Endpoint, q: f64| {
                    s.latency
                        .get(&e)
                        .map(|h| h.value_at_quantile(q) as f64 / 1000.0)
                };
                let rps = |e: Endpoint| s.requests.get(&e).copied().unwrap_or(0);
                Point {
                    t: t as u64,
                    alive: s.alive,
                    server_waiting: s.server_waiting,
                    join_per_sec: rps(Endpoint::Join),
                    status_per_sec: rps(Endpoint::Status),
                    leave_per_sec: rps(Endpoint::Leave),
                    status_p50_ms: pct(Endpoint::Status, 0.50),
                    status_p95_ms: pct(Endpoint::Status, 0.95),
                    status_p99_ms: pct(Endpoint::Status, 0.99),
                    join_p99_ms: pct(Endpoint::Join, 0.99),
                }
            })
            .collect()
    }
}

/// The figures of one endpoint, for the report.
#[derive(Clone, Debug, Serialize)]
pub struct EndpointReport {
    /// `join`, `status` or `leave`.
    pub endpoint: &'static str,
    /// Requests answered (or failed).
    pub requests: u64,
    /// Requests per second over the whole run.
    pub per_sec: f64,
    /// Latency percentiles and maximum, in milliseconds.
    pub p50_ms: f64,
    #[allow(missing_docs)]
    pub p95_ms: f64,
    #[allow(missing_docs)]
    pub p99_ms: f64,
    #[allow(missing_docs)]
    pub max_ms: f64,
    /// Errors by HTTP status (0: no answer) and `error.code`.
    pub errors: Vec<ErrorCount>,
}

/// How often one error was answered.
#[derive(Clone, Debug, Serialize)]
pub struct ErrorCount {
    /// HTTP status, or 0 when there was no answer.
    pub status: u16,
    /// `error.code`, or `transport`/`timeout`.
    pub code: String,
    /// How many times.
    pub count: u64,
}

/// One second of the timeline.
#[derive(Clone, Debug, Serialize)]
#[allow(missing_docs)]
pub struct Point {
    /// Seconds since the start.
    pub t: u64,
    pub alive: Option<u64>,
    pub server_waiting: Option<u64>,
    pub join_per_sec: u64,
    pub status_per_sec: u64,
    pub leave_per_sec: u64,
    pub status_p50_ms: Option<f64>,
    pub status_p95_ms: Option<f64>,
    pub status_p99_ms: Option<f64>,
    pub join_p99_ms: Option<f64>,
}
