//! A clock for scripted runs of the ledger, shared by the unit tests.

use std::time::{Duration, Instant};

use super::{Ledger, Timing};
use crate::api::Exchange;

const TTL: Duration = Duration::from_secs(2);
const SWEEP: Duration = Duration::from_millis(100);
const SLACK: Duration = Duration::from_millis(500);

/// A clock for scripted runs: instants at whole milliseconds after a start.
pub(super) struct Script {
    start: Instant,
    pub(super) ledger: Ledger,
}

impl Script {
    pub(super) fn new(people: usize) -> Self {
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

    pub(super) fn at(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms)
    }

    pub(super) fn exchange(&self, sent_ms: u64, received_ms: u64, status: u16) -> Exchange {
        Exchange {
            sent: self.at(sent_ms),
            received: self.at(received_ms),
            status,
            code: None,
        }
    }

    /// People `0..n` join one after the other at `ms`, each seeing the right position.
    pub(super) fn join_all(&mut self, n: usize, ms: u64) {
        for p in 0..n {
            self.ledger.join_started(p);
            let ex = self.exchange(ms, ms + 1, 201);
            self.ledger.joined(p, &ex, 100 + p as u64, p as u64 + 1);
        }
    }

    pub(super) fn poll(&mut self, person: usize, ms: u64, position: u64) {
        self.poll_door(person, ms, position, false);
    }

    pub(super) fn poll_door(&mut self, person: usize, ms: u64, position: u64, ready: bool) {
        let ex = self.exchange(ms, ms + 1, 200);
        self.ledger.status_ok(person, &ex, position, ready);
    }

    /// `person` sends an enter at `sent_ms`, answered `status` at `received_ms`.
    pub(super) fn enter(&mut self, person: usize, sent_ms: u64, received_ms: u64, status: u16) {
        self.ledger.enter_started(person, self.at(sent_ms));
        let ex = self.exchange(sent_ms, received_ms, status);
        self.ledger.enter_done(person, &ex);
    }
}
