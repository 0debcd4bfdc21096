//! The in-process store: the embedded default for one instance, with the same answers as the
//! Redis store. One mutex guards everything; every operation is short and never awaits inside it.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{
    Admission, AuditEntry, Change, EnterOutcome, Figures, Gone, JoinOutcome, LeaveOutcome, Person,
    Place, Presence, Standing, StatusOutcome, Store, StoreError, SweepOutcome, AUDIT_LEN,
    KEY_SLACK_SECS,
};
use crate::clock::now_ms;
use crate::event::{EventConfig, EventId, EventState, Identity};

/// How far back the measured outflow looks (ms); the same as `lua/lib.lua`.
const OUTFLOW_WINDOW_MS: u64 = 60_000;

/// The in-process store.
#[derive(Default)]
pub struct MemoryStore {
    events: Mutex<HashMap<EventId, Event>>,
    /// Reservations and the work queue (`memory_reservations.rs`).
    pub(super) reservations: super::memory_reservations::Book,
}

struct Event {
    config: EventConfig,
    /// Newest last, at most `AUDIT_LEN`.
    audit: VecDeque<AuditEntry>,
    /// When a closed event's definition goes away (ms), like the Redis key's TTL.
    expires_at_ms: Option<u64>,
    /// People released and not yet entered (fractional: the door's carry).
    door_credit: f64,
    door_tick_ms: Option<u64>,
    queue: Queue,
}

/// What the Redis store keeps in the event's other keys (seq, wait, hb, people, ...).
#[derive(Default)]
struct Queue {
    /// When these keys expire (ms); refreshed by joins and enters, like the Redis keys' TTL.
    expires_at_ms: u64,
    seq: u64,
    /// Who is waiting, indexed by sequence, so a position is a prefix sum: O(log n).
    waiting: Fenwick,
    heartbeats: BTreeSet<(u64, String)>,
    people: HashMap<String, Record>,
    /// Live admissions: (expiry ms, admission id).
    active: BTreeSet<(u64, String)>,
    /// Admission times (ms) of the last minute.
    admits: VecDeque<u64>,
    redeemed: HashSet<String>,
    figures: Figures,
}

#[derive(Clone, PartialEq)]
enum State {
    Waiting,
    Admitted { id: String, expires_at_ms: u64 },
    Evicted,
    Left,
}

struct Record {
    state: State,
    place: Place,
    last_seen_ms: u64,
}

fn keep_ms(seconds: u32) -> u64 {
    (u64::from(seconds) + KEY_SLACK_SECS) * 1000
}

// === impl Event ===

impl Event {
    /// Advances the door to `now`; returns its window (see `door_tick` in `lua/lib.lua`).
    fn door_tick(&mut self, now: u64) -> u64 {
        let q = &mut self.queue;
        while q.active.first().is_some_and(|(exp, _)| *exp <= now) {
            q.active.pop_first();
        }
        let open = self.config.state_at(now) == EventState::Open;
        let mut last = self.door_tick_ms.unwrap_or(now);
        if let (EventState::Scheduled, Some(at)) = (self.config.state, self.config.opens_at) {
            // No credit for the time before a scheduled opening.
            last = last.max(at * 1000);
        }
        if open && now > last {
            self.door_credit += (now - last) as f64 * self.config.admission_rate / 1000.0;
        }
        let room = self.config.max_active.saturating_sub(q.active.len() as u64);
        let cap = room.min(q.waiting.total()) as f64;
        self.door_credit = self.door_credit.min(cap).max(0.0);
        self.door_tick_ms = Some(now);
        if open {
            self.door_credit.floor() as u64
        } else {
            0
        }
    }

    /// People admitted per second over the last minute (see `outflow` in `lua/lib.lua`).
    fn outflow(&mut self, now: u64) -> f64 {
        let admits = &mut self.queue.admits;
        while admits
            .front()
            .is_some_and(|&at| at <= now.saturating_sub(OUTFLOW_WINDOW_MS))
        {
            admits.pop_front();
        }
        match admits.front() {
            Some(&first) if admits.len() >= 2 => {
                let span = now.saturating_sub(first).max(1000) as f64;
                admits.len() as f64 * 1000.0 / span
            }
            _ => 0.0,
        }
    }

    /// See `eta` in `lua/lib.lua`.
    fn eta(&mut self, position: u64, window: u64, now: u64) -> Option<u64> {
        if position <= window {
            return Some(0);
        }
        let configured = self.config.admission_rate;
        if self.config.state_at(now) != EventState::Open || configured <= 0.0 {
            return None;
        }
        let measured = self.outflow(now);
        let rate = if measured > 0.0 { measured } else { configured };
        Some(((position - window) as f64 / rate).ceil() as u64)
    }

    fn standing(&mut self, seq: u64, now: u64) -> Standing {
        let window = self.door_tick(now);
        let position = self.queue.waiting.prefix_sum(seq);
        let (tier, poll_after_ms) = self.config.tier_of(position);
        Standing {
            position,
            tier,
            poll_after_ms,
            ready: position <= window,
            eta_secs: self.eta(position, window, now),
        }
    }

    /// The person's record if `seq` matches their current place.
    fn record(&self, person: &str, seq: u64) -> Result<&Record, StatusOutcome> {
        let rec = self
            .queue
            .people
            .get(person)
            .ok_or(StatusOutcome::Unknown)?;
        if rec.place.seq != seq {
            return Err(StatusOutcome::Superseded);
        }
        Ok(rec)
    }

    fn touch(&mut self, person: &str, now: u64) {
        if let Some(rec) = self.queue.people.get_mut(person) {
            let last = std::mem::replace(&mut rec.last_seen_ms, now);
            self.queue.heartbeats.remove(&(last, person.to_owned()));
            self.queue.heartbeats.insert((now, person.to_owned()));
        }
    }
}

fn gone_or_present(state: &State, now: u64) -> Result<Presence, Gone> {
    match state {
        State::Admitted { expires_at_ms, .. } if *expires_at_ms <= now => {
            Err(Gone::AdmissionExpired)
        }
        State::Admitted { expires_at_ms, .. } => Ok(Presence::Admitted {
            expires_at_ms: *expires_at_ms,
        }),
        State::Evicted => Err(Gone::Evicted),
        State::Left => Err(Gone::Left),
        // Callers handle waiting people first.
        State::Waiting => Err(Gone::Left),
    }
}

impl MemoryStore {
    /// Runs `f` on an event that exists (after applying key expiry), or answers `None`.
    fn with_event<T>(&self, event: &EventId, f: impl FnOnce(&mut Event, u64) -> T) -> Option<T> {
        let now = now_ms();
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        let entry = events.get_mut(event)?;
        if entry.expires_at_ms.is_some_and(|at| at <= now) {
            events.remove(event);
            return None;
        }
        if entry.queue.expires_at_ms != 0 && entry.queue.expires_at_ms <= now {
            entry.queue = Queue::default();
        }
        Some(f(entry, now))
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn put_event(
        &self,
        event: &EventId,
        config: &EventConfig,
        by: &str,
    ) -> Result<Change, StoreError> {
        let now = now_ms();
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        let existed = events.contains_key(event);
        let entry = events.entry(event.clone()).or_insert_with(|| Event {
            config: config.clone(),
            audit: VecDeque::new(),
            expires_at_ms: None,
            door_credit: 0.0,
            door_tick_ms: None,
            queue: Queue::default(),
        });
        // Credit the time before the change at the old rate.
        entry.door_tick(now);
        let old: HashMap<&str, String> = if existed {
            entry.config.to_fields().into_iter().collect()
        } else {
            HashMap::new()
        };
        let mut changes = serde_json::Map::new();
        for (field, value) in config.to_fields() {
            if old.get(field) != Some(&value) {
                let was = old
                    .get(field)
                    .map_or(serde_json::Value::Null, |v| v.clone().into());
                changes.insert(
                    field.to_owned(),
                    serde_json::json!({"old": was, "new": value}),
                );
            }
        }
        let version = entry.config.version + 1;
        entry.config = EventConfig {
            version,
            ..config.clone()
        };
        entry.expires_at_ms =
            (config.state == EventState::Closed).then(|| now + keep_ms(config.ticket_ttl_secs));
        let changes = serde_json::Value::Object(changes);
        if !existed || changes.as_object().is_some_and(|c| !c.is_empty()) {
            if entry.audit.len() == AUDIT_LEN {
                entry.audit.pop_front();
            }
            entry.audit.push_back(AuditEntry {
                at_ms: now,
                by: by.to_owned(),
                version,
                changes: changes.clone(),
            });
        }
        Ok(Change { version, changes })
    }

    async fn audit(&self, event: &EventId, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let entries = self.with_event(event, |e, _| {
            e.audit.iter().rev().take(limit).cloned().collect()
        });
        Ok(entries.unwrap_or_default())
    }

    async fn get_event(&self, event: &EventId) -> Result<Option<EventConfig>, StoreError> {
        Ok(self.with_event(event, |e, _| e.config.clone()))
    }

    async fn list_events(&self) -> Result<Vec<EventId>, StoreError> {
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        Ok(events.keys().cloned().collect())
    }

    async fn join(&self, event: &EventId, person: &Person) -> Result<JoinOutcome, StoreError> {
        let outcome = self.with_event(event, |e, now| {
            if person.claimed && e.config.identity != Identity::UserId {
                return JoinOutcome::ClaimRefused;
            }
            if let Some(rec) = e.queue.people.get(&person.id) {
                let place = rec.place.clone();
                match &rec.state {
                    State::Waiting => {
                        let standing = e.standing(place.seq, now);
                        return JoinOutcome::Placed {
                            place,
                            presence: Presence::Waiting(standing),
                            created: false,
                        };
                    }
                    State::Admitted { .. } => {
                        return JoinOutcome::Placed {
                            place,
                            presence: Presence::Admitted { expires_at_ms: 0 },
                            created: false,
                        }
                    }
                    // Evicted or left: joining again takes a new place at the back.
                    State::Evicted | State::Left => {}
                }
            }
            let state = e.config.state_at(now);
            if state != EventState::Open {
                return JoinOutcome::NotOpen(state.as_str().to_owned());
            }
            let q = &mut e.queue;
            if e.config.max_queue_len > 0 && q.waiting.total() >= e.config.max_queue_len {
                return JoinOutcome::Full;
            }
            q.seq += 1;
            let issued_at = now / 1000;
            let place = Place {
                seq: q.seq,
                issued_at,
                expires_at: issued_at + u64::from(e.config.ticket_ttl_secs),
            };
            q.waiting.add(place.seq, 1);
            q.heartbeats.insert((now, person.id.clone()));
            q.people.insert(
                person.id.clone(),
                Record {
                    state: State::Waiting,
                    place: place.clone(),
                    last_seen_ms: now,
                },
            );
            q.figures.joined_total += 1;
            q.expires_at_ms = now + keep_ms(e.config.ticket_ttl_secs);
            let standing = e.standing(place.seq, now);
            JoinOutcome::Placed {
                place,
                presence: Presence::Waiting(standing),
                created: true,
            }
        });
        Ok(outcome.unwrap_or(JoinOutcome::NoEvent))
    }

    async fn status(
        &self,
        event: &EventId,
        person: &str,
        seq: u64,
    ) -> Result<StatusOutcome, StoreError> {
        let outcome = self.with_event(event, |e, now| {
            let state = match e.record(person, seq) {
                Ok(rec) => rec.state.clone(),
                Err(outcome) => return outcome,
            };
            if state != State::Waiting {
                return match gone_or_present(&state, now) {
                    Ok(presence) => StatusOutcome::Present(presence),
                    Err(gone) => StatusOutcome::Gone(gone),
                };
            }
            e.touch(person, now);
            StatusOutcome::Present(Presence::Waiting(e.standing(seq, now)))
        });
        Ok(outcome.unwrap_or(StatusOutcome::Unknown))
    }

    async fn enter(
        &self,
        event: &EventId,
        person: &str,
        seq: u64,
        admission_id: &str,
        vip_only: bool,
    ) -> Result<EnterOutcome, StoreError> {
        let outcome = self.with_event(event, |e, now| {
            let state = match e.record(person, seq) {
                Ok(rec) => rec.state.clone(),
                Err(StatusOutcome::Superseded) => return EnterOutcome::Superseded,
                Err(_) => return EnterOutcome::Unknown,
            };
            match (&state, gone_or_present(&state, now)) {
                (State::Waiting, _) => {}
                (State::Admitted { id, .. }, Ok(Presence::Admitted { expires_at_ms })) => {
                    return EnterOutcome::Admitted(Admission {
                        id: id.clone(),
                        expires_at_ms,
                        new: false,
                    })
                }
                (_, Err(gone)) => return EnterOutcome::Gone(gone),
                (_, Ok(_)) => return EnterOutcome::Unknown,
            }
            e.touch(person, now);
            let standing = e.standing(seq, now);
            if vip_only && standing.tier != crate::event::Tier::Vip {
                return EnterOutcome::Limited;
            }
            if !standing.ready {
                return EnterOutcome::NotReady(standing);
            }
            let expires_at_ms = now + u64::from(e.config.admission_ttl_secs) * 1000;
            e.door_credit -= 1.0;
            let q = &mut e.queue;
            q.waiting.add(seq, -1);
            if let Some(rec) = q.people.get_mut(person) {
                q.heartbeats.remove(&(rec.last_seen_ms, person.to_owned()));
                rec.state = State::Admitted {
                    id: admission_id.to_owned(),
                    expires_at_ms,
                };
            }
            q.active.insert((expires_at_ms, admission_id.to_owned()));
            q.admits.push_back(now);
            q.figures.admitted_total += 1;
            let longest = e.config.admission_ttl_secs.max(e.config.ticket_ttl_secs);
            q.expires_at_ms = now + keep_ms(longest);
            EnterOutcome::Admitted(Admission {
                id: admission_id.to_owned(),
                expires_at_ms,
                new: true,
            })
        });
        Ok(outcome.unwrap_or(EnterOutcome::Unknown))
    }

    async fn redeem(
        &self,
        event: &EventId,
        admission_id: &str,
        expires_at: u64,
    ) -> Result<bool, StoreError> {
        let first = self.with_event(event, |e, now| {
            let q = &mut e.queue;
            if !q.redeemed.insert(admission_id.to_owned()) {
                return false;
            }
            q.active.retain(|(_, id)| id != admission_id);
            q.figures.redeemed_total += 1;
            // The record must outlive the token it guards.
            q.expires_at_ms = q
                .expires_at_ms
                .max(expires_at * 1000 + KEY_SLACK_SECS * 1000);
            let _ = now;
            true
        });
        Ok(first.unwrap_or(false))
    }

    async fn leave(
        &self,
        event: &EventId,
        person: &str,
        seq: u64,
    ) -> Result<LeaveOutcome, StoreError> {
        let outcome = self.with_event(event, |e, _| {
            let q = &mut e.queue;
            let Some(rec) = q.people.get_mut(person) else {
                return LeaveOutcome::Unknown;
            };
            if rec.place.seq != seq {
                return LeaveOutcome::Superseded;
            }
            match rec.state {
                State::Waiting => {
                    rec.state = State::Left;
                    q.waiting.add(seq, -1);
                    q.heartbeats.remove(&(rec.last_seen_ms, person.to_owned()));
                    q.figures.left_total += 1;
                    LeaveOutcome::Left { now: true }
                }
                State::Evicted => LeaveOutcome::Evicted,
                State::Left | State::Admitted { .. } => LeaveOutcome::Left { now: false },
            }
        });
        Ok(outcome.unwrap_or(LeaveOutcome::Unknown))
    }

    async fn sweep(&self, event: &EventId, batch: u32) -> Result<SweepOutcome, StoreError> {
        let outcome = self.with_event(event, |e, now| {
            let q = &mut e.queue;
            let cutoff = now.saturating_sub(u64::from(e.config.heartbeat_ttl_secs) * 1000);
            let mut evicted = 0;
            while evicted < u64::from(batch)
                && q.heartbeats
                    .first()
                    .is_some_and(|(seen, _)| *seen <= cutoff)
            {
                let Some((_, person)) = q.heartbeats.pop_first() else {
                    break;
                };
                if let Some(rec) = q.people.get_mut(&person) {
                    rec.state = State::Evicted;
                    q.waiting.add(rec.place.seq, -1);
                }
                evicted += 1;
            }
            q.figures.evicted_total += evicted;
            e.door_tick(now);
            SweepOutcome::Swept {
                evicted,
                waiting: e.queue.waiting.total(),
                active: e.queue.active.len() as u64,
            }
        });
        Ok(outcome.unwrap_or(SweepOutcome::NoEvent))
    }

    async fn figures(&self, event: &EventId) -> Result<Figures, StoreError> {
        let figures = self.with_event(event, |e, now| {
            let q = &e.queue;
            let cutoff = now.saturating_sub(OUTFLOW_WINDOW_MS);
            Figures {
                waiting: q.waiting.total(),
                active: q.active.iter().filter(|(exp, _)| *exp > now).count() as u64,
                door_window: e.door_credit,
                admitted_last_minute: q.admits.iter().filter(|&&at| at >= cutoff).count() as u64,
                ..q.figures
            }
        });
        Ok(figures.unwrap_or_default())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

// === impl Fenwick ===

/// A Fenwick (binary indexed) tree of counts by sequence number: point update and prefix sum in
/// O(log n). Its capacity doubles as sequences grow; doubling keeps every existing node valid,
/// because node `i` covers `(i - lowbit(i), i]` whatever the capacity.
#[derive(Default)]
struct Fenwick {
    /// 1-based; `tree[0]` is unused. Its length minus one is a power of two (or zero).
    tree: Vec<i64>,
}

impl Fenwick {
    fn add(&mut self, index: u64, delta: i64) {
        let index = index as usize;
        while self.tree.len() <= index {
            self.grow();
        }
        let mut i = index;
        while i < self.tree.len() {
            self.tree[i] += delta;
            i += i & i.wrapping_neg();
        }
    }

    fn grow(&mut self) {
        let capacity = self.tree.len().saturating_sub(1);
        if capacity == 0 {
            self.tree = vec![0; 2];
            return;
        }
        let total = self.prefix_sum(capacity as u64) as i64;
        self.tree.resize(2 * capacity + 1, 0);
        self.tree[2 * capacity] = total;
    }

    fn prefix_sum(&self, index: u64) -> u64 {
        let mut i = (index as usize).min(self.tree.len().saturating_sub(1));
        let mut sum = 0;
        while i > 0 {
            sum += self.tree[i];
            i &= i - 1;
        }
        sum.max(0) as u64
    }

    fn total(&self) -> u64 {
        self.prefix_sum(self.tree.len().saturating_sub(1) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::Fenwick;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn fenwick_prefix_sums_match_a_plain_count(ops in prop::collection::vec((1u64..300, any::<bool>()), 1..400)) {
            let mut tree = Fenwick::default();
            let mut present = std::collections::BTreeSet::new();
            for (index, insert) in ops {
                if insert && present.insert(index) {
                    tree.add(index, 1);
                } else if !insert && present.remove(&index) {
                    tree.add(index, -1);
                }
                for probe in [1, index, 150, 299] {
                    let expected = present.range(..=probe).count() as u64;
                    prop_assert_eq!(tree.prefix_sum(probe), expected);
                }
                prop_assert_eq!(tree.total(), present.len() as u64);
            }
        }
    }
}
