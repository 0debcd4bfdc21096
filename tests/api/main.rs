//! The behavioural suite. Each scenario runs against every store (`both_stores!`), each test
//! with its own store: a fresh in-process store or its own `redis-server` child.

// Tests may panic on the unexpected: that is how they fail.
#![allow(clippy::unwrap_used)]

mod helpers;

mod admission;
mod door;
mod errors;
mod eviction;
mod faults;
mod join;
mod leaks;
mod page;
mod scale_out;
mod tickets;
