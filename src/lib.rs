//! Vestibule: a virtual waiting-room queue gateway. The modules follow the parts of the design:
//!
//! - [`event`]: events and their valves (state, TTLs, tiers), validated.
//! - [`door`]: the door and the queue's rules (state at a time, tier of a position, door credit,
//!   window, cap, ETA); each function names its Lua twin in `lua/queue/door.lua`.
//! - [`store`]: all queue and reservation state behind two traits, with two implementations
//!   that give the same answers: Redis (`store::redis`, one Lua script per step, from
//!   `lua/queue/` and `lua/reservations/`) and in-process (`store::memory`); every key name in
//!   `store::keys`. `tests/api/conformance.rs` holds the two together.
//! - [`tickets`]: queue tickets (HMAC JWTs) that any instance sharing the keys accepts.
//! - [`admission`]: admission tokens (EdDSA JWTs, JWKS, key rotation) for the sale backend.
//! - [`keyfiles`]: key files shared through the keys directory.
//! - [`app`]: the state of a gateway instance, built once from all its parts (both views of
//!   the store, the inventory database, keys, metrics).
//! - [`http`]: the router, handlers (the waiting-room page among them), extractors and the
//!   error policy.
//! - [`sweeper`]: evicts ghosts in bounded batches, safely on every instance; takes the store
//!   and the metrics, not the web layer.
//! - [`metrics`]: the Prometheus registry of an instance.
//! - [`inventory`]: the database of stock per event and SKU and of applied reservations, with
//!   its migrations; the admin inventory API and the worker both use it.
//! - [`worker`]: applies reservations to the database (conditional writes), with its own
//!   metrics; `vestibule worker`, or in process with `vestibule run`.
//! - [`config`], [`telemetry`], [`startup`], [`clock`]: configuration (secrets typed as they are
//!   parsed), logging, wiring, the clocks (the system's, or a manual one for tests).
//! - [`admin_cli`]: `vestibule admin …`, operator commands over the admin API.

pub mod admin_cli;
pub mod admission;
pub mod app;
pub mod clock;
pub mod config;
pub mod door;
pub mod event;
pub mod http;
pub mod inventory;
pub mod keyfiles;
pub mod metrics;
pub mod startup;
pub mod store;
pub mod sweeper;
pub mod telemetry;
pub mod tickets;
pub mod worker;
