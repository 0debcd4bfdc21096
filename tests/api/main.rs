//! The behavioural suite. Each scenario runs against every store (`on_every_store!`), each test
//! with its own store: a fresh in-process store or its own `redis-server` child.

// Tests may panic on the unexpected: that is how they fail.
#![allow(clippy::unwrap_used)]

mod helpers;
mod sales;

mod admin_cli;
mod admission;
mod clients;
mod conformance;
mod connectors;
mod cors;
mod door;
mod draw;
mod errors;
mod eviction;
mod faults;
mod holds;
mod inventory;
mod join;
mod leaks;
mod openapi;
mod operators;
mod page;
mod reservations;
mod run_command;
mod scale_out;
mod signed;
mod tickets;
mod worker;
mod worker_bench;
