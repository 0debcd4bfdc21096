//! The Redis store: every multi-step change is one Lua script from `lua/`, run by SHA
//! (reloaded on NOSCRIPT). Every key of an event carries the hash tag `{ev:<id>}`, so each
//! script touches one slot and the same code runs on one Redis or on a Redis Cluster.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use fred::prelude::*;
use fred::types::scripts::Script;

use super::{
    Figures, JoinOutcome, LeaveOutcome, Person, PersonState, Place, Standing, StatusOutcome, Store,
    StoreError, SweepOutcome, KEY_SLACK_SECS,
};
use crate::event::{EventConfig, EventId, Tier};

/// The set of known event ids. Not an event key: it is read only by the sweeper, which also
/// removes ids whose event has gone.
const EVENTS_KEY: &str = "vst:events";

/// How long a single store call may take before the caller gets 503.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// The Lua scripts, each prefixed with the shared helpers.
struct Scripts {
    join: Script,
    status: Script,
    leave: Script,
    sweep: Script,
    put_event: Script,
}

impl Scripts {
    fn load() -> Self {
        let with_lib = |body: &str| {
            Script::from_lua(format!("{}\n{}", include_str!("../../lua/lib.lua"), body))
        };
        Self {
            join: with_lib(include_str!("../../lua/join.lua")),
            status: with_lib(include_str!("../../lua/status.lua")),
            leave: with_lib(include_str!("../../lua/leave.lua")),
            sweep: with_lib(include_str!("../../lua/sweep.lua")),
            put_event: with_lib(include_str!("../../lua/put_event.lua")),
        }
    }
}

/// The Redis (or Redis Cluster) store.
pub struct RedisStore {
    client: Client,
    scripts: Scripts,
}

/// An event's keys, in the order every script takes them (see `lua/lib.lua`).
fn keys(event: &EventId) -> Vec<String> {
    ["meta", "seq", "wait", "hb", "people", "stats"]
        .iter()
        .map(|name| format!("vst:{{ev:{event}}}:{name}"))
        .collect()
}

fn unavailable(err: Error) -> StoreError {
    StoreError::Unavailable(err.to_string())
}

impl RedisStore {
    /// Connects to `redis://…` or `redis-cluster://…`. Fails fast when the first connection
    /// fails; afterwards the client reconnects by itself and calls fail with 503 meanwhile.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let config = Config::from_url(url).map_err(unavailable)?;
        let client = Builder::from_config(config)
            .with_performance_config(|perf| perf.default_command_timeout = COMMAND_TIMEOUT)
            .with_connection_config(|conn| {
                conn.connection_timeout = COMMAND_TIMEOUT;
                conn.internal_command_timeout = COMMAND_TIMEOUT;
                // A command caught by a dropped connection is not replayed: the caller gets an
                // error and retries, rather than waiting behind a reconnect.
                conn.max_command_attempts = 1;
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 50, 1000, 2))
            .build()
            .map_err(unavailable)?;
        client.init().await.map_err(unavailable)?;
        Ok(Self {
            client,
            scripts: Scripts::load(),
        })
    }

    async fn run(
        &self,
        script: &Script,
        event: &EventId,
        args: Vec<Value>,
    ) -> Result<Vec<Value>, StoreError> {
        if !self.client.is_connected() {
            return Err(StoreError::Unavailable("not connected".into()));
        }
        script
            .evalsha_with_reload(&self.client, keys(event), args)
            .await
            .map_err(unavailable)
    }
}

// === reply decoding ===

fn text(reply: &[Value], i: usize) -> Result<String, StoreError> {
    reply
        .get(i)
        .and_then(|v| v.as_string())
        .ok_or_else(|| StoreError::Protocol(format!("field {i} of {reply:?}")))
}

fn int(reply: &[Value], i: usize) -> Result<u64, StoreError> {
    reply
        .get(i)
        .and_then(|v| v.as_u64())
        .ok_or_else(|| StoreError::Protocol(format!("field {i} of {reply:?}")))
}

fn standing(reply: &[Value], at: usize) -> Result<Standing, StoreError> {
    let tier = text(reply, at + 1)?;
    Ok(Standing {
        position: int(reply, at)?,
        tier: Tier::parse(&tier).ok_or_else(|| StoreError::Protocol(format!("tier {tier}")))?,
        poll_after_ms: int(reply, at + 2)? as u32,
    })
}

fn gone_state(tag: &str) -> Result<PersonState, StoreError> {
    match tag {
        "e" => Ok(PersonState::Evicted),
        "l" => Ok(PersonState::Left),
        other => Err(StoreError::Protocol(format!("person state {other}"))),
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn put_event(&self, event: &EventId, config: &EventConfig) -> Result<u64, StoreError> {
        // Index first: an id without a definition is harmless (the sweeper drops it), a
        // definition missing from the index would never be swept.
        let _: () = self
            .client
            .sadd(EVENTS_KEY, event.as_str())
            .await
            .map_err(unavailable)?;
        let mut args: Vec<Value> = Vec::new();
        for (field, value) in config.to_fields() {
            args.push(field.into());
            args.push(value.into());
        }
        let retention = u64::from(config.ticket_ttl_secs) + KEY_SLACK_SECS;
        args.push((retention as i64).into());
        let reply: Value = self
            .scripts
            .put_event
            .evalsha_with_reload(&self.client, keys(event), args)
            .await
            .map_err(unavailable)?;
        reply
            .as_u64()
            .ok_or_else(|| StoreError::Protocol(format!("version {reply:?}")))
    }

    async fn get_event(&self, event: &EventId) -> Result<Option<EventConfig>, StoreError> {
        let fields: HashMap<String, String> = self
            .client
            .hgetall(&keys(event)[0])
            .await
            .map_err(unavailable)?;
        Ok((!fields.is_empty()).then(|| EventConfig::from_fields(&fields)))
    }

    async fn list_events(&self) -> Result<Vec<EventId>, StoreError> {
        let ids: Vec<String> = self
            .client
            .smembers(EVENTS_KEY)
            .await
            .map_err(unavailable)?;
        Ok(ids
            .iter()
            .filter_map(|id| EventId::parse(id).ok())
            .collect())
    }

    async fn join(&self, event: &EventId, person: &Person) -> Result<JoinOutcome, StoreError> {
        let claim = if person.claimed { "claimed" } else { "made" };
        let args = vec![
            person.id.as_str().into(),
            claim.into(),
            (KEY_SLACK_SECS as i64).into(),
        ];
        let reply = self.run(&self.scripts.join, event, args).await?;
        Ok(match text(&reply, 0)?.as_str() {
            tag @ ("created" | "existing") => JoinOutcome::Placed {
                place: Place {
                    seq: int(&reply, 2)?,
                    issued_at: int(&reply, 3)?,
                    expires_at: int(&reply, 4)?,
                },
                standing: standing(&reply, 5)?,
                created: tag == "created",
            },
            "no_event" => JoinOutcome::NoEvent,
            "claim_refused" => JoinOutcome::ClaimRefused,
            "not_open" => JoinOutcome::NotOpen(text(&reply, 1)?),
            "full" => JoinOutcome::Full,
            other => return Err(StoreError::Protocol(format!("join {other}"))),
        })
    }

    async fn status(
        &self,
        event: &EventId,
        person: &str,
        seq: u64,
    ) -> Result<StatusOutcome, StoreError> {
        let args = vec![person.into(), seq.to_string().into()];
        let reply = self.run(&self.scripts.status, event, args).await?;
        Ok(match text(&reply, 0)?.as_str() {
            "w" => StatusOutcome::Waiting(standing(&reply, 1)?),
            "unknown" => StatusOutcome::Unknown,
            "superseded" => StatusOutcome::Superseded,
            other => StatusOutcome::Gone(gone_state(other)?),
        })
    }

    async fn leave(
        &self,
        event: &EventId,
        person: &str,
        seq: u64,
    ) -> Result<LeaveOutcome, StoreError> {
        let args = vec![person.into(), seq.to_string().into()];
        let reply = self.run(&self.scripts.leave, event, args).await?;
        Ok(match text(&reply, 0)?.as_str() {
            "l" => LeaveOutcome::Left,
            "e" => LeaveOutcome::Evicted,
            "unknown" => LeaveOutcome::Unknown,
            "superseded" => LeaveOutcome::Superseded,
            other => return Err(StoreError::Protocol(format!("leave {other}"))),
        })
    }

    async fn sweep(&self, event: &EventId, batch: u32) -> Result<SweepOutcome, StoreError> {
        let reply = self
            .run(&self.scripts.sweep, event, vec![batch.into()])
            .await?;
        let evicted = reply
            .first()
            .and_then(|v| v.as_i64())
            .ok_or_else(|| StoreError::Protocol(format!("sweep {reply:?}")))?;
        if evicted < 0 {
            let _: () = self
                .client
                .srem(EVENTS_KEY, event.as_str())
                .await
                .map_err(unavailable)?;
            return Ok(SweepOutcome::NoEvent);
        }
        Ok(SweepOutcome::Swept {
            evicted: evicted as u64,
            waiting: int(&reply, 1)?,
        })
    }

    async fn figures(&self, event: &EventId) -> Result<Figures, StoreError> {
        let keys = keys(event);
        let waiting: u64 = self.client.zcard(&keys[2]).await.map_err(unavailable)?;
        let totals: HashMap<String, u64> =
            self.client.hgetall(&keys[5]).await.map_err(unavailable)?;
        let total = |name: &str| totals.get(name).copied().unwrap_or(0);
        Ok(Figures {
            waiting,
            joined_total: total("joined"),
            evicted_total: total("evicted"),
            left_total: total("left"),
        })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        if !self.client.is_connected() {
            return Err(StoreError::Unavailable("not connected".into()));
        }
        let _: String = self.client.ping(None).await.map_err(unavailable)?;
        Ok(())
    }
}
