//! The truth: who is in the queue, and whether every position the gateway showed was right.
//!
//! The semantics under test (DESIGN.md 3 and 4): position = 1 + the people still waiting ahead
//! (lower `seq`); a person not seen for `heartbeat_ttl` is evicted within the sweep interval.
//!
//! The crowd knows everything it did, but only as intervals of its own clock: a request was
//! executed by the server at some instant between `sent` and `received`. So for each person the
//! ledger keeps two instants:
//!
//! - `present_until`: before it, the person was certainly still waiting. Their last successful
//!   poll refreshed the heartbeat no earlier than that poll's `sent`, and nobody is evicted
//!   before heartbeat + ttl; a leave can act no earlier than when it was sent.
//! - `gone_by`: after it, the person was certainly gone. Once they stop polling (closed tab,
//!   left, end of run), their last heartbeat is no later than the last poll's `received`, so
//!   they are evicted by `received + ttl + sweep_interval + slack`; a `204` to a leave or a
//!   `410` proves it at that answer's `received`. A person who keeps polling has no `gone_by`.
//!
//! The ledger is kept here; the rest is split by concern:
//!
//! - `reports`: what the crowd reports (joins, polls, enters, leaves) and how each moves those
//!   two instants, admissions included.
//! - `positions`: the rule every position shown must obey (exact or bounded), checked once ripe.
//! - `door`: the door's window order.
//! - `tally`: the kinds of violation, and the running verdict.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde::Serialize;

mod door;
mod positions;
mod reports;
#[cfg(test)]
mod script;
mod tally;

pub use tally::{Tally, Violation, ViolationKind};

use positions::Observation;

/// Margin for the store's clock resolution (whole milliseconds, compared with `<=`).
const CLOCK_MARGIN: Duration = Duration::from_millis(50);

/// The server's eviction timing, as the crowd must assume it.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// The event's `heartbeat_ttl_secs`.
    pub heartbeat_ttl: Duration,
    /// The gateway's sweep interval.
    pub sweep_interval: Duration,
    /// Extra time allowed for a sweep round to run (Redis round trips, batches).
    pub slack: Duration,
}

impl Timing {
    /// Latest instant a person whose last heartbeat was at or before `last` is still counted.
    fn eviction_deadline(&self, last: Instant) -> Instant {
        last + self.heartbeat_ttl + self.sweep_interval + self.slack
    }

    /// Earliest instant a person whose heartbeat was refreshed at or after `refreshed` may
    /// be evicted.
    fn eviction_earliest(&self, refreshed: Instant) -> Instant {
        refreshed + self.heartbeat_ttl.saturating_sub(CLOCK_MARGIN)
    }
}

/// Where a person of the crowd is, as the crowd knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Life {
    /// Joined and polling.
    Alive,
    /// Stopped polling without leaving: a ghost the server must evict.
    Stopped,
    /// Sent a leave.
    Leaving,
    /// Saw proof of being out of the queue (`204` to leave, `410` to status).
    Gone,
    /// Let in by the door (enter answered `200`).
    Admitted,
}

struct Member {
    seq: u64,
    life: Life,
    /// Joins started before this person's join was answered: any of them may be ahead.
    joins_before: u64,
    last_ok_sent: Instant,
    last_any_received: Instant,
    leave_sent_after: Option<Instant>,
    gone_seen: Option<Instant>,
    /// Earliest instant an admission may have happened: the first enter not proven refused.
    admit_from: Option<Instant>,
    /// An enter of theirs was never answered: it may still run at any time.
    enter_lost: bool,
    /// Earliest `received` of an answer showing them through the door.
    first_ready: Option<Instant>,
    /// Latest `sent` of an answer telling them "not yet".
    last_not_ready: Option<Instant>,
}

impl Member {
    fn present_until(&self, timing: &Timing) -> Instant {
        let mut until = timing.eviction_earliest(self.last_ok_sent);
        if let Some(at) = self.leave_sent_after {
            until = until.min(at);
        }
        if let Some(at) = self.gone_seen {
            until = until.min(at);
        }
        if let Some(at) = self.admit_from {
            until = until.min(at);
        }
        until
    }

    fn gone_by(&self, timing: &Timing) -> Option<Instant> {
        let evicted_by =
            (self.life != Life::Alive).then(|| timing.eviction_deadline(self.last_any_received));
        match (evicted_by, self.gone_seen) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// A join whose outcome the crowd never learnt: it may have placed someone.
struct UncertainJoin {
    index: u64,
    gone_by: Instant,
}

/// Everything the crowd knows about the queue, and the checks of what it was shown.
pub struct Ledger {
    timing: Timing,
    start: Instant,
    members: Vec<Option<Member>>,
    join_index: Vec<u64>,
    joins_started: u64,
    in_flight: BTreeSet<u64>,
    uncertain_joins: Vec<UncertainJoin>,
    pending: Vec<Observation>,
    alive: u64,
    tally: Tally,
}

impl Ledger {
    /// A ledger for a crowd of `people`, whose run started at `start`.
    pub fn new(timing: Timing, people: usize, start: Instant) -> Self {
        Self {
            timing,
            start,
            members: (0..people).map(|_| None).collect(),
            join_index: vec![u64::MAX; people],
            joins_started: 0,
            in_flight: BTreeSet::new(),
            uncertain_joins: Vec::new(),
            pending: Vec::new(),
            alive: 0,
            tally: Tally::default(),
        }
    }

    /// The verdict so far.
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// People joined, not left, not stopped, not evicted.
    pub fn alive(&self) -> u64 {
        self.alive
    }

    /// Answers recorded but not checked yet.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// When a person who stopped polling must be gone, if they did.
    pub fn eviction_deadline(&self, person: usize) -> Option<Instant> {
        let m = self.member(person)?;
        (m.life == Life::Stopped).then(|| self.timing.eviction_deadline(m.last_any_received))
    }

    /// When the heartbeat of each person who stopped polling (closed the tab, or the run
    /// ended) expired at the latest: their last answer + the TTL.
    pub fn heartbeat_expiries(&self) -> Vec<Instant> {
        self.members
            .iter()
            .flatten()
            .filter(|m| m.life == Life::Stopped)
            .map(|m| m.last_any_received + self.timing.heartbeat_ttl)
            .collect()
    }

    fn member(&self, person: usize) -> Option<&Member> {
        self.members.get(person).and_then(Option::as_ref)
    }
}
