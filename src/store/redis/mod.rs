//! The Redis store: every multi-step change is one Lua script (`lua/queue/`,
//! `lua/reservations/`), run by SHA through one timed call path ([`RedisStore::run`]), so every
//! script and command has its latency and errors in `/metrics`. Every key of an event carries
//! the hash tag `{ev:<id>}` ([`super::keys`]), so the same code runs on one Redis or on a Redis
//! Cluster.
//!
//! - [`queue`]: the queue ([`super::Store`]).
//! - [`reservations`]: reservations and the work stream ([`super::reservations::Reservations`]).
//! - `scripts`: the script bundles; `reply`: one typed decoder per script reply.

mod queue;
mod reply;
mod reservations;
mod scripts;

use std::future::Future;
use std::time::{Duration, Instant};

use fred::prelude::*;
use fred::types::FromValue;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};

use super::StoreError;
use crate::clock::Clock;
use scripts::{Lua, Scripts};

/// How long a single store call may take before the caller gets 503.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// The `op` of every plain command (not a script) the store sends; the scripts' own names
/// complete the set (`Scripts::names`).
const COMMANDS: &[&str] = &[
    "audit",
    "dead_letters",
    "draw_entries",
    "forget_event",
    "get_event",
    "index_event",
    "list_events",
    "ping",
    "reservation",
];

/// Latency and errors of store calls, by operation: every operation the store can run has its
/// series from the start (errors at 0), so "no failed calls" is a 0 and not a missing series.
struct CallMetrics {
    /// Every operation given its series up front.
    ops: Vec<&'static str>,
    latency: HistogramVec,
    errors: IntCounterVec,
}

impl CallMetrics {
    fn new(ops: Vec<&'static str>) -> Self {
        let metrics = Self {
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
            ops,
        };
        for op in &metrics.ops {
            metrics.latency.with_label_values(&[op]);
            metrics.errors.with_label_values(&[op]);
        }
        metrics
    }
}

/// The Redis (or Redis Cluster) store.
pub struct RedisStore {
    client: Client,
    scripts: Scripts,
    metrics: CallMetrics,
    /// The scripts' clock: Redis `TIME`, unless pinned (the conformance test).
    clock: Clock,
}

fn unavailable(err: Error) -> StoreError {
    StoreError::Unavailable(err.to_string())
}

impl RedisStore {
    /// Connects to `redis://…` or `redis-cluster://…`. Fails fast when the first connection
    /// fails; afterwards the client reconnects by itself and calls fail with 503 meanwhile.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with_clock(url, Clock::system()).await
    }

    /// As [`RedisStore::connect`], with the scripts reading `clock` when it is a manual one
    /// (every script takes the instant as its first argument, see `lua/clock.lua`).
    pub async fn connect_with_clock(url: &str, clock: Clock) -> Result<Self, StoreError> {
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
        let scripts = Scripts::load();
        let ops = scripts.names().chain(COMMANDS.iter().copied()).collect();
        Ok(Self {
            client,
            scripts,
            metrics: CallMetrics::new(ops),
            clock,
        })
    }

    /// Runs a script (EVALSHA, reloading it on NOSCRIPT) with the clock prepended to `args`.
    /// Script errors name the file and line (see [`Lua::explain`]).
    async fn run<R: FromValue>(
        &self,
        lua: &Lua,
        keys: Vec<String>,
        args: Vec<Value>,
    ) -> Result<R, StoreError> {
        let clock: Value = match self.clock.pinned() {
            Some(ms) => (ms as i64).into(),
            None => "".into(),
        };
        let args: Vec<Value> = std::iter::once(clock).chain(args).collect();
        let call = lua.script.evalsha_with_reload(&self.client, keys, args);
        self.command(lua.name, async {
            call.await
                .map_err(|err| StoreError::Unavailable(lua.explain(&err.to_string())))
        })
        .await
    }

    /// Runs one store call under `op`: refused at once while disconnected (rather than queued
    /// behind the reconnect), and timed, its failure counted.
    async fn command<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        // A new operation missing from COMMANDS would have no series until it first runs.
        debug_assert!(
            self.metrics.ops.contains(&op),
            "store op `{op}` not in COMMANDS"
        );
        let started = Instant::now();
        let result = if self.client.is_connected() {
            call.await
        } else {
            Err(StoreError::Unavailable("not connected".into()))
        };
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

    /// A plain command (not a script) under `op`.
    async fn call<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, StoreError> {
        self.command(op, async { call.await.map_err(unavailable) })
            .await
    }
}
