//! The in-process store: the embedded default for one instance, with the same answers as the
//! Redis store. One mutex guards everything; every operation is short and never awaits inside it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use super::{
    Figures, JoinOutcome, LeaveOutcome, Person, PersonState, Place, StatusOutcome, Store,
    StoreError, SweepOutcome, KEY_SLACK_SECS,
};
use crate::event::{EventConfig, EventId, EventState, Identity};

/// The in-process store.
#[derive(Default)]
pub struct MemoryStore {
    events: Mutex<HashMap<EventId, Event>>,
}

struct Event {
    config: EventConfig,
    /// When a closed event's definition goes away (ms), like the Redis key's TTL.
    expires_at_ms: Option<u64>,
    queue: Queue,
}

/// What the Redis store keeps in the seq, wait, hb, people and stats keys.
#[derive(Default)]
struct Queue {
    /// When these keys expire (ms); refreshed by every join, like the Redis keys' TTL.
    expires_at_ms: u64,
    seq: u64,
    /// Who is waiting, indexed by sequence, so a position is a prefix sum: O(log n).
    waiting: Fenwick,
    heartbeats: BTreeSet<(u64, String)>,
    people: HashMap<String, Record>,
    figures: Figures,
}

struct Record {
    state: PersonState,
    place: Place,
    last_seen_ms: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
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
    async fn put_event(&self, event: &EventId, config: &EventConfig) -> Result<u64, StoreError> {
        let now = now_ms();
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        let entry = events.entry(event.clone()).or_insert_with(|| Event {
            config: config.clone(),
            expires_at_ms: None,
            queue: Queue::default(),
        });
        let version = entry.config.version + 1;
        entry.config = EventConfig {
            version,
            ..config.clone()
        };
        entry.expires_at_ms = (config.state == EventState::Closed)
            .then(|| now + (u64::from(config.ticket_ttl_secs) + KEY_SLACK_SECS) * 1000);
        Ok(version)
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
            let q = &mut e.queue;
            if let Some(rec) = q.people.get(&person.id) {
                if rec.state == PersonState::Waiting {
                    let position = q.waiting.prefix_sum(rec.place.seq);
                    return placed(&e.config, rec.place.clone(), position, false);
                }
            }
            if e.config.state != EventState::Open {
                return JoinOutcome::NotOpen(e.config.state.as_str().to_owned());
            }
            let waiting = q.waiting.total();
            if e.config.max_queue_len > 0 && waiting >= e.config.max_queue_len {
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
            let record = Record {
                state: PersonState::Waiting,
                place: place.clone(),
                last_seen_ms: now,
            };
            if let Some(old) = q.people.insert(person.id.clone(), record) {
                q.heartbeats.remove(&(old.last_seen_ms, person.id.clone()));
            }
            q.figures.joined_total += 1;
            q.expires_at_ms = now + (u64::from(e.config.ticket_ttl_secs) + KEY_SLACK_SECS) * 1000;
            placed(&e.config, place, waiting + 1, true)
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
            let q = &mut e.queue;
            let Some(rec) = q.people.get_mut(person) else {
                return StatusOutcome::Unknown;
            };
            if rec.place.seq != seq {
                return StatusOutcome::Superseded;
            }
            if rec.state != PersonState::Waiting {
                return StatusOutcome::Gone(rec.state);
            }
            let last = std::mem::replace(&mut rec.last_seen_ms, now);
            q.heartbeats.remove(&(last, person.to_owned()));
            q.heartbeats.insert((now, person.to_owned()));
            let position = q.waiting.prefix_sum(seq);
            let (tier, poll_after_ms) = e.config.tier_of(position);
            StatusOutcome::Waiting(super::Standing {
                position,
                tier,
                poll_after_ms,
            })
        });
        Ok(outcome.unwrap_or(StatusOutcome::Unknown))
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
                PersonState::Waiting => {
                    rec.state = PersonState::Left;
                    q.waiting.add(seq, -1);
                    q.heartbeats.remove(&(rec.last_seen_ms, person.to_owned()));
                    q.figures.left_total += 1;
                    LeaveOutcome::Left
                }
                PersonState::Left => LeaveOutcome::Left,
                PersonState::Evicted => LeaveOutcome::Evicted,
            }
        });
        Ok(outcome.unwrap_or(LeaveOutcome::Unknown))
    }

    async fn sweep(&self, event: &EventId, batch: u32) -> Result<SweepOutcome, StoreError> {
        let outcome = self.with_event(event, |e, now| {
            let q = &mut e.queue;
            let cutoff = now.saturating_sub(u64::from(e.config.heartbeat_ttl_secs) * 1000);
            let mut evicted = 0;
            while evicted < u64::from(batch) {
                let Some(first) = q.heartbeats.first() else {
                    break;
                };
                if first.0 > cutoff {
                    break;
                }
                let Some((_, person)) = q.heartbeats.pop_first() else {
                    break;
                };
                if let Some(rec) = q.people.get_mut(&person) {
                    rec.state = PersonState::Evicted;
                    q.waiting.add(rec.place.seq, -1);
                }
                evicted += 1;
            }
            q.figures.evicted_total += evicted;
            SweepOutcome::Swept {
                evicted,
                waiting: q.waiting.total(),
            }
        });
        Ok(outcome.unwrap_or(SweepOutcome::NoEvent))
    }

    async fn figures(&self, event: &EventId) -> Result<Figures, StoreError> {
        let figures = self.with_event(event, |e, _| Figures {
            waiting: e.queue.waiting.total(),
            ..e.queue.figures
        });
        Ok(figures.unwrap_or_default())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

fn placed(config: &EventConfig, place: Place, position: u64, created: bool) -> JoinOutcome {
    let (tier, poll_after_ms) = config.tier_of(position);
    JoinOutcome::Placed {
        place,
        standing: super::Standing {
            position,
            tier,
            poll_after_ms,
        },
        created,
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
