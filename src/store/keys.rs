//! Every Redis key name, once. Every key of an event carries the hash tag `{ev:<id>}`, so each
//! script touches one slot and the same code runs on one Redis or on a Redis Cluster. What each
//! key holds: `lua/queue/lib.lua` (the queue's) and `lua/reservations/lib.lua` (reservations').

use crate::event::EventId;

/// The set of known event ids. Not an event key: it is read only by the sweeper and the worker,
/// and the sweeper removes ids whose event has gone.
pub const EVENTS: &str = "vst:events";

/// An event's key named `name`.
fn key(event: &EventId, name: &str) -> String {
    format!("vst:{{ev:{event}}}:{name}")
}

/// The queue's keys, in the order every queue script takes them (`lua/queue/lib.lua`).
pub fn queue(event: &EventId) -> Vec<String> {
    [
        "meta", "seq", "wait", "hb", "people", "stats", "active", "admits", "redeemed", "audit",
        "draw",
    ]
    .iter()
    .map(|name| key(event, name))
    .collect()
}

/// The event's valves and door (the queue's first key).
pub fn meta(event: &EventId) -> String {
    key(event, "meta")
}

/// The event's redeemed admissions (a hash: admission id → when).
pub fn redeemed(event: &EventId) -> String {
    key(event, "redeemed")
}

/// The event's audit trail (the queue's last key).
pub fn audit(event: &EventId) -> String {
    key(event, "audit")
}

/// The pre-queue's draw (the queue's eleventh key).
pub fn draw(event: &EventId) -> String {
    key(event, "draw")
}

/// The event's work stream.
pub fn work(event: &EventId) -> String {
    key(event, "rsv:work")
}

/// The event's dead-letter stream.
pub fn dead(event: &EventId) -> String {
    key(event, "rsv:dead")
}

/// A person's stream of pending reservations.
pub fn person(event: &EventId, person: &str) -> String {
    key(event, &format!("rsv:p:{person}"))
}

/// A reservation.
pub fn reservation(event: &EventId, id: &str) -> String {
    key(event, &format!("rsv:r:{id}"))
}

/// An idempotency key of a person (the person's length first, so no two (person, key) pairs
/// share a name).
pub fn idempotency(event: &EventId, person: &str, idem: &str) -> String {
    key(event, &format!("rsv:k:{}:{person}:{idem}", person.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_an_event_carries_its_hash_tag() {
        let event = EventId::parse("sale").expect("valid id");
        let mut all = queue(&event);
        all.extend([
            work(&event),
            dead(&event),
            person(&event, "p"),
            reservation(&event, "r"),
            idempotency(&event, "p", "k"),
        ]);
        for k in all {
            assert!(k.starts_with("vst:{ev:sale}:"), "{k}");
        }
        assert_eq!(queue(&event)[0], meta(&event));
        assert_eq!(queue(&event)[9], audit(&event));
        assert_eq!(queue(&event)[10], draw(&event));
    }
}
