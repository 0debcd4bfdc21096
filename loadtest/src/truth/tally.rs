//! What went wrong, and the running verdict.

use std::time::Instant;

use serde::Serialize;

use super::Ledger;

/// How many violations are kept with their details.
const KEEP_VIOLATIONS: usize = 20;

/// What went wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    /// Position below 1 + the people certainly ahead.
    PositionTooLow,
    /// Position above 1 + everyone possibly ahead (e.g. a ghost not evicted in time).
    PositionTooHigh,
    /// Evicted although the heartbeat was refreshed less than a ttl earlier.
    EvictedWhilePolling,
    /// `410 left` to someone who never left.
    LeftWithoutLeaving,
    /// `401` to a ticket the gateway itself issued.
    TicketRefused,
    /// A ghost past its eviction deadline still counted as waiting.
    GhostNotEvicted,
    /// Told "not yet" after someone behind (or they themselves) had been let through the door.
    WindowOutOfOrder,
    /// A reservation answered `202` still `pending` a grace period later.
    ReservationLost,
    /// A settled reservation shown with another result later (or pending again).
    ReservationFlipped,
    /// A reservation answered `202` then unknown (`404`), or another id for the same key.
    ReservationMislaid,
    /// More units confirmed than the stock.
    Oversold,
    /// The inventory read at the end is not stock − confirmed, or is negative.
    InventoryWrong,
}

/// One violation, with what was expected.
#[derive(Clone, Debug, Serialize)]
pub struct Violation {
    /// What went wrong.
    pub kind: ViolationKind,
    /// The crowd's index of the person, when it is about one.
    pub person: Option<usize>,
    /// Their ticket's `seq`, when known.
    pub seq: Option<u64>,
    /// Milliseconds since the start of the run, when the answer arrived.
    pub at_ms: u64,
    /// The position shown, when there was one.
    pub position: Option<u64>,
    /// The range the position had to be in.
    pub expected: Option<(u64, u64)>,
    /// What else is worth knowing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The running verdict.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Tally {
    /// Positions checked exactly (nobody ahead uncertain).
    pub exact_checked: u64,
    /// Of those, how many were right.
    pub exact_ok: u64,
    /// Positions checked against bounds (someone ahead in their eviction window).
    pub bounded_checked: u64,
    /// Of those, how many were inside the bounds.
    pub bounded_ok: u64,
    /// All violations, of every kind.
    pub violations: u64,
    /// Violations by kind.
    pub by_kind: std::collections::BTreeMap<ViolationKind, u64>,
    /// The first violations, in detail.
    pub first_violations: Vec<Violation>,
}

impl Tally {
    /// Share of exact checks that matched, in percent (100 when none ran).
    pub fn exactness_pct(&self) -> f64 {
        if self.exact_checked == 0 {
            return 100.0;
        }
        100.0 * self.exact_ok as f64 / self.exact_checked as f64
    }
}

impl Ledger {
    pub(super) fn violation(
        &mut self,
        kind: ViolationKind,
        person: usize,
        seq: u64,
        at: Instant,
        position: Option<u64>,
        expected: Option<(u64, u64)>,
    ) {
        self.push(Violation {
            kind,
            person: Some(person),
            seq: Some(seq),
            at_ms: at.saturating_duration_since(self.start).as_millis() as u64,
            position,
            expected,
            note: None,
        });
    }

    /// Records a violation found outside the ledger (reservations, inventory), about `person`
    /// when given, explained by `note`.
    pub fn record(
        &mut self,
        kind: ViolationKind,
        person: Option<usize>,
        at: Instant,
        note: String,
    ) {
        let seq = person.and_then(|p| self.member(p)).map(|m| m.seq);
        self.push(Violation {
            kind,
            person,
            seq,
            at_ms: at.saturating_duration_since(self.start).as_millis() as u64,
            position: None,
            expected: None,
            note: Some(note),
        });
    }

    fn push(&mut self, violation: Violation) {
        self.tally.violations += 1;
        *self.tally.by_kind.entry(violation.kind).or_default() += 1;
        if self.tally.first_violations.len() < KEEP_VIOLATIONS {
            self.tally.first_violations.push(violation);
        }
    }
}
