//! Reservations and the work stream, behind their own trait so the queue's [`super::Store`]
//! stays as it is. Two implementations with the same answers: Redis Streams (Lua scripts
//! `lua/reservations/`: `reserve.lua`, `next_batch.lua`, `chains.lua`, `settle.lua`, …) and the
//! in-process store ([`super::memory`]) for the embedded default.
//!
//! The life of a reservation:
//! 1. `reserve` (the gateway, one atomic step): the idempotency key is recorded with a hash of
//!    the body, the reservation is recorded `pending`, and it is appended to the person's own
//!    stream (their pending reservations, in the order made) and to the event's work stream.
//! 2. `next_batch` (a worker, consumer-group semantics): new entries, this consumer's failed
//!    entries once their backoff has passed, and entries idle on another (dead) consumer.
//! 3. `settle` writes the result and removes the reservation from the person's stream and from
//!    the work stream (acknowledged); `dead_letter` does the same for an entry that kept failing,
//!    recording it in the dead-letter stream.
//! 4. A confirmed reservation is a hold; the database decides how it ends (completed, released,
//!    expired) and `end_hold` shows that here.

use async_trait::async_trait;
use serde::Serialize;

use super::StoreError;
use crate::event::EventId;

/// Most distinct items in one reservation.
pub const MAX_ITEMS: usize = 10;

/// Most units (summed over items) in one reservation: a constant, not an event valve, because
/// it guards the store and the worker as much as it shapes a sale.
pub const MAX_QUANTITY: u32 = 10;

/// Most pending reservations one person may have at once (a constant, for the same reason).
/// It also bounds the person's own stream, which a worker reads whole.
pub const MAX_OPEN: u32 = 5;

/// How long a reservation, its idempotency key and the person's stream are kept after the
/// last change (seconds). Longer than any admission token that could read them.
pub const RETENTION_SECS: u64 = 24 * 3600;

/// The consumer group of every work stream.
pub const GROUP: &str = "workers";

/// One line of an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Item {
    /// Stock keeping unit: 1–64 of `[A-Za-z0-9_.-]`.
    pub sku: String,
    /// Units wanted (at least 1).
    pub quantity: u32,
}

/// Items as stored in streams and hashes: `sku:quantity,sku:quantity` (SKUs cannot hold `:`
/// nor `,`), short and readable with redis-cli.
pub fn encode_items(items: &[Item]) -> String {
    items
        .iter()
        .map(|i| format!("{}:{}", i.sku, i.quantity))
        .collect::<Vec<_>>()
        .join(",")
}

/// The inverse of [`encode_items`]; `None` for anything it would not have written.
pub fn decode_items(raw: &str) -> Option<Vec<Item>> {
    raw.split(',')
        .map(|part| {
            let (sku, quantity) = part.split_once(':')?;
            let quantity: u32 = quantity.parse().ok()?;
            (valid_sku(sku) && quantity > 0).then(|| Item {
                sku: sku.to_owned(),
                quantity,
            })
        })
        .collect::<Option<Vec<_>>>()
        .filter(|items| !items.is_empty())
}

/// Whether `sku` is a well-formed SKU.
pub fn valid_sku(sku: &str) -> bool {
    (1..=64).contains(&sku.len())
        && sku
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// A reservation to record.
#[derive(Clone, Debug)]
pub struct NewReservation {
    /// A fresh id, used only if the idempotency key is new.
    pub id: String,
    /// Who makes it (the admission token's `sub`).
    pub person: String,
    /// The caller's `Idempotency-Key`.
    pub idempotency_key: String,
    /// The admission token's id (`jti`): a redeemed admission may no longer reserve.
    pub admission: String,
    /// A hash of the normalised body: the same key with another body is a conflict.
    pub body_hash: String,
    /// What is ordered.
    pub items: Vec<Item>,
}

/// The answer to a reserve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// Recorded (`new`), or the reservation this key already made.
    Accepted {
        /// The reservation's id.
        id: String,
        /// False when the idempotency key had been used with the same body.
        new: bool,
    },
    /// The idempotency key was used with another body.
    Conflict,
    /// The person already has [`MAX_OPEN`] pending reservations.
    TooManyOpen,
    /// No such event.
    NoEvent,
    /// The admission was redeemed: the sale backend took the person over.
    Redeemed,
}

/// Where a reservation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationState {
    /// Waiting for a worker.
    Pending,
    /// Applied: the stock is held for the person (a hold, until `hold_expires_at`).
    Confirmed,
    /// Not applied; see the reason.
    Rejected,
    /// The hold was completed by the sale backend: the units are sold.
    Completed,
    /// The hold was cancelled: its units went back to `remaining`.
    Released,
    /// The hold ran out of time: its units went back to `remaining`.
    Expired,
}

impl ReservationState {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Rejected => "rejected",
            Self::Completed => "completed",
            Self::Released => "released",
            Self::Expired => "expired",
        }
    }

    /// Whether this is the end of a hold (completed, released or expired).
    pub fn ends_hold(self) -> bool {
        matches!(self, Self::Completed | Self::Released | Self::Expired)
    }

    /// Parses the stored spelling.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "pending" => Some(Self::Pending),
            "confirmed" => Some(Self::Confirmed),
            "rejected" => Some(Self::Rejected),
            "completed" => Some(Self::Completed),
            "released" => Some(Self::Released),
            "expired" => Some(Self::Expired),
            _ => None,
        }
    }
}

/// A reservation as the store knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reservation {
    /// Its id.
    pub id: String,
    /// Who made it.
    pub person: String,
    /// Where it is.
    pub state: ReservationState,
    /// Why it was rejected (`sold_out`, `invalid_sku`, `failed`).
    pub reason: Option<String>,
    /// What was ordered.
    pub items: Vec<Item>,
    /// When a confirmed reservation's hold ends by itself (unix ms); `None`: never.
    pub hold_expires_at_ms: Option<u64>,
}

/// A pending reservation, as queued in its person's stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Queued {
    /// The reservation id.
    pub id: String,
    /// Who made it.
    pub person: String,
    /// What is ordered.
    pub items: Vec<Item>,
    /// Its entry in the event's work stream (acknowledged when it is settled).
    pub work_id: String,
    /// When it was made (store clock, unix ms): for the end-to-end latency.
    pub created_ms: u64,
}

/// One delivery of a work stream entry to a consumer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The entry's id in the work stream.
    pub work_id: String,
    /// How many times the entry has been delivered, this one included.
    pub deliveries: u64,
    /// The entry, or `None` if it cannot be decoded (it goes to the dead-letter stream).
    pub entry: Option<Queued>,
    /// The raw fields, kept for the dead-letter stream.
    pub raw: Vec<(String, String)>,
}

/// When a worker takes entries back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClaimPolicy {
    /// A failed entry is retried by its consumer after `base * 2^(deliveries-1)` ms ...
    pub retry_base_ms: u64,
    /// ... capped here. Keep it below `claim_idle_ms`, or another worker takes the retry.
    pub retry_max_ms: u64,
    /// Entries idle this long on any consumer (a dead worker's) are taken over (XAUTOCLAIM).
    pub claim_idle_ms: u64,
}

/// The result of applying a reservation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settlement {
    /// The reservation.
    pub id: String,
    /// Its person (whose stream it leaves).
    pub person: String,
    /// Its entry in the work stream.
    pub work_id: String,
    /// `Confirmed` or `Rejected`.
    pub state: ReservationState,
    /// Why it was rejected.
    pub reason: Option<String>,
    /// When a confirmed hold ends by itself (unix ms); `None`: never (or rejected).
    pub hold_expires_at_ms: Option<u64>,
}

/// An entry moved to the dead-letter stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    /// Its id in the work stream.
    pub work_id: String,
    /// The reservation id, when the entry could be decoded.
    pub reservation_id: Option<String>,
    /// The last error.
    pub error: String,
    /// Deliveries before it was given up.
    pub deliveries: u64,
}

/// How far behind the workers are on an event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Backlog {
    /// Entries not yet delivered to any worker.
    pub lag: u64,
    /// Entries delivered and not yet acknowledged.
    pub pending: u64,
    /// Entries in the dead-letter stream.
    pub dead: u64,
}

/// Reservations and the work stream. Implementations must give the same answers for the same
/// calls; the integration suite runs the same scenarios against each.
#[async_trait]
pub trait Reservations: Send + Sync + 'static {
    /// Records a reservation (or finds the one its idempotency key made), atomically.
    async fn reserve(
        &self,
        event: &EventId,
        new: &NewReservation,
    ) -> Result<ReserveOutcome, StoreError>;

    /// A reservation by id.
    async fn reservation(
        &self,
        event: &EventId,
        id: &str,
    ) -> Result<Option<Reservation>, StoreError>;

    /// Up to `count` entries for `consumer`: its own failed entries whose backoff has passed,
    /// entries idle on another consumer for `claim_idle_ms`, then new entries.
    async fn next_batch(
        &self,
        event: &EventId,
        consumer: &str,
        count: usize,
        policy: ClaimPolicy,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// The pending reservations of each person, oldest first (their own streams).
    async fn chains(
        &self,
        event: &EventId,
        people: &[String],
    ) -> Result<Vec<Vec<Queued>>, StoreError>;

    /// Writes results back: the reservation's state, out of its person's stream, its work
    /// entry acknowledged and removed. A reservation already settled is left as it is.
    /// Answers the ids whose result this call wrote.
    async fn settle(
        &self,
        event: &EventId,
        results: &[Settlement],
    ) -> Result<Vec<String>, StoreError>;

    /// Writes the end of a hold the database decided (`Completed`, `Released` or `Expired`):
    /// only a `confirmed` reservation changes; answers whether this call changed it. The
    /// database is where complete and expiry race (one conditional row update each); this
    /// only shows the winner, so writing it twice is harmless.
    async fn end_hold(
        &self,
        event: &EventId,
        id: &str,
        state: ReservationState,
    ) -> Result<bool, StoreError>;

    /// Acknowledges and removes work entries with nothing left to do.
    async fn ack(&self, event: &EventId, work_ids: &[String]) -> Result<(), StoreError>;

    /// Moves an entry that kept failing to the dead-letter stream: its reservation (if any)
    /// becomes `rejected` with reason `failed` and leaves its person's stream, so neither the
    /// work stream nor the person's later reservations wait for it.
    async fn dead_letter(
        &self,
        event: &EventId,
        delivery: &Delivery,
        error: &str,
    ) -> Result<(), StoreError>;

    /// The newest entries of the dead-letter stream, newest last.
    async fn dead_letters(
        &self,
        event: &EventId,
        count: usize,
    ) -> Result<Vec<DeadLetter>, StoreError>;

    /// How far behind the workers are.
    async fn backlog(&self, event: &EventId) -> Result<Backlog, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_survive_encoding_and_garbage_does_not_decode() {
        let items = vec![
            Item {
                sku: "seat-A.1".into(),
                quantity: 2,
            },
            Item {
                sku: "parking".into(),
                quantity: 1,
            },
        ];
        assert_eq!(decode_items(&encode_items(&items)), Some(items));
        for garbage in ["", "a", "a:0", "a:-1", "a:1,", "a b:1", "a:x"] {
            assert_eq!(decode_items(garbage), None, "{garbage:?}");
        }
    }
}
