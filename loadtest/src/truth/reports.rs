//! What the crowd reports: joins, polls, enters and leaves, each moving the person's
//! `present_until` and `gone_by` (see the parent module).
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

use std::time::Instant;

use super::{Ledger, Life, Member, UncertainJoin, ViolationKind};
use crate::api::Exchange;

impl Ledger {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::truth::script::Script;

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
}
