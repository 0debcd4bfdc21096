//! What a sale produced: the summary table, and the same figures as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::eviction::EvictionReport;
use crate::orders::OrdersReport;
use crate::person::Outcome;
use crate::sale::SaleArgs;
use crate::stats::{DoorReport, EndpointReport, Point, Stats};
use crate::truth::Tally;

/// How the visits ended.
#[derive(Clone, Debug, Default, Serialize)]
#[allow(missing_docs)]
pub struct Outcomes {
    pub stayed: u64,
    pub closed_tab: u64,
    pub left: u64,
    pub leave_failed: u64,
    pub removed: u64,
    pub not_placed: u64,
    pub admitted: u64,
    pub bought: u64,
    pub turned_away: u64,
    pub unsettled: u64,
    pub reserve_failed: u64,
}

impl From<&BTreeMap<Outcome, u64>> for Outcomes {
    fn from(counts: &BTreeMap<Outcome, u64>) -> Self {
        let n = |o| counts.get(&o).copied().unwrap_or(0);
        Self {
            stayed: n(Outcome::Stayed),
            closed_tab: n(Outcome::ClosedTab),
            left: n(Outcome::Left),
            leave_failed: n(Outcome::LeaveFailed),
            removed: n(Outcome::Removed),
            not_placed: n(Outcome::NotPlaced),
            admitted: n(Outcome::Admitted),
            bought: n(Outcome::Bought),
            turned_away: n(Outcome::TurnedAway),
            unsettled: n(Outcome::Unsettled),
            reserve_failed: n(Outcome::ReserveFailed),
        }
    }
}

/// The final look at ghosts: each one past its eviction deadline must answer `410 evicted`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Probe {
    /// Ghosts asked.
    pub asked: u64,
    /// Of those, answered `410 evicted`.
    pub evicted: u64,
    /// Neither evicted nor waiting (an outage): not a verdict.
    pub other: u64,
}

/// The truth checks.
#[derive(Clone, Debug, Serialize)]
pub struct Truth {
    /// The counts and the first violations.
    #[serde(flatten)]
    pub tally: Tally,
    /// Share of exact checks that were right (%).
    pub exactness_pct: f64,
    /// Share of all positions shown that could be checked exactly (%).
    pub exact_coverage_pct: f64,
    /// The ghosts' final probe.
    pub ghost_probe: Probe,
    /// How long ghosts stayed counted after their heartbeat expired (with `--admin-token`).
    pub eviction: Option<EvictionReport>,
}

/// Everything a sale measured.
#[derive(Clone, Debug, Serialize)]
#[allow(missing_docs)]
pub struct SaleReport {
    pub target: String,
    pub event: String,
    pub people: usize,
    pub arrive_secs: f64,
    pub hold_secs: f64,
    pub ghost_share: f64,
    pub leave_share: f64,
    pub connections: usize,
    pub heartbeat_ttl_secs: u64,
    pub sweep_interval_ms: u64,
    pub eviction_slack_ms: u64,
    pub elapsed_secs: f64,
    pub endpoints: Vec<EndpointReport>,
    pub outcomes: Outcomes,
    /// The door (with `--enter`).
    pub door: Option<DoorReport>,
    /// The reservations (with `--reserve`).
    pub orders: Option<OrdersReport>,
    pub truth: Truth,
    /// Polls that started over 200 ms after the time the server asked for.
    pub late_polls: u64,
    pub max_late_ms: f64,
    /// The server's figures at the end (with `--admin-token`).
    pub server_figures: Option<Value>,
    pub timeline: Vec<Point>,
}

impl SaleReport {
    /// Assembles the report.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        args: &SaleArgs,
        heartbeat_ttl_secs: u64,
        elapsed: Duration,
        stats: &Stats,
        outcomes: Outcomes,
        door: Option<DoorReport>,
        orders: Option<OrdersReport>,
        tally: Tally,
        ghost_probe: Probe,
        eviction: Option<EvictionReport>,
        server_figures: Option<Value>,
    ) -> Self {
        let shown = tally.exact_checked + tally.bounded_checked;
        let (late_polls, max_late) = stats.lateness();
        Self {
            target: args.target.clone(),
            event: args.event.clone(),
            people: args.people,
            arrive_secs: args.arrive_secs,
            hold_secs: args.hold_secs,
            ghost_share: args.ghost_share,
            leave_share: args.leave_share,
            connections: args.connections,
            heartbeat_ttl_secs,
            sweep_interval_ms: args.sweep_interval_ms,
            eviction_slack_ms: args.eviction_slack_ms,
            elapsed_secs: elapsed.as_secs_f64(),
            endpoints: stats.endpoints(elapsed),
            outcomes,
            door,
            orders,
            truth: Truth {
                exactness_pct: tally.exactness_pct(),
                exact_coverage_pct: if shown == 0 {
                    0.0
                } else {
                    100.0 * tally.exact_checked as f64 / shown as f64
                },
                tally,
                ghost_probe,
                eviction,
            },
            late_polls,
            max_late_ms: max_late.as_secs_f64() * 1000.0,
            server_figures,
            timeline: stats.timeline(),
        }
    }

    /// True when no check failed.
    pub fn passed(&self) -> bool {
        self.truth.tally.violations == 0
    }

    /// The summary table printed at the end of a run.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "sale: {} people on {} event `{}` in {:.1} s (arrivals over {} s, ttl {} s, sweep {} ms)",
            self.people,
            self.target,
            self.event,
            self.elapsed_secs,
            self.arrive_secs,
            self.heartbeat_ttl_secs,
            self.sweep_interval_ms
        );
        let _ = writeln!(
            out,
            "\n{:<8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "endpoint", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms"
        );
        for e in &self.endpoints {
            let _ = writeln!(
                out,
                "{:<8} {:>9} {:>9.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                e.endpoint, e.requests, e.per_sec, e.p50_ms, e.p95_ms, e.p99_ms, e.max_ms
            );
        }
        let errors: Vec<String> = self
            .endpoints
            .iter()
            .flat_map(|e| {
                e.errors
                    .iter()
                    .map(move |x| format!("{} {} {}: {}", e.endpoint, x.status, x.code, x.count))
            })
            .collect();
        let _ = writeln!(
            out,
            "\nerrors: {}",
            if errors.is_empty() {
                "none".to_owned()
            } else {
                errors.join(", ")
            }
        );
        let o = &self.outcomes;
        let _ = writeln!(
            out,
            "people: {} stayed, {} closed the tab, {} left, {} leave failed, {} removed, {} not placed",
            o.stayed, o.closed_tab, o.left, o.leave_failed, o.removed, o.not_placed
        );
        if o.admitted + o.bought + o.turned_away + o.unsettled + o.reserve_failed > 0 {
            let _ = writeln!(
                out,
                "        {} let in without ordering, {} bought, {} turned away, {} order unsettled, {} order failed",
                o.admitted, o.bought, o.turned_away, o.unsettled, o.reserve_failed
            );
        }
        if let Some(d) = &self.door {
            let opt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
            let _ = writeln!(
                out,
                "door: {} admitted, {}/s (door rate {}/s); enters {} ok, {} not ready, {} limited, {} other; \
                 join to admission p50 {} / p95 {} / p99 {} ms",
                d.admitted,
                opt(d.admitted_per_sec),
                opt(d.door_rate),
                d.enters_ok,
                d.enters_not_ready,
                d.enters_limited,
                d.enters_other,
                opt(d.wait_p50_ms),
                opt(d.wait_p95_ms),
                opt(d.wait_p99_ms)
            );
        }
        if let Some(r) = &self.orders {
            let opt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0}"));
            let rejected: Vec<String> =
                r.rejected.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = writeln!(
                out,
                "reservations: {} posted, {} accepted, {} confirmed, rejected [{}], {} lost, {} unanswered; \
                 202 to confirmed p50 {} / p95 {} / p99 {} ms",
                r.posted,
                r.accepted,
                r.confirmed,
                rejected.join(", "),
                r.lost,
                r.unanswered,
                opt(r.confirm_p50_ms),
                opt(r.confirm_p95_ms),
                opt(r.confirm_p99_ms)
            );
            let stock = r
                .stock
                .map_or("unknown (no --admin-token)".to_owned(), |s| s.to_string());
            let inventory = r
                .inventory
                .as_ref()
                .map_or("not read".to_owned(), |i| format!("{i:?}"));
            let _ = writeln!(
                out,
                "inventory: skus {:?}, stock {stock} each; remaining at the end {inventory}",
                r.skus
            );
        }
        let t = &self.truth;
        let _ = writeln!(
            out,
            "truth: {} positions checked exactly, {:.3}% right; {} within bounds ({} ok); exact coverage {:.1}%",
            t.tally.exact_checked,
            t.exactness_pct,
            t.tally.bounded_checked,
            t.tally.bounded_ok,
            t.exact_coverage_pct
        );
        let _ = writeln!(
            out,
            "ghosts past their deadline probed: {}, answered evicted: {}, other: {}",
            t.ghost_probe.asked, t.ghost_probe.evicted, t.ghost_probe.other
        );
        if let Some(e) = &t.eviction {
            let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0}"));
            let _ = writeln!(
                out,
                "evicted during the run: {} ({} matched with ghosts); after heartbeat + TTL: p50 {} ms, p95 {} ms, max {} ms (figures read every {} ms)",
                e.evicted,
                e.matched,
                ms(e.delay_p50_ms),
                ms(e.delay_p95_ms),
                ms(e.delay_max_ms),
                crate::eviction::SAMPLE.as_millis()
            );
        }
        if self.late_polls > 0 {
            let _ = writeln!(
                out,
                "late polls (the crowd itself saturated): {}, worst {:.0} ms",
                self.late_polls, self.max_late_ms
            );
        }
        let _ = writeln!(out, "violations: {}", t.tally.violations);
        for v in &t.tally.first_violations {
            let _ = write!(out, "  {:?} at {} ms", v.kind, v.at_ms);
            if let (Some(person), Some(seq)) = (v.person, v.seq) {
                let _ = write!(out, " person {person} seq {seq}");
            }
            if v.position.is_some() || v.expected.is_some() {
                let _ = write!(
                    out,
                    ": position {:?}, expected {:?}",
                    v.position, v.expected
                );
            }
            if let Some(note) = &v.note {
                let _ = write!(out, ": {note}");
            }
            let _ = writeln!(out);
        }
        out
    }
}
