//! Entry: the door lets a person in (`enter`), the sale backend checks the admission offline
//! (`jwks.json`) and redeems it once (`redeem`).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, BearerOrQuery};
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
    let body = EnterResponse {
        admission_token: app.admissions.issue(&event, &claims.sub, &admission),
        admission_id: admission.id,
        event_id: event,
        expires_at: admission.expires_at_ms / 1000,
    };
    Ok((no_store(), Json(body)).into_response())
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
