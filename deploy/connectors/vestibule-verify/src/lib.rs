//! Verify Vestibule admission tokens in a Rust sale backend, offline.
//!
//! A person the waiting room let in carries an admission token: an EdDSA JWT with a `kid`,
//! signed by the gateway, in an `Authorization: Bearer` header or the `vestibule_admission`
//! cookie. [`Verifier`] checks it against the gateway's `/.well-known/jwks.json`, which it
//! fetches once and caches; a token signed with a key it has not seen makes it fetch again (at
//! most once per [`Verifier::with_refetch_interval`]), so a key rotation needs no restart.
//! Expired tokens, tokens signed by any other key (a foreign deployment, a forger), and tokens
//! for another event ([`Verifier::for_event`]) are refused.
//!
//! Two ways to use it with axum:
//!
//! - [`RequireAdmissionLayer`]: a tower layer that lets only admitted requests through (401
//!   JSON, or a redirect to the waiting room) and hands the [`Admission`] to the handler;
//! - [`Admission`] as an extractor: from the layer, or verified on the spot with a
//!   [`Verifier`] added as an `Extension`.
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use vestibule_verify::{Admission, RequireAdmissionLayer, Verifier};
//!
//! let verifier = Verifier::new("http://gateway:8080/.well-known/jwks.json").for_event("sale");
//! let app: Router = Router::new()
//!     .route("/checkout", get(|admission: Admission| async move {
//!         format!("welcome {}", admission.subject)
//!     }))
//!     .layer(RequireAdmissionLayer::new(verifier).redirect_to("/wait/sale"));
//! ```
//!
//! Verifying proves the person was admitted; it does not use the admission up. To let each
//! admission through once, redeem it (`POST /v1/admissions/redeem`).

mod layer;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{header, HeaderMap, StatusCode};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};

pub use layer::{RequireAdmission, RequireAdmissionLayer};

/// The cookie the gateway sets when a person enters.
pub const COOKIE: &str = "vestibule_admission";

/// Longest a fetched key set is trusted before it is fetched again, so a key the gateway
/// retired stops verifying here too.
const MAX_AGE: Duration = Duration::from_secs(300);

/// An admitted person: the claims of a verified admission token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admission {
    /// The event they were admitted to.
    pub event: String,
    /// The person (the gateway's id, or the sale's `user_id` when the event names people).
    pub subject: String,
    /// The admission's id (`jti`): unique; redeem it to let it through once.
    pub admission_id: String,
    /// Expiry, unix seconds.
    pub expires_at: u64,
}

#[derive(Deserialize)]
struct Claims {
    ev: String,
    sub: String,
    jti: String,
    exp: u64,
}

/// Why a request is not admitted.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// Neither the header nor the cookie carries a token.
    #[error("no admission token")]
    Missing,
    /// Not a JWT, not EdDSA, or without a `kid`.
    #[error("malformed admission token: {0}")]
    Malformed(String),
    /// Signed by a key the gateway does not publish.
    #[error("admission token signed by an unknown key {0}")]
    UnknownKey(String),
    /// A bad signature, expired, or claims missing.
    #[error("invalid admission token: {0}")]
    Invalid(String),
    /// A genuine admission to another event.
    #[error("an admission to event {0}, not this one")]
    OtherEvent(String),
    /// The JWKS could not be fetched (and no cached key matches).
    #[error("cannot fetch the gateway's keys: {0}")]
    KeysUnavailable(String),
}

impl Refused {
    /// 503 when the gateway's keys could not be fetched (try again), else 401.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::KeysUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }
}

/// Answers in the gateway's error format: `{"error": {"code", "message"}}`.
impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let code = match self {
            Self::KeysUnavailable(_) => "unavailable",
            _ => "invalid_token",
        };
        let body = serde_json::json!({"error": {"code": code, "message": self.to_string()}});
        (self.status(), axum::Json(body)).into_response()
    }
}

/// Verifies admission tokens against a gateway's JWKS. Cheap to clone (shared cache).
#[derive(Clone)]
pub struct Verifier(Arc<Inner>);

struct Inner {
    jwks_url: String,
    client: reqwest::Client,
    event: Option<String>,
    refetch_interval: Duration,
    validation: Validation,
    keys: RwLock<KeySet>,
    /// One fetch at a time: a burst of tokens with a new `kid` makes one request.
    fetching: Mutex<()>,
}

#[derive(Default)]
struct KeySet {
    by_kid: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kid: String,
    kty: String,
    #[serde(default)]
    crv: String,
    x: String,
}

impl Verifier {
    /// A verifier for the gateway whose JWKS is at `jwks_url`; keys are fetched when first
    /// needed.
    pub fn new(jwks_url: impl Into<String>) -> Self {
        Self::with_client(jwks_url, reqwest::Client::new())
    }

    /// As [`Verifier::new`], fetching with the given client (timeouts, TLS, proxies).
    pub fn with_client(jwks_url: impl Into<String>, client: reqwest::Client) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub", "jti"]);
        Self(Arc::new(Inner {
            jwks_url: jwks_url.into(),
            client,
            event: None,
            refetch_interval: Duration::from_secs(1),
            validation,
            keys: RwLock::default(),
            fetching: Mutex::new(()),
        }))
    }

    /// Accepts only admissions to `event` (an admission to one sale must not open another).
    pub fn for_event(self, event: impl Into<String>) -> Self {
        self.reconfigure(|inner| inner.event = Some(event.into()))
    }

    /// How often, at most, an unknown `kid` makes the verifier fetch the JWKS again (default
    /// 1 s): a forger sending made-up key ids cannot make it fetch more often than this.
    pub fn with_refetch_interval(self, interval: Duration) -> Self {
        self.reconfigure(|inner| inner.refetch_interval = interval)
    }

    fn reconfigure(self, change: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Arc::try_unwrap(self.0).unwrap_or_else(|shared| Inner {
            jwks_url: shared.jwks_url.clone(),
            client: shared.client.clone(),
            event: shared.event.clone(),
            refetch_interval: shared.refetch_interval,
            validation: shared.validation.clone(),
            keys: RwLock::default(),
            fetching: Mutex::new(()),
        });
        change(&mut inner);
        Self(Arc::new(inner))
    }

    /// The admission a request carries (bearer header first, then the cookie), verified.
    pub async fn verify_request(&self, headers: &HeaderMap) -> Result<Admission, Refused> {
        let token = bearer(headers)
            .or_else(|| cookie(headers, COOKIE))
            .ok_or(Refused::Missing)?;
        self.verify(&token).await
    }

    /// Verifies one token: signature by `kid` against the gateway's keys, expiry, event.
    pub async fn verify(&self, token: &str) -> Result<Admission, Refused> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| Refused::Malformed(e.to_string()))?;
        if header.alg != Algorithm::EdDSA {
            return Err(Refused::Malformed(format!("algorithm {:?}", header.alg)));
        }
        let kid = header
            .kid
            .ok_or_else(|| Refused::Malformed("no kid".into()))?;
        let key = self.key(&kid).await?;
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &self.0.validation)
            .map_err(|e| Refused::Invalid(e.to_string()))?
            .claims;
        if let Some(event) = &self.0.event {
            if *event != claims.ev {
                return Err(Refused::OtherEvent(claims.ev));
            }
        }
        Ok(Admission {
            event: claims.ev,
            subject: claims.sub,
            admission_id: claims.jti,
            expires_at: claims.exp,
        })
    }

    /// The key `kid`, fetching the JWKS when the cache is empty, stale, or lacks it.
    async fn key(&self, kid: &str) -> Result<DecodingKey, Refused> {
        {
            let keys = self.0.keys.read().await;
            let fresh = keys.fetched_at.is_some_and(|at| at.elapsed() < MAX_AGE);
            if let (true, Some(key)) = (fresh, keys.by_kid.get(kid)) {
                return Ok(key.clone());
            }
        }
        let _one = self.0.fetching.lock().await;
        // Another task may have fetched while this one waited.
        {
            let keys = self.0.keys.read().await;
            let recent = keys
                .fetched_at
                .is_some_and(|at| at.elapsed() < self.0.refetch_interval);
            match keys.by_kid.get(kid) {
                Some(key) if keys.fetched_at.is_some_and(|at| at.elapsed() < MAX_AGE) => {
                    return Ok(key.clone())
                }
                None if recent => return Err(Refused::UnknownKey(kid.to_owned())),
                _ => {}
            }
        }
        let fetched = self.fetch().await;
        let mut keys = self.0.keys.write().await;
        match fetched {
            Ok(by_kid) => {
                *keys = KeySet {
                    by_kid,
                    fetched_at: Some(Instant::now()),
                };
            }
            // The gateway out of reach: keep verifying with the keys known so far.
            Err(err) if keys.by_kid.is_empty() => return Err(err),
            Err(_) => {}
        }
        keys.by_kid
            .get(kid)
            .cloned()
            .ok_or_else(|| Refused::UnknownKey(kid.to_owned()))
    }

    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>, Refused> {
        let unavailable = |e: reqwest::Error| Refused::KeysUnavailable(e.to_string());
        let jwks: Jwks = self
            .0
            .client
            .get(&self.0.jwks_url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(unavailable)?
            .json()
            .await
            .map_err(unavailable)?;
        Ok(jwks
            .keys
            .into_iter()
            .filter(|k| k.kty == "OKP" && k.crv == "Ed25519")
            .filter_map(|k| Some((k.kid, DecodingKey::from_ed_components(&k.x).ok()?)))
            .collect())
    }
}

/// Takes the admission from the request: the one [`RequireAdmissionLayer`] verified, else
/// verifies it with a [`Verifier`] added as an `Extension`. Refuses with 401 (503 when the
/// gateway's keys cannot be fetched).
impl<S: Send + Sync> FromRequestParts<S> for Admission {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        if let Some(admission) = parts.extensions.get::<Admission>() {
            return Ok(admission.clone());
        }
        let Some(verifier) = parts.extensions.get::<Verifier>().cloned() else {
            // A wiring mistake of the backend, not the person's fault.
            return Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                "Admission needs RequireAdmissionLayer or an Extension(Verifier)",
            )
                .into_response());
        };
        verifier
            .verify_request(&parts.headers)
            .await
            .map_err(IntoResponse::into_response)
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
        .filter(|t| !t.is_empty())
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name && !value.is_empty()).then(|| value.to_owned())
        })
}
