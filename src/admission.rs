//! Admission tokens: EdDSA (Ed25519) JWTs with a `kid`, checked offline by the sale backend
//! through `/.well-known/jwks.json`.
//!
//! Keys live in the keys directory as `admission-<kid>.pk8` (PKCS#8, base64); the file
//! `admission-current` names the signing key. Every key in the directory is published and
//! accepted, so rotation needs no downtime: `vestibule keys rotate` adds a key and makes it the
//! signing key; instances pick it up within [`RELOAD_INTERVAL`]; tokens signed with the old key
//! keep verifying until its file is deleted (after `admission_ttl_secs` has passed).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::event::EventId;
use crate::store::Admission;

/// How often instances reread the keys directory.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

const CURRENT: &str = "admission-current";

/// The claims of an admission token. Identifiers are strings (RFC 7519).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AdmissionClaims {
    /// The event.
    pub ev: String,
    /// The person.
    pub sub: String,
    /// The admission id: unique, redeemable once.
    pub jti: String,
    /// Expiry (unix seconds).
    pub exp: u64,
}

/// Why an admission token is refused (401).
#[derive(Debug, thiserror::Error)]
#[error("invalid admission token: {0}")]
pub struct InvalidAdmission(String);

struct Key {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// The public key, base64url: the JWK's `x`.
    public: String,
}

struct KeySet {
    signing: String,
    keys: BTreeMap<String, Key>,
}

/// Signs and verifies admission tokens with the keys of a directory.
pub struct AdmissionKeys {
    dir: PathBuf,
    set: RwLock<KeySet>,
    validation: Validation,
}

impl AdmissionKeys {
    /// Loads the directory's keys, creating the first one when there is none.
    pub fn load_or_create(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        if !dir.join(CURRENT).exists() {
            let kid = add_key(dir)?;
            // Two instances starting at once: the first link wins, the other reads it.
            crate::keyfiles::write_once(dir, CURRENT, kid.as_bytes())?;
        }
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub", "jti"]);
        Ok(Self {
            set: RwLock::new(read_set(dir)?),
            dir: dir.to_owned(),
            validation,
        })
    }

    /// Rereads the directory (new keys, a new signing key, retired keys).
    pub fn reload(&self) -> std::io::Result<()> {
        let set = read_set(&self.dir)?;
        *self.set.write().unwrap_or_else(|e| e.into_inner()) = set;
        Ok(())
    }

    /// The admission token for an admission. Ed25519 is deterministic: the same admission and
    /// key give the same token, so entering twice hands out the same token.
    pub fn issue(&self, event: &EventId, person: &str, admission: &Admission) -> String {
        let claims = AdmissionClaims {
            ev: event.to_string(),
            sub: person.to_owned(),
            jti: admission.id.clone(),
            exp: admission.expires_at_ms / 1000,
        };
        let set = self.set.read().unwrap_or_else(|e| e.into_inner());
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(set.signing.clone());
        // `read_set` guarantees the signing key is present; encoding with it cannot fail.
        set.keys
            .get(&set.signing)
            .and_then(|key| jsonwebtoken::encode(&header, &claims, &key.encoding).ok())
            .unwrap_or_default()
    }

    /// Verifies signature (by `kid`), expiry, and that the event id is well formed.
    pub fn verify(&self, token: &str) -> Result<(EventId, AdmissionClaims), InvalidAdmission> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| InvalidAdmission(e.to_string()))?;
        let kid = header
            .kid
            .ok_or_else(|| InvalidAdmission("no kid".into()))?;
        let set = self.set.read().unwrap_or_else(|e| e.into_inner());
        let key = set
            .keys
            .get(&kid)
            .ok_or_else(|| InvalidAdmission(format!("unknown key {kid}")))?;
        let data = jsonwebtoken::decode::<AdmissionClaims>(token, &key.decoding, &self.validation)
            .map_err(|e| InvalidAdmission(e.to_string()))?;
        let event = EventId::parse(&data.claims.ev).map_err(|e| InvalidAdmission(e.to_owned()))?;
        Ok((event, data.claims))
    }

    /// The JSON Web Key Set of every accepted key.
    pub fn jwks(&self) -> Value {
        let set = self.set.read().unwrap_or_else(|e| e.into_inner());
        let keys: Vec<Value> = set
            .keys
            .iter()
            .map(|(kid, key)| {
                json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
                       "kid": kid, "x": key.public})
            })
            .collect();
        json!({ "keys": keys })
    }
}

/// Adds a key to the directory and makes it the signing key; returns its kid. The previous
/// keys stay, so tokens they signed keep verifying.
pub fn rotate(dir: &Path) -> std::io::Result<String> {
    std::fs::create_dir_all(dir)?;
    let kid = add_key(dir)?;
    let temp = dir.join(format!(".{CURRENT}.{}", uuid::Uuid::new_v4()));
    std::fs::write(&temp, kid.as_bytes())?;
    std::fs::rename(&temp, dir.join(CURRENT))?;
    Ok(kid)
}

fn add_key(dir: &Path) -> std::io::Result<String> {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| std::io::Error::other("cannot generate an Ed25519 key"))?;
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let kid = format!("{secs}-{:04x}", rand::random::<u16>());
    crate::keyfiles::write_once(
        dir,
        &format!("admission-{kid}.pk8"),
        STANDARD.encode(pkcs8.as_ref()).as_bytes(),
    )?;
    Ok(kid)
}

fn read_set(dir: &Path) -> std::io::Result<KeySet> {
    let invalid = |msg: String| std::io::Error::new(std::io::ErrorKind::InvalidData, msg);
    let signing = std::fs::read_to_string(dir.join(CURRENT))?
        .trim()
        .to_owned();
    let mut keys = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let Some(kid) = name
            .strip_prefix("admission-")
            .and_then(|rest| rest.strip_suffix(".pk8"))
        else {
            continue;
        };
        let text = std::fs::read_to_string(dir.join(&name))?;
        let pkcs8 = STANDARD
            .decode(text.trim())
            .map_err(|e| invalid(format!("{name}: {e}")))?;
        let pair =
            Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|e| invalid(format!("{name}: {e}")))?;
        let public = pair.public_key().as_ref();
        keys.insert(
            kid.to_owned(),
            Key {
                encoding: EncodingKey::from_ed_der(&pkcs8),
                decoding: DecodingKey::from_ed_der(public),
                public: URL_SAFE_NO_PAD.encode(public),
            },
        );
    }
    if !keys.contains_key(&signing) {
        return Err(invalid(format!(
            "{CURRENT} names {signing}, which has no key file"
        )));
    }
    Ok(KeySet { signing, keys })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission() -> Admission {
        Admission {
            id: "adm-1".into(),
            expires_at_ms: (jsonwebtoken::get_current_timestamp() + 600) * 1000,
            new: true,
        }
    }

    #[test]
    fn a_rotated_directory_still_verifies_tokens_of_the_old_key() {
        let dir = std::env::temp_dir().join(format!("vst-adm-{}", uuid::Uuid::new_v4()));
        let keys = AdmissionKeys::load_or_create(&dir).unwrap();
        let ev = EventId::parse("sale").unwrap();
        let old = keys.issue(&ev, "p1", &admission());
        assert_eq!(old, keys.issue(&ev, "p1", &admission()), "deterministic");

        let new_kid = rotate(&dir).unwrap();
        keys.reload().unwrap();
        let new = keys.issue(&ev, "p1", &admission());
        assert_eq!(
            jsonwebtoken::decode_header(&new).unwrap().kid,
            Some(new_kid)
        );
        assert!(keys.verify(&old).is_ok());
        assert!(keys.verify(&new).is_ok());
        assert_eq!(keys.jwks()["keys"].as_array().unwrap().len(), 2);

        let other = AdmissionKeys::load_or_create(&dir.join("elsewhere")).unwrap();
        assert!(keys.verify(&other.issue(&ev, "p1", &admission())).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
