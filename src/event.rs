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

/// The order people are let in (DESIGN §18).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Queueing {
    /// Strict FIFO behind the pre-queue's draw, if any.
    #[default]
    Fifo,
    /// Every join is placed by the draw's rule (ascending HMAC-SHA256 of the seed and the
    /// ticket's `jti`): admission in a uniform random order; positions are not shown.
    Random,
    /// The room is off: every join is ready at once, and enter admits whatever the door's rate
    /// and `max_active` say (for quiet periods, without touching DNS).
    Passthrough,
}

impl Queueing {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fifo => "fifo",
            Self::Random => "random",
            Self::Passthrough => "passthrough",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "fifo" => Some(Self::Fifo),
            "random" => Some(Self::Random),
            "passthrough" => Some(Self::Passthrough),
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
    /// The sale site names the person in an HS256 enqueue token signed with the event's
    /// `enqueue_key` (DESIGN §15): nobody can take another person's place by knowing their id.
    Signed,
}

impl Identity {
    fn as_str(self) -> &'static str {
        match self {
            Self::Anonymous => "anonymous",
            Self::UserId => "user_id",
            Self::Signed => "signed",
        }
    }
}

/// An event's enqueue key: base64url (no padding) of at least 32 bytes. Write-only: never
/// serialised, and `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct EnqueueKey(String);

impl EnqueueKey {
    /// Shortest key, in bytes.
    pub const MIN_BYTES: usize = 32;

    /// A key from its base64url text (checked by [`EventConfig::apply`]'s validation).
    pub fn new(base64url: String) -> Self {
        Self(base64url)
    }

    /// The HS256 key bytes; `None` when the text is not base64url of at least 32 bytes.
    pub fn bytes(&self) -> Option<Vec<u8>> {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&self.0)
            .ok()
            .filter(|b| b.len() >= Self::MIN_BYTES)
    }

    fn stored(key: &Option<Self>) -> String {
        key.as_ref().map(|k| k.0.clone()).unwrap_or_default()
    }
}

impl std::fmt::Debug for EnqueueKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EnqueueKey(…)")
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
    /// Enter calls per second each gateway instance passes to the store for this event (a burst
    /// limiter in front of the store; the vip tier bypasses it, nobody bypasses the door).
    /// 0: no limit.
    pub enter_rate: u32,
    /// When a scheduled event opens by itself (unix seconds, store clock); `None`: by hand.
    pub opens_at: Option<u64>,
    /// When the pre-queue opens (unix seconds, before `opens_at`): joins from then until
    /// `opens_at` are drawn into a uniformly random order at the opening. `None`: no pre-queue.
    pub prequeue_opens_at: Option<u64>,
    /// The HS256 key of enqueue tokens (`identity: signed`); write-only.
    #[serde(skip)]
    pub enqueue_key: Option<EnqueueKey>,
    /// A rotated-out key, still accepted until cleared; write-only.
    #[serde(skip)]
    pub enqueue_key_previous: Option<EnqueueKey>,
    /// The order people are let in: strict FIFO, a uniform random order (`random`), or nobody
    /// waits at all (`passthrough`).
    pub queueing: Queueing,
    /// The waiting-room page's heading; `None`: a default in the page's language.
    pub title: Option<String>,
    /// A note from the operator shown on the waiting-room page.
    pub message: Option<String>,
    /// Where the page sends a person once admitted (`#admission_token=…` appended); `None`:
    /// the page shows a button and the token instead.
    pub redirect_url: Option<String>,
    /// The page's language (one of [`PAGE_LANGUAGES`]); `None`: the browser's `Accept-Language`.
    pub language: Option<String>,
    /// How long a confirmed reservation holds its units before they return (0: holds never
    /// expire; the sale backend completes or cancels them).
    pub hold_ttl_secs: u32,
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
            enter_rate: 200,
            opens_at: None,
            prequeue_opens_at: None,
            enqueue_key: None,
            enqueue_key_previous: None,
            queueing: Queueing::Fifo,
            title: None,
            message: None,
            redirect_url: None,
            language: None,
            hold_ttl_secs: 600,
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
    pub enter_rate: Option<u32>,
    /// Unix seconds; 0 clears it.
    pub opens_at: Option<u64>,
    /// Unix seconds, before `opens_at`; 0 clears it.
    pub prequeue_opens_at: Option<u64>,
    /// base64url (no padding) of at least 32 bytes; `""` clears it.
    pub enqueue_key: Option<String>,
    pub enqueue_key_previous: Option<String>,
    pub queueing: Option<Queueing>,
    /// Page texts and target: `""` clears the field.
    pub title: Option<String>,
    pub message: Option<String>,
    pub redirect_url: Option<String>,
    pub language: Option<String>,
    pub hold_ttl_secs: Option<u32>,
}

/// Languages the waiting-room page speaks.
pub const PAGE_LANGUAGES: [&str; 11] = [
    "en", "fr", "de", "es", "it", "pt", "nl", "pl", "ko", "ja", "zh",
];

/// What a `language` outside [`PAGE_LANGUAGES`] is told (a test holds the two together).
const LANGUAGE_ERROR: &str = "must be one of en, fr, de, es, it, pt, nl, pl, ko, ja, zh";

/// Longest page title, in characters.
pub const MAX_TITLE_CHARS: usize = 120;

/// Longest page message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 1000;

/// Longest redirect URL, in bytes (browsers and proxies cope with far more; operators need less).
const MAX_URL_BYTES: usize = 2048;

/// Unicode bidirectional controls, which can make a text read differently than it is stored.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A redirect target must be an absolute http(s) URL with a host, and without a fragment (the
/// page puts the admission token there) or credentials (they would be shown to every person).
fn check_redirect_url(raw: &str) -> Result<(), &'static str> {
    if raw.len() > MAX_URL_BYTES {
        return Err("must be at most 2048 bytes");
    }
    let url = url::Url::parse(raw).map_err(|_| "must be an absolute http(s) URL")?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err("must be an absolute http(s) URL");
    }
    if url.fragment().is_some() {
        return Err("must not have a fragment: the page puts the admission token there");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials");
    }
    Ok(())
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
        next.enter_rate = u.enter_rate.unwrap_or(next.enter_rate);
        next.hold_ttl_secs = u.hold_ttl_secs.unwrap_or(next.hold_ttl_secs);
        if let Some(at) = u.opens_at {
            next.opens_at = (at > 0).then_some(at);
        }
        if let Some(at) = u.prequeue_opens_at {
            next.prequeue_opens_at = (at > 0).then_some(at);
        }
        next.queueing = u.queueing.unwrap_or(next.queueing);
        let key = |new: Option<String>, old: Option<EnqueueKey>| match new {
            Some(v) if v.is_empty() => None,
            Some(v) => Some(EnqueueKey(v)),
            None => old,
        };
        next.enqueue_key = key(u.enqueue_key, next.enqueue_key);
        next.enqueue_key_previous = key(u.enqueue_key_previous, next.enqueue_key_previous);
        // An empty string clears a page field: JSON `null` already means "leave unchanged".
        let text = |new: Option<String>, old: Option<String>| match new {
            Some(v) if v.is_empty() => None,
            Some(v) => Some(v),
            None => old,
        };
        next.title = text(u.title, next.title);
        next.message = text(u.message, next.message);
        next.redirect_url = text(u.redirect_url, next.redirect_url);
        next.language = text(u.language, next.language);
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
        if self.enter_rate > 1_000_000 {
            return invalid(
                "enter_rate",
                "must be between 0 (no limit) and 1000000 per second",
            );
        }
        if self.hold_ttl_secs > 7 * 86_400 {
            return invalid(
                "hold_ttl_secs",
                "must be between 0 (holds never expire) and 604800",
            );
        }
        // A person polling at the slow rate must stay well inside the heartbeat TTL.
        if u64::from(self.heartbeat_ttl_secs) * 1000 < 2 * u64::from(self.slow_poll_ms) {
            return invalid(
                "heartbeat_ttl_secs",
                "must be at least twice slow_poll_ms, or polling people get evicted",
            );
        }
        self.validate_page()
    }

    /// The page fields are shown to every waiting person and followed by their browsers.
    fn validate_page(&self) -> Result<(), InvalidValve> {
        let invalid = |field, reason| Err(InvalidValve { field, reason });
        // The page renders texts with `textContent`, never as HTML, so markup is harmless; control
        // characters are not (they can reorder text, e.g. U+202E), except line breaks in a message.
        let plain = |text: &str, breaks: bool| {
            !text
                .chars()
                .any(|c| (c.is_control() && !(breaks && c == '\n')) || is_bidi_control(c))
        };
        if let Some(title) = &self.title {
            if title.chars().count() > MAX_TITLE_CHARS || !plain(title, false) {
                return invalid(
                    "title",
                    "must be at most 120 characters, without control characters",
                );
            }
        }
        if let Some(message) = &self.message {
            if message.chars().count() > MAX_MESSAGE_CHARS || !plain(message, true) {
                return invalid(
                    "message",
                    "must be at most 1000 characters, without control characters but line breaks",
                );
            }
        }
        for (field, key) in [
            ("enqueue_key", &self.enqueue_key),
            ("enqueue_key_previous", &self.enqueue_key_previous),
        ] {
            if key.as_ref().is_some_and(|k| k.bytes().is_none()) {
                return invalid(
                    field,
                    "must be base64url without padding of at least 32 bytes",
                );
            }
        }
        if self.identity == Identity::Signed && self.enqueue_key.is_none() {
            return invalid("enqueue_key", "identity signed needs an enqueue_key");
        }
        if let Some(pre) = self.prequeue_opens_at {
            if self.opens_at.is_none_or(|opens| pre >= opens) {
                return invalid("prequeue_opens_at", "must come before opens_at");
            }
        }
        if let Some(raw) = &self.redirect_url {
            check_redirect_url(raw).or_else(|reason| invalid("redirect_url", reason))?;
        }
        if let Some(language) = &self.language {
            if !PAGE_LANGUAGES.contains(&language.as_str()) {
                return invalid("language", LANGUAGE_ERROR);
            }
        }
        Ok(())
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
            ("enter_rate", self.enter_rate.to_string()),
            ("opens_at", self.opens_at.unwrap_or(0).to_string()),
            (
                "prequeue_opens_at",
                self.prequeue_opens_at.unwrap_or(0).to_string(),
            ),
            ("queueing", self.queueing.as_str().to_owned()),
            ("enqueue_key", EnqueueKey::stored(&self.enqueue_key)),
            (
                "enqueue_key_previous",
                EnqueueKey::stored(&self.enqueue_key_previous),
            ),
            // Stored as "" when unset, so a cleared field overwrites the old value in a hash.
            ("title", self.title.clone().unwrap_or_default()),
            ("message", self.message.clone().unwrap_or_default()),
            (
                "redirect_url",
                self.redirect_url.clone().unwrap_or_default(),
            ),
            ("language", self.language.clone().unwrap_or_default()),
            ("hold_ttl_secs", self.hold_ttl_secs.to_string()),
        ]
    }

    /// Reads the stored form; a missing or unreadable field takes its default.
    pub fn from_fields(fields: &HashMap<String, String>) -> Self {
        let d = Self::default();
        fn num<T: std::str::FromStr>(f: &HashMap<String, String>, k: &str, d: T) -> T {
            f.get(k).and_then(|v| v.parse().ok()).unwrap_or(d)
        }
        fn text(f: &HashMap<String, String>, k: &str) -> Option<String> {
            f.get(k).filter(|v| !v.is_empty()).cloned()
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
                Some("signed") => Identity::Signed,
                _ => Identity::Anonymous,
            },
            enqueue_key: text(fields, "enqueue_key").map(EnqueueKey),
            enqueue_key_previous: text(fields, "enqueue_key_previous").map(EnqueueKey),
            vip_size: num(fields, "vip_size", d.vip_size),
            fast_upto: num(fields, "fast_upto", d.fast_upto),
            fast_poll_ms: num(fields, "fast_poll_ms", d.fast_poll_ms),
            slow_poll_ms: num(fields, "slow_poll_ms", d.slow_poll_ms),
            admission_rate: num(fields, "admission_rate", d.admission_rate),
            max_active: num(fields, "max_active", d.max_active),
            admission_ttl_secs: num(fields, "admission_ttl_secs", d.admission_ttl_secs),
            enter_rate: num(fields, "enter_rate", d.enter_rate),
            opens_at: Some(num(fields, "opens_at", 0)).filter(|&at| at > 0),
            prequeue_opens_at: Some(num(fields, "prequeue_opens_at", 0)).filter(|&at| at > 0),
            queueing: fields
                .get("queueing")
                .and_then(|q| Queueing::parse(q))
                .unwrap_or_default(),
            title: text(fields, "title"),
            message: text(fields, "message"),
            redirect_url: text(fields, "redirect_url"),
            language: text(fields, "language"),
            hold_ttl_secs: num(fields, "hold_ttl_secs", d.hold_ttl_secs),
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
    fn page_fields_are_stored_and_cleared_with_an_empty_string() {
        let set = EventUpdate {
            title: Some("Big sale".into()),
            message: Some("Line one\nline two".into()),
            redirect_url: Some("https://shop.example/checkout?from=queue".into()),
            language: Some("fr".into()),
            ..EventUpdate::default()
        };
        let config = EventConfig::default().apply(&set).unwrap();
        let fields = config
            .to_fields()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert_eq!(EventConfig::from_fields(&fields), config);

        let clear = EventUpdate {
            title: Some(String::new()),
            redirect_url: Some(String::new()),
            ..EventUpdate::default()
        };
        let cleared = config.apply(&clear).unwrap();
        assert_eq!(cleared.title, None);
        assert_eq!(cleared.redirect_url, None);
        assert_eq!(
            cleared.language.as_deref(),
            Some("fr"),
            "untouched fields stay"
        );
        let fields = cleared
            .to_fields()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert_eq!(EventConfig::from_fields(&fields).title, None);
    }

    #[test]
    fn page_fields_that_could_mislead_or_leak_are_refused_with_the_field_named() {
        let refused = [
            ("redirect_url", "javascript:alert(1)"),
            ("redirect_url", "/relative/path"),
            ("redirect_url", "ftp://shop.example/"),
            ("redirect_url", "https://shop.example/#admission_token=x"),
            ("redirect_url", "https://user:pw@shop.example/"),
            ("title", "\u{202e}elas gib"),
            ("title", &"t".repeat(MAX_TITLE_CHARS + 1)),
            ("message", &"m".repeat(MAX_MESSAGE_CHARS + 1)),
            ("message", "bell\u{7}"),
            ("language", "xx"),
            ("language", "EN"),
            ("language", "zh-TW"),
        ];
        for (field, value) in refused {
            let mut update = EventUpdate::default();
            let given = Some(value.to_owned());
            match field {
                "redirect_url" => update.redirect_url = given,
                "title" => update.title = given,
                "message" => update.message = given,
                _ => update.language = given,
            }
            let err = EventConfig::default().apply(&update).unwrap_err();
            assert_eq!(err.field, field, "{value:?}");
        }
        let ok = EventUpdate {
            title: Some("Soldes d’été <b>!</b>".into()),
            redirect_url: Some("http://localhost:3000/enter".into()),
            ..EventUpdate::default()
        };
        assert!(EventConfig::default().apply(&ok).is_ok());
    }

    #[test]
    fn the_language_error_lists_exactly_the_page_languages() {
        assert_eq!(
            LANGUAGE_ERROR,
            format!("must be one of {}", PAGE_LANGUAGES.join(", "))
        );
        for language in PAGE_LANGUAGES {
            let update = EventUpdate {
                language: Some(language.into()),
                ..EventUpdate::default()
            };
            assert!(EventConfig::default().apply(&update).is_ok(), "{language}");
        }
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
