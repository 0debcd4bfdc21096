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
    /// Enters answered `200` for the first time for their person, this second.
    admitted: u64,
}

/// Everything measured.
pub struct Stats {
    start: Instant,
    endpoints: BTreeMap<Endpoint, EndpointStats>,
    timeline: Vec<Second>,
    late_polls: u64,
    max_lateness: Duration,
    /// Enter answers by HTTP status (0: no answer).
    enters: BTreeMap<u16, u64>,
    /// From the join's answer to the admission's, in microseconds.
    to_admission: Histogram<u64>,
    /// First and last admission answers.
    admissions: Option<(Instant, Instant)>,
    /// The server's `evicted_total` over time (with an admin token).
    evictions: Vec<(Instant, u64)>,
}

/// The door as the crowd saw it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DoorReport {
    /// The event's `admission_rate` (people/s), when known.
    pub door_rate: Option<f64>,
    /// People let in.
    pub admitted: u64,
    /// Admissions per second, from the first admission to the last.
    pub admitted_per_sec: Option<f64>,
    /// Enter answers: `200`, `425 not_ready`, `429 rate_limited`, anything else.
    pub enters_ok: u64,
    #[allow(missing_docs)]
    pub enters_not_ready: u64,
    #[allow(missing_docs)]
    pub enters_limited: u64,
    #[allow(missing_docs)]
    pub enters_other: u64,
    /// From the join's answer to the admission's (ms).
    pub wait_p50_ms: Option<f64>,
    #[allow(missing_docs)]
    pub wait_p95_ms: Option<f64>,
    #[allow(missing_docs)]
    pub wait_p99_ms: Option<f64>,
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
            enters: BTreeMap::new(),
            to_admission: histogram(),
            admissions: None,
            evictions: Vec::new(),
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
                admitted: 0,
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

    /// Records an enter's answer; `waited` (since the join) when it admitted.
    pub fn enter(&mut self, exchange: &Exchange, waited: Option<Duration>) {
        self.record(Endpoint::Enter, exchange);
        *self.enters.entry(exchange.status).or_default() += 1;
        if let Some(waited) = waited {
            let micros = (waited.as_micros() as u64).clamp(1, 60_000_000);
            self.to_admission.saturating_record(micros);
            self.second(exchange.received).admitted += 1;
            let at = exchange.received;
            self.admissions = Some(match self.admissions {
                Some((first, last)) => (first.min(at), last.max(at)),
                None => (at, at),
            });
        }
    }

    /// The door's figures, against its configured rate when known.
    pub fn door(&self, door_rate: Option<f64>) -> DoorReport {
        let n = |status: u16| self.enters.get(&status).copied().unwrap_or(0);
        let all: u64 = self.enters.values().sum();
        let h = &self.to_admission;
        let ms = |q: f64| (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1000.0);
        let admitted = h.len();
        DoorReport {
            door_rate,
            admitted,
            admitted_per_sec: self.admissions.and_then(|(first, last)| {
                let span = last.saturating_duration_since(first).as_secs_f64();
                (admitted >= 2 && span > 0.0).then(|| (admitted - 1) as f64 / span)
            }),
            enters_ok: n(200),
            enters_not_ready: n(425),
            enters_limited: n(429),
            enters_other: all - n(200) - n(425) - n(429),
            wait_p50_ms: ms(0.50),
            wait_p95_ms: ms(0.95),
            wait_p99_ms: ms(0.99),
        }
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

    /// Notes the server's queue length and evictions so far at `at`.
    pub fn sample_server(&mut self, at: Instant, waiting: u64, evicted: u64) {
        self.second(at).server_waiting = Some(waiting);
        self.evictions.push((at, evicted));
    }

    /// The server's `evicted_total` as sampled, in time order.
    pub fn evictions(&self) -> &[(Instant, u64)] {
        &self.evictions
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
                    enter_per_sec: rps(Endpoint::Enter),
                    admitted_per_sec: s.admitted,
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
    /// `join`, `status`, `leave`, `enter`, `reserve` or `resv_get`.
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
    pub enter_per_sec: u64,
    /// People let in by the door this second.
    pub admitted_per_sec: u64,
    pub status_p50_ms: Option<f64>,
    pub status_p95_ms: Option<f64>,
    pub status_p99_ms: Option<f64>,
    pub join_p99_ms: Option<f64>,
}
