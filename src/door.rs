//! The door and the queue's rules (DESIGN semantics 6 and 7), as pure functions of an event's
//! valves, the door's stored state and the time.
//!
//! Each rule lives twice: here, for the in-process store, and in `lua/queue/door.lua`, for Redis
//! (a script cannot call Rust). Every function names its Lua twin, and the twin names it back;
//! the conformance test (`tests/conformance.rs`) runs the same generated operations against
//! both stores and compares every answer, so the two cannot drift apart unnoticed.
//!
//! The door opens the queue's head at `admission_rate` people per second, on the store's clock,
//! capped so that at most `max_active` admitted sessions are live and never more people than
//! are waiting. Its state is a credit (people released and not yet entered, fractional: the
//! carry between ticks) and the instant of its last tick.
//! - A *tick* ([`Door::tick`]) advances and persists the credit: enter, the sweeper and every
//!   valve change tick.
//! - A *peek* ([`Door::peek`]) reads the window without writing: status and join, which run on
//!   every poll, only peek. It gives the same answer a tick would.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::event::{EventConfig, EventState, Queueing, Tier};

/// How far back the measured outflow looks (ms). Twin: `OUTFLOW_WINDOW_MS` in
/// `lua/queue/door.lua`.
pub const OUTFLOW_WINDOW_MS: u64 = 60_000;

impl EventConfig {
    /// The state in force at `now_ms`: a scheduled event with `opens_at` opens by itself, on
    /// the store's clock, at the same instant for every gateway. Twin: `state_at`.
    pub fn state_at(&self, now_ms: u64) -> EventState {
        match self.opens_at {
            Some(at) if self.state == EventState::Scheduled && at * 1000 <= now_ms => {
                EventState::Open
            }
            _ => self.state,
        }
    }

    /// Whether joins at `now_ms` go into the pre-queue: a scheduled event between
    /// `prequeue_opens_at` and `opens_at` (DESIGN §18). Twin: `in_pre_queue`.
    pub fn in_pre_queue(&self, now_ms: u64) -> bool {
        self.state_at(now_ms) == EventState::Scheduled
            && self.prequeue_opens_at.is_some_and(|at| at * 1000 <= now_ms)
    }

    /// Whether a new place at `now_ms` is placed by the draw's rule rather than by sequence:
    /// in the pre-queue, or whenever the event admits in random order. Twin: `drawn_at`.
    pub fn drawn_at(&self, now_ms: u64) -> bool {
        self.in_pre_queue(now_ms)
            || (self.queueing == Queueing::Random && self.state_at(now_ms) == EventState::Open)
    }

    /// Whether the seed of the draw is needed: a pre-queue, or random order.
    pub fn needs_seed(&self) -> bool {
        self.prequeue_opens_at.is_some() || self.queueing == Queueing::Random
    }

    /// The tier and poll interval of a waiting person at `position`. Twin: `tier_of`.
    pub fn tier_of(&self, position: u64) -> (Tier, u32) {
        if position <= u64::from(self.vip_size) {
            (Tier::Vip, self.fast_poll_ms)
        } else if position <= u64::from(self.fast_upto) {
            (Tier::Fast, self.fast_poll_ms)
        } else {
            (Tier::Slow, self.slow_poll_ms)
        }
    }

    /// The instant from which the door earns credit, given its last tick: no credit for the
    /// time before a scheduled opening.
    fn credit_from(&self, last_ms: u64) -> u64 {
        match (self.state, self.opens_at) {
            (EventState::Scheduled, Some(at)) => last_ms.max(at * 1000),
            _ => last_ms,
        }
    }
}

/// A number as Redis keeps it: Lua's `tostring` writes 14 significant digits. The in-process
/// store rounds its stored numbers the same way, so both stores floor the same credit.
pub fn stored(x: f64) -> f64 {
    format!("{x:.13e}").parse().unwrap_or(x)
}

/// The door's stored state.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Door {
    /// People released and not yet entered, as stored (see [`stored`]).
    pub credit: f64,
    /// The last tick (store clock, ms); `None` before the first.
    pub tick_ms: Option<u64>,
}

/// What the door looks at besides its valves: the queue's size and the live sessions.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    /// People waiting.
    pub waiting: u64,
    /// Admitted sessions not yet expired (nor redeemed).
    pub active: u64,
}

impl Load {
    /// Never release more people than are waiting, nor more than the live sessions leave room
    /// for. Twin: the `cap` lines of `door_tick` and `door_peek`.
    fn cap(self, config: &EventConfig) -> f64 {
        config
            .max_active
            .saturating_sub(self.active)
            .min(self.waiting) as f64
    }
}

/// The window of a door that lets everyone in (`queueing: passthrough`): larger than any queue.
/// Twin: `EVERYONE`.
pub const EVERYONE: u64 = 1 << 52;

impl Door {
    /// The credit at `now`, uncapped: the stored credit plus what the time since the last tick
    /// earned while open.
    fn earned(&self, config: &EventConfig, now: u64) -> f64 {
        let last = config.credit_from(self.tick_ms.unwrap_or(now));
        let mut credit = self.credit;
        if config.state_at(now) == EventState::Open && now > last {
            credit += (now - last) as f64 * config.admission_rate / 1000.0;
        }
        credit
    }

    /// Advances the door to `now` and persists it; returns the unrounded credit (what enter
    /// takes one from) and the window: how many people from the head may enter. Ticks from any
    /// number of gateways are serialised by the store and credit only the time elapsed since the
    /// previous tick, so together they never release more than `admission_rate` allows.
    /// Twin: `door_tick`.
    pub fn tick(&mut self, config: &EventConfig, now: u64, load: Load) -> (f64, u64) {
        let credit = self.earned(config, now).min(load.cap(config)).max(0.0);
        self.credit = stored(credit);
        self.tick_ms = Some(now);
        let window = match (config.state_at(now), config.queueing) {
            (EventState::Open, Queueing::Passthrough) => EVERYONE,
            (EventState::Open, _) => credit.floor() as u64,
            _ => 0,
        };
        (credit, window)
    }

    /// Below capacity the room is invisible: a person who joins when nobody waits (`load`
    /// counts them already) and the door is open with room is let in at once, so the door's
    /// credit becomes at least one. Does nothing otherwise; a shut door (rate 0) stays shut.
    /// Twin: `door_open_for_one`.
    pub fn open_for_one(&mut self, config: &EventConfig, now: u64, load: Load) {
        let open = config.state_at(now) == EventState::Open && config.admission_rate > 0.0;
        if !open || load.waiting != 1 || load.active >= config.max_active {
            return;
        }
        let (credit, _) = self.tick(config, now, load);
        if credit < 1.0 {
            self.credit = 1.0;
        }
    }

    /// The window at `now` for a person at `position`, without writing. The cap only ever
    /// lowers the window, so it matters only when the person could be inside it (the Lua twin
    /// reads the cap's two counts only then). Twin: `door_peek`.
    pub fn peek(&self, config: &EventConfig, now: u64, position: u64, load: Load) -> u64 {
        match (config.state_at(now), config.queueing) {
            (EventState::Open, Queueing::Passthrough) => return EVERYONE,
            (EventState::Open, _) => {}
            _ => return 0,
        }
        let window = self.earned(config, now).floor() as u64;
        if position > window {
            return window;
        }
        window.min(load.cap(config) as u64)
    }
}

/// Seconds until a waiting person at `position` can expect to be let in; `None` while unknown
/// (outside the window of a door that releases nobody: not open, or rate 0). The rate is the
/// outflow the sweeper measured, or the configured rate before there is one. Twin: `eta`.
pub fn eta(
    config: &EventConfig,
    position: u64,
    window: u64,
    now: u64,
    outflow_rate: f64,
) -> Option<u64> {
    if position <= window {
        return Some(0);
    }
    let configured = config.admission_rate;
    if config.state_at(now) != EventState::Open || configured <= 0.0 {
        return None;
    }
    let rate = if outflow_rate > 0.0 {
        outflow_rate
    } else {
        configured
    };
    Some(((position - window) as f64 / rate).ceil() as u64)
}

/// People admitted per second over the last minute (or since the first admission in it, if
/// more recent), from the admission instants inside the window, oldest first; 0 until there
/// are two, since one says nothing about a rate. Twin: `measure_outflow`.
pub fn outflow(admits_in_window: &[u64], now: u64) -> f64 {
    match admits_in_window {
        [first, _, ..] => {
            let span = now.saturating_sub(*first).max(1000) as f64;
            stored(admits_in_window.len() as f64 * 1000.0 / span)
        }
        _ => 0.0,
    }
}

/// A person's place in the pre-queue's draw: ascending HMAC-SHA256(key = the seed, message =
/// the ticket's `jti`), as anyone can recompute it from the seed revealed at the opening. The
/// first 53 bits of the MAC, shifted below zero, so every drawn place sorts ahead of every FIFO
/// sequence (which starts at 1) and stays exact in a Redis sorted set's double score. (Two
/// people share the first 53 bits with a chance of about n²/2^54: 1 in 18,000 for a million;
/// they are then ordered by person id.) Computed in Rust for both stores: Lua has no HMAC.
pub fn draw_score(seed: &[u8], jti: &str) -> i64 {
    let mut mac = Hmac::<Sha256>::new_from_slice(seed).expect("HMAC takes a key of any length");
    mac.update(jti.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) >> 11) as i64 - (1i64 << 53)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    fn open(rate: f64, max_active: u64) -> EventConfig {
        EventConfig {
            state: EventState::Open,
            admission_rate: rate,
            max_active,
            ..EventConfig::default()
        }
    }

    #[test]
    fn the_door_earns_its_rate_and_never_more_than_the_cap() {
        let config = open(2.0, 3);
        let mut door = Door::default();
        let load = Load {
            waiting: 10,
            active: 0,
        };
        assert_eq!(door.tick(&config, 1_000, load).1, 0);
        assert_eq!(door.tick(&config, 2_000, load).1, 2);
        // Five seconds more would earn 10, but max_active leaves room for 3.
        assert_eq!(door.tick(&config, 7_000, load).1, 3);
        assert_eq!(door.credit, 3.0);
    }

    #[test]
    fn a_peek_answers_what_a_tick_would_without_writing() {
        let config = open(1.5, 100);
        let mut door = Door::default();
        let load = Load {
            waiting: 4,
            active: 0,
        };
        door.tick(&config, 0, load);
        for position in 1..=6 {
            let peeked = door.peek(&config, 10_000, position, load);
            let mut ticked = door;
            let (_, window) = ticked.tick(&config, 10_000, load);
            assert_eq!(
                position <= peeked,
                position <= window,
                "position {position}"
            );
        }
        assert_eq!(door.tick_ms, Some(0));
    }

    /// The draw is uniform: over 2,000 draws of 5 people (seeds fixed, so it cannot flake),
    /// each person's place passes a chi-square test at the 0.1% level (4 degrees of freedom:
    /// 18.47). A draw that favoured, say, the earliest joiner would fail it.
    #[test]
    fn the_draw_places_everyone_uniformly() {
        const DRAWS: usize = 2000;
        const PEOPLE: usize = 5;
        let mut counts = [[0u32; PEOPLE]; PEOPLE];
        for draw in 0..DRAWS {
            let seed: [u8; 32] = Sha256::digest((draw as u64).to_be_bytes()).into();
            let mut order: Vec<(i64, usize)> = (0..PEOPLE)
                .map(|person| (draw_score(&seed, &format!("sale:{}", person + 1)), person))
                .collect();
            order.sort();
            for (place, (_, person)) in order.into_iter().enumerate() {
                counts[person][place] += 1;
            }
        }
        let expected = (DRAWS / PEOPLE) as f64;
        for (person, places) in counts.iter().enumerate() {
            let chi2: f64 = places
                .iter()
                .map(|&n| (f64::from(n) - expected).powi(2) / expected)
                .sum();
            assert!(
                chi2 < 18.47,
                "person {person}: places {places:?}, chi2 {chi2:.2}"
            );
        }
    }

    #[test]
    fn draw_scores_sort_ahead_of_every_sequence() {
        for jti in ["sale:1", "sale:2", "x:999999"] {
            let score = draw_score(&[7; 32], jti);
            assert!((-(1i64 << 53)..0).contains(&score), "{score}");
        }
    }

    #[test]
    fn stored_numbers_keep_fourteen_significant_digits() {
        assert_eq!(stored(0.1 + 0.2), 0.3);
        assert_eq!(stored(2.0 / 3.0), 0.666_666_666_666_67);
        assert_eq!(stored(12345.0), 12345.0);
    }
}
