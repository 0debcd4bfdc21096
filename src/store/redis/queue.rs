//! The queue on Redis ([`Store`]): one script of `lua/queue/` per step.

use std::collections::HashMap;

use async_trait::async_trait;
use fred::prelude::*;

use super::reply::Reply;
use super::RedisStore;
use crate::door;
use crate::event::{EventConfig, EventId};
use crate::store::{
    keys, Admission, AuditEntry, Change, Draw, EnterOutcome, Figures, Gone, JoinOutcome,
    LeaveOutcome, Person, Place, Presence, StatusOutcome, Store, StoreError, SweepOutcome,
    AUDIT_LEN, KEY_SLACK_SECS,
};

/// What status-like scripts answer for someone not waiting.
fn gone(tag: &str) -> Option<Gone> {
    match tag {
        "e" => Some(Gone::Evicted),
        "l" => Some(Gone::Left),
        "x" => Some(Gone::AdmissionExpired),
        _ => None,
    }
}

impl RedisStore {
    /// Runs a queue script on the event's keys and reads its reply.
    async fn queue_script(
        &self,
        lua: &super::Lua,
        event: &EventId,
        args: Vec<Value>,
    ) -> Result<Reply, StoreError> {
        let value: Value = self.run(lua, keys::queue(event), args).await?;
        Reply::new(lua.name, value)
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn put_event(
        &self,
        event: &EventId,
        config: &EventConfig,
        by: &str,
    ) -> Result<Change, StoreError> {
        let retention = u64::from(config.ticket_ttl_secs) + KEY_SLACK_SECS;
        let mut args: Vec<Value> = vec![
            (retention as i64).into(),
            by.into(),
            (AUDIT_LEN as i64).into(),
            hex::encode(self.clock.fresh_seed()).into(),
        ];
        for (field, value) in config.to_fields() {
            args.push(field.into());
            args.push(value.into());
        }
        let mut reply = self
            .queue_script(&self.scripts.put_event, event, args)
            .await?;
        let version = reply.int()?;
        let changes =
            serde_json::from_str(&reply.text()?).map_err(|_| reply.error("changes JSON"))?;
        // Indexed after the definition exists, for the sweeper and the worker, which find
        // events only through the index. Indexed first, a sweep between the index and the
        // definition would find no definition and drop the id for good (see `sweep`). Should
        // this call fail, the operator's PUT fails and its retry indexes the event.
        self.call(
            "index_event",
            self.client.sadd::<(), _, _>(keys::EVENTS, event.as_str()),
        )
        .await?;
        Ok(Change { version, changes })
    }

    async fn audit(&self, event: &EventId, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let read = self
            .client
            .xrevrange_values::<String, String, String, _, _, _>(
                keys::audit(event),
                "+",
                "-",
                Some(limit as u64),
            );
        let entries = self.call("audit", read).await?;
        Ok(entries
            .into_iter()
            .map(|(_, fields)| {
                let field = |name: &str| fields.get(name).map_or("", String::as_str);
                AuditEntry {
                    at_ms: field("at").parse().unwrap_or(0),
                    by: field("by").to_owned(),
                    version: field("version").parse().unwrap_or(0),
                    changes: serde_json::from_str(field("changes")).unwrap_or_default(),
                }
            })
            .collect())
    }

    async fn get_event(&self, event: &EventId) -> Result<Option<EventConfig>, StoreError> {
        let fields: HashMap<String, String> = self
            .call("get_event", self.client.hgetall(keys::meta(event)))
            .await?;
        Ok((!fields.is_empty()).then(|| EventConfig::from_fields(&fields)))
    }

    async fn list_events(&self) -> Result<Vec<EventId>, StoreError> {
        let ids: Vec<String> = self
            .call("list_events", self.client.smembers(keys::EVENTS))
            .await?;
        Ok(ids
            .iter()
            .filter_map(|id| EventId::parse(id).ok())
            .collect())
    }

    async fn join(&self, event: &EventId, person: &Person) -> Result<JoinOutcome, StoreError> {
        let claim = person.origin.as_str();
        let args = |draw: Option<(u64, i64)>| -> Vec<Value> {
            let (seq, score) = draw.map_or((String::new(), String::new()), |(seq, score)| {
                (seq.to_string(), score.to_string())
            });
            vec![
                person.id.as_str().into(),
                claim.into(),
                (KEY_SLACK_SECS as i64).into(),
                seq.into(),
                score.into(),
            ]
        };
        let mut reply = self
            .queue_script(&self.scripts.join, event, args(None))
            .await?;
        let mut tag = reply.text()?;
        if tag == "draw" {
            // A new place in the pre-queue: its draw score, then the place (see join.lua).
            let seq = reply.int()?;
            let seed = hex::decode(reply.text()?).map_err(|_| reply.error("draw seed"))?;
            let score = door::draw_score(&seed, &crate::tickets::jti(event, seq));
            reply = self
                .queue_script(&self.scripts.join, event, args(Some((seq, score))))
                .await?;
            tag = reply.text()?;
        }
        Ok(match tag.as_str() {
            tag @ ("created" | "existing") => JoinOutcome::Placed {
                place: Place {
                    seq: reply.int()?,
                    issued_at: reply.int()?,
                    expires_at: reply.int()?,
                },
                presence: match reply.text()?.as_str() {
                    "w" => Presence::Waiting(reply.standing()?),
                    "p" => Presence::PreQueue {
                        opens_at: reply.int()?,
                        poll_after_ms: reply.int()? as u32,
                    },
                    // The admission's expiry is not needed to answer a join.
                    _ => Presence::Admitted { expires_at_ms: 0 },
                },
                created: tag == "created",
            },
            "no_event" => JoinOutcome::NoEvent,
            "claim_refused" => JoinOutcome::ClaimRefused,
            "token_required" => JoinOutcome::TokenRequired,
            "not_open" => JoinOutcome::NotOpen(reply.text()?),
            "full" => JoinOutcome::Full,
            _ => return Err(reply.error("tag")),
        })
    }

    async fn status(
        &self,
        event: &EventId,
        person: &str,
        seq: u64,
    ) -> Result<StatusOutcome, StoreError> {
        let args = vec![person.into(), seq.to_string().into()];
        let mut reply = self.queue_script(&self.scripts.status, event, args).await?;
        let tag = reply.text()?;
        Ok(match tag.as_str() {
            "w" => StatusOutcome::Present(Presence::Waiting(reply.standing()?)),
            "p" => StatusOutcome::Present(Presence::PreQueue {
                opens_at: reply.int()?,
                poll_after_ms: reply.int()? as u32,
            }),
            "a" => StatusOutcome::Present(Presence::Admitted {
                expires_at_ms: reply.int()?,
            }),
            "unknown" => StatusOutcome::Unknown,
            "superseded" => StatusOutcome::Superseded,
            other => StatusOutcome::Gone(gone(other).ok_or_else(|| reply.error("tag"))?),
        })
    }

    async fn enter(
        &self,
        event: &EventId,
        person: &str,
        seq: u64,
        admission_id: &str,
        vip_only: bool,
    ) -> Result<EnterOutcome, StoreError> {
        let args = vec![
            person.into(),
            seq.to_string().into(),
            admission_id.into(),
            (if vip_only { "vip_only" } else { "any" }).into(),
            (KEY_SLACK_SECS as i64).into(),
        ];
        let mut reply = self.queue_script(&self.scripts.enter, event, args).await?;
        let tag = reply.text()?;
        Ok(match tag.as_str() {
            "admitted" => EnterOutcome::Admitted(Admission {
                id: reply.text()?,
                expires_at_ms: reply.int()?,
                new: reply.text()? == "new",
            }),
            "w" => EnterOutcome::NotReady(reply.standing()?),
            "p" => EnterOutcome::PreQueue {
                opens_at: reply.int()?,
            },
            "limited" => EnterOutcome::Limited,
            "unknown" => EnterOutcome::Unknown,
            "superseded" => EnterOutcome::Superseded,
            other => EnterOutcome::Gone(gone(other).ok_or_else(|| reply.error("tag"))?),
        })
    }

    async fn redeem(
        &self,
        event: &EventId,
        admission_id: &str,
        expires_at: u64,
    ) -> Result<bool, StoreError> {
        let args = vec![
            admission_id.into(),
            (KEY_SLACK_SECS as i64).into(),
            (expires_at as i64).into(),
        ];
        let mut reply = self.queue_script(&self.scripts.redeem, event, args).await?;
        Ok(reply.text()? == "redeemed")
    }

    async fn leave(
        &self,
        event: &EventId,
        person: &str,
        seq: u64,
    ) -> Result<LeaveOutcome, StoreError> {
        let args = vec![person.into(), seq.to_string().into()];
        let mut reply = self.queue_script(&self.scripts.leave, event, args).await?;
        Ok(match reply.text()?.as_str() {
            "left" => LeaveOutcome::Left { now: true },
            "l" | "a" | "x" => LeaveOutcome::Left { now: false },
            "e" => LeaveOutcome::Evicted,
            "unknown" => LeaveOutcome::Unknown,
            "superseded" => LeaveOutcome::Superseded,
            _ => return Err(reply.error("tag")),
        })
    }

    async fn sweep(&self, event: &EventId, batch: u32) -> Result<SweepOutcome, StoreError> {
        let mut reply = self
            .queue_script(&self.scripts.sweep, event, vec![batch.into()])
            .await?;
        let evicted = reply.signed()?;
        if evicted < 0 {
            // The definition is gone (closed and drained): drop the id from the index. A
            // `put_event` may have created it since this sweep looked: it indexes the event
            // after writing it, so if that index came before this removal, the definition
            // exists now and the id goes back. (The index is another slot than the event's,
            // so the two steps cannot be one script on a cluster.)
            self.call(
                "forget_event",
                self.client.srem::<(), _, _>(keys::EVENTS, event.as_str()),
            )
            .await?;
            let exists: u64 = self
                .call("forget_event", self.client.exists(keys::meta(event)))
                .await?;
            if exists > 0 {
                // Swept from the next round on.
                self.call(
                    "index_event",
                    self.client.sadd::<(), _, _>(keys::EVENTS, event.as_str()),
                )
                .await?;
            }
            return Ok(SweepOutcome::NoEvent);
        }
        Ok(SweepOutcome::Swept {
            evicted: evicted as u64,
            waiting: reply.int()?,
            active: reply.int()?,
        })
    }

    async fn figures(&self, event: &EventId) -> Result<Figures, StoreError> {
        let mut reply = self
            .queue_script(&self.scripts.figures, event, vec![])
            .await?;
        Ok(Figures {
            waiting: reply.int()?,
            active: reply.int()?,
            joined_total: reply.int()?,
            evicted_total: reply.int()?,
            left_total: reply.int()?,
            admitted_total: reply.int()?,
            redeemed_total: reply.int()?,
            door_window: reply
                .text()?
                .parse()
                .map_err(|_| reply.error("door credit"))?,
            admitted_last_minute: reply.int()?,
        })
    }

    async fn draw(&self, event: &EventId) -> Result<Option<Draw>, StoreError> {
        let reply = self.queue_script(&self.scripts.draw, event, vec![]).await?;
        let mut reply = reply;
        let Ok(seed) = reply.text() else {
            return Ok(None);
        };
        if seed.is_empty() {
            return Ok(None);
        }
        Ok(Some(Draw {
            seed: hex::decode(&seed).map_err(|_| reply.error("draw seed"))?,
            count: reply.int()?,
            opens_at: reply.int()?,
            drawn: reply.text()? == "drawn",
        }))
    }

    async fn draw_entries(
        &self,
        event: &EventId,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<u64>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (start, stop) = (offset as i64, (offset + limit - 1) as i64);
        let seqs: Vec<u64> = self
            .call(
                "draw_entries",
                self.client
                    .zrange(keys::draw(event), start, stop, None, false, None, false),
            )
            .await?;
        Ok(seqs)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.call("ping", self.client.ping::<String>(None)).await?;
        Ok(())
    }

    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.metrics.latency.clone()),
            Box::new(self.metrics.errors.clone()),
        ]
    }
}
