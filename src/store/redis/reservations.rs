//! Reservations on Redis Streams ([`Reservations`]): one script of `lua/reservations/` per
//! step (key layout: `lua/reservations/lib.lua`).

use async_trait::async_trait;
use fred::prelude::*;

use super::reply::Reply;
use super::RedisStore;
use crate::event::EventId;
use crate::store::keys;
use crate::store::reservations::{
    decode_items, encode_items, Backlog, ClaimPolicy, DeadLetter, Delivery, NewReservation, Queued,
    Reservation, ReservationState, Reservations, ReserveOutcome, Settlement, GROUP, MAX_OPEN,
    RETENTION_SECS,
};
use crate::store::StoreError;

/// Dead letters kept per event (approximately: `XADD MAXLEN ~`).
const DEAD_LETTERS_KEPT: u64 = 10_000;

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

#[async_trait]
impl Reservations for RedisStore {
    async fn reserve(
        &self,
        event: &EventId,
        new: &NewReservation,
    ) -> Result<ReserveOutcome, StoreError> {
        let keys = vec![
            keys::meta(event),
            keys::work(event),
            keys::person(event, &new.person),
            keys::reservation(event, &new.id),
            keys::idempotency(event, &new.person, &new.idempotency_key),
            keys::redeemed(event),
        ];
        let args: Vec<Value> = vec![
            new.id.as_str().into(),
            new.person.as_str().into(),
            new.body_hash.as_str().into(),
            encode_items(&new.items).into(),
            i64::from(MAX_OPEN).into(),
            (RETENTION_SECS as i64).into(),
            GROUP.into(),
            new.admission.as_str().into(),
        ];
        let value = self.run(&self.scripts.reserve, keys, args).await?;
        let mut reply = Reply::new("reserve", value)?;
        Ok(match reply.text()?.as_str() {
            "created" => ReserveOutcome::Accepted {
                id: reply.text()?,
                new: true,
            },
            "existing" => ReserveOutcome::Accepted {
                id: reply.text()?,
                new: false,
            },
            "conflict" => ReserveOutcome::Conflict,
            "too_many" => ReserveOutcome::TooManyOpen,
            "no_event" => ReserveOutcome::NoEvent,
            "redeemed" => ReserveOutcome::Redeemed,
            _ => return Err(reply.error("tag")),
        })
    }

    async fn reservation(
        &self,
        event: &EventId,
        id: &str,
    ) -> Result<Option<Reservation>, StoreError> {
        let fields: std::collections::HashMap<String, String> = self
            .call(
                "reservation",
                self.client.hgetall(keys::reservation(event, id)),
            )
            .await?;
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
            hold_expires_at_ms: get("hold_expires_at").and_then(|v| v.parse().ok()),
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
        let value = self
            .run(&self.scripts.next_batch, vec![keys::work(event)], args)
            .await?;
        Reply::new("next_batch", value)?
            .rest()
            .into_iter()
            .map(|entry| {
                let mut parts = Reply::new("next_batch", entry)?;
                let work_id = parts.text()?;
                let deliveries = parts.int()?;
                let raw = parts.rest().first().map(field_pairs).unwrap_or_default();
                Ok(Delivery {
                    entry: decode_work(&work_id, &raw),
                    work_id,
                    deliveries,
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
        let keys = people.iter().map(|p| keys::person(event, p)).collect();
        let value = self
            .run(&self.scripts.chains, keys, vec![i64::from(MAX_OPEN).into()])
            .await?;
        let reply = Reply::new("chains", value)?;
        let chains = reply.rest();
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
        let mut keys = vec![keys::work(event)];
        let mut args: Vec<Value> = vec![GROUP.into(), (RETENTION_SECS as i64).into()];
        for r in results {
            keys.push(keys::person(event, &r.person));
            keys.push(keys::reservation(event, &r.id));
            args.push(r.id.as_str().into());
            args.push(r.work_id.as_str().into());
            args.push(r.state.as_str().into());
            args.push(r.reason.clone().unwrap_or_default().into());
            args.push(
                r.hold_expires_at_ms
                    .map(|ms| ms.to_string())
                    .unwrap_or_default()
                    .into(),
            );
        }
        let value = self.run(&self.scripts.settle, keys, args).await?;
        Ok(array(value).iter().filter_map(Value::as_string).collect())
    }

    async fn end_hold(
        &self,
        event: &EventId,
        id: &str,
        state: ReservationState,
    ) -> Result<bool, StoreError> {
        if !state.ends_hold() {
            return Ok(false);
        }
        let value: Value = self
            .run(
                &self.scripts.end_hold,
                vec![keys::reservation(event, id)],
                vec![state.as_str().into(), (RETENTION_SECS as i64).into()],
            )
            .await?;
        Ok(value.as_i64() == Some(1))
    }

    async fn ack(&self, event: &EventId, work_ids: &[String]) -> Result<(), StoreError> {
        if work_ids.is_empty() {
            return Ok(());
        }
        let args = std::iter::once(GROUP.into())
            .chain(work_ids.iter().map(|id| id.as_str().into()))
            .collect();
        let _: Value = self
            .run(&self.scripts.ack, vec![keys::work(event)], args)
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
            keys::work(event),
            keys::dead(event),
            keys::person(event, &person),
            keys::reservation(event, &id),
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
        let _: Value = self.run(&self.scripts.dead_letter, keys, args).await?;
        Ok(())
    }

    async fn dead_letters(
        &self,
        event: &EventId,
        count: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let read = self
            .client
            .xrevrange(keys::dead(event), "+", "-", Some(count as u64));
        let value: Value = self.call("dead_letters", read).await?;
        let mut letters: Vec<DeadLetter> = array(value)
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
        let keys = vec![keys::work(event), keys::dead(event)];
        let value = self
            .run(&self.scripts.backlog, keys, vec![GROUP.into()])
            .await?;
        let mut reply = Reply::new("backlog", value)?;
        Ok(Backlog {
            lag: reply.int()?,
            pending: reply.int()?,
            dead: reply.int()?,
        })
    }
}
