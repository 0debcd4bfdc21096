//! The in-process store: the embedded default for one instance, with the same answers as the
//! Redis store (the conformance test, `tests/conformance.rs`, holds them together). One mutex
//! guards everything, so a step that the Redis store does in one script (join, reserve, …) is
//! one critical section here; every step is short and never awaits inside it.
//!
//! - [`queue`]: the queue ([`super::Store`]); the door's rules are in [`crate::door`].
//! - [`reservations`]: reservations and the work queue ([`super::reservations::Reservations`]).
//! - `fenwick`: exact positions in O(log n).
//!
//! Its clock is injected ([`Clock`]): a test can pin it, and then it matches a Redis store
//! pinned to the same instant answer for answer.

mod fenwick;
mod queue;
mod reservations;

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::clock::Clock;
use crate::event::EventId;

/// The in-process store.
#[derive(Default)]
pub struct MemoryStore {
    clock: Clock,
    state: Mutex<State>,
}

/// Everything the store holds.
#[derive(Default)]
struct State {
    /// What the Redis store keeps in the queue's keys, by event.
    events: HashMap<EventId, queue::Event>,
    /// Redeemed admissions by event and id, with when the record may go (ms). Apart from the
    /// events, like the Redis hash with its own TTL: the record lives as long as the token it
    /// guards, even after the event has drained away.
    redeemed: HashMap<EventId, HashMap<String, u64>>,
    /// Reservations and the work queue, by event.
    books: HashMap<EventId, reservations::EventBook>,
}

impl MemoryStore {
    /// A store on `clock`.
    pub fn new(clock: Clock) -> Self {
        Self {
            clock,
            state: Mutex::default(),
        }
    }

    /// The state and the time, read once per step.
    fn lock(&self) -> (MutexGuard<'_, State>, u64) {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        (state, self.clock.now_ms())
    }
}
