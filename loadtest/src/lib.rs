//! vestibule-loadtest: a crowd simulator for Vestibule, run against a running gateway.
//!
//! - [`sale`]: a simulated sale: arrivals on a flash-crowd curve, polling, ghosts, leavers.
//! - [`person`]: one person's state machine, one request per step (join, poll, enter, order).
//! - [`api`]: the gateway's HTTP API as the crowd sees it, every call timed.
//! - [`truth`]: the ledger of who is in the queue, and the checks of every position shown and
//!   of the door's window order.
//! - [`eviction`]: how long ghosts stay counted after their heartbeat expires.
//! - [`orders`]: the reservations' truth: settled once, never lost, no oversell, inventory.
//! - [`stats`], [`report`], [`chart`]: the figures, the summary table and JSON, the SVG.
//! - [`tickets`]: join a pool of people and write their tickets (for `wrk` and memory figures).

pub mod api;
pub mod chart;
pub mod eviction;
pub mod orders;
pub mod person;
pub mod report;
pub mod sale;
pub mod stats;
pub mod tickets;
pub mod truth;
