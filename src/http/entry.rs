//! Entry: the door lets a person in (`enter`), the sale backend checks the admission offline
//! (`jwks.json`) and redeems it once (`redeem`).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::extract::{ApiJson, BearerOrQuery};
use super::queue::{gone_error, no_place, no_store, superseded, verify};
use super::AppState;
use crate::store::EnterOutcome;

/// `POST /v1/queue/enter`: inside the door's window, moves the person from waiting to active
/// and answers the admission token; entering again answers the same admission. Not yet inside:
/// 425 `not_ready` with `Retry-After`. When this instance's burst limiter is exhausted only the
/// vip tier gets through (429 for the others): the bypass skips the limiter, never the door.
pub async fn enter(
    State(app): State<AppState>,
    BearerOrQuery(token): BearerOrQuery,
) -> Result<Response, ApiError> {
    let (event, claims) = verify(&app, &token)?;
    let vip_only = app
        .enter_limiter
        .as_ref()
        .is_some_and(|limiter| limiter.check().is_err());
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
    let body = json!({
        "admission_token": app.admissions.issue(&event, &claims.sub, &admission),
        "admission_id": admission.id,
        "event_id": event,
        "expires_at": admission.expires_at_ms / 1000,
    });
    Ok((no_store(), Json(body)).into_response())
}

/// Body of a redeem.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedeemRequest {
    admission_token: String,
}

/// `POST /v1/admissions/redeem`: 200 with the claims the first time, 409 `already_redeemed`
/// after; 401 `invalid_token` when forged, expired or signed by an unknown key. Atomic: of any
/// number of concurrent calls, exactly one wins.
pub async fn redeem(
    State(app): State<AppState>,
    ApiJson(request): ApiJson<RedeemRequest>,
) -> Result<Response, ApiError> {
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
    Ok(Json(json!({ "redeemed": true, "claims": claims })).into_response())
}

/// `GET /.well-known/jwks.json`: the public keys that verify admission tokens.
pub async fn jwks(State(app): State<AppState>) -> impl IntoResponse {
    (
        [(axum::http::header::CACHE_CONTROL, "public, max-age=60")],
        Json(app.admissions.jwks()),
    )
}
