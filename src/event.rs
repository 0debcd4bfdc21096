//! Events and their valves: what an operator sets, how it is validated, how it is stored.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// An event's identifier: 1–64 of `[A-Za-z0-9_-]`, so it can sit inside a Redis hash tag.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct EventId(String);

impl EventId {
    /// Parses an event id, or says why it is not one.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.is_empty() || raw.len() > 64 {
            return Err("event_id must be 1 to 64 characters");
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err("event_id may only contain letters, digits, '_' and '-'");
        }
        Ok(Self(raw.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an event is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventState {
    /// Defined, not yet accepting joins.
    Scheduled,
    /// Accepting joins.
    Open,
    /// Keeps its queue, accepts no new joins.
    Paused,
    /// Over: no joins; its keys drain away.
    Closed,
}

impl EventState {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Open => "open",
            Self::Paused => "paused",
            Self::Closed => "closed",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "scheduled" => Some(Self::Scheduled),
            "open" => Some(Self::Open),
            "paused" => Some(Self::Paused),
            "closed" => Some(Self::Closed),
            _ => None,
        }
    }
}

/// Who "a person" is for an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Identity {
    /// The gateway makes an id; a person resumes their place by presenting their ticket.
    Anonymous,
    /// The caller names the person with `user_id` (only safe behind an authenticating frontend).
    UserId,
}

impl Identity {
    fn as_str(self) -> &'static str {
        match self {
            Self::Anonymous => "anonymous",
            Self::UserId => "user_id",
        }
    }
}

/// An event's valves, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EventConfig {
    /// Life cycle state.
    pub state: EventState,
    /// A person not seen for this long is evicted.
    pub heartbeat_ttl_secs: u32,
    /// Most people waiting at once; 0 means no limit.
    pub max_queue_len: u64,
    /// How long a queue ticket is valid.
    pub ticket_ttl_secs: u32,
    /// Who a person is.
    pub identity: Identity,
    /// Positions 1..=vip_size are the `vip` tier.
    pub vip_size: u32,
    /// Positions up to here (after vip) are the `fast` tier; the rest are `slow`.
    pub fast_upto: u32,
    /// Poll interval of the vip and fast tiers.
    pub fast_poll_ms: u32,
    /// Poll interval of the slow tier.
    pub slow_poll_ms: u32,
    /// People the door lets in per second (fractions work: 0.5 is one every 2 s; 0 keeps it shut).
    pub admission_rate: f64,
    /// Most admitted sessions live at once (admitted, neither redeemed nor expired).
    pub max_active: u64,
    /// Lifetime of an admission token, and of the live session it stands for.
    pub admission_ttl_secs: u32,
    /// When a scheduled event opens by itself (unix seconds, store clock); `None`: by hand.
    pub opens_at: Option<u64>,
    /// Bumped on every change.
    pub version: u64,
}

impl Default for EventConfig {
    fn default() -> Self {
        Self {
            state: EventState::Scheduled,
            heartbeat_ttl_secs: 300,
            max_queue_len: 0,
            ticket_ttl_secs: 86_400,
            identity: Identity::Anonymous,
            vip_size: 10,
            fast_upto: 50,
            fast_poll_ms: 2000,
            slow_poll_ms: 5000,
            admission_rate: 1.0,
            max_active: 100,
            admission_ttl_secs: 600,
            opens_at: None,
            version: 0,
        }
    }
}

/// A change to an event's valves: every field optional, unknown fields refused.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct EventUpdate {
    pub state: Option<EventState>,
    pub heartbeat_ttl_secs: Option<u32>,
    pub max_queue_len: Option<u64>,
    pub ticket_ttl_secs: Option<u32>,
    pub identity: Option<Identity>,
    pub vip_size: Option<u32>,
    pub fast_upto: Option<u32>,
    pub fast_poll_ms: Option<u32>,
    pub slow_poll_ms: Option<u32>,
    pub admission_rate: Option<f64>,
    pub max_active: Option<u64>,
    pub admission_ttl_secs: Option<u32>,
    /// Unix seconds; 0 clears it.
    pub opens_at: Option<u64>,
}

/// A valve value out of range: the field and why.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidValve {
    /// The offending field.
    pub field: &'static str,
    /// Why it is refused.
    pub reason: &'static str,
}

impl EventConfig {
    /// Applies an update on top of this configuration and validates the result.
    pub fn apply(&self, update: &EventUpdate) -> Result<Self, InvalidValve> {
        let mut next = self.clone();
        let u = update.clone();
        next.state = u.state.unwrap_or(next.state);
        next.heartbeat_ttl_secs = u.heartbeat_ttl_secs.unwrap_or(next.heartbeat_ttl_secs);
        next.max_queue_len = u.max_queue_len.unwrap_or(next.max_queue_len);
        next.ticket_ttl_secs = u.ticket_ttl_secs.unwrap_or(next.ticket_ttl_secs);
        next.identity = u.identity.unwrap_or(next.identity);
        next.vip_size = u.vip_size.unwrap_or(next.vip_size);
        next.fast_upto = u.fast_upto.unwrap_or(next.fast_upto);
        next.fast_poll_ms = u.fast_poll_ms.unwrap_or(next.fast_poll_ms);
        next.slow_poll_ms = u.slow_poll_ms.unwrap_or(next.slow_poll_ms);
        next.admission_rate = u.admission_rate.unwrap_or(next.admission_rate);
        next.max_active = u.max_active.unwrap_or(next.max_active);
        next.admission_ttl_secs = u.admission_ttl_secs.unwrap_or(next.admission_ttl_secs);
        if let Some(at) = u.opens_at {
            next.opens_at = (at > 0).then_some(at);
        }
        next.validate()?;
        Ok(next)
    }

    fn validate(&self) -> Result<(), InvalidValve> {
        let invalid = |field, reason| Err(InvalidValve { field, reason });
        if !(1..=86_400).contains(&self.heartbeat_ttl_secs) {
            return invalid("heartbeat_ttl_secs", "must be between 1 and 86400");
        }
        if !(60..=7 * 86_400).contains(&self.ticket_ttl_secs) {
            return invalid("ticket_ttl_secs", "must be between 60 and 604800");
        }
        if self.vip_size > self.fast_upto {
            return invalid("fast_upto", "must not be below vip_size");
        }
        if !(250..=60_000).contains(&self.fast_poll_ms) {
            return invalid("fast_poll_ms", "must be between 250 and 60000");
        }
        if !(self.fast_poll_ms..=60_000).contains(&self.slow_poll_ms) {
            return invalid("slow_poll_ms", "must be between fast_poll_ms and 60000");
        }
        if !(0.0..=100_000.0).contains(&self.admission_rate) {
            return invalid("admission_rate", "must be between 0 and 100000 per second");
        }
        if !(1..=10_000_000).contains(&self.max_active) {
            return invalid("max_active", "must be between 1 and 10000000");
        }
        if !(2..=86_400).contains(&self.admission_ttl_secs) {
            return invalid("admission_ttl_secs", "must be between 2 and 86400");
        }
        // A person polling at the slow rate must stay well inside the heartbeat TTL.
        if u64::from(self.heartbeat_ttl_secs) * 1000 < 2 * u64::from(self.slow_poll_ms) {
            return invalid(
                "heartbeat_ttl_secs",
                "must be at least twice slow_poll_ms, or polling people get evicted",
            );
        }
        Ok(())
    }

    /// The state in force at `now_ms`: a scheduled event opens by itself at `opens_at`.
    pub fn state_at(&self, now_ms: u64) -> EventState {
        match self.opens_at {
            Some(at) if self.state == EventState::Scheduled && at * 1000 <= now_ms => {
                EventState::Open
            }
            _ => self.state,
        }
    }

    /// The tier and poll interval of a waiting person at `position`.
    pub fn tier_of(&self, position: u64) -> (Tier, u32) {
        if position <= u64::from(self.vip_size) {
            (Tier::Vip, self.fast_poll_ms)
        } else if position <= u64::from(self.fast_upto) {
            (Tier::Fast, self.fast_poll_ms)
        } else {
            (Tier::Slow, self.slow_poll_ms)
        }
    }

    /// The stored form: field/value pairs (without `version`, which the store bumps).
    pub fn to_fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("state", self.state.as_str().to_owned()),
            ("heartbeat_ttl_secs", self.heartbeat_ttl_secs.to_string()),
            ("max_queue_len", self.max_queue_len.to_string()),
            ("ticket_ttl_secs", self.ticket_ttl_secs.to_string()),
            ("identity", self.identity.as_str().to_owned()),
            ("vip_size", self.vip_size.to_string()),
            ("fast_upto", self.fast_upto.to_string()),
            ("fast_poll_ms", self.fast_poll_ms.to_string()),
            ("slow_poll_ms", self.slow_poll_ms.to_string()),
            ("admission_rate", self.admission_rate.to_string()),
            ("max_active", self.max_active.to_string()),
            ("admission_ttl_secs", self.admission_ttl_secs.to_string()),
            ("opens_at", self.opens_at.unwrap_or(0).to_string()),
        ]
    }

    /// Reads the stored form; a missing or unreadable field takes its default.
    pub fn from_fields(fields: &HashMap<String, String>) -> Self {
        let d = Self::default();
        fn num<T: std::str::FromStr>(f: &HashMap<String, String>, k: &str, d: T) -> T {
            f.get(k).and_then(|v| v.parse().ok()).unwrap_or(d)
        }
        Self {
            state: fields
                .get("state")
                .and_then(|s| EventState::parse(s))
                .unwrap_or(d.state),
            heartbeat_ttl_secs: num(fields, "heartbeat_ttl_secs", d.heartbeat_ttl_secs),
            max_queue_len: num(fields, "max_queue_len", d.max_queue_len),
            ticket_ttl_secs: num(fields, "ticket_ttl_secs", d.ticket_ttl_secs),
            identity: match fields.get("identity").map(String::as_str) {
                Some("user_id") => Identity::UserId,
                _ => Identity::Anonymous,
            },
            vip_size: num(fields, "vip_size", d.vip_size),
            fast_upto: num(fields, "fast_upto", d.fast_upto),
            fast_poll_ms: num(fields, "fast_poll_ms", d.fast_poll_ms),
            slow_poll_ms: num(fields, "slow_poll_ms", d.slow_poll_ms),
            admission_rate: num(fields, "admission_rate", d.admission_rate),
            max_active: num(fields, "max_active", d.max_active),
            admission_ttl_secs: num(fields, "admission_ttl_secs", d.admission_ttl_secs),
            opens_at: Some(num(fields, "opens_at", 0)).filter(|&at| at > 0),
            version: num(fields, "version", 0),
        }
    }
}

/// How often a waiting person is asked to poll, by position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// At the very head: may enter at once when the door opens.
    Vip,
    /// Near the head: polls often.
    Fast,
    /// Far back: polls less often.
    Slow,
}

impl Tier {
    /// Parses the name the store returns.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "vip" => Some(Self::Vip),
            "fast" => Some(Self::Fast),
            "slow" => Some(Self::Slow),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_that_could_break_a_hash_tag_are_refused() {
        assert!(EventId::parse("sale-2026_a").is_ok());
        assert!(EventId::parse("").is_err());
        assert!(EventId::parse("a}b").is_err());
        assert!(EventId::parse(&"x".repeat(65)).is_err());
    }

    #[test]
    fn stored_fields_read_back_as_the_same_config() {
        let config = EventConfig {
            state: EventState::Open,
            heartbeat_ttl_secs: 30,
            identity: Identity::UserId,
            admission_rate: 0.5,
            opens_at: Some(1_800_000_000),
            ..EventConfig::default()
        };
        let fields = config
            .to_fields()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert_eq!(EventConfig::from_fields(&fields), config);
    }

    #[test]
    fn tiers_out_of_order_are_refused_with_the_field_named() {
        let update = EventUpdate {
            vip_size: Some(60),
            ..EventUpdate::default()
        };
        let err = EventConfig::default().apply(&update).unwrap_err();
        assert_eq!(err.field, "fast_upto");
    }
}
