//! The reservations' truth (`--reserve`): every order the crowd placed, what the gateway showed
//! of it, and the checks of DESIGN semantics 9 and 10.
//!
//! Each admitted person posts one reservation of one unit of one sku, and reads it until it is
//! settled. The checks:
//!
//! - **Settled once.** A reservation shown `confirmed` or `rejected` is never shown otherwise
//!   later (another state, another reason, or `pending` again). The crowd reads every settled
//!   reservation once more at the end for this.
//! - **Never lost.** A reservation answered `202` is settled within the grace period after
//!   that answer; one still `pending` then is lost. An id answered `202` that later reads
//!   `404`, or a second `202` with another id for the same `Idempotency-Key`, is mislaid.
//! - **No oversell.** Per sku, the confirmed reservations are at most the stock.
//! - **Inventory.** Per sku, the remaining quantity read through the admin API at the end is
//!   `stock − confirmed`, less at most the orders whose fate the crowd does not know (a post
//!   never answered `202`, a reservation still pending), and never negative.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::api::{Exchange, Shown};
use crate::truth::{Ledger, ViolationKind};

/// One person's order.
#[derive(Default)]
struct Order {
    sku: String,
    /// The id and when its `202` arrived.
    accepted: Option<(String, Instant)>,
    /// `(state, reason)` once settled, and when first seen so.
    settled: Option<(String, Option<String>, Instant)>,
    /// The latest answer showed it pending.
    pending: bool,
}

/// A violation found, for the ledger.
struct Found {
    kind: ViolationKind,
    person: Option<usize>,
    at: Instant,
    note: String,
}

/// The reservations' figures.
#[derive(Clone, Debug, Default, Serialize)]
pub struct OrdersReport {
    /// Skus ordered, and the stock of each (set with `--admin-token`, else not known).
    pub skus: Vec<String>,
    /// The stock put on each sku, when the tool set it.
    pub stock: Option<u64>,
    /// People who posted an order.
    pub posted: u64,
    /// Orders answered `202`.
    pub accepted: u64,
    /// Orders settled `confirmed`.
    pub confirmed: u64,
    /// Orders settled `rejected`, by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Orders still `pending` after the grace period.
    pub lost: u64,
    /// Posts never answered `202` (their fate is unknown).
    pub unanswered: u64,
    /// From the `202` to the first answer showing `confirmed` (ms).
    pub confirm_p50_ms: Option<f64>,
    #[allow(missing_docs)]
    pub confirm_p95_ms: Option<f64>,
    #[allow(missing_docs)]
    pub confirm_p99_ms: Option<f64>,
    /// The inventory read at the end: remaining by sku.
    pub inventory: Option<BTreeMap<String, i64>>,
}

/// Every order of the crowd.
pub struct Orders {
    orders: BTreeMap<usize, Order>,
    to_confirm: Histogram<u64>,
    found: Vec<Found>,
}

impl Default for Orders {
    fn default() -> Self {
        Self {
            orders: BTreeMap::new(),
            to_confirm: Histogram::new_with_bounds(1, 3_600_000, 3)
                .expect("constant, valid histogram bounds"),
            found: Vec::new(),
        }
    }
}

impl Orders {
    /// A post of `person`'s order of `sku` was answered.
    pub fn posted(&mut self, person: usize, sku: &str, exchange: &Exchange, shown: Option<&Shown>) {
        let order = self.orders.entry(person).or_default();
        order.sku = sku.to_owned();
        let Some(shown) = shown else { return };
        match &order.accepted {
            Some((id, _)) if *id != shown.id => {
                let note = format!(
                    "the same Idempotency-Key answered reservation {} after {id}",
                    shown.id
                );
                self.found.push(Found {
                    kind: ViolationKind::ReservationMislaid,
                    person: Some(person),
                    at: exchange.received,
                    note,
                });
                return;
            }
            Some(_) => {}
            None => order.accepted = Some((shown.id.clone(), exchange.received)),
        }
        self.shown(person, exchange, shown);
    }

    /// A read of `person`'s reservation was answered.
    pub fn read(&mut self, person: usize, exchange: &Exchange, shown: Option<&Shown>) {
        match shown {
            Some(shown) => self.shown(person, exchange, shown),
            None if exchange.status == 404 => {
                let id = self
                    .orders
                    .get(&person)
                    .and_then(|o| o.accepted.as_ref())
                    .map_or("?", |a| a.0.as_str());
                let note = format!("reservation {id} was answered 202, then reads 404");
                self.found.push(Found {
                    kind: ViolationKind::ReservationMislaid,
                    person: Some(person),
                    at: exchange.received,
                    note,
                });
            }
            // An outage: nothing learnt.
            None => {}
        }
    }

    fn shown(&mut self, person: usize, exchange: &Exchange, shown: &Shown) {
        let Some(order) = self.orders.get_mut(&person) else {
            return;
        };
        let at = exchange.received;
        order.pending = shown.state == "pending";
        match &order.settled {
            Some((state, reason, _)) => {
                if *state != shown.state || *reason != shown.reason {
                    let note = format!(
                        "reservation {} was {state} {reason:?}, then shown {} {:?}",
                        shown.id, shown.state, shown.reason
                    );
                    self.found.push(Found {
                        kind: ViolationKind::ReservationFlipped,
                        person: Some(person),
                        at,
                        note,
                    });
                }
            }
            None if shown.state == "pending" => {}
            None => {
                if shown.state == "confirmed" {
                    if let Some((_, accepted)) = &order.accepted {
                        let ms = at.saturating_duration_since(*accepted).as_millis() as u64;
                        self.to_confirm.saturating_record(ms.max(1));
                    }
                }
                order.settled = Some((shown.state.clone(), shown.reason.clone(), at));
            }
        }
    }

    /// The reservations to read once more at the end: settled ones, by person and id.
    pub fn settled(&self) -> Vec<(usize, String)> {
        self.orders
            .iter()
            .filter(|(_, o)| o.settled.is_some())
            .filter_map(|(p, o)| Some((*p, o.accepted.as_ref()?.0.clone())))
            .collect()
    }

    /// Ends the run at `now`: orders still pending a grace period after their `202` are lost;
    /// with a stock, confirmed orders are counted against it and against the `inventory` read
    /// at the end. Writes the violations into the ledger and answers the figures.
    pub fn finish(
        mut self,
        ledger: &mut Ledger,
        now: Instant,
        grace: Duration,
        skus: &[String],
        stock: Option<u64>,
        inventory: Option<BTreeMap<String, i64>>,
    ) -> OrdersReport {
        let mut report = OrdersReport {
            skus: skus.to_vec(),
            stock,
            ..OrdersReport::default()
        };
        // Per sku: (confirmed, fate unknown).
        let mut by_sku: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for (person, o) in &self.orders {
            report.posted += 1;
            let counts = by_sku.entry(o.sku.as_str()).or_default();
            match (&o.accepted, &o.settled) {
                (None, _) => {
                    report.unanswered += 1;
                    counts.1 += 1;
                }
                (Some(_), Some((state, reason, _))) => {
                    report.accepted += 1;
                    if state == "confirmed" {
                        report.confirmed += 1;
                        counts.0 += 1;
                    } else {
                        *report
                            .rejected
                            .entry(reason.clone().unwrap_or_default())
                            .or_default() += 1;
                    }
                }
                (Some((id, accepted)), None) => {
                    report.accepted += 1;
                    counts.1 += 1;
                    if now >= *accepted + grace {
                        report.lost += 1;
                        self.found.push(Found {
                            kind: ViolationKind::ReservationLost,
                            person: Some(*person),
                            at: now,
                            note: format!(
                                "reservation {id} still pending {} ms after its 202",
                                now.saturating_duration_since(*accepted).as_millis()
                            ),
                        });
                    }
                }
            }
        }
        if let Some(stock) = stock {
            for sku in skus {
                let (confirmed, unknown) = by_sku.get(sku.as_str()).copied().unwrap_or_default();
                if confirmed > stock {
                    self.found.push(Found {
                        kind: ViolationKind::Oversold,
                        person: None,
                        at: now,
                        note: format!("{sku}: {confirmed} confirmed, stock {stock}"),
                    });
                }
                let Some(inventory) = &inventory else {
                    continue;
                };
                let remaining = inventory.get(sku).copied();
                let high = stock as i64 - confirmed as i64;
                let low = (high - unknown as i64).max(0);
                let right = remaining.is_some_and(|r| (low..=high).contains(&r));
                if !right {
                    self.found.push(Found {
                        kind: ViolationKind::InventoryWrong,
                        person: None,
                        at: now,
                        note: format!(
                            "{sku}: remaining {remaining:?}, expected {low}..={high} \
                             (stock {stock}, {confirmed} confirmed, {unknown} unknown)"
                        ),
                    });
                }
            }
        }
        let h = &self.to_confirm;
        let q = |q: f64| (!h.is_empty()).then(|| h.value_at_quantile(q) as f64);
        report.confirm_p50_ms = q(0.50);
        report.confirm_p95_ms = q(0.95);
        report.confirm_p99_ms = q(0.99);
        report.inventory = inventory;
        for f in self.found {
            ledger.record(f.kind, f.person, f.at, f.note);
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::truth::Timing;

    fn exchange(at: Instant, status: u16) -> Exchange {
        Exchange {
            sent: at,
            received: at,
            status,
            code: None,
        }
    }

    fn shown(state: &str, reason: Option<&str>) -> Shown {
        Shown {
            id: "r1".into(),
            state: state.into(),
            reason: reason.map(str::to_owned),
        }
    }

    fn ledger(start: Instant) -> Ledger {
        let timing = Timing {
            heartbeat_ttl: Duration::from_secs(10),
            sweep_interval: Duration::from_secs(1),
            slack: Duration::from_secs(1),
        };
        Ledger::new(timing, 4, start)
    }

    #[test]
    fn settled_orders_counted_against_stock_and_inventory_pass() {
        let t = Instant::now();
        let mut orders = Orders::default();
        orders.posted(0, "a", &exchange(t, 202), Some(&shown("pending", None)));
        orders.read(0, &exchange(t, 200), Some(&shown("confirmed", None)));
        orders.posted(1, "a", &exchange(t, 202), Some(&shown("pending", None)));
        orders.read(
            1,
            &exchange(t, 200),
            Some(&shown("rejected", Some("sold_out"))),
        );
        orders.posted(2, "a", &exchange(t, 0), None);
        let mut l = ledger(t);
        let inventory = BTreeMap::from([("a".to_owned(), 0)]);
        let skus = ["a".to_owned()];
        let report = orders.finish(
            &mut l,
            t,
            Duration::from_secs(1),
            &skus,
            Some(1),
            Some(inventory),
        );
        assert_eq!(l.tally().violations, 0, "{:?}", l.tally());
        assert_eq!((report.confirmed, report.unanswered), (1, 1));
        assert_eq!(report.rejected.get("sold_out"), Some(&1));
    }

    #[test]
    fn a_flip_a_lost_order_an_oversell_and_a_wrong_inventory_are_violations() {
        let t = Instant::now();
        let later = t + Duration::from_secs(5);
        let mut orders = Orders::default();
        orders.posted(0, "a", &exchange(t, 202), Some(&shown("confirmed", None)));
        orders.read(
            0,
            &exchange(t, 200),
            Some(&shown("rejected", Some("sold_out"))),
        );
        orders.posted(1, "a", &exchange(t, 202), Some(&shown("confirmed", None)));
        orders.posted(2, "a", &exchange(t, 202), Some(&shown("pending", None)));
        let mut l = ledger(t);
        let inventory = BTreeMap::from([("a".to_owned(), 1)]);
        let skus = ["a".to_owned()];
        orders.finish(
            &mut l,
            later,
            Duration::from_secs(1),
            &skus,
            Some(1),
            Some(inventory),
        );
        let kinds: Vec<ViolationKind> = l.tally().first_violations.iter().map(|v| v.kind).collect();
        assert_eq!(
            kinds,
            [
                ViolationKind::ReservationFlipped,
                ViolationKind::ReservationLost,
                ViolationKind::Oversold,
                ViolationKind::InventoryWrong
            ]
        );
    }
}
