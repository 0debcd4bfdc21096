//! Conformance: the in-process store and Redis give the same answer to every call.
//!
//! Proptest generates sequences of operations (join, status, enter, leave, redeem, valve
//! changes, sweeps, time passing, figures; reserve, the worker's reads and writes) and runs
//! each against a [`MemoryStore`] and a [`RedisStore`] (a real `redis-server`), both on one
//! manual [`Clock`], comparing every answer step by step. The door's rules are written twice
//! (`src/door.rs` and `lua/queue/door.lua`), as are the queue's and reservations' steps: this
//! is what holds the twins together.
//!
//! What cannot be pinned is left out of the comparison, on purpose: work entry ids (a Redis
//! stream id against a counter: compared by the reservation they carry) and stream idle times
//! (Redis's own clock: the worker's policy here never retries nor reclaims, so only new entries
//! are delivered). Redis key TTLs run on real time, so the generated time steps stay far below
//! every TTL but the heartbeat's and the admission's, which the scripts compare with the
//! pinned clock.
//!
//! The drifts this test found stay below as regression cases, one sequence each.

use std::collections::HashMap;
use std::fmt::Debug;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use vestibule::clock::Clock;
use vestibule::event::{EnqueueKey, EventConfig, EventId, EventState, Identity, Queueing};
use vestibule::store::memory::MemoryStore;
use vestibule::store::redis::RedisStore;
use vestibule::store::reservations::{
    ClaimPolicy, Delivery, Item, NewReservation, ReservationState, Reservations, Settlement,
};
use vestibule::store::{EnterOutcome, JoinOutcome, Origin, Person, Store};

use crate::helpers::RedisServer;

/// People in a sequence: few, so they meet (join again, compete for the door).
const PEOPLE: u8 = 6;

/// One step of a sequence.
#[derive(Clone, Debug)]
enum Op {
    Join {
        person: u8,
        origin: Origin,
    },
    /// With `stale`, the ticket of the person's place before last (superseded, or unknown).
    Status {
        person: u8,
        stale: bool,
    },
    Enter {
        person: u8,
        vip_only: bool,
    },
    Leave {
        person: u8,
    },
    /// Redeems the n-th admission given so far (modulo), or an unknown one when none.
    Redeem {
        admission: u8,
    },
    Valves(Valves),
    Sweep {
        batch: u32,
    },
    Advance {
        ms: u64,
    },
    Figures,
    /// The pre-queue's draw and its export.
    Draw,
    Reserve {
        person: u8,
        key: u8,
        quantity: u32,
    },
    Reservation {
        nth: u8,
    },
    Chains,
    NextBatch {
        consumer: u8,
        count: usize,
    },
    Settle {
        nth: u8,
        confirm: bool,
    },
    DeadLetter {
        nth: u8,
    },
    /// Ends the n-th reservation's hold (modulo) the n-th way (completed, released, expired,
    /// or an end that is not one: confirmed).
    EndHold {
        nth: u8,
        how: u8,
    },
    Backlog,
}

/// A valve change: the knobs the door and the queue read.
#[derive(Clone, Debug)]
struct Valves {
    state: EventState,
    opens_in_secs: Option<u64>,
    /// Seconds from now to the pre-queue's start (below zero: already started); used only
    /// when it falls before the opening.
    prequeue_in_secs: Option<i64>,
    queueing: Queueing,
    admission_rate: f64,
    max_active: u64,
    max_queue_len: u64,
    heartbeat_ttl_secs: u32,
    admission_ttl_secs: u32,
    vip_size: u32,
    fast_upto: u32,
    identity: Identity,
}

fn valves() -> impl Strategy<Value = Valves> {
    (
        prop_oneof![
            4 => Just(EventState::Open),
            1 => Just(EventState::Paused),
            1 => Just(EventState::Scheduled),
            1 => Just(EventState::Closed),
        ],
        (
            prop::option::of(0u64..4),
            prop::option::of(-3i64..3),
            prop_oneof![
                4 => Just(Queueing::Fifo),
                1 => Just(Queueing::Random),
                1 => Just(Queueing::Passthrough),
            ],
        ),
        prop::sample::select(vec![0.0, 0.3, 0.5, 1.0, 2.0, 3.7, 50.0]),
        prop::sample::select(vec![1u64, 2, 3, 100]),
        prop::sample::select(vec![0u64, 2, 4]),
        1u32..4,
        prop::sample::select(vec![1u32, 2, 600]),
        0u32..3,
        prop::sample::select(vec![2u32, 4]),
        prop_oneof![
            Just(Identity::Anonymous),
            Just(Identity::UserId),
            Just(Identity::Signed)
        ],
    )
        .prop_map(
            |(
                state,
                (opens_in_secs, prequeue_in_secs, queueing),
                rate,
                max_active,
                max_len,
                hb,
                adm,
                vip,
                fast,
                identity,
            )| {
                Valves {
                    state,
                    opens_in_secs,
                    prequeue_in_secs,
                    queueing,
                    admission_rate: rate,
                    max_active,
                    max_queue_len: max_len,
                    heartbeat_ttl_secs: hb,
                    admission_ttl_secs: adm,
                    vip_size: vip,
                    fast_upto: fast,
                    identity,
                }
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    let person = 0..PEOPLE;
    prop_oneof![
        6 => (
            person.clone(),
            prop_oneof![
                8 => Just(Origin::Made),
                1 => Just(Origin::Named),
                1 => Just(Origin::Signed),
            ]
        )
            .prop_map(|(person, origin)| Op::Join { person, origin }),
        6 => (person.clone(), prop::bool::weighted(0.1))
            .prop_map(|(person, stale)| Op::Status { person, stale }),
        5 => (person.clone(), prop::bool::weighted(0.2))
            .prop_map(|(person, vip_only)| Op::Enter { person, vip_only }),
        1 => person.clone().prop_map(|person| Op::Leave { person }),
        1 => any::<u8>().prop_map(|admission| Op::Redeem { admission }),
        1 => valves().prop_map(Op::Valves),
        2 => (1u32..4).prop_map(|batch| Op::Sweep { batch }),
        4 => prop_oneof![1u64..300, 900u64..4_000].prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Figures),
        1 => Just(Op::Draw),
        2 => (person, 0u8..3, 1u32..3)
            .prop_map(|(person, key, quantity)| Op::Reserve { person, key, quantity }),
        1 => any::<u8>().prop_map(|nth| Op::Reservation { nth }),
        1 => Just(Op::Chains),
        1 => (0u8..2, 1usize..3).prop_map(|(consumer, count)| Op::NextBatch { consumer, count }),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(nth, confirm)| Op::Settle { nth, confirm }),
        1 => any::<u8>().prop_map(|nth| Op::DeadLetter { nth }),
        1 => (any::<u8>(), 0u8..4).prop_map(|(nth, how)| Op::EndHold { nth, how }),
        1 => Just(Op::Backlog),
    ]
}

/// Nothing is retried nor reclaimed: idle times are Redis's own clock, which is not pinned.
const POLICY: ClaimPolicy = ClaimPolicy {
    retry_base_ms: 3_600_000,
    retry_max_ms: 3_600_000,
    claim_idle_ms: 3_600_000,
};

/// One store under test, and what its answers taught the runner (tickets, admissions,
/// deliveries), kept per store because work ids differ between them.
struct Side<'a> {
    store: &'a dyn Store,
    reservations: &'a dyn Reservations,
    deliveries: Vec<Delivery>,
}

/// Both stores on one clock, and the state of the sequence.
struct Pair<'a> {
    clock: Clock,
    event: EventId,
    memory: Side<'a>,
    redis: Side<'a>,
    /// Each person's places (join sequences), oldest first.
    places: HashMap<u8, Vec<u64>>,
    /// Admissions given: (id, expiry in unix s).
    admissions: Vec<(String, u64)>,
    reservations: Vec<String>,
    made: u64,
    config: EventConfig,
    /// The sequence so far, for the failure message.
    log: Vec<String>,
}

impl<'a> Pair<'a> {
    fn same<T: PartialEq + Debug>(
        &mut self,
        what: &str,
        memory: T,
        redis: T,
    ) -> Result<T, TestCaseError> {
        self.log.push(format!("{what} -> {memory:?}"));
        if memory != redis {
            return Err(TestCaseError::fail(format!(
                "the stores differ at the last step:\n  {}\nmemory: {memory:?}\nredis:  {redis:?}",
                self.log.join("\n  ")
            )));
        }
        Ok(memory)
    }

    fn person(&self, n: u8) -> String {
        format!("p{n}")
    }

    fn seq(&self, person: u8, stale: bool) -> u64 {
        let places = self.places.get(&person).map(Vec::as_slice).unwrap_or(&[]);
        let back = if stale { 2 } else { 1 };
        places.len().checked_sub(back).map_or(0, |i| places[i])
    }

    async fn put(&mut self, valves: &Valves) -> Result<(), TestCaseError> {
        let now_s = self.clock.now_ms() / 1000;
        let opens_at = valves.opens_in_secs.map(|s| now_s + s);
        let prequeue_opens_at = valves
            .prequeue_in_secs
            .map(|s| now_s.saturating_add_signed(s))
            .filter(|&pre| opens_at.is_some_and(|opens| pre < opens));
        self.config = EventConfig {
            state: valves.state,
            opens_at,
            prequeue_opens_at,
            queueing: valves.queueing,
            admission_rate: valves.admission_rate,
            max_active: valves.max_active,
            max_queue_len: valves.max_queue_len,
            heartbeat_ttl_secs: valves.heartbeat_ttl_secs,
            admission_ttl_secs: valves.admission_ttl_secs,
            vip_size: valves.vip_size,
            fast_upto: valves.fast_upto,
            identity: valves.identity,
            // Any signed event has a key; the audit of both stores must hide it alike.
            enqueue_key: (valves.identity == Identity::Signed)
                .then(|| EnqueueKey::new(format!("{:A<43}", valves.vip_size))),
            ticket_ttl_secs: 3600,
            ..EventConfig::default()
        };
        let m = self
            .memory
            .store
            .put_event(&self.event, &self.config, "op")
            .await;
        let r = self
            .redis
            .store
            .put_event(&self.event, &self.config, "op")
            .await;
        let _change = self.same(
            "put_event",
            m.map_err(|e| e.to_string()),
            r.map_err(|e| e.to_string()),
        )?;
        let m = self.memory.store.get_event(&self.event).await.ok();
        let r = self.redis.store.get_event(&self.event).await.ok();
        self.same("get_event", m, r)?;
        let m = self.memory.store.audit(&self.event, 3).await.ok();
        let r = self.redis.store.audit(&self.event, 3).await.ok();
        self.same("audit", m, r)?;
        Ok(())
    }

    async fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let event = self.event.clone();
        let (m, r) = (self.memory.store, self.redis.store);
        let (mr, rr) = (self.memory.reservations, self.redis.reservations);
        let what = format!("{op:?}");
        match op {
            Op::Join { person, origin } => {
                let who = Person {
                    id: self.person(*person),
                    origin: *origin,
                };
                let answer = self.same(
                    &what,
                    m.join(&event, &who).await.ok(),
                    r.join(&event, &who).await.ok(),
                )?;
                if let Some(JoinOutcome::Placed {
                    place,
                    created: true,
                    ..
                }) = answer
                {
                    self.places.entry(*person).or_default().push(place.seq);
                }
            }
            Op::Status { person, stale } => {
                let (id, seq) = (self.person(*person), self.seq(*person, *stale));
                self.same(
                    &what,
                    m.status(&event, &id, seq).await.ok(),
                    r.status(&event, &id, seq).await.ok(),
                )?;
            }
            Op::Enter { person, vip_only } => {
                let (id, seq) = (self.person(*person), self.seq(*person, false));
                let admission = format!("a{}", self.admissions.len());
                let answer = self.same(
                    &what,
                    m.enter(&event, &id, seq, &admission, *vip_only).await.ok(),
                    r.enter(&event, &id, seq, &admission, *vip_only).await.ok(),
                )?;
                if let Some(EnterOutcome::Admitted(a)) = answer {
                    if a.new {
                        self.admissions.push((a.id, a.expires_at_ms / 1000));
                    }
                }
            }
            Op::Leave { person } => {
                let (id, seq) = (self.person(*person), self.seq(*person, false));
                self.same(
                    &what,
                    m.leave(&event, &id, seq).await.ok(),
                    r.leave(&event, &id, seq).await.ok(),
                )?;
            }
            Op::Redeem { admission } => {
                let (id, exp) = match self.admissions.len() {
                    0 => ("a-none".to_owned(), self.clock.now_ms() / 1000 + 60),
                    n => self.admissions[usize::from(*admission) % n].clone(),
                };
                self.same(
                    &what,
                    m.redeem(&event, &id, exp).await.ok(),
                    r.redeem(&event, &id, exp).await.ok(),
                )?;
            }
            Op::Valves(valves) => {
                self.log.push(what);
                self.put(valves).await?;
            }
            Op::Sweep { batch } => {
                self.same(
                    &what,
                    m.sweep(&event, *batch).await.ok(),
                    r.sweep(&event, *batch).await.ok(),
                )?;
            }
            Op::Advance { ms } => {
                self.log.push(what);
                self.clock.advance(*ms);
            }
            Op::Figures => {
                self.same(
                    &what,
                    m.figures(&event).await.ok(),
                    r.figures(&event).await.ok(),
                )?;
            }
            Op::Draw => {
                self.same(&what, m.draw(&event).await.ok(), r.draw(&event).await.ok())?;
                self.same(
                    "draw_entries",
                    m.draw_entries(&event, 0, 100).await.ok(),
                    r.draw_entries(&event, 0, 100).await.ok(),
                )?;
            }
            Op::Reserve {
                person,
                key,
                quantity,
            } => {
                self.made += 1;
                // An admission given so far (some of them redeemed), or one never given.
                let admission = match self.admissions.len() {
                    0 => "a-none".to_owned(),
                    n => self.admissions[usize::from(*person) % n].0.clone(),
                };
                let new = NewReservation {
                    id: format!("r{}", self.made),
                    person: self.person(*person),
                    idempotency_key: format!("k{key}"),
                    admission,
                    body_hash: format!("q{quantity}"),
                    items: vec![Item {
                        sku: "seat".into(),
                        quantity: *quantity,
                    }],
                };
                self.same(
                    &what,
                    mr.reserve(&event, &new).await.ok(),
                    rr.reserve(&event, &new).await.ok(),
                )?;
                self.reservations.push(new.id);
            }
            Op::Reservation { nth } => {
                let id = pick(&self.reservations, *nth).unwrap_or_else(|| "r-none".into());
                self.same(
                    &what,
                    mr.reservation(&event, &id).await.ok(),
                    rr.reservation(&event, &id).await.ok(),
                )?;
            }
            Op::Chains => {
                let people: Vec<String> = (0..PEOPLE).map(|p| self.person(p)).collect();
                let strip = |chains: Vec<Vec<vestibule::store::reservations::Queued>>| {
                    chains
                        .into_iter()
                        .map(|chain| {
                            chain
                                .into_iter()
                                .map(|q| (q.id, q.items, q.created_ms))
                                .collect::<Vec<_>>()
                        })
                        .collect::<Vec<_>>()
                };
                let mc = mr.chains(&event, &people).await.ok().map(strip);
                let rc = rr.chains(&event, &people).await.ok().map(strip);
                self.same(&what, mc, rc)?;
            }
            Op::NextBatch { consumer, count } => {
                let consumer = format!("w{consumer}");
                let md = mr
                    .next_batch(&event, &consumer, *count, POLICY)
                    .await
                    .unwrap_or_default();
                let rd = rr
                    .next_batch(&event, &consumer, *count, POLICY)
                    .await
                    .unwrap_or_default();
                let strip = |d: &[Delivery]| {
                    d.iter()
                        .map(|d| {
                            (
                                d.deliveries,
                                d.entry
                                    .as_ref()
                                    .map(|q| (q.id.clone(), q.person.clone(), q.created_ms)),
                            )
                        })
                        .collect::<Vec<_>>()
                };
                self.same(&what, strip(&md), strip(&rd))?;
                self.memory.deliveries.extend(md);
                self.redis.deliveries.extend(rd);
            }
            Op::Settle { nth, confirm } => {
                let Some(i) = index(self.memory.deliveries.len(), *nth) else {
                    return Ok(());
                };
                let settle = |d: &Delivery| {
                    let q = d.entry.clone().expect("a decodable entry");
                    vec![Settlement {
                        id: q.id,
                        person: q.person,
                        work_id: d.work_id.clone(),
                        state: if *confirm {
                            ReservationState::Confirmed
                        } else {
                            ReservationState::Rejected
                        },
                        reason: (!confirm).then(|| "sold_out".to_owned()),
                        hold_expires_at_ms: confirm.then_some(1_800_000_000_000),
                    }]
                };
                let ms = settle(&self.memory.deliveries[i]);
                let rs = settle(&self.redis.deliveries[i]);
                self.same(
                    &what,
                    mr.settle(&event, &ms).await.ok(),
                    rr.settle(&event, &rs).await.ok(),
                )?;
            }
            Op::EndHold { nth, how } => {
                let id = pick(&self.reservations, *nth).unwrap_or_else(|| "r-none".into());
                let state = [
                    ReservationState::Completed,
                    ReservationState::Released,
                    ReservationState::Expired,
                    ReservationState::Confirmed,
                ][usize::from(*how)];
                self.same(
                    &what,
                    mr.end_hold(&event, &id, state).await.ok(),
                    rr.end_hold(&event, &id, state).await.ok(),
                )?;
            }
            Op::DeadLetter { nth } => {
                let Some(i) = index(self.memory.deliveries.len(), *nth) else {
                    return Ok(());
                };
                let md = self.memory.deliveries[i].clone();
                let rd = self.redis.deliveries[i].clone();
                self.same(
                    &what,
                    mr.dead_letter(&event, &md, "boom").await.ok(),
                    rr.dead_letter(&event, &rd, "boom").await.ok(),
                )?;
                let strip = |letters: Vec<vestibule::store::reservations::DeadLetter>| {
                    letters
                        .into_iter()
                        .map(|l| (l.reservation_id, l.error, l.deliveries))
                        .collect::<Vec<_>>()
                };
                let ml = mr.dead_letters(&event, 10).await.ok().map(strip);
                let rl = rr.dead_letters(&event, 10).await.ok().map(strip);
                self.same("dead_letters", ml, rl)?;
            }
            Op::Backlog => {
                self.same(
                    &what,
                    mr.backlog(&event).await.ok(),
                    rr.backlog(&event).await.ok(),
                )?;
            }
        }
        Ok(())
    }
}

fn index(len: usize, nth: u8) -> Option<usize> {
    (len > 0).then(|| usize::from(nth) % len)
}

fn pick(items: &[String], nth: u8) -> Option<String> {
    index(items.len(), nth).map(|i| items[i].clone())
}

/// The event every sequence starts with: open, a door of 2/s, room for 3.
fn opening() -> Valves {
    Valves {
        state: EventState::Open,
        opens_in_secs: None,
        prequeue_in_secs: None,
        queueing: Queueing::Fifo,
        admission_rate: 2.0,
        max_active: 3,
        max_queue_len: 0,
        heartbeat_ttl_secs: 2,
        admission_ttl_secs: 2,
        vip_size: 1,
        fast_upto: 3,
        identity: Identity::Anonymous,
    }
}

/// Both stores, one Redis server for every sequence (each sequence on an event of its own).
struct Harness {
    _server: RedisServer,
    clock: Clock,
    redis: RedisStore,
    runtime: tokio::runtime::Runtime,
    cases: std::sync::atomic::AtomicU64,
}

impl Harness {
    fn start() -> Self {
        let server = RedisServer::start_volatile();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        // A round instant, far from any second boundary surprise, on the real date (Redis key
        // TTLs are real time; the instants the scripts compare are this clock's).
        let clock = Clock::manual(vestibule::clock::now_ms() / 1000 * 1000);
        let redis = runtime
            .block_on(RedisStore::connect_with_clock(&server.url(), clock.clone()))
            .expect("connect to the test Redis");
        Self {
            _server: server,
            clock,
            redis,
            runtime,
            cases: Default::default(),
        }
    }

    /// Runs one sequence on a fresh in-process store and a fresh event in Redis.
    fn run(&self, ops: &[Op]) -> Result<(), TestCaseError> {
        let case = self.cases.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let memory = MemoryStore::new(self.clock.clone());
        let mut pair = Pair {
            clock: self.clock.clone(),
            event: EventId::parse(&format!("c{case}")).expect("a valid id"),
            memory: Side {
                store: &memory,
                reservations: &memory,
                deliveries: Vec::new(),
            },
            redis: Side {
                store: &self.redis,
                reservations: &self.redis,
                deliveries: Vec::new(),
            },
            places: HashMap::new(),
            admissions: Vec::new(),
            reservations: Vec::new(),
            made: 0,
            config: EventConfig::default(),
            log: Vec::new(),
        };
        self.runtime.block_on(async {
            pair.put(&opening()).await?;
            for op in ops {
                pair.step(op).await?;
            }
            // Whatever happened, the figures agree at the end.
            pair.step(&Op::Figures).await
        })?;
        // The next sequence starts a minute later: no sequence sees another's time.
        self.clock.advance(60_000);
        Ok(())
    }
}

/// Generated sequences per CI run: bounded so the whole test takes seconds (override with
/// `CONFORMANCE_CASES` for a longer hunt).
fn cases() -> u32 {
    std::env::var("CONFORMANCE_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000)
}

#[test]
fn the_in_process_store_and_redis_answer_every_generated_sequence_alike() {
    let harness = Harness::start();
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&prop::collection::vec(op(), 1..40), |ops| harness.run(&ops));
    if let Err(err) = result {
        panic!("{err}");
    }
}

// === the drifts found, one sequence each ===

fn replay(ops: &[Op]) {
    if let Err(err) = Harness::start().run(ops) {
        panic!("{err}");
    }
}

fn join(person: u8) -> Op {
    Op::Join {
        person,
        origin: Origin::Made,
    }
}

/// Status only peeks at the door; a status that ticked persisted the credit (in process, it did).
#[test]
fn regression_status_and_join_peek_at_the_door_and_never_tick_it() {
    replay(&[Op::Advance { ms: 1 }, join(0), Op::Figures]);
}

/// The door's credit is kept as Redis keeps it (14 significant digits): small ticks that add up
/// to 0.0063 must not leave 0.006299999999999999 in one store only.
#[test]
fn regression_the_door_credit_is_rounded_as_redis_stores_it() {
    let mut ops = vec![Op::Valves(Valves {
        admission_rate: 0.3,
        ..opening()
    })];
    for person in 0..3 {
        ops.push(join(person));
    }
    for _ in 0..3 {
        ops.extend([Op::Advance { ms: 7 }, Op::Sweep { batch: 1 }, Op::Figures]);
    }
    replay(&ops);
}

/// The ETA divides by the outflow the sweeper measured, not by a live one (in process, it
/// was live): after two quick admissions and no sweep, the configured rate still counts.
#[test]
fn regression_the_eta_uses_the_outflow_the_sweeper_measured() {
    let mut ops = vec![Op::Valves(Valves {
        admission_rate: 50.0,
        max_active: 2,
        heartbeat_ttl_secs: 3,
        ..opening()
    })];
    ops.extend((0..6).map(join));
    ops.extend([
        Op::Advance { ms: 1000 },
        Op::Enter {
            person: 0,
            vip_only: false,
        },
        Op::Advance { ms: 100 },
        Op::Enter {
            person: 1,
            vip_only: false,
        },
        Op::Status {
            person: 5,
            stale: false,
        },
        Op::Sweep { batch: 1 },
        Op::Status {
            person: 5,
            stale: false,
        },
    ]);
    replay(&ops);
}

/// A redeem counts in the figures only while the event's queue exists (Redis made a stats hash
/// with no TTL for it; in process it was counted).
#[test]
fn regression_a_redeem_with_no_queue_behind_it_counts_nowhere() {
    replay(&[Op::Redeem { admission: 0 }, Op::Figures]);
}
