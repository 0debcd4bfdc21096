//! The Redis store: every multi-step change is one Lua script from `lua/`, run by SHA
//! (reloaded on NOSCRIPT). Every key of an event carries the hash tag `{ev:<id>}`, so each
//! script touches one slot and the same code runs on one Redis or on a Redis Cluster.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use fred::prelude::*;
use fred::types::scripts::Script;
use fred::types::FromValue;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};

use super::{
    Admission, AuditEntry, Change, EnterOutcome, Figures, Gone, JoinOutcome, LeaveOutcome, Person,
    Place, Presence, Standing, StatusOutcome, Store, StoreError, SweepOutcome, AUDIT_LEN,
    KEY_SLACK_SECS,
};
use crate::event::{EventConfig, EventId, Tier};

/// The set of known event ids. Not an event key: it is read only by the sweeper, which also
/// removes ids whose event has gone.
const EVENTS_KEY: &str = "vst:events";

/// How long a single store call may take before the caller gets 503.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// A Lua script, prefixed with the shared helpers, and its name for metrics.
struct Lua {
    name: &'static str,
    script: Script,
}

impl Lua {
    fn new(name: &'static str, body: &str) -> Self {
        let source = format!("{}\n{body}", include_str!("../../lua/lib.lua"));
        Self {
            name,
            script: Script::from_lua(source),
        }
    }
}

/// The Lua scripts.
struct Scripts {
    join: Lua,
    status: Lua,
    leave: Lua,
    sweep: Lua,
    put_event: Lua,
    enter: Lua,
    redeem: Lua,
    figures: Lua,
}

impl Scripts {
    fn load() -> Self {
        Self {
            join: Lua::new("join", include_str!("../../lua/join.lua")),
            status: Lua::new("status", include_str!("../../lua/status.lua")),
            leave: Lua::new("leave", include_str!("../../lua/leave.lua")),
            sweep: Lua::new("sweep", include_str!("../../lua/sweep.lua")),
            put_event: Lua::new("put_event", include_str!("../../lua/put_event.lua")),
            enter: Lua::new("enter", include_str!("../../lua/enter.lua")),
            redeem: Lua::new("redeem", include_str!("../../lua/redeem.lua")),
            figures: Lua::new("figures", include_str!("../../lua/figures.lua")),
        }
    }
}

/// Latency and errors of store calls, by operation.
struct CallMetrics {
    latency: HistogramVec,
    errors: IntCounterVec,
}

impl CallMetrics {
    fn new() -> Self {
        Self {
            latency: HistogramVec::new(
                HistogramOpts::new(
                    "vestibule_store_call_duration_seconds",
                    "Round trip of one store call (a Lua script or a command), by operation.",
                )
                .buckets(crate::metrics::LATENCY_BUCKETS.to_vec()),
                &["op"],
            )
            .expect("valid metric"),
            errors: IntCounterVec::new(
                Opts::new(
                    "vestibule_store_errors_total",
                    "Store calls that failed (unreachable, timed out, or an unexpected reply), by operation.",
                ),
                &["op"],
            )
            .expect("valid metric"),
        }
    }
}

/// The Redis (or Redis Cluster) store.
pub struct RedisStore {
    pub(super) client: Client,
    scripts: Scripts,
    metrics: CallMetrics,
}

/// An event's keys, in the order every script takes them (see `lua/lib.lua`).
fn keys(event: &EventId) -> Vec<String> {
    [
        "meta", "seq", "wait", "hb", "people", "stats", "active", "admits", "redeemed", "audit",
    ]
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
            metrics: CallMetrics::new(),
        })
    }

    /// Runs a script on the event's keys (EVALSHA, reloading it on NOSCRIPT).
    async fn run<R: FromValue>(
        &self,
        lua: &Lua,
        event: &EventId,
        args: Vec<Value>,
    ) -> Result<R, StoreError> {
        self.timed(lua.name, async {
            // Fail at once while disconnected rather than queue behind the reconnect.
            if !self.client.is_connected() {
                return Err(StoreError::Unavailable("not connected".into()));
            }
            lua.script
                .evalsha_with_reload(&self.client, keys(event), args)
                .await
                .map_err(unavailable)
        })
        .await
    }

    /// Records a call's latency and failure under `op`.
    async fn timed<T>(
        &self,
        op: &'static str,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = call.await;
        let labels = [op];
        self.metrics
            .latency
            .with_label_values(&labels)
            .observe(started.elapsed().as_secs_f64());
        if result.is_err() {
            self.metrics.errors.with_label_values(&labels).inc();
        }
        result
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

/// Decodes a standing `{'w', position, tier, poll_ms, window, eta}` starting at `at`.
fn standing(reply: &[Value], at: usize) -> Result<Standing, StoreError> {
    let tier = text(reply, at + 2)?;
    let position = int(reply, at + 1)?;
    let eta = reply.get(at + 5).and_then(|v| v.as_i64()).unwrap_or(-1);
    Ok(Standing {
        position,
        tier: Tier::parse(&tier).ok_or_else(|| StoreError::Protocol(format!("tier {tier}")))?,
        poll_after_ms: int(reply, at + 3)? as u32,
        ready: position <= int(reply, at + 4)?,
        eta_secs: u64::try_from(eta).ok(),
    })
}

/// Decodes what status-like scripts answer for someone not waiting.
fn gone(tag: &str) -> Option<Gone> {
    match tag {
        "e" => Some(Gone::Evicted),
        "l" => Some(Gone::Left),
        "x" => Some(Gone::AdmissionExpired),
        _ => None,
    }
}

fn protocol(what: &str, reply: &[Value]) -> StoreError {
    StoreError::Protocol(format!("{what}: {reply:?}"))
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
        ];
        for (field, value) in config.to_fields() {
            args.push(field.into());
            args.push(value.into());
        }
        let reply: Vec<Value> = self.run(&self.scripts.put_event, event, args).await?;
        // Indexed after the definition exists, for the sweeper and the worker, which find
        // events only through the index. Indexed first, a sweep between the index and the
        // definition would find no definition and drop the id for good (see `sweep`). Should
        // this call fail, the operator's PUT fails and its retry indexes the event.
        let index = self.client.sadd::<(), _, _>(EVENTS_KEY, event.as_str());
        self.timed("index_event", async { index.await.map_err(unavailable) })
            .await?;
        Ok(Change {
            version: int(&reply, 0)?,
            changes: serde_json::from_str(&text(&reply, 1)?)
                .map_err(|_| protocol("put_event", &reply))?,
        })
    }

    async fn audit(&self, event: &EventId, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let key = keys(event).swap_remove(9);
        let read = self
            .client
            .xrevrange_values::<String, String, String, _, _, _>(key, "+", "-", Some(limit as u64));
        let entries = self
            .timed("audit", async { read.await.map_err(unavailable) })
            .await?;
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
        let meta = keys(event).swap_remove(0);
        let read = self.client.hgetall(meta);
        let fields: HashMap<String, String> = self
            .timed("get_event", async { read.await.map_err(unavailable) })
            .await?;
        Ok((!fields.is_empty()).then(|| EventConfig::from_fields(&fields)))
    }

    async fn list_events(&self) -> Result<Vec<EventId>, StoreError> {
        let read = self.client.smembers(EVENTS_KEY);
        let ids: Vec<String> = self
            .timed("list_events", async { read.await.map_err(unavailable) })
            .await?;
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
        let reply: Vec<Value> = self.run(&self.scripts.join, event, args).await?;
        Ok(match text(&reply, 0)?.as_str() {
            tag @ ("created" | "existing") => JoinOutcome::Placed {
                place: Place {
                    seq: int(&reply, 1)?,
                    issued_at: int(&reply, 2)?,
                    expires_at: int(&reply, 3)?,
                },
                presence: match text(&reply, 4)?.as_str() {
                    "w" => Presence::Waiting(standing(&reply, 4)?),
                    // The admission's expiry is not needed to answer a join.
                    _ => Presence::Admitted { expires_at_ms: 0 },
                },
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
        let reply: Vec<Value> = self.run(&self.scripts.status, event, args).await?;
        Ok(match text(&reply, 0)?.as_str() {
            "w" => StatusOutcome::Present(Presence::Waiting(standing(&reply, 0)?)),
            "a" => StatusOutcome::Present(Presence::Admitted {
                expires_at_ms: int(&reply, 1)?,
            }),
            "unknown" => StatusOutcome::Unknown,
            "superseded" => StatusOutcome::Superseded,
            other => StatusOutcome::Gone(gone(other).ok_or_else(|| protocol("status", &reply))?),
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
        let reply: Vec<Value> = self.run(&self.scripts.enter, event, args).await?;
        Ok(match text(&reply, 0)?.as_str() {
            "admitted" => EnterOutcome::Admitted(Admission {
                id: text(&reply, 1)?,
                expires_at_ms: int(&reply, 2)?,
                new: text(&reply, 3)? == "new",
            }),
            "w" => EnterOutcome::NotReady(standing(&reply, 0)?),
            "limited" => EnterOutcome::Limited,
            "unknown" => EnterOutcome::Unknown,
            "superseded" => EnterOutcome::Superseded,
            other => EnterOutcome::Gone(gone(other).ok_or_else(|| protocol("enter", &reply))?),
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
        let reply: Vec<Value> = self.run(&self.scripts.redeem, event, args).await?;
        Ok(text(&reply, 0)? == "redeemed")
    }

    async fn leave(
        &self,
        event: &EventId,
        person: &str,
        seq: u64,
    ) -> Result<LeaveOutcome, StoreError> {
        let args = vec![person.into(), seq.to_string().into()];
        let reply: Vec<Value> = self.run(&self.scripts.leave, event, args).await?;
        Ok(match text(&reply, 0)?.as_str() {
            "left" => LeaveOutcome::Left { now: true },
            "l" | "a" | "x" => LeaveOutcome::Left { now: false },
            "e" => LeaveOutcome::Evicted,
            "unknown" => LeaveOutcome::Unknown,
            "superseded" => LeaveOutcome::Superseded,
            other => return Err(StoreError::Protocol(format!("leave {other}"))),
        })
    }

    async fn sweep(&self, event: &EventId, batch: u32) -> Result<SweepOutcome, StoreError> {
        let reply: Vec<Value> = self
            .run(&self.scripts.sweep, event, vec![batch.into()])
            .await?;
        let evicted = reply
            .first()
            .and_then(|v| v.as_i64())
            .ok_or_else(|| protocol("sweep", &reply))?;
        if evicted < 0 {
            // The definition is gone (closed and drained): drop the id from the index. A
            // `put_event` may have created it since this sweep looked: it indexes the event
            // after writing it, so if that index came before this removal, the definition
            // exists now and the id goes back. (The index is another slot than the event's,
            // so the two steps cannot be one script on a cluster.)
            let forget = self.client.srem::<(), _, _>(EVENTS_KEY, event.as_str());
            self.timed("forget_event", async { forget.await.map_err(unavailable) })
                .await?;
            let meta = keys(event).swap_remove(0);
            let exists = self.client.exists::<u64, _>(meta);
            if self
                .timed("forget_event", async { exists.await.map_err(unavailable) })
                .await?
                > 0
            {
                // Swept from the next round on.
                let index = self.client.sadd::<(), _, _>(EVENTS_KEY, event.as_str());
                self.timed("index_event", async { index.await.map_err(unavailable) })
                    .await?;
            }
            return Ok(SweepOutcome::NoEvent);
        }
        Ok(SweepOutcome::Swept {
            evicted: evicted as u64,
            waiting: int(&reply, 1)?,
            active: int(&reply, 2)?,
        })
    }

    async fn figures(&self, event: &EventId) -> Result<Figures, StoreError> {
        let reply: Vec<Value> = self.run(&self.scripts.figures, event, vec![]).await?;
        let door_window = text(&reply, 7)?
            .parse()
            .map_err(|_| protocol("figures", &reply))?;
        Ok(Figures {
            waiting: int(&reply, 0)?,
            active: int(&reply, 1)?,
            joined_total: int(&reply, 2)?,
            evicted_total: int(&reply, 3)?,
            left_total: int(&reply, 4)?,
            admitted_total: int(&reply, 5)?,
            redeemed_total: int(&reply, 6)?,
            door_window,
            admitted_last_minute: int(&reply, 8)?,
        })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        if !self.client.is_connected() {
            return Err(StoreError::Unavailable("not connected".into()));
        }
        let ping = self.client.ping::<String>(None);
        self.timed("ping", async { ping.await.map_err(unavailable) })
            .await?;
        Ok(())
    }

    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.metrics.latency.clone()),
            Box::new(self.metrics.errors.clone()),
        ]
    }
}
