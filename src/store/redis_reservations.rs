//! [`Reservations`] on Redis Streams: each step is one Lua script (`lua/reserve.lua`, …), run
//! by SHA, over keys that all carry the event's hash tag (key layout: `lua/reserve.lua`).

use async_trait::async_trait;
use fred::prelude::*;
use fred::types::scripts::Script;

use super::redis::RedisStore;
use super::reservations::{
    decode_items, encode_items, Backlog, ClaimPolicy, DeadLetter, Delivery, NewReservation, Queued,
    Reservation, ReservationState, Reservations, ReserveOutcome, Settlement, GROUP, MAX_OPEN,
    RETENTION_SECS,
};
use super::StoreError;
use crate::event::EventId;

/// Dead letters kept per event (approximately: `XADD MAXLEN ~`).
const DEAD_LETTERS_KEPT: u64 = 10_000;

/// The reservation scripts, each prefixed with the shared helpers like the queue's.
struct ReservationScripts {
    reserve: Script,
    next_batch: Script,
    chains: Script,
    settle: Script,
    dead_letter: Script,
    backlog: Script,
    ack: Script,
}

impl ReservationScripts {
    fn load() -> Self {
        let with_lib = |body: &str| {
            Script::from_lua(format!("{}\n{}", include_str!("../../lua/lib.lua"), body))
        };
        Self {
            reserve: with_lib(include_str!("../../lua/reserve.lua")),
            next_batch: with_lib(include_str!("../../lua/next_batch.lua")),
            chains: with_lib(include_str!("../../lua/chains.lua")),
            settle: with_lib(include_str!("../../lua/settle.lua")),
            dead_letter: with_lib(include_str!("../../lua/dead_letter.lua")),
            backlog: with_lib(include_str!("../../lua/backlog.lua")),
            ack: with_lib(include_str!("../../lua/ack.lua")),
        }
    }
}

/// Loaded once per process: scripts are plain text, the same for every client.
fn scripts() -> &'static ReservationScripts {
    static SCRIPTS: std::sync::OnceLock<ReservationScripts> = std::sync::OnceLock::new();
    SCRIPTS.get_or_init(ReservationScripts::load)
}

// === keys (see lua/reserve.lua) ===

fn key(event: &EventId, name: &str) -> String {
    format!("vst:{{ev:{event}}}:{name}")
}

fn work_key(event: &EventId) -> String {
    key(event, "rsv:work")
}

fn dead_key(event: &EventId) -> String {
    key(event, "rsv:dead")
}

fn person_key(event: &EventId, person: &str) -> String {
    key(event, &format!("rsv:p:{person}"))
}

fn reservation_key(event: &EventId, id: &str) -> String {
    key(event, &format!("rsv:r:{id}"))
}

fn idempotency_key(event: &EventId, person: &str, idem: &str) -> String {
    key(event, &format!("rsv:k:{}:{person}:{idem}", person.len()))
}

fn unavailable(err: Error) -> StoreError {
    StoreError::Unavailable(err.to_string())
}

fn protocol(what: &str, reply: &Value) -> StoreError {
    StoreError::Protocol(format!("{what}: {reply:?}"))
}

// === reply decoding ===

/// A stream entry's fields `[f1, v1, f2, v2, ...]` as pairs.
fn field_pairs(value: &Value) -> Vec<(String, String)> {
    let Value::Array(flat) = value else {
        return Vec::new();
    };
    flat.chunks(2)
        .filter_map(|pair| match pair {
            [f, v] => Some((f.as_string()?, v.as_string()?)),
            _ => None,
        })
        .collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(f, _)| f == name)
        .map(|(_, v)| v.as_str())
}

/// A work entry (`rid`, `person`, `items`, `at`), or `None` if malformed.
fn decode_work(work_id: &str, fields: &[(String, String)]) -> Option<Queued> {
    Some(Queued {
        id: field(fields, "rid")?.to_owned(),
        person: field(fields, "person")?.to_owned(),
        items: decode_items(field(fields, "items")?)?,
        work_id: work_id.to_owned(),
        created_ms: field(fields, "at")?.parse().ok()?,
    })
}

/// An entry of a person's stream (`rid`, `wid`, `items`, `at`).
fn decode_person_entry(person: &str, fields: &[(String, String)]) -> Option<Queued> {
    Some(Queued {
        id: field(fields, "rid")?.to_owned(),
        person: person.to_owned(),
        items: decode_items(field(fields, "items")?)?,
        work_id: field(fields, "wid")?.to_owned(),
        created_ms: field(fields, "at")?.parse().ok()?,
    })
}

fn array(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        _ => Vec::new(),
    }
}

impl RedisStore {
    async fn eval(
        &self,
        script: &Script,
        keys: Vec<String>,
        args: Vec<Value>,
    ) -> Result<Value, StoreError> {
        if !self.client.is_connected() {
            return Err(StoreError::Unavailable("not connected".into()));
        }
        script
            .evalsha_with_reload(&self.client, keys, args)
            .await
            .map_err(unavailable)
    }
}

#[async_trait]
impl Reservations for RedisStore {
    async fn reserve(
        &self,
        event: &EventId,
        new: &NewReservation,
    ) -> Result<ReserveOutcome, StoreError> {
        let keys = vec![
            key(event, "meta"),
            work_key(event),
            person_key(event, &new.person),
            reservation_key(event, &new.id),
            idempotency_key(event, &new.person, &new.idempotency_key),
        ];
        let args: Vec<Value> = vec![
            new.id.as_str().into(),
            new.person.as_str().into(),
            new.body_hash.as_str().into(),
            encode_items(&new.items).into(),
            i64::from(MAX_OPEN).into(),
            (RETENTION_SECS as i64).into(),
            GROUP.into(),
        ];
        let reply = self.eval(&scripts().reserve, keys, args).await?;
        let parts = array(reply.clone());
        let tag = parts.first().and_then(Value::as_string);
        let id = parts.get(1).and_then(Value::as_string);
        Ok(match (tag.as_deref(), id) {
            (Some("created"), Some(id)) => ReserveOutcome::Accepted { id, new: true },
            (Some("existing"), Some(id)) => ReserveOutcome::Accepted { id, new: false },
            (Some("conflict"), _) => ReserveOutcome::Conflict,
            (Some("too_many"), _) => ReserveOutcome::TooManyOpen,
            (Some("no_event"), _) => ReserveOutcome::NoEvent,
            _ => return Err(protocol("reserve", &reply)),
        })
    }

    async fn reservation(
        &self,
        event: &EventId,
        id: &str,
    ) -> Result<Option<Reservation>, StoreError> {
        if !self.client.is_connected() {
            return Err(StoreError::Unavailable("not connected".into()));
        }
        let fields: std::collections::HashMap<String, String> = self
            .client
            .hgetall(reservation_key(event, id))
            .await
            .map_err(unavailable)?;
        if fields.is_empty() {
            return Ok(None);
        }
        let get = |name: &str| fields.get(name).map(String::as_str);
        let state = get("state")
            .and_then(ReservationState::parse)
            .ok_or_else(|| StoreError::Protocol(format!("reservation {id}: {fields:?}")))?;
        Ok(Some(Reservation {
            id: id.to_owned(),
            person: get("person").unwrap_or_default().to_owned(),
            state,
            reason: get("reason").filter(|r| !r.is_empty()).map(str::to_owned),
            items: get("items").and_then(decode_items).unwrap_or_default(),
        }))
    }

    async fn next_batch(
        &self,
        event: &EventId,
        consumer: &str,
        count: usize,
        policy: ClaimPolicy,
    ) -> Result<Vec<Delivery>, StoreError> {
        let args: Vec<Value> = vec![
            GROUP.into(),
            consumer.into(),
            (count as i64).into(),
            (policy.retry_base_ms.max(1) as i64).into(),
            (policy.retry_max_ms as i64).into(),
            (policy.claim_idle_ms as i64).into(),
        ];
        let reply = self
            .eval(&scripts().next_batch, vec![work_key(event)], args)
            .await?;
        array(reply)
            .into_iter()
            .map(|entry| {
                let parts = array(entry);
                let (Some(id), Some(n)) = (
                    parts.first().and_then(Value::as_string),
                    parts.get(1).and_then(Value::as_u64),
                ) else {
                    return Err(StoreError::Protocol(format!("next_batch entry {parts:?}")));
                };
                let raw = parts.get(2).map(field_pairs).unwrap_or_default();
                Ok(Delivery {
                    entry: decode_work(&id, &raw),
                    work_id: id,
                    deliveries: n,
                    raw,
                })
            })
            .collect()
    }

    async fn chains(
        &self,
        event: &EventId,
        people: &[String],
    ) -> Result<Vec<Vec<Queued>>, StoreError> {
        if people.is_empty() {
            return Ok(Vec::new());
        }
        let keys = people.iter().map(|p| person_key(event, p)).collect();
        let reply = self
            .eval(&scripts().chains, keys, vec![i64::from(MAX_OPEN).into()])
            .await?;
        let chains = array(reply);
        if chains.len() != people.len() {
            return Err(StoreError::Protocol(format!("chains: {chains:?}")));
        }
        Ok(chains
            .into_iter()
            .zip(people)
            .map(|(chain, person)| {
                array(chain)
                    .into_iter()
                    .filter_map(|entry| {
                        let parts = array(entry);
                        decode_person_entry(person, &field_pairs(parts.get(1)?))
                    })
                    .collect()
            })
            .collect())
    }

    async fn settle(
        &self,
        event: &EventId,
        results: &[Settlement],
    ) -> Result<Vec<String>, StoreError> {
        if results.is_empty() {
            return Ok(Vec::new());
        }
        let mut keys = vec![work_key(event)];
        let mut args: Vec<Value> = vec![GROUP.into(), (RETENTION_SECS as i64).into()];
        for r in results {
            keys.push(person_key(event, &r.person));
            keys.push(reservation_key(event, &r.id));
            args.push(r.id.as_str().into());
            args.push(r.work_id.as_str().into());
            args.push(r.state.as_str().into());
            args.push(r.reason.clone().unwrap_or_default().into());
        }
        let reply = self.eval(&scripts().settle, keys, args).await?;
        Ok(array(reply).iter().filter_map(Value::as_string).collect())
    }

    async fn ack(&self, event: &EventId, work_ids: &[String]) -> Result<(), StoreError> {
        if work_ids.is_empty() {
            return Ok(());
        }
        let args = work_ids.iter().map(|id| id.as_str().into()).collect();
        self.eval(&scripts().ack, vec![work_key(event)], {
            let mut all: Vec<Value> = vec![GROUP.into()];
            all.extend::<Vec<Value>>(args);
            all
        })
        .await?;
        Ok(())
    }

    async fn dead_letter(
        &self,
        event: &EventId,
        delivery: &Delivery,
        error: &str,
    ) -> Result<(), StoreError> {
        let (id, person) = match &delivery.entry {
            Some(q) => (q.id.clone(), q.person.clone()),
            // Placeholders with the event's tag keep the script on one slot.
            None => (String::new(), String::new()),
        };
        let raw = delivery
            .raw
            .iter()
            .map(|(f, v)| format!("{f}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        let keys = vec![
            work_key(event),
            dead_key(event),
            person_key(event, &person),
            reservation_key(event, &id),
        ];
        let args: Vec<Value> = vec![
            GROUP.into(),
            (RETENTION_SECS as i64).into(),
            delivery.work_id.as_str().into(),
            id.into(),
            (delivery.deliveries as i64).into(),
            error.into(),
            raw.into(),
            (DEAD_LETTERS_KEPT as i64).into(),
        ];
        self.eval(&scripts().dead_letter, keys, args).await?;
        Ok(())
    }

    async fn dead_letters(
        &self,
        event: &EventId,
        count: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        if !self.client.is_connected() {
            return Err(StoreError::Unavailable("not connected".into()));
        }
        let reply: Value = self
            .client
            .xrevrange(dead_key(event), "+", "-", Some(count as u64))
            .await
            .map_err(unavailable)?;
        let mut letters: Vec<DeadLetter> = array(reply)
            .into_iter()
            .filter_map(|entry| {
                let parts = array(entry);
                let fields = field_pairs(parts.get(1)?);
                Some(DeadLetter {
                    work_id: field(&fields, "wid")?.to_owned(),
                    reservation_id: field(&fields, "rid")
                        .filter(|r| !r.is_empty())
                        .map(str::to_owned),
                    error: field(&fields, "error").unwrap_or_default().to_owned(),
                    deliveries: field(&fields, "deliveries")?.parse().ok()?,
                })
            })
            .collect();
        letters.reverse();
        Ok(letters)
    }

    async fn backlog(&self, event: &EventId) -> Result<Backlog, StoreError> {
        let reply = self
            .eval(
                &scripts().backlog,
                vec![work_key(event), dead_key(event)],
                vec![GROUP.into()],
            )
            .await?;
        let parts = array(reply.clone());
        let n = |i: usize| parts.get(i).and_then(Value::as_u64);
        match (n(0), n(1), n(2)) {
            (Some(lag), Some(pending), Some(dead)) => Ok(Backlog { lag, pending, dead }),
            _ => Err(protocol("backlog", &reply)),
        }
    }
}
