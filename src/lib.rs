//! Vestibule: a virtual waiting-room queue gateway.
//!
//! - [`event`]: events and their valves (state, TTLs, tiers), validated.
//! - [`door`]: the door and the queue's rules (state at a time, tier, door credit, window, cap,
//!   ETA), each naming its Lua twin in `lua/queue/door.lua`.
//! - [`store`]: all queue state, behind one trait: Redis (Lua scripts in `lua/`) or in-process.
//! - [`tickets`]: queue tickets (HMAC JWTs) that any instance sharing the keys accepts.
//! - [`admission`]: admission tokens (EdDSA JWTs, JWKS, key rotation) for the sale backend.
//! - [`keyfiles`]: key files shared through the keys directory.
//! - [`app`]: the state of a gateway instance, built once from all its parts (both views of
//!   the store, the inventory database, keys, metrics).
//! - [`http`]: the router, handlers (the waiting-room page among them), extractors and the error policy.
//! - [`sweeper`]: evicts ghosts in bounded batches, safely on every instance.
//! - [`metrics`]: the Prometheus registry of an instance.
//! - [`inventory`]: the database of stock per event and SKU and of applied reservations, with
//!   its migrations; the admin inventory API and the worker both use it.
//! - [`worker`]: applies reservations to the database (conditional writes), with its own
//!   metrics; `vestibule worker`, or in process with `vestibule run`.
//! - [`config`], [`telemetry`], [`startup`], [`clock`]: configuration, logging, wiring, the clock.
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
