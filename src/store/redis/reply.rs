//! Script replies, read in order: each script's answer has one decoder (in [`super::queue`] and
//! [`super::reservations`]) that takes its fields one after another by name, instead of picking
//! them by offset.

use fred::types::Value;

use crate::event::Tier;
use crate::store::{Standing, StoreError};

/// A script's array reply, read front to back.
pub(super) struct Reply {
    op: &'static str,
    raw: Vec<Value>,
    next: usize,
}

impl Reply {
    /// The reply of `op`; anything but an array is a protocol error.
    pub(super) fn new(op: &'static str, value: Value) -> Result<Self, StoreError> {
        match value {
            Value::Array(raw) => Ok(Self { op, raw, next: 0 }),
            other => Err(StoreError::Protocol(format!("{op}: {other:?}"))),
        }
    }

    /// What went wrong, with the whole reply.
    pub(super) fn error(&self, what: &str) -> StoreError {
        StoreError::Protocol(format!("{}: {what} in {:?}", self.op, self.raw))
    }

    fn take(&mut self) -> Option<&Value> {
        let value = self.raw.get(self.next);
        self.next += 1;
        value
    }

    /// The next field as text.
    pub(super) fn text(&mut self) -> Result<String, StoreError> {
        self.take()
            .and_then(Value::as_string)
            .ok_or_else(|| self.error("text expected"))
    }

    /// The next field as a non-negative integer.
    pub(super) fn int(&mut self) -> Result<u64, StoreError> {
        self.take()
            .and_then(Value::as_u64)
            .ok_or_else(|| self.error("integer expected"))
    }

    /// The next field as a signed integer.
    pub(super) fn signed(&mut self) -> Result<i64, StoreError> {
        self.take()
            .and_then(Value::as_i64)
            .ok_or_else(|| self.error("integer expected"))
    }

    /// The fields not read yet.
    pub(super) fn rest(self) -> Vec<Value> {
        self.raw.into_iter().skip(self.next).collect()
    }

    /// A standing `position, tier, poll_ms, window, eta, shown` (after its `'w'` tag; see `standing` in
    /// `lua/queue/door.lua`).
    pub(super) fn standing(&mut self) -> Result<Standing, StoreError> {
        let position = self.int()?;
        let tier = self.text()?;
        let tier = Tier::parse(&tier).ok_or_else(|| self.error("tier"))?;
        let poll_after_ms = self.int()? as u32;
        let window = self.int()?;
        let eta = self.signed()?;
        let shown = self.int()? == 1;
        Ok(Standing {
            position,
            tier,
            poll_after_ms,
            ready: position <= window,
            eta_secs: u64::try_from(eta).ok(),
            shown,
        })
    }
}
