//! Entry: the door lets a person in (`enter`), the sale backend checks the admission offline
//! (`jwks.json`) and redeems it once (`redeem`), or a proxy in front of it asks for every
//! request whether it carries an admission (`check`, for nginx `auth_request`).

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ErrorBody};
use super::extract::{bearer, ApiJson, BearerOrQuery};
use super::queue::{gone_error, no_place, no_store, superseded, verify};
use crate::admission::AdmissionClaims;
use crate::app::AppState;
use crate::event::EventId;
use crate::store::EnterOutcome;

/// Answer of an enter.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EnterResponse {
    /// EdDSA JWT (`kid` in the header) for the sale backend.
    admission_token: String,
    /// The token's `jti`.
    admission_id: String,
    #[schema(value_type = String)]
    event_id: EventId,
    /// Unix seconds.
    expires_at: u64,
}

#[utoipa::path(post, path = "/v1/queue/enter", tag = "entry",
    responses(
        (status = 200, description = "Let in: the admission (the same one when called again)", body = EnterResponse),
        (status = 401, description = "`invalid_ticket`", body = ErrorBody),
        (status = 410, description = "`evicted`, `left` or `admission_expired`", body = ErrorBody),
        (status = 425, description = "`not_ready`: not inside the door's window yet, with Retry-After", body = ErrorBody),
        (status = 429, description = "`rate_limited`: the event's `enter_rate` on this instance is used up (the vip tier is exempt)", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody),
    ))]
/// `POST /v1/queue/enter`: inside the door's window, moves the person from waiting to active
/// and answers the admission token; entering again answers the same admission. Not yet inside:
/// 425 `not_ready` with `Retry-After`. When the event's burst limiter on this instance
/// (`enter_rate`) is exhausted only the vip tier gets through (429 for the others): the bypass skips the limiter, never the door.
pub async fn enter(
    State(app): State<AppState>,
    BearerOrQuery(token): BearerOrQuery,
) -> Result<Response, ApiError> {
    let (event, claims) = verify(&app, &token)?;
    let vip_only = !app.enter_limits.admit(app.store.as_ref(), &event).await?;
    let admission_id = uuid::Uuid::new_v4().simple().to_string();
    let outcome = app
        .store
        .enter(&event, &claims.sub, claims.seq, &admission_id, vip_only)
        .await?;
    let refused = match outcome {
        EnterOutcome::Admitted(admission) => Ok(admission),
        EnterOutcome::NotReady(standing) => {
            let poll = u64::from(standing.poll_after_ms).div_ceil(1000);
            let wait = standing.eta_secs.unwrap_or(poll).clamp(1, poll.max(1));
            Err(ApiError::NotReady {
                retry_after_secs: wait,
            })
        }
        EnterOutcome::PreQueue { opens_at } => Err(ApiError::NotReady {
            // Nobody enters before the opening; a page polls its status until then anyway.
            retry_after_secs: opens_at
                .saturating_sub(jsonwebtoken::get_current_timestamp())
                .clamp(1, 60),
        }),
        EnterOutcome::Limited => Err(ApiError::RateLimited {
            retry_after_secs: 1,
        }),
        EnterOutcome::Gone(gone) => Err(gone_error(gone)),
        EnterOutcome::Unknown => Err(no_place()),
        EnterOutcome::Superseded => Err(superseded()),
    };
    let label = [event.as_str()];
    let admission = refused.inspect_err(|err| app.metrics.reject(label[0], err.code()))?;
    if admission.new {
        let waited = jsonwebtoken::get_current_timestamp().saturating_sub(claims.iat);
        app.metrics.admitted.with_label_values(&label).inc();
        app.metrics
            .time_in_queue
            .with_label_values(&label)
            .observe(waited as f64);
        tracing::info!(%event, admission = %admission.id, waited_secs = waited, "admitted");
    }
    let token = app.admissions.issue(&event, &claims.sub, &admission);
    let expires_at = admission.expires_at_ms / 1000;
    let cookie = admission_cookie(&token, expires_at);
    let body = EnterResponse {
        admission_token: token,
        admission_id: admission.id,
        event_id: event,
        expires_at,
    };
    Ok((no_store(), [(header::SET_COOKIE, cookie)], Json(body)).into_response())
}

/// The cookie `check` reads. When the waiting room is served on the sale's own origin (through
/// the proxy that guards the sale, `deploy/connectors/nginx-auth-request.conf`), entering sets
/// it there, and every later request to the sale carries it: a backend with no code of its own
/// is protected. Script cannot read it (`HttpOnly`), it never travels over plain HTTP
/// (`Secure`; browsers make an exception for localhost) and it goes with top-level navigations
/// from elsewhere but not with other sites' subrequests (`SameSite=Lax`). It ends with the
/// admission.
fn admission_cookie(token: &str, expires_at: u64) -> HeaderValue {
    let max_age = expires_at.saturating_sub(jsonwebtoken::get_current_timestamp());
    let cookie = format!(
        "{ADMISSION_COOKIE}={token}; Path=/; Max-Age={max_age}; HttpOnly; Secure; SameSite=Lax"
    );
    // A JWT is base64url and dots: always a valid header value.
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Name of the cookie that carries an admission to `check`.
pub const ADMISSION_COOKIE: &str = "vestibule_admission";

/// Query of a check.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CheckQuery {
    /// Only an admission to this event passes (a proxy guarding one sale names it, so an
    /// admission to another sale does not open this one).
    event: Option<String>,
}

#[utoipa::path(get, path = "/v1/admissions/check", tag = "entry",
    params(CheckQuery),
    responses(
        (status = 200, description = "The request carries a valid, unexpired admission (to `event` when named); `X-Vestibule-Event`, `X-Vestibule-Subject` and `X-Vestibule-Admission` name it", body = Object),
        (status = 400, description = "`invalid_request`: a malformed `event` (a proxy misconfigured)", body = ErrorBody),
        (status = 401, description = "`invalid_token`: no admission, or a forged, expired, foreign or other event's one", body = ErrorBody),
    ))]
/// `GET /v1/admissions/check`: for nginx `auth_request`. 200 when the `Authorization` header
/// (bearer) or the `vestibule_admission` cookie carries a valid, unexpired admission, 401
/// otherwise. Verified offline like the JWKS does it: no store call, nothing changes (a
/// redeemed admission passes until it expires; redeeming is the backend's business).
pub async fn check(
    State(app): State<AppState>,
    query: Result<Query<CheckQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::InvalidRequest(e.body_text()))?;
    let wanted = query
        .event
        .as_deref()
        .map(EventId::parse)
        .transpose()
        .map_err(|e| ApiError::InvalidRequest(format!("event: {e}")))?;
    let token = bearer(&headers)
        .or_else(|| cookie(&headers, ADMISSION_COOKIE))
        .ok_or_else(|| ApiError::InvalidToken("no admission".into()))?;
    let (event, claims) = app
        .admissions
        .verify(&token)
        .map_err(|e| ApiError::InvalidToken(e.to_string()))?;
    if wanted.as_ref().is_some_and(|wanted| *wanted != event) {
        return Err(ApiError::InvalidToken(
            "an admission to another event".into(),
        ));
    }
    let named = |name: &'static str, value: &str| {
        HeaderValue::from_str(value)
            .ok()
            .map(|v| (HeaderName::from_static(name), v))
    };
    let mut response = Json(serde_json::json!({
        "event_id": event,
        "sub": claims.sub,
        "admission_id": claims.jti,
        "expires_at": claims.exp,
    }))
    .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for (name, value) in [
        named("x-vestibule-event", event.as_str()),
        named("x-vestibule-subject", &claims.sub),
        named("x-vestibule-admission", &claims.jti),
    ]
    .into_iter()
    .flatten()
    {
        headers.insert(name, value);
    }
    Ok(response)
}

/// The value of cookie `name` in the request's `Cookie` headers, if any.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name && !value.is_empty()).then(|| value.trim_matches('"').to_owned())
        })
}

/// Body of a redeem.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemRequest {
    admission_token: String,
}

/// Answer of a redeem.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RedeemResponse {
    redeemed: bool,
    claims: AdmissionClaims,
}

#[utoipa::path(post, path = "/v1/admissions/redeem", tag = "entry",
    security(("backend_token" = [])),
    request_body = RedeemRequest,
    responses(
        (status = 200, description = "Redeemed now, the first time", body = RedeemResponse),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized` without the backend token; `invalid_token`: forged, expired or signed by an unknown key", body = ErrorBody),
        (status = 409, description = "`already_redeemed`", body = ErrorBody),
        (status = 422, description = "`invalid_field`", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody),
    ))]
/// `POST /v1/admissions/redeem` (the sale backend's token, else 401 `unauthorized`): 200 with
/// the claims the first time, 409 `already_redeemed` after; 401 `invalid_token` when forged,
/// expired or signed by an unknown key. Atomic: of any number of concurrent calls, exactly
/// one wins. A redeemed admission can no longer reserve.
pub async fn redeem(
    State(app): State<AppState>,
    headers: axum::http::HeaderMap,
    ApiJson(request): ApiJson<RedeemRequest>,
) -> Result<Response, ApiError> {
    if !super::reservations::is_backend(&headers, &app) {
        return Err(ApiError::Unauthorized);
    }
    let (event, claims) = app
        .admissions
        .verify(&request.admission_token)
        .map_err(|e| ApiError::InvalidToken(e.to_string()))?;
    if !app.store.redeem(&event, &claims.jti, claims.exp).await? {
        return Err(ApiError::AlreadyRedeemed);
    }
    app.metrics
        .redeemed
        .with_label_values(&[event.as_str()])
        .inc();
    Ok(Json(RedeemResponse {
        redeemed: true,
        claims,
    })
    .into_response())
}

#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "entry",
    responses((status = 200, description = "JSON Web Key Set: every key that verifies admission tokens (OKP/Ed25519, by kid)", body = Object)))]
/// `GET /.well-known/jwks.json`: the public keys that verify admission tokens.
pub async fn jwks(State(app): State<AppState>) -> impl IntoResponse {
    (
        [(axum::http::header::CACHE_CONTROL, "public, max-age=60")],
        Json(app.admissions.jwks()),
    )
}
