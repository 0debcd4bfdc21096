//! The queue in process ([`Store`]): the same steps as the scripts of `lua/queue/`, each under
//! the store's one lock. The door's rules are [`crate::door`]'s, as `lua/queue/door.lua` is
//! their twin for Redis.

use std::collections::{BTreeSet, HashMap, VecDeque};

use async_trait::async_trait;

use super::fenwick::Fenwick;
use super::{MemoryStore, State};
use crate::door::{self, Door, Load, OUTFLOW_WINDOW_MS};
use crate::event::{EventConfig, EventId, EventState, Identity, Queueing, Tier};
use crate::store::{
    Admission, AuditEntry, Change, Draw, EnterOutcome, Figures, Gone, JoinOutcome, LeaveOutcome,
    Origin, Person, Place, Presence, Standing, StatusOutcome, Store, StoreError, SweepOutcome,
    AUDIT_LEN, KEY_SLACK_SECS,
};

/// What the Redis store keeps in an event's meta hash and audit stream.
pub(super) struct Event {
    config: EventConfig,
    /// Newest last, at most `AUDIT_LEN`.
    audit: VecDeque<AuditEntry>,
    /// When a closed event's definition goes away (ms), like the Redis key's TTL.
    expires_at_ms: Option<u64>,
    door: Door,
    /// The outflow the sweeper measured (people/s), as stored.
    outflow_rate: f64,
    /// The pre-queue's draw seed, fixed when a pre-queue is first configured.
    draw_seed: Option<[u8; 32]>,
    queue: Queue,
}

/// What the Redis store keeps in the event's other keys (seq, wait, hb, people, ...).
#[derive(Default)]
struct Queue {
    /// When these keys expire (ms); refreshed by joins and enters, like the Redis keys' TTL.
    expires_at_ms: u64,
    seq: u64,
    /// Who is waiting, in order.
    waiting: Line,
    /// Everyone in the pre-queue's draw, by (score, sequence as text: Redis's member order);
    /// frozen at the opening.
    draw: BTreeSet<(i64, String)>,
    heartbeats: BTreeSet<(u64, String)>,
    people: HashMap<String, Record>,
    /// Live admissions: (expiry ms, admission id).
    active: BTreeSet<(u64, String)>,
    /// Admission times (ms), oldest first; trimmed to the outflow window by the sweeper.
    admits: VecDeque<u64>,
    figures: Figures,
}

#[derive(Clone, PartialEq)]
enum Stage {
    Waiting,
    Admitted { id: String, expires_at_ms: u64 },
    Evicted,
    Left,
}

struct Record {
    state: Stage,
    place: Place,
    /// The order key: the sequence, or (drawn in the pre-queue) the draw score, below zero.
    score: i64,
    last_seen_ms: u64,
}

/// The people waiting, in order: the drawn people first, by (score, person) as a Redis sorted
/// set orders them, then everyone else by sequence. Each position is O(log n).
#[derive(Default)]
struct Line {
    /// People who joined in FIFO order, indexed by sequence: a position is a prefix sum.
    fifo: Fenwick,
    /// Drawn people still waiting, in an order-statistic tree: a position is a rank.
    drawn: indexset::BTreeSet<(i64, String)>,
}

impl Line {
    fn total(&self) -> u64 {
        self.fifo.total() + self.drawn.len() as u64
    }

    fn add(&mut self, person: &str, rec: &Record) {
        if rec.score < 0 {
            self.drawn.insert((rec.score, person.to_owned()));
        } else {
            self.fifo.add(rec.place.seq, 1);
        }
    }

    fn remove(&mut self, person: &str, rec: &Record) {
        if rec.score < 0 {
            self.drawn.remove(&(rec.score, person.to_owned()));
        } else {
            self.fifo.add(rec.place.seq, -1);
        }
    }

    fn position(&self, person: &str, rec: &Record) -> u64 {
        if rec.score < 0 {
            self.drawn.rank(&(rec.score, person.to_owned())) as u64 + 1
        } else {
            self.drawn.len() as u64 + self.fifo.prefix_sum(rec.place.seq)
        }
    }
}

/// How long keys that must outlive a ticket (or admission) of `seconds` are kept (ms).
fn keep_ms(seconds: u32) -> u64 {
    (u64::from(seconds) + KEY_SLACK_SECS) * 1000
}

// === impl Event ===

impl Event {
    fn new(config: &EventConfig, now: u64) -> Self {
        Self {
            config: config.clone(),
            audit: VecDeque::new(),
            expires_at_ms: None,
            // The door's clock starts now: joins and polls only peek at it.
            door: Door {
                credit: 0.0,
                tick_ms: Some(now),
            },
            outflow_rate: 0.0,
            draw_seed: None,
            queue: Queue::default(),
        }
    }

    /// What the door looks at: people waiting, admissions not yet expired.
    fn load(&mut self, now: u64) -> Load {
        let q = &mut self.queue;
        // Expired admissions are never counted; dropping them here keeps the count O(1).
        while q.active.first().is_some_and(|(exp, _)| *exp <= now) {
            q.active.pop_first();
        }
        Load {
            waiting: q.waiting.total(),
            active: q.active.len() as u64,
        }
    }

    /// Ticks the door (twin: `door_tick`); returns the unrounded credit and the window.
    fn tick(&mut self, now: u64) -> (f64, u64) {
        let load = self.load(now);
        self.door.tick(&self.config, now, load)
    }

    /// The standing of a waiting person at `position` with the door's `window` (twin: the end
    /// of `standing` in `lua/queue/door.lua`).
    fn standing_at(&self, position: u64, window: u64, now: u64) -> Standing {
        let (tier, poll_after_ms) = self.config.tier_of(position);
        Standing {
            position,
            tier,
            poll_after_ms,
            ready: position <= window,
            eta_secs: door::eta(&self.config, position, window, now, self.outflow_rate),
            shown: self.config.queueing != Queueing::Random,
        }
    }

    /// A waiting person's position (1 + the people still waiting ahead).
    fn position(&mut self, person: &str) -> u64 {
        let q = &mut self.queue;
        q.people
            .get(person)
            .map_or(0, |rec| q.waiting.position(person, rec))
    }

    /// A waiting person's standing with the door peeked, not ticked: status and join.
    fn peeked_standing(&mut self, person: &str, now: u64) -> Standing {
        let position = self.position(person);
        let load = self.load(now);
        let window = self.door.peek(&self.config, now, position, load);
        self.standing_at(position, window, now)
    }

    /// `Some(PreQueue)` while joins go into the pre-queue: nobody has a position yet.
    fn pre_queue(&self, now: u64) -> Option<Presence> {
        self.config.in_pre_queue(now).then(|| Presence::PreQueue {
            opens_at: self.config.opens_at.unwrap_or(0),
            poll_after_ms: self.config.fast_poll_ms,
        })
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

/// The answer for someone no longer waiting; `None` while they wait.
fn settled(stage: &Stage, now: u64) -> Option<Result<Presence, Gone>> {
    Some(match stage {
        Stage::Waiting => return None,
        Stage::Admitted { expires_at_ms, .. } if *expires_at_ms <= now => {
            Err(Gone::AdmissionExpired)
        }
        Stage::Admitted { expires_at_ms, .. } => Ok(Presence::Admitted {
            expires_at_ms: *expires_at_ms,
        }),
        Stage::Evicted => Err(Gone::Evicted),
        Stage::Left => Err(Gone::Left),
    })
}

impl State {
    /// The event, after applying key expiry; `None` when the store does not know it.
    pub(super) fn event(&mut self, event: &EventId, now: u64) -> Option<&mut Event> {
        let entry = self.events.get(event)?;
        if entry.expires_at_ms.is_some_and(|at| at <= now) {
            self.events.remove(event);
            return None;
        }
        let entry = self.events.get_mut(event)?;
        if entry.queue.expires_at_ms != 0 && entry.queue.expires_at_ms <= now {
            entry.queue = Queue::default();
        }
        Some(entry)
    }
}

impl MemoryStore {
    /// Runs `f` on an event that exists, or answers `None`.
    fn with_event<T>(&self, event: &EventId, f: impl FnOnce(&mut Event, u64) -> T) -> Option<T> {
        let (mut state, now) = self.lock();
        state.event(event, now).map(|e| f(e, now))
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
        let (mut state, now) = self.lock();
        let existed = state.event(event, now).is_some();
        let entry = state
            .events
            .entry(event.clone())
            .or_insert_with(|| Event::new(config, now));
        let old: HashMap<&str, String> = if existed {
            // Credit the time before the change at the old rate.
            entry.tick(now);
            entry.config.to_fields().into_iter().collect()
        } else {
            HashMap::new()
        };
        let mut changes = serde_json::Map::new();
        // Secrets (the enqueue keys) are written, never shown: the audit says only whether one
        // is set (twin: `shown` in put_event.lua).
        let shown = |field: &str, value: &str| -> serde_json::Value {
            if !value.is_empty() && field.starts_with("enqueue_key") {
                "(set)".into()
            } else {
                value.into()
            }
        };
        for (field, value) in config.to_fields() {
            if old.get(field) != Some(&value) {
                let was = old
                    .get(field)
                    .map_or(serde_json::Value::Null, |v| shown(field, v));
                changes.insert(
                    field.to_owned(),
                    serde_json::json!({"old": was, "new": shown(field, &value)}),
                );
            }
        }
        let version = if existed { entry.config.version + 1 } else { 1 };
        entry.config = EventConfig {
            version,
            ..config.clone()
        };
        entry.expires_at_ms =
            (config.state == EventState::Closed).then(|| now + keep_ms(config.ticket_ttl_secs));
        if config.needs_seed() && entry.draw_seed.is_none() {
            // Fixed once, when first needed (twin: put_event.lua).
            entry.draw_seed = Some(self.clock.fresh_seed());
        }
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
        let (state, _) = self.lock();
        Ok(state.events.keys().cloned().collect())
    }

    async fn join(&self, event: &EventId, person: &Person) -> Result<JoinOutcome, StoreError> {
        let outcome = self.with_event(event, |e, now| {
            // Each identity takes its own kind of id (twin: join.lua).
            let refused = match person.origin {
                Origin::Named => e.config.identity != Identity::UserId,
                Origin::Signed => e.config.identity != Identity::Signed,
                Origin::Made => false,
            };
            if refused {
                return JoinOutcome::ClaimRefused;
            }
            if let Some(rec) = e.queue.people.get(&person.id) {
                let place = rec.place.clone();
                match &rec.state {
                    Stage::Waiting => {
                        let presence = match e.pre_queue(now) {
                            Some(presence) => presence,
                            None => Presence::Waiting(e.peeked_standing(&person.id, now)),
                        };
                        return JoinOutcome::Placed {
                            place,
                            presence,
                            created: false,
                        };
                    }
                    Stage::Admitted { expires_at_ms, .. } if *expires_at_ms > now => {
                        return JoinOutcome::Placed {
                            place,
                            presence: Presence::Admitted { expires_at_ms: 0 },
                            created: false,
                        }
                    }
                    // Evicted, left, or an admission that expired unused (twin: join.lua):
                    // joining again takes a new place at the back.
                    Stage::Admitted { .. } | Stage::Evicted | Stage::Left => {}
                }
            }
            // A signed event's new places come from enqueue tokens only.
            if person.origin == Origin::Made && e.config.identity == Identity::Signed {
                return JoinOutcome::TokenRequired;
            }
            let state = e.config.state_at(now);
            let pre = e.pre_queue(now);
            if state != EventState::Open && pre.is_none() {
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
            let score = match (e.config.drawn_at(now), &e.draw_seed) {
                (true, Some(seed)) => {
                    let score = door::draw_score(seed, &crate::tickets::jti(event, place.seq));
                    if pre.is_some() {
                        q.draw.insert((score, place.seq.to_string()));
                    }
                    score
                }
                _ => place.seq as i64,
            };
            let rec = Record {
                state: Stage::Waiting,
                place: place.clone(),
                score,
                last_seen_ms: now,
            };
            q.waiting.add(&person.id, &rec);
            q.heartbeats.insert((now, person.id.clone()));
            q.people.insert(person.id.clone(), rec);
            q.figures.joined_total += 1;
            q.expires_at_ms = q.expires_at_ms.max(now + keep_ms(e.config.ticket_ttl_secs));
            let presence = match pre {
                Some(presence) => presence,
                None => {
                    let load = e.load(now);
                    e.door.open_for_one(&e.config, now, load);
                    Presence::Waiting(e.peeked_standing(&person.id, now))
                }
            };
            JoinOutcome::Placed {
                place,
                presence,
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
            match settled(&state, now) {
                Some(Ok(presence)) => return StatusOutcome::Present(presence),
                Some(Err(gone)) => return StatusOutcome::Gone(gone),
                None => {}
            }
            e.touch(person, now);
            let presence = match e.pre_queue(now) {
                Some(presence) => presence,
                None => Presence::Waiting(e.peeked_standing(person, now)),
            };
            StatusOutcome::Present(presence)
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
            match state {
                Stage::Waiting => {}
                Stage::Admitted { id, expires_at_ms } if expires_at_ms > now => {
                    return EnterOutcome::Admitted(Admission {
                        id,
                        expires_at_ms,
                        new: false,
                    })
                }
                Stage::Admitted { .. } => return EnterOutcome::Gone(Gone::AdmissionExpired),
                Stage::Evicted => return EnterOutcome::Gone(Gone::Evicted),
                Stage::Left => return EnterOutcome::Gone(Gone::Left),
            }
            e.touch(person, now);
            if let Some(Presence::PreQueue { opens_at, .. }) = e.pre_queue(now) {
                return EnterOutcome::PreQueue { opens_at };
            }
            let (credit, window) = e.tick(now);
            let position = e.position(person);
            let standing = e.standing_at(position, window, now);
            if vip_only && standing.tier != Tier::Vip {
                return EnterOutcome::Limited;
            }
            if !standing.ready {
                return EnterOutcome::NotReady(standing);
            }
            let expires_at_ms = now + u64::from(e.config.admission_ttl_secs) * 1000;
            if e.config.queueing != Queueing::Passthrough {
                e.door.credit = door::stored(credit - 1.0);
            }
            let q = &mut e.queue;
            if let Some(rec) = q.people.get_mut(person) {
                q.waiting.remove(person, rec);
                q.heartbeats.remove(&(rec.last_seen_ms, person.to_owned()));
                rec.state = Stage::Admitted {
                    id: admission_id.to_owned(),
                    expires_at_ms,
                };
            }
            q.active.insert((expires_at_ms, admission_id.to_owned()));
            q.admits.push_back(now);
            q.figures.admitted_total += 1;
            let longest = e.config.admission_ttl_secs.max(e.config.ticket_ttl_secs);
            q.expires_at_ms = q.expires_at_ms.max(now + keep_ms(longest));
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
        let (mut state, now) = self.lock();
        let redeemed = state.redeemed.entry(event.clone()).or_default();
        redeemed.retain(|_, keep_until| *keep_until > now);
        if redeemed.contains_key(admission_id) {
            return Ok(false);
        }
        // The record must outlive the token it guards (twin: redeem.lua).
        let keep = expires_at.max(now / 1000) + KEY_SLACK_SECS;
        redeemed.insert(admission_id.to_owned(), keep * 1000);
        // Counted while the event's queue exists (twin: redeem.lua counts while its stats
        // hash exists; one made there would have no TTL).
        if let Some(q) = state.event(event, now).map(|e| &mut e.queue) {
            if q.expires_at_ms != 0 {
                q.active.retain(|(_, id)| id != admission_id);
                q.figures.redeemed_total += 1;
            }
        }
        Ok(true)
    }

    async fn leave(
        &self,
        event: &EventId,
        person: &str,
        seq: u64,
    ) -> Result<LeaveOutcome, StoreError> {
        let outcome = self.with_event(event, |e, now| {
            let in_draw = e.config.in_pre_queue(now);
            let q = &mut e.queue;
            let Some(rec) = q.people.get_mut(person) else {
                return LeaveOutcome::Unknown;
            };
            if rec.place.seq != seq {
                return LeaveOutcome::Superseded;
            }
            match rec.state {
                Stage::Waiting => {
                    rec.state = Stage::Left;
                    q.waiting.remove(person, rec);
                    if in_draw {
                        // Out of the draw too while it is open (twin: leave.lua).
                        q.draw.remove(&(rec.score, seq.to_string()));
                    }
                    q.heartbeats.remove(&(rec.last_seen_ms, person.to_owned()));
                    q.figures.left_total += 1;
                    LeaveOutcome::Left { now: true }
                }
                Stage::Evicted => LeaveOutcome::Evicted,
                Stage::Left | Stage::Admitted { .. } => LeaveOutcome::Left { now: false },
            }
        });
        Ok(outcome.unwrap_or(LeaveOutcome::Unknown))
    }

    async fn sweep(&self, event: &EventId, batch: u32) -> Result<SweepOutcome, StoreError> {
        let outcome = self.with_event(event, |e, now| {
            let in_draw = e.config.in_pre_queue(now);
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
                    rec.state = Stage::Evicted;
                    q.waiting.remove(&person, rec);
                    if in_draw {
                        // Ghosts of the pre-queue get no place in the draw.
                        q.draw.remove(&(rec.score, rec.place.seq.to_string()));
                    }
                }
                evicted += 1;
            }
            q.figures.evicted_total += evicted;
            let horizon = now.saturating_sub(OUTFLOW_WINDOW_MS);
            while q.admits.front().is_some_and(|&at| at <= horizon) {
                q.admits.pop_front();
            }
            e.outflow_rate = door::outflow(q.admits.make_contiguous(), now);
            e.tick(now);
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
                door_window: e.door.credit,
                admitted_last_minute: q.admits.iter().filter(|&&at| at >= cutoff).count() as u64,
                ..q.figures
            }
        });
        Ok(figures.unwrap_or_default())
    }

    async fn draw(&self, event: &EventId) -> Result<Option<Draw>, StoreError> {
        Ok(self
            .with_event(event, |e, now| {
                e.draw_seed.map(|seed| Draw {
                    seed: seed.to_vec(),
                    count: e.queue.draw.len() as u64,
                    opens_at: e.config.opens_at.unwrap_or(0),
                    drawn: e.config.state_at(now) != EventState::Scheduled,
                })
            })
            .flatten())
    }

    async fn draw_entries(
        &self,
        event: &EventId,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<u64>, StoreError> {
        Ok(self
            .with_event(event, |e, _| {
                e.queue
                    .draw
                    .iter()
                    .skip(offset as usize)
                    .take(limit as usize)
                    .filter_map(|(_, seq)| seq.parse().ok())
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
