//! The positions shown, and the rule they must obey.
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

use std::time::Instant;

use super::{Ledger, ViolationKind};
use crate::api::Exchange;

/// A position shown to someone, waiting to be checked.
#[derive(Clone, Copy, Debug)]
pub(super) struct Observation {
    person: usize,
    sent: Instant,
    received: Instant,
    position: u64,
}

impl Ledger {
    pub(super) fn observe(&mut self, person: usize, exchange: &Exchange, position: u64) {
        self.pending.push(Observation {
            person,
            sent: exchange.sent,
            received: exchange.received,
            position,
        });
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
    use crate::truth::script::Script;

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
