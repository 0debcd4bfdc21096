//! The gateway's clock, read at the edge. Queue order and the door use the store's clock (Redis
//! `TIME` inside the scripts); this one only decides what the gateway itself reports.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in unix milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
