//! The enter burst limiter: per event, each instance passes at most the event's `enter_rate`
//! enter calls per second to the store. It smooths bursts in front of the store; the door, in
//! the store, decides who gets in.
//!
//! The rate is a valve: it is read from the store when an event's limiter is older than
//! [`REFRESH`], so a change reaches every instance within about a second without a read per
//! call. Only one caller refreshes at a time; the others keep using the limiter they have.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::event::EventId;
use crate::store::{Store, StoreError};

/// How old an event's rate may be before it is read again.
const REFRESH: Duration = Duration::from_secs(1);

/// One event's limiter.
struct Slot {
    /// The rate it was built with (0: none).
    rate: u32,
    limiter: Option<DefaultDirectRateLimiter>,
    /// When the rate was last read, or a refresh claimed.
    read_at: Instant,
}

/// The burst limiters of one instance, by event.
#[derive(Default)]
pub struct EnterLimits {
    events: Mutex<HashMap<EventId, Slot>>,
}

impl EnterLimits {
    /// Takes one enter call of `event` out of its bucket: false when the bucket is empty (then
    /// only the vip tier may enter). An event the store does not know is never limited: the
    /// store refuses its enters anyway.
    pub async fn admit(&self, store: &dyn Store, event: &EventId) -> Result<bool, StoreError> {
        if let Some(open) = self.check_fresh(event) {
            return Ok(open);
        }
        let rate = store.get_event(event).await?.map_or(0, |c| c.enter_rate);
        let mut events = self.events.lock().expect("enter limits poisoned");
        let slot = events.entry(event.clone()).or_insert_with(|| Slot {
            rate: u32::MAX,
            limiter: None,
            read_at: Instant::now(),
        });
        if slot.rate != rate {
            slot.rate = rate;
            slot.limiter = NonZeroU32::new(rate).map(|r| RateLimiter::direct(Quota::per_second(r)));
        }
        slot.read_at = Instant::now();
        Ok(slot.limiter.as_ref().is_none_or(|l| l.check().is_ok()))
    }

    /// Checks the bucket when the event's rate is fresh, or while another caller refreshes it;
    /// `None` when this caller must read the rate (it claims the refresh).
    fn check_fresh(&self, event: &EventId) -> Option<bool> {
        let mut events = self.events.lock().expect("enter limits poisoned");
        let slot = events.get_mut(event)?;
        if slot.read_at.elapsed() >= REFRESH {
            slot.read_at = Instant::now();
            return None;
        }
        Some(slot.limiter.as_ref().is_none_or(|l| l.check().is_ok()))
    }
}
