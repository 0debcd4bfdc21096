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
//! For an answer requested in `[sent, received]` to a person with sequence `s`, every person
//! ahead (sequence below `s`) is counted as certainly there (`present_until > received`),
//! certainly gone (`gone_by < sent`), or uncertain. Joins whose outcome the crowd never learnt
//! (no answer, 5xx) may have placed someone ahead: they are uncertain until their own `gone_by`.
//!
//! **The rule.** When nobody ahead is uncertain the position must be exactly
//! `1 + certainly there` (an *exact* check); otherwise it must lie within
//! `[1 + certainly there, 1 + certainly there + uncertain]` (a *bounded* check). Anything else
//! is a violation. Exactness is the share of exact checks that matched, and it must be 100%.
//!
//! An answer is checked only once every join that started before its person's join was
//! answered has finished: any of those may hold a lower sequence.
//!
//! **Admissions** (`--enter`). Only the crowd's own enter calls take someone out of the waiting
//! queue by admission, and the crowd knows who called enter and when. An admission happens at
//! some instant inside the `[sent, received]` of an enter that was answered `200`, or of one
//! whose outcome the crowd never learnt (no answer, 5xx) followed by a later `200`. So the
//! first enter a person sends that is not proven refused ends their `present_until` (like a
//! leave), and a `200` proves them gone by its `received`. A `425`/`429` proves they were still
//! waiting when it ran (the gateway answers the same admission to a second enter, never a
//! refusal), so it lifts that bound again, unless an earlier enter of theirs was never
//! answered: it may still run later.
//!
//! **The door's window** (DESIGN 6 and 7). The door admits from the head: a waiting person is
//! `ready_for_entry` exactly when their position is at most the door's window, and enter
//! succeeds only then. The window is not visible to the crowd, so "nobody gets in ahead of a
//! live person in front" cannot be checked against it directly: a person admitted while
//! someone ahead still waits is legal when that someone is also inside the window (they just
//! have not called enter yet). What the crowd can check is the order of the window itself.
//! While an event's valves stay as they are (open, `max_active` not lowered), the window never
//! shrinks past a waiting person: it grows with time, an enter takes one off it together with
//! the person who entered, and its caps (room under `max_active`, people waiting) never fall
//! below the position of anyone inside it. So once inside, a person stays inside until they
//! leave the queue, and so does everyone ahead of them. Hence the invariant checked:
//!
//! > If person P was let through the door at some instant before `r1` (a status answer with
//! > `ready_for_entry: true` or `state: admitted`, or an enter answered `200`, received at
//! > `r1`), then no person Q with `seq(Q) <= seq(P)` may be told "not yet" (a status answer
//! > with `ready_for_entry: false`, or an enter answered `425`) by a request sent after `r1`.
//!
//! Sound: Q's lower sequence puts Q's join before P's, and Q told "not yet" is still waiting,
//! so Q was waiting and ahead of P (or is P) when P was inside the window; hence Q was inside
//! then and must be still. It catches a door that lets anyone in out of order (the tail before
//! the head, every other person) or that takes from the window what an enter did not, as soon
//! as the person passed over polls again. Only instants of the crowd's clock are compared, with
//! a strict `r1 < sent`. It assumes the valves do not change during the run (this tool sets
//! them before it starts): pausing the event or lowering `max_active` mid-run closes the
//! window on people inside it, and would be reported.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::api::Exchange;

/// Margin for the store's clock resolution (whole milliseconds, compared with `<=`).
const CLOCK_MARGIN: Duration = Duration::from_millis(50);

/// How many violations are kept with their details.
const KEEP_VIOLATIONS: usize = 20;

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

impl Member {
    /// Notes an answer that showed the person through the door (`ready`) or not.
    fn door(&mut self, exchange: &Exchange, ready: bool) {
        if ready {
            let r = exchange.received;
            self.first_ready = Some(self.first_ready.map_or(r, |f| f.min(r)));
        } else {
            let s = exchange.sent;
            self.last_not_ready = Some(self.last_not_ready.map_or(s, |l| l.max(s)));
        }
    }
}

/// A join whose outcome the crowd never learnt: it may have placed someone.
struct UncertainJoin {
    index: u64,
    gone_by: Instant,
}

/// A position shown to someone, waiting to be checked.
#[derive(Clone, Copy, Debug)]
struct Observation {
    person: usize,
    sent: Instant,
    received: Instant,
    position: u64,
}

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

    // === what the crowd reports ===

    /// A person is about to send their join. Must be reported before the request leaves.
    pub fn join_started(&mut self, person: usize) {
        if let Some(slot) = self.join_index.get_mut(person) {
            *slot = self.joins_started;
            self.in_flight.insert(self.joins_started);
            self.joins_started += 1;
        }
    }

    /// A join answered with a place.
    pub fn joined(&mut self, person: usize, exchange: &Exchange, seq: u64, position: u64) {
        self.finish_join(person);
        let member = Member {
            seq,
            life: Life::Alive,
            joins_before: self.joins_started,
            last_ok_sent: exchange.sent,
            last_any_received: exchange.received,
            leave_sent_after: None,
            gone_seen: None,
            admit_from: None,
            enter_lost: false,
            first_ready: None,
            last_not_ready: None,
        };
        if let Some(slot) = self.members.get_mut(person) {
            *slot = Some(member);
            self.alive += 1;
            self.observe(person, exchange, position);
        }
    }

    /// A join answered without a place. When the answer does not prove that nothing happened
    /// (no answer, or a 5xx other than `queue_full`), someone may have been placed anyway.
    pub fn join_failed(&mut self, person: usize, exchange: &Exchange) {
        let index = self.finish_join(person);
        let refused =
            (400..500).contains(&exchange.status) || exchange.code.as_deref() == Some("queue_full");
        if !refused {
            if let Some(index) = index {
                self.uncertain_joins.push(UncertainJoin {
                    index,
                    gone_by: self.timing.eviction_deadline(exchange.received),
                });
            }
        }
    }

    fn finish_join(&mut self, person: usize) -> Option<u64> {
        let index = *self.join_index.get(person)?;
        self.in_flight.remove(&index);
        Some(index)
    }

    /// A status poll answered with a position, inside the door's window (`ready`) or not.
    pub fn status_ok(&mut self, person: usize, exchange: &Exchange, position: u64, ready: bool) {
        if let Some(Some(m)) = self.members.get_mut(person) {
            m.last_ok_sent = m.last_ok_sent.max(exchange.sent);
            m.last_any_received = m.last_any_received.max(exchange.received);
            m.door(exchange, ready);
            self.observe(person, exchange, position);
        }
    }

    /// A status poll answered `state: admitted`: an enter of theirs went through although its
    /// answer was lost.
    pub fn status_admitted(&mut self, person: usize, exchange: &Exchange) {
        self.admitted(person, exchange);
    }

    /// A person is about to send an enter; `at` was read before this report.
    pub fn enter_started(&mut self, person: usize, at: Instant) {
        if let Some(Some(m)) = self.members.get_mut(person) {
            m.admit_from.get_or_insert(at);
        }
    }

    /// An enter answered: `200` admits, `425`/`429` prove the person still waited when it
    /// ran, `410`/`401` put them out as a status would; anything else leaves it uncertain.
    pub fn enter_done(&mut self, person: usize, exchange: &Exchange) {
        match exchange.status {
            200 => self.admitted(person, exchange),
            425 | 429 => {
                if let Some(Some(m)) = self.members.get_mut(person) {
                    // The enter script refreshed the heartbeat before refusing.
                    m.last_ok_sent = m.last_ok_sent.max(exchange.sent);
                    m.last_any_received = m.last_any_received.max(exchange.received);
                    if !m.enter_lost {
                        m.admit_from = None;
                    }
                    if exchange.status == 425 {
                        m.door(exchange, false);
                    }
                }
            }
            401 | 410 => {
                self.status_failed(person, exchange);
            }
            _ => {
                if let Some(Some(m)) = self.members.get_mut(person) {
                    m.enter_lost = true;
                }
            }
        }
    }

    fn admitted(&mut self, person: usize, exchange: &Exchange) {
        if let Some(Some(m)) = self.members.get_mut(person) {
            m.door(exchange, true);
            m.gone_seen = Some(
                m.gone_seen
                    .map_or(exchange.received, |g| g.min(exchange.received)),
            );
            m.admit_from = Some(m.admit_from.map_or(exchange.sent, |a| a.min(exchange.sent)));
            if m.life == Life::Alive {
                self.alive -= 1;
            }
            m.life = Life::Admitted;
        }
    }

    /// A status poll answered with an error. Returns the person's new life when the answer
    /// put them out of the queue.
    pub fn status_failed(&mut self, person: usize, exchange: &Exchange) -> Option<Life> {
        let timing = self.timing;
        let m = self.members.get_mut(person)?.as_mut()?;
        m.last_any_received = m.last_any_received.max(exchange.received);
        let kind = match (exchange.status, exchange.code.as_deref()) {
            (410, Some("evicted")) => {
                let wrongful = exchange.received < timing.eviction_earliest(m.last_ok_sent);
                wrongful.then_some(ViolationKind::EvictedWhilePolling)
            }
            (410, _) => Some(ViolationKind::LeftWithoutLeaving),
            (401, _) => Some(ViolationKind::TicketRefused),
            // 5xx and no answer: an outage, counted in the figures, not a lie.
            _ => return None,
        };
        let (seq, was) = (m.seq, m.life);
        m.life = Life::Gone;
        m.gone_seen = Some(exchange.received);
        if was == Life::Alive {
            self.alive -= 1;
        }
        if let Some(kind) = kind {
            self.violation(kind, person, seq, exchange.received, None, None);
        }
        Some(Life::Gone)
    }

    /// A person stopped polling without leaving (closed the tab, or the run ended).
    pub fn stopped(&mut self, person: usize) {
        if let Some(Some(m)) = self.members.get_mut(person) {
            if m.life == Life::Alive {
                m.life = Life::Stopped;
                self.alive -= 1;
            }
        }
    }

    /// A person is about to send a leave; `at` was read before this report, hence before the
    /// request left.
    pub fn leave_started(&mut self, person: usize, at: Instant) {
        if let Some(Some(m)) = self.members.get_mut(person) {
            if m.life == Life::Alive {
                self.alive -= 1;
            }
            m.life = Life::Leaving;
            m.leave_sent_after = Some(at);
        }
    }

    /// A leave answered.
    pub fn leave_done(&mut self, person: usize, exchange: &Exchange) {
        let gone = exchange.status == 204 || exchange.status == 410;
        if let Some(Some(m)) = self.members.get_mut(person) {
            if gone {
                m.life = Life::Gone;
                m.gone_seen = Some(exchange.received);
            }
        }
    }

    /// A ghost past its eviction deadline was still waiting (its own status answered 200).
    pub fn ghost_not_evicted(&mut self, person: usize, exchange: &Exchange, position: u64) {
        let seq = self.member(person).map_or(0, |m| m.seq);
        self.violation(
            ViolationKind::GhostNotEvicted,
            person,
            seq,
            exchange.received,
            Some(position),
            None,
        );
    }

    fn observe(&mut self, person: usize, exchange: &Exchange, position: u64) {
        self.pending.push(Observation {
            person,
            sent: exchange.sent,
            received: exchange.received,
            position,
        });
    }

    fn violation(
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

    // === the checks ===

    /// Checks every answer whose person's predecessors are all known.
    pub fn check_ripe(&mut self) {
        let horizon = self.in_flight.first().copied().unwrap_or(u64::MAX);
        let members = &self.members;
        let (ripe, wait): (Vec<Observation>, Vec<Observation>) =
            self.pending.drain(..).partition(|o| {
                members
                    .get(o.person)
                    .and_then(Option::as_ref)
                    .is_some_and(|m| m.joins_before <= horizon)
            });
        self.pending = wait;
        self.check(ripe);
    }

    /// Checks everything left, and the door's window order; call once every join has
    /// finished and every person has stopped.
    pub fn check_all(&mut self) {
        let all = std::mem::take(&mut self.pending);
        self.check(all);
        self.check_window_order();
    }

    /// The window-order invariant (see the module's doc): going from the back of the queue to
    /// its head, keeps the earliest instant anyone at or behind was let through the door, and
    /// flags each person told "not yet" by a request sent after it. O(people log people).
    fn check_window_order(&mut self) {
        let mut order: Vec<(u64, usize)> = self
            .members
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.as_ref().map(|m| (m.seq, i)))
            .collect();
        order.sort_unstable_by_key(|&(seq, _)| std::cmp::Reverse(seq));
        let mut earliest: Option<(Instant, usize)> = None;
        let mut found = Vec::new();
        for (_, i) in order {
            let Some(m) = self.member(i) else { continue };
            if let Some(r) = m.first_ready {
                if earliest.is_none_or(|(e, _)| r < e) {
                    earliest = Some((r, i));
                }
            }
            if let (Some(not_ready), Some((ready, by))) = (m.last_not_ready, earliest) {
                if ready < not_ready {
                    found.push((i, not_ready, ready, by));
                }
            }
        }
        for (person, not_ready, ready, by) in found {
            let by_seq = self.member(by).map_or(0, |m| m.seq);
            let ms = |at: Instant| at.saturating_duration_since(self.start).as_millis();
            let note = format!(
                "told not ready by a request sent at {} ms, after person {by} (seq {by_seq}) \
                 was let through the door by {} ms",
                ms(not_ready),
                ms(ready)
            );
            self.record(
                ViolationKind::WindowOutOfOrder,
                Some(person),
                not_ready,
                note,
            );
        }
    }

    /// Counts, for each answer, the people ahead certainly there and certainly gone, with two
    /// sweeps over a Fenwick tree indexed by rank of sequence: O((people + answers) log people).
    fn check(&mut self, batch: Vec<Observation>) {
        if batch.is_empty() {
            return;
        }
        let timing = self.timing;
        let known: Vec<(u64, Instant, Option<Instant>)> = self
            .members
            .iter()
            .flatten()
            .map(|m| (m.seq, m.present_until(&timing), m.gone_by(&timing)))
            .collect();
        let mut seqs: Vec<u64> = known.iter().map(|k| k.0).collect();
        seqs.sort_unstable();
        let rank = |seq: u64| seqs.partition_point(|&s| s < seq);
        // Each answer's person: (seq, joins started before their join was answered).
        let whose: Vec<(u64, u64)> = batch
            .iter()
            .map(|o| {
                self.member(o.person)
                    .map_or((0, 0), |m| (m.seq, m.joins_before))
            })
            .collect();

        // Certainly there: present past the answer's arrival.
        let mut certain = vec![0u64; batch.len()];
        let mut people: Vec<usize> = (0..known.len()).collect();
        people.sort_unstable_by(|&a, &b| known[b].1.cmp(&known[a].1));
        let mut answers: Vec<usize> = (0..batch.len()).collect();
        answers.sort_unstable_by(|&a, &b| batch[b].received.cmp(&batch[a].received));
        let mut tree = Fenwick::new(seqs.len());
        let mut next = 0;
        for &a in &answers {
            while next < people.len() && known[people[next]].1 > batch[a].received {
                tree.add(rank(known[people[next]].0));
                next += 1;
            }
            certain[a] = tree.prefix(rank(whose[a].0));
        }

        // Certainly gone: gone before the answer was requested.
        let mut gone = vec![0u64; batch.len()];
        let mut people: Vec<(Instant, usize)> = known
            .iter()
            .enumerate()
            .filter_map(|(i, k)| k.2.map(|g| (g, i)))
            .collect();
        people.sort_unstable();
        answers.sort_unstable_by_key(|&a| batch[a].sent);
        let mut tree = Fenwick::new(seqs.len());
        let mut next = 0;
        for &a in &answers {
            while next < people.len() && people[next].0 < batch[a].sent {
                tree.add(rank(known[people[next].1].0));
                next += 1;
            }
            gone[a] = tree.prefix(rank(whose[a].0));
        }

        for (i, o) in batch.iter().enumerate() {
            let (seq, joins_before) = whose[i];
            let ahead = rank(seq) as u64;
            let maybe_placed = self
                .uncertain_joins
                .iter()
                .filter(|u| u.index < joins_before && u.gone_by >= o.sent)
                .count() as u64;
            let lower = 1 + certain[i];
            let upper = 1 + ahead - gone[i] + maybe_placed;
            let inside = (lower..=upper).contains(&o.position);
            if lower == upper {
                self.tally.exact_checked += 1;
                self.tally.exact_ok += u64::from(inside);
            } else {
                self.tally.bounded_checked += 1;
                self.tally.bounded_ok += u64::from(inside);
            }
            if !inside {
                let kind = if o.position < lower {
                    ViolationKind::PositionTooLow
                } else {
                    ViolationKind::PositionTooHigh
                };
                self.violation(
                    kind,
                    o.person,
                    seq,
                    o.received,
                    Some(o.position),
                    Some((lower, upper)),
                );
            }
        }
    }
}

/// Counts by rank, with prefix sums in O(log n).
struct Fenwick(Vec<u64>);

impl Fenwick {
    fn new(len: usize) -> Self {
        Self(vec![0; len + 1])
    }

    /// Adds one at 0-based `index`.
    fn add(&mut self, index: usize) {
        let mut i = index + 1;
        while i < self.0.len() {
            self.0[i] += 1;
            i += i & i.wrapping_neg();
        }
    }

    /// The count at 0-based indices below `end`.
    fn prefix(&self, end: usize) -> u64 {
        let mut i = end.min(self.0.len() - 1);
        let mut sum = 0;
        while i > 0 {
            sum += self.0[i];
            i -= i & i.wrapping_neg();
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(2);
    const SWEEP: Duration = Duration::from_millis(100);
    const SLACK: Duration = Duration::from_millis(500);

    /// A clock for scripted runs: instants at whole milliseconds after a start.
    struct Script {
        start: Instant,
        ledger: Ledger,
    }

    impl Script {
        fn new(people: usize) -> Self {
            let start = Instant::now();
            let timing = Timing {
                heartbeat_ttl: TTL,
                sweep_interval: SWEEP,
                slack: SLACK,
            };
            Self {
                start,
                ledger: Ledger::new(timing, people, start),
            }
        }

        fn at(&self, ms: u64) -> Instant {
            self.start + Duration::from_millis(ms)
        }

        fn exchange(&self, sent_ms: u64, received_ms: u64, status: u16) -> Exchange {
            Exchange {
                sent: self.at(sent_ms),
                received: self.at(received_ms),
                status,
                code: None,
            }
        }

        /// People `0..n` join one after the other at `ms`, each seeing the right position.
        fn join_all(&mut self, n: usize, ms: u64) {
            for p in 0..n {
                self.ledger.join_started(p);
                let ex = self.exchange(ms, ms + 1, 201);
                self.ledger.joined(p, &ex, 100 + p as u64, p as u64 + 1);
            }
        }

        fn poll(&mut self, person: usize, ms: u64, position: u64) {
            self.poll_door(person, ms, position, false);
        }

        fn poll_door(&mut self, person: usize, ms: u64, position: u64, ready: bool) {
            let ex = self.exchange(ms, ms + 1, 200);
            self.ledger.status_ok(person, &ex, position, ready);
        }

        /// `person` sends an enter at `sent_ms`, answered `status` at `received_ms`.
        fn enter(&mut self, person: usize, sent_ms: u64, received_ms: u64, status: u16) {
            self.ledger.enter_started(person, self.at(sent_ms));
            let ex = self.exchange(sent_ms, received_ms, status);
            self.ledger.enter_done(person, &ex);
        }
    }

    #[test]
    fn right_positions_pass_the_exact_check() {
        let mut s = Script::new(3);
        s.join_all(3, 0);
        s.poll(2, 500, 3);
        s.ledger.check_all();
        let t = s.ledger.tally();
        assert_eq!((t.exact_checked, t.exact_ok, t.violations), (4, 4, 0));
    }

    #[test]
    fn a_wrong_position_is_a_violation() {
        let mut s = Script::new(3);
        s.join_all(3, 0);
        s.poll(2, 500, 2);
        s.ledger.check_all();
        let t = s.ledger.tally();
        assert_eq!(t.violations, 1);
        assert_eq!(t.first_violations[0].kind, ViolationKind::PositionTooLow);
        assert_eq!(t.first_violations[0].expected, Some((3, 3)));
    }

    #[test]
    fn a_leaver_counts_until_the_leave_is_sent_and_not_after_it_is_answered() {
        let mut s = Script::new(3);
        s.join_all(3, 0);
        s.ledger.leave_started(0, s.at(1000));
        let ex = s.exchange(1000, 1010, 204);
        s.ledger.leave_done(0, &ex);
        s.poll(2, 900, 3); // before: counted, exact
        s.poll(2, 1005, 2); // during: either is fine
        s.poll(2, 1100, 2); // after: not counted, exact
        s.poll(1, 1200, 2); // wrong: the leaver is still counted
        s.ledger.check_all();
        let t = s.ledger.tally();
        assert_eq!((t.bounded_checked, t.bounded_ok), (1, 1));
        assert_eq!(t.violations, 1);
        assert_eq!(t.first_violations[0].kind, ViolationKind::PositionTooHigh);
    }

    #[test]
    fn a_ghost_ahead_is_uncertain_within_its_window_and_must_be_gone_after_it() {
        let mut s = Script::new(2);
        s.join_all(2, 0);
        s.ledger.stopped(0);
        // Ghost's last heartbeat: the join (sent 0, answered 1). Certainly present before
        // 2000 - margin, certainly gone after 1 + 2000 + 100 + 500.
        s.poll(1, 1000, 2); // exact: still there
        s.poll(1, 2200, 2); // bounded: not yet evicted is fine
        s.poll(1, 2300, 1); // bounded: evicted is fine
        s.poll(1, 2700, 1); // exact: gone
        s.poll(1, 2800, 2); // violation: a ghost past its deadline is still counted
        s.ledger.check_all();
        let t = s.ledger.tally();
        assert_eq!((t.exact_checked, t.exact_ok), (5, 4), "{t:?}");
        assert_eq!((t.bounded_checked, t.bounded_ok), (2, 2));
        assert_eq!(t.first_violations[0].kind, ViolationKind::PositionTooHigh);
        assert_eq!(t.first_violations[0].expected, Some((1, 1)));
    }

    #[test]
    fn a_join_without_an_answer_may_be_ahead_until_its_ghost_deadline() {
        let mut s = Script::new(2);
        s.ledger.join_started(0);
        s.ledger.join_started(1);
        let lost = Exchange {
            code: Some("timeout".into()),
            ..s.exchange(0, 10, 0)
        };
        s.ledger.join_failed(0, &lost);
        let ex = s.exchange(0, 5, 201);
        s.ledger.joined(1, &ex, 7, 2);
        s.poll(1, 3000, 1);
        s.ledger.check_all();
        let t = s.ledger.tally();
        assert_eq!((t.bounded_ok, t.exact_ok, t.violations), (1, 1, 0));
    }

    #[test]
    fn answers_wait_until_every_earlier_join_is_known() {
        let mut s = Script::new(2);
        s.ledger.join_started(0);
        s.ledger.join_started(1);
        let ex = s.exchange(0, 5, 201);
        s.ledger.joined(1, &ex, 2, 2);
        s.ledger.check_ripe();
        assert_eq!(
            s.ledger.pending(),
            1,
            "person 0 may be ahead: wait for its join"
        );
        let ex = s.exchange(0, 6, 201);
        s.ledger.joined(0, &ex, 1, 1);
        s.ledger.check_ripe();
        assert_eq!(s.ledger.pending(), 0);
        assert_eq!(s.ledger.tally().exact_ok, 2);
    }

    #[test]
    fn an_eviction_of_someone_who_kept_polling_is_a_violation() {
        let mut s = Script::new(1);
        s.join_all(1, 0);
        s.poll(0, 1000, 1);
        let evicted = Exchange {
            code: Some("evicted".into()),
            ..s.exchange(1500, 1501, 410)
        };
        assert_eq!(s.ledger.status_failed(0, &evicted), Some(Life::Gone));
        assert_eq!(
            s.ledger.tally().first_violations[0].kind,
            ViolationKind::EvictedWhilePolling
        );
        assert_eq!(s.ledger.alive(), 0);
    }

    #[test]
    fn an_admitted_person_counts_ahead_until_the_enter_is_sent_and_not_after_its_answer() {
        let mut s = Script::new(3);
        s.join_all(3, 0);
        s.enter(0, 1000, 1010, 200);
        s.poll(2, 900, 3); // before: counted, exact
        s.poll(2, 1005, 2); // during: either is fine
        s.poll(2, 1100, 2); // after: not counted, exact
        s.poll(1, 1200, 2); // wrong: the admitted person is still counted
        s.ledger.check_all();
        let t = s.ledger.tally();
        assert_eq!((t.bounded_checked, t.bounded_ok), (1, 1));
        assert_eq!(t.violations, 1, "{t:?}");
        assert_eq!(t.first_violations[0].kind, ViolationKind::PositionTooHigh);
        assert_eq!(s.ledger.alive(), 2);
    }

    #[test]
    fn a_refused_enter_proves_the_person_still_waits_unless_an_earlier_one_was_lost() {
        let mut s = Script::new(3);
        s.join_all(3, 0);
        s.enter(0, 1000, 1010, 425);
        s.poll(2, 1005, 3); // exact again: the 425 proves person 0 was not let in
        let lost = Exchange {
            code: Some("timeout".into()),
            ..s.exchange(1500, 1600, 0)
        };
        s.ledger.enter_started(1, s.at(1500));
        s.ledger.enter_done(1, &lost);
        s.enter(1, 1700, 1710, 425);
        s.poll(2, 1800, 2); // bounded: the lost enter of person 1 may still run
        s.ledger.check_all();
        let t = s.ledger.tally();
        assert_eq!(t.violations, 0, "{t:?}");
        assert_eq!((t.exact_checked, t.bounded_checked), (4, 1));
    }

    #[test]
    fn someone_ahead_told_not_ready_after_someone_behind_was_let_in_is_out_of_order() {
        let mut s = Script::new(3);
        s.join_all(3, 0);
        s.poll_door(0, 500, 1, false);
        s.poll_door(2, 600, 3, true); // person 2 inside the window: so are 0 and 1
        s.poll_door(1, 601, 2, false); // overlaps the answer to 2 (601 < 601 fails): fine
        s.poll_door(0, 700, 1, true);
        s.enter(2, 800, 810, 200);
        s.poll_door(1, 900, 2, false); // after 601: out of order
        s.ledger.check_all();
        let t = s.ledger.tally();
        assert_eq!(t.violations, 1, "{t:?}");
        let v = &t.first_violations[0];
        assert_eq!(
            (v.kind, v.person),
            (ViolationKind::WindowOutOfOrder, Some(1))
        );
    }

    #[test]
    fn a_person_told_not_ready_after_being_let_in_is_out_of_order() {
        let mut s = Script::new(2);
        s.join_all(2, 0);
        s.poll_door(1, 500, 2, false); // behind someone not yet inside: fine
        s.poll_door(0, 600, 1, true);
        s.enter(0, 700, 710, 425);
        s.ledger.check_all();
        let t = s.ledger.tally();
        assert_eq!(t.violations, 1, "{t:?}");
        assert_eq!(t.first_violations[0].person, Some(0));
    }

    #[test]
    fn fenwick_prefix_counts_the_ranks_below() {
        let mut f = Fenwick::new(5);
        for i in [0, 2, 2, 4] {
            f.add(i);
        }
        assert_eq!(
            (0..=6).map(|e| f.prefix(e)).collect::<Vec<_>>(),
            [0, 1, 1, 3, 3, 4, 4]
        );
    }
}
