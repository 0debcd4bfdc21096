//! Queue tickets: HS256 JWTs signed with a key shared by every gateway instance.
//!
//! Tickets are checked on every status poll, by us only, so HMAC (about a microsecond) rather than
//! a signature (tens of microseconds). A ticket is rebuilt from the place the store records, so
//! joining again yields byte-for-byte the same ticket.

use std::path::Path;

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::event::EventId;
use crate::store::Place;

/// The claims of a queue ticket. Identifiers are strings (RFC 7519).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketClaims {
    /// The event.
    pub ev: String,
    /// The person.
    pub sub: String,
    /// The join sequence: the person's place in the order.
    pub seq: u64,
    /// Issued at (unix seconds, store clock).
    pub iat: u64,
    /// Expires at (unix seconds).
    pub exp: u64,
    /// Unique id of this ticket: event and sequence.
    pub jti: String,
}

/// The `jti` of the ticket for the place with sequence `seq`: the message the pre-queue's draw
/// signs (`door::draw_score`).
pub fn jti(event: &EventId, seq: u64) -> String {
    format!("{event}:{seq}")
}

/// The claims of an enqueue token (DESIGN §15): minted by the sale site after its own login.
#[derive(Debug, Deserialize)]
struct EnqueueClaims {
    sub: String,
    ev: String,
    exp: u64,
}

/// Longest enqueue token accepted (bytes): a few claims need far less.
const MAX_ENQUEUE_TOKEN_BYTES: usize = 2048;

/// Longest `sub` of an enqueue token, in characters.
const MAX_ENQUEUE_SUB_CHARS: usize = 128;

/// How far ahead an enqueue token may expire (s): a long-lived token is a stolen one waiting.
const MAX_ENQUEUE_LIFETIME_SECS: u64 = 86_400;

/// The person an enqueue token names for `event`, if it is signed (HS256) with one of `keys`
/// (the event's key, then a rotated-out one), unexpired, at most a day ahead, and for this
/// event. The reason otherwise.
pub fn verify_enqueue_token(
    token: &str,
    event: &EventId,
    keys: &[Vec<u8>],
    now_secs: u64,
) -> Result<String, String> {
    if token.len() > MAX_ENQUEUE_TOKEN_BYTES {
        return Err("the enqueue token is too long".into());
    }
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp", "sub"]);
    let claims = keys
        .iter()
        .find_map(|key| {
            jsonwebtoken::decode::<EnqueueClaims>(
                token,
                &DecodingKey::from_secret(key),
                &validation,
            )
            .ok()
        })
        .ok_or("the enqueue token is not signed with this event's key, or has expired")?
        .claims;
    if claims.ev != event.as_str() {
        return Err("the enqueue token is for another event".into());
    }
    if claims.exp > now_secs + MAX_ENQUEUE_LIFETIME_SECS {
        return Err("the enqueue token expires more than 24 h ahead".into());
    }
    let sub_ok = (1..=MAX_ENQUEUE_SUB_CHARS).contains(&claims.sub.chars().count())
        && !claims.sub.chars().any(char::is_control);
    if !sub_ok {
        return Err("the enqueue token's sub must be 1 to 128 characters, no control ones".into());
    }
    Ok(claims.sub)
}

/// Why a ticket is refused (all answer 401 `invalid_ticket`).
#[derive(Debug, thiserror::Error)]
#[error("invalid ticket: {0}")]
pub struct InvalidTicket(String);

/// Signs and verifies queue tickets.
pub struct TicketKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl TicketKeys {
    /// Builds the keys from a shared secret.
    pub fn from_secret(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub", "iat"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// Loads the secret from `dir/ticket-hmac.key`, creating it on first start.
    pub fn load_or_create(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("ticket-hmac.key");
        if !path.exists() {
            let mut secret = [0u8; 32];
            rand::fill(&mut secret);
            let encoded = base64::engine::general_purpose::STANDARD.encode(secret);
            crate::keyfiles::write_once(dir, "ticket-hmac.key", encoded.as_bytes())?;
        }
        let encoded = std::fs::read_to_string(&path)?;
        let secret = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        Ok(Self::from_secret(&secret))
    }

    /// The ticket for a person's place.
    pub fn issue(&self, event: &EventId, person: &str, place: &Place) -> String {
        let claims = TicketClaims {
            ev: event.to_string(),
            sub: person.to_owned(),
            seq: place.seq,
            iat: place.issued_at,
            exp: place.expires_at,
            jti: jti(event, place.seq),
        };
        // Encoding a struct of strings and integers with an HMAC key cannot fail.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .unwrap_or_default()
    }

    /// Verifies signature and expiry, and that the event id is well formed.
    pub fn verify(&self, token: &str) -> Result<(EventId, TicketClaims), InvalidTicket> {
        let data = jsonwebtoken::decode::<TicketClaims>(token, &self.decoding, &self.validation)
            .map_err(|e| InvalidTicket(e.to_string()))?;
        let event = EventId::parse(&data.claims.ev).map_err(|e| InvalidTicket(e.to_owned()))?;
        Ok((event, data.claims))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place() -> Place {
        let now = jsonwebtoken::get_current_timestamp();
        Place {
            seq: 7,
            issued_at: now,
            expires_at: now + 600,
        }
    }

    #[test]
    fn the_same_place_gives_the_same_ticket() {
        let keys = TicketKeys::from_secret(b"secret");
        let ev = EventId::parse("sale").unwrap();
        assert_eq!(
            keys.issue(&ev, "p1", &place()),
            keys.issue(&ev, "p1", &place())
        );
        let (event, claims) = keys.verify(&keys.issue(&ev, "p1", &place())).unwrap();
        assert_eq!((event.as_str(), claims.seq), ("sale", 7));
    }

    #[test]
    fn a_ticket_signed_with_another_key_is_refused() {
        let ev = EventId::parse("sale").unwrap();
        let forged = TicketKeys::from_secret(b"other").issue(&ev, "p1", &place());
        assert!(TicketKeys::from_secret(b"secret").verify(&forged).is_err());
    }

    #[test]
    fn two_loads_of_one_directory_share_the_key() {
        let dir = std::env::temp_dir().join(format!("vst-keys-{}", uuid::Uuid::new_v4()));
        let a = TicketKeys::load_or_create(&dir).unwrap();
        let b = TicketKeys::load_or_create(&dir).unwrap();
        let ev = EventId::parse("sale").unwrap();
        assert!(b.verify(&a.issue(&ev, "p1", &place())).is_ok());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
