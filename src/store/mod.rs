//! All queue and reservation state, behind two traits ([`Store`] for the queue,
//! [`reservations::Reservations`] for reservations) with two implementations that give the same
//! answers: [`redis::RedisStore`] (every multi-step change is one Lua script from `lua/`) and
//! [`memory::MemoryStore`], the embedded default for a single instance. The conformance test
//! (`tests/conformance.rs`) runs the same generated operations against both and compares every
//! answer.
//!
//! - [`keys`]: every Redis key name.
//! - The door's rules are [`crate::door`]'s (and `lua/queue/door.lua`'s).

pub mod keys;
pub mod memory;
pub mod redis;
pub mod reservations;

use async_trait::async_trait;
use serde::Serialize;

use crate::event::{EventConfig, EventId, Tier};

/// Extra life given to an event's keys beyond the longest ticket, so nothing expires under a
/// person who still holds a valid ticket.
pub const KEY_SLACK_SECS: u64 = 3600;

/// A store failure. Every variant means "the store could not answer", never bad input.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store is unreachable or timed out.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store answered something this code does not understand (a bug or a version skew).
    #[error("unexpected store reply: {0}")]
    Protocol(String),
}

/// Who a person is, and who vouches for the id.
#[derive(Clone, Debug)]
pub struct Person {
    /// The person's id within the event.
    pub id: String,
    /// Where the id comes from.
    pub origin: Origin,
}

/// Where a person's id comes from; each identity valve accepts its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Made by the gateway (a new anonymous person), or read from a ticket it signed.
    Made,
    /// The caller's `user_id` (events with `identity: user_id`).
    Named,
    /// The `sub` of an enqueue token signed with the event's key (`identity: signed`).
    Signed,
}

impl Origin {
    /// The spelling the join script takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Made => "made",
            Self::Named => "claimed",
            Self::Signed => "signed",
        }
    }
}

/// Why a person is no longer in the queue nor admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Gone {
    /// Removed by the sweeper after missing heartbeats.
    Evicted,
    /// Left on their own.
    Left,
    /// Was admitted, and the admission expired.
    AdmissionExpired,
}

/// A person's place: what a ticket is made from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    /// The join sequence: the queue order.
    pub seq: u64,
    /// When the place was taken (store clock, unix seconds).
    pub issued_at: u64,
    /// When the ticket for this place expires (unix seconds).
    pub expires_at: u64,
}

/// A waiting person's standing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Standing {
    /// 1 + the number of people still waiting ahead.
    pub position: u64,
    /// The tier for that position.
    pub tier: Tier,
    /// How long to wait before polling again.
    pub poll_after_ms: u32,
    /// Inside the door's window: may enter now.
    pub ready: bool,
    /// Expected wait from the measured outflow; `None` while unknown.
    pub eta_secs: Option<u64>,
    /// False in random order (`queueing: random`): the position is not shown to the person.
    pub shown: bool,
}

/// Where a person with a place is now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Presence {
    /// In the queue.
    Waiting(Standing),
    /// In the pre-queue: no position until the draw at `opens_at` (unix s).
    PreQueue {
        /// When the event opens and the draw places everyone.
        opens_at: u64,
        /// How long to wait before polling again (the fast tier's: it keeps the heartbeat).
        poll_after_ms: u32,
    },
    /// Let in; the admission lives until this instant (store clock, ms).
    Admitted {
        /// Expiry of the admission (unix ms).
        expires_at_ms: u64,
    },
}

/// The answer to a join.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JoinOutcome {
    /// A place: new (`created`) or the one the person already had.
    Placed {
        /// The place taken.
        place: Place,
        /// Where the person is now.
        presence: Presence,
        /// False when the person already held this place.
        created: bool,
    },
    /// No such event.
    NoEvent,
    /// The event names people itself; a caller-supplied id is refused.
    ClaimRefused,
    /// The event takes people only from enqueue tokens (`identity: signed`), and none was given.
    TokenRequired,
    /// The event does not accept joins in this state.
    NotOpen(String),
    /// `max_queue_len` reached.
    Full,
}

/// What the store knows of a ticket's holder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusOutcome {
    /// Waiting (heartbeat refreshed) or admitted.
    Present(Presence),
    /// Not waiting any more.
    Gone(Gone),
    /// The store holds no such person (their event's keys drained away).
    Unknown,
    /// The person joined again since; this ticket's place is gone.
    Superseded,
}

/// An admission: what an admission token is made from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admission {
    /// Unique id (the token's `jti`).
    pub id: String,
    /// Expiry (store clock, unix ms).
    pub expires_at_ms: u64,
    /// False when the person had already entered and this is the same admission again.
    pub new: bool,
}

/// The answer to an enter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnterOutcome {
    /// Let in (now, or earlier: the same admission).
    Admitted(Admission),
    /// Not inside the door's window yet.
    NotReady(Standing),
    /// In the pre-queue: nobody enters before the opening at `opens_at` (unix s).
    PreQueue {
        /// When the event opens.
        opens_at: u64,
    },
    /// The local burst limiter is exhausted and the person is not in the vip tier.
    Limited,
    /// As in [`StatusOutcome`].
    Gone(Gone),
    /// As in [`StatusOutcome::Unknown`].
    Unknown,
    /// As in [`StatusOutcome::Superseded`].
    Superseded,
}

/// The answer to a leave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaveOutcome {
    /// The person is out of the queue: left by this call (`now`), or already out (left
    /// before, or admitted meanwhile).
    Left {
        /// True when this call removed them.
        now: bool,
    },
    /// The sweeper evicted them first.
    Evicted,
    /// As in [`StatusOutcome::Unknown`].
    Unknown,
    /// As in [`StatusOutcome::Superseded`].
    Superseded,
}

/// The result of one sweep batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SweepOutcome {
    /// `evicted` ghosts removed; `waiting` people remain; `active` sessions live.
    Swept {
        /// Ghosts evicted by this batch.
        evicted: u64,
        /// People still waiting after it.
        waiting: u64,
        /// Admitted sessions live.
        active: u64,
    },
    /// The event no longer exists.
    NoEvent,
}

/// Most entries kept in an event's audit trail.
pub const AUDIT_LEN: usize = 1000;

/// The result of writing an event's valves.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// The new version.
    pub version: u64,
    /// `{field: {old, new}}` for every valve that changed (stored spellings).
    pub changes: serde_json::Value,
}

/// One change of an event's valves.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// When (store clock, unix ms).
    pub at_ms: u64,
    /// Who: the id of the admin token used.
    pub by: String,
    /// The version the change made.
    pub version: u64,
    /// `{field: {old, new}}`.
    #[schema(value_type = Object)]
    pub changes: serde_json::Value,
}

/// Live figures of an event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Figures {
    /// Waiting now.
    pub waiting: u64,
    /// Admitted sessions live now (neither redeemed nor expired).
    pub active: u64,
    /// Joins since the event was created.
    pub joined_total: u64,
    /// Ghosts evicted.
    pub evicted_total: u64,
    /// People who left.
    pub left_total: u64,
    /// People let in.
    pub admitted_total: u64,
    /// Admissions redeemed by the sale backend.
    pub redeemed_total: u64,
    /// People released by the door and not yet entered (as of the last tick).
    pub door_window: f64,
    /// People admitted in the last minute.
    pub admitted_last_minute: u64,
}

/// An event's draw (DESIGN §18), as the store keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Draw {
    /// The 32-byte seed, fixed when the pre-queue was first configured.
    pub seed: Vec<u8>,
    /// People in the draw: in the pre-queue now, or placed by it once the event opened.
    pub count: u64,
    /// The opening (unix s): the draw's instant.
    pub opens_at: u64,
    /// The event has opened (store clock): the places are given and the seed may be shown.
    pub drawn: bool,
}

/// The queue store. Implementations must give the same answers for the same calls; the
/// integration suite runs the same scenarios against each.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Writes an event's valves and appends the change, made `by` an operator, to its audit
    /// trail in the same atomic step.
    async fn put_event(
        &self,
        event: &EventId,
        config: &EventConfig,
        by: &str,
    ) -> Result<Change, StoreError>;
    /// The newest `limit` entries of an event's audit trail, newest first.
    async fn audit(&self, event: &EventId, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;
    /// Reads an event's valves.
    async fn get_event(&self, event: &EventId) -> Result<Option<EventConfig>, StoreError>;
    /// Every event the store knows.
    async fn list_events(&self) -> Result<Vec<EventId>, StoreError>;
    /// Takes (or returns the existing) place of a person.
    async fn join(&self, event: &EventId, person: &Person) -> Result<JoinOutcome, StoreError>;
    /// Refreshes the heartbeat of the holder of a ticket with `seq` and answers their standing.
    async fn status(
        &self,
        event: &EventId,
        person: &str,
        seq: u64,
    ) -> Result<StatusOutcome, StoreError>;
    /// Lets the holder of a ticket with `seq` in, if the door's window includes them.
    /// `admission_id` is used only when admitting now; `vip_only` admits only the vip tier.
    async fn enter(
        &self,
        event: &EventId,
        person: &str,
        seq: u64,
        admission_id: &str,
        vip_only: bool,
    ) -> Result<EnterOutcome, StoreError>;
    /// Marks an admission redeemed; true the first time only. Ends its live session.
    async fn redeem(
        &self,
        event: &EventId,
        admission_id: &str,
        expires_at: u64,
    ) -> Result<bool, StoreError>;
    /// Removes the holder of a ticket with `seq` from the queue.
    async fn leave(
        &self,
        event: &EventId,
        person: &str,
        seq: u64,
    ) -> Result<LeaveOutcome, StoreError>;
    /// Evicts at most `batch` ghosts of an event.
    async fn sweep(&self, event: &EventId, batch: u32) -> Result<SweepOutcome, StoreError>;
    /// Live figures of an event.
    async fn figures(&self, event: &EventId) -> Result<Figures, StoreError>;
    /// The event's draw; `None` when the event is unknown or has no pre-queue.
    async fn draw(&self, event: &EventId) -> Result<Option<Draw>, StoreError>;
    /// The join sequences of the draw's places `offset + 1 ..= offset + limit`, in place order.
    async fn draw_entries(
        &self,
        event: &EventId,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<u64>, StoreError>;
    /// Succeeds when the store answers.
    async fn ping(&self) -> Result<(), StoreError>;
    /// The store's own metrics (call latency and errors), registered by each instance.
    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        Vec::new()
    }
}
