//! Reservations in process ([`Reservations`]): the same answers as the scripts of
//! `lua/reservations/`, with an in-memory work queue that has consumer-group semantics (pending
//! entries per consumer, delivery counts, acknowledgement, backoff retries, reclaim of idle
//! entries, dead letters). Under the store's one lock, like the queue.

use std::collections::{BTreeMap, HashMap, VecDeque};

use async_trait::async_trait;

use super::MemoryStore;
use crate::event::EventId;
use crate::store::reservations::{
    encode_items, Backlog, ClaimPolicy, DeadLetter, Delivery, NewReservation, Queued, Reservation,
    ReservationState, Reservations, ReserveOutcome, Settlement, MAX_OPEN, RETENTION_SECS,
};
use crate::store::StoreError;

/// Dead letters kept per event, as in the Redis store.
const DEAD_LETTERS_KEPT: usize = 10_000;

/// How often expired records are dropped (ms); lookups check expiry themselves.
const PURGE_EVERY_MS: u64 = 1000;

/// An event's reservations and work queue.
#[derive(Default)]
pub(super) struct EventBook {
    /// Work entries by id (ids grow); acknowledged entries are removed, as `XDEL` does.
    work: BTreeMap<u64, Queued>,
    next_id: u64,
    /// The group's last delivered id: entries above it are new.
    last_delivered: u64,
    /// Delivered and not acknowledged: the group's pending entries list.
    pending: BTreeMap<u64, Pending>,
    /// When the work stream expires (ms), refreshed by every reserve.
    work_expires_ms: u64,
    dead: VecDeque<DeadLetter>,
    /// Each person's pending reservations, oldest first, and when the stream expires.
    people: HashMap<String, (VecDeque<Queued>, u64)>,
    reservations: HashMap<String, (Reservation, u64)>,
    /// (person, key) -> (reservation id, body hash, expiry ms).
    idempotency: HashMap<(String, String), (String, String, u64)>,
    last_purge_ms: u64,
}

struct Pending {
    consumer: String,
    delivered_ms: u64,
    deliveries: u64,
}

fn parse_id(id: &str) -> Option<u64> {
    id.parse().ok()
}

// === impl EventBook ===

impl EventBook {
    /// Drops what would have expired in Redis.
    fn purge(&mut self, now: u64) {
        if now < self.last_purge_ms + PURGE_EVERY_MS {
            return;
        }
        self.last_purge_ms = now;
        if self.work_expires_ms != 0 && self.work_expires_ms <= now {
            self.work.clear();
            self.pending.clear();
            self.last_delivered = 0;
            self.work_expires_ms = 0;
        }
        self.people.retain(|_, (_, exp)| *exp > now);
        self.reservations.retain(|_, (_, exp)| *exp > now);
        self.idempotency.retain(|_, (_, _, exp)| *exp > now);
    }

    /// Records a reservation (twin: reserve.lua, after its event check).
    fn reserve(&mut self, new: &NewReservation, now: u64) -> ReserveOutcome {
        let retention_ms = RETENTION_SECS * 1000;
        let key = (new.person.clone(), new.idempotency_key.clone());
        if let Some((id, hash, exp)) = self.idempotency.get(&key) {
            if *exp > now {
                if *hash != new.body_hash {
                    return ReserveOutcome::Conflict;
                }
                return ReserveOutcome::Accepted {
                    id: id.clone(),
                    new: false,
                };
            }
        }
        let open = self
            .people
            .get(&new.person)
            .filter(|(_, exp)| *exp > now)
            .map_or(0, |(stream, _)| stream.len());
        if open >= MAX_OPEN as usize {
            return ReserveOutcome::TooManyOpen;
        }
        self.next_id += 1;
        let queued = Queued {
            id: new.id.clone(),
            person: new.person.clone(),
            items: new.items.clone(),
            work_id: self.next_id.to_string(),
            created_ms: now,
        };
        self.work.insert(self.next_id, queued.clone());
        self.work_expires_ms = now + retention_ms;
        let (stream, exp) = self
            .people
            .entry(new.person.clone())
            .or_insert_with(|| (VecDeque::new(), 0));
        if *exp <= now {
            stream.clear();
        }
        stream.push_back(queued);
        *exp = now + retention_ms;
        let reservation = Reservation {
            id: new.id.clone(),
            person: new.person.clone(),
            state: ReservationState::Pending,
            reason: None,
            items: new.items.clone(),
            hold_expires_at_ms: None,
        };
        self.reservations
            .insert(new.id.clone(), (reservation, now + retention_ms));
        self.idempotency.insert(
            key,
            (new.id.clone(), new.body_hash.clone(), now + retention_ms),
        );
        ReserveOutcome::Accepted {
            id: new.id.clone(),
            new: true,
        }
    }

    fn remove_from_person(&mut self, person: &str, id: &str) {
        if let Some((stream, _)) = self.people.get_mut(person) {
            stream.retain(|q| q.id != id);
        }
    }

    fn ack(&mut self, work_id: &str) {
        if let Some(id) = parse_id(work_id) {
            self.pending.remove(&id);
            self.work.remove(&id);
        }
    }

    fn deliver(&mut self, id: u64, deliveries: u64) -> Option<Delivery> {
        let Some(entry) = self.work.get(&id) else {
            // Deleted meanwhile: dropped from the pending list, as XCLAIM does.
            self.pending.remove(&id);
            return None;
        };
        Some(Delivery {
            work_id: id.to_string(),
            deliveries,
            raw: vec![
                ("rid".into(), entry.id.clone()),
                ("person".into(), entry.person.clone()),
                ("items".into(), encode_items(&entry.items)),
                ("at".into(), entry.created_ms.to_string()),
            ],
            entry: Some(entry.clone()),
        })
    }
}

impl MemoryStore {
    fn with_book<T>(&self, event: &EventId, f: impl FnOnce(&mut EventBook, u64) -> T) -> T {
        let (mut state, now) = self.lock();
        let book = state.books.entry(event.clone()).or_default();
        book.purge(now);
        f(book, now)
    }
}

#[async_trait]
impl Reservations for MemoryStore {
    async fn reserve(
        &self,
        event: &EventId,
        new: &NewReservation,
    ) -> Result<ReserveOutcome, StoreError> {
        let (mut state, now) = self.lock();
        // One step, as reserve.lua is: the event checked and the reservation written under
        // the same lock.
        if state.event(event, now).is_none() {
            return Ok(ReserveOutcome::NoEvent);
        }
        // Twin: reserve.lua's check of the redeemed admissions.
        let redeemed = state
            .redeemed
            .get(event)
            .and_then(|r| r.get(&new.admission))
            .is_some_and(|keep_until| *keep_until > now);
        if redeemed {
            return Ok(ReserveOutcome::Redeemed);
        }
        let book = state.books.entry(event.clone()).or_default();
        book.purge(now);
        Ok(book.reserve(new, now))
    }

    async fn reservation(
        &self,
        event: &EventId,
        id: &str,
    ) -> Result<Option<Reservation>, StoreError> {
        Ok(self.with_book(event, |book, now| {
            book.reservations
                .get(id)
                .filter(|(_, exp)| *exp > now)
                .map(|(r, _)| r.clone())
        }))
    }

    async fn next_batch(
        &self,
        event: &EventId,
        consumer: &str,
        count: usize,
        policy: ClaimPolicy,
    ) -> Result<Vec<Delivery>, StoreError> {
        Ok(self.with_book(event, |book, now| {
            let base = policy.retry_base_ms.max(1);
            let mut due = Vec::new();
            // 1. This consumer's failed entries, after their backoff: of its oldest `count`
            // entries idle for the base, those whose backoff has passed (twin: next_batch.lua's
            // XPENDING IDLE … COUNT).
            let mine = book.pending.iter().filter(|(_, p)| {
                p.consumer == consumer && now.saturating_sub(p.delivered_ms) >= base
            });
            for (id, p) in mine.take(count) {
                let backoff = base
                    .saturating_mul(1 << p.deliveries.saturating_sub(1).min(32))
                    .min(policy.retry_max_ms);
                if now.saturating_sub(p.delivered_ms) >= backoff {
                    due.push(*id);
                }
            }
            // 2. Entries idle on any consumer (a dead worker's).
            for (id, p) in &book.pending {
                if due.len() >= count {
                    break;
                }
                if now.saturating_sub(p.delivered_ms) >= policy.claim_idle_ms && !due.contains(id) {
                    due.push(*id);
                }
            }
            let mut out = Vec::new();
            for id in due {
                let Some(p) = book.pending.get_mut(&id) else {
                    continue;
                };
                p.consumer = consumer.to_owned();
                p.delivered_ms = now;
                p.deliveries += 1;
                let deliveries = p.deliveries;
                out.extend(book.deliver(id, deliveries));
            }
            // 3. New entries.
            let fresh: Vec<u64> = book
                .work
                .range(book.last_delivered + 1..)
                .map(|(id, _)| *id)
                .take(count.saturating_sub(out.len()))
                .collect();
            for id in fresh {
                book.last_delivered = id;
                book.pending.insert(
                    id,
                    Pending {
                        consumer: consumer.to_owned(),
                        delivered_ms: now,
                        deliveries: 1,
                    },
                );
                out.extend(book.deliver(id, 1));
            }
            out
        }))
    }

    async fn chains(
        &self,
        event: &EventId,
        people: &[String],
    ) -> Result<Vec<Vec<Queued>>, StoreError> {
        Ok(self.with_book(event, |book, now| {
            people
                .iter()
                .map(|person| {
                    book.people
                        .get(person)
                        .filter(|(_, exp)| *exp > now)
                        .map(|(stream, _)| stream.iter().cloned().collect())
                        .unwrap_or_default()
                })
                .collect()
        }))
    }

    async fn settle(
        &self,
        event: &EventId,
        results: &[Settlement],
    ) -> Result<Vec<String>, StoreError> {
        Ok(self.with_book(event, |book, now| {
            let mut changed = Vec::new();
            for r in results {
                if let Some((reservation, exp)) = book.reservations.get_mut(&r.id) {
                    if reservation.state == ReservationState::Pending {
                        reservation.state = r.state;
                        reservation.reason = r.reason.clone();
                        reservation.hold_expires_at_ms = r.hold_expires_at_ms;
                        *exp = now + RETENTION_SECS * 1000;
                        changed.push(r.id.clone());
                    }
                }
                book.remove_from_person(&r.person, &r.id);
                book.ack(&r.work_id);
            }
            changed
        }))
    }

    async fn end_hold(
        &self,
        event: &EventId,
        id: &str,
        state: ReservationState,
    ) -> Result<bool, StoreError> {
        // Twin: lua/reservations/end_hold.lua.
        Ok(
            self.with_book(event, |book, now| match book.reservations.get_mut(id) {
                Some((reservation, exp))
                    if *exp > now
                        && reservation.state == ReservationState::Confirmed
                        && state.ends_hold() =>
                {
                    reservation.state = state;
                    *exp = now + RETENTION_SECS * 1000;
                    true
                }
                _ => false,
            }),
        )
    }

    async fn ack(&self, event: &EventId, work_ids: &[String]) -> Result<(), StoreError> {
        self.with_book(event, |book, _| {
            for id in work_ids {
                book.ack(id);
            }
        });
        Ok(())
    }

    async fn dead_letter(
        &self,
        event: &EventId,
        delivery: &Delivery,
        error: &str,
    ) -> Result<(), StoreError> {
        self.with_book(event, |book, _| {
            book.dead.push_back(DeadLetter {
                work_id: delivery.work_id.clone(),
                reservation_id: delivery.entry.as_ref().map(|q| q.id.clone()),
                error: error.to_owned(),
                deliveries: delivery.deliveries,
            });
            while book.dead.len() > DEAD_LETTERS_KEPT {
                book.dead.pop_front();
            }
            if let Some(q) = &delivery.entry {
                if let Some((reservation, _)) = book.reservations.get_mut(&q.id) {
                    if reservation.state == ReservationState::Pending {
                        reservation.state = ReservationState::Rejected;
                        reservation.reason = Some("failed".into());
                    }
                }
                book.remove_from_person(&q.person, &q.id);
            }
            book.ack(&delivery.work_id);
        });
        Ok(())
    }

    async fn dead_letters(
        &self,
        event: &EventId,
        count: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        Ok(self.with_book(event, |book, _| {
            let skip = book.dead.len().saturating_sub(count);
            book.dead.iter().skip(skip).cloned().collect()
        }))
    }

    async fn backlog(&self, event: &EventId) -> Result<Backlog, StoreError> {
        Ok(self.with_book(event, |book, _| Backlog {
            lag: (book.work.len() - book.pending.len().min(book.work.len())) as u64,
            pending: book.pending.len() as u64,
            dead: book.dead.len() as u64,
        }))
    }
}
