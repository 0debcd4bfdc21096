//! The door's window order: nobody is told "not yet" after someone behind them (or they
//! themselves) was let through.
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

use std::time::Instant;

use super::{Ledger, Member, ViolationKind};
use crate::api::Exchange;

impl Member {
    /// Notes an answer that showed the person through the door (`ready`) or not.
    pub(super) fn door(&mut self, exchange: &Exchange, ready: bool) {
        if ready {
            let r = exchange.received;
            self.first_ready = Some(self.first_ready.map_or(r, |f| f.min(r)));
        } else {
            let s = exchange.sent;
            self.last_not_ready = Some(self.last_not_ready.map_or(s, |l| l.max(s)));
        }
    }
}

impl Ledger {
    /// The window-order invariant (see the module's doc): going from the back of the queue to
    /// its head, keeps the earliest instant anyone at or behind was let through the door, and
    /// flags each person told "not yet" by a request sent after it. O(people log people).
    pub(super) fn check_window_order(&mut self) {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::truth::script::Script;

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
}
