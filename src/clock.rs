//! Clocks. Queue order and the door use the store's clock: Redis `TIME` inside the scripts, or
//! the in-process store's [`Clock`]. The gateway's own [`now_ms`] only decides what the gateway
//! itself reports (a scheduled event's state in the admin API, the page).
//!
//! A [`Clock`] is the system clock, or a manual one that moves only when told: the conformance
//! test pins both stores to the same instant (the Redis scripts take it as their first argument,
//! see `lua/clock.lua`), so their answers can be compared step by step.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::Digest;

/// Now, in unix milliseconds, by the system clock.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A store's clock: the system's (the default), or a manual one for tests.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    manual: Option<Arc<AtomicU64>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that stands at `start_ms` until [`Clock::advance`] moves it.
    pub fn manual(start_ms: u64) -> Self {
        Self {
            manual: Some(Arc::new(AtomicU64::new(start_ms))),
        }
    }

    /// Now, in unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        self.pinned().unwrap_or_else(now_ms)
    }

    /// The manual clock's instant; `None` for the system clock (the Redis store then lets the
    /// scripts read `TIME`).
    pub fn pinned(&self) -> Option<u64> {
        self.manual.as_ref().map(|at| at.load(Ordering::SeqCst))
    }

    /// A fresh random seed (the pre-queue's draw). A manual clock makes it a function of the
    /// instant instead, so two stores on one manual clock draw alike (the conformance test).
    pub fn fresh_seed(&self) -> [u8; 32] {
        match self.pinned() {
            Some(at) => sha2::Sha256::digest(at.to_be_bytes()).into(),
            None => rand::random(),
        }
    }

    /// Moves a manual clock forward; does nothing to the system clock.
    pub fn advance(&self, ms: u64) {
        if let Some(at) = &self.manual {
            at.fetch_add(ms, Ordering::SeqCst);
        }
    }
}
